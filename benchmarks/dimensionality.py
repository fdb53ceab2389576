"""Dimensionality of the low-loss manifold (Section 4.3, Fig. 5 analogue), for two networks and several volume weights.

Two modes are connected through k = 1, 2, ... shared points, one at a time, as
``connect_modes`` trains them: point k joins the complex K(S(w0, theta_1..theta_k),
S(w1, theta_1..theta_k)) and trains on Eq. 1 over it, with one volume weight ``lambda``
for every k. After each point the script measures the log of the complex's total volume,
the height of the newest point and the training loss and accuracy of 25 models drawn from
the complex, and it stops at the collapse (below) or at ``--max-connectors``.

Settings: the digits MLP (one hidden layer of 64 units, 4,810 parameters) and the
MNIST-1D CNN (``ConvNet1d``, BatchNorm statistics recomputed for every drawn model),
each with the volume weights of ``--volume-regs``.

The rule. The volume of a k-simplex is ``V_k = V_(k-1) h_k / k``, ``h_k`` the newest
point's distance to the affine hull of the earlier vertices: the log-volume falls by
``log k`` per point even when every point adds a full new direction, so the volume alone
cannot tell a degenerate point from a short one at this scale (the paper's VGG-16 has
heights far above k, so there the volume itself shows it). The heights carry the signal.
Every point is pushed out of the hull with the same force ``lambda / h`` (the weight does
not change with k), so a point that stays near the hull is held there by the loss: no
low-loss direction is left that is orthogonal to the earlier ones. The complex is called
collapsed at the first k whose newest point has ``h_k`` below ``--collapse`` (0.1) times the
widest height of points 2..k-1 (point 1's height is about half the distance between the
modes, another scale), or whose drawn members lose low loss (mean training accuracy more
than ``--max-accuracy-drop`` below the modes'). The last k before it is the lower bound on
the dimension of the connecting manifold that SPRO finds (the paper: VGG-16 on CIFAR-10
collapses at k = 11).

    python benchmarks/dimensionality.py                      # both settings, 3 weights: about 15 min on 2 cores
    python benchmarks/dimensionality.py --settings digits-mlp --volume-regs 0.02
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import datasets  # noqa: E402
from sklearn_espro import ConvNet1d, ESPROClassifier, SimplicialComplex, flat_parameters, weights_loss  # noqa: E402
from sklearn_espro._core.growing import grow_vertex  # noqa: E402
from sklearn_espro._core.landscape import modes_on_device  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {  # name: (data, module, module arguments)
    "digits-mlp": (lambda: datasets.digits(shift=False), None, {"module__hidden_sizes": (64,)}),
    "mnist1d-cnn": (lambda: datasets.mnist1d(shift=False), ConvNet1d, {}),
}
BATCH_SIZE, LR, N_TRAIN_SAMPLES = 128, 0.1, 5  # connect_modes' defaults


def measure(cx: SimplicialComplex, k: int, X, y, n_members: int, seed: int) -> dict:
    """Log of the total volume, log-volume of the first simplex, and drawn members' training loss and accuracy."""
    log_volumes = cx.log_volumes()
    coords = cx.sample_coords(n_members, torch.Generator().manual_seed(seed + k))
    loss, accuracy = weights_loss(cx.points.module, coords @ cx.points.flat_vertices(), X, y)
    return {"k": k, "log_volume": float(log_volumes.logsumexp(0)), "log_volume_simplex": float(log_volumes[0]),
            "loss_mean": float(loss.mean()), "loss_max": float(loss.max()),
            "accuracy_mean": float(accuracy.mean()), "accuracy_min": float(accuracy.min())}


def connect_until_collapse(modes, X, y, volume_reg: float, mode_accuracy: float, args) -> tuple[list[dict], int | None]:
    """Points trained one at a time (as connect_modes does) and measured after each, up to the collapse."""
    points, X_t, y_t, _, generator = modes_on_device(modes, X, y, "cpu", args.seed, batch_size=BATCH_SIZE)
    faces, rows, previous = [(0,), (1,)], [], 0.0
    for k in range(1, args.max_connectors + 1):
        points, _ = grow_vertex(points, X_t, y_t, epochs=args.epochs, batch_size=BATCH_SIZE, faces=faces,
                                phase=f"connector {k}", volume_reg=volume_reg, lr=LR, n_train_samples=N_TRAIN_SAMPLES,
                                optimizer=torch.optim.SGD, optimizer_kwargs={"momentum": 0.9},
                                criterion=nn.CrossEntropyLoss(), generator=generator)
        faces = [f + (points.n_vertices - 1,) for f in faces]
        row = measure(SimplicialComplex(points, faces), k, X, y, args.n_members, args.seed)
        row["height"] = math.exp(row["log_volume_simplex"] - previous + math.log(k))  # h_k = k V_k / V_(k-1)
        previous = row["log_volume_simplex"]
        rows.append(row)
        widest = max((r["height"] for r in rows[1:-1]), default=0.0)
        if row["height"] < args.collapse * widest or row["accuracy_mean"] < mode_accuracy - args.max_accuracy_drop:
            return rows, k
    return rows, None


def run_setting(name: str, args) -> list[dict]:
    load, module, module_kwargs = SETTINGS[name]
    data = load()
    X, y = data.X, data.y
    kwargs = {"module": module} if module is not None else {}
    clf = ESPROClassifier(n_modes=2, n_vertices=1, max_epochs=30, random_state=args.seed, **kwargs,
                          **module_kwargs).fit(X, y)
    modes = [s.vertex_module(0) for s in clf.simplexes_]
    flat = torch.as_tensor(np.stack([flat_parameters(m) for m in modes]))
    mode_loss, mode_accuracy = weights_loss(modes[0], flat, X, y)
    print(f"\n## {name}: {flat.shape[1]} parameters, {len(X)} training samples; modes' training loss "
          f"{mode_loss.round(4)}, accuracy {mode_accuracy.round(4)}; |w0 - w1| = {float((flat[0] - flat[1]).norm()):.2f}")
    summary = []
    for volume_reg in args.volume_regs:
        start = time.perf_counter()
        rows, collapsed = connect_until_collapse(modes, X, y, volume_reg, float(mode_accuracy.mean()), args)
        for r in rows:
            r.update(setting=name, volume_reg=volume_reg)
        widest = max(rows[1:-1] if len(rows) > 2 else rows, key=lambda r: r["height"])
        before = rows[-2] if collapsed is not None and len(rows) > 1 else rows[-1]
        summary.append({"setting": name, "volume_reg": volume_reg, "collapsed": collapsed, "rows": rows,
                        "widest": widest, "before": before, "seconds": time.perf_counter() - start})
        print(f"\nvolume_reg {volume_reg}: | k | log total volume | height of point k | members' loss mean / max "
              "| members' accuracy mean / min |\n|---|---|---|---|---|")
        for r in rows:
            if r["k"] <= 3 or r["k"] % 10 == 0 or r is rows[-1] or r is widest:
                print(f"| {r['k']} | {r['log_volume']:.2f} | {r['height']:.3f} | {r['loss_mean']:.4f} / "
                      f"{r['loss_max']:.4f} | {r['accuracy_mean']:.4f} / {r['accuracy_min']:.4f} |")
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--volume-regs", nargs="+", type=float, default=[0.01, 0.1, 1.0])
    parser.add_argument("--max-connectors", type=int, default=80)
    parser.add_argument("--epochs", type=int, default=10, help="epochs per connecting point")
    parser.add_argument("--collapse", type=float, default=0.1)
    parser.add_argument("--max-accuracy-drop", type=float, default=0.02)
    parser.add_argument("--n-members", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    summary = [s for name in args.settings for s in run_setting(name, args)]
    print("\n## Collapse by the rule (h_k < {} x the widest height of points 2..k-1, or members' accuracy "
          "{} below the modes')\n".format(args.collapse, args.max_accuracy_drop))
    print("| setting | volume_reg | collapse k | dimensions found (k - 1) | widest height (at k) "
          "| members' accuracy mean before the collapse | seconds |")
    print("|---|---|---|---|---|---|---|")
    for s in summary:
        k = s["collapsed"]
        found = f"{k - 1}" if k is not None else f">= {args.max_connectors} (no collapse)"
        print(f"| {s['setting']} | {s['volume_reg']} | {k if k is not None else '-'} | {found} | "
              f"{s['widest']['height']:.3f} ({s['widest']['k']}) | {s['before']['accuracy_mean']:.4f} | {s['seconds']:.0f} |")
    write(summary, args.out)
    print(f"\nwrote {args.out / 'figures' / 'dimensionality.png'} and {args.out / 'data' / 'dimensionality.csv'} "
          f"in {time.perf_counter() - start:.0f} s")


def write(summary: list[dict], out: Path) -> None:
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(parents=True, exist_ok=True)
    rows = [r for s in summary for r in s["rows"]]
    with open(out / "data" / "dimensionality.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["setting", "volume_reg", *[c for c in rows[0] if c not in
                                                                          ("setting", "volume_reg")]])
        writer.writeheader()
        writer.writerows(rows)
    settings = list(dict.fromkeys(s["setting"] for s in summary))
    fig, axes = plt.subplots(len(settings), 3, figsize=(13, 3.4 * len(settings)), squeeze=False)
    for row_axes, name in zip(axes, settings):
        for s in (s for s in summary if s["setting"] == name):
            k = [r["k"] for r in s["rows"]]
            label = f"lambda {s['volume_reg']}"
            line, = row_axes[0].plot(k, [r["log_volume"] for r in s["rows"]], marker=".", label=label)
            row_axes[1].semilogy(k, [r["height"] for r in s["rows"]], marker=".", color=line.get_color())
            row_axes[2].plot(k, [r["accuracy_mean"] for r in s["rows"]], marker=".", color=line.get_color())
            if s["collapsed"] is not None:
                for ax in row_axes:
                    ax.axvline(s["collapsed"], color=line.get_color(), ls="--", lw=0.8)
        row_axes[0].set_ylabel(f"{name}\nlog total volume")
        row_axes[1].set_ylabel("height of the newest point")
        row_axes[2].set_ylabel("drawn members' training accuracy")
        row_axes[0].legend()
        for ax in row_axes:
            ax.set_xlabel("connecting points k")
    fig.suptitle("two modes connected through k points (dashed: collapse by the rule)")
    fig.tight_layout()
    fig.savefig(out / "figures" / "dimensionality.png", dpi=70)
    plt.close(fig)


if __name__ == "__main__":
    main()
