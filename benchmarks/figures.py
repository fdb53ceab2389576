"""Figures of simplexes grown from one mode: loss planes of their faces, spiral decision regions.

- Fig. 3/6 analogue: a 3-vertex and a 4-vertex simplex grown from one MLP mode on
  digits; the training-loss plane of each 2-face (triangle of three vertices), drawn
  with LossPlaneDisplay, written to ``docs/figures/faces_3_vertices.png`` and
  ``docs/figures/faces_4_vertices.png``.
- Section 5.3 analogue: two spirals, a 4-vertex simplex of an MLP; decision regions
  of the models at the vertices, of models sampled inside, and of the ESPRO average,
  written to ``docs/figures/spirals_regions.png``.

    python benchmarks/figures.py        # about a minute on 2 CPU cores

Prints, for each face, the training loss at its vertices and its best and worst grid point.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import datasets  # noqa: E402
from sklearn_espro import ESPROClassifier, LossPlaneDisplay  # noqa: E402
from sklearn_espro.geometry import sample_barycentric  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "docs" / "figures"


def nearest_grid_loss(display: LossPlaneDisplay, point: np.ndarray) -> float:
    """The loss at the grid point nearest to ``point`` (plane coordinates)."""
    i = np.abs(display.grid_u - point[0]).argmin()
    j = np.abs(display.grid_v - point[1]).argmin()
    return float(display.loss[j, i])


def faces(n_vertices: int, data) -> Path:
    clf = ESPROClassifier(n_modes=1, n_vertices=n_vertices, volume_reg=0.5, vertex_epochs=6, random_state=0,
                          module__hidden_sizes=(64,)).fit(data.X, data.y)
    triples = list(itertools.combinations(range(n_vertices), 3))
    fig, axes = plt.subplots(1, len(triples), figsize=(4.6 * len(triples), 3.8), squeeze=False)
    for ax, triple in zip(axes[0], triples):
        display = LossPlaneDisplay.from_estimator(clf, data.X, data.y, vertices=triple, resolution=25, margin=0.4,
                                                  ax=ax)
        ax.set_title(f"face {triple}")
        at_vertices = [nearest_grid_loss(display, c) for c in display.plane.anchor_coords_]
        print(f"{n_vertices} vertices, face {triple}: loss near the vertices {np.round(at_vertices, 4)}, "
              f"grid min {display.loss.min():.4f}, max {display.loss.max():.4f}")
    fig.suptitle(f"digits MLP: training loss on the faces of a {n_vertices}-vertex simplex "
                 f"(log-volume {clf.log_volumes_[0]:.2f})")
    fig.tight_layout()
    path = OUT / f"faces_{n_vertices}_vertices.png"
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return path


@torch.no_grad()
def spiral_regions(data) -> Path:
    clf = ESPROClassifier(n_modes=1, n_vertices=4, volume_reg=1.0, vertex_epochs=20, max_epochs=100, batch_size=32,
                          n_samples=20, module__hidden_sizes=(64, 64), random_state=0).fit(data.X, data.y)
    simplex = clf.simplexes_[0]
    lim = np.abs(data.X).max() * 1.1
    grid = np.stack(np.meshgrid(np.linspace(-lim, lim, 150), np.linspace(-lim, lim, 150)), -1).reshape(-1, 2)
    grid_t = torch.as_tensor(grid, dtype=torch.float32)
    inside = sample_barycentric(3, 4, generator=torch.Generator().manual_seed(0))
    panels = [(f"vertex {i}", torch.eye(4)[i]) for i in range(4)] + [(f"sample {i}", t) for i, t in enumerate(inside)]
    fig, axes = plt.subplots(2, 4, figsize=(14, 7))
    for ax, (title, coords) in zip(axes.ravel(), panels):
        p = simplex.to_module(coords).eval()(grid_t).softmax(-1)[:, 1].numpy()
        ax.contourf(grid[:, 0].reshape(150, 150), grid[:, 1].reshape(150, 150), p.reshape(150, 150),
                    levels=20, cmap="RdBu_r", vmin=0, vmax=1)
        ax.set_title(title)
    ax = axes.ravel()[-1]
    p = clf.predict_proba(grid)[:, 1]
    ax.contourf(grid[:, 0].reshape(150, 150), grid[:, 1].reshape(150, 150), p.reshape(150, 150), levels=20,
                cmap="RdBu_r", vmin=0, vmax=1)
    ax.set_title("ESPRO average (20 samples)")
    for ax in axes.ravel():
        ax.scatter(*data.X[:200].T, c=data.y[:200], cmap="RdBu_r", s=4, edgecolor="k", linewidth=0.2)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"two spirals, MLP: a 4-vertex simplex (log-volume {clf.log_volumes_[0]:.2f}); "
                 f"test accuracy {clf.score(data.X_test, data.y_test):.3f}")
    fig.tight_layout()
    path = OUT / "spirals_regions.png"
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return path


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    digits = datasets.digits(shift=False)
    for path in (faces(3, digits), faces(4, digits), spiral_regions(datasets.spirals())):
        print("wrote", path.relative_to(OUT.parent.parent))


if __name__ == "__main__":
    main()
