"""Checks of a network before anything trains: it takes ``X``, returns the right outputs, has
enough trainable parameters, BatchNorm that can be trained and predicted with, and an
``augment`` that keeps batches as they are shaped. Re-exported by ``validation``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .batchnorm import has_batchnorm
from .global_state import private_module
from .rows import take

__all__ = ["check_augment", "check_batchnorm_batch", "check_module", "check_module_output", "check_trainable"]


def check_module_output(module: nn.Module, X: np.ndarray, n_classes: int | None) -> int:
    """Run ``module`` on two samples of ``X``: it must work and return (2, n_classes) logits.

    ``n_classes=None`` accepts any number of logits. Returns the number of logits.
    """
    device = next(iter(module.parameters()), torch.empty(0)).device
    probe = torch.as_tensor(take(X, np.arange(min(2, len(X)))), device=device)
    name = type(module).__name__
    try:
        with torch.no_grad(), private_module(module) as work:  # module itself is shared by predicting threads
            out = work(probe)
    except Exception as exc:
        raise ValueError(
            f"The module {name} failed on a batch of X of shape {tuple(probe.shape)} "
            f"(float32): {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"The module {name} returned a {type(out).__name__}; it must return a tensor of logits.")
    if n_classes is None:
        if out.ndim != 2 or len(out) != len(probe):
            raise ValueError(f"The module {name} returned a tensor of shape {tuple(out.shape)} for a batch of shape "
                             f"{tuple(probe.shape)}; expected a 2-D tensor ({len(probe)}, n_outputs).")
        n_classes = out.shape[-1]
    if tuple(out.shape) != (len(probe), n_classes):
        raise ValueError(
            f"The module {name} returned logits of shape {tuple(out.shape)} for a batch of "
            f"shape {tuple(probe.shape)}; expected ({len(probe)}, {n_classes}): one logit for "
            f"each of the {n_classes} classes found in y."
        )
    return n_classes


def check_trainable(module: nn.Module, n_vertices: int) -> None:
    """The module must have trainable parameters, enough for ``n_vertices`` affinely independent vertices."""
    n_params = sum(p.numel() for p in module.parameters() if p.requires_grad)
    if n_params == 0:
        raise ValueError(
            f"The module {type(module).__name__} has no trainable parameters (none at all, or all with "
            "requires_grad=False): there is nothing to train and no simplex to grow."
        )
    if n_vertices - 1 > n_params:
        raise ValueError(
            f"n_vertices={n_vertices} needs at least {n_vertices - 1} trainable parameters for a simplex "
            f"of non-zero volume; the module {type(module).__name__} has {n_params}."
        )


def check_batchnorm_batch(module: nn.Module, batch_size: int, n_samples: int, name: str = "batch_size") -> None:
    """BatchNorm in training mode needs two samples a batch: refuse ``batch_size`` or data that give one.

    BatchNorm layers without running statistics (``track_running_stats=False``) are refused
    too: they normalise with the statistics of whatever rows are predicted together, so a
    row's probabilities would depend on its neighbours and one row alone could not be
    predicted; ESPRO's prediction models each need statistics of their own.
    """
    if not has_batchnorm(module):
        return
    batchless = [layer for layer, m in module.named_modules()
                 if isinstance(m, nn.modules.batchnorm._BatchNorm) and not m.track_running_stats]
    if batchless:
        raise ValueError(
            f"The module {type(module).__name__} has BatchNorm layers without running statistics "
            f"({batchless[0]!r} has track_running_stats=False): in evaluation mode they normalise each batch "
            "by its own statistics, so a row's prediction would depend on the rows predicted with it. Use "
            "track_running_stats=True (ESPRO recomputes the statistics of every model it predicts with), or a "
            "normalisation that works per sample (nn.LayerNorm, nn.GroupNorm)."
        )
    if batch_size < 2:
        raise ValueError(f"{name}={batch_size}, but the module has BatchNorm layers, which need two samples a batch.")
    if n_samples < 2:
        raise ValueError(f"X has {n_samples} sample, but the module has BatchNorm layers, which need two.")


def check_augment(augment: Any, X: np.ndarray, device: str) -> None:
    """``augment`` must map a batch of ``X`` (two samples, on ``device``) to a finite float
    tensor of the same shape on the same device, and leave the batch it was given unchanged."""
    if augment is None:
        return
    if not callable(augment):
        raise TypeError(f"augment must be a callable taking a batch tensor; got {type(augment).__name__}.")
    probe = torch.as_tensor(take(X, np.arange(min(2, len(X)))), device=device)
    before = probe.clone()
    try:
        out = augment(probe)
    except Exception as exc:
        raise ValueError(f"augment failed on a batch of X of shape {tuple(probe.shape)} (float32, on {device}): "
                         f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        raise ValueError(f"augment must return a floating-point tensor; got {type(out).__name__}"
                         f"{f' of dtype {out.dtype}' if isinstance(out, torch.Tensor) else ''}.")
    if out.shape != probe.shape or out.device != probe.device:
        raise ValueError(f"augment must return a batch of the shape and device it was given, {tuple(probe.shape)} on "
                         f"{probe.device}; got {tuple(out.shape)} on {out.device}.")
    if not torch.equal(probe, before):
        raise ValueError("augment changed the batch it was given in place; it must return a new tensor.")
    if not torch.isfinite(out).all():
        raise ValueError("augment returned NaN or infinite values for a batch of X.")


def check_module(module: nn.Module, X: np.ndarray, n_classes: int, n_vertices: int, batch_size: int) -> None:
    """The first network: trainable, able to take ``X`` and its batches, one logit per class."""
    check_trainable(module, n_vertices)
    check_batchnorm_batch(module, batch_size, len(X))
    check_module_output(module, X, n_classes)
