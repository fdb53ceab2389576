"""LossPlaneDisplay: the loss of a network on a grid of the plane through three weight vectors, drawn (Section 4)."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, is_classifier
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._core.landscape import numeric_array, weights_loss as _weights_loss
from ._core.simplex import fixed_tensors, trainable_parameters
from ._core.validation import check_data
from ._planes import LossPlane, check_anchors

__all__ = ["LossPlaneDisplay"]


class LossPlaneDisplay:
    """The loss of a network on a grid of the plane through three weight vectors (Section 4).

    Build it with :meth:`from_estimator` (three vertices of a fitted ESPRO simplex) or
    :meth:`from_module` (any module and three weight vectors); both evaluate the
    network with weights ``c + r_u u + r_v v`` on a ``resolution x resolution`` grid that
    covers the anchors with a margin, then draw it. Models with BatchNorm get statistics
    of their own at every grid point, recomputed on ``X``. Needs matplotlib to draw
    (``pip install sklearn-espro[plot]``).

    Parameters
    ----------
    plane : LossPlane
        Fitted on the three anchors.
    grid_u, grid_v : ndarray of shape (resolution,)
        Plane coordinates of the grid.
    loss, accuracy : ndarray of shape (resolution, resolution)
        Mean cross-entropy and accuracy on ``(X, y)``; entry ``[j, i]`` is at
        ``(grid_u[i], grid_v[j])``, as ``matplotlib.pyplot.contourf`` expects.

    Attributes
    ----------
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure
    surface_ : matplotlib QuadContourSet
        Set by :meth:`plot`.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_espro import flat_parameters
    >>> net = torch.nn.Linear(2, 2)
    >>> w = flat_parameters(net)
    >>> anchors = np.stack([w, w + np.eye(6)[0], w + np.eye(6)[1]])
    >>> X, y = np.random.RandomState(0).randn(20, 2).astype(np.float32), np.arange(20) % 2
    >>> display = LossPlaneDisplay.from_module(net, anchors, X, y, resolution=5)
    >>> display.loss.shape, display.plane.anchor_coords_.shape
    ((5, 5), (3, 2))
    """

    def __init__(self, *, plane: LossPlane, grid_u: np.ndarray, grid_v: np.ndarray, loss: np.ndarray,
                 accuracy: np.ndarray):
        self.plane = plane
        self.grid_u = grid_u
        self.grid_v = grid_v
        self.loss = loss
        self.accuracy = accuracy

    @classmethod
    def from_estimator(cls, estimator, X, y, *, simplex=0, vertices=(0, 1, 2), resolution=21, margin=0.25,
                       batch_size=512, grid_batch=32, device="auto", ax=None, levels=20) -> LossPlaneDisplay:
        """The loss on the plane of three vertices of a fitted ESPROClassifier's simplex, drawn.

        Parameters
        ----------
        estimator : fitted ESPROClassifier
            A classifier: the loss drawn is the cross-entropy of its labels (a TypeError
            for a regressor or anything else).
        X : array-like of shape (n_samples, ...)
        y : array-like of shape (n_samples,)
            Labels from the estimator's ``classes_``.
        simplex : int, default=0
        vertices : tuple of 3 int, default=(0, 1, 2)
        resolution : int, default=21
            Grid points per axis.
        margin : float, default=0.25
            Extra room on each side, as a fraction of the anchors' extent along each axis.
        batch_size : int, default=512
            Samples per forward pass.
        grid_batch : int, default=32
            Grid points evaluated together as one vectorised batch of models.
        device : str, default="auto"
        ax : matplotlib Axes, default=None
        levels : int, default=20
            Contour levels (log scale).

        Returns
        -------
        LossPlaneDisplay
        """
        _check_grid("LossPlaneDisplay.from_estimator", resolution, margin, batch_size, grid_batch, levels)
        source = _estimator_source(estimator, simplex, vertices)
        display = _compute(*source, X, y, resolution, margin, batch_size, grid_batch, device)
        return display.plot(ax=ax, levels=levels)

    @classmethod
    def from_module(cls, module, anchors, X, y, *, resolution=21, margin=0.25, batch_size=512, grid_batch=32,
                    device="auto", ax=None, levels=20) -> LossPlaneDisplay:
        """The loss of ``module`` on the plane of three weight vectors, drawn.

        Parameters
        ----------
        module : nn.Module
            The architecture; its buffers are used.
        anchors : array-like of shape (3, n_params)
            Weight vectors, each the module's parameters flattened in ``named_parameters``
            order (as :func:`sklearn_espro.flat_parameters` does).
        X : array-like of shape (n_samples, ...)
        y : array-like of shape (n_samples,)
            Class indices of the module's outputs: integers (or integer-valued floats, or
            bools) from 0 to ``n_outputs - 1``; anything else, 0.5 or ``"a"``, is refused.
        resolution, margin, batch_size, grid_batch, device, ax, levels
            As in :meth:`from_estimator`.

        Returns
        -------
        LossPlaneDisplay
        """
        _check_grid("LossPlaneDisplay.from_module", resolution, margin, batch_size, grid_batch, levels)
        if not isinstance(module, nn.Module):
            raise ValueError(f"module must be an nn.Module; got {type(module).__name__}.")
        display = _compute(*_module_source(module, anchors), X, y, resolution, margin, batch_size, grid_batch, device)
        return display.plot(ax=ax, levels=levels)

    def plot(self, ax=None, *, levels=20) -> LossPlaneDisplay:
        """Filled contours of the loss (log scale), the anchors and the triangle they span.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            A new figure's when None.
        levels : int, default=20

        Returns
        -------
        LossPlaneDisplay
            Itself, with ``ax_``, ``figure_`` and ``surface_`` set.
        """
        try:
            import matplotlib.pyplot as plt
            from matplotlib.colors import LogNorm
        except ImportError as exc:
            raise ImportError("LossPlaneDisplay needs matplotlib to draw: pip install 'sklearn-espro[plot]' "
                              "(or pip install matplotlib).") from exc
        if ax is None:
            _, ax = plt.subplots()
        loss = np.clip(self.loss, 1e-8, None)
        ticks = np.geomspace(loss.min(), max(loss.max(), loss.min() * (1 + 1e-6)), levels)
        self.surface_ = ax.contourf(self.grid_u, self.grid_v, loss, levels=ticks, norm=LogNorm(), cmap="viridis")
        ax.figure.colorbar(self.surface_, ax=ax, label="training loss")
        coords = self.plane.anchor_coords_
        closed = np.vstack([coords, coords[:1]])
        ax.plot(closed[:, 0], closed[:, 1], color="white", lw=1)
        ax.scatter(*coords.T, color="white", edgecolor="black", zorder=3)
        ax.set_xlabel("u")
        ax.set_ylabel("v")
        self.ax_, self.figure_ = ax, ax.figure
        return self


def _check_grid(where: str, resolution, margin, batch_size, grid_batch, levels) -> None:
    """A ValueError that names a bad grid argument of ``where`` (``"LossPlaneDisplay.from_module"``, ...)."""
    for name, value, low, kind in (("resolution", resolution, 2, Integral), ("margin", margin, 0, Real),
                                   ("batch_size", batch_size, 1, Integral), ("grid_batch", grid_batch, 1, Integral),
                                   ("levels", levels, 2, Integral)):
        if isinstance(value, bool) or not isinstance(value, kind) or not value >= low:
            what = "an int" if kind is Integral else "a number"
            raise ValueError(f"The {name!r} parameter of {where} must be {what} >= {low}; "
                             f"got {value!r}.")


def _estimator_source(estimator, simplex: int, vertices):
    """(module, parameter layout, buffers, anchors (3, P) float64, classes) of a fitted estimator's simplex."""
    if not (isinstance(estimator, BaseEstimator) and is_classifier(estimator)):  # a regressor's loss is not this one
        raise TypeError("estimator must be a fitted ESPROClassifier: LossPlaneDisplay draws the cross-entropy of "
                        f"class labels; got {type(estimator).__name__}.")
    check_is_fitted(estimator)
    n_simplexes = len(estimator.simplexes_)
    if not isinstance(simplex, Integral) or isinstance(simplex, bool) or not 0 <= simplex < n_simplexes:
        raise ValueError(f"simplex={simplex}, but the estimator has {n_simplexes} simplexes (0 to {n_simplexes - 1}).")
    chosen = estimator.simplexes_[simplex]
    try:
        given = tuple(vertices)  # a list or an array too
    except TypeError:
        given = vertices
    if not isinstance(given, tuple) or len(given) != 3 or len(set(given)) != 3 or not all(
            isinstance(i, Integral) and not isinstance(i, bool) and 0 <= i < chosen.n_vertices for i in given):
        raise ValueError(f"vertices={given!r} must name 3 different vertices of the {chosen.n_vertices} "
                         f"of simplex {simplex}.")
    anchors = chosen.flat_vertices()[list(given)].double().numpy()
    return chosen.module, chosen.vertices, chosen.buffers, anchors, estimator.classes_


def _module_source(module: nn.Module, anchors):
    """(module, parameter layout, buffers, anchors (3, P) float64, None) of a module and three weight vectors."""
    like = {k: v.unsqueeze(0) for k, v in trainable_parameters(module).items()}
    anchors = numeric_array(anchors, "anchors")
    n_params = sum(v.numel() for v in like.values())
    if anchors.shape != (3, n_params):
        raise ValueError(f"anchors must have shape (3, {n_params}) for this module; got {anchors.shape}.")
    return module, like, fixed_tensors(module), check_anchors(anchors, "anchors"), None


def _compute(module, like, buffers, anchors, classes, X, y, resolution, margin, batch_size, grid_batch,
             device) -> LossPlaneDisplay:
    """Evaluate loss and accuracy on the grid of the anchors' plane (``y``: labels of ``classes``, or class indices)."""
    X, y = check_data(X, y)
    if classes is not None:
        if not np.isin(y, classes).all():
            raise ValueError("y holds labels the estimator was not fitted on.")
        y = np.searchsorted(classes, y)
    plane = LossPlane()
    plane._set_plane(anchors)
    coords = plane.anchor_coords_
    low, high = coords.min(0), coords.max(0)
    pad = margin * (high - low)
    grid_u = np.linspace(low[0] - pad[0], high[0] + pad[0], resolution)
    grid_v = np.linspace(low[1] - pad[1], high[1] + pad[1], resolution)
    uu, vv = np.meshgrid(grid_u, grid_v)
    weights = torch.as_tensor(plane.inverse_transform(np.stack([uu.ravel(), vv.ravel()], axis=1))).float()
    loss, accuracy = _weights_loss(module, weights, X, y, like=like, buffers=buffers,
                                   batch_size=batch_size, grid_batch=grid_batch, device=device)
    return LossPlaneDisplay(plane=plane, grid_u=grid_u, grid_v=grid_v, loss=loss.reshape(resolution, resolution),
                            accuracy=accuracy.reshape(resolution, resolution))
