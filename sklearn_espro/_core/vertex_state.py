"""The state one vertex trains in: the frozen vertices, the trainable one, its optimizer.

:func:`init_vertex_state` freezes a simplex's vertices and starts a new one at their
centroid plus noise; the training verbs of :mod:`sklearn_espro._core.training` share the
:class:`VertexState` it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .batchnorm import has_batchnorm, training_copy
from ..geometry import hull_basis, log_simplex_volume
from .simplex import Params, Simplex

__all__ = ["VertexState", "init_vertex_state"]


@dataclass
class VertexState:
    """What the simplex-training verbs share while one vertex trains (flat parameters)."""

    module: nn.Module  # a copy in training mode, BatchNorm normalising by batch statistics
    min_chunk: int  # samples each sampled model needs at least (2 with BatchNorm)
    like: Params  # parameter names and shapes, for unflattening
    stack: Tensor  # (n_frozen + 1, n_params): the frozen vertices, then the trainable vertex's storage
    frozen: Tensor  # (n_frozen, n_params), a view of stack
    vertex: nn.Parameter  # (n_params,), the only trainable tensor; shares its storage with stack[-1]
    weights: Tensor  # (n_params,), the one sampled model of a step (n_train_samples=1), rewritten each step
    buffers: Params  # shared, read-only
    faces: Tensor  # (n_simplexes, k) rows of frozen vertices; each joins the new vertex in a simplex
    simplexes: Tensor  # (n_simplexes, k + 1): faces with the new vertex's index appended
    hulls: list[tuple[Tensor, Tensor, Tensor]]  # per simplex: hull_basis of its frozen face and its log-volume
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    volume_reg: float
    n_train_samples: int
    generator: torch.Generator
    max_grad_norm: float | None = None  # the vertex's gradient is clipped to this norm before each step
    augment: Callable[[Tensor], Tensor] | None = None  # applied to each training minibatch's inputs
    diversity: float = 0.0  # weight of the disagreement with the mode off the training set (experimental)
    off_inputs: str = "mixup"  # where that disagreement is sought: "mixup" or "noise" (experimental)


def _initial_vertex(frozen: Params, noise: float, generator: torch.Generator) -> Tensor:
    """Centroid of the frozen vertices plus small noise (breaks the zero-volume start).

    The noise of each parameter tensor has standard deviation ``noise`` times the
    tensor's root mean square (plus 1e-3, for tensors at zero such as biases).
    """
    parts = []
    for v in frozen.values():
        centroid = v.mean(dim=0).flatten()
        scale = noise * (centroid.square().mean().sqrt() + 1e-3)
        eps = torch.randn(centroid.shape, generator=generator, device=generator.device)
        parts.append(centroid + scale * eps.to(centroid.dtype))
    return torch.cat(parts)


def init_vertex_state(
    simplex: Simplex,
    *,
    volume_reg: float,
    lr: float,
    n_train_samples: int,
    optimizer: type[torch.optim.Optimizer],
    optimizer_kwargs: dict[str, Any],
    criterion: nn.Module,
    generator: torch.Generator,
    init_noise: float = 0.01,
    faces: Sequence[Sequence[int]] | None = None,
    max_grad_norm: float | None = None,
    augment: Callable[[Tensor], Tensor] | None = None,
    diversity: float = 0.0,
    off_inputs: str = "mixup",
) -> VertexState:
    """Freeze the vertices of ``simplex`` and start a new vertex at their centroid plus noise.

    ``faces`` lists, for a simplicial complex, the frozen vertices that form a simplex
    with the new one (one row per simplex, all of one length); by default the new vertex
    joins all of them in one simplex.

    Parameters
    ----------
    simplex : Simplex
        The frozen vertices.
    volume_reg : float
        ``lambda`` of Eq. 1.
    lr : float
    n_train_samples : int
        ``H``: models drawn per step.
    optimizer : torch.optim.Optimizer subclass
    optimizer_kwargs : dict
    criterion : nn.Module
    generator : torch.Generator
    init_noise : float, default=0.01
        Noise of the starting point, relative to each tensor's root mean square.
    faces : sequence of sequence of int, default=None
    max_grad_norm : float, default=None
        The vertex's gradient is clipped to this norm before each step; ``None``: never.
    augment : callable, default=None
        Applied to the inputs of every training minibatch (:mod:`sklearn_espro.augment`).

    Returns
    -------
    VertexState

    Examples
    --------
    >>> import torch
    >>> from sklearn_espro import Simplex
    >>> state = init_vertex_state(
    ...     Simplex.from_module(torch.nn.Linear(4, 3)), volume_reg=0.1, lr=0.01, n_train_samples=2,
    ...     optimizer=torch.optim.SGD, optimizer_kwargs={}, criterion=torch.nn.CrossEntropyLoss(),
    ...     generator=torch.Generator().manual_seed(0))
    >>> state.frozen.shape, state.vertex.shape
    (torch.Size([1, 15]), torch.Size([15]))
    """
    stack = torch.cat([simplex.flat_vertices(), _initial_vertex(simplex.vertices, init_noise, generator)[None]])
    frozen, vertex = stack[:-1], nn.Parameter(stack[-1])  # the Parameter shares the last row's storage
    module = training_copy(simplex.module)
    rows = torch.as_tensor(faces if faces is not None else [list(range(len(frozen)))], dtype=torch.long,
                           device=generator.device)  # on the device: no host copy per step
    hulls = [(*hull_basis(frozen[row]), log_simplex_volume(frozen[row])) for row in rows]
    return VertexState(
        module=module,
        min_chunk=2 if has_batchnorm(module) else 1,
        like=simplex.vertices,
        stack=stack,
        frozen=frozen,
        vertex=vertex,
        weights=torch.empty_like(vertex, requires_grad=False),
        buffers={k: v.clone() for k, v in simplex.buffers.items()},  # a layer that updates a buffer in place
        # in training mode (InstanceNorm with running statistics) must not reach the fitted simplex
        faces=rows,
        simplexes=torch.cat([rows, torch.full_like(rows[:, :1], len(frozen))], 1),
        hulls=hulls,
        criterion=criterion,
        optimizer=optimizer([vertex], lr=lr, **optimizer_kwargs),
        volume_reg=volume_reg,
        n_train_samples=n_train_samples,
        generator=generator,
        max_grad_norm=max_grad_norm,
        augment=augment,
        diversity=diversity,
        off_inputs=off_inputs,
    )
