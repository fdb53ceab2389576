"""Dimensionality of the low-loss manifold (Section 4.3, Fig. 5 analogue).

Two MLP modes on digits are connected through k = 1, 2, ... shared points (connect_modes,
one point at a time, Eq. 1 over the whole complex). For each k the script reports the
log-volume of the complex K(S(w0, theta_1..theta_k), S(w1, theta_1..theta_k)), the height
of the newest point above the hull of the earlier vertices of its simplex, and the
training loss and accuracy of 25 models sampled from the complex. It stops when the
complex collapses or at ``--max-connectors``, prints the table and writes
``docs/figures/dimensionality.png`` and ``docs/data/dimensionality.csv``.

Collapse. The volume of a k-simplex is ``V_k = V_(k-1) h_k / k``, so with heights near 1
the log-volume falls by ``log k`` per point even when every point adds a full new
direction: the volume alone cannot tell a degenerate point from a short one. The script
therefore calls the complex collapsed at the first k whose newest point is nearly in the
span of the earlier ones (``h_k`` below ``--collapse`` times the largest height of points
2..k-1; point 1's height is half the distance between the modes), or whose sampled members
lose low loss (mean training accuracy more than ``--max-accuracy-drop`` below the modes').
The last k before that is the lower bound on the dimension of the connecting manifold
that SPRO finds (the paper: VGG-16 on CIFAR-10 collapses at k = 11).

    python benchmarks/dimensionality.py          # about a minute on 2 CPU cores
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

import datasets  # noqa: E402
from sklearn_espro import ESPROClassifier, connect_modes, flat_parameters, weights_loss  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def measure(cx, k: int, n_modes: int, X, y, n_members: int, seed: int) -> dict:
    """Log-volume, height of point k and sampled members' training loss of the first k points."""
    sub = cx.first(n_modes + k)
    log_volumes = sub.log_volumes()
    coords = sub.sample_coords(n_members, torch.Generator().manual_seed(seed + k))
    loss, accuracy = weights_loss(sub.points.module, coords @ sub.points.flat_vertices(), X, y)
    return {"k": k, "log_volume": float(log_volumes.logsumexp(0)), "log_volume_simplex": float(log_volumes[0]),
            "loss_mean": float(loss.mean()), "loss_max": float(loss.max()),
            "accuracy_mean": float(accuracy.mean()), "accuracy_min": float(accuracy.min())}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-connectors", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=10, help="epochs per connecting point")
    parser.add_argument("--volume-reg", type=float, default=0.02)
    parser.add_argument("--hidden", type=int, default=64, help="hidden units of the one-layer MLP")
    parser.add_argument("--collapse", type=float, default=0.1)
    parser.add_argument("--max-accuracy-drop", type=float, default=0.02)
    parser.add_argument("--n-members", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    data = datasets.digits(shift=False)
    X, y = data.X, data.y
    clf = ESPROClassifier(n_modes=2, n_vertices=1, max_epochs=30, module__hidden_sizes=(args.hidden,),
                          random_state=args.seed).fit(X, y)
    modes = [s.vertex_module(0) for s in clf.simplexes_]
    flat = torch.as_tensor(np.stack([flat_parameters(m) for m in modes]))
    mode_loss, mode_accuracy = weights_loss(modes[0], flat, X, y)
    # connecting points never move once trained, so one run gives every k
    cx = connect_modes(modes, X, y, n_connectors=args.max_connectors, volume_reg=args.volume_reg,
                       epochs=args.epochs, random_state=args.seed)
    print(f"digits MLP ({args.hidden} hidden, {flat.shape[1]} parameters), {len(X)} training samples; modes: "
          f"training loss {mode_loss.round(4)}, accuracy {mode_accuracy.round(4)}; |w0 - w1| = "
          f"{float((flat[0] - flat[1]).norm()):.2f}; connecting took {time.perf_counter() - start:.0f} s in all\n")
    print("| k | log-volume of the complex | height of point k | members' loss mean / max "
          "| members' accuracy mean / min |")
    print("|---|---|---|---|---|")
    rows, previous, collapsed = [], 0.0, None
    for k in range(1, args.max_connectors + 1):
        row = measure(cx, k, len(modes), X, y, args.n_members, args.seed)
        row["height"] = math.exp(row["log_volume_simplex"] - previous + math.log(k))  # h_k = k V_k / V_(k-1)
        previous = row["log_volume_simplex"]
        rows.append(row)
        print(f"| {k} | {row['log_volume']:.2f} | {row['height']:.3f} | {row['loss_mean']:.4f} / "
              f"{row['loss_max']:.4f} | {row['accuracy_mean']:.4f} / {row['accuracy_min']:.4f} |")
        widest = max((r["height"] for r in rows[1:-1]), default=0.0)
        if row["height"] < args.collapse * widest or row["accuracy_mean"] < mode_accuracy.mean() - args.max_accuracy_drop:
            collapsed = k
            break
    if collapsed is None:
        print(f"\nNo collapse up to k = {args.max_connectors}: every point added a direction at least "
              f"{args.collapse} x the widest earlier one and the members kept their accuracy.")
    else:
        print(f"\nThe complex collapses at k = {collapsed}: the low-loss connecting manifold SPRO finds here "
              f"has at least {collapsed - 1} dimensions.")
    write(rows, args.out, collapsed)
    print(f"wrote {args.out / 'figures' / 'dimensionality.png'} and {args.out / 'data' / 'dimensionality.csv'} "
          f"in {time.perf_counter() - start:.0f} s")


def write(rows: list[dict], out: Path, collapsed: int | None) -> None:
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(parents=True, exist_ok=True)
    with open(out / "data" / "dimensionality.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    k = [r["k"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(k, [r["log_volume"] for r in rows], marker="o")
    axes[0].set_ylabel("log-volume of the complex")
    axes[1].semilogy(k, [r["height"] for r in rows], marker="o")
    axes[1].set_ylabel("height of the newest point")
    axes[2].plot(k, [r["accuracy_mean"] for r in rows], marker="o", label="mean")
    axes[2].plot(k, [r["accuracy_min"] for r in rows], marker="v", label="min")
    axes[2].set_ylabel("sampled members' training accuracy")
    axes[2].legend()
    for ax in axes:
        ax.set_xlabel("connecting points k")
        if collapsed is not None:
            ax.axvline(collapsed, color="tab:red", ls="--", lw=1)
    fig.suptitle("two digits-MLP modes connected through k points")
    fig.tight_layout()
    fig.savefig(out / "figures" / "dimensionality.png", dpi=70)
    plt.close(fig)


if __name__ == "__main__":
    main()
