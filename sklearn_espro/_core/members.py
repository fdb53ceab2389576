"""One ensemble member from start to finish: a mode (:mod:`~sklearn_espro._core.modes`), its simplex, its models.

The jobs that :class:`~sklearn_espro.ESPROClassifier` runs in parallel; plain
functions, no scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .rows import as_rows, take
from .global_state import own_global_rng, private_module
from .growing import grow_simplex
from .modes import ModeTraining, train_mode
from .prediction import Member, draw_member
from .simplex import Simplex, batched_forward

__all__ = ["VertexTraining", "fit_simplex", "grow_member", "sample_members"]


@dataclass(frozen=True)
class VertexTraining:
    """How each new vertex trains on Eq. 1; built once per fit from the estimator's parameters.

    Parameters
    ----------
    epochs : int
    lr : float
    schedule : {"cosine", "constant"}
    batch_size : int
    n_train_samples : int
        ``H``: models drawn per step.
    optimizer : torch.optim.Optimizer subclass
    optimizer_kwargs : dict
    criterion : nn.Module
        An instance.
    volume_reg : float
        ``lambda`` of Eq. 1, for every vertex.
    init_noise : float, default=0.01
        Noise of each vertex's start at the centroid of the others (relative).
    max_grad_norm : float, default=None
        Each step's gradient is clipped to this norm; ``None``: never.
    augment : callable, default=None
        Applied to the inputs of every training minibatch (:mod:`sklearn_espro.augment`).
    init_step : float, default=0.0
        A start moved uphill from there, relative to the centroid's norm (see
        :func:`~sklearn_espro._core.growing.step_along_gradient`; not an estimator parameter:
        no value tried beat ``0``).
    batchnorm_rows : int, default=None
        Rows of the training data, drawn once per simplex, on which the BatchNorm statistics
        of its prediction models are recomputed once its vertices are trained; ``None``: all.
    diversity : float, default=0.0
        Weight of the sampled models' agreement with their mode on mixed-up training
        inputs (experimental, not an estimator parameter: see
        :func:`~sklearn_espro._core.training._loss_with_disagreement`).
    off_inputs : {"mixup", "noise"}, default="mixup"
        Where that disagreement is sought (experimental, as ``diversity``).

    Examples
    --------
    >>> import torch
    >>> VertexTraining(epochs=3, lr=0.05, schedule="cosine", batch_size=64, n_train_samples=1,
    ...                optimizer=torch.optim.SGD, optimizer_kwargs={}, criterion=torch.nn.CrossEntropyLoss(),
    ...                volume_reg=0.0).init_noise
    0.01
    """

    epochs: int
    lr: float
    schedule: str
    batch_size: int
    n_train_samples: int
    optimizer: type[torch.optim.Optimizer]
    optimizer_kwargs: dict[str, Any]
    criterion: nn.Module
    volume_reg: float
    max_grad_norm: float | None = None
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None
    init_noise: float = 0.01
    init_step: float = 0.0
    batchnorm_rows: int | None = None
    diversity: float = 0.0
    off_inputs: str = "mixup"


def fit_simplex(
    module: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_vertices: int,
    n_samples: int,
    pretrained: bool,
    mode: ModeTraining,
    vertex: VertexTraining,
    device: str,
    seed: int,
    name: str = "simplex",
    verbose: int = 0,
    valid: tuple[np.ndarray, np.ndarray] | None = None,
) -> Member:
    """One ESPRO member, start to finish: a mode, its simplex, and its prediction samples.

    1. Train ``module`` as a mode with :func:`train_mode` (skipped if ``pretrained``).
    2. Grow its simplex to ``n_vertices`` with :func:`grow_simplex` on ``device``.
    3. Draw the ``n_samples`` barycentric coordinates used for prediction (Eq. 5), and
       recompute BatchNorm statistics of those models on ``X``.

    Parameters
    ----------
    module : nn.Module
        Initialised network, or the pretrained mode when ``pretrained``.
    X : ndarray of shape (n_samples, ...), float32
    y : ndarray of shape (n_samples,), int64 class indices
    n_vertices, n_samples : int
        Vertices of the simplex; models kept for prediction.
    pretrained : bool
    mode : ModeTraining
    vertex : VertexTraining
    device : str
    seed : int
    name : str, default="simplex"
    verbose : int, default=0
        A progress bar when positive.
    valid : (X_valid, y_valid) or None, default=None
        Held-out rows that score the mode after each epoch (see :func:`train_mode`);
        nothing trains on them.

    Returns
    -------
    Member
        On the CPU: the simplex, its ``n_samples`` prediction models (one, the mode, for a
        0-simplex) and the history of its epochs.

    Examples
    --------
    >>> import numpy as np, torch
    >>> X, y = np.random.RandomState(0).randn(40, 4).astype(np.float32), np.arange(40) % 2
    >>> mode = ModeTraining(n_classes=2, max_epochs=2, lr=0.1, batch_size=10, optimizer=torch.optim.SGD,
    ...                     optimizer_kwargs={}, criterion=torch.nn.CrossEntropyLoss, criterion_kwargs={})
    >>> vertex = VertexTraining(epochs=2, lr=0.01, schedule="cosine", batch_size=10, n_train_samples=2,
    ...                         optimizer=torch.optim.SGD, optimizer_kwargs={}, criterion=torch.nn.CrossEntropyLoss(),
    ...                         volume_reg=0.1)
    >>> result = fit_simplex(torch.nn.Linear(4, 2), X, y, n_vertices=2, n_samples=3, pretrained=False,
    ...                      mode=mode, vertex=vertex, device="cpu", seed=0)
    >>> result.simplex.n_vertices, tuple(result.coords.shape)
    (2, (3, 2))
    """
    total = (0 if pretrained else mode.max_epochs) + (n_vertices - 1) * vertex.epochs
    bar = _progress_bar(total, name, verbose)

    def on_epoch(record: dict[str, Any]) -> None:
        if bar is not None:
            bar.set_postfix({k: record[k] for k in ("vertex", "loss", "valid_loss", "log_volume") if k in record})
            bar.update()

    history: list[dict[str, Any]] = []
    try:
        if not pretrained:
            module, history = train_mode(
                module, X, y, mode, seed=seed, device=device, phase=f"the mode of {name}", on_epoch=on_epoch,
                valid=valid,
            )
        with own_global_rng(device, seed):
            simplex = Simplex.from_module(module.to(device).eval()).to(device)
            member = _grow_and_sample(simplex, X, y, n_vertices, n_samples, vertex, device, seed, name, on_epoch)
    finally:
        if bar is not None:
            bar.close()
    return _on_cpu(member, history)


def grow_member(member: Member, X: np.ndarray, y: np.ndarray, *, n_vertices: int, n_samples: int,
                vertex: VertexTraining, device: str, seed: int, name: str = "simplex", verbose: int = 0) -> Member:
    """A fitted member grown to ``n_vertices``: its vertices kept, only the missing ones trained (warm start).

    Its prediction models are drawn anew (``n_samples`` of them) from the grown simplex;
    its history gains the new vertices' epochs.

    Parameters
    ----------
    member : Member
        Fitted, with fewer than ``n_vertices`` vertices.
    X, y, n_vertices, n_samples, vertex, device, seed, name, verbose
        As in :func:`fit_simplex`.

    Returns
    -------
    Member
        On the CPU.

    Examples
    --------
    >>> import numpy as np, torch
    >>> X, y = np.random.RandomState(0).randn(40, 4).astype(np.float32), np.arange(40) % 2
    >>> vertex = VertexTraining(epochs=1, lr=0.01, schedule="cosine", batch_size=10, n_train_samples=1,
    ...                         optimizer=torch.optim.SGD, optimizer_kwargs={}, criterion=torch.nn.CrossEntropyLoss(),
    ...                         volume_reg=0.0)
    >>> one = Member(Simplex.from_module(torch.nn.Linear(4, 2)), torch.ones(1, 1), {})
    >>> grown = grow_member(one, X, y, n_vertices=3, n_samples=2, vertex=vertex, device="cpu", seed=0)
    >>> grown.simplex.n_vertices, [r["vertex"] for r in grown.history]
    (3, [1, 2])
    """
    bar = _progress_bar((n_vertices - member.simplex.n_vertices) * vertex.epochs, name, verbose)

    def on_epoch(record: dict[str, Any]) -> None:
        if bar is not None:
            bar.update()

    try:
        with own_global_rng(device, seed):
            grown = _grow_and_sample(member.simplex.to(device), X, y, n_vertices, n_samples, vertex, device, seed,
                                     name, on_epoch)
    finally:
        if bar is not None:
            bar.close()
    return _on_cpu(grown, list(member.history))


def _on_cpu(member: Member, history: list[dict[str, Any]]) -> Member:
    """The member on the CPU, its buffers its own (not views of the simplex's), ``history`` first."""
    member = member.to("cpu")
    buffers = {k: v.clone() for k, v in member.buffers.items()}
    return Member(member.simplex, member.coords, buffers, history + member.history)


def _progress_bar(total: int, name: str, verbose: int):
    """A tqdm bar when ``verbose > 0``, else None: even a disabled bar makes tqdm create a
    multiprocessing lock, which a joblib worker stopped by another job's error leaks."""
    if verbose < 1:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=name, leave=True)


def _grow_and_sample(simplex: Simplex, X, y, n_vertices, n_samples, vertex: VertexTraining, device, seed, name,
                     on_epoch) -> Member:
    """Grow a simplex (on the device) to ``n_vertices`` and draw its prediction models (steps 2 and 3)."""
    generator = torch.Generator(device=device).manual_seed(seed)
    X_t = as_rows(X, device)
    y_t = torch.as_tensor(y, device=device)
    simplex, records = grow_simplex(
        simplex, X_t, y_t, n_vertices, volume_reg=vertex.volume_reg, phase=name, generator=generator,
        on_epoch=on_epoch, epochs=vertex.epochs, lr=vertex.lr, schedule=vertex.schedule,
        batch_size=vertex.batch_size, n_train_samples=vertex.n_train_samples, optimizer=vertex.optimizer,
        optimizer_kwargs=vertex.optimizer_kwargs, criterion=vertex.criterion.to(device),
        init_noise=vertex.init_noise, init_step=vertex.init_step, max_grad_norm=vertex.max_grad_norm,
        augment=vertex.augment, diversity=vertex.diversity, off_inputs=vertex.off_inputs,
    )
    n_draws = n_samples if n_vertices > 1 else 1  # every point of a 0-simplex is the mode
    member = draw_member(simplex, n_draws, X_t, vertex.batch_size, generator, vertex.batchnorm_rows)
    first = take(X_t, torch.arange(min(vertex.batch_size, len(X_t)))).to(device)
    _check_fitted_simplex(simplex, member.coords, member.buffers, first, name)
    return Member(simplex, member.coords, member.buffers, records)


@torch.no_grad()
def _check_fitted_simplex(simplex: Simplex, coords, buffers, x, name: str) -> None:
    """Raise FloatingPointError unless vertices, log-volume, buffers and the probabilities
    of the prediction models on ``x`` (a batch of training data) are all finite."""
    flat = simplex.flat_vertices()
    bad = (~torch.isfinite(flat)).any(dim=1).nonzero().flatten().tolist()
    if bad:
        raise FloatingPointError(f"Vertex {bad[0]} of {name} has non-finite weights after training.")
    if simplex.n_vertices > 1 and not torch.isfinite(simplex.log_volume()):
        raise FloatingPointError(
            f"The log-volume of {name} is {float(simplex.log_volume())}: its vertices are affinely dependent."
        )
    if not all(torch.isfinite(v).all() for v in buffers.values() if v.is_floating_point()):
        raise FloatingPointError(f"The buffers (BatchNorm statistics) of {name} are not finite.")
    with private_module(simplex.module) as module:
        logits = batched_forward(module, simplex.combine(coords), buffers, x)
    if not torch.isfinite(logits.double().softmax(-1)).all():
        raise FloatingPointError(
            f"The models kept for prediction from {name} give non-finite probabilities on the training data."
        )


def sample_members(
    simplexes: Sequence[Simplex], n_models: int, X: torch.Tensor | None, batch_size: int, seed: int,
    max_rows: int | None = None,
) -> list[nn.Module]:
    """Plain networks drawn uniformly from ``simplexes``, round-robin: model ``i`` from simplex ``i % J``.

    Parameters
    ----------
    simplexes : sequence of Simplex
    n_models : int
    X : Tensor of shape (n_samples, ...) or None
        Data on which BatchNorm statistics of each model are recomputed; required when
        the module has BatchNorm layers and a simplex has more than one vertex.
    batch_size : int
        Samples per forward pass while statistics are recomputed.
    seed : int
        Seeds the draws (and dropout while statistics are recomputed, in a private copy
        of torch's global random state).
    max_rows : int, default=None
        Each simplex's statistics come from at most this many rows of ``X``, drawn once
        per simplex (:func:`~sklearn_espro._core.prediction.draw_member`); ``None``: all.

    Returns
    -------
    list of nn.Module
        On the CPU, in evaluation mode.

    Examples
    --------
    >>> import torch
    >>> simplex = Simplex.from_module(torch.nn.Linear(2, 2)).add_vertex({"weight": torch.ones(2, 2), "bias": torch.zeros(2)})
    >>> [type(m).__name__ for m in sample_members([simplex], 2, None, 128, seed=0)]
    ['Linear', 'Linear']
    """
    generator = torch.Generator().manual_seed(seed)
    counts = np.bincount(np.arange(n_models) % len(simplexes), minlength=len(simplexes))
    with own_global_rng(seed=seed):
        per_simplex = [draw_member(simplex, int(count), X, batch_size, generator, max_rows).models()
                       for simplex, count in zip(simplexes, counts)]
    return [per_simplex[i % len(per_simplex)][i // len(per_simplex)] for i in range(n_models)]
