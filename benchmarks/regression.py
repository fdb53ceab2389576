"""ESPRO for regression: a single network, a deep ensemble and ESPRO, with and without covariate shift.

Data that need no download: scikit-learn's ``load_diabetes`` (442 patients, 10 features)
and ``make_friedman1`` (1,000 samples, 10 features of which 5 matter, noise 1), and
``fetch_california_housing`` when it is cached (``--data-home``; never downloaded). The
covariate shift: the samples are sorted by one feature (diabetes: bmi; Friedman: x0;
California: median income); the networks train on the lower 70% of its range (a random
fifth of that held out as the in-distribution test set, or as the validation set with
``--validation``) and are tested on the upper 30% as well.

Methods (inputs standardised by a ``StandardScaler`` in a pipeline, ``y`` by the
estimator): one network (``n_modes=1, n_vertices=1``), deep ensembles of 3 and of 4
(``n_vertices=1``; four 30-epoch networks cost 120 epochs, ESPRO 3 x 30 + 3 x 3 x 3 = 117),
ESPRO (3 modes, 4 vertices). Scores: RMSE, the Gaussian NLL of the
predictive mean and standard deviation, and the coverage of the central 90% interval
(mean ± 1.645 std). Mean ± std over seeds.

    python benchmarks/regression.py                    # 5 seeds, test sets: about 2 minutes
    python benchmarks/regression.py --validation       # the grid the defaults were chosen on
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings

import numpy as np
from sklearn.datasets import load_diabetes, make_friedman1
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_espro import ESPRORegressor

Z90 = 1.6448536269514722


def datasets(data_home):
    out = {"diabetes": (*load_diabetes(return_X_y=True), 2),
           "friedman1": (*make_friedman1(n_samples=1000, noise=1.0, random_state=0), 0)}
    if data_home is not None:
        from sklearn.datasets import fetch_california_housing

        try:
            X, y = fetch_california_housing(data_home=data_home, download_if_missing=False, return_X_y=True)
            out["california"] = (X, y, 0)
        except OSError:
            print(f"(no cached California housing under {data_home}: skipped)")
    return out


def splits(X, y, feature: int, seed: int, validation: bool):
    """(train, in-distribution test, shifted test) index arrays."""
    order = np.argsort(X[:, feature], kind="stable")
    cut = int(0.7 * len(order))
    inside, shifted = order[:cut], order[cut:]
    rng = np.random.RandomState(seed)
    inside = rng.permutation(inside)
    held = len(inside) // 5
    train, test = inside[held:], inside[:held]
    if validation:  # a fifth of the training part; the test sets are never read
        return train[len(train) // 5:], train[: len(train) // 5], None
    return train, test, shifted


def scores(model, X, y) -> dict:
    mean, std = model.predict(X, return_std=True)
    nll = 0.5 * np.log(2 * np.pi * std ** 2) + 0.5 * ((y - mean) / std) ** 2
    return {"rmse": float(np.sqrt(np.mean((y - mean) ** 2))), "nll": float(np.mean(nll)),
            "cover90": float(np.mean(np.abs(y - mean) <= Z90 * std))}


METHODS = {
    "one network": dict(n_modes=1, n_vertices=1),
    "deep ensemble (3)": dict(n_modes=3, n_vertices=1),
    "deep ensemble (4), about ESPRO's epochs": dict(n_modes=4, n_vertices=1),
    "ESPRO (3 modes, 4 vertices)": dict(n_modes=3, n_vertices=4),
}


def fit(X, y, seed, **params):
    return make_pipeline(StandardScaler(), ESPRORegressor(random_state=seed, **params)).fit(X, y)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--validation", action="store_true")
    parser.add_argument("--data-home", default=None)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", RuntimeWarning)
    start = time.perf_counter()
    data = datasets(args.data_home)
    if args.validation:
        print("| data | lr | vertex_lr | deep ensemble NLL | ESPRO NLL | ESPRO 90% coverage |\n|---|---|---|---|---|---|")
        for name, (X, y, feature) in data.items():
            for lr, vertex_lr in itertools.product((0.02, 0.05, 0.1), (0.005, 0.01, 0.02)):
                rows = {"de": [], "espro": [], "cover": []}
                for seed in range(args.seeds):
                    train, valid, _ = splits(X, y, feature, seed, True)
                    for key, method in (("de", "deep ensemble (3)"), ("espro", "ESPRO (3 modes, 4 vertices)")):
                        try:
                            s = scores(fit(X[train], y[train], seed, lr=lr, vertex_lr=vertex_lr, **METHODS[method]),
                                       X[valid], y[valid])
                        except FloatingPointError:
                            s = {"nll": np.inf, "cover90": np.nan}
                        rows[key].append(s["nll"])
                        if key == "espro":
                            rows["cover"].append(s["cover90"])
                print(f"| {name} | {lr} | {vertex_lr} | {np.mean(rows['de']):.4f} ± {np.std(rows['de']):.4f} | "
                      f"{np.mean(rows['espro']):.4f} ± {np.std(rows['espro']):.4f} | {np.mean(rows['cover']):.3f} |")
        print(f"\n{args.seeds} seeds, validation split; {time.perf_counter() - start:.0f} s")
        return
    for name, (X, y, feature) in data.items():
        print(f"\n### {name} ({len(X)} samples; shift along feature {feature}; y std {y.std():.2f})\n")
        print("| method | RMSE | NLL | 90% coverage | RMSE, shifted | NLL, shifted | 90% coverage, shifted |")
        print("|---|---|---|---|---|---|---|")
        by_method = {}
        for method, params in METHODS.items():
            runs = by_method[method] = []
            for seed in range(args.seeds):
                train, test, shifted = splits(X, y, feature, seed, False)
                model = fit(X[train], y[train], seed, **params)
                runs.append({**scores(model, X[test], y[test]),
                             **{f"{k}_shift": v for k, v in scores(model, X[shifted], y[shifted]).items()}})
            cell = {k: f"{np.mean([r[k] for r in runs]):.4f} ± {np.std([r[k] for r in runs]):.4f}" for k in runs[0]}
            print(f"| {method} | {cell['rmse']} | {cell['nll']} | {cell['cover90']} | {cell['rmse_shift']} | "
                  f"{cell['nll_shift']} | {cell['cover90_shift']} |")
        espro = by_method["ESPRO (3 modes, 4 vertices)"]
        for other in ("deep ensemble (3)", "deep ensemble (4), about ESPRO's epochs"):
            gains = {k: np.array([o[k] - e[k] for o, e in zip(by_method[other], espro)]) for k in ("nll", "nll_shift")}
            wins = int((gains["nll"] > 0).sum())
            print(f"\nNLL gain of ESPRO over {other}, paired by seed: {gains['nll'].mean():.4f} ± "
                  f"{gains['nll'].std():.4f} (ESPRO lower in {wins} of {len(espro)} seeds); shifted "
                  f"{gains['nll_shift'].mean():.4f} ± {gains['nll_shift'].std():.4f}")
    print(f"\n{args.seeds} seeds; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
