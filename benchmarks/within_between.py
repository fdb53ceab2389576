"""Section 5.3 in numbers: how different the members of one simplex are, against members of different simplexes.

For each seed, ESPRO with the defaults (3 modes, 4 vertices, 5 prediction models per
simplex) is fitted on the training split, and on the test split the script measures the
mean disagreement (fraction of test points whose predicted class differs) between pairs of
prediction models drawn from the same simplex, from different simplexes, and between the
modes (:func:`sklearn_espro.metrics.member_disagreement`), with the test error of one mode
for scale. Settings: the two spirals (MLP with two hidden layers of 64 units) and MNIST-1D
(``ConvNet1d``).

    python benchmarks/within_between.py            # 5 seeds, both settings: about 3 min on 2 cores
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import datasets
from sklearn_espro import ConvNet1d, ESPROClassifier
from sklearn_espro.metrics import member_disagreement, member_probabilities

SETTINGS = {  # name: (data, estimator arguments); spirals: the ensembles benchmark's recipe
    "spirals-mlp": (datasets.spirals, dict(module__hidden_sizes=(64, 64), max_epochs=100, lr=0.05, batch_size=32)),
    "mnist1d-cnn": (lambda: datasets.mnist1d(shift=False), dict(module=ConvNet1d)),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print("| setting | within one simplex | between simplexes | between modes | within / between "
          "| one mode's test error |")
    print("|---|---|---|---|---|---|")
    for name in args.settings:
        load, kwargs = SETTINGS[name]
        data = load()
        rows = []
        for seed in range(args.seeds):
            clf = ESPROClassifier(random_state=seed, **kwargs).fit(data.X, data.y)
            out = member_disagreement(clf, data.X_test)
            _, modes = member_probabilities(clf, data.X_test)
            out["mode_error"] = float(np.mean(clf.classes_[modes[0].argmax(1)] != data.y_test))
            out["ratio"] = out["within_simplex"] / out["between_simplexes"]
            rows.append(out)

        def cell(key: str) -> str:
            values = np.array([r[key] for r in rows])
            return f"{values.mean():.4f} ± {values.std():.4f}"

        print(f"| {name} | {cell('within_simplex')} | {cell('between_simplexes')} | {cell('between_modes')} | "
              f"{cell('ratio')} | {cell('mode_error')} |")
    print(f"\n{args.seeds} seeds, test split; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
