"""SWAG over a mode-connecting curve (Section 4.1 and Fig. 2 of Benton et al. 2021).

A curve ``w0 -> theta -> w1`` (a polygonal chain, Garipov et al. 2018) is trained on the
expected loss of points drawn along it; its bend ``theta`` then keeps training at a
constant rate while SWAG (Maddox et al. 2019) collects the first two moments and the
last deviations of ``theta``. Curves drawn from that Gaussian show how wide the set of
low-loss connecting paths is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._core.validation import Interval, validate_params
from ._core.landscape import modes_on_device, weights_loss
from ._core.global_state import own_global_rng
from ._core.simplex import Simplex, unflatten
from ._core.growing import check_finite
from ._core.training import init_vertex_state, run_epoch

__all__ = ["CurveSWAG", "chain_weights", "fit_curve_swag"]


def chain_weights(w0: Tensor, theta: Tensor, w1: Tensor, n_points: int) -> Tensor:
    """Points at ``t = 0, ..., 1`` on the polygonal chains ``w0 -> theta -> w1``.

    ``phi(t) = (1 - 2t) w0 + 2t theta`` for ``t <= 1/2`` and ``(2 - 2t) theta + (2t - 1) w1``
    after (Garipov et al. 2018).

    Parameters
    ----------
    w0, w1 : Tensor of shape (n_params,)
    theta : Tensor of shape (n_curves, n_params)
    n_points : int

    Returns
    -------
    Tensor of shape (n_curves, n_points, n_params)

    Examples
    --------
    >>> import torch
    >>> chain_weights(torch.zeros(1), torch.ones(1, 1), torch.zeros(1), 5).flatten().tolist()
    [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    t = torch.linspace(0, 1, n_points, dtype=theta.dtype, device=theta.device)
    first, second = (1 - 2 * t).clamp(min=0), (2 * t - 1).clamp(min=0)
    middle = 1 - first - second
    return (first[:, None] * w0 + second[:, None] * w1).unsqueeze(0) + middle[None, :, None] * theta[:, None, :]


class CurveSWAG:
    """A trained curve ``w0 -> theta -> w1`` and the SWAG Gaussian over its bend ``theta``.

    Parameters
    ----------
    points : Simplex
        Vertices ``w0``, ``w1`` and the SWA bend (the mean of the collected ``theta``),
        with the architecture and its buffers.
    mean, sq_mean : Tensor of shape (n_params,)
        Running means of ``theta`` and ``theta ** 2`` (float64).
    deviations : Tensor of shape (rank, n_params)
        The last ``theta_i - mean_i`` (the low-rank part of SWAG).
    classes : array-like of shape (n_classes,), default=None
        The labels of the outputs; None: ``y`` holds class indices.

    Notes
    -----
    A draw is ``theta = mean + sqrt(diag) z1 / sqrt(2) + D^T z2 / sqrt(2 (K - 1))`` with
    ``diag = sq_mean - mean^2`` and ``z1, z2`` standard normal (Maddox et al. 2019, Eq. 1);
    ``scale`` multiplies both noise terms.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(1, 1, bias=False)
    >>> points = Simplex(net, {"weight": torch.tensor([[[0.0]], [[2.0]], [[1.0]]])})
    >>> swag = CurveSWAG(points, torch.ones(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64),
    ...                  torch.zeros(2, 1, dtype=torch.float64))
    >>> swag.sample(3).flatten().tolist()  # no spread collected: every draw is the mean
    [1.0, 1.0, 1.0]
    """

    def __init__(self, points: Simplex, mean: Tensor, sq_mean: Tensor, deviations: Tensor, classes=None):
        self.points = points
        self.mean = mean
        self.sq_mean = sq_mean
        self.deviations = deviations
        self.classes = None if classes is None else np.asarray(classes)

    @property
    def ends(self) -> tuple[Tensor, Tensor]:
        """The two modes ``w0, w1`` as flat float32 vectors."""
        flat = self.points.flat_vertices()
        return flat[0], flat[1]

    def variance(self) -> Tensor:
        """SWAG's diagonal variance, clamped at zero: (n_params,) float64."""
        return (self.sq_mean - self.mean.square()).clamp(min=0)

    def sample(self, n_curves: int, generator: torch.Generator | None = None, scale: float = 1.0) -> Tensor:
        """Bends ``theta`` drawn from the SWAG Gaussian: (n_curves, n_params) float32."""
        z1 = torch.randn(n_curves, self.mean.numel(), generator=generator, dtype=torch.float64)
        theta = self.mean + scale * self.variance().sqrt() * z1 / math.sqrt(2)
        rank = self.deviations.shape[0]
        if rank > 1:
            z2 = torch.randn(n_curves, rank, generator=generator, dtype=torch.float64)
            theta = theta + scale * z2 @ self.deviations / math.sqrt(2 * (rank - 1))
        return theta.float()

    def path_loss(self, X, y, theta: Tensor | None = None, n_points: int = 21,
                  device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
        """Training loss and accuracy along curves: arrays of shape (n_curves, n_points).

        ``theta`` (n_curves, n_params) defaults to the SWA bend; ``y`` holds labels of
        ``classes`` (class indices when it is None). BatchNorm statistics are recomputed
        on ``X`` at every point.
        """
        if isinstance(n_points, bool) or not isinstance(n_points, Integral) or n_points < 2:
            raise ValueError(f"n_points must be an int of at least 2, got {n_points!r}.")
        y = np.asarray(y)
        if self.classes is not None:
            if not np.isin(y, self.classes).all():
                raise ValueError("y holds labels the curve was not trained on.")
            y = np.searchsorted(self.classes, y)
        theta = self.mean[None].float() if theta is None else torch.as_tensor(theta, dtype=torch.float32)
        if theta.ndim != 2 or theta.shape[1] != self.mean.numel():
            raise ValueError(f"theta must have shape (n_curves, {self.mean.numel()}); got {tuple(theta.shape)}.")
        w = chain_weights(*(v.float() for v in (self.ends[0], theta, self.ends[1])), n_points)
        loss, accuracy = weights_loss(self.points.module, w.flatten(0, 1), X, y, like=self.points.vertices,
                                      buffers=self.points.buffers, device=device)
        return loss.reshape(len(theta), n_points), accuracy.reshape(len(theta), n_points)


def _collect(moments: dict[str, Any], theta: Tensor, max_rank: int) -> None:
    """Fold one snapshot of ``theta`` into the running SWAG moments."""
    n = moments["n"]
    theta = theta.detach().double().cpu()
    moments["mean"] = (n * moments["mean"] + theta) / (n + 1)
    moments["sq_mean"] = (n * moments["sq_mean"] + theta.square()) / (n + 1)
    kept = moments["deviations"] + [theta - moments["mean"]]
    moments["deviations"] = kept[max(len(kept) - max_rank, 0):]  # the last max_rank (none for 0)
    moments["n"] = n + 1


@validate_params(
    {
        "epochs": [Interval(Integral, 0, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "swag_epochs": [Interval(Integral, 2, None, closed="left")],
        "swag_lr": [Interval(Real, 0, None, closed="neither")],
        "max_rank": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "n_train_samples": [Interval(Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def fit_curve_swag(
    modes: Sequence[nn.Module],
    X,
    y,
    *,
    epochs: int = 20,
    lr: float = 0.1,
    swag_epochs: int = 10,
    swag_lr: float = 0.02,
    max_rank: int = 10,
    batch_size: int = 128,
    n_train_samples: int = 5,
    device: str = "auto",
    random_state=None,
) -> CurveSWAG:
    """Train a curve between two modes, then collect SWAG moments of its bend.

    The bend starts at the modes' midpoint plus noise. Each step draws points along the
    chain (a segment picked with probability proportional to its length, then a uniform
    point on it: the complex sampling of :func:`~sklearn_espro.connect_modes` with
    ``volume_reg=0``) and lowers their mean loss. The rate follows a cosine from ``lr``
    to ``swag_lr`` over ``epochs``, then stays at ``swag_lr`` for ``swag_epochs`` while
    ``theta`` is collected after each epoch.

    Parameters
    ----------
    modes : sequence of two nn.Module
        Trained networks of one architecture, mapping float32 batches of ``X`` to logits.
    X : array-like of shape (n_samples, ...)
    y : array-like of shape (n_samples,)
    epochs, lr : int, float, default=20, 0.1
    swag_epochs, swag_lr : int, float, default=10, 0.02
    max_rank : int, default=10
        Deviations kept for the low-rank part; ``0`` keeps none (SWAG's diagonal form),
        and so, in effect, does ``1`` (the low-rank draw needs two deviations).
    batch_size, n_train_samples : int, default=128, 5
    device : str, default="auto"
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    CurveSWAG
        On the CPU.

    Examples
    --------
    >>> import numpy as np, torch
    >>> X, y = np.random.RandomState(0).randn(60, 4).astype(np.float32), np.arange(60) % 2
    >>> swag = fit_curve_swag([torch.nn.Linear(4, 2), torch.nn.Linear(4, 2)], X, y, epochs=2, swag_epochs=3,
    ...                       random_state=0)
    >>> swag.deviations.shape, swag.path_loss(X, y, swag.sample(5), n_points=7)[0].shape
    (torch.Size([3, 10]), (5, 7))
    """
    ends, X_t, y_t, classes, generator = modes_on_device(modes, X, y, device, random_state, n_modes=(2, 2),
                                                         batch_size=batch_size)
    state = init_vertex_state(
        ends, volume_reg=0.0, lr=lr, n_train_samples=n_train_samples, optimizer=torch.optim.SGD,
        optimizer_kwargs={"momentum": 0.9}, criterion=nn.CrossEntropyLoss(), generator=generator, faces=[(0,), (1,)],
    )
    moments: dict[str, Any] = {"n": 0, "mean": 0.0, "sq_mean": 0.0, "deviations": []}
    with torch.enable_grad(), own_global_rng(X_t.device, int(generator.initial_seed())):
        for epoch in range(epochs + swag_epochs):
            progress = min(epoch / epochs, 1.0) if epochs else 1.0  # no curve epochs: SWAG at swag_lr
            rate = swag_lr + (lr - swag_lr) * (1 + math.cos(math.pi * progress)) / 2
            for group in state.optimizer.param_groups:
                group["lr"] = rate
            loss = run_epoch(state, X_t, y_t, batch_size)["loss"]
            check_finite(loss, epoch, "the curve", f"lr={lr:g}, swag_lr={swag_lr:g}, rate in this epoch {rate:.4g}")
            if epoch >= epochs:
                _collect(moments, state.vertex, max_rank)
    mean = moments["mean"]
    points = ends.add_vertex(unflatten(mean.float().to(ends.flat_vertices().device), ends.vertices))
    deviations = torch.stack(moments["deviations"]) if max_rank else mean.new_zeros(0, mean.numel())
    return CurveSWAG(points.to("cpu"), mean, moments["sq_mean"], deviations, classes)
