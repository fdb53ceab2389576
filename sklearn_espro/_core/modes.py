"""Training a mode: one network trained with skorch (SGD-style, cosine schedule).

:class:`ModeTraining` holds the settings (built once per fit); :func:`train_mode` trains
one network on data kept in memory (on the training device) in skorch's loop, so skorch
callbacks work as in skorch.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import Callback, GradientNormClipping, LRScheduler
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from torch import nn

from .global_state import own_global_rng
from .batchnorm import has_batchnorm
from .growing import EpochCallback, check_finite
from .rows import StreamedRows, as_rows, load_batches, ordered_batches

INTERNAL_CALLBACK_PREFIX = "espro_"  # the names of the callbacks mode training adds to skorch's net
MODE_MONITORS = ("train_loss",)  # what a callback may monitor in a mode's skorch history

__all__ = ["ModeTraining", "mode_monitors", "train_mode"]


def mode_monitors(validation: bool, classifier: bool) -> tuple[str, ...]:
    """What a callback may monitor in a mode's skorch history: ``train_loss``, and with a
    validation split ``valid_loss`` (and ``valid_acc`` for a classifier); each also as ``*_best``."""
    names = MODE_MONITORS + (("valid_loss",) + (("valid_acc",) if classifier else ()) if validation else ())
    return names + tuple(f"{name}_best" for name in names)


@dataclass(frozen=True)
class ModeTraining:
    """How each mode trains, with skorch; built once per fit from the estimator's parameters.

    Parameters
    ----------
    n_classes : int or None
        Classes of a classifier; ``None`` for a regressor (skorch's ``NeuralNetRegressor``).
    max_epochs : int
        Epochs, the length of the cosine learning-rate schedule.
    lr : float
        Starting learning rate.
    batch_size : int
    optimizer : torch.optim.Optimizer subclass
    optimizer_kwargs : dict
    criterion : nn.Module subclass
    criterion_kwargs : dict
    callbacks : tuple of skorch callbacks, default=()
        Extra callbacks; each run deep-copies them.
    max_grad_norm : float, default=None
        Each step's gradient is clipped to this norm (skorch's ``GradientNormClipping``);
        ``None``: never.
    augment : callable, default=None
        Applied to the inputs of every training minibatch, on the training device
        (:mod:`sklearn_espro.augment`).
    valid_batch_size : int, default=None
        Rows per forward pass when held-out rows are scored (``train_mode``'s ``valid``);
        ``None``: ``batch_size``.

    Examples
    --------
    >>> import torch
    >>> ModeTraining(n_classes=2, max_epochs=30, lr=0.2, batch_size=64, optimizer=torch.optim.SGD,
    ...              optimizer_kwargs={}, criterion=torch.nn.CrossEntropyLoss, criterion_kwargs={}).lr
    0.2
    """

    n_classes: int | None
    max_epochs: int
    lr: float
    batch_size: int
    optimizer: type[torch.optim.Optimizer]
    optimizer_kwargs: dict[str, Any]
    criterion: type[nn.Module]
    criterion_kwargs: dict[str, Any]
    callbacks: tuple[Any, ...] = ()
    max_grad_norm: float | None = None
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None
    valid_batch_size: int | None = None


class _Interrupted(Exception):
    """Carries the user's KeyboardInterrupt past skorch, which would end the epoch loop quietly."""


class _StopOnInterrupt:
    """A KeyboardInterrupt no callback raised (Ctrl-C) stops the whole fit; one raised by
    a callback (``EarlyStopping``) still only ends this network's training, as in skorch."""

    def notify(self, method_name, **cb_kwargs):
        try:
            super().notify(method_name, **cb_kwargs)
        except KeyboardInterrupt:
            self.stopped_by_callback_ = True
            raise

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        self.stopped_by_callback_ = False
        try:
            return super().fit_loop(X, y, epochs, **fit_params)
        except KeyboardInterrupt as exc:
            if self.stopped_by_callback_:
                raise
            raise _Interrupted from exc


class ModeNet(_StopOnInterrupt, NeuralNetClassifier):
    """skorch's classifier, stopped by Ctrl-C (see ``_StopOnInterrupt``)."""


class ModeRegressorNet(_StopOnInterrupt, NeuralNetRegressor):
    """skorch's regressor, stopped by Ctrl-C (see ``_StopOnInterrupt``)."""


class _DeviceBatches:
    """skorch's training iterator over tensors already on the training device.

    The same batches as skorch's default (a ``DataLoader`` with ``shuffle=True`` draws its
    base seed, then ``torch.randperm(n, generator=generator)``, then one more permutation
    for no remaining samples, from the same generator), taken as index slices of
    the tensors instead of collated sample by sample: that collation made a mode epoch of the
    MNIST-1D CNN cost 3.7x a plain PyTorch epoch on a CPU (``benchmarks/speed.py``).
    """

    def __init__(self, dataset, *, data, batch_size, drop_last, generator, device=None, augment=None):
        self.X, self.y = data
        self.batch_size, self.drop_last, self.generator = batch_size, drop_last, generator
        self.device, self.augment = device, augment

    def __len__(self) -> int:
        n = len(self.X)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)  # a DataLoader's base seed, drawn first
        order = torch.randperm(len(self.X), generator=self.generator).to(self.y.device)
        batches = order.split(self.batch_size)[: len(self)]
        for idx, xb in zip(batches, load_batches(self.X, batches, self.device)):
            if self.augment is None:
                yield xb, self.y[idx]
            else:  # on the training device, where the augmentation draws its randomness
                yield self.augment(xb.to(self.device)), self.y[idx]
        torch.randperm(len(self.X), generator=self.generator)  # its sampler's draw for a remainder of 0 samples


class _DeviceValidBatches:
    """skorch's validation iterator over tensors already on the training device: the batches
    in order, as skorch's default (a ``DataLoader`` without shuffling), without collation."""

    def __init__(self, dataset, *, data, batch_size):
        self.X, self.y = data
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.X) // self.batch_size)

    def __iter__(self):
        sizes = [len(yb) for yb in self.y.split(self.batch_size)]
        return zip(ordered_batches(self.X, sizes, self.y.device), self.y.split(self.batch_size))


def _data_device(X: np.ndarray, device: str) -> str:
    """Where the training data is kept: on the training device when it takes at most a
    quarter of that device's free memory, else on the CPU (skorch then moves each batch).
    Streamed rows come to the device a batch at a time; their targets are kept there."""
    if isinstance(X, StreamedRows) or torch.device(device).type != "cuda":
        return device
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return device if X.nbytes <= free / 4 else "cpu"


def train_mode(
    module: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    training: ModeTraining,
    *,
    device: str,
    seed: int,
    phase: str = "mode",
    on_epoch: EpochCallback | None = None,
    valid: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Train one network (a mode) with skorch: SGD-style optimizer, cosine schedule.

    Parameters
    ----------
    module : nn.Module
        Initialised network mapping a float32 batch of ``X`` to logits; trained in place.
    X : ndarray of shape (n_samples, ...), float32
    y : ndarray of shape (n_samples,), int64 class indices, or (n_samples, n_targets) float32 targets
    training : ModeTraining
    device : str
    seed : int
        Seeds the shuffling of minibatches and, for dropout, a private copy of torch's
        global random state (the caller's is left as it was).
    phase : str, default="mode"
        Name of this phase in errors and history.
    on_epoch : callable, default=None
        Called after each epoch with that epoch's history record.
    valid : (X_valid, y_valid) or None, default=None
        Held-out rows, as ``X`` and ``y``: skorch's validation split
        (``predefined_split``), scored after every epoch and never trained on; callbacks
        may then monitor ``valid_loss`` (and ``valid_acc`` for a classifier).

    Returns
    -------
    module : nn.Module
        The trained network, on the CPU.
    history : list of dict
        One record per epoch: ``phase``, ``vertex`` (0), ``epoch``, ``loss``; with ``valid``,
        also ``valid_loss`` (and ``valid_acc`` for a classifier).

    Examples
    --------
    >>> import numpy as np, torch
    >>> X, y = np.random.RandomState(0).randn(40, 4).astype(np.float32), np.arange(40) % 2
    >>> training = ModeTraining(n_classes=2, max_epochs=3, lr=0.1, batch_size=10, optimizer=torch.optim.SGD,
    ...                         optimizer_kwargs={}, criterion=torch.nn.CrossEntropyLoss, criterion_kwargs={})
    >>> module, history = train_mode(torch.nn.Linear(4, 2), X, y, training, device="cpu", seed=0)
    >>> [r["epoch"] for r in history]
    [0, 1, 2]
    """
    history: list[dict[str, Any]] = []

    class _Record(Callback):
        def on_epoch_end(self, net, **kwargs):
            loss = float(net.history[-1, "train_loss"])
            check_finite(loss, len(history), phase, f"lr={t.lr:g}")
            scores = {k: float(net.history[-1, k]) for k in ("valid_loss", "valid_acc") if k in net.history[-1]}
            history.append({"phase": "mode", "vertex": 0, "epoch": len(history), "loss": loss, **scores})
            if on_epoch is not None:
                on_epoch(history[-1])

    t = training
    # BatchNorm cannot normalise a last batch of one sample: leave that one sample out
    drop_last = len(X) % t.batch_size == 1 and has_batchnorm(module)
    data_device = _data_device(X, device)
    task = {"classes": list(range(t.n_classes))} if t.n_classes is not None else {}
    net = (ModeNet if t.n_classes is not None else ModeRegressorNet)(
        module,
        criterion=t.criterion,
        optimizer=t.optimizer,
        lr=t.lr,
        max_epochs=t.max_epochs,
        batch_size=t.batch_size,
        train_split=None if valid is None else predefined_split(Dataset(*valid)),
        device=device,
        verbose=0,
        **task,
        callbacks=[
            *([] if _has_scheduler(t.callbacks) else  # a user's LRScheduler replaces the cosine schedule
              [(f"{INTERNAL_CALLBACK_PREFIX}cosine", LRScheduler("CosineAnnealingLR", T_max=max(t.max_epochs, 1)))]),
            *([] if t.max_grad_norm is None else
              [(f"{INTERNAL_CALLBACK_PREFIX}clip", GradientNormClipping(gradient_clip_value=t.max_grad_norm))]),
            (f"{INTERNAL_CALLBACK_PREFIX}record", _Record()),
            *copy.deepcopy(list(t.callbacks)),
        ],
        iterator_train=_DeviceBatches,
        iterator_train__data=(as_rows(X, data_device), torch.as_tensor(y, device=data_device)),
        iterator_train__drop_last=drop_last,
        iterator_train__generator=torch.Generator().manual_seed(seed),
        iterator_train__device=device,
        iterator_train__augment=t.augment,
        **_valid_iterator(valid, data_device, t.valid_batch_size or t.batch_size),
        **{f"optimizer__{k}": v for k, v in t.optimizer_kwargs.items()},
        **{f"criterion__{k}": v for k, v in t.criterion_kwargs.items()},
    )
    try:
        with own_global_rng(device, seed):
            net.fit(X, y)
    except _Interrupted:
        raise KeyboardInterrupt(f"training of {phase} was interrupted") from None
    net.module_.zero_grad(set_to_none=True)  # the last step's gradients are no part of the mode
    if t.n_classes is not None and t.criterion is nn.CrossEntropyLoss and not t.criterion_kwargs and history:
        warn_if_not_learned(history[-1]["loss"], y, t.n_classes, phase, t.lr)
    return net.module_.cpu(), history


def _valid_iterator(valid: tuple[np.ndarray, np.ndarray] | None, data_device: str, batch_size: int) -> dict[str, Any]:
    """skorch's arguments for the held-out rows: kept where the training rows are, batches in order."""
    if valid is None:
        return {}
    return {"iterator_valid": _DeviceValidBatches, "iterator_valid__batch_size": batch_size,
            "iterator_valid__data": (as_rows(valid[0], data_device), torch.as_tensor(valid[1], device=data_device))}



def _has_scheduler(callbacks) -> bool:
    """Whether the user's callbacks hold a learning-rate scheduler (instance, class or named pair)."""
    items = [c[1] if isinstance(c, tuple) and len(c) == 2 else c for c in callbacks]
    return any(isinstance(c, LRScheduler) or (isinstance(c, type) and issubclass(c, LRScheduler)) for c in items)


def warn_if_not_learned(loss: float, y: np.ndarray, n_classes: int, phase: str, lr: float) -> None:
    """Warn when a mode's last training loss is no better than predicting the class frequencies.

    A rate too high for the module and the scale of ``X`` can leave a ReLU network dead
    (constant logits) without any NaN; its cross-entropy then sits at the entropy of the
    class frequencies.
    """
    freq = np.bincount(y, minlength=n_classes) / len(y)
    prior = float(-(freq[freq > 0] * np.log(freq[freq > 0])).sum())
    if prior > 0 and loss > 0.9 * prior:
        warnings.warn(
            f"The training loss of {phase} ended at {loss:.4g}, no better than predicting the class "
            f"frequencies ({prior:.4g}): the network did not learn (lr={lr:g}). A smaller lr, features "
            "scaled to unit variance (StandardScaler) or more epochs usually fix it.",
            RuntimeWarning, stacklevel=2,
        )
