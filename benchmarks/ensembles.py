"""ESPRO against deep ensembles: equal members, equal training epochs, and dataset shift.

For each data set and seed:

- a pool of independently trained networks, each a skorch ``NeuralNetClassifier`` with
  the same recipe as ESPRO's modes (SGD, momentum 0.9, weight decay 5e-4, cosine schedule,
  30 epochs): the deep ensemble of J members averages the first J (J = 1 is the single
  model);
- ``ESPROClassifier(n_modes=3, n_vertices=3)`` trained from scratch;
- ESPRO grown from the deep ensemble's own members (``modes=``), at several
  ``n_vertices``; its first J simplexes make the J-member ESPRO ensemble.

Raw metrics only: the budget curve judged after temperature scaling, with deep-ensemble
equivalents and paired intervals on 10,000-series test sets (issue 22), is ``budget.py``'s,
which caches every network so that settings can be added without retraining the pool.

Every model is scored (accuracy, NLL, ECE with 15 bins, Brier) on the clean test set and
on each shifted test set (see ``datasets.py`` for what each severity is). Outputs: every
run as JSON and CSV in ``--out``, markdown tables printed and written into
``docs/results.md``, and PNG plots (each metric against members, against total training
epochs and against shift severity) in ``docs/figures/``.

    python benchmarks/ensembles.py --quick           # MNIST-1D and digits MLP, 2 seeds
    python benchmarks/ensembles.py                   # the four small offline data sets, 5 seeds
    python benchmarks/ensembles.py --data mnist1d-resnet --device cuda   # the larger regime
    python benchmarks/ensembles.py --data cifar10 --data-dir ~/data   # GPU users
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from skorch import NeuralNetClassifier
from skorch.callbacks import LRScheduler
from torch import nn

import datasets
from sklearn_espro import MLP, ConvNet1d, ConvNet2d, ESPROClassifier, ResNet1d
from sklearn_espro.metrics import uncertainty_metrics

ROOT = Path(__file__).resolve().parent.parent
MAX_MEMBERS = 5
_DEFAULTS = ESPROClassifier().get_params()
# shared by deep-ensemble members and ESPRO modes: the library's defaults (30 epochs, lr 0.2, batch 64)
RESNET_TRAIN = 20000
RECIPE = {k: _DEFAULTS[k] for k in ("max_epochs", "lr", "batch_size")}
DEVICE = "cpu"  # --device
WEIGHT_DECAY = 5e-4  # ESPROClassifier's default for SGD: deep-ensemble members train with it too


class VGGSmall(nn.Module):
    """A VGG-style network for 32 x 32 images (CIFAR-10): three double-conv blocks."""

    def __init__(self, n_features_in: int, n_classes: int):
        super().__init__()
        layers, width = [], n_features_in
        for size in (64, 128, 256):
            layers += [nn.Conv2d(width, size, 3, padding=1), nn.BatchNorm2d(size), nn.ReLU(),
                       nn.Conv2d(size, size, 3, padding=1), nn.BatchNorm2d(size), nn.ReLU(), nn.MaxPool2d(2)]
            width = size
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(width * 16, n_classes))

    def forward(self, x):
        return self.net(x)


SETTINGS = {  # name: (loader, module, module arguments, training recipe)
    "mnist1d-cnn": (datasets.mnist1d, ConvNet1d, {}, RECIPE),
    "digits-mlp": (datasets.digits, MLP, {}, RECIPE),
    "digits-cnn": (lambda: datasets.digits(images=True), ConvNet2d, {}, RECIPE),
    "spirals-mlp": (datasets.spirals, MLP, {"hidden_sizes": (64, 64)}, dict(max_epochs=100, lr=0.05, batch_size=32)),
    # closer to the paper's regime: five times the data, a deeper network, modes of many
    # epochs, so that a vertex of 3 epochs costs a tenth of a mode (its epoch about twice a mode's)
    "mnist1d-resnet": (lambda: datasets.mnist1d(n_train=RESNET_TRAIN), ResNet1d, {}, {**RECIPE, "max_epochs": 60}),
}


ON_REQUEST = ("mnist1d-resnet",)  # hours on a CPU: only with --data (meant for --device cuda)


def deep_ensemble_member(module_cls, kwargs, recipe, data, seed: int) -> tuple[NeuralNetClassifier, float]:
    """One member trained as a user would with skorch; returns the net and its seconds."""
    torch.manual_seed(seed)
    net = NeuralNetClassifier(
        module_cls, module__n_features_in=data.X.shape[1], module__n_classes=int(data.y.max()) + 1,
        **{f"module__{k}": v for k, v in kwargs.items()}, criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.SGD, optimizer__momentum=0.9, optimizer__weight_decay=WEIGHT_DECAY, train_split=None,
        verbose=0, device=DEVICE,
        callbacks=[LRScheduler("CosineAnnealingLR", T_max=recipe["max_epochs"])],
        iterator_train__shuffle=True, **recipe,
    )
    start = time.perf_counter()
    net.fit(data.X, data.y)
    return net, time.perf_counter() - start


def first_simplexes(clf: ESPROClassifier, n: int) -> ESPROClassifier:
    """The fitted estimator restricted to its first ``n`` simplexes (an n-member ESPRO)."""
    part = copy.copy(clf)
    part.members_ = clf.members_[:n]
    return part


def score_sets(proba_fn, data) -> list[dict]:
    rows = [{"shift": "clean", "severity": 0, **uncertainty_metrics(data.y_test, proba_fn(data.X_test))}]
    for (kind, severity), (X, y) in data.shifted.items():
        rows.append({"shift": kind, "severity": severity, **uncertainty_metrics(y, proba_fn(X))})
    return rows


def run_seed(name: str, seed: int, data, n_vertices_list: list[int], vertex_epochs: int) -> list[dict]:
    _, module_cls, kwargs, recipe = SETTINGS[name]
    epochs = recipe["max_epochs"]
    budget = max(n_vertices_list) - 1
    pool_size = math.ceil(MAX_MEMBERS * (1 + budget * vertex_epochs / epochs))
    pool = [deep_ensemble_member(module_cls, kwargs, recipe, data, 1000 * seed + i) for i in range(pool_size)]
    rows = []

    def add(method, n_members, n_vertices, epochs, seconds, proba_fn):
        for r in score_sets(proba_fn, data):
            rows.append({"data": name, "seed": seed, "method": method, "n_members": n_members,
                         "n_vertices": n_vertices, "epochs": epochs, "fit_seconds": seconds, **r})

    for j in range(1, pool_size + 1):
        nets = [net for net, _ in pool[:j]]
        add("deep ensemble", j, 1, j * epochs, sum(s for _, s in pool[:j]),
            lambda X, nets=nets: np.mean([n.predict_proba(X) for n in nets], axis=0))
    common = dict(module=module_cls, vertex_epochs=vertex_epochs, random_state=seed, device=DEVICE, **recipe,
                  **{f"module__{k}": v for k, v in kwargs.items()})
    for k in n_vertices_list:
        start = time.perf_counter()
        grown = ESPROClassifier(modes=[net for net, _ in pool[:MAX_MEMBERS]], n_vertices=k, **common).fit(data.X, data.y)
        per_simplex = (time.perf_counter() - start) / MAX_MEMBERS
        for j in range(1, MAX_MEMBERS + 1):
            add(f"ESPRO from DE members (n_vertices={k})", j, k, j * (epochs + (k - 1) * vertex_epochs),
                sum(s for _, s in pool[:j]) + j * per_simplex, first_simplexes(grown, j).predict_proba)
    start = time.perf_counter()
    scratch = ESPROClassifier(n_modes=3, n_vertices=3, **common).fit(data.X, data.y)
    add("ESPRO (n_vertices=3)", 3, 3, 3 * (epochs + 2 * vertex_epochs), time.perf_counter() - start,
        scratch.predict_proba)
    return rows


# -- summaries ------------------------------------------------------------------------
METRICS = ("accuracy", "nll", "ece", "brier")


def _mean_std(rows: list[dict], key: str) -> tuple[float, float]:
    """Mean and std over seeds of ``key``, first averaged over shift kinds within a seed."""
    by_seed: dict[int, list[float]] = {}
    for r in rows:
        by_seed.setdefault(r["seed"], []).append(r[key])
    per_seed = [np.mean(v) for v in by_seed.values()]
    return float(np.mean(per_seed)), float(np.std(per_seed))


def _select(rows, **where):
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


def _line(rows, method, n_members, keys_clean=METRICS) -> str:
    cells = []
    for key in keys_clean:
        m, s = _mean_std(_select(rows, method=method, n_members=n_members, severity=0), key)
        cells.append(f"{m:.4f} ± {s:.4f}")
    for sev in datasets.SEVERITIES:
        sel = _select(rows, method=method, n_members=n_members, severity=sev)
        cells.append(f"{_mean_std(sel, 'nll')[0]:.4f}" if sel else "-")
    sel = _select(rows, method=method, n_members=n_members, severity=5)
    cells.append(f"{_mean_std(sel, 'ece')[0]:.4f}" if sel else "-")
    return f"| {method}, J={n_members} | " + " | ".join(cells) + " |"


def tables(rows: list[dict]) -> str:
    out = []
    head = ("| method | accuracy | NLL | ECE | Brier | NLL s1 | NLL s2 | NLL s3 | NLL s4 | NLL s5 | ECE s5 |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")
    for name in dict.fromkeys(r["data"] for r in rows):
        sel = _select(rows, data=name)
        seeds = sorted({r["seed"] for r in sel})
        out.append(f"### {name} (seeds {', '.join(map(str, seeds))}; clean test set ± std over seeds; "
                   "NLL under shift averaged over shift kinds)\n")
        out.append("Equal number of members (J = 3):\n\n" + head)
        methods = [m for m in dict.fromkeys(r["method"] for r in sel)]
        for method in methods:
            if _select(sel, method=method, n_members=3):
                out.append(_line(sel, method, 3))
        espro_epochs = _select(sel, method="ESPRO (n_vertices=3)")[0]["epochs"]
        matched = round(espro_epochs / _select(sel, method="deep ensemble", n_members=1)[0]["epochs"])
        out.append(f"\nEqual training epochs ({espro_epochs} epochs: ESPRO J=3, n_vertices=3, against the deep "
                   f"ensemble with the {matched} members those epochs buy):\n\n" + head)
        for method, j in [("deep ensemble", matched), ("ESPRO from DE members (n_vertices=3)", 3),
                          ("ESPRO (n_vertices=3)", 3)]:
            if _select(sel, method=method, n_members=j):
                out.append(_line(sel, method, j))
        out.append("")
    return "\n".join(out)


# -- plots ------------------------------------------------------------------------------
def plots(rows: list[dict], folder: Path) -> list[Path]:
    """For each data set: each metric against members, against epochs, against severity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in dict.fromkeys(r["data"] for r in rows):
        sel = _select(rows, data=name)
        methods = [m for m in dict.fromkeys(r["method"] for r in sel)]
        axes_wanted = ("n_members", "epochs", "severity") if any(r["severity"] for r in sel) else ("n_members", "epochs")
        for axis in axes_wanted:
            fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
            for method in methods:
                if axis == "severity":
                    picked = [r for r in sel if r["method"] == method and r["n_members"] == 3]
                else:
                    picked = [r for r in sel if r["method"] == method and r["severity"] == 0]
                xs = sorted({r[axis] for r in picked})
                if len(xs) < 2 and axis != "epochs":
                    continue
                for ax, key in zip(axes, METRICS):
                    means = [_mean_std([r for r in picked if r[axis] == x], key) for x in xs]
                    ax.errorbar(xs, [m for m, _ in means], yerr=[s for _, s in means], marker="o", ms=3,
                                capsize=2, label=method)
            for ax, key in zip(axes, METRICS):
                ax.set_xlabel({"n_members": "ensemble members J", "epochs": "total training epochs",
                               "severity": "shift severity (J = 3)"}[axis])
                ax.set_title(key)
                ax.grid(alpha=0.3)
            axes[0].legend(fontsize=7)
            fig.suptitle(f"{name}: mean ± std over seeds")
            fig.tight_layout()
            path = folder / f"ensembles_{name}_{axis}.png"
            fig.savefig(path, dpi=80)
            plt.close(fig)
            written.append(path)
    return written


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_results(markdown: str, command: str) -> None:
    """Put the tables between markers in docs/results.md (replacing an earlier run's)."""
    path = ROOT / "docs" / "results.md"
    start, end = "<!-- ensembles:start -->", "<!-- ensembles:end -->"
    text = path.read_text() if path.exists() else "# Measured results\n"
    block = f"{start}\n## ESPRO against deep ensembles, under shift\n\n`{command}`\n\n{markdown}\n{end}"
    if start in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="MNIST-1D and digits MLP, 2 seeds")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--data", nargs="*", default=None, choices=[*SETTINGS, "cifar10"])
    parser.add_argument("--data-dir", type=Path, help="folder holding cifar-10-batches-py")
    parser.add_argument("--n-vertices", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--vertex-epochs", type=int, default=ESPROClassifier().vertex_epochs)
    parser.add_argument("--max-epochs", type=int, default=None, help="override each data set's epochs per network")
    parser.add_argument("--device", default="cpu", help="cpu or cuda, for every network")
    parser.add_argument("--resnet-train", type=int, default=20000,
                        help="training series of mnist1d-resnet (test series: a quarter as many)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/results.md and docs/figures")
    parser.add_argument("--report-only", action="store_true",
                        help="redo tables and plots from the rows saved in --out, training nothing")
    args = parser.parse_args()
    global DEVICE, RESNET_TRAIN
    DEVICE, RESNET_TRAIN = args.device, args.resnet_train  # read by run_seed and the mnist1d-resnet loader
    names = args.data or (["mnist1d-cnn", "digits-mlp"] if args.quick else [n for n in SETTINGS if n not in ON_REQUEST])
    if "cifar10" in names:
        if args.data_dir is None:
            parser.error("--data cifar10 needs --data-dir")
        SETTINGS["cifar10"] = (lambda: datasets.cifar10(args.data_dir), VGGSmall, {},
                               dict(max_epochs=100, lr=0.05, batch_size=128))  # the paper's VGG recipe, kept
    if args.max_epochs is not None:
        for key, (loader, module, kwargs, recipe) in SETTINGS.items():
            SETTINGS[key] = (loader, module, kwargs, {**recipe, "max_epochs": args.max_epochs})
    seeds = range(2 if args.quick else args.seeds)
    rows = json.loads((args.out / "ensembles.json").read_text()) if args.report_only else []
    for name in [] if args.report_only else names:
        data = SETTINGS[name][0]()
        for seed in seeds:
            start = time.perf_counter()
            rows += run_seed(name, seed, data, args.n_vertices, args.vertex_epochs)
            print(f"{name} seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
    rows = [{k: round(v, 6) if isinstance(v, float) else v for k, v in r.items()} for r in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ensembles.json").write_text(json.dumps(rows, indent=1))
    write_csv(rows, args.out / "ensembles.csv")
    markdown = tables(rows)
    print("\n" + markdown)
    if not args.no_docs:
        quick = args.quick or len({r["seed"] for r in rows}) < 5
        command = "python benchmarks/ensembles.py" + (" --quick" if quick else "")
        write_results(markdown, command)
        write_csv(rows, ROOT / "docs" / "data" / "ensembles.csv")
        for path in plots(rows, ROOT / "docs" / "figures"):
            print("wrote", path.relative_to(ROOT))


if __name__ == "__main__":
    main()
