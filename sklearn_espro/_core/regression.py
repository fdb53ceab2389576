"""Regression with Gaussian outputs (Lakshminarayanan et al. 2017): the loss and the mixture of members.

A regression network maps ``x`` to a mean and a variance for each of ``t`` targets
(``2 t`` outputs: means, then raw variances turned positive by ``softplus``), or to the
means only (``t`` outputs: a unit variance in standardised units while training, a noise
level fitted afterwards). The networks train on standardised targets
(:func:`standardize_targets`). Pure functions and one loss module; no scikit-learn.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["GaussianNLLLoss", "gaussian_moments", "mixture_moments", "standardize_targets"]

_MIN_VARIANCE = 1e-6
_ROUNDING = 10 * np.finfo(np.float64).eps  # a spread below 10 ulp of max|y| is rounding, not signal


def standardize_targets(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each column of ``y`` centred and scaled, on any scale float64 holds.

    The moments are those of ``y / max|y|`` (values in [-1, 1]), rescaled: ``y``'s own
    standard deviation underflows to 0 for targets around 1e-300, and its squares overflow
    for targets around 1e155. A spread below 10 ulp of ``max|y|`` (a constant column) is
    rounding: the scale is floored there, so a constant is predicted to machine precision.

    Parameters
    ----------
    y : ndarray of shape (n_samples, n_targets)
        Finite.

    Returns
    -------
    z : ndarray of shape (n_samples, n_targets)
        The standardised targets (float64): ``y`` is about ``z * scale + mean``.
    mean, scale : ndarray of shape (n_targets,)
        ``scale`` is positive (at least the smallest subnormal float64).

    Examples
    --------
    >>> z, mean, scale = standardize_targets(np.array([[1e-300], [3e-300]]))
    >>> z.ravel(), mean, scale
    (array([-1.,  1.]), array([2.e-300]), array([1.e-300]))
    """
    y = np.asarray(y, dtype=np.float64)
    size = np.abs(y).max(0)
    unit = np.where(size > 0, size, 1.0)
    u = y / unit
    center, spread = u.mean(0), np.maximum(u.std(0), _ROUNDING)
    scale = np.maximum(spread * unit, np.finfo(np.float64).smallest_subnormal)
    return (u - center) / spread, center * unit, scale


def gaussian_moments(outputs: Tensor, n_targets: int, noise_var: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Means and variances of the Gaussians a network's outputs stand for.

    Parameters
    ----------
    outputs : Tensor of shape (..., 2 * n_targets) or (..., n_targets)
        Means then raw variances, or means only.
    n_targets : int
    noise_var : Tensor of shape (n_targets,), default=None
        The variance of a means-only network (1 when None).

    Returns
    -------
    mean, var : Tensor of shape (..., n_targets)

    Examples
    --------
    >>> mean, var = gaussian_moments(torch.tensor([[1.0, 0.0]]), 1)
    >>> mean, var.round(decimals=4)
    (tensor([[1.]]), tensor([[0.6931]]))
    """
    mean = outputs[..., :n_targets]
    if outputs.shape[-1] == 2 * n_targets:
        return mean, nn.functional.softplus(outputs[..., n_targets:]) + _MIN_VARIANCE
    if outputs.shape[-1] != n_targets:
        raise ValueError(f"The module returned {outputs.shape[-1]} outputs; a regression module returns "
                         f"{n_targets} means, or {n_targets} means and {n_targets} variances.")
    var = torch.ones_like(mean) if noise_var is None else noise_var.to(mean).expand_as(mean)
    return mean, var


class GaussianNLLLoss(nn.Module):
    """Mean Gaussian negative log-likelihood of targets under a network's outputs.

    ``0.5 * (log var + (y - mean)^2 / var + log 2 pi)``, averaged over samples and
    targets; with means-only outputs the variance is 1 (the squared error halved, plus a
    constant). The criterion of :class:`~sklearn_espro.ESPRORegressor`.

    Examples
    --------
    >>> loss = GaussianNLLLoss()
    >>> round(float(loss(torch.zeros(3, 1), torch.zeros(3, 1))), 4)  # 0.5 * log(2 pi)
    0.9189
    """

    def forward(self, outputs: Tensor, target: Tensor) -> Tensor:
        target = target.reshape(len(target), -1)
        mean, var = gaussian_moments(outputs, target.shape[1])
        return 0.5 * (var.log() + (target - mean).square() / var + math.log(2 * math.pi)).mean()


def mixture_moments(means: Tensor, variances: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance of a mixture of Gaussians, one per model.

    Parameters
    ----------
    means, variances : Tensor of shape (n_models, n_samples, n_targets)
    weights : Tensor of shape (n_models,)
        Summing to one.

    Returns
    -------
    mean, var : Tensor of shape (n_samples, n_targets)
        ``sum_k w_k mu_k`` and ``sum_k w_k (sigma_k^2 + mu_k^2) - mean^2``.

    Examples
    --------
    >>> m, v = mixture_moments(torch.tensor([[[0.0]], [[2.0]]]), torch.ones(2, 1, 1), torch.tensor([0.5, 0.5]))
    >>> m, v
    (tensor([[1.]]), tensor([[2.]]))
    """
    w = weights.to(means).view(-1, 1, 1)
    mean = (w * means).sum(0)
    second = (w * (variances + means.square())).sum(0)
    return mean, (second - mean.square()).clamp_min(0)
