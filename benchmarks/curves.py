"""SWAG over a mode-connecting curve (Section 4.1, Fig. 2 analogue).

Two MLP modes on digits are connected by a polygonal chain ``w0 -> theta -> w1``; SWAG
moments of ``theta`` are collected over the last epochs, curves are sampled from that
Gaussian, and their training loss is evaluated along the path. Prints a table (maximum
loss and minimum accuracy along each path: the straight line, the SWA curve, the sampled
curves) and writes ``docs/figures/swag_curves.png``: the loss plane of ``w0, w1,
theta_SWA`` (LossPlaneDisplay) with the sampled curves projected on it, and the loss along t.

    python benchmarks/curves.py          # about half a minute on 2 CPU cores
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import datasets  # noqa: E402
from sklearn_espro import ESPROClassifier, LossPlaneDisplay, fit_curve_swag, weights_loss  # noqa: E402
from sklearn_espro._curves import chain_weights  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-curves", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=30, help="curve epochs before SWAG")
    parser.add_argument("--swag-epochs", type=int, default=20)
    parser.add_argument("--swag-lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DOCS, help="writes OUT/figures/swag_curves.png")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    data = datasets.digits(shift=False)
    X, y = data.X, data.y
    clf = ESPROClassifier(n_modes=2, n_vertices=1, max_epochs=30, module__hidden_sizes=(64,),
                          random_state=args.seed).fit(X, y)
    modes = [s.vertex_module(0) for s in clf.simplexes_]
    swag = fit_curve_swag(modes, X, y, epochs=args.epochs, swag_epochs=args.swag_epochs, swag_lr=args.swag_lr,
                          random_state=args.seed)
    w0, w1 = swag.ends
    theta = swag.sample(args.n_curves, torch.Generator().manual_seed(args.seed))
    n_points = 41
    labels = np.searchsorted(clf.classes_, y)
    curve_loss, curve_acc = swag.path_loss(X, labels, theta, n_points=n_points)
    swa_loss, swa_acc = swag.path_loss(X, labels, n_points=n_points)
    line = chain_weights(w0, ((w0 + w1) / 2)[None], w1, n_points)[0]
    line_loss, line_acc = weights_loss(swag.points.module, line, X, labels)

    spread = (theta.double() - swag.mean).norm(dim=1)
    print(f"digits MLP (hidden 64), {len(X)} training samples; |w0 - w1| = {float((w0 - w1).norm()):.2f}, "
          f"|theta_SWA - midpoint| = {float((swag.mean.float() - (w0 + w1) / 2).norm()):.2f}, "
          f"sampled |theta - theta_SWA| = {float(spread.mean()):.3f} (mean of {args.n_curves})")
    print(f"training loss at the modes: {swa_loss[0, 0]:.4f}, {swa_loss[0, -1]:.4f}\n")
    print("| path | max training loss along it | min training accuracy along it |")
    print("|---|---|---|")
    print(f"| straight line w0 -> w1 | {line_loss.max():.4f} | {line_acc.min():.4f} |")
    print(f"| SWA curve w0 -> theta_SWA -> w1 | {swa_loss.max():.4f} | {swa_acc.min():.4f} |")
    print(f"| {args.n_curves} SWAG curves, mean | {curve_loss.max(1).mean():.4f} | {curve_acc.min(1).mean():.4f} |")
    print(f"| {args.n_curves} SWAG curves, worst | {curve_loss.max():.4f} | {curve_acc.min():.4f} |")

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    display = LossPlaneDisplay.from_module(swag.points.module, swag.points.flat_vertices().numpy(), X, labels,
                                           resolution=31, margin=0.3, ax=left)
    for th in theta:
        path = display.plane.transform(torch.stack([w0, th, w1]).double().numpy())
        left.plot(path[:, 0], path[:, 1], color="orange", lw=0.6, alpha=0.7)
    left.set_title("plane of w0, w1, theta_SWA; SWAG curves (orange)")
    t = np.linspace(0, 1, n_points)
    for row in curve_loss:
        right.plot(t, row, color="orange", lw=0.6, alpha=0.7)
    right.plot(t, swa_loss[0], color="black", label="SWA curve")
    right.plot(t, line_loss, color="tab:red", ls="--", label="straight line")
    right.set_yscale("log")
    right.set_xlabel("t along the path")
    right.set_ylabel("training loss")
    right.legend()
    right.set_title(f"{args.n_curves} curves sampled from SWAG of theta")
    fig.tight_layout()
    (args.out / "figures").mkdir(parents=True, exist_ok=True)
    path = args.out / "figures" / "swag_curves.png"
    fig.savefig(path, dpi=70)
    print(f"\nwrote {path} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
