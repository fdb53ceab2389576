"""Growing simplexes: train one new vertex after another with the verbs of :mod:`~sklearn_espro._core.training`.

:func:`grow_vertex` adds one vertex and trains it for some epochs on Eq. 1 (a cosine
learning-rate schedule per vertex, as in the reference code, or a constant rate);
:func:`grow_simplex` repeats it with the same volume weight ``lambda`` for every vertex.

While vertex ``k`` trains, only it moves, and ``log V_k = log V_(k-1) + log h - log k``
with ``h`` its distance to the hull of the others: the volume term's pull on it is
``lambda * grad(log h)``, of size ``lambda / h`` whatever ``k`` is. So one ``lambda`` means
the same at every vertex count, and no normalisation by ``k`` is applied.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .rows import load_batches
from .batchnorm import batch_sizes
from .simplex import Simplex, unflatten
from .training import VertexState, chunks, infer, init_vertex_state, run_epoch

__all__ = ["grow_simplex", "grow_vertex", "step_along_gradient"]

EpochCallback = Callable[[dict[str, Any]], None]


def check_finite(loss: float, epoch: int, phase: str, settings: str) -> None:
    """Raise FloatingPointError, naming the phase and its settings, if ``loss`` is NaN or infinite."""
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"The training loss became {loss} in epoch {epoch + 1} of {phase} ({settings}). "
            "Training diverged; the usual causes: a learning rate (or, for vertices, a volume weight) "
            "too large for this network, inputs on a very large scale, or a module or criterion "
            "that returns NaN or infinity."
        )


def warn_if_loss_grew(start: float, end: float, phase: str, settings: str) -> None:
    """Warn when the data loss ended more than 100 times above where it started (floor 0.01)."""
    if end > 100 * max(start, 0.01):
        warnings.warn(
            f"The training loss of {phase} grew from {start:.4g} to {end:.4g} ({settings}): its "
            "sampled models left the low-loss region. A smaller vertex_lr or volume_reg keeps them there.",
            RuntimeWarning, stacklevel=2,
        )


def grow_vertex(
    simplex: Simplex,
    X: Tensor,
    y: Tensor,
    *,
    epochs: int,
    batch_size: int,
    schedule: str = "cosine",
    phase: str = "vertex",
    on_epoch: EpochCallback | None = None,
    init_step: float = 0.0,
    **kwargs: Any,
) -> tuple[Simplex, list[dict[str, Any]]]:
    """Add one vertex to ``simplex`` and train only it on the regularised loss (Section 5.1).

    Parameters
    ----------
    simplex : Simplex
        The frozen vertices, on the training device.
    X, y : Tensor
        Training data on the training device; ``y`` holds class indices.
    epochs, batch_size : int
    schedule : {"cosine", "constant"}, default="cosine"
        The learning rate over the vertex's epochs: a cosine from ``lr`` to zero (the
        reference code's), or ``lr`` throughout.
    phase : str, default="vertex"
        Name of this phase in errors.
    on_epoch : callable, default=None
        Called after each epoch with that epoch's history record.
    init_step : float, default=0.0
        When positive, the vertex starts ``init_step`` times the centroid's norm uphill
        from the centroid: see :func:`step_along_gradient`.
    **kwargs
        ``volume_reg`` (``lambda`` of Eq. 1), ``lr``, ``n_train_samples``,
        ``optimizer``, ``optimizer_kwargs``, ``criterion``, ``generator`` (on the
        training device; drives the noise, the shuffling and the samples) and
        optionally ``init_noise``, ``max_grad_norm`` and ``augment``: see :func:`~sklearn_espro._core.training.init_vertex_state`.

    Returns
    -------
    simplex : Simplex
        With the trained vertex appended.
    history : list of dict
        One record per epoch: ``phase``, ``vertex``, ``epoch``, ``loss`` (regularised),
        ``data_loss`` (of the sampled models) and ``log_volume``.

    Raises
    ------
    FloatingPointError
        When the loss becomes NaN or infinite (naming ``phase``).

    Warns
    -----
    RuntimeWarning
        When the data loss of the last epoch is over 100 times that of the first step.

    Examples
    --------
    >>> import torch
    >>> from sklearn_espro import Simplex
    >>> X, y = torch.randn(20, 4), torch.randint(3, (20,))
    >>> simplex, history = grow_vertex(
    ...     Simplex.from_module(torch.nn.Linear(4, 3)), X, y, epochs=2, batch_size=10, volume_reg=0.1, lr=0.01, n_train_samples=2, optimizer=torch.optim.SGD,
    ...     optimizer_kwargs={}, criterion=torch.nn.CrossEntropyLoss(), generator=torch.Generator().manual_seed(0))
    >>> simplex.n_vertices, len(history)
    (2, 2)
    """
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}.")
    state = init_vertex_state(simplex, **kwargs)
    if init_step > 0:
        with torch.enable_grad():
            step_along_gradient(state, X, y, batch_size, init_step)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(state.optimizer, T_max=max(epochs, 1)) \
        if schedule == "cosine" else None
    settings = f"vertex_lr={kwargs['lr']:g}, volume_reg={state.volume_reg:g}"
    history, start = [], None
    index = simplex.n_vertices
    with torch.enable_grad():  # also when called under no_grad
        for epoch in range(epochs):
            result = run_epoch(state, X, y, batch_size)
            if scheduler is not None:
                scheduler.step()
            check_finite(result["loss"], epoch, phase, settings)
            start = result["start_data_loss"] if start is None else start
            record = {"phase": "vertex", "vertex": index, "epoch": epoch, "loss": result["loss"],
                      "data_loss": result["data_loss"], "log_volume": result["log_volume"]}
            history.append(record)
            if on_epoch is not None:
                on_epoch(record)
    if history:
        warn_if_loss_grew(start, history[-1]["data_loss"], phase, settings)
    return simplex.add_vertex(unflatten(state.vertex.detach(), simplex.vertices, n_leading=1)), history


def step_along_gradient(state: VertexState, X: Tensor, y: Tensor, batch_size: int, step: float,
                        max_samples: int = 2048) -> float:
    """Move the new vertex uphill: ``step`` times the centroid's norm along the data loss's gradient.

    A start for the vertex away from the basin its frozen vertices share: the gradient
    (over up to ``max_samples`` shuffled samples, with models sampled as in training) of
    the sampled models' mean loss with respect to the new vertex points to where the
    simplex's loss rises fastest. The vertex then trains back down from there. The
    volume term is left out of the direction.

    Parameters
    ----------
    state : VertexState
    X : Tensor of shape (n_samples, ...)
    y : Tensor of shape (n_samples,)
    batch_size : int
    step : float
        Distance moved, relative to the norm of the frozen vertices' centroid.
    max_samples : int, default=2048

    Returns
    -------
    float
        The data loss at the starting point, before the move.

    Examples
    --------
    >>> import torch
    >>> from sklearn_espro import Simplex
    >>> from sklearn_espro._core.training import init_vertex_state
    >>> state = init_vertex_state(
    ...     Simplex.from_module(torch.nn.Linear(4, 3)), volume_reg=0.1, lr=0.01, n_train_samples=2,
    ...     optimizer=torch.optim.SGD, optimizer_kwargs={}, criterion=torch.nn.CrossEntropyLoss(),
    ...     generator=torch.Generator().manual_seed(0))
    >>> before = state.vertex.detach().clone()
    >>> _ = step_along_gradient(state, torch.randn(20, 4), torch.randint(3, (20,)), batch_size=10, step=0.1)
    >>> ratio = (state.vertex.detach() - before).norm() / state.frozen.mean(0).norm()
    >>> round(float(ratio), 4)
    0.1
    """
    order = torch.randperm(len(X), generator=state.generator, device=state.generator.device)[:max_samples]
    grad = torch.zeros_like(state.vertex)
    total = torch.zeros((), dtype=torch.float64, device=y.device)
    batches = order.split(batch_sizes(len(order), batch_size, state.min_chunk))  # no batch of one with BatchNorm
    for idx, xb in zip(batches, load_batches(X, batches, y.device)):
        x_chunks, y_chunks = chunks(state, xb, y[idx])
        logits = infer(state, x_chunks)
        loss = state.criterion(logits.flatten(0, 1), y_chunks.flatten(0, 1)) * (y_chunks.numel() / len(order))
        grad += torch.autograd.grad(loss, state.vertex)[0]
        total += loss.detach()
    with torch.no_grad():
        norm = grad.norm()
        if norm > 0:
            state.vertex += (step * state.frozen.mean(0).norm() / norm) * grad
    return float(total)


def grow_simplex(
    simplex: Simplex,
    X: Tensor,
    y: Tensor,
    n_vertices: int,
    *,
    volume_reg: float,
    phase: str = "simplex",
    **kwargs: Any,
) -> tuple[Simplex, list[dict[str, Any]]]:
    """Grow ``simplex`` one vertex at a time until it has ``n_vertices`` vertices.

    Every vertex trains on Eq. 1 with the same ``volume_reg``; the other keyword
    arguments go to :func:`grow_vertex`.

    Parameters
    ----------
    simplex : Simplex
    X, y : Tensor
        Training data and class indices, on the training device.
    n_vertices : int
    volume_reg : float
        ``lambda`` of Eq. 1.
    phase : str, default="simplex"
    **kwargs
        See :func:`grow_vertex`.

    Returns
    -------
    simplex : Simplex
    history : list of dict

    Examples
    --------
    >>> import torch
    >>> from sklearn_espro import Simplex
    >>> X, y = torch.randn(20, 4), torch.randint(3, (20,))
    >>> simplex, history = grow_simplex(
    ...     Simplex.from_module(torch.nn.Linear(4, 3)), X, y, 3, volume_reg=0.1, epochs=1,
    ...     batch_size=10, lr=0.01, n_train_samples=2, optimizer=torch.optim.SGD, optimizer_kwargs={},
    ...     criterion=torch.nn.CrossEntropyLoss(), generator=torch.Generator().manual_seed(0))
    >>> simplex.n_vertices, [r["vertex"] for r in history]
    (3, [1, 2])
    """
    history: list[dict[str, Any]] = []
    while simplex.n_vertices < n_vertices:
        simplex, records = grow_vertex(
            simplex, X, y, volume_reg=volume_reg, phase=f"vertex {simplex.n_vertices} of {phase}", **kwargs
        )
        history += records
    return simplex, history
