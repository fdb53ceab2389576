"""Cost of a simplex training step and of ensemble prediction, as ratios measured in one run.

On one module and one data set (MNIST-1D with the 1-D CNN by default, or digits with
the MLP), times, interleaved and repeated, and reports medians:

- a plain training step (forward, backward, SGD step of one network on a minibatch);
- a simplex step with H = 5 and H = 1 (``sklearn_espro.training.train_step``: the
  minibatch split into H chunks, one sampled model each, one vectorised forward);
- the reference code's step: H full forward/backward passes, one per sampled model;
- ``ESPROClassifier.predict_proba`` over J x M sampled models, against J x M plain
  forward passes of the same models materialised as ordinary modules.

    python benchmarks/speed.py                      # MNIST-1D CNN, batch 128 and 256
    python benchmarks/speed.py --data digits --batch-sizes 64 128
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.func import functional_call

from sklearn_espro import MLP, ConvNet1d, ESPROClassifier, LossPlane
from sklearn_espro.batchnorm import batch_statistics, batchnorm_buffer_names
from sklearn_espro.simplex import Simplex
from sklearn_espro.training import init_vertex_state, sample_params, train_step


def load(name: str):
    if name == "mnist1d":
        from mnist1d.data import get_dataset_args, make_dataset

        data = make_dataset(get_dataset_args())
        return data["x"].astype(np.float32), data["y"].astype(np.int64), ConvNet1d
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32), y.astype(np.int64), MLP


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_time(fn, repeats: int, device: str = "cpu") -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory_mb(fn, device: str = "cpu") -> float:
    """Peak of the memory that ``fn`` allocates beyond what exists when it starts.

    CUDA: the allocator's peak statistics. CPU: replays the allocation and free events of
    torch's profiler in time order and takes the maximum of their running sum (tensors
    only; no Python objects).
    """
    from torch.profiler import ProfilerActivity, profile

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    current = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return peak / 2**20


def reference_step(state, xb, yb):
    """The reference implementation's step: H full passes, one per sampled model."""
    state.optimizer.zero_grad(set_to_none=True)
    params = sample_params(state, state.n_train_samples)
    loss = sum(
        state.criterion(functional_call(state.module, ({k: v[h] for k, v in params.items()}, state.buffers), (xb,)), yb)
        for h in range(state.n_train_samples)
    ) / state.n_train_samples
    loss.backward()
    state.optimizer.step()


def training_steps(module: nn.Module, X, y, batch_size: int, repeats: int, device: str = "cpu"):
    """Seconds of each kind of step on the same minibatches (one entry per repeat), and
    each kind's peak memory in MiB."""
    module = module.to(device)
    X_t, y_t = torch.as_tensor(X, device=device), torch.as_tensor(y, device=device)
    batches = [(X_t[i : i + batch_size], y_t[i : i + batch_size]) for i in range(0, len(X) - batch_size, batch_size)]
    opt = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    simplex = Simplex.from_module(module)
    simplex = simplex.add_vertex({k: v + 0.01 * torch.randn_like(v) for k, v in simplex.vertex(0).items()})

    def state(h):
        return init_vertex_state(
            simplex, volume_reg=0.05, lr=0.01, n_train_samples=h, optimizer=torch.optim.SGD,
            optimizer_kwargs={"momentum": 0.9}, criterion=criterion,
            generator=torch.Generator(device=device).manual_seed(0),
        )

    states = {"simplex H=5": state(5), "simplex H=1": state(1), "reference H=5 (H full passes)": state(5)}

    def plain_step(xb, yb):
        opt.zero_grad(set_to_none=True)
        criterion(module(xb), yb).backward()
        opt.step()

    kinds = {
        "plain": plain_step,
        "simplex H=5": lambda xb, yb: train_step(states["simplex H=5"], xb, yb),
        "simplex H=1": lambda xb, yb: train_step(states["simplex H=1"], xb, yb),
        "reference H=5 (H full passes)": lambda xb, yb: reference_step(states["reference H=5 (H full passes)"], xb, yb),
    }
    results = {k: [] for k in kinds}
    with batch_statistics(module):
        for _ in range(2):  # warm-up
            for fn in kinds.values():
                fn(*batches[0])
        memory = {name: peak_memory_mb(lambda: fn(*batches[0]), device) for name, fn in kinds.items()}
        for r in range(repeats):  # interleaved, so that machine noise hits every kind alike
            for name, fn in kinds.items():
                xb, yb = batches[r % len(batches)]
                results[name].append(median_time(lambda: fn(xb, yb), 1, device))
    return results, memory


N_MODES, N_SAMPLES = 3, 5


def prediction(model_cls, X, y, batch_size: int, repeats: int, device: str = "cpu") -> dict[str, list[float]]:
    """predict_proba over J x M sampled models against J x M plain forwards of the same models."""
    clf = ESPROClassifier(model_cls, n_modes=N_MODES, n_vertices=3, n_samples=N_SAMPLES, max_epochs=1,
                          vertex_epochs=1, batch_size=batch_size, random_state=0, device=device).fit(X[:512], y[:512])
    models = [s.to_module(t, {k: v[i] for k, v in b.items()}).eval().to(device)
              for s, c, b in zip(clf.simplexes_, clf.sample_coords_, clf.sample_buffers_) for i, t in enumerate(c)]
    X_t = torch.as_tensor(X, device=device)

    @torch.no_grad()
    def plain():
        for m in models:
            for start in range(0, len(X_t), batch_size):
                m(X_t[start : start + batch_size]).softmax(-1).cpu()  # predict_proba returns CPU numpy too

    out = {"predict_proba (J x M sampled)": [], "J x M plain forwards": []}
    clf.predict_proba(X[:batch_size]), plain()
    out["peak MiB"] = [peak_memory_mb(lambda: clf.predict_proba(X), device), peak_memory_mb(plain, device)]
    for _ in range(repeats):
        out["predict_proba (J x M sampled)"].append(median_time(lambda: clf.predict_proba(X), 1, device))
        out["J x M plain forwards"].append(median_time(plain, 1, device))
    return out


def loss_plane(model_cls, X, y, batch_size: int, repeats: int, device: str, resolution: int = 11) -> dict:
    """LossPlane.fit over a resolution x resolution grid against as many plain forwards."""
    clf = ESPROClassifier(model_cls, n_modes=1, n_vertices=3, max_epochs=1, vertex_epochs=1, batch_size=batch_size,
                          random_state=0, device=device).fit(X[:512], y[:512])
    plane = LossPlane(clf, resolution=resolution, batch_size=batch_size, device=device)
    simplex = clf.simplexes_[0]
    module = simplex.to_module(torch.ones(3) / 3).eval().to(device)
    X_t = torch.as_tensor(X, device=device)

    @torch.no_grad()
    def plain():
        for _ in range(resolution**2):
            for start in range(0, len(X_t), batch_size):
                module(X_t[start : start + batch_size])

    out = {"LossPlane.fit": [], "plain forwards": []}
    for _ in range(repeats):
        out["LossPlane.fit"].append(median_time(lambda: plane.fit(X, y), 1, device))
        out["plain forwards"].append(median_time(plain, 1, device))
    out["batchnorm"] = bool(batchnorm_buffer_names(simplex.module))
    return out


def paired_ratio(times: list[float], baseline: list[float]) -> float:
    """Median over repeats of the time over the baseline's time measured next to it.

    On a shared machine the speed drifts by tens of percent within a minute; a ratio of
    neighbouring measurements cancels most of that drift.
    """
    return statistics.median(t / b for t, b in zip(times, baseline))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=["mnist1d", "digits"], default="mnist1d")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--predict-samples", type=int, default=1000, help="samples scored in each prediction timing")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/speed.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    X, y, model_cls = load(args.data)
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    report = []
    for device, batch_size in [(d, b) for d in devices for b in args.batch_sizes]:
        card = torch.cuda.get_device_name(device) if device.startswith("cuda") else f"{torch.get_num_threads()} threads"
        print(f"{args.data}, {model_cls.__name__}, device {device} ({card}), torch {torch.__version__}; "
              f"{args.repeats} interleaved repeats, median times, ratios as medians of neighbouring pairs")
        module = model_cls(X.shape[1], int(y.max()) + 1)
        steps, memory = training_steps(module, X, y, batch_size, args.repeats, device)
        pred = prediction(model_cls, X[: args.predict_samples], y, batch_size, max(args.repeats // 4, 5), device)
        ratios = {name: paired_ratio(t, steps["plain"]) for name, t in steps.items()}
        pred_ratio = paired_ratio(pred["predict_proba (J x M sampled)"], pred["J x M plain forwards"])
        plane = loss_plane(model_cls, X[: args.predict_samples], y[: args.predict_samples], batch_size, 3, device)
        plane_ratio = paired_ratio(plane["LossPlane.fit"], plane["plain forwards"])
        report.append({"device": device, "card": card, "batch_size": batch_size, "steps": steps,
                       "step_ratios": ratios, "peak_mib": memory, "prediction": pred, "prediction_ratio": pred_ratio,
                       "loss_plane": plane, "loss_plane_ratio": plane_ratio})
        print(f"batch size {batch_size}")
        print("| step | ms | ratio to plain step | peak MiB |\n|---|---|---|---|")
        for name, seconds in steps.items():
            print(f"| {name} | {statistics.median(seconds) * 1e3:.2f} | {ratios[name]:.2f} | {memory[name]:.1f} |")
        n_pred, n_models = min(args.predict_samples, len(X)), N_MODES * N_SAMPLES
        print(f"\npredict_proba over J x M = {n_models} sampled models on {n_pred} samples: "
              f"{statistics.median(pred['predict_proba (J x M sampled)']) * 1e3:.1f} ms; {n_models} plain forwards: "
              f"{statistics.median(pred['J x M plain forwards']) * 1e3:.1f} ms; ratio {pred_ratio:.2f}; peak MiB "
              f"{pred['peak MiB'][0]:.1f} against {pred['peak MiB'][1]:.1f}")
        extra = " (plus one pass per grid batch to recompute BatchNorm statistics)" if plane["batchnorm"] else ""
        print(f"LossPlane.fit, 11 x 11 grid on {n_pred} samples: {statistics.median(plane['LossPlane.fit']) * 1e3:.0f} ms; "
              f"121 plain forwards: {statistics.median(plane['plain forwards']) * 1e3:.0f} ms; ratio {plane_ratio:.2f}{extra}\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
