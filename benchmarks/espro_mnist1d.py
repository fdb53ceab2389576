"""ESPRO against a deep ensemble of the same 1-D CNN on MNIST-1D (generated offline).

For each seed, fits ``ESPROClassifier(ConvNet1d, n_modes=3)`` with the library's defaults
(4 vertices per simplex) and the same estimator with ``n_vertices=1`` (a deep ensemble of
the very same three modes: the mode training draws the same seeds), then prints test
accuracy, NLL, ECE and Brier score (mean and standard deviation over seeds), the NLL gain
of ESPRO over that deep ensemble (paired by seed), and, for ESPRO, the training loss of
the models sampled from each simplex relative to that of the simplex's mode.

    python benchmarks/espro_mnist1d.py            # 5 seeds
    python benchmarks/espro_mnist1d.py --quick    # 2 seeds
    python benchmarks/espro_mnist1d.py --validation  # score on a validation split of the
                                               # training set (for choosing settings)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sklearn_espro import ConvNet1d, ESPROClassifier
from sklearn_espro.metrics import uncertainty_metrics


def load_mnist1d(seed: int = 42, validation: bool = False):
    """MNIST-1D with the package's default settings: 4000 training and 1000 test series."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    data = make_dataset(args)
    X, y = data["x"].astype(np.float32), data["y"].astype(np.int64)
    X_test, y_test = data["x_test"].astype(np.float32), data["y_test"].astype(np.int64)
    if validation:  # hold out the last fifth of the training set; never look at the test set
        cut = int(0.8 * len(X))
        X, y, X_test, y_test = X[:cut], y[:cut], X[cut:], y[cut:]
    return X, y, X_test, y_test


def estimator(vertices: int | None, seed: int, **overrides) -> ESPROClassifier:
    """The library's defaults unless overridden; ``vertices=None`` keeps the default (or an
    ``n_vertices`` override), an int fixes it (``1``: the deep ensemble)."""
    params = dict(n_modes=3, random_state=seed, device="cpu", **overrides)
    if vertices is not None:
        params["n_vertices"] = vertices
    return ESPROClassifier(ConvNet1d, **params)


@torch.no_grad()
def member_loss_ratios(clf: ESPROClassifier, X: np.ndarray, y: np.ndarray) -> tuple[list[list[float]], list[float]]:
    """For each simplex, the training loss of each model kept for prediction over the
    training loss of the simplex's mode; and the modes' training losses."""
    X_t, y_t = torch.as_tensor(X), torch.as_tensor(y)
    ratios, mode_losses = [], []
    for member in clf.members_:
        mode_loss = nn.functional.cross_entropy(member.simplex.vertex_module(0)(X_t), y_t).item()
        mode_losses.append(mode_loss)
        members = member.models()
        ratios.append([nn.functional.cross_entropy(m(X_t), y_t).item() / mode_loss for m in members])
    return ratios, mode_losses


def run(seeds: list[int], validation: bool, overrides: dict) -> list[dict]:
    X, y, X_test, y_test = load_mnist1d(validation=validation)
    rows = []
    for seed in seeds:
        for name, n_vertices in (("deep ensemble (n_vertices=1)", 1), ("ESPRO (defaults)", None)):
            clf = estimator(n_vertices, seed, **overrides)
            start = time.perf_counter()
            clf.fit(X, y)
            seconds = time.perf_counter() - start
            row = {"method": name, "seed": seed, "fit_seconds": seconds,
                   **uncertainty_metrics(y_test, clf.predict_proba(X_test), labels=clf.classes_)}
            if n_vertices is None:
                ratios, mode_losses = member_loss_ratios(clf, X, y)
                row.update(member_loss_ratio_mean=float(np.mean(ratios)),
                           member_loss_ratio_worst_simplex=float(np.max(np.mean(ratios, axis=1))),
                           member_loss_ratio_max=float(np.max(ratios)),
                           mode_train_loss=float(np.mean(mode_losses)), log_volume=float(np.mean(clf.log_volumes_)))
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    keys = ["accuracy", "nll", "ece", "brier", "fit_seconds"]
    lines = ["| method | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for method in dict.fromkeys(r["method"] for r in rows):
        group = [r for r in rows if r["method"] == method]
        cells = [f"{np.mean([r[k] for r in group]):.4f} ± {np.std([r[k] for r in group]):.4f}" for k in keys]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    espro = [r for r in rows if "member_loss_ratio_max" in r]
    de = {r["seed"]: r for r in rows if r["method"].startswith("deep ensemble")}
    gains = [de[r["seed"]]["nll"] - r["nll"] for r in espro if r["seed"] in de]
    if gains:
        lines.append("")
        lines.append(f"NLL gain of ESPRO over the deep ensemble of its own modes (paired by seed): "
                     f"{np.mean(gains):.4f} ± {np.std(gains):.4f} ({100 * np.mean(gains) / np.mean([d['nll'] for d in de.values()]):.1f}%)")
    if espro:
        lines.append("")
        lines.append(
            "ESPRO sampled members' training loss / their mode's: mean "
            f"{np.mean([r['member_loss_ratio_mean'] for r in espro]):.3f}, worst simplex's mean "
            f"{np.max([r['member_loss_ratio_worst_simplex'] for r in espro]):.3f}, worst single member "
            f"{np.max([r['member_loss_ratio_max'] for r in espro]):.3f} (modes' training loss "
            f"{np.mean([r['mode_train_loss'] for r in espro]):.4f}); simplex log-volume "
            f"{np.mean([r['log_volume'] for r in espro]):.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 seeds")
    parser.add_argument("--validation", action="store_true", help="score on a validation split, not the test set")
    parser.add_argument("--set", nargs="*", default=[], metavar="PARAM=VALUE",
                        help="override estimator parameters, e.g. volume_reg=0.1 vertex_epochs=5")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/espro_mnist1d.json"))
    args = parser.parse_args()
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    rows = run(list(range(2 if args.quick else args.seeds)), args.validation, overrides)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"overrides": overrides, "validation": args.validation, "rows": rows}, indent=1))
    split = "validation split" if args.validation else "test set"
    print(f"\nMNIST-1D, ConvNet1d, 3 modes, {split}, mean ± std over {len(set(r['seed'] for r in rows))} seeds"
          + (f", overrides {overrides}" if overrides else ""))
    print(table(rows))


if __name__ == "__main__":
    main()
