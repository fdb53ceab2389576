"""Prediction from simplexes (Eq. 5): fitted members, the models drawn from them, their mean.

A :class:`Member` is one simplex of a fitted ensemble with the models of it that predict:
their barycentric coordinates and their buffers (BatchNorm statistics recomputed for
each model). :func:`draw_member` is the one place where models are drawn from a simplex
and their statistics recomputed; :func:`mean_probabilities` is Eq. 5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .rows import StreamedRows, ordered_batches
from .global_state import private_module
from .batchnorm import batch_sizes, batchnorm_buffer_names, recompute_batchnorm, subsample_rows
from ..geometry import sample_barycentric
from .simplex import Params, Simplex, batched_forward, expand

__all__ = ["Member", "draw_member", "forward_models", "mean_probabilities", "mean_softmax", "member_at", "member_outputs",
           "model_buffers"]


@dataclass(frozen=True, eq=False)
class Member:
    """One simplex of a fitted ensemble and the models of it that predict.

    Parameters
    ----------
    simplex : Simplex
        Vertex 0 is the mode the simplex grew from.
    coords : Tensor of shape (n_models, n_vertices)
        Barycentric coordinates of the prediction models (drawn uniformly, Eq. 5).
    buffers : dict of str to Tensor of shape ``(n_models, *shape)``
        Each model's buffers (its own BatchNorm statistics).
    history : list of dict
        One record per training epoch of this member (mode, then vertices).

    Examples
    --------
    >>> import torch
    >>> simplex = Simplex.from_module(torch.nn.Linear(2, 2)).add_vertex({"weight": torch.ones(2, 2), "bias": torch.zeros(2)})
    >>> member = draw_member(simplex, 3, None, 128, torch.Generator().manual_seed(0))
    >>> member.n_models, [type(m).__name__ for m in member.models()]
    (3, ['Linear', 'Linear', 'Linear'])
    """

    simplex: Simplex
    coords: Tensor
    buffers: Params
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_models(self) -> int:
        """Number of prediction models."""
        return self.coords.shape[0]

    def models(self) -> list[nn.Module]:
        """The prediction models as plain modules, in evaluation mode."""
        return [self.simplex.to_module(t, {k: v[i] for k, v in self.buffers.items()}).eval()
                for i, t in enumerate(self.coords)]

    def to(self, device: torch.device | str) -> Member:
        """The member on ``device`` (its history unchanged)."""
        return Member(self.simplex.to(device), self.coords.to(device),
                      {k: v.to(device) for k, v in self.buffers.items()}, self.history)


def model_buffers(module: nn.Module, params: Params, buffers: Params, X: Tensor | None, batch_size: int) -> Params:
    """Buffers of ``n_models`` weight settings: ``buffers`` for each, BatchNorm statistics recomputed on ``X``.

    Parameters
    ----------
    module : nn.Module
    params : dict of str to Tensor of shape ``(n_models, *shape)``
    buffers : dict of str to Tensor of shape ``(*shape)``
        Shared by every model (a simplex's, or a module's own).
    X : Tensor of shape (n_samples, ...) or None
        Data for the statistics (in batches of ``batch_size``, none shorter than two);
        ``None`` keeps ``buffers``' statistics. Every model sees the same batches: all
        models in one vectorised forward per batch, or, for a convolutional network,
        one model at a time as a plain module (as :func:`forward_models` runs them).
    batch_size : int

    Returns
    -------
    dict of str to Tensor of shape ``(n_models, *shape)``

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.BatchNorm1d(1, affine=False)
    >>> out = model_buffers(net, {}, dict(net.named_buffers()), torch.tensor([[1.0], [3.0]]), 2)
    >>> out["running_mean"].shape  # one model: params hold no trainable weights here
    torch.Size([1, 1])
    """
    n_models = next(iter(params.values())).shape[0] if params else 1
    out = expand(buffers, n_models)
    if X is None or not batchnorm_buffer_names(module):
        return out
    device = next(iter(out.values())).device
    X = X if isinstance(X, StreamedRows) else X.to(device)
    with private_module(module) as work:  # recomputation sets the layers' mode and momentum
        return recompute_batchnorm(work, params, out, ordered_batches(X, batch_sizes(len(X), batch_size, 2), device),
                                   per_model=_has_convolution(module))


def draw_member(simplex: Simplex, n_models: int, X: Tensor | None, batch_size: int,
                generator: torch.Generator, max_rows: int | None = None) -> Member:
    """``n_models`` points drawn uniformly from ``simplex``, with BatchNorm statistics recomputed on ``X``.

    The statistics of a 0-simplex's models (its mode) are kept: they were computed for
    exactly those weights. Those of the others come from at most ``max_rows`` rows of
    ``X``, drawn once for all the models (after the coordinates, by the same generator;
    :func:`~sklearn_espro._core.batchnorm.subsample_rows`), so their cost is bounded
    whatever the size of ``X``; nothing is drawn when nothing is recomputed.

    Parameters
    ----------
    simplex : Simplex
    n_models : int
    X : Tensor of shape (n_samples, ...) or None
        On the simplex's device; required when the module has BatchNorm layers and the
        simplex has more than one vertex.
    batch_size : int
        Samples per forward pass while statistics are recomputed.
    generator : torch.Generator
        On the simplex's device; draws the coordinates, then the rows.
    max_rows : int, default=None
        At least 2 (BatchNorm cannot normalise one row); ``None``: every row of ``X``.

    Returns
    -------
    Member
        With an empty history.

    Examples
    --------
    >>> import torch
    >>> simplex = Simplex.from_module(torch.nn.Linear(2, 2)).add_vertex({"weight": torch.ones(2, 2), "bias": torch.zeros(2)})
    >>> member = draw_member(simplex, 4, None, 128, torch.Generator().manual_seed(0))
    >>> tuple(member.coords.shape), bool(torch.allclose(member.coords.sum(1), torch.ones(4)))
    ((4, 2), True)
    """
    device = next(iter(simplex.vertices.values())).device
    coords = sample_barycentric(n_models, simplex.n_vertices, generator=generator, device=device)
    if simplex.n_vertices == 1 or n_models == 0:
        X = None
    elif X is not None and batchnorm_buffer_names(simplex.module):
        X = subsample_rows(X, max_rows, generator)
    return member_at(simplex, coords, X, batch_size)


def member_at(points: Simplex, coords: Tensor, X: Tensor | None, batch_size: int) -> Member:
    """The models at ``coords`` over the vertices of ``points``, with BatchNorm statistics recomputed on ``X``.

    What :func:`draw_member` does once it has drawn the coordinates; a simplicial complex
    draws its own (over all its vertices) and comes here too.

    Parameters
    ----------
    points : Simplex
        The vertices (a simplex, or every vertex of a complex).
    coords : Tensor of shape (n_models, n_vertices)
    X : Tensor of shape (n_samples, ...) or None
        ``None`` keeps the vertices' shared statistics: refused when the module has
        BatchNorm layers and there is more than one vertex (a single vertex's statistics
        were computed for exactly its weights).
    batch_size : int

    Returns
    -------
    Member

    Examples
    --------
    >>> import torch
    >>> points = Simplex.from_module(torch.nn.Linear(2, 2)).add_vertex({"weight": torch.ones(2, 2), "bias": torch.zeros(2)})
    >>> member_at(points, torch.tensor([[0.5, 0.5]]), None, 128).n_models
    1
    """
    if len(coords) == 0:
        return Member(points, coords, expand(points.buffers, 0))
    if X is None and points.n_vertices > 1 and batchnorm_buffer_names(points.module):
        raise ValueError("The module has BatchNorm layers: pass X to recompute the statistics of the models drawn.")
    return Member(points, coords, model_buffers(points.module, points.combine(coords), points.buffers, X, batch_size))


@torch.no_grad()
def mean_probabilities(members: Sequence[Member], x: Tensor, batch_size: int,
                       device: torch.device | str = "cpu") -> Tensor:
    """ESPRO's prediction (Eq. 5): the mean softmax of every member's models.

    ``p(y|x) = (1/J) sum_j (1/M) sum_m softmax(f(x; theta_jm))``, in evaluation mode.

    Parameters
    ----------
    members : sequence of J Member
    x : Tensor of shape (n_samples, ...)
    batch_size : int
    device : torch.device or str, default="cpu"

    Returns
    -------
    Tensor of shape (n_samples, n_classes), float64, on the CPU
        Rows sum to one.

    Examples
    --------
    >>> import torch
    >>> simplex = Simplex.from_module(torch.nn.Linear(3, 2)).add_vertex(
    ...     {"weight": torch.zeros(2, 3), "bias": torch.zeros(2)})
    >>> member = Member(simplex, torch.tensor([[0.5, 0.5], [0.0, 1.0]]), {})
    >>> p = mean_probabilities([member], torch.ones(4, 3), 2)
    >>> p.shape, bool(torch.allclose(p.sum(1), torch.ones(4, dtype=torch.float64)))
    (torch.Size([4, 2]), True)
    """
    if isinstance(x, StreamedRows):  # a batch of rows at a time, each through every member
        members = [member.to(device) for member in members]
        return torch.cat([mean_probabilities(members, xb, batch_size, device)
                          for xb in x.in_order(batch_sizes(len(x), batch_size, 1), device)])
    x = x.to(device)
    total = None
    for member in members:
        member = member.to(device)
        params = member.simplex.combine(member.coords)
        with private_module(member.simplex.module) as module:  # threads may share the fitted members
            mean = mean_softmax(module, params, member.buffers, x, batch_size)
        total = mean if total is None else total + mean
    return (total / total.sum(1, keepdim=True)).cpu()


@torch.no_grad()
def member_outputs(member: Member, x: Tensor, batch_size: int, device: torch.device | str = "cpu") -> Tensor:
    """Outputs of each of a member's prediction models, in evaluation mode: (n_models, n_samples, n_out), float64.

    What a regressor averages as a mixture (a classifier averages softmaxes instead,
    :func:`mean_probabilities`).

    Parameters
    ----------
    member : Member
    x : Tensor of shape (n_samples, ...)
    batch_size : int
    device : torch.device or str, default="cpu"

    Returns
    -------
    Tensor of shape (n_models, n_samples, n_out), float64, on the CPU

    Examples
    --------
    >>> import torch
    >>> member = Member(Simplex.from_module(torch.nn.Linear(3, 2)), torch.ones(1, 1), {})
    >>> member_outputs(member, torch.ones(4, 3), 2).shape
    torch.Size([1, 4, 2])
    """
    member = member.to(device)
    params = member.simplex.combine(member.coords)
    with private_module(member.simplex.module) as module:
        return torch.cat([forward_models(module, params, member.buffers, xb).double()
                          for xb in x.to(device).split(batch_size)], 1).cpu()


def mean_softmax(module: nn.Module, params: Params, buffers: Params, x: Tensor, batch_size: int) -> Tensor:
    """Mean over models of ``softmax(f(x; theta_m))`` in float64: (n_samples, n_classes).

    As :func:`forward_models` runs them, except that a convolutional network runs each
    model over all batches as a plain module (``module`` itself, each model's weights
    copied in): the same outputs without ``functional_call``'s cost per call.

    Parameters
    ----------
    module : nn.Module
        Used as it is (training or evaluation mode). A convolutional network's own
        weights are overwritten: pass a private copy (:func:`~.global_state.private_module`),
        as :func:`mean_probabilities` does.
    params, buffers : dict of str to Tensor of shape ``(n_models, *shape)``
    x : Tensor of shape (n_samples, ...)
    batch_size : int

    Returns
    -------
    Tensor of shape (n_samples, n_classes), float64

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(3, 2)
    >>> params = {"weight": torch.zeros(2, 2, 3), "bias": torch.tensor([[0.0, 0.0], [10.0, -10.0]])}
    >>> mean_softmax(net, params, {}, torch.ones(4, 3), batch_size=2)[0]  # (0.5, 0.5) and (1, 0), averaged
    tensor([0.7500, 0.2500], dtype=torch.float64)
    """
    if not _has_convolution(module):
        return torch.cat([forward_models(module, params, buffers, xb).double().softmax(-1).mean(0)
                          for xb in x.split(batch_size)])
    work = module  # one model at a time: its weights copied into the caller's private copy, then plain forwards
    n_models = next(iter(params.values())).shape[0]
    total = None
    with torch.no_grad():
        for i in range(n_models):
            values = {**{k: v[i] for k, v in buffers.items()}, **{k: v[i] for k, v in params.items()}}
            for name, tensor in [*work.named_parameters(), *work.named_buffers()]:
                tensor.copy_(values[name])
            probs = torch.cat([work(xb).double().softmax(-1) for xb in x.split(batch_size)])
            total = probs if total is None else total + probs
    return total / n_models


def _has_convolution(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules())


def forward_models(module: nn.Module, params: Params, buffers: Params, x: Tensor) -> Tensor:
    """Outputs of ``n_models`` weight settings on the same batch: ``(n_models, batch, *out_shape)``.

    A module with convolutions runs as a loop of plain forwards, one model at a time:
    under ``vmap`` a convolution with per-model weights becomes a grouped convolution,
    measured 1.2-4x slower than the loop on a CPU (ConvNet1d and a VGG-style CNN,
    ``benchmarks/speed.py``). Other modules (MLPs: batched matrix products) run as one
    vectorised forward (:func:`~sklearn_espro._core.simplex.batched_forward`), faster there.

    Parameters
    ----------
    module : nn.Module
    params, buffers : dict of str to Tensor of shape ``(n_models, *shape)``
    x : Tensor of shape (batch, ...)

    Returns
    -------
    Tensor of shape ``(n_models, batch, *out_shape)``

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Conv1d(1, 1, 1, bias=False)
    >>> params = {"weight": torch.tensor([1.0, 2.0]).view(2, 1, 1, 1)}
    >>> forward_models(net, params, {}, torch.ones(3, 1, 4)).shape  # 2 models, loop of plain forwards
    torch.Size([2, 3, 1, 4])
    """
    if not _has_convolution(module):
        return batched_forward(module, params, buffers, x)
    n_models = next(iter(params.values())).shape[0]
    return torch.stack([functional_call(module, ({k: v[i] for k, v in params.items()},
                                                 {k: v[i] for k, v in buffers.items()}), (x,))
                        for i in range(n_models)])
