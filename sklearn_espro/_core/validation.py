"""Input checks and conversions for the estimator (the one place that imports sklearn internals).

Resolves the ``device`` argument, builds a module from ``module`` and its routed
``module__*`` arguments, and turns the ``modes`` a user passes (modules, state
dicts, fitted skorch nets) into state dicts.
"""

from __future__ import annotations

import copy
import inspect
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from torch import nn
from torch.utils.data import DataLoader

from .module_checks import check_augment, check_batchnorm_batch, check_module, check_module_output, check_trainable
from .modes import INTERNAL_CALLBACK_PREFIX, mode_monitors
from .rows import LOADER_OPTIONS

__all__ = [
    "Interval",
    "RoutedParamsMixin",
    "StrOptions",
    "build_module",
    "check_callbacks",
    "check_criterion",
    "check_data",
    "check_augment",
    "check_module",
    "check_module_output",
    "check_no_bools",
    "check_optimizer",
    "check_trainable",
    "check_X_y",
    "check_batchnorm_batch",
    "check_modes",
    "mode_state_dict",
    "reset_parameters",
    "resolve_device",
    "validate_params",
]


ROUTED = ("module__", "optimizer__", "criterion__", "iterator_train__", "iterator_valid__")


class RoutedParamsMixin:
    """``module__*``, ``optimizer__*``, ``criterion__*`` and ``iterator_*__*`` arguments, routed as skorch does.

    They arrive through ``**kwargs``, live in the private dict ``_kwargs`` (so that
    ``__init__`` sets no attribute that is not a parameter), show in ``get_params`` and
    are set by ``set_params``; a name without a routed prefix is refused in ``fit``.
    """

    def get_params(self, deep=True):
        return {**super().get_params(deep=deep), **self._kwargs}

    def set_params(self, **params):
        routed = {k: params.pop(k) for k in [k for k in params if k.startswith(ROUTED) or k in self._kwargs]}
        self._kwargs = {**self._kwargs, **routed}  # a new dict: a shallow copy of the estimator keeps its own
        return super().set_params(**params)

    def _routed(self, prefix: str) -> dict[str, Any]:
        return {k[len(prefix):]: v for k, v in self._kwargs.items() if k.startswith(prefix)}

    def _check_routed(self) -> None:
        unexpected = [k for k in self._kwargs if not k.startswith(ROUTED)]
        if unexpected:
            raise TypeError(
                f"{type(self).__name__} got an unexpected argument {unexpected[0]!r}; routed arguments "
                f"start with {', '.join(ROUTED)}."
            )
        for prefix in ("iterator_train__", "iterator_valid__"):
            for name in self._routed(prefix):
                if name not in LOADER_OPTIONS:
                    raise TypeError(
                        f"{type(self).__name__} got {prefix}{name}, which is not a DataLoader argument it passes "
                        f"on; those are {', '.join(sorted(LOADER_OPTIONS))} (the batches and their order are ESPRO's)."
                    )
            try:  # a DataLoader built (not iterated) with them checks their values and combination
                DataLoader(range(2), **self._routed(prefix))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"The {prefix}* arguments {self._routed(prefix)} are not valid DataLoader "
                                 f"arguments: {exc}") from exc


def resolve_device(device: str | torch.device, *, fallback: bool = False) -> str:
    """``"auto"`` means CUDA when available, else CPU; other values must be torch devices.

    With ``fallback=True`` (prediction with a model fitted elsewhere), an unavailable
    CUDA device gives the CPU and a warning instead of an error.
    """
    if isinstance(device, str) and device == "auto" or device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"device={device!r} is not a torch device; use 'auto', 'cpu' or 'cuda'.") from exc
    if resolved.type not in ("cpu", "cuda", "mps") or (resolved.type == "cpu" and resolved.index not in (None, 0)):
        raise ValueError(f"device={device!r} is not supported; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} was asked for, but MPS is not available on this machine.")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        if fallback:
            warnings.warn(f"device={device!r}, but CUDA is not available here: predicting on the CPU.", stacklevel=3)
            return "cpu"
        raise ValueError(f"device={device!r} was asked for, but CUDA is not available on this machine.")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(f"device={device!r} was asked for, but this machine has {torch.cuda.device_count()} CUDA device(s).")
    return "cpu" if resolved.type == "cpu" else str(resolved)


def _length(a) -> int | None:
    """Number of samples of an array-like (rows of a matrix), or None if it has none."""
    if isinstance(a, str):
        return None
    shape = getattr(a, "shape", None)
    if shape is not None:
        return shape[0] if len(shape) else None
    return len(a) if hasattr(a, "__len__") else None


def check_X_y(validate, X, y="no_validation", **kwargs):
    """``validate(X, y, **kwargs)`` (sklearn's ``validate_data``) with errors that name the array.

    Adds a check that ``X`` and ``y`` have as many samples, and says that ``X`` must be
    numeric when its values cannot be read as numbers.
    """
    n_X, n_y = _length(X), _length(y)
    if n_X is not None and n_y is not None and n_X != n_y:
        raise ValueError(f"X has {n_X} samples but y has {n_y}; they must have one label per sample.")
    try:
        # a C-ordered copy: modules may write into their input (nn.ReLU(inplace=True)), and
        # torch cannot wrap arrays with negative strides
        out = validate(X, y, copy=True, order="C", **kwargs)
    except ValueError as exc:
        if "could not convert" in str(exc):
            raise ValueError(f"X must hold numbers (it is cast to float32): {exc}") from exc
        raise
    X_checked = out[0] if isinstance(out, tuple) else out
    if X_checked.ndim > 2 and 0 in X_checked.shape[1:]:
        raise ValueError(f"X has samples of shape {X_checked.shape[1:]}, which hold no values.")
    return out


def reset_parameters(module: nn.Module) -> nn.Module:
    """Re-initialise every submodule that has ``reset_parameters`` (in place)."""
    for sub in module.modules():
        if hasattr(sub, "reset_parameters"):
            sub.reset_parameters()
    return module


def _accepted_arguments(cls: type) -> tuple[set[str], bool]:
    params = inspect.signature(cls.__init__).parameters
    names = {n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    return names, takes_any


def build_module(
    module: Any, kwargs: dict[str, Any], *, n_features_in: int, n_classes: int
) -> nn.Module:
    """A freshly initialised network from ``module`` (class or instance) and its arguments.

    A class is called with ``kwargs``, to which ``n_features_in`` and ``n_classes`` are
    added when its constructor takes them and they were not given. An instance is
    deep-copied and re-initialised (``kwargs`` must then be empty).
    """
    if isinstance(module, nn.Module):
        if kwargs:
            raise ValueError(
                f"module__{next(iter(kwargs))} was given, but module is an instance of "
                f"{type(module).__name__}; pass the class to set its arguments."
            )
        return reset_parameters(copy.deepcopy(module))
    if not (isinstance(module, type) and issubclass(module, nn.Module)):
        what = f"the class {module.__name__}" if isinstance(module, type) else f"{module!r}"
        raise TypeError(f"module must be a torch.nn.Module subclass or instance, got {what}.")
    accepted, takes_any = _accepted_arguments(module)
    unknown = sorted(set(kwargs) - accepted)
    if unknown and not takes_any:
        raise ValueError(
            f"module__{unknown[0]} is not an argument of {module.__name__}; "
            f"it accepts: {', '.join(sorted(accepted)) or 'nothing'}."
        )
    kwargs = dict(kwargs)
    for name, value in (("n_features_in", n_features_in), ("n_classes", n_classes)):
        if name in accepted and name not in kwargs:
            kwargs[name] = value
    return module(**kwargs)


def mode_state_dict(mode: Any, index: int) -> dict[str, torch.Tensor]:
    """State dict of a pretrained mode: an ``nn.Module``, a state dict, or a fitted skorch net."""
    if isinstance(mode, nn.Module):
        state = mode.state_dict()
    elif hasattr(mode, "module_") and isinstance(mode.module_, nn.Module):
        state = mode.module_.state_dict()
    elif isinstance(mode, dict) and all(isinstance(v, torch.Tensor) for v in mode.values()):
        state = mode
    else:
        raise TypeError(
            f"modes[{index}] must be an nn.Module, a state dict or a fitted skorch net, "
            f"got {type(mode).__name__}."
        )
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def check_data(X, y=None, *, n_features=None, name="X"):
    """Float32, C-ordered copies of tool input, with errors that name the array.

    ``X`` must be non-empty, finite and numeric (n-d allowed); ``y``, when given, one
    label per sample; ``n_features``, when given, the shape of one sample of ``X``.
    """
    from sklearn.utils import check_array

    X, y = (v.detach().cpu() if isinstance(v, torch.Tensor) else v for v in (X, y))  # requires_grad: its values
    if y is not None and _length(X) is not None and _length(y) is not None and _length(X) != _length(y):
        raise ValueError(f"{name} has {_length(X)} samples but y has {_length(y)}; they must have one label per sample.")
    try:
        X = check_array(X, dtype=np.float32, allow_nd=True, copy=True, order="C", input_name=name)
    except ValueError as exc:
        raise ValueError(f"{name} must be a non-empty array of finite numbers: {exc}") from exc
    if n_features is not None and tuple(X.shape[1:]) != tuple(n_features):
        raise ValueError(f"{name} has samples of shape {X.shape[1:]}, but the module takes samples of shape {tuple(n_features)}.")
    if y is None:
        return X
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, one label per sample; got shape {y.shape}.")
    return X, y


def check_no_bools(estimator, names) -> None:
    """Refuse ``True``/``False`` for integer parameters (``bool`` is an ``int`` to Python)."""
    for name in names:
        value = getattr(estimator, name)
        if isinstance(value, (bool, np.bool_)):
            raise ValueError(f"The {name!r} parameter of {type(estimator).__name__} must be an int, not a bool; got {value!r}.")


def check_optimizer(optimizer: Any, kwargs: dict[str, Any]) -> None:
    """``optimizer`` must be a first-order torch optimizer class that ``kwargs`` can build."""
    if not (isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer subclass (e.g. torch.optim.SGD), got {optimizer!r}.")
    if "lr" in kwargs:
        raise ValueError("optimizer__lr was given: set the learning rates with lr (modes) and vertex_lr (vertices).")
    closure = inspect.signature(optimizer.step).parameters.get("closure")
    if closure is not None and closure.default is inspect.Parameter.empty:
        raise ValueError(
            f"optimizer={optimizer.__name__} needs a closure in step() (as LBFGS does); training here calls "
            "step() without one: use SGD, Adam or another first-order optimizer."
        )
    try:
        optimizer([nn.Parameter(torch.zeros(1))], lr=0.1, **kwargs)
    except (TypeError, ValueError) as exc:
        args = ", ".join(f"optimizer__{k}={v!r}" for k, v in kwargs.items()) or "no optimizer__ arguments"
        raise ValueError(f"optimizer={optimizer.__name__} cannot be built with {args}: {exc}") from exc


def check_criterion(criterion: Any, kwargs: dict[str, Any], n_classes: int) -> nn.Module:
    """Build the criterion and check that it reduces logits and class indices to one number."""
    if not (isinstance(criterion, type) and issubclass(criterion, nn.Module)):
        raise TypeError(f"criterion must be an nn.Module subclass (e.g. nn.CrossEntropyLoss), got {criterion!r}.")
    name = criterion.__name__
    try:
        built = criterion(**kwargs)
        out = built(torch.zeros(4, n_classes), torch.arange(4) % n_classes)
    except Exception as exc:
        raise ValueError(
            f"criterion={name} with {', '.join(f'criterion__{k}' for k in kwargs) or 'no arguments'} "
            f"failed on logits of shape (4, {n_classes}) and class indices: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(out, torch.Tensor) or out.ndim != 0:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"criterion={name} returned {shape} for a batch; it must reduce to one number "
            f"(criterion__reduction={kwargs.get('reduction', 'mean')!r}: use 'mean')."
        )
    confident = torch.nn.functional.one_hot(torch.arange(4) % n_classes, n_classes).float() * 8.0
    if float(built(confident, torch.arange(4) % n_classes)) < 0:
        raise ValueError(
            f"criterion={name} gives a negative loss on logits: it expects log-probabilities "
            "(as NLLLoss does), but the module returns logits; use nn.CrossEntropyLoss."
        )
    return built


def check_callbacks(callbacks, *, validation: bool = False, classifier: bool = True) -> None:
    """Each callback must be a skorch callback (instance, class or (name, callback) pair)
    that monitors something the mode training records: ``train_loss``, and with a
    validation split (``validation``) ``valid_loss`` and, for a classifier, ``valid_acc``."""
    from skorch.callbacks import Callback

    monitors = mode_monitors(validation, classifier)

    for i, item in enumerate(callbacks or []):
        cb = item[1] if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) else item
        if isinstance(cb, type) and issubclass(cb, Callback):
            try:
                cb = cb()  # skorch builds callback classes with their defaults
            except TypeError:
                continue
        if not isinstance(cb, Callback):
            raise TypeError(
                f"callbacks[{i}] is a {type(cb).__name__}, not a skorch callback (an instance of "
                "skorch.callbacks.Callback, or a (name, callback) pair)."
            )
        name = item[0] if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) else None
        if name is not None and name.startswith(INTERNAL_CALLBACK_PREFIX):
            raise ValueError(f"callbacks[{i}] is named {name!r}; names starting with {INTERNAL_CALLBACK_PREFIX!r} "
                             "belong to the callbacks ESPRO adds itself: choose another name.")
        monitor = getattr(cb, "monitor", None)
        if isinstance(monitor, str) and monitor not in monitors:
            recorded = ", ".join(repr(m) for m in monitors if not m.endswith("_best"))
            fix = ("(each also as '*_best'): monitor one of those instead" if validation else
                   "(no validation split: validation_fraction is None): monitor 'train_loss' instead, e.g. "
                   f"{type(cb).__name__}(monitor='train_loss'), or set validation_fraction (e.g. 0.1) to hold "
                   "rows out and record 'valid_loss'")
            raise ValueError(f"callbacks[{i}] ({type(cb).__name__}) monitors {monitor!r}, but the history of a mode's "
                             f"training records only {recorded} {fix}.")


def check_modes(modes: Any, n_min: int = 1, n_max: int | None = None) -> list[nn.Module]:
    """A list of ``nn.Module`` of one architecture (same parameter and buffer names and shapes)."""
    if isinstance(modes, nn.Module) or not hasattr(modes, "__len__"):
        raise TypeError(f"modes must be a sequence of nn.Module, got {type(modes).__name__}.")
    modes = list(modes)
    count = f"{n_min}" if n_max == n_min else f"at least {n_min}" if n_max is None else f"{n_min} to {n_max}"
    if not n_min <= len(modes) <= (n_max or len(modes)):
        raise ValueError(f"modes must hold {count} networks; got {len(modes)}.")
    for i, mode in enumerate(modes):
        if not isinstance(mode, nn.Module):
            raise TypeError(f"modes[{i}] is a {type(mode).__name__}, not an nn.Module.")
    layout = {k: tuple(v.shape) for k, v in modes[0].state_dict().items()}
    frozen = {k: v.detach() for k, v in modes[0].named_parameters() if not v.requires_grad}
    for i, mode in enumerate(modes[1:], 1):
        other = {k: tuple(v.shape) for k, v in mode.state_dict().items()}
        if other != layout:
            diff = sorted(set(layout.items()) ^ set(other.items()))[:3]
            raise ValueError(f"modes[{i}] does not have the architecture of modes[0] (they differ in {diff}).")
        params = dict(mode.named_parameters())
        for name, value in frozen.items():
            if params[name].requires_grad or not torch.equal(params[name].detach().cpu(), value.cpu()):
                raise ValueError(
                    f"modes[{i}].{name} differs from modes[0].{name}, which is frozen (requires_grad=False): "
                    "the points of a complex share frozen parameters, so they must be equal in every mode."
                )
    return modes
