"""A simplex of weights for any ``nn.Module``.

The vertices of a simplex are stored stacked per parameter name,
``{name: Tensor of shape (n_vertices, *shape)}``; a point of the simplex with
barycentric coordinates ``t`` has weights ``sum_i t_i a_i``. Many such points run as
one vectorised forward through ``torch.func.vmap`` over
``torch.func.functional_call``. No optimizer, no data loader and no scikit-learn here.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from .global_state import private_module, vectorisable_attention
from ..geometry import log_simplex_volume

__all__ = [
    "Simplex",
    "batched_forward",
    "combine",
    "expand",
    "fixed_tensors",
    "flatten",
    "trainable_parameters",
    "unflatten",
]

Params = dict[str, Tensor]


def trainable_parameters(module: nn.Module) -> Params:
    """The parameters that a simplex varies: those with ``requires_grad``, tied ones once.

    Parameters
    ----------
    module : nn.Module

    Returns
    -------
    dict of str to Tensor
        Detached, in ``named_parameters`` order (a parameter shared by two layers appears
        under its first name only).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 1)
    >>> net.bias.requires_grad_(False)
    Parameter containing:...
    >>> list(trainable_parameters(net))
    ['weight']
    """
    return {k: v.detach() for k, v in module.named_parameters() if v.requires_grad}


def fixed_tensors(module: nn.Module) -> Params:
    """What every point of a simplex shares: buffers and frozen parameters (``requires_grad=False``).

    Parameters
    ----------
    module : nn.Module

    Returns
    -------
    dict of str to Tensor
        Detached tensors of ``module`` (not copies).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.BatchNorm1d(2)
    >>> net.weight.requires_grad_(False)
    Parameter containing:...
    >>> sorted(fixed_tensors(net))
    ['num_batches_tracked', 'running_mean', 'running_var', 'weight']
    """
    frozen = {k: v.detach() for k, v in module.named_parameters() if not v.requires_grad}
    return {**frozen, **{k: v.detach() for k, v in module.named_buffers()}}


def flatten(params: Mapping[str, Tensor], n_leading: int = 1) -> Tensor:
    """Concatenate parameters into vectors, keeping ``n_leading`` leading dimensions.

    Parameters
    ----------
    params : dict of str to Tensor of shape ``(*lead, *shape)``
    n_leading : int, default=1

    Returns
    -------
    Tensor of shape ``(*lead, n_params)``

    Examples
    --------
    >>> import torch
    >>> flatten({"w": torch.ones(2, 2, 3), "b": torch.zeros(2, 2)}).shape  # 2 vertices
    torch.Size([2, 8])
    """
    tensors = list(params.values())
    lead = tensors[0].shape[:n_leading]
    return torch.cat([t.reshape(*lead, -1) for t in tensors], dim=-1)


def unflatten(flat: Tensor, like: Mapping[str, Tensor], n_leading: int = 1) -> Params:
    """Inverse of :func:`flatten`: views of ``flat`` (n_models, n_params) shaped as ``like``.

    ``like`` maps names to tensors of shape ``(*lead, *shape)`` whose last dimensions give
    each parameter's shape (only shapes are read).

    Parameters
    ----------
    flat : Tensor of shape ``(*models, n_params)``
    like : dict of str to Tensor of shape ``(*lead, *shape)``
    n_leading : int, default=1
        Leading dimensions of the tensors of ``like`` to skip.

    Returns
    -------
    dict of str to Tensor of shape ``(*models, *shape)``

    Examples
    --------
    >>> import torch
    >>> like = {"w": torch.empty(1, 2, 3), "b": torch.empty(1, 2)}
    >>> {k: tuple(v.shape) for k, v in unflatten(torch.arange(16.0).view(2, 8), like).items()}
    {'w': (2, 2, 3), 'b': (2, 2)}
    """
    shapes = [v.shape[n_leading:] for v in like.values()]
    parts = flat.split([s.numel() for s in shapes], dim=-1)
    lead = flat.shape[:-1]
    return {name: part.view(tuple(lead) + tuple(shape)) for name, part, shape in zip(like, parts, shapes)}


def combine(vertices: Mapping[str, Tensor], coords: Tensor) -> Params:
    """Weights at barycentric coordinates: ``theta = sum_i t_i a_i`` for each row ``t``.

    One matrix product on the flattened vertices, then views per parameter.

    Parameters
    ----------
    vertices : dict of str to Tensor of shape ``(n_vertices, *shape)``
    coords : Tensor of shape (n_models, n_vertices)

    Returns
    -------
    dict of str to Tensor of shape ``(n_models, *shape)``

    Examples
    --------
    >>> import torch
    >>> w = combine({"w": torch.tensor([[0.0, 2.0], [4.0, 0.0]])}, torch.tensor([[0.5, 0.5]]))
    >>> w["w"]
    tensor([[2., 1.]])
    """
    flat = flatten(vertices)
    return unflatten(coords.to(flat.dtype) @ flat, vertices)


def expand(tensors: Mapping[str, Tensor], n_models: int, *, clone: bool = False) -> Params:
    """Give each tensor a leading model dimension of size ``n_models``.

    ``clone=True`` makes writable copies (needed when a forward in training mode
    updates BatchNorm statistics in place).

    Parameters
    ----------
    tensors : dict of str to Tensor of shape ``(*shape)``
    n_models : int
    clone : bool, default=False

    Returns
    -------
    dict of str to Tensor of shape ``(n_models, *shape)``
        Views of ``tensors`` (copies with ``clone=True``).

    Examples
    --------
    >>> import torch
    >>> expand({"running_mean": torch.zeros(4)}, 3)["running_mean"].shape
    torch.Size([3, 4])
    """
    out = {k: v.unsqueeze(0).expand(n_models, *v.shape) for k, v in tensors.items()}
    return {k: v.clone() for k, v in out.items()} if clone else out


def batched_forward(
    module: nn.Module,
    params: Params,
    buffers: Params,
    x: Tensor,
    *,
    x_batched: bool = False,
    buffers_batched: bool = True,
) -> Tensor:
    """Run ``n_models`` weight settings of ``module`` as one vectorised forward.

    Parameters
    ----------
    module : nn.Module
        The architecture; its own weights are not used. Its ``training`` flag decides
        the behaviour of dropout and BatchNorm.
    params : dict of str to Tensor of shape ``(n_models, *shape)``
    buffers : dict of str to Tensor of shape ``(n_models, *shape)``, or ``(*shape)``
        Per-model buffers, or (``buffers_batched=False``) read-only shared ones.
    x : Tensor of shape (n_models, batch, ...) if ``x_batched`` else (batch, ...)
        One chunk of inputs per model, or the same inputs for every model.
    x_batched : bool, default=False
    buffers_batched : bool, default=True

    Returns
    -------
    Tensor of shape ``(n_models, batch, *out_shape)``

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(3, 2)
    >>> params = {"weight": torch.zeros(4, 2, 3), "bias": torch.arange(4.0)[:, None].expand(4, 2)}
    >>> batched_forward(net, params, {}, torch.ones(5, 3))[:, 0]  # 4 models, first sample
    tensor([[0., 0.],
            [1., 1.],
            [2., 2.],
            [3., 3.]])
    """

    def call(p: Params, b: Params, inputs: Tensor) -> Tensor:
        return functional_call(module, (p, b), (inputs,))

    in_dims = (0, 0 if buffers_batched else None, 0 if x_batched else None)
    with vectorisable_attention():
        return vmap(call, in_dims=in_dims, randomness="different")(params, buffers, x)


class Simplex:
    """A simplex of weights of one architecture.

    Parameters
    ----------
    module : nn.Module
        The architecture. Its trainable weights are ignored; its buffers and frozen
        parameters are the default shared tensors.
    vertices : dict of str to Tensor of shape ``(n_vertices, *shape)``
        One entry per trainable parameter of ``module`` (:func:`trainable_parameters`),
        vertices stacked along dimension 0.
    buffers : dict of str to Tensor, default=None
        What the points of the simplex share: buffers (BatchNorm statistics, ...) and
        frozen parameters, by default those of ``module`` (:func:`fixed_tensors`).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 1)
    >>> s = Simplex.from_module(net)
    >>> s.n_vertices
    1
    """

    def __init__(self, module: nn.Module, vertices: Params, buffers: Params | None = None):
        self.module = module
        self.vertices = dict(vertices)
        self.buffers = dict(fixed_tensors(module) if buffers is None else buffers)

    @classmethod
    def from_module(cls, module: nn.Module) -> Simplex:
        """The 0-simplex (one vertex) at the current trainable weights of ``module``.

        Frozen parameters (``requires_grad=False``) are shared by every point, as buffers are.
        """
        vertices = {k: v.clone().unsqueeze(0) for k, v in trainable_parameters(module).items()}
        buffers = {k: v.clone() for k, v in fixed_tensors(module).items()}
        return cls(module, vertices, buffers)

    @property
    def n_vertices(self) -> int:
        """Number of vertices (``k + 1`` for a k-simplex)."""
        return next(iter(self.vertices.values())).shape[0]

    def add_vertex(self, params: Mapping[str, Tensor]) -> Simplex:
        """A new simplex with one more vertex at ``params`` ({name: Tensor of shape})."""
        vertices = {k: torch.cat([v, params[k].detach().unsqueeze(0)]) for k, v in self.vertices.items()}
        return Simplex(self.module, vertices, self.buffers)

    def vertex(self, i: int) -> Params:
        """Weights of vertex ``i`` as {name: Tensor of shape}."""
        return {k: v[i] for k, v in self.vertices.items()}

    def combine(self, coords: Tensor) -> Params:
        """Weights at barycentric coordinates ``coords`` of shape (n_models, n_vertices)."""
        coords = torch.as_tensor(coords)
        if coords.ndim != 2 or coords.shape[1] != self.n_vertices:
            raise ValueError(f"coords must have shape (n_models, {self.n_vertices}): one weight per vertex "
                             f"of this simplex; got shape {tuple(coords.shape)}.")
        return combine(self.vertices, coords)

    def flat_vertices(self) -> Tensor:
        """Vertices as one matrix of shape (n_vertices, n_params)."""
        return flatten(self.vertices)

    def log_volume(self) -> Tensor:
        """Log of the simplex's volume (float64), see :func:`~.geometry.log_simplex_volume`."""
        return log_simplex_volume(self.flat_vertices())

    def forward(self, coords: Tensor, x: Tensor, buffers: Params | None = None) -> Tensor:
        """Outputs of the models at ``coords`` (n_models, n_vertices) on ``x``, in evaluation mode.

        ``buffers`` may give each model its own, as ``(n_models, *shape)`` tensors.
        Returns a tensor of shape (n_models, batch, ...).
        """
        if buffers is None:
            buffers = expand(self.buffers, coords.shape[0])
        with private_module(self.module) as module:
            return batched_forward(module, self.combine(coords), buffers, x)

    def to_module(self, coords: Tensor, buffers: Params | None = None) -> nn.Module:
        """A plain ``nn.Module`` with the weights at ``coords`` (n_vertices,): ``torch.eye(n)[i]`` is vertex ``i``.

        Values are copied into the module's own tensors by name, so parameters tied
        between layers stay tied.
        """
        coords = torch.as_tensor(coords)
        if coords.shape != (self.n_vertices,):
            raise ValueError(f"coords must have shape ({self.n_vertices},): one weight per vertex; got {tuple(coords.shape)}.")
        module = copy.deepcopy(self.module)
        params = {k: v[0] for k, v in self.combine(coords.reshape(1, -1)).items()}
        values = {**self.buffers, **(buffers or {}), **params}
        with torch.no_grad():
            for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
                tensor.copy_(values[name])
        return module

    def vertex_module(self, i: int) -> nn.Module:
        """A plain ``nn.Module`` with the weights of vertex ``i``, in evaluation mode.

        Vertex 0 of a simplex grown by ESPRO is its mode: ``[s.vertex_module(0) for s in
        clf.simplexes_]`` are the networks of a fitted deep ensemble.
        """
        if not -self.n_vertices <= i < self.n_vertices:
            raise IndexError(f"vertex {i} does not exist: this simplex has {self.n_vertices} vertices.")
        return self.to_module(torch.eye(self.n_vertices)[i]).eval()

    def to(self, device: torch.device | str) -> Simplex:
        """The simplex on ``device``: itself if it is there already, else a copy."""
        device = torch.device(device)
        tensors = [*self.vertices.values(), *self.buffers.values(), *self.module.parameters()]
        if all(t.device == device or (device.index is None and t.device.type == device.type) for t in tensors):
            return self
        module = copy.deepcopy(self.module).to(device)
        vertices = {k: v.to(device) for k, v in self.vertices.items()}
        buffers = {k: v.to(device) for k, v in self.buffers.items()}
        return Simplex(module, vertices, buffers)

    def __repr__(self) -> str:
        n_params = sum(v[0].numel() for v in self.vertices.values())
        return f"Simplex(module={type(self.module).__name__}, n_vertices={self.n_vertices}, n_params={n_params})"

