"""Section 4.2 in numbers: a mode-connecting complex of the shape of the paper's Fig. 4b.

Seven MLP modes on digits (``ESPROClassifier(n_modes=7, n_vertices=1)``) are joined by
nine connecting points in twelve simplexes: three groups of three points, each group
joining four modes (the paper's Fig. 4a shape three times over, overlapping in modes 0, 2,
3, 4 and 5; the paper does not list Fig. 4b's simplexes, only their counts). For every
simplex the script reports its log-volume and the training loss and accuracy of 25 models
drawn uniformly inside it, against the modes'; then the test accuracy and NLL of 35 models
drawn from the whole complex against the deep ensemble of the seven modes.

    python benchmarks/complexes.py            # about a minute on 2 CPU cores
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import datasets
from sklearn_espro import ESPROClassifier, connect_modes, flat_parameters, weights_loss
from sklearn_espro.metrics import uncertainty_metrics

FIG_4B = ([(m, "c0", "c1", "c2") for m in (0, 1, 2, 3)] + [(m, "c3", "c4", "c5") for m in (2, 3, 4, 5)]
          + [(m, "c6", "c7", "c8") for m in (4, 5, 6, 0)])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-members", type=int, default=25)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    data = datasets.digits(shift=False)
    # version 0.2's mode rate, as in the tests: at lr=0.2 the modes' training loss is a tenth of this
    ensemble = ESPROClassifier(n_modes=7, n_vertices=1, max_epochs=20, lr=0.05, batch_size=50,
                               module__hidden_sizes=(32,), random_state=args.seed).fit(data.X, data.y)
    modes = [s.vertex_module(0) for s in ensemble.simplexes_]
    flat = torch.as_tensor(np.stack([flat_parameters(m) for m in modes]))
    mode_loss, mode_accuracy = weights_loss(modes[0], flat, data.X, data.y)
    cx = connect_modes(modes, data.X, data.y, simplexes=FIG_4B, batch_size=50, random_state=args.seed)
    print(f"digits MLP (32 hidden, {flat.shape[1]} parameters); 7 modes: training loss {mode_loss.mean():.4f} "
          f"(max {mode_loss.max():.4f}), accuracy {mode_accuracy.mean():.4f}; complex of {cx.n_vertices} vertices in "
          f"{len(cx.simplexes)} simplexes, log total volume {cx.log_total_volume():.2f}\n")
    print("| simplex (modes 0-6, connectors 7-15) | log-volume | members' training loss mean / max "
          "| / modes' mean loss | members' accuracy mean / min |")
    print("|---|---|---|---|---|")
    generator = torch.Generator().manual_seed(args.seed)
    ratios = []
    for s, log_volume in zip(cx.simplexes, cx.log_volumes()):
        t = -torch.rand(args.n_members, len(s), generator=generator, dtype=torch.float64).log()
        coords = torch.zeros(args.n_members, cx.n_vertices, dtype=torch.float64)
        coords[:, list(s)] = t / t.sum(1, keepdim=True)
        loss, accuracy = weights_loss(cx.points.module, coords @ cx.points.flat_vertices().double(), data.X, data.y)
        ratios.append(loss.mean() / mode_loss.mean())
        print(f"| {s} | {float(log_volume):.2f} | {loss.mean():.4f} / {loss.max():.4f} | {ratios[-1]:.2f} | "
              f"{accuracy.mean():.4f} / {accuracy.min():.4f} |")
    print(f"\nmembers' mean loss over the modes': {min(ratios):.2f} to {max(ratios):.2f} across the 12 simplexes")
    complex_proba = cx.predict_proba(data.X_test, n_samples=35, random_state=args.seed)
    rows = {"deep ensemble of the 7 modes": ensemble.predict_proba(data.X_test),
            "35 models drawn from the complex": complex_proba}
    print("\n| test set | accuracy | NLL | ECE |\n|---|---|---|---|")
    for name, proba in rows.items():
        m = uncertainty_metrics(data.y_test, proba, labels=ensemble.classes_)
        print(f"| {name} | {m['accuracy']:.4f} | {m['nll']:.4f} | {m['ece']:.4f} |")
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
