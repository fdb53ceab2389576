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
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

__all__ = [
    "Interval",
    "RoutedParamsMixin",
    "StrOptions",
    "build_module",
    "check_module_output",
    "check_X_y",
    "mode_state_dict",
    "reset_parameters",
    "resolve_device",
]


ROUTED = ("module__", "optimizer__", "criterion__")


class RoutedParamsMixin:
    """``module__*``, ``optimizer__*`` and ``criterion__*`` arguments, routed as skorch does.

    They arrive through ``**kwargs``, live in the private dict ``_kwargs`` (so that
    ``__init__`` sets no attribute that is not a parameter), show in ``get_params`` and
    are set by ``set_params``; a name without a routed prefix is refused in ``fit``.
    """

    def get_params(self, deep=True):
        return {**super().get_params(deep=deep), **self._kwargs}

    def set_params(self, **params):
        for key in [k for k in params if k.startswith(ROUTED) or k in self._kwargs]:
            self._kwargs[key] = params.pop(key)
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


def resolve_device(device: str | torch.device, *, fallback: bool = False) -> str:
    """``"auto"`` means CUDA when available, else CPU; other values must be torch devices.

    With ``fallback=True`` (prediction with a model fitted elsewhere), an unavailable
    CUDA device gives the CPU and a warning instead of an error.
    """
    if device == "auto" or device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a torch device; use 'auto', 'cpu' or 'cuda'.") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        if fallback:
            warnings.warn(f"device={device!r}, but CUDA is not available here: predicting on the CPU.", stacklevel=3)
            return "cpu"
        raise ValueError(f"device={device!r} was asked for, but CUDA is not available on this machine.")
    return str(resolved)


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
        out = validate(X, y, **kwargs)
    except ValueError as exc:
        if "could not convert" in str(exc):
            raise ValueError(f"X must hold numbers (it is cast to float32): {exc}") from exc
        raise
    X_checked = out[0] if isinstance(out, tuple) else out
    if X_checked.ndim > 2 and 0 in X_checked.shape[1:]:
        raise ValueError(f"X has samples of shape {X_checked.shape[1:]}, which hold no values.")
    return out


def check_module_output(module: nn.Module, X: np.ndarray, n_classes: int) -> None:
    """Run ``module`` on two samples of ``X``: it must work and return (2, n_classes) logits."""
    probe = torch.as_tensor(X[:2])
    name = type(module).__name__
    was_training = module.training
    try:
        with torch.no_grad():
            out = module.eval()(probe)
    except Exception as exc:
        raise ValueError(
            f"The module {name} failed on a batch of X of shape {tuple(probe.shape)} "
            f"(float32): {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        module.train(was_training)
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"The module {name} returned a {type(out).__name__}; it must return a tensor of logits.")
    if tuple(out.shape) != (len(probe), n_classes):
        raise ValueError(
            f"The module {name} returned logits of shape {tuple(out.shape)} for a batch of "
            f"shape {tuple(probe.shape)}; expected ({len(probe)}, {n_classes}): one logit for "
            f"each of the {n_classes} classes found in y."
        )


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
