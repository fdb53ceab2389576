"""The loss at any weights, and modes stacked as one simplex: what the Section 4 tools share.

:func:`weights_loss` evaluates a module at many flat weight vectors (a plane's grid, a
curve's points, a simplex's samples), with BatchNorm statistics of their own;
:func:`modes_on_device` checks independently trained networks and stacks them as the
vertices of one :class:`~sklearn_espro._core.simplex.Simplex`. :mod:`~sklearn_espro._planes`,
:mod:`~sklearn_espro._curves` and :mod:`~sklearn_espro._complexes` build on these, not on
each other.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from torch import nn

from .global_state import own_global_rng
from .validation import check_batchnorm_batch, check_data, check_module_output, check_modes, resolve_device
from .prediction import model_buffers
from .simplex import Simplex, batched_forward, fixed_tensors, flatten, trainable_parameters, unflatten

__all__ = ["flat_parameters", "modes_on_device", "numeric_array", "weights_loss"]


def modes_on_device(modes: Sequence[nn.Module], X, y, device: str, random_state, n_modes=(1, None), batch_size=2):
    """Checked modes stacked as vertices, the data and a seeded generator, all on the device.

    Parameters
    ----------
    modes : sequence of nn.Module
        ``n_modes[0]`` to ``n_modes[1]`` networks of one architecture that map float32
        batches of ``X`` to one logit per class of ``y``.
    X : array-like of shape (n_samples, ...)
    y : array-like of shape (n_samples,)
        Labels of any type.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    random_state : int, RandomState instance or None
        Seeds the returned generator.
    n_modes : tuple of (int, int or None), default=(1, None)
        Fewest and most modes accepted.
    batch_size : int, default=2
        Checked against BatchNorm (which cannot normalise a batch of one).

    Returns
    -------
    points : Simplex
        Vertex ``i`` is ``modes[i]``; the architecture is a copy of ``modes[0]``.
    X_t, y_t : Tensor
        float32 data and class indices.
    classes : ndarray
        The sorted labels of ``y``.
    generator : torch.Generator
        Seeded from ``random_state``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> X, y = np.random.RandomState(0).randn(8, 3), np.array(["a", "b"] * 4)
    >>> points, X_t, y_t, classes, generator = modes_on_device(
    ...     [torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)], X, y, "cpu", random_state=0)
    >>> points.n_vertices, X_t.dtype, classes.tolist()
    (2, torch.float32, ['a', 'b'])
    """
    modes = check_modes(modes, *n_modes)
    X, y = check_data(X, y)
    check_batchnorm_batch(modes[0], batch_size, len(X))
    device = resolve_device(device)
    encoder = LabelEncoder().fit(y)
    check_module_output(modes[0], X, len(encoder.classes_))
    X_t = torch.as_tensor(X, device=device)
    y_t = torch.as_tensor(encoder.transform(y), device=device)
    seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    points = Simplex.from_module(copy.deepcopy(modes[0]).to(device))
    for mode in modes[1:]:
        points = points.add_vertex({k: v.to(device) for k, v in mode.named_parameters()})
    generator = torch.Generator(device=device).manual_seed(seed)
    return points, X_t, y_t, encoder.classes_, generator


def flat_parameters(module: nn.Module) -> np.ndarray:
    """A module's trainable parameters as one vector, in the order LossPlane's anchors use.

    Parameters
    ----------
    module : nn.Module

    Returns
    -------
    ndarray of shape (n_params,)

    Examples
    --------
    >>> import torch
    >>> flat_parameters(torch.nn.Linear(3, 2)).shape
    (8,)
    """
    return flatten(trainable_parameters(module), 0).cpu().numpy()


def numeric_array(a, name: str, dtype=np.float64) -> np.ndarray:
    """``a`` (array-like, tensor, or sequence of tensors) as a ``dtype`` array, or a ValueError naming ``name``.

    Tensors are detached and moved to the CPU first (one that requires grad works on its
    values); strings, complex numbers and other non-real values are refused, never parsed
    or cut. May share memory with ``a``: copy before writing.
    """
    if isinstance(a, (list, tuple)) and a and all(torch.is_tensor(t) for t in a):
        try:
            a = torch.stack([t.detach().cpu() for t in a])
        except RuntimeError as exc:
            raise ValueError(f"{name} must hold tensors of one shape: {exc}") from exc
    if torch.is_tensor(a):
        if a.is_complex():
            raise ValueError(f"{name} must hold real numbers; got a tensor of {a.dtype}.")
        a = a.detach().to("cpu", torch.float64).numpy()
    try:
        raw = np.asarray(a)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{name} must hold numbers: {exc}") from exc
    if raw.dtype.kind not in "biufO" or (raw.dtype.kind == "O" and any(isinstance(v, (str, bytes)) for v in raw.flat)):
        raise ValueError(f"{name} must hold numbers; got an array of {raw.dtype}"
                         + (f" such as {raw.flat[0].tolist()!r}." if raw.size and hasattr(raw.flat[0], "tolist") else "."))
    try:
        return raw.astype(dtype, copy=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must hold numbers: {exc}") from exc


def _class_indices(module: nn.Module, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``y`` as int64 class indices, each below the module's number of outputs; never truncated (0.5 is refused)."""
    indices = None
    if y.dtype.kind in "biufO":  # bools are the indices 0 and 1; 1.0 is 1
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NaN cast to int: refused below
            try:
                indices = y.astype(np.int64)
            except (TypeError, ValueError, OverflowError):
                pass
    wrong = np.ones(len(y), dtype=bool) if indices is None else (indices != y) | (indices < 0)
    if wrong.any():
        raise ValueError("y must hold class indices of the module's outputs, integers from 0 to n_outputs - 1 "
                         f"(labels of another kind need an estimator's classes_); got {y[wrong][0].tolist()!r}.")
    n_outputs = check_module_output(module, X, None)
    if len(y) and indices.max() >= n_outputs:
        raise ValueError(f"y holds class index {indices.max()}, but the module has {n_outputs} outputs.")
    return indices


@torch.no_grad()
def weights_loss(module: nn.Module, weights, X, y, *, like=None, buffers=None, batch_size: int = 512,
                 grid_batch: int = 32, device: str | torch.device = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Mean cross-entropy and accuracy of ``module`` with each row of ``weights`` as its parameters.

    Rows run ``grid_batch`` at a time as one vectorised batch of models. A module with
    BatchNorm gets statistics of its own for every row, recomputed on ``X``.

    Parameters
    ----------
    module : nn.Module
    weights : Tensor or array-like of shape (n_vectors, n_params)
        Flat parameter vectors in ``named_parameters`` order (see :func:`flat_parameters`).
    X : array-like of shape (n_samples, ...)
    y : array-like of shape (n_samples,)
        Class indices.
    like, buffers : dict of str to Tensor, default=None
        Parameter layout (tensors of shape ``(1, *shape)``) and buffers; by default the module's own.
    batch_size, grid_batch : int, default=512, 32
    device : str or torch.device, default="auto"

    Returns
    -------
    loss, accuracy : ndarray of shape (n_vectors,)

    Examples
    --------
    >>> import numpy as np, torch
    >>> net = torch.nn.Linear(3, 2)
    >>> w = np.stack([flat_parameters(net), np.zeros(8, dtype=np.float32)])
    >>> X, y = np.ones((4, 3), dtype=np.float32), np.array([0, 1, 0, 1])
    >>> loss, accuracy = weights_loss(net, w, X, y)
    >>> round(float(loss[1]), 4)  # zero weights: uniform probabilities, loss log 2
    0.6931
    """
    device = resolve_device(device)
    like = like if like is not None else {k: v.unsqueeze(0) for k, v in trainable_parameters(module).items()}
    buffers = buffers if buffers is not None else fixed_tensors(module)
    X, y = check_data(X, y)
    check_batchnorm_batch(module, batch_size, len(X))
    y = _class_indices(module, X, y)
    module = copy.deepcopy(module).to(device)  # the caller's module keeps its device and mode
    weights = weights if torch.is_tensor(weights) else torch.as_tensor(numeric_array(weights, "weights", np.float32))
    n_params = sum(v[0].numel() for v in like.values())
    if weights.ndim != 2 or weights.shape[1] != n_params:
        raise ValueError(f"weights must have shape (n_vectors, {n_params}) for this module; got {tuple(weights.shape)}.")
    if not torch.isfinite(weights).all():
        raise ValueError("weights contain NaN or infinity.")
    X_t = torch.as_tensor(X, device=device)
    y_t = torch.as_tensor(y.astype(np.int64), device=device)
    batches = X_t.split(batch_size)
    losses, hits = [], []
    for chunk in weights.float().split(grid_batch):
        params = unflatten(chunk.to(device), like)
        with own_global_rng(device):  # dropout while BatchNorm statistics are recomputed
            bufs = model_buffers(module, params, {k: v.to(device) for k, v in buffers.items()}, X_t, batch_size)
        loss = torch.zeros(len(chunk), dtype=torch.float64, device=device)
        correct = torch.zeros(len(chunk), dtype=torch.float64, device=device)
        for xb, yb in zip(batches, y_t.split(batch_size)):
            logits = batched_forward(module.eval(), params, bufs, xb)
            loss += nn.functional.cross_entropy(
                logits.flatten(0, 1), yb.repeat(len(chunk)), reduction="none"
            ).view(len(chunk), -1).double().sum(1)
            correct += (logits.argmax(-1) == yb).double().sum(1)
        losses.append(loss / len(X_t))
        hits.append(correct / len(X_t))
    return torch.cat(losses).cpu().numpy(), torch.cat(hits).cpu().numpy()
