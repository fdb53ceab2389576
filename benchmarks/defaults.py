"""ESPROClassifier's defaults against scikit-learn's MLPClassifier, and how its defaults were chosen.

Test mode (the default): the README's quickstart split of digits (``train_test_split(X / 16,
y, random_state=0)``); ``ESPROClassifier()`` with every default and
``MLPClassifier(max_iter=500)``, each with ``random_state`` 0..seeds-1; accuracy, NLL and
fit seconds as mean ± std over seeds.

Validation mode (``--validation``): never looks at that test split. For each seed, the
quickstart training set (or a synthetic set, ``--data``) is split 75/25 anew and each
setting (``--set``, one group of ``PARAM=VALUE`` per setting, separated by ``,``) is scored
on the held-out quarter.

    python benchmarks/defaults.py                      # acceptance of issue 11, item 4
    python benchmarks/defaults.py --validation --set lr=0.05 , lr=0.2 batch_size=64 , lr=0.4
    python benchmarks/defaults.py --validation --data unscaled --set lr=0.2 , lr=0.4
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from sklearn.datasets import load_digits, make_classification
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from sklearn_espro import ESPROClassifier


def quickstart_split():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16, y, random_state=0)


def training_set(name: str):
    """The data a validation run splits: digits' quickstart training part or a synthetic set."""
    if name == "digits":
        X, _, y, _ = quickstart_split()
        return X, y
    if name == "classification":  # standardised, 40 features, 5 classes
        X, y = make_classification(n_samples=3000, n_features=40, n_informative=20, n_classes=5, random_state=0)
        return StandardScaler().fit_transform(X), y
    if name == "unscaled":  # 100 Gaussian features of standard deviation 5, no scaling
        X = np.random.RandomState(0).randn(2000, 100) * 5
        return X, (X[:, :3].sum(1) > 0).astype(int)
    raise ValueError(name)


def score(clf, X_fit, y_fit, X_eval, y_eval) -> dict:
    start = time.perf_counter()
    clf.fit(X_fit, y_fit)
    seconds = time.perf_counter() - start
    proba = clf.predict_proba(X_eval)
    return {"accuracy": float((clf.classes_[proba.argmax(1)] == y_eval).mean()),
            "nll": float(log_loss(y_eval, proba, labels=clf.classes_)), "fit_seconds": seconds}


def summary(name: str, rows: list[dict]) -> str:
    cells = [f"{np.mean([r[k] for r in rows]):.4f} ± {np.std([r[k] for r in rows]):.4f}"
             for k in ("accuracy", "nll", "fit_seconds")]
    return f"| {name} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--validation", action="store_true", help="score settings on validation splits")
    parser.add_argument("--data", default="digits", choices=["digits", "classification", "unscaled"])
    parser.add_argument("--set", nargs="*", default=[], metavar="PARAM=VALUE",
                        help="settings to compare, groups separated by ','")
    args = parser.parse_args()
    groups = [[]]
    for item in args.set:
        if item == ",":
            groups.append([])
        else:
            groups[-1].append(item)
    settings = {" ".join(g) or "defaults": {k: json.loads(v) for k, v in (i.split("=", 1) for i in g)}
                for g in groups}
    print("| model | accuracy | NLL | fit seconds |\n|---|---|---|---|")
    rows = {"MLPClassifier(max_iter=500)": [], **{f"ESPROClassifier({k})": [] for k in settings}}
    for seed in range(args.seeds):
        if args.validation:
            X, y = training_set(args.data)
            X_fit, X_eval, y_fit, y_eval = train_test_split(X, y, test_size=0.25, random_state=100 + seed)
        else:
            X_fit, X_eval, y_fit, y_eval = quickstart_split()
        rows["MLPClassifier(max_iter=500)"].append(
            score(MLPClassifier(max_iter=500, random_state=seed), X_fit, y_fit, X_eval, y_eval))
        for name, params in settings.items():
            clf = ESPROClassifier(random_state=seed, **params)
            rows[f"ESPROClassifier({name})"].append(score(clf, X_fit, y_fit, X_eval, y_eval))
    for name, group in rows.items():
        print(summary(name, group))
    where = f"validation splits of {args.data}" if args.validation else "the README's quickstart test split"
    print(f"\nmean ± std over {args.seeds} seeds, on {where}")


if __name__ == "__main__":
    main()
