"""The budget curve: calibrated NLL and deep-ensemble equivalents against total training epochs.

For each data set and seed, trains once and caches the probabilities of every member:

- a pool of 6 independently trained networks (ESPRO's modes, ``n_vertices=1``): the deep
  ensembles DE(1..6) average the first J;
- for each simplex setting (``CONFIGS``), a simplex grown from each of the pool's first 4
  networks: ESPRO(J) averages the first J simplexes (each the mean of its sampled models).

Each ensemble of J is scored as the mean over every choice of J of the seed's networks (or
simplexes), which smooths each seed's curve. Each ensemble is judged on the test sets after temperature scaling fitted on a validation
split (:func:`sklearn_espro.metrics.calibrated_nll`, scikit-learn's own temperature
scaling), and by its deep-ensemble equivalent (DEE: the size of the deep ensemble, of the
same seed, with the same calibrated NLL on the same test set). Differences are paired by
seed, with 95% t-intervals; a claim holds only when its interval excludes zero.

MNIST-1D: 4,000 training series (the package's), 2,000 fresh validation series, 10,000
fresh test series clean and 10,000 at each shift severity (``datasets.py``). Digits: its
training part less a fifth for validation; its test part (540 images) and shifted copies
(too few for small effects: no generated test set exists for it).

    python benchmarks/budget.py --data mnist1d-cnn --seeds 5       # trains what is missing
    python benchmarks/budget.py --data mnist1d-cnn --report-only   # tables from the cache
    python benchmarks/budget.py --data mnist1d-cnn --configs v4x3 v4x3-h5   # some settings only

Resumable: every (data set, seed, setting) is cached in ``--out`` as it finishes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

import datasets
from sklearn_espro import MLP, ConvNet1d, ESPROClassifier, ResNet1d
from sklearn_espro.augment import SeriesAugmentation

ROOT = Path(__file__).resolve().parent.parent

# name: (pool, ESPROClassifier arguments of the simplexes). A pool is how its networks train.
POOLS = {"plain": {}, "aug": {"augment": SeriesAugmentation(max_shift=4, noise=0.05)}}
CONFIGS = {
    "v4x3": ("plain", dict(n_vertices=4, vertex_epochs=3)),  # the defaults: 30% extra epochs
    "v4x6": ("plain", dict(n_vertices=4, vertex_epochs=6)),  # 60%
    "v4x10": ("plain", dict(n_vertices=4, vertex_epochs=10)),  # 100%
    "v4x3-h5": ("plain", dict(n_vertices=4, vertex_epochs=3, n_train_samples=5)),
    "v4x10-h5": ("plain", dict(n_vertices=4, vertex_epochs=10, n_train_samples=5)),
    "v2x9": ("plain", dict(n_vertices=2, vertex_epochs=9)),  # 30% in one vertex
    "v4x3-lr0.2": ("plain", dict(n_vertices=4, vertex_epochs=3, vertex_lr=0.2)),
    "aug-v4x3": ("aug", dict(n_vertices=4, vertex_epochs=3)),
    "aug-v2x9": ("aug", dict(n_vertices=2, vertex_epochs=9)),
    "aug-v4x3-lr0.2": ("aug", dict(n_vertices=4, vertex_epochs=3, vertex_lr=0.2)),
    "aug-v4x3-h5": ("aug", dict(n_vertices=4, vertex_epochs=3, n_train_samples=5)),
    "aug-v4x10": ("aug", dict(n_vertices=4, vertex_epochs=10)),
    # for the ResNet regime's 60-epoch modes: 30% in one vertex, and a four times higher vertex rate
    "v2x18": ("plain", dict(n_vertices=2, vertex_epochs=18)),
    "v4x6-lr0.2": ("plain", dict(n_vertices=4, vertex_epochs=6, vertex_lr=0.2)),
    # beyond the paper: each vertex also trained to disagree with its mode on mixed-up inputs
    # (an experimental field of VertexTraining, not an estimator parameter)
    "div0.03-v4x3": ("plain", dict(n_vertices=4, vertex_epochs=3, diversity=0.03)),
    "div0.3-v4x3": ("plain", dict(n_vertices=4, vertex_epochs=3, diversity=0.3)),
    "noise0.01-v4x3": ("plain", dict(n_vertices=4, vertex_epochs=3, diversity=0.01, off_inputs="noise")),
    "noise0.1-v4x3": ("plain", dict(n_vertices=4, vertex_epochs=3, diversity=0.1, off_inputs="noise")),
    "div0.01-v4x3": ("plain", dict(n_vertices=4, vertex_epochs=3, diversity=0.01)),
}
EXPERIMENTAL = ("diversity", "off_inputs")  # VertexTraining fields that no estimator parameter sets


@contextmanager
def vertex_fields(**fields):
    """Fit with these VertexTraining fields (experimental levers) set in every vertex's training."""
    import sklearn_espro._base as base

    original = base.training_settings

    def patched(*args, **kwargs):
        mode, vertex = original(*args, **kwargs)
        return mode, replace(vertex, **fields)

    base.training_settings = patched
    try:
        yield
    finally:
        base.training_settings = original


def mnist1d_sets() -> dict:
    """Training set, validation set and test sets {condition: (X, y)} of at least 10,000 series."""
    from mnist1d.data import make_dataset

    def fresh(seed, n, severity=0):
        args = datasets._mnist1d_args(seed=seed, severity=severity)
        args.num_samples = n  # the package splits them; both parts are kept
        d = make_dataset(args)
        X = np.concatenate([d["x"], d["x_test"]]).astype(np.float32)
        return X, np.concatenate([d["y"], d["y_test"]]).astype(np.int64)

    train = datasets.mnist1d(shift=False)
    tests = {"clean": fresh(8, 10000)}
    for s in datasets.SEVERITIES:
        tests[f"shift{s}"] = fresh(2000 + s, 10000, severity=s)
    return {"train": (train.X, train.y), "val": fresh(7, 2000), "tests": tests}


def digits_sets() -> dict:
    data = datasets.digits()
    cut = int(0.8 * len(data.X))
    tests = {"clean": (data.X_test, data.y_test)}
    for s in datasets.SEVERITIES:  # the three shift kinds pooled at each severity
        parts = [data.shifted[(k, s)] for k in ("rotation", "noise", "blur")]
        tests[f"shift{s}"] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return {"train": (data.X[:cut], data.y[:cut]), "val": (data.X[cut:], data.y[cut:]), "tests": tests}


def resnet_sets() -> dict:
    """The larger regime: 20,000 training series, the same validation and test sets as the CNN's."""
    sets = mnist1d_sets()
    train = datasets.mnist1d(shift=False, n_train=20000)
    return {**sets, "train": (train.X, train.y)}


@dataclass(frozen=True)
class Setting:
    """A data set and network, and the shape of its budget curve."""

    sets: Callable[[], dict]
    module: type
    pool: int = 6  # networks trained per seed: DE(1..pool)
    grown: int = 4  # simplexes grown from the pool's first networks: ESPRO(1..grown)
    mode_epochs: int = 30


SETTINGS = {
    "mnist1d-cnn": Setting(mnist1d_sets, ConvNet1d),
    "digits-mlp": Setting(digits_sets, MLP),
    # closer to the paper's regime: five times the data, a residual network with BatchNorm,
    # modes of 60 epochs; hours on one CPU core, so fewer networks per seed
    "mnist1d-resnet": Setting(resnet_sets, ResNet1d, pool=4, grown=2, mode_epochs=60),
}


def _member_probas(clf: ESPROClassifier, sets: dict) -> dict[str, np.ndarray]:
    """{set name: (n_members, n_rows, n_classes) float32}: each member's (simplex's) mean probabilities."""
    out = {}
    members = clf.members_
    try:
        for name, (X, _) in [("val", sets["val"]), *sets["tests"].items()]:
            rows = []
            for m in members:
                clf.members_ = [m]
                rows.append(clf.predict_proba(X).astype(np.float32))
            out[name] = np.stack(rows)
    finally:
        clf.members_ = members
    return out


def train_seed(name: str, seed: int, sets: dict, configs: list[str], out: Path, device: str) -> None:
    """Train what the cache lacks for one seed: the pools, then each simplex setting."""
    setting = SETTINGS[name]
    X, y = sets["train"]
    folder = out / name / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    pools = {}
    for pool in dict.fromkeys(CONFIGS[c][0] for c in ["v4x3", *configs]):
        path, nets = folder / f"pool-{pool}.npz", folder / f"pool-{pool}.pt"
        if path.exists() and nets.exists():
            pools[pool] = torch.load(nets, weights_only=False)
            continue
        start = time.perf_counter()
        de = ESPROClassifier(setting.module, n_modes=setting.pool, n_vertices=1, max_epochs=setting.mode_epochs, random_state=seed,
                             device=device, **POOLS[pool]).fit(X, y)
        pools[pool] = [s.vertex_module(0) for s in de.simplexes_]
        torch.save(pools[pool], nets)
        np.savez_compressed(path, **_member_probas(de, sets))
        print(f"{name} seed {seed} pool {pool}: {time.perf_counter() - start:.0f} s", flush=True)
    for config in configs:
        path = folder / f"{config}.npz"
        if path.exists():
            continue
        pool, params = CONFIGS[config]
        params = dict(params)
        fields = {k: params.pop(k) for k in EXPERIMENTAL if k in params}
        start = time.perf_counter()
        with vertex_fields(**fields):
            clf = ESPROClassifier(setting.module, modes=pools[pool][:setting.grown], n_modes=setting.grown,
                                  max_epochs=setting.mode_epochs,
                                  random_state=seed, device=device, **POOLS[pool], **params).fit(X, y)
        np.savez_compressed(path, **_member_probas(clf, sets))
        print(f"{name} seed {seed} {config}: {time.perf_counter() - start:.0f} s", flush=True)


def extra_epochs(config: str) -> int:
    params = CONFIGS[config][1]
    return (params["n_vertices"] - 1) * params["vertex_epochs"]


def main() -> None:
    from report_budget import report, summary, validation_choice

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", default=["mnist1d-cnn"], choices=list(SETTINGS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "budget")
    parser.add_argument("--report-only", action="store_true", help="tables from the cache, training nothing")
    parser.add_argument("--validation-choice", action="store_true",
                        help="only what the validation series would choose among --configs, from the cache")
    args = parser.parse_args()
    for name in args.data:
        sets = SETTINGS[name].sets()
        if args.validation_choice:
            print(validation_choice(name, sets, args.configs, args.out, args.seeds))
            continue
        if not args.report_only:
            for seed in range(args.seeds):
                train_seed(name, seed, sets, args.configs, args.out, args.device)
        print(summary(name, sets, args.configs, args.out, args.seeds))
        print(report(name, sets, args.configs, args.out, args.seeds))


if __name__ == "__main__":
    main()
