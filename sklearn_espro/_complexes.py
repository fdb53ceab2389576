"""Mode-connecting simplicial complexes (Sections 3.2 and 4.2 of Benton et al. 2021)."""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state
from torch import Tensor, nn

from ._core.validation import (
    Interval, check_data, check_module_output, check_optimizer, validate_params,
)
from .geometry import log_simplex_volume, sample_complex_coords
from ._core.growing import grow_vertex
from ._core.global_state import own_global_rng
from ._core.landscape import modes_on_device
from ._core.batchnorm import batchnorm_buffer_names
from ._core.prediction import mean_probabilities, member_at
from ._core.simplex import Simplex

__all__ = ["SimplicialComplex", "connect_modes"]


class SimplicialComplex:
    """Simplexes of weights that share vertices (Section 3.2 of Benton et al. 2021).

    Parameters
    ----------
    points : Simplex
        Every vertex of the complex, stacked (its ``vertices``), with the architecture
        and shared buffers; read as a container, not as one simplex.
    simplexes : sequence of sequence of int
        The vertex indices of each simplex, all of one length.
    classes : array-like of shape (n_classes,), default=None
        The labels of the outputs, for :meth:`predict`; :func:`connect_modes` sets them.

    Examples
    --------
    >>> import torch
    >>> points = Simplex(torch.nn.Linear(1, 1, bias=False), {"weight": torch.tensor([[[0.0]], [[2.0]], [[1.0]]])})
    >>> SimplicialComplex(points, [(0, 2), (1, 2)]).log_volumes().exp()
    tensor([1., 1.], dtype=torch.float64)
    """

    def __init__(self, points: Simplex, simplexes: Sequence[Sequence[int]], classes=None):
        self.points = points
        self.simplexes = [_vertex_indices(s, k) for k, s in enumerate(simplexes)]
        self.classes = None if classes is None else np.asarray(classes)
        if not self.simplexes or len({len(s) for s in self.simplexes}) != 1 or not self.simplexes[0]:
            raise ValueError(f"simplexes must be a non-empty list of vertex-index tuples of one length; got {simplexes!r}.")
        outside = [i for s in self.simplexes for i in s if not 0 <= i < points.n_vertices]
        if outside:
            raise ValueError(f"simplexes name vertex {outside[0]}, but the complex has {points.n_vertices} vertices (0 to {points.n_vertices - 1}).")
        _check_dimension(len(self.simplexes[0]), sum(v[0].numel() for v in points.vertices.values()), "simplexes have")

    @property
    def n_vertices(self) -> int:
        return self.points.n_vertices

    @property
    def simplexes_(self) -> list[Simplex]:
        """Each simplex as a :class:`Simplex` (what SimplexVolume and ensembles read)."""
        return [Simplex(self.points.module, {k: v[list(s)] for k, v in self.points.vertices.items()},
                        self.points.buffers) for s in self.simplexes]

    def log_volumes(self) -> Tensor:
        """Log-volume of each simplex, shape (n_simplexes,), float64."""
        flat = self.points.flat_vertices()
        return torch.stack([log_simplex_volume(flat[list(s)]) for s in self.simplexes])

    def log_total_volume(self) -> float:
        """``log V(K) = log sum_s V(S_s)``, the log of the complex's volume (Eq. 1's volume term for a complex)."""
        return float(self.log_volumes().logsumexp(0))

    def total_volume(self) -> float:
        """Sum of the simplexes' volumes (may under- or overflow for large networks: see :meth:`log_total_volume`)."""
        return float(np.exp(self.log_total_volume()))

    def sample_coords(self, n_models: int, generator: torch.Generator | None = None) -> Tensor:
        """Weights over all vertices of ``n_models`` uniform points: (n_models, n_vertices)."""
        _check_count("SimplicialComplex.sample_coords", "n_models", n_models)
        faces = torch.as_tensor(self.simplexes, dtype=torch.long)
        return sample_complex_coords(faces, self.log_volumes(), n_models, self.n_vertices, generator=generator)

    def first(self, n_vertices: int) -> SimplicialComplex:
        """The complex of the first ``n_vertices`` vertices: each simplex keeps those it has.

        For a complex from :func:`connect_modes`, ``first(n_modes + k)`` is the complex as
        it was after its first ``k`` connecting points (later points never move earlier ones).
        """
        _check_count("SimplicialComplex.first", "n_vertices", n_vertices)
        if not 1 <= n_vertices <= self.n_vertices:
            raise ValueError(f"n_vertices must be in [1, {self.n_vertices}], got {n_vertices}.")
        vertices = {k: v[:n_vertices] for k, v in self.points.vertices.items()}
        simplexes = [tuple(i for i in s if i < n_vertices) for s in self.simplexes]
        if len({len(s) for s in simplexes}) != 1:
            raise ValueError(f"The first {n_vertices} vertices leave simplexes of different sizes.")
        return SimplicialComplex(Simplex(self.points.module, vertices, self.points.buffers), simplexes, self.classes)

    def predict_proba(self, X, n_samples: int = 20, random_state=None, batch_size: int = 512, *,
                      X_train=None) -> np.ndarray:
        """Mean softmax of ``n_samples`` models drawn from the complex (Eq. 5 over the complex).

        Parameters
        ----------
        X : array-like of shape (n_samples_X, ...)
        n_samples : int, default=20
        random_state : int, RandomState instance or None, default=None
        batch_size : int, default=512
        X_train : array-like of shape (n_samples_train, ...), default=None
            Training data on which each drawn model's BatchNorm statistics are
            recomputed (in batches of ``batch_size``), as ``ESPROClassifier`` does;
            required when the module has BatchNorm layers.

        Returns
        -------
        ndarray of shape (n_samples_X, n_classes)
            Columns in the order of ``classes`` (sorted labels).
        """
        _check_count("SimplicialComplex.predict_proba", "n_samples", n_samples)
        _check_count("SimplicialComplex.predict_proba", "batch_size", batch_size)
        x = check_data(X)
        check_module_output(self.points.module, x, None if self.classes is None else len(self.classes))
        if X_train is None and batchnorm_buffer_names(self.points.module):
            raise ValueError("The module has BatchNorm layers: pass the training data as X_train so that each model "
                             "drawn from the complex gets its own statistics.")
        train = None if X_train is None else torch.from_numpy(check_data(X_train, name="X_train"))
        if train is not None and train.shape[1:] != x.shape[1:]:
            raise ValueError(f"X_train has samples of shape {tuple(train.shape[1:])}, X of shape {x.shape[1:]}.")
        if train is not None and len(train) < 2 and batchnorm_buffer_names(self.points.module):
            raise ValueError(f"X_train has {len(train)} sample, but the module has BatchNorm layers, which need two.")
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
        coords = self.sample_coords(n_samples, torch.Generator().manual_seed(seed))
        member = member_at(self.points, coords, train, batch_size)
        return mean_probabilities([member], torch.from_numpy(x), batch_size).numpy()

    def predict(self, X, n_samples: int = 20, random_state=None, *, X_train=None) -> np.ndarray:
        """The class of highest mean probability: a label of ``classes`` (or its index if None)."""
        _check_count("SimplicialComplex.predict", "n_samples", n_samples)
        index = self.predict_proba(X, n_samples, random_state, X_train=X_train).argmax(1)
        return index if self.classes is None else self.classes[index]

    def forward(self, coords: Tensor, x: Tensor) -> Tensor:
        """Outputs of the models at ``coords`` (n_models, n_vertices), in evaluation mode."""
        return self.points.forward(coords, x)

    def to_module(self, coords: Tensor) -> nn.Module:
        """A plain module with the weights at ``coords`` (n_vertices,)."""
        return self.points.to_module(coords)

    def __repr__(self) -> str:
        return f"SimplicialComplex(n_vertices={self.n_vertices}, n_simplexes={len(self.simplexes)})"


def _check_count(where: str, name: str, value) -> None:
    """A ValueError naming ``name`` unless ``value`` is an int >= 1 (a bool is not a count)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"The {name!r} parameter of {where} must be an int in the range [1, inf); got {value!r}.")


def _check_no_bools(where: str, kind: str, **values) -> None:
    """``True`` is an int and a number to Python, and to scikit-learn's checks: refuse it by name."""
    for name, value in values.items():
        if isinstance(value, (bool, np.bool_)):
            raise ValueError(f"The {name!r} parameter of {where} must be {kind}, not a bool; got {value!r}.")


def _vertex_indices(simplex, k: int) -> tuple[int, ...]:
    """``simplexes[k]`` of a SimplicialComplex as a tuple of distinct ints (no bools, no 1.5)."""
    try:
        if isinstance(simplex, (str, bytes)) or any(isinstance(i, (bool, np.bool_)) for i in simplex):
            raise TypeError
        out = tuple(operator.index(i) for i in simplex)
    except TypeError:
        raise ValueError(f"simplexes[{k}] must be a tuple of vertex indices (ints); got {simplex!r}.") from None
    if len(set(out)) != len(out):
        raise ValueError(f"simplexes[{k}] = {out!r} names a vertex twice.")
    return out


def _check_dimension(n_vertices: int, n_params: int, what: str, hint: str = "") -> None:
    """A simplex of ``n_vertices`` has volume in ``n_params`` dimensions only if ``n_vertices <= n_params + 1``."""
    if n_vertices > n_params + 1:
        raise ValueError(
            f"{what} {n_vertices} vertices, but the weights have {n_params} trainable parameter"
            f"{'s' if n_params != 1 else ''}: a simplex of non-zero volume has at most n_params + 1 = "
            f"{n_params + 1} vertices.{hint}"
        )


@validate_params(
    {
        "n_connectors": [Interval(Integral, 1, None, closed="left"), None],
        "simplexes": ["array-like", None],
        "volume_reg": [Interval(Real, 0, None, closed="left")],
        "epochs": [Interval(Integral, 0, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "n_train_samples": [Interval(Integral, 1, None, closed="left")],
        "optimizer_kwargs": [dict, None],
    },
    prefer_skip_nested_validation=True,
)
def connect_modes(
    modes: Sequence[nn.Module],
    X,
    y,
    *,
    n_connectors: int | None = None,
    simplexes: Sequence[Sequence[int | str]] | None = None,
    volume_reg: float = 0.01,
    epochs: int = 30,
    lr: float = 0.1,
    batch_size: int = 128,
    n_train_samples: int = 5,
    optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
    optimizer_kwargs: dict[str, Any] | None = None,
    device: str = "auto",
    random_state=None,
) -> SimplicialComplex:
    """Connect trained networks through shared points into a low-loss simplicial complex.

    Connecting points ``c0, c1, ...`` are trained one at a time, each in the simplexes
    that name it. By default every mode joins every connector: simplex ``i`` is
    ``(w_i, c0, ..., c_last)``. ``simplexes`` gives any other shape, such as the paper's
    Fig. 4b, where a connector joins only some modes. While ``c_j`` trains, the loss is
    Eq. 1 over the simplexes that hold it, each cut to the vertices trained so far: the
    mean loss of models drawn from them (a simplex picked with probability proportional
    to its volume, then a uniform point in it) minus ``lambda`` times the log of their
    total volume, ``log sum_s V(S_s)``, which weighs each simplex by its size. (The
    reference code regularises only the first simplex; version 0.4.0 and earlier summed
    the log-volumes, which weighs every simplex the same.)

    Parameters
    ----------
    modes : sequence of nn.Module
        Trained networks of one architecture, mapping float32 batches of ``X`` to logits
        (e.g. ``[s.vertex_module(0) for s in clf.simplexes_]`` of an
        ``ESPROClassifier(n_vertices=1)``). They are not changed.
    X : array-like of shape (n_samples, ...)
    y : array-like of shape (n_samples,)
        Class labels; their sorted unique values must match the modes' outputs.
    n_connectors : int, default=None
        Connecting points of the default shape (1 when None). With ``simplexes`` it is
        read from the connector names and, if given, must agree.
    simplexes : list of tuples of int and str, default=None
        The complex's simplexes: modes by index (``0`` to ``len(modes) - 1``), connectors
        by name (``"c0"``, ``"c1"``, ... without gaps); ``[(0, "c0"), (1, "c0"), (1, "c1"),
        (2, "c1")]`` chains three modes. Every simplex has at least one
        mode and one connector, all have one length, and when a connector trains, the
        simplexes that hold it must have equally many vertices trained before it (name
        the connectors in the order they should train). ``None``: every mode with every
        connector.
    volume_reg : float, default=0.01
        ``lambda`` of Eq. 1, the same for every connecting point (as in
        :class:`~sklearn_espro.ESPROClassifier`: no normalisation by the vertex count).
    epochs, lr, batch_size, n_train_samples : training of each connecting point
        Defaults 30, 0.1, 128, 5: connecting three MLP modes on digits through two points,
        fewer epochs or a smaller rate left the sampled members' loss 1.4-4 x the modes'.
    optimizer : torch.optim.Optimizer subclass, default=torch.optim.SGD
    optimizer_kwargs : dict, default=None
        Default ``{"momentum": 0.9}`` for SGD.
    device : str, default="auto"
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    SimplicialComplex
        Vertices: the modes, then the connecting points; its ``simplexes_`` go to
        :class:`~sklearn_espro.SimplexVolume`, its ``sample_coords`` and ``forward``
        draw and run models from it. Vertices are on the CPU. With BatchNorm, its
        ``predict_proba`` recomputes each drawn model's statistics on ``X_train``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> X, y = np.random.RandomState(0).randn(60, 4).astype(np.float32), np.arange(60) % 2
    >>> modes = [torch.nn.Linear(4, 2) for _ in range(3)]
    >>> cx = connect_modes(modes[:2], X, y, n_connectors=2, epochs=2, random_state=0)
    >>> cx.simplexes, cx.predict_proba(X[:3], n_samples=4).shape
    ([(0, 2, 3), (1, 2, 3)], (3, 2))
    >>> chain = connect_modes(modes, X, y, simplexes=[(0, "c0"), (1, "c0"), (1, "c1"), (2, "c1")], epochs=2)
    >>> chain.simplexes  # modes 0-2, then connectors c0 = 3 and c1 = 4
    [(0, 3), (1, 3), (1, 4), (2, 4)]
    """
    _check_no_bools("connect_modes", "an int", n_connectors=n_connectors, epochs=epochs, batch_size=batch_size,
                    n_train_samples=n_train_samples)
    _check_no_bools("connect_modes", "a float", volume_reg=volume_reg, lr=lr)
    points, X_t, y_t, classes, generator = modes_on_device(modes, X, y, device, random_state, batch_size=batch_size)
    n_params = sum(v[0].numel() for v in points.vertices.values())
    shape, faces = complex_plan(len(modes), n_connectors, simplexes, n_params=n_params)
    kwargs = dict(optimizer_kwargs or ({"momentum": 0.9} if optimizer is torch.optim.SGD else {}))
    check_optimizer(optimizer, kwargs)
    seed = int(generator.initial_seed())
    with own_global_rng(X_t.device, seed):  # dropout; the caller's RNG is kept
        for j, rows in enumerate(faces):
            points, _ = grow_vertex(
                points, X_t, y_t, epochs=epochs, batch_size=batch_size, phase=f"connector {j}", faces=rows,
                volume_reg=volume_reg, lr=lr, n_train_samples=n_train_samples, optimizer=optimizer,
                optimizer_kwargs=kwargs, criterion=nn.CrossEntropyLoss(), generator=generator,
            )
    return SimplicialComplex(points.to("cpu"), shape, classes)


def complex_plan(n_modes: int, n_connectors: int | None, simplexes, *,
                 n_params: int | None = None) -> tuple[list[tuple[int, ...]], list[list[tuple[int, ...]]]]:
    """The complex's simplexes as vertex indices (modes first, then ``c0, c1, ...``) and, for each
    connector in training order, the faces it joins: its simplexes cut to the vertices trained before it.

    Raises ``ValueError`` naming ``simplexes`` (or ``n_connectors``) for a shape that cannot
    be trained, before anything trains; with ``n_params`` (the modes' trainable parameters),
    also for simplexes of more than ``n_params + 1`` vertices, which have no volume.
    """
    default = simplexes is None
    if simplexes is None:
        names = [f"c{j}" for j in range(1 if n_connectors is None else n_connectors)]
        simplexes = [(i, *names) for i in range(n_modes)]
    shape = [_simplex_indices(s, i, n_modes) for i, s in enumerate(simplexes)]
    used = sorted({v for s in shape for v in s if v >= n_modes})
    n_found = len(used)
    if used != list(range(n_modes, n_modes + n_found)):
        raise ValueError(f"simplexes must name the connectors c0 to c{n_found - 1} without gaps; got "
                         f"{sorted(f'c{v - n_modes}' for v in used)}.")
    if n_connectors is not None and n_connectors != n_found:
        raise ValueError(f"n_connectors={n_connectors}, but simplexes name {n_found} connectors.")
    if not shape or len({len(s) for s in shape}) != 1:
        raise ValueError(f"simplexes must be a non-empty list of simplexes of one length; got lengths "
                         f"{[len(s) for s in shape]}.")
    if len(set(shape)) != len(shape):
        raise ValueError("simplexes lists a simplex twice.")
    if n_params is not None:
        if default:  # a mode and every connector
            _check_dimension(len(shape[0]), n_params, f"n_connectors={n_found} gives simplexes of",
                             f" Use n_connectors <= {n_params}.")
        else:
            _check_dimension(len(shape[0]), n_params, "simplexes have")
    faces = []
    for v in range(n_modes, n_modes + n_found):
        rows = list(dict.fromkeys(tuple(u for u in s if u < v) for s in shape if v in s))  # a face once
        if len({len(r) for r in rows}) != 1:
            raise ValueError(
                f"simplexes: when connector c{v - n_modes} trains, the simplexes that hold it have "
                f"{sorted({len(r) for r in rows})} vertices trained before it; they must have equally many "
                "(rename the connectors so that they train in another order)."
            )
        faces.append(rows)
    return shape, faces


def _simplex_indices(simplex, i: int, n_modes: int) -> tuple[int, ...]:
    """One simplex of ``simplexes`` as sorted vertex indices; mode ``m`` is ``m``, connector ``c<j>`` is ``n_modes + j``."""
    if isinstance(simplex, (str, bytes)) or not hasattr(simplex, "__iter__"):
        raise ValueError(f"simplexes[{i}] must be a tuple of mode indices and connector names; got {simplex!r}.")
    out = []
    for v in simplex:
        if isinstance(v, str) and re.fullmatch(r"c(0|[1-9][0-9]*)", v):
            out.append(n_modes + int(v[1:]))
        elif isinstance(v, Integral) and not isinstance(v, bool) and 0 <= v < n_modes:
            out.append(int(v))
        else:
            raise ValueError(f"simplexes[{i}] holds {v!r}: a vertex is a mode index from 0 to {n_modes - 1} or a "
                             "connector name 'c0', 'c1', ...")
    if len(set(out)) != len(out):
        raise ValueError(f"simplexes[{i}] = {tuple(simplex)!r} names a vertex twice.")
    if not any(v < n_modes for v in out) or not any(v >= n_modes for v in out):
        raise ValueError(f"simplexes[{i}] = {tuple(simplex)!r} needs at least one mode and one connector.")
    return tuple(sorted(out))
