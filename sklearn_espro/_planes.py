"""LossPlane: the plane through three weight vectors, as a transformer of weight vectors (Section 4).

Section 4 of Benton et al. (2021) draws the loss surface on planes through three weight
vectors. :class:`LossPlane` is that plane's geometry, learnt from the three vectors and
mapping any weight vectors to plane coordinates; the loss on it is
:class:`~sklearn_espro.LossPlaneDisplay`'s (``_plane_display.py``).
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._core.landscape import numeric_array
from ._core.validation import Interval
from .geometry import plane_basis

__all__ = ["LossPlane"]

_LEGACY = ("estimator", "module", "anchors")


def __getattr__(name: str):
    """``weights_loss`` and ``flat_parameters`` moved to the package's top level in version 0.4."""
    if name in ("weights_loss", "flat_parameters"):
        from ._core import landscape

        warnings.warn(f"sklearn_espro.planes.{name} moved to sklearn_espro.{name}; the old name will "
                      "be removed in version 0.5.", FutureWarning, stacklevel=2)
        return getattr(landscape, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_anchors(W, name: str = "W") -> np.ndarray:
    """Three finite weight vectors as a float64 copy of shape (3, n_params), or a ValueError naming ``name``.

    A tensor (one that requires grad too) gives its values; strings are refused, not parsed.
    """
    W = np.array(numeric_array(W, name), dtype=np.float64)  # a copy: the caller's array is never written
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
        W : array-like or Tensor of shape (3, n_params)
            Numbers (a tensor that requires grad gives its values; strings are refused).
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
        self._set_plane(check_anchors(W))
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
        W : array-like or Tensor of shape (n_vectors, n_params)

        Returns
        -------
        ndarray of shape (n_vectors, 2)
        """
        check_is_fitted(self)
        W = numeric_array(W, "W")
        if W.ndim != 2 or W.shape[1] != self.center_.shape[0]:
            raise ValueError(f"W must have shape (n_vectors, {self.center_.shape[0]}); got {W.shape}.")
        return (W - self.center_) @ self.basis_.T

    def inverse_transform(self, X):
        """Weight vectors ``c + r_u u + r_v v`` at plane coordinates.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_points, 2)

        Returns
        -------
        ndarray of shape (n_points, n_params)
        """
        check_is_fitted(self)
        X = numeric_array(X, "X")
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
        from ._plane_display import _check_grid, _compute, _estimator_source, _module_source

        _check_grid("LossPlane", self.resolution, self.margin, self.batch_size, self.grid_batch, 20)
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
        display = getattr(self, "_display", None)
        if display is None:  # pickled by version 0.4.0
            from ._plane_display import LossPlaneDisplay

            plane = LossPlane()
            plane._set_plane(self.anchors_)
            display = LossPlaneDisplay(plane=plane, grid_u=self.grid_u_, grid_v=self.grid_v_, loss=self.loss_,
                                       accuracy=self.accuracy_)
        return display.plot(ax=ax, levels=levels).ax_
