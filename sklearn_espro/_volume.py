"""The volume of simplexes of weights: :func:`simplex_volumes`, and SimplexVolume, its scikit-learn transformer."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin

from .geometry import log_simplex_volume
from ._core.simplex import Simplex

__all__ = ["SimplexVolume", "simplex_volumes"]


def _vertex_matrices(X, name: str = "X") -> list[torch.Tensor]:
    """Each simplex of ``X`` as a (n_vertices, n_params) tensor."""
    if hasattr(X, "simplexes_"):  # a fitted ESPROClassifier, or a complex
        X = X.simplexes_
    if isinstance(X, Simplex):
        X = [X]
    if isinstance(X, (np.ndarray, torch.Tensor)):
        if X.ndim != 3:
            raise ValueError(
                f"{name} must have shape (n_simplexes, n_vertices, n_params); got an array of shape {tuple(X.shape)}."
            )
        X = list(X)
    if not isinstance(X, (list, tuple)) or len(X) == 0:
        raise ValueError(f"{name} must be a non-empty list of simplexes, a 3-D array, or a fitted ESPROClassifier.")
    out = []
    for i, item in enumerate(X):
        matrix = item.flat_vertices() if isinstance(item, Simplex) else torch.as_tensor(np.asarray(item, dtype=np.float64))
        if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] < 1:
            raise ValueError(f"{name}[{i}] must be a (n_vertices, n_params) array; got shape {tuple(matrix.shape)}.")
        if not torch.isfinite(matrix).all():
            raise ValueError(f"{name}[{i}] contains NaN or infinity.")
        out.append(matrix)
    return out


def simplex_volumes(simplexes, *, log: bool = False) -> np.ndarray:
    """Volume (or natural log-volume) of each simplex of weights (Appendix A.1).

    Parameters
    ----------
    simplexes : fitted ESPROClassifier, SimplicialComplex, Simplex, list of Simplex, array-like of shape (n_simplexes, n_vertices, n_params), or list of (n_vertices_i, n_params) arrays
    log : bool, default=False
        ``log V`` instead of ``V``: use it for networks, whose volumes under- or overflow
        float64.

    Returns
    -------
    ndarray of shape (n_simplexes,), float64

    See Also
    --------
    SimplexVolume : the same as a scikit-learn transformer.
    sklearn_espro.geometry.log_simplex_volume : the formula.

    Examples
    --------
    >>> import numpy as np
    >>> simplex_volumes([np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), np.array([[0.0], [3.0]])])
    array([0.5, 3. ])
    """
    if not isinstance(log, (bool, np.bool_)):
        raise ValueError(f"log must be True or False; got {log!r}.")
    return _volumes(simplexes, log, "simplexes")


def _volumes(X, log: bool, name: str) -> np.ndarray:
    logs = np.array([float(log_simplex_volume(m)) for m in _vertex_matrices(X, name)])
    return logs if log else np.exp(logs)


class SimplexVolume(TransformerMixin, BaseEstimator):
    """Volume of each simplex of weights (Cayley-Menger / Gram form, Appendix A.1).

    Stateless: ``fit`` only checks its input. For networks, use ``log=True``: the
    volume of a simplex in a space of many thousands of weights under- or overflows
    float64 (its edges are raised to the power ``n_vertices - 1``), while its log does not.

    Parameters
    ----------
    log : bool, default=False
        Return ``log V`` (natural log) instead of ``V``.

    See Also
    --------
    simplex_volumes : the same as a function.
    sklearn_espro.geometry.log_simplex_volume : the formula.

    Notes
    -----
    ``V = sqrt(det(B^T B)) / k!`` with ``B`` the k edge vectors ``a_i - a_0``, computed in
    float64 as ``exp(0.5 * logdet(B^T B) - log k!)``. A degenerate simplex (affinely
    dependent vertices) has volume 0 (log ``-inf``), never NaN; a single vertex has
    volume 1 by convention.

    Examples
    --------
    >>> import numpy as np
    >>> corner = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])  # one triangle
    >>> SimplexVolume().fit_transform(corner)
    array([[0.5]])
    """

    _parameter_constraints: dict = {"log": ["boolean"]}

    def __init__(self, *, log=False):
        self.log = log

    def fit(self, X, y=None):
        """Check ``X``; nothing is learnt.

        Parameters
        ----------
        X : fitted ESPROClassifier, list of Simplex, array-like of shape (n_simplexes, n_vertices, n_params), or list of (n_vertices_i, n_params) arrays
        y : ignored

        Returns
        -------
        self : SimplexVolume
        """
        self._validate_params()
        _vertex_matrices(X)
        return self

    def transform(self, X):
        """Volume (or log-volume) of each simplex.

        Parameters
        ----------
        X : same as in :meth:`fit`

        Returns
        -------
        ndarray of shape (n_simplexes, 1), float64
        """
        return _volumes(X, self.log, "X")[:, None]

    def get_feature_names_out(self, input_features=None):
        """``["log_volume"]`` or ``["volume"]``."""
        return np.array(["log_volume" if self.log else "volume"], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags
