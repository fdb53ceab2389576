"""Growing simplexes: train one new vertex after another with the verbs of :mod:`~sklearn_espro.training`.

:func:`grow_vertex` adds one vertex and trains it for some epochs on Eq. 1 (a cosine
learning-rate schedule per vertex, as in the reference code); :func:`grow_simplex`
repeats it; :func:`scaled_volume_regs` normalises the volume weight ``lambda``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .geometry import log_simplex_volume
from .simplex import Simplex, flatten, trainable_parameters, unflatten
from .training import init_vertex_state, run_epoch

__all__ = ["grow_simplex", "grow_vertex", "scaled_volume_regs"]

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


def scaled_volume_regs(volume_reg: float, fresh: Sequence[nn.Module]) -> list[float]:
    """The weight of ``log V`` while each vertex trains, normalised by random simplexes.

    ``lambda_n = volume_reg / max(|log V_init(n)|, 1)``, with ``V_init(n)`` the volume of
    the simplex whose ``n`` vertices are the first ``n`` of ``fresh`` (independently
    initialised networks): the reference code's normalisation, so that one
    ``volume_reg`` suits networks of any size.

    Parameters
    ----------
    volume_reg : float
        Unscaled ``lambda`` of Eq. 1.
    fresh : sequence of nn.Module
        ``n_vertices`` freshly initialised networks of one architecture.

    Returns
    -------
    list of float of length n_vertices
        Entry ``i`` weights the volume while vertex ``i`` trains (entry 0, the mode, is 0).

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> regs = scaled_volume_regs(0.1, [torch.nn.Linear(10, 10) for _ in range(3)])
    >>> regs[0], len(regs), 0 < regs[2] <= 0.1
    (0.0, 3, True)
    """
    flat = torch.stack([flatten(trainable_parameters(m), 0) for m in fresh])
    regs = [0.0]
    for n in range(2, len(fresh) + 1):
        regs.append(volume_reg / max(abs(float(log_simplex_volume(flat[:n]))), 1.0))
    return regs


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
    **kwargs
        ``volume_reg`` (scaled ``lambda`` of Eq. 1), ``lr``, ``n_train_samples``,
        ``optimizer``, ``optimizer_kwargs``, ``criterion``, ``generator`` (on the
        training device; drives the noise, the shuffling and the samples) and
        optionally ``init_noise``: see :func:`~sklearn_espro.training.init_vertex_state`.

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
    >>> from sklearn_espro.simplex import Simplex
    >>> X, y = torch.randn(20, 4), torch.randint(3, (20,))
    >>> simplex, history = grow_vertex(
    ...     Simplex.from_module(torch.nn.Linear(4, 3)), X, y, epochs=2, batch_size=10, volume_reg=0.1, lr=0.01, n_train_samples=2, optimizer=torch.optim.SGD,
    ...     optimizer_kwargs={}, criterion=torch.nn.CrossEntropyLoss(), generator=torch.Generator().manual_seed(0))
    >>> simplex.n_vertices, len(history)
    (2, 2)
    """
    state = init_vertex_state(simplex, **kwargs)
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}.")
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(state.optimizer, T_max=max(epochs, 1)) \
        if schedule == "cosine" else None
    settings = f"vertex_lr={kwargs['lr']:g}, scaled volume weight {state.volume_reg:.4g}"
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


def grow_simplex(
    simplex: Simplex,
    X: Tensor,
    y: Tensor,
    n_vertices: int,
    *,
    volume_regs: Sequence[float],
    phase: str = "simplex",
    **kwargs: Any,
) -> tuple[Simplex, list[dict[str, Any]]]:
    """Grow ``simplex`` one vertex at a time until it has ``n_vertices`` vertices.

    ``volume_regs[i]`` is the scaled ``lambda`` used while vertex ``i`` trains; the
    other keyword arguments go to :func:`grow_vertex`.

    Parameters
    ----------
    simplex : Simplex
    X, y : Tensor
        Training data and class indices, on the training device.
    n_vertices : int
    volume_regs : sequence of float
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
    >>> from sklearn_espro.simplex import Simplex
    >>> X, y = torch.randn(20, 4), torch.randint(3, (20,))
    >>> simplex, history = grow_simplex(
    ...     Simplex.from_module(torch.nn.Linear(4, 3)), X, y, 3, volume_regs=[0.0, 0.1, 0.1], epochs=1,
    ...     batch_size=10, lr=0.01, n_train_samples=2, optimizer=torch.optim.SGD, optimizer_kwargs={},
    ...     criterion=torch.nn.CrossEntropyLoss(), generator=torch.Generator().manual_seed(0))
    >>> simplex.n_vertices, [r["vertex"] for r in history]
    (3, [1, 2])
    """
    history: list[dict[str, Any]] = []
    while simplex.n_vertices < n_vertices:
        i = simplex.n_vertices
        simplex, records = grow_vertex(
            simplex, X, y, volume_reg=volume_regs[i], phase=f"vertex {i} of {phase}", **kwargs
        )
        history += records
    return simplex, history
