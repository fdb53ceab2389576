"""What ESPRO's training and prediction cost against plain PyTorch, as ratios measured in one run.

Through the public API, per network and batch size, times interleaved and repeated
(medians of ratios of neighbouring measurements, so that a shared machine's drift cancels):

- **vertex epoch / plain epoch**: ``ESPROClassifier(modes=[mode], n_vertices=2)``; an
  epoch is the difference between fits with ``vertex_epochs=3`` and ``1``, over 2 (so the
  validation, BatchNorm recomputation and checks of a fit are not counted);
- **mode epoch / plain epoch**: ``ESPROClassifier(n_vertices=1)`` with ``max_epochs`` 3
  against 1 (skorch's loop);
- **predict_proba / J x M plain forwards**: J = 3 simplexes x M = 5 models, against the
  same 15 models as ordinary modules, each a loop over batches of the batch size.

The plain epoch is what a careful user writes: the data on the device, a shuffled index
per epoch, forward, backward and an SGD step (momentum 0.9, weight decay 5e-4) per batch.
Networks: the MNIST-1D CNN (``ConvNet1d`` on MNIST-1D), and on CIFAR-shaped synthetic
input (3 x 32 x 32, 10 classes) a BatchNorm VGG-style CNN (``VGGStyle`` below) and
ResNet-18 (torchvision's when it imports, else the same architecture defined here).

``--steps`` adds single steps: plain, the library's vertex step at ``n_train_samples``
1 (one sampled model, a plain forward) and 5 (five chunks under ``vmap``), and the
reference code's step (five full passes).

    python benchmarks/speed.py                               # all networks, batch 128 and 512
    python benchmarks/speed.py --networks mnist1d-cnn --steps
    python benchmarks/speed.py --devices cuda --n-images 8192  # on a GPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from sklearn_espro import ConvNet1d, ESPROClassifier, Simplex
from sklearn_espro._core.batchnorm import batch_statistics
from sklearn_espro._core.training import init_vertex_state, sample_params, train_step

J, M = 3, 5


class VGGStyle(nn.Module):
    """A BatchNorm VGG-style CNN for 32 x 32 images: conv-BatchNorm-ReLU-max-pool blocks
    of 32, 64 and 128 channels, then a linear head (narrow enough to time on a CPU)."""

    def __init__(self, n_features_in: int, n_classes: int, widths=(32, 64, 128)):
        super().__init__()
        layers, width = [], n_features_in
        for size in widths:
            layers += [nn.Conv2d(width, size, 3, padding=1), nn.BatchNorm2d(size), nn.ReLU(), nn.MaxPool2d(2)]
            width = size
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(width * (32 // 2 ** len(widths)) ** 2, n_classes))

    def forward(self, x):
        return self.net(x)


class _BasicBlock(nn.Module):
    def __init__(self, width_in: int, width: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width_in, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.down = None if stride == 1 and width_in == width else nn.Sequential(
            nn.Conv2d(width_in, width, 1, stride, bias=False), nn.BatchNorm2d(width))

    def forward(self, x):
        out = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu()))
        return (out + (x if self.down is None else self.down(x))).relu()


def _resnet18_layers(n_features_in: int, n_classes: int) -> nn.Sequential:
    """torchvision's ``resnet18(num_classes=...)`` layer for layer (7x7 stem, max pooling,
    four stages of two basic blocks), for machines where torchvision does not import."""
    layers = [nn.Conv2d(n_features_in, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    width = 64
    for i, size in enumerate((64, 128, 256, 512)):
        layers += [_BasicBlock(width, size, 1 if i == 0 else 2), _BasicBlock(size, size, 1)]
        width = size
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, n_classes))


class ResNet18(nn.Module):
    """ResNet-18: torchvision's when it imports (and matches this torch), else the same layers."""

    def __init__(self, n_features_in: int, n_classes: int):
        super().__init__()
        try:
            import torchvision

            self.net = torchvision.models.resnet18(num_classes=n_classes)
        except Exception:  # not installed, or built for another torch
            self.net = _resnet18_layers(n_features_in, n_classes)

    def forward(self, x):
        return self.net(x)


def load(network: str, n_images: int):
    """Training data and the module class of a network."""
    if network == "mnist1d-cnn":
        from mnist1d.data import get_dataset_args, make_dataset

        data = make_dataset(get_dataset_args())
        return data["x"].astype(np.float32), data["y"].astype(np.int64), ConvNet1d
    rng = np.random.RandomState(0)
    X = rng.randn(n_images, 3, 32, 32).astype(np.float32)
    y = rng.randint(10, size=n_images).astype(np.int64)
    return X, y, {"vgg": VGGStyle, "resnet18": ResNet18}[network]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def seconds(fn, device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def plain_epoch(module: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
    """One epoch of the loop a careful user writes (data already on the device)."""
    opt = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    module.train()
    for idx in torch.randperm(len(X), device=X.device).split(batch_size):
        if len(idx) < 2:
            continue
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(module(X[idx]), y[idx]).backward()
        opt.step()


def epochs(model_cls, X, y, batch_size: int, repeats: int, device: str) -> dict[str, list[float]]:
    """Per repeat: a plain epoch's seconds and the vertex and mode epochs' seconds."""
    common = dict(module=model_cls, batch_size=batch_size, device=device, random_state=0, lr=0.01)
    mode = ESPROClassifier(n_modes=1, n_vertices=1, max_epochs=1, **common).fit(X, y).simplexes_[0].vertex_module(0)
    X_t, y_t = torch.as_tensor(X, device=device), torch.as_tensor(y, device=device)
    plain_module = model_cls(X.shape[1], 10).to(device)
    fits = {
        "vertex": lambda n: ESPROClassifier(modes=[mode], n_vertices=2, vertex_epochs=n, **common).fit(X, y),
        "mode": lambda n: ESPROClassifier(n_modes=1, n_vertices=1, max_epochs=n, **common).fit(X, y),
    }
    plain_epoch(plain_module, X_t, y_t, batch_size)  # warm-up
    for fit in fits.values():
        fit(1)
    out = {"plain": [], "vertex": [], "mode": []}
    for _ in range(repeats):
        out["plain"].append(seconds(lambda: plain_epoch(plain_module, X_t, y_t, batch_size), device))
        for name, fit in fits.items():
            out[name].append((seconds(lambda: fit(3), device) - seconds(lambda: fit(1), device)) / 2)
    return out


def prediction(model_cls, X, y, batch_size: int, repeats: int, device: str) -> dict[str, list[float]]:
    """predict_proba over J x M sampled models against J x M plain forwards of the same models."""
    clf = ESPROClassifier(model_cls, n_modes=J, n_vertices=3, n_samples=M, max_epochs=1, vertex_epochs=1, lr=0.01,
                          batch_size=batch_size, predict_batch_size=batch_size, random_state=0, device=device).fit(X, y)
    models = [m.to(device) for member in clf.members_ for m in member.models()]
    X_t = torch.as_tensor(X, device=device)

    @torch.no_grad()
    def plain():
        for m in models:
            for xb in X_t.split(batch_size):
                m(xb).softmax(-1).cpu()  # predict_proba returns CPU numpy too

    out = {"predict_proba": [], "plain forwards": []}
    clf.predict_proba(X[:batch_size]), plain()  # warm-up
    for _ in range(repeats):
        out["predict_proba"].append(seconds(lambda: clf.predict_proba(X), device))
        out["plain forwards"].append(seconds(plain, device))
    return out


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


def steps(module: nn.Module, X, y, batch_size: int, repeats: int, device: str) -> dict[str, list[float]]:
    """Seconds of single steps of each kind on the same minibatches, interleaved."""
    module = module.to(device)
    X_t, y_t = torch.as_tensor(X[:batch_size], device=device), torch.as_tensor(y[:batch_size], device=device)
    opt = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9)
    simplex = Simplex.from_module(module)
    simplex = simplex.add_vertex({k: v + 0.01 * torch.randn_like(v) for k, v in simplex.vertex(0).items()})

    def state(h):
        return init_vertex_state(simplex, volume_reg=0.0, lr=0.01, n_train_samples=h, optimizer=torch.optim.SGD,
                                 optimizer_kwargs={"momentum": 0.9}, criterion=nn.CrossEntropyLoss(),
                                 generator=torch.Generator(device=device).manual_seed(0))

    states = [state(1), state(5), state(5)]

    def plain_step():
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(module(X_t), y_t).backward()
        opt.step()

    kinds = {"plain": plain_step, "vertex, H=1 (plain forward)": lambda: train_step(states[0], X_t, y_t),
             "vertex, H=5 (vmap)": lambda: train_step(states[1], X_t, y_t),
             "reference, H=5 full passes": lambda: reference_step(states[2], X_t, y_t)}
    out = {k: [] for k in kinds}
    with batch_statistics(module):
        for fn in kinds.values():
            fn()
        for _ in range(repeats):
            for name, fn in kinds.items():
                out[name].append(seconds(fn, device))
    return out


def ratio(times: list[float], baseline: list[float]) -> float:
    """Median over repeats of a time over the baseline's time measured next to it."""
    return statistics.median(t / b for t, b in zip(times, baseline))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", nargs="+", default=["mnist1d-cnn", "vgg", "resnet18"],
                        choices=["mnist1d-cnn", "vgg", "resnet18"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--repeats", type=int, default=5, help="epoch timings per kind (prediction: twice as many)")
    parser.add_argument("--n-images", type=int, default=1024, help="synthetic 3 x 32 x 32 training images")
    parser.add_argument("--steps", action="store_true", help="also time single training steps")
    parser.add_argument("--step-repeats", type=int, default=20)
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/speed.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    # fits of one epoch at lr 0.01 are for timing: that they learned nothing is expected
    warnings.filterwarnings("ignore", message="The training loss of the mode", category=RuntimeWarning)
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    report = []
    for device in devices:
        card = torch.cuda.get_device_name(device) if device.startswith("cuda") else f"{torch.get_num_threads()} threads"
        print(f"device {device} ({card}), torch {torch.__version__}; {args.repeats} interleaved repeats; "
              "ratios are medians of neighbouring pairs\n")
        print("| network | samples | batch | plain epoch s | vertex epoch / plain | mode epoch / plain "
              "| predict_proba / 15 plain forwards |\n|---|---|---|---|---|---|---|")
        for network in args.networks:
            X, y, model_cls = load(network, args.n_images)
            for batch_size in args.batch_sizes:
                times = epochs(model_cls, X, y, batch_size, args.repeats, device)
                pred = prediction(model_cls, X, y, batch_size, 2 * args.repeats, device)
                row = {"device": device, "card": card, "network": network, "n_samples": len(X),
                       "batch_size": batch_size, "epochs": times, "prediction": pred,
                       "vertex_ratio": ratio(times["vertex"], times["plain"]),
                       "mode_ratio": ratio(times["mode"], times["plain"]),
                       "predict_ratio": ratio(pred["predict_proba"], pred["plain forwards"])}
                if args.steps:
                    step_times = steps(model_cls(X.shape[1], 10), X, y, batch_size, args.step_repeats, device)
                    row["step_ratios"] = {k: ratio(v, step_times["plain"]) for k, v in step_times.items()}
                report.append(row)
                print(f"| {network} | {len(X)} | {batch_size} | {statistics.median(times['plain']):.3f} "
                      f"| {row['vertex_ratio']:.2f} | {row['mode_ratio']:.2f} | {row['predict_ratio']:.2f} |", flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(report, indent=1))  # after every row: a long run keeps what it measured
        for row in report:
            if "step_ratios" in row and row["device"] == device:
                print(f"\nsteps, {row['network']}, batch {row['batch_size']}: " +
                      ", ".join(f"{k} {v:.2f}" for k, v in row["step_ratios"].items()))
        print()


if __name__ == "__main__":
    main()
