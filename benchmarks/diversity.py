"""Does a simplex pay? Diversity and gain of one simplex over its mode, against a second network.

On MNIST-1D's validation split (the last fifth of the training series; the test set is
never read), for each seed and each mode recipe (weight decay 0 or 5e-4):

1. train two modes (``ESPROClassifier(n_vertices=1)``: SGD, momentum 0.9, cosine
   schedule over ``--mode-epochs``); a second independent network's gain is
   ``NLL(one mode) - NLL(average of the two)`` (DE(2) against DE(1));
2. from each mode, grow a simplex with each vertex setting of the grid (through
   ``modes=``, so only vertices train), 4 vertices by default at ``--vertex-epochs``
   each (3 x 3 = 9 epochs: 30% of a 30-epoch mode);
3. score with :func:`sklearn_espro.metrics.simplex_diversity` on the clean validation
   series and on a shifted set (series generated anew with the noise and shear of
   severity 3, seed 2003, not the benchmark's test shifts).

The table gives, per setting: the simplex's NLL gain over its mode as a fraction of the
second network's gain (``gain / DE2``: 1 means one simplex is worth a second network),
the gains in NLL and ECE, clean and shifted, the members' disagreement with their mode
and each other, and the members' training-loss increase over the mode.

    python benchmarks/diversity.py                  # 3 seeds, the grid below
    python benchmarks/diversity.py --seeds 5 --grid volume
    python benchmarks/diversity.py --grid rate --weight-decays 5e-4
    python benchmarks/diversity.py --test --seeds 5 --weight-decays 5e-4 --set vertex_lr=0.2 volume_reg=0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

import datasets
from sklearn_espro import ConvNet1d, ESPROClassifier
from sklearn_espro.metrics import member_probabilities, simplex_diversity, uncertainty_metrics

GRIDS = {
    "lr": [dict(vertex_lr=lr, vertex_schedule=schedule)
           for lr in (0.01, 0.05, 0.1, 0.2) for schedule in ("cosine", "constant")],
    "volume": [dict(vertex_lr=lr, volume_reg=reg) for lr in (0.2, 0.3, 0.5) for reg in (0.0, 0.02, 0.2)],
    "recipe": [dict(vertex_lr=lr, volume_reg=reg) for lr in (0.15, 0.2) for reg in (0.0, 0.002, 0.01)],
    "rate": [dict(vertex_lr=lr) for lr in (0.02, 0.05, 0.1, 0.2)],  # for version 0.3's modes (lr 0.2, batch 64)
    "start": [dict(vertex_lr=lr, **start) for lr in (0.05, 0.1, 0.2)
              for start in ({}, dict(init_noise=0.1), dict(init_step=0.02), dict(init_step=0.05), dict(init_step=0.1),
                            dict(init_step=0.2))],
}
# vertex starts the estimator does not expose: set on its VertexTraining (an exploration hook)
START_OPTIONS = ("init_noise", "init_step")


def espro(setting, **params):
    """ESPROClassifier with ``setting``'s parameters; its start options reach ``grow_vertex``."""
    start = {k: setting[k] for k in START_OPTIONS if k in setting}
    clf = ESPROClassifier(**params, **{k: v for k, v in setting.items() if k not in start})
    if start:
        training = clf._training

        def with_start(n_classes, criterion_kwargs):
            mode, vertex = training(n_classes, criterion_kwargs)
            return mode, dataclasses.replace(vertex, **start)

        clf._training = with_start
    return clf


def load(test: bool):
    """MNIST-1D's training series split 80/20 and a shifted validation set (series generated
    anew, seed 2003, severity 3); with ``test``, all training series, the test set and its
    severity-3 shift from ``datasets.mnist1d``."""
    from mnist1d.data import make_dataset

    data = datasets.mnist1d(shift=test)
    if test:
        return (data.X, data.y, data.X_test, data.y_test, *data.shifted[("noise+shear", 3)])
    cut = int(0.8 * len(data.X))
    shifted = make_dataset(datasets._mnist1d_args(seed=2003, severity=3))
    return (data.X[:cut], data.y[:cut], data.X[cut:], data.y[cut:],
            shifted["x"][:1000].astype(np.float32), shifted["y"][:1000].astype(np.int64))


def run(seeds, grid, mode_epochs, vertex_epochs, n_vertices, weight_decays, test=False):
    X, y, X_val, y_val, X_shift, y_shift = load(test)
    rows = []
    for seed in seeds:
        for wd in weight_decays:
            common = dict(module=ConvNet1d, random_state=seed, device="cpu", optimizer__weight_decay=wd)
            start = time.perf_counter()
            de = ESPROClassifier(n_modes=2, n_vertices=1, max_epochs=mode_epochs, **common).fit(X, y)
            mode_seconds = (time.perf_counter() - start) / 2
            modes = [s.vertex_module(0) for s in de.simplexes_]
            de_gain = {}
            for split, (Xs, ys) in {"clean": (X_val, y_val), "shift": (X_shift, y_shift)}.items():
                _, single = member_probabilities(de, Xs)
                one = np.mean([uncertainty_metrics(ys, p)["nll"] for p in single])
                de_gain[split] = one - uncertainty_metrics(ys, de.predict_proba(Xs))["nll"]
            for setting in grid:
                for j, mode in enumerate(modes):
                    start = time.perf_counter()
                    clf = espro(setting, modes=[mode], n_vertices=n_vertices, vertex_epochs=vertex_epochs,
                                **{**common, "random_state": 100 * seed + j}).fit(X, y)
                    seconds = time.perf_counter() - start
                    clean = simplex_diversity(clf, X_val, y_val)[0]
                    shift = simplex_diversity(clf, X_shift, y_shift)[0]
                    train = simplex_diversity(clf, X, y)[0]
                    row = {"seed": seed, "mode": j, "mode_weight_decay": wd, **setting,
                           "vertex_seconds_over_mode": seconds / mode_seconds,
                           "log_volume": float(clf.log_volumes_[0]),
                           "train_nll_ratio": train["nll_simplex"] / train["nll_mode"],
                           "de2_gain_clean": de_gain["clean"], "de2_gain_shift": de_gain["shift"]}
                    for split, d in (("clean", clean), ("shift", shift)):
                        row.update({f"{k}_{split}": v for k, v in d.items() if k != "simplex"})
                        row[f"gain_ratio_{split}"] = d["gain_nll"] / de_gain[split]
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    return rows


COLUMNS = {  # key in the rows: header in the table
    "gain_ratio_clean": "gain / DE2, clean", "gain_ratio_shift": "gain / DE2, shift",
    "gain_nll_clean": "NLL gain, clean", "gain_ece_clean": "ECE gain, clean", "gain_nll_shift": "NLL gain, shift",
    "disagreement_with_mode_clean": "disagreement with mode",
    "disagreement_between_members_clean": "disagreement between members",
    "train_nll_ratio": "members' train NLL / mode's", "nll_simplex_clean": "simplex NLL, clean",
}


def table(rows, keys):
    cols = list(COLUMNS)
    out = ["| mode weight decay | " + " | ".join(keys) + " | " + " | ".join(COLUMNS.values()) + " |",
           "|---" * (len(keys) + len(cols) + 1) + "|"]
    groups = {}
    for r in rows:
        groups.setdefault((r["mode_weight_decay"], *(r.get(k) for k in keys)), []).append(r)
    for key, group in groups.items():
        cells = [f"{np.mean([r[c] for r in group]):.3f} ± {np.std([r[c] for r in group]):.3f}" for c in cols]
        out.append("| " + " | ".join(str(k) for k in key) + " | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="lr")
    parser.add_argument("--mode-epochs", type=int, default=30)
    parser.add_argument("--vertex-epochs", type=int, default=3)
    parser.add_argument("--n-vertices", type=int, default=4)
    parser.add_argument("--weight-decays", type=float, nargs="*", default=[0.0, 5e-4])
    parser.add_argument("--set", nargs="*", metavar="PARAM=VALUE",
                        help="one vertex setting instead of a grid, e.g. vertex_lr=0.2 volume_reg=0")
    parser.add_argument("--test", action="store_true",
                        help="score on the test set (for the chosen setting only; choose on validation)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/diversity.json"))
    args = parser.parse_args()
    grid = [{k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}] if args.set else GRIDS[args.grid]
    rows = run(range(args.seeds), grid, args.mode_epochs, args.vertex_epochs, args.n_vertices, args.weight_decays,
               args.test)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1))
    keys = sorted({k for s in grid for k in s})
    print(f"\nMNIST-1D {'test set' if args.test else 'validation split'}, ConvNet1d, {args.n_vertices} vertices x {args.vertex_epochs} epochs "
          f"per simplex, modes of {args.mode_epochs} epochs; mean ± std over {args.seeds} seeds x 2 modes")
    print(table(rows, keys))


if __name__ == "__main__":
    main()
