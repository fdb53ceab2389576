"""LossPlane: the loss surface on the plane through three weight vectors (Section 4)."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._core.validation import Interval, check_data
from .geometry import plane_basis
from ._core.landscape import weights_loss as _weights_loss
from ._core.simplex import fixed_tensors, trainable_parameters

__all__ = ["LossPlane"]


def __getattr__(name: str):
    """``weights_loss`` and ``flat_parameters`` moved to the package's top level in version 0.4."""
    if name in ("weights_loss", "flat_parameters"):
        import warnings

        from ._core import landscape

        warnings.warn(f"sklearn_espro.planes.{name} moved to sklearn_espro.{name}; the old name will "
                      "be removed in version 0.5.", FutureWarning, stacklevel=2)
        return getattr(landscape, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class LossPlane(TransformerMixin, BaseEstimator):
    """Loss and accuracy of a network on a grid in the plane of three weight vectors.

    The plane has centre ``c`` (the anchors' mean) and orthonormal basis ``u, v``
    (Gram-Schmidt on the anchors' differences); ``fit(X, y)`` evaluates the module with
    weights ``c + r_u u + r_v v`` on a ``resolution x resolution`` grid that covers the
    anchors with a margin, and ``transform(W)`` maps weight vectors to plane coordinates.

    Parameters
    ----------
    estimator : fitted ESPROClassifier, default=None
        Source of the anchors: vertices ``vertices`` of simplex ``simplex``; the module,
        its buffers and the class order come with it.
    module : nn.Module, default=None
        The architecture, when ``anchors`` are given directly; its buffers are used.
    anchors : array-like of shape (3, n_params), default=None
        Weight vectors, each the module's parameters flattened in ``named_parameters``
        order (as :func:`sklearn_espro.flat_parameters` does).
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

    Attributes
    ----------
    center_ : ndarray of shape (n_params,)
    basis_ : ndarray of shape (2, n_params)
        Rows ``u`` and ``v``.
    anchors_ : ndarray of shape (3, n_params)
    anchor_coords_ : ndarray of shape (3, 2)
    grid_u_, grid_v_ : ndarray of shape (resolution,)
    loss_, accuracy_ : ndarray of shape (resolution, resolution)
        Mean cross-entropy and accuracy on ``(X, y)``; entry ``[j, i]`` is at
        ``(grid_u_[i], grid_v_[j])``, as ``matplotlib.pyplot.contourf`` expects.

    Notes
    -----
    Models with BatchNorm get statistics of their own at every grid point, recomputed
    on ``X`` (one extra forward pass over ``X`` per batch of grid points).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_espro import flat_parameters
    >>> net = torch.nn.Linear(2, 2)
    >>> w = flat_parameters(net)
    >>> anchors = np.stack([w, w + np.eye(6)[0], w + np.eye(6)[1]])
    >>> X, y = np.random.RandomState(0).randn(20, 2).astype(np.float32), np.arange(20) % 2
    >>> plane = LossPlane(module=net, anchors=anchors, resolution=5).fit(X, y)
    >>> plane.loss_.shape, np.allclose(plane.transform(plane.center_[None]), 0)
    ((5, 5), True)
    """

    _parameter_constraints: dict = {
        "estimator": "no_validation",
        "module": [None, nn.Module],
        "anchors": [None, "array-like"],
        "simplex": [Interval(Integral, 0, None, closed="left")],
        "vertices": [tuple, list],
        "resolution": [Interval(Integral, 2, None, closed="left")],
        "margin": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "grid_batch": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
    }

    def __init__(self, estimator=None, *, module=None, anchors=None, simplex=0, vertices=(0, 1, 2),
                 resolution=21, margin=0.25, batch_size=512, grid_batch=32, device="auto"):
        self.estimator = estimator
        self.module = module
        self.anchors = anchors
        self.simplex = simplex
        self.vertices = vertices
        self.resolution = resolution
        self.margin = margin
        self.batch_size = batch_size
        self.grid_batch = grid_batch
        self.device = device

    def _source(self):
        """(module, parameter layout, buffers, anchors (3, P) float64, classes or None)."""
        if (self.estimator is None) == (self.module is None or self.anchors is None):
            raise ValueError("Give either estimator (a fitted ESPROClassifier) or both module and anchors.")
        if self.estimator is not None:
            check_is_fitted(self.estimator)
            n_simplexes = len(self.estimator.simplexes_)
            if self.simplex >= n_simplexes:
                raise ValueError(f"simplex={self.simplex}, but the estimator has {n_simplexes} simplexes (0 to {n_simplexes - 1}).")
            simplex = self.estimator.simplexes_[self.simplex]
            if len(self.vertices) != 3 or len(set(self.vertices)) != 3 or not all(
                    isinstance(i, Integral) and 0 <= i < simplex.n_vertices for i in self.vertices):
                raise ValueError(f"vertices={self.vertices} must name 3 different vertices of the {simplex.n_vertices} of simplex {self.simplex}.")
            anchors = simplex.flat_vertices()[list(self.vertices)].double()
            return simplex.module, simplex.vertices, simplex.buffers, anchors, self.estimator.classes_
        like = {k: v.unsqueeze(0) for k, v in trainable_parameters(self.module).items()}
        anchors = torch.as_tensor(np.asarray(self.anchors, dtype=np.float64))
        n_params = sum(v.numel() for v in like.values())
        if anchors.shape != (3, n_params):
            raise ValueError(f"anchors must have shape (3, {n_params}) for this module; got {tuple(anchors.shape)}.")
        if not torch.isfinite(anchors).all():
            raise ValueError("anchors contain NaN or infinity.")
        return self.module, like, fixed_tensors(self.module), anchors, None

    def fit(self, X, y):
        """Evaluate loss and accuracy on the grid.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
        y : array-like of shape (n_samples,)
            Labels (from the estimator's ``classes_``), or class indices with ``module``.

        Returns
        -------
        self : LossPlane
        """
        self._validate_params()
        module, like, buffers, anchors, classes = self._source()
        X, y = check_data(X, y)
        if classes is not None:
            if not np.isin(y, classes).all():
                raise ValueError("y holds labels the estimator was not fitted on.")
            y = np.searchsorted(classes, y)
        center, basis = plane_basis(anchors)
        coords = ((anchors - center) @ basis.T).numpy()
        low, high = coords.min(0), coords.max(0)
        pad = self.margin * (high - low)
        self.grid_u_ = np.linspace(low[0] - pad[0], high[0] + pad[0], self.resolution)
        self.grid_v_ = np.linspace(low[1] - pad[1], high[1] + pad[1], self.resolution)
        uu, vv = np.meshgrid(self.grid_u_, self.grid_v_)
        points = torch.as_tensor(np.stack([uu.ravel(), vv.ravel()], axis=1))
        weights = (center + points @ basis).float()
        loss, accuracy = _weights_loss(module, weights, X, y.astype(np.int64), like=like, buffers=buffers,
                                      batch_size=self.batch_size, grid_batch=self.grid_batch, device=self.device)
        self.loss_ = loss.reshape(self.resolution, self.resolution)
        self.accuracy_ = accuracy.reshape(self.resolution, self.resolution)
        self.center_, self.basis_ = center.numpy(), basis.numpy()
        self.anchors_, self.anchor_coords_ = anchors.numpy(), coords
        return self

    def transform(self, W):
        """Plane coordinates ``basis @ (w - c)`` of weight vectors.

        Parameters
        ----------
        W : array-like of shape (n_vectors, n_params)

        Returns
        -------
        ndarray of shape (n_vectors, 2)
        """
        check_is_fitted(self)
        W = np.asarray(W, dtype=np.float64)
        if W.ndim != 2 or W.shape[1] != self.center_.shape[0]:
            raise ValueError(f"W must have shape (n_vectors, {self.center_.shape[0]}); got {W.shape}.")
        return (W - self.center_) @ self.basis_.T

    def get_feature_names_out(self, input_features=None):
        """``["u", "v"]``: the two plane coordinates."""
        return np.array(["u", "v"], dtype=object)

    def plot(self, ax=None, levels=20):
        """Filled contours of the loss (log scale), the anchors and the triangle they span.

        Needs matplotlib (``pip install sklearn-espro[plot]``). Returns the axes.
        """
        check_is_fitted(self)
        try:
            import matplotlib.pyplot as plt
            from matplotlib.colors import LogNorm
        except ImportError as exc:
            raise ImportError(
                "LossPlane.plot needs matplotlib: pip install 'sklearn-espro[plot]' (or pip install matplotlib)."
            ) from exc
        ax = plt.gca() if ax is None else ax
        loss = np.clip(self.loss_, 1e-8, None)
        ticks = np.geomspace(loss.min(), loss.max(), levels)
        cs = ax.contourf(self.grid_u_, self.grid_v_, loss, levels=ticks, norm=LogNorm(), cmap="viridis")
        ax.figure.colorbar(cs, ax=ax, label="training loss")
        closed = np.vstack([self.anchor_coords_, self.anchor_coords_[:1]])
        ax.plot(closed[:, 0], closed[:, 1], color="white", lw=1)
        ax.scatter(*self.anchor_coords_.T, color="white", edgecolor="black", zorder=3)
        ax.set_xlabel("u")
        ax.set_ylabel("v")
        return ax
