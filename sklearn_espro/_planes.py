"""The plane through three weight vectors (LossPlane, a transformer) and the loss on it (LossPlaneDisplay).

Section 4 of Benton et al. (2021) draws the loss surface on planes through three weight
vectors. :class:`LossPlane` is that plane's geometry, learnt from the three vectors and
mapping any weight vectors to plane coordinates; :class:`LossPlaneDisplay` evaluates a
network's loss on a grid of the plane and draws it, as scikit-learn's displays do.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._core.landscape import weights_loss as _weights_loss
from ._core.simplex import fixed_tensors, trainable_parameters
from ._core.validation import Interval, check_data, validate_params
from .geometry import plane_basis

__all__ = ["LossPlane", "LossPlaneDisplay"]

_LEGACY = ("estimator", "module", "anchors")


def __getattr__(name: str):
    """``weights_loss`` and ``flat_parameters`` moved to the package's top level in version 0.4."""
    if name in ("weights_loss", "flat_parameters"):
        from ._core import landscape

        warnings.warn(f"sklearn_espro.planes.{name} moved to sklearn_espro.{name}; the old name will "
                      "be removed in version 0.5.", FutureWarning, stacklevel=2)
        return getattr(landscape, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _check_anchors(W, name: str = "W") -> np.ndarray:
    W = np.array(W, dtype=np.float64)  # a copy: the caller's array is never written
    if W.ndim != 2 or W.shape[0] != 3 or W.shape[1] < 2:
        raise ValueError(f"{name} must hold three weight vectors, shape (3, n_params) with n_params >= 2; "
                         f"got shape {W.shape}.")
    if not np.isfinite(W).all():
        raise ValueError(f"{name} contains NaN or infinity.")
    return W


class LossPlane(TransformerMixin, BaseEstimator):
    """The plane through three weight vectors, as a transformer of weight vectors (Section 4).

    ``fit(W)`` takes the three anchors ``W`` (shape ``(3, n_params)``, e.g. three vertices
    of a simplex, or two modes and a connecting point) and learns the plane's centre ``c``
    (their mean) and orthonormal basis ``u, v`` (Gram-Schmidt on their differences);
    ``transform`` maps any weight vectors to plane coordinates ``(u, v) = basis (w - c)``,
    ``inverse_transform`` maps plane coordinates back to weights ``c + r_u u + r_v v``,
    and ``fit_transform(W)`` gives the anchors' own coordinates. The loss on the plane is
    :class:`LossPlaneDisplay`'s.

    Parameters
    ----------
    estimator, module, anchors, simplex, vertices, resolution, margin, batch_size, grid_batch, device
        Deprecated since version 0.4.1, removed in 0.5: with ``estimator`` or ``module``
        and ``anchors``, ``fit(X, y)`` takes data and computes the loss grid (``loss_``,
        ``accuracy_``, ``grid_u_``, ``grid_v_``, ``plot``), with a ``FutureWarning``;
        :meth:`LossPlaneDisplay.from_estimator` and :meth:`LossPlaneDisplay.from_module`
        do that now.

    Attributes
    ----------
    center_ : ndarray of shape (n_params,)
    basis_ : ndarray of shape (2, n_params)
        Rows ``u`` and ``v``.
    anchors_ : ndarray of shape (3, n_params)
    anchor_coords_ : ndarray of shape (3, 2)
    n_features_in_ : int
        ``n_params``.

    See Also
    --------
    LossPlaneDisplay : the loss of a network on a grid of this plane, drawn.
    sklearn_espro.geometry.plane_basis : the formula.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.array([[0.0, 0, 0], [2, 0, 0], [0, 3, 0]])
    >>> plane = LossPlane()
    >>> plane.fit_transform(W).round(3)
    array([[-0.667, -1.   ],
           [ 1.333, -1.   ],
           [-0.667,  2.   ]])
    >>> plane.inverse_transform([[0.0, 0.0]])  # the centre
    array([[0.66666667, 1.        , 0.        ]])
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

    def _legacy(self) -> bool:
        return any(getattr(self, name) is not None for name in _LEGACY)

    def fit(self, W, y=None):
        """Learn the plane through the three weight vectors ``W``.

        Parameters
        ----------
        W : array-like of shape (3, n_params)
        y : ignored
            (With the deprecated ``estimator`` / ``module`` parameters: ``W`` is data and
            ``y`` its labels, and the loss grid is computed.)

        Returns
        -------
        self : LossPlane
        """
        self._validate_params()
        if self._legacy():
            return self._legacy_fit(W, y)
        self._set_plane(_check_anchors(W))
        return self

    def _set_plane(self, anchors: np.ndarray) -> None:
        center, basis = plane_basis(torch.as_tensor(anchors))
        self.center_, self.basis_ = center.numpy(), basis.numpy()
        self.anchors_ = anchors
        self.anchor_coords_ = (anchors - self.center_) @ self.basis_.T
        self.n_features_in_ = anchors.shape[1]

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

    def inverse_transform(self, X):
        """Weight vectors ``c + r_u u + r_v v`` at plane coordinates.

        Parameters
        ----------
        X : array-like of shape (n_points, 2)

        Returns
        -------
        ndarray of shape (n_points, n_params)
        """
        check_is_fitted(self)
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != 2:
            raise ValueError(f"X must have shape (n_points, 2) (plane coordinates); got {X.shape}.")
        return self.center_ + X @ self.basis_

    def get_feature_names_out(self, input_features=None):
        """``["u", "v"]``: the two plane coordinates."""
        return np.array(["u", "v"], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        return tags

    # -- deprecated since 0.4.1: the loss grid, now LossPlaneDisplay's ------------------
    def _legacy_fit(self, X, y):
        warnings.warn("LossPlane(estimator=...) or LossPlane(module=..., anchors=...) with fit(X, y) on data is "
                      "deprecated since 0.4.1 and will be removed in 0.5: use LossPlaneDisplay.from_estimator or "
                      "LossPlaneDisplay.from_module for the loss, and LossPlane().fit(anchors) for the plane.",
                      FutureWarning, stacklevel=3)
        if self.estimator is not None:
            if self.module is not None or self.anchors is not None:
                raise ValueError("Give either estimator (a fitted ESPROClassifier) or both module and anchors.")
            source = _estimator_source(self.estimator, self.simplex, self.vertices)
        elif self.module is None or self.anchors is None:
            raise ValueError("Give either estimator (a fitted ESPROClassifier) or both module and anchors.")
        else:
            source = _module_source(self.module, self.anchors)
        display = _compute(*source, X, y, self.resolution, self.margin, self.batch_size, self.grid_batch,
                           self.device)
        plane = display.plane
        self.center_, self.basis_, self.anchors_ = plane.center_, plane.basis_, plane.anchors_
        self.anchor_coords_, self.n_features_in_ = plane.anchor_coords_, plane.n_features_in_
        self.grid_u_, self.grid_v_ = display.grid_u, display.grid_v
        self.loss_, self.accuracy_ = display.loss, display.accuracy
        self._display = display
        return self

    def plot(self, ax=None, levels=20):
        """Deprecated since 0.4.1 (with the loss grid): :meth:`LossPlaneDisplay.plot`. Returns the axes."""
        check_is_fitted(self, "loss_")
        return self._display.plot(ax=ax, levels=levels).ax_


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
        _check_grid(resolution, margin, batch_size, grid_batch, levels)
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
            Class indices of the module's outputs.
        resolution, margin, batch_size, grid_batch, device, ax, levels
            As in :meth:`from_estimator`.

        Returns
        -------
        LossPlaneDisplay
        """
        _check_grid(resolution, margin, batch_size, grid_batch, levels)
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


@validate_params({"resolution": [Interval(Integral, 2, None, closed="left")],
                  "margin": [Interval(Real, 0, None, closed="left")],
                  "batch_size": [Interval(Integral, 1, None, closed="left")],
                  "grid_batch": [Interval(Integral, 1, None, closed="left")],
                  "levels": [Interval(Integral, 2, None, closed="left")]}, prefer_skip_nested_validation=True)
def _check_grid(resolution, margin, batch_size, grid_batch, levels) -> None:
    """Raise the scikit-learn error that names a bad grid argument."""


def _estimator_source(estimator, simplex: int, vertices):
    """(module, parameter layout, buffers, anchors (3, P) float64, classes) of a fitted estimator's simplex."""
    check_is_fitted(estimator)
    n_simplexes = len(estimator.simplexes_)
    if not isinstance(simplex, Integral) or isinstance(simplex, bool) or not 0 <= simplex < n_simplexes:
        raise ValueError(f"simplex={simplex}, but the estimator has {n_simplexes} simplexes (0 to {n_simplexes - 1}).")
    chosen = estimator.simplexes_[simplex]
    if len(vertices) != 3 or len(set(vertices)) != 3 or not all(
            isinstance(i, Integral) and 0 <= i < chosen.n_vertices for i in vertices):
        raise ValueError(f"vertices={tuple(vertices)} must name 3 different vertices of the {chosen.n_vertices} "
                         f"of simplex {simplex}.")
    anchors = chosen.flat_vertices()[list(vertices)].double().numpy()
    return chosen.module, chosen.vertices, chosen.buffers, anchors, estimator.classes_


def _module_source(module: nn.Module, anchors):
    """(module, parameter layout, buffers, anchors (3, P) float64, None) of a module and three weight vectors."""
    like = {k: v.unsqueeze(0) for k, v in trainable_parameters(module).items()}
    anchors = np.asarray(anchors, dtype=np.float64)
    n_params = sum(v.numel() for v in like.values())
    if anchors.shape != (3, n_params):
        raise ValueError(f"anchors must have shape (3, {n_params}) for this module; got {anchors.shape}.")
    return module, like, fixed_tensors(module), _check_anchors(anchors, "anchors"), None


def _compute(module, like, buffers, anchors, classes, X, y, resolution, margin, batch_size, grid_batch,
             device) -> LossPlaneDisplay:
    """Evaluate loss and accuracy on the grid of the anchors' plane."""
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
    loss, accuracy = _weights_loss(module, weights, X, y.astype(np.int64), like=like, buffers=buffers,
                                   batch_size=batch_size, grid_batch=grid_batch, device=device)
    return LossPlaneDisplay(plane=plane, grid_u=grid_u, grid_v=grid_v, loss=loss.reshape(resolution, resolution),
                            accuracy=accuracy.reshape(resolution, resolution))
