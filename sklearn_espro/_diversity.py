"""Diversity of a fitted ensemble's members (Section 5.3); public through :mod:`sklearn_espro.metrics`."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import torch
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_is_fitted

from ._core.global_state import own_global_rng
from ._core.prediction import forward_models
from ._scoring import (
    _label_columns,
    _uncertainty,
    disagreement,
)


def _check_classifier(estimator, caller: str) -> None:
    """Raise TypeError unless ``estimator`` is an ESPROClassifier; NotFittedError unless fitted."""
    from ._estimator import ESPROClassifier

    if not isinstance(estimator, ESPROClassifier):
        why = ", a regressor: its networks output means and variances, not class scores" if isinstance(estimator, RegressorMixin) else ""
        raise TypeError(f"{caller} needs a fitted ESPROClassifier (the class probabilities of its members); "
                        f"got {type(estimator).__name__}{why}.")
    check_is_fitted(estimator)


def member_probabilities(estimator, X) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities of every model a fitted ESPROClassifier averages, and of every mode.

    Parameters
    ----------
    estimator : fitted ESPROClassifier
    X : array-like of shape (n_samples, ...)

    Returns
    -------
    members : ndarray of shape (n_simplexes, n_members, n_samples, n_classes)
        The models of Eq. 5, each with its own BatchNorm statistics; their mean over the
        first two axes is ``estimator.predict_proba(X)``.
    modes : ndarray of shape (n_simplexes, n_samples, n_classes)
        Vertex 0 of each simplex (its mode) with the mode's own statistics.

    Raises
    ------
    TypeError
        If ``estimator`` is not an ESPROClassifier (an ESPRORegressor has no classes).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_espro import ESPROClassifier
    >>> X, y = np.random.RandomState(0).randn(40, 3), np.arange(40) % 2
    >>> clf = ESPROClassifier(n_modes=2, n_vertices=2, max_epochs=2, vertex_epochs=1, random_state=0).fit(X, y)
    >>> members, modes = member_probabilities(clf, X)
    >>> members.shape, modes.shape, bool(np.allclose(members.mean(axis=(0, 1)), clf.predict_proba(X)))
    ((2, 5, 40, 2), (2, 40, 2), True)
    """
    _check_classifier(estimator, "member_probabilities")
    return _member_probabilities(estimator, X)


@torch.no_grad()
def _member_probabilities(estimator, X) -> tuple[np.ndarray, np.ndarray]:
    """:func:`member_probabilities` of a checked ESPROClassifier."""
    from ._core.validation import resolve_device

    x = torch.from_numpy(estimator._validate_X(X))
    device = resolve_device(estimator.device, fallback=True)
    members, modes = [], []
    with own_global_rng(device):
        for member in estimator.members_:
            member = member.to(device)
            simplex = member.simplex
            corner = torch.zeros(1, simplex.n_vertices, device=device)
            corner[0, 0] = 1.0
            mode_buffers = {k: v.unsqueeze(0) for k, v in simplex.buffers.items()}
            module = simplex.module.eval()
            params, mode_params = simplex.combine(member.coords), simplex.combine(corner)
            parts = [(forward_models(module, params, member.buffers, xb), forward_models(module, mode_params, mode_buffers, xb))
                     for xb in x.to(device).split(estimator.predict_batch_size)]
            members.append(torch.cat([p[0] for p in parts], 1).double().softmax(-1).cpu())
            modes.append(torch.cat([p[1] for p in parts], 1)[0].double().softmax(-1).cpu())
    return torch.stack(members).numpy(), torch.stack(modes).numpy()


def simplex_diversity(estimator, X, y) -> list[dict]:
    """How different the members of each simplex are, and what their average gains over the mode.

    Parameters
    ----------
    estimator : fitted ESPROClassifier
    X : array-like of shape (n_samples, ...)
    y : array-like of shape (n_samples,)
        True labels (of ``estimator.classes_``).

    Returns
    -------
    list of dict, one per simplex
        ``disagreement_with_mode`` (mean over members of :func:`disagreement` with the
        mode), ``disagreement_between_members`` (mean over pairs of members; 0 with one
        member), and for ``nll``, ``ece`` and ``brier``: the mode's value, the value of
        the simplex's average, and ``gain_*`` = mode minus average (positive: the
        simplex is better than its mode alone).

    Raises
    ------
    TypeError
        If ``estimator`` is not an ESPROClassifier.
    ValueError
        If ``y`` is not one label of ``estimator.classes_`` per row of ``X``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_espro import ESPROClassifier
    >>> X, y = np.random.RandomState(0).randn(40, 3), np.arange(40) % 2
    >>> clf = ESPROClassifier(n_modes=1, n_vertices=1, max_epochs=2, random_state=0).fit(X, y)
    >>> row = simplex_diversity(clf, X, y)[0]  # a deep ensemble's member is its mode
    >>> row["disagreement_with_mode"], row["gain_nll"]
    (0.0, 0.0)
    """
    _check_classifier(estimator, "simplex_diversity")
    members, modes = _member_probabilities(estimator, X)
    columns = _label_columns(y, estimator.classes_, members.shape[2], members.shape[3], name="y", rows_of="X")
    rows = []
    for j, (group, mode) in enumerate(zip(members, modes)):
        average = group.mean(axis=0)
        row = {
            "simplex": j,
            "disagreement_with_mode": float(np.mean([disagreement(m, mode) for m in group])),
            "disagreement_between_members": float(np.mean([disagreement(a, b) for a, b in combinations(group, 2)]
                                                          or [0.0])),
        }
        of_mode, of_average = _uncertainty(mode, columns, n_bins=15), _uncertainty(average, columns, n_bins=15)
        for name in ("nll", "ece", "brier"):
            row[f"{name}_mode"], row[f"{name}_simplex"] = of_mode[name], of_average[name]
            row[f"gain_{name}"] = of_mode[name] - of_average[name]
        rows.append(row)
    return rows


def member_disagreement(estimator, X) -> dict[str, float]:
    """Functional diversity inside one simplex against across simplexes (Section 5.3).

    The mean :func:`disagreement` over pairs of the models that ``predict_proba``
    averages: pairs drawn from the same simplex, pairs from different simplexes, and
    pairs of modes (the deep ensemble's diversity).

    Parameters
    ----------
    estimator : fitted ESPROClassifier
    X : array-like of shape (n_samples, ...)

    Returns
    -------
    dict
        ``within_simplex`` (NaN with one model per simplex), ``between_simplexes`` and
        ``between_modes`` (NaN with one simplex).

    Raises
    ------
    TypeError
        If ``estimator`` is not an ESPROClassifier.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_espro import ESPROClassifier
    >>> X, y = np.random.RandomState(0).randn(40, 3), np.arange(40) % 2
    >>> clf = ESPROClassifier(n_modes=2, n_vertices=1, n_samples=1, max_epochs=2, random_state=0).fit(X, y)
    >>> out = member_disagreement(clf, X)  # a deep ensemble: one model per simplex, its mode
    >>> bool(np.isnan(out["within_simplex"])), out["between_simplexes"] == out["between_modes"]
    (True, True)
    """
    _check_classifier(estimator, "member_disagreement")
    members, modes = _member_probabilities(estimator, X)
    labels, mode_labels = members.argmax(-1), modes.argmax(-1)  # (J, M, n) and (J, n): each model's classes, once
    n_simplexes, n_members = labels.shape[:2]
    within = [np.mean(labels[j, a] != labels[j, b])
              for j in range(n_simplexes) for a, b in combinations(range(n_members), 2)]
    between = [np.mean(labels[i, :, None] != labels[j, None, :], axis=-1).mean()
               for i, j in combinations(range(n_simplexes), 2)]
    of_modes = [np.mean(mode_labels[i] != mode_labels[j]) for i, j in combinations(range(n_simplexes), 2)]
    return {name: float(np.mean(values)) if values else float("nan")
            for name, values in (("within_simplex", within), ("between_simplexes", between), ("between_modes", of_modes))}


# --- Judging an ensemble: calibrated NLL and the deep-ensemble equivalent -------------------------
