"""Tables and plots of ``budget.py``'s cached probabilities: calibrated NLL, DEE, paired intervals."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
from scipy import stats

from budget import CONFIGS, ROOT, SETTINGS, extra_epochs
from sklearn_espro.metrics import calibrated_nll, deep_ensemble_equivalent


def _interval(values) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds."""
    v = np.asarray(values, dtype=float)
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def _fmt(values) -> str:
    m, lo, hi = _interval(values)
    return f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def _verdict(values, better_if_negative: bool = True) -> str:
    _, lo, hi = _interval(values)
    if (hi < 0) if better_if_negative else (lo > 0):
        return "better"
    if (lo > 0) if better_if_negative else (hi < 0):
        return "worse"
    return "within noise"


def scores(name: str, sets: dict, configs: list[str], out: Path, seeds: int) -> dict:
    """{(seed, kind, J): {condition: (raw NLL, calibrated NLL)}}, kind "DE:pool" or a config name.

    An ensemble of J of a seed's n networks (or simplexes) is scored as the mean over every
    choice of J of them: a smooth curve in J for each seed, so that DEE is not at the mercy of
    one network's luck.
    """
    POOL, GROWN = SETTINGS[name].pool, SETTINGS[name].grown
    y_val = sets["val"][1]
    result = {}
    for seed in range(seeds):
        folder = out / name / f"seed{seed}"
        wanted = {f"DE:{p}": folder / f"pool-{p}.npz" for p in dict.fromkeys(CONFIGS[c][0] for c in configs)}
        wanted.update({c: folder / f"{c}.npz" for c in configs})
        for kind, path in wanted.items():
            if not path.exists():
                continue
            probs = {k: v.astype(np.float64) for k, v in np.load(path).items()}
            n = POOL if kind.startswith("DE:") else GROWN
            for j in range(1, n + 1):
                row = {}
                for cond, (_, y_test) in sets["tests"].items():
                    judged = [calibrated_nll(y_val, probs["val"][list(m)].mean(0), y_test, probs[cond][list(m)].mean(0))
                              for m in combinations(range(n), j)]
                    row[cond] = (np.mean([c["nll"] for c in judged]), np.mean([c["calibrated_nll"] for c in judged]))
                result[(seed, kind, j)] = row
    return result


def _complete_seeds(s: dict, kinds: list[str]) -> list[int]:
    seeds = sorted({k[0] for k in s})
    return [seed for seed in seeds if all((seed, kind, 1) in s for kind in kinds)]


def _gains(s: dict, de: str, config: str, seeds: list[int], c: str, which: int) -> tuple[np.ndarray, np.ndarray]:
    """Per seed, one simplex's gain over its mode and DE(2)'s over DE(1) (``which``: 0 raw NLL, 1 calibrated)."""
    gain1 = np.array([s[(seed, de, 1)][c][which] - s[(seed, config, 1)][c][which] for seed in seeds])
    gain2 = np.array([s[(seed, de, 1)][c][which] - s[(seed, de, 2)][c][which] for seed in seeds])
    return gain1, gain2


def _dee_margin(s: dict, de: str, config: str, seeds: list[int], c: str, j: int, budget: float,
                pool: int) -> tuple[list[float], int]:
    """Per seed, ESPRO(j)'s DEE minus the networks its epochs buy (DEE beyond DE(pool) counted as pool),
    and how many seeds were beyond."""
    curve = {seed: [s[(seed, de, i)][c][1] for i in range(1, pool + 1)] for seed in seeds}
    dee = [deep_ensemble_equivalent(s[(seed, config, j)][c][1], curve[seed]) for seed in seeds]
    return [min(v, pool) - budget for v in dee], sum(not np.isfinite(v) for v in dee)


def report(name: str, sets: dict, configs: list[str], out: Path, seeds: int) -> str:
    POOL, GROWN, MODE_EPOCHS = SETTINGS[name].pool, SETTINGS[name].grown, SETTINGS[name].mode_epochs
    s = scores(name, sets, configs, out, seeds)
    conds = list(sets["tests"])
    lines = [f"### {name}: calibrated NLL and deep-ensemble equivalents\n"]
    for config in configs:
        pool = CONFIGS[config][0]
        de = f"DE:{pool}"
        done = _complete_seeds(s, [de, config])
        if len(done) < 2:
            continue
        extra = extra_epochs(config)
        lines.append(f"#### {config} ({CONFIGS[config][1]}, pool {pool!r}; {extra} extra epochs per simplex = "
                     f"{100 * extra / MODE_EPOCHS:.0f}% of a mode; seeds {done})\n")
        raw_conds = [c for c in (conds[0], conds[-1])]  # raw NLL beside: clean and the strongest shift
        lines.append("| ensemble | epochs | " + " | ".join(f"cal. NLL {c}" for c in conds) + " | " +
                     " | ".join(f"raw NLL {c}" for c in raw_conds) + " | " +
                     " | ".join(f"DEE {c}" for c in conds) + " |")
        lines.append("|---|---|" + "---|" * (2 * len(conds) + len(raw_conds)))
        de_cal = {(seed, c): [s[(seed, de, j)][c][1] for j in range(1, POOL + 1)] for seed in done for c in conds}
        for kind, n, per in [(de, POOL, MODE_EPOCHS), (config, GROWN, MODE_EPOCHS + extra)]:
            for j in range(1, n + 1):
                cal = [f"{np.mean([s[(seed, kind, j)][c][1] for seed in done]):.4f}" for c in conds]
                cal += [f"{np.mean([s[(seed, kind, j)][c][0] for seed in done]):.4f}" for c in raw_conds]
                dee = []
                for c in conds:
                    v = [deep_ensemble_equivalent(s[(seed, kind, j)][c][1], de_cal[(seed, c)]) for seed in done]
                    dee.append(f"{np.mean(v):.2f}" if np.all(np.isfinite(v)) else f">{POOL}")
                label = f"DE({j})" if kind == de else f"ESPRO({j})"
                lines.append(f"| {label} | {j * per} | " + " | ".join(cal) + " | " + " | ".join(dee) + " |")
        lines.append("")
        # target 1: a J=1 simplex recovers at least half of a second network's calibrated gain
        recover, margin, raw_recover = [], [], []
        for c in conds:
            gain1, gain2 = _gains(s, de, config, done, c, 1)
            raw1, raw2 = _gains(s, de, config, done, c, 0)
            recover.append(f"{gain1.mean() / gain2.mean():.2f}")
            raw_recover.append(f"{raw1.mean() / raw2.mean():.2f}")
            margin.append(f"{_fmt(gain1 - 0.5 * gain2)} ({_verdict(gain1 - 0.5 * gain2, False)})")
        lines.append("J = 1, one simplex against its own mode, as a fraction of a second network's gain "
                     "(ratio of the seed means; the margin is gain - half of DE(2)'s gain, paired, 95% interval; "
                     "the target holds where it is above zero):\n")
        lines.append("| | " + " | ".join(conds) + " |\n|---|" + "---|" * len(conds))
        lines.append("| fraction, calibrated NLL | " + " | ".join(recover) + " |")
        lines.append("| fraction, raw NLL | " + " | ".join(raw_recover) + " |")
        lines.append("| margin over half, calibrated | " + " | ".join(margin) + " |\n")
        # target 2: at equal total epochs, no worse than the deep ensemble (DEE against epochs / mode epochs)
        lines.append("Equal total epochs: DEE minus the networks ESPRO's epochs would buy (epochs / "
                     f"{MODE_EPOCHS}), paired, 95% interval (above zero: ESPRO beats the deep ensemble of its "
                     "epochs):\n")
        lines.append("| ESPRO | epochs | " + " | ".join(conds) + " |\n|---|---|" + "---|" * len(conds))
        for j in range(1, GROWN + 1):
            budget = j * (MODE_EPOCHS + extra) / MODE_EPOCHS
            if budget > POOL:
                continue
            cells = []
            for c in conds:
                d, capped = _dee_margin(s, de, config, done, c, j, budget, POOL)
                note = f"; beyond DE({POOL}) in {capped} seeds, counted as {POOL}: a lower bound" if capped else ""
                cells.append(f"{_fmt(d)} ({_verdict(d, False)}{note})")
            lines.append(f"| J={j} | {j * (MODE_EPOCHS + extra)} | " + " | ".join(cells) + " |")
        lines.append("")
    plot(name, s, configs, conds)
    return "\n".join(lines)


def plot(name: str, s: dict, configs: list[str], conds: list[str]) -> Path | None:
    """Calibrated NLL and DEE against total epochs, clean and at the middle and strongest shifts."""
    POOL, GROWN, MODE_EPOCHS = SETTINGS[name].pool, SETTINGS[name].grown, SETTINGS[name].mode_epochs
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [c for c in ("clean", "shift3", "shift5") if c in conds]
    fig, axes = plt.subplots(2, len(shown), figsize=(5 * len(shown), 7), squeeze=False)
    for kind in ["DE:plain", *configs]:
        de = kind if kind.startswith("DE:") else f"DE:{CONFIGS[kind][0]}"
        seeds = _complete_seeds(s, [kind, de])
        if not seeds:
            continue
        n = POOL if kind.startswith("DE:") else GROWN
        per = MODE_EPOCHS + (0 if kind.startswith("DE:") else extra_epochs(kind))
        xs = [j * per for j in range(1, n + 1)]
        for col, c in enumerate(shown):
            cal = [np.mean([s[(seed, kind, j)][c][1] for seed in seeds]) for j in range(1, n + 1)]
            dee = [np.mean([min(deep_ensemble_equivalent(s[(seed, kind, j)][c][1],
                                                         [s[(seed, de, i)][c][1] for i in range(1, POOL + 1)]), POOL)
                            for seed in seeds]) for j in range(1, n + 1)]
            style = dict(marker="o", ms=3, lw=2 if kind.startswith("DE:") else 1, label=kind)
            axes[0, col].plot(xs, cal, **style)
            axes[1, col].plot(xs, dee, **style)
            axes[0, col].set_title(f"{name}, {c}")
    for col in range(len(shown)):
        axes[0, col].set_ylabel("calibrated NLL")
        axes[1, col].set_ylabel("deep-ensemble equivalent")
        axes[1, col].plot([MODE_EPOCHS, POOL * MODE_EPOCHS], [1, POOL], "k:", lw=0.8, label=f"epochs / {MODE_EPOCHS}")
        for row in range(2):
            axes[row, col].set_xlabel("total training epochs")
            axes[row, col].grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    path = ROOT / "docs" / "figures" / f"budget_{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def summary(name: str, sets: dict, configs: list[str], out: Path, seeds: int) -> str:
    """The two compact tables of docs/results.md: target 1 per setting, and target 2 at J = min(3, grown)."""
    setting = SETTINGS[name]
    s = scores(name, sets, configs, out, seeds)
    conds = list(sets["tests"])
    short = ["clean", *[c.replace("shift", "s") for c in conds[1:]]]
    j = min(3, setting.grown)
    one = ["| setting | extra epochs | fraction of DE(2)'s calibrated gain: " + " / ".join(short) +
           f" | raw NLL: {short[0]} / {short[-1]} | target met at |", "|---|---|---|---|---|"]
    two = [f"| setting | epochs (J = {j}) | " + " | ".join(short) + " |", "|---|---|" + "---|" * len(conds)]
    for config in configs:
        de = f"DE:{CONFIGS[config][0]}"
        done = _complete_seeds(s, [de, config])
        if len(done) < 2:
            continue
        extra = extra_epochs(config)
        fractions, met, raw = [], [], []
        for c in conds:
            gain1, gain2 = _gains(s, de, config, done, c, 1)
            fractions.append(f"{gain1.mean() / gain2.mean():.2f}")
            if _verdict(gain1 - 0.5 * gain2, False) == "better":
                met.append(short[conds.index(c)])
        for c in (conds[0], conds[-1]):
            raw1, raw2 = _gains(s, de, config, done, c, 0)
            raw.append(f"{raw1.mean() / raw2.mean():.2f}")
        one.append(f"| `{config}` | {100 * extra / setting.mode_epochs:.0f}% | {' / '.join(fractions)} | "
                   f"{' / '.join(raw)} | {', '.join(met) or 'nowhere'} |")
        budget = j * (setting.mode_epochs + extra) / setting.mode_epochs
        cells = []
        for c in conds:
            d, capped = _dee_margin(s, de, config, done, c, j, budget, setting.pool)
            cells.append(_fmt(d) + ("*" if capped else ""))
        two.append(f"| `{config}` | {j * (setting.mode_epochs + extra)} | " + " | ".join(cells) + " |")
    return "\n".join(one) + "\n\n" + "\n".join(two) + "\n"


def validation_choice(name: str, sets: dict, configs: list[str], out: Path, seeds: int) -> str:
    """What a user could choose without the test sets: each setting's one-simplex calibrated NLL
    on the (clean) validation series, the temperature cross-fitted on its two halves."""
    y_val = sets["val"][1]
    halves = np.array_split(np.random.RandomState(0).permutation(len(y_val)), 2)
    rows = {}
    for kind in ["DE:plain", *configs]:
        values = []
        for seed in range(seeds):
            folder = out / name / f"seed{seed}"
            path = folder / ("pool-plain.npz" if kind == "DE:plain" else f"{kind}.npz")
            if not path.exists():
                continue
            probs = np.load(path)["val"].astype(np.float64)
            for m in range(SETTINGS[name].grown):  # the simplexes, or the networks they were grown from
                p = probs[m]
                values.append(np.mean([calibrated_nll(y_val[a], p[a], y_val[b], p[b])["calibrated_nll"]
                                       for a, b in (halves, halves[::-1])]))
        if values:
            rows[kind] = (np.mean(values), len(values))
    lines = ["| setting | validation calibrated NLL of one simplex (DE: one of the networks they grew from) | scored |",
             "|---|---|---|"]
    for kind, (value, count) in sorted(rows.items(), key=lambda kv: kv[1][0]):
        lines.append(f"| `{kind}` | {value:.4f} | {count} |")
    return "\n".join(lines) + "\n"
