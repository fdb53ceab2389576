"""Metrics of predictive uncertainty (ECE and a summary of four) and of a simplex's diversity.

Diversity (Section 5.3 of Benton et al. 2021): a simplex pays only if its members are
different functions. :func:`member_probabilities` gives the probabilities of every model
a fitted :class:`~sklearn_espro.ESPROClassifier` averages and of every mode;
:func:`simplex_diversity` turns them into disagreement with the mode, disagreement
between members, and the gain of each simplex's average over its mode alone.
"""

from __future__ import annotations

import numbers
from itertools import combinations

import numpy as np
import torch
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_is_fitted

from ._core.global_state import own_global_rng
from ._core.prediction import forward_models

__all__ = [
    "disagreement",
    "expected_calibration_error",
    "member_disagreement",
    "member_probabilities",
    "simplex_diversity",
    "uncertainty_metrics",
]

SUM_ATOL = 1e-3
"""How far from one a row of probabilities may sum (float32 softmax rounding, many classes)."""


def _check_proba(proba, name: str = "proba") -> np.ndarray:
    """``proba`` as float64 rows of probabilities, renormalised to sum to one exactly.

    Raises ValueError, naming ``name``, unless it is a 2-D array of finite non-negative
    numbers, with at least one row and one column, whose rows sum to one within ``SUM_ATOL``.
    """
    try:
        array = np.asarray(proba)
        if array.dtype.kind not in "biufO" or (array.dtype.kind == "O"
                                               and not all(isinstance(v, numbers.Real) for v in array.flat)):
            raise TypeError(array.dtype)
        array = array.astype(np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be an array of numbers of shape (n_samples, n_classes).") from None
    if array.ndim != 2:
        hint = (" For two classes pass both columns (predict_proba's output), not the positive class's alone."
                if array.ndim == 1 else "")
        raise ValueError(f"{name} must be 2-D, of shape (n_samples, n_classes); got shape {array.shape}.{hint}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} needs at least one row and one column; got shape {array.shape}.")
    for problem, bad in (("NaN or infinity", ~np.isfinite(array)), ("a negative probability", array < 0)):
        rows = np.flatnonzero(bad.any(axis=1))
        if rows.size:
            raise ValueError(f"{name} has {problem} in row {rows[0]}: {array[rows[0]].tolist()}.")
    with np.errstate(over="ignore"):  # a sum beyond float64 is inf, refused below
        sums = array.sum(axis=1, keepdims=True)
    off = np.flatnonzero(np.abs(sums[:, 0] - 1.0) > SUM_ATOL)
    if off.size:
        raise ValueError(f"{name} rows must sum to one (within {SUM_ATOL}); row {off[0]} sums to {sums[off[0], 0]:.6g}.")
    return array / sums


def _check_n_bins(n_bins) -> int:
    if isinstance(n_bins, (bool, np.bool_)) or not isinstance(n_bins, numbers.Integral) or not 1 <= n_bins <= 2**53:
        raise ValueError(f"n_bins must be a positive integer (at most 2**53); got {n_bins!r}.")
    return int(n_bins)


def _label_columns(y_true, labels, n_rows: int, n_classes: int, name: str = "y_true",
                   rows_of: str = "proba") -> np.ndarray:
    """Column of ``proba`` of each true label: int array of shape (n_rows,).

    ``labels`` (default ``0..n_classes - 1``) must be 1-D, distinct and one per column;
    ``y_true`` 1-D, one per row (of ``rows_of``), each among ``labels``.
    """
    default = labels is None
    if default:
        labels = np.arange(n_classes)
    try:
        labels = np.asarray(labels)
        columns = {label: j for j, label in enumerate(labels.tolist())} if labels.ndim == 1 else None
    except (TypeError, ValueError):
        raise ValueError("labels must be a 1-D array of distinct, hashable class labels.") from None
    if columns is None or len(labels) != n_classes:
        raise ValueError(f"labels must name the {n_classes} columns of proba, one each; "
                         f"got shape {labels.shape}.")
    if len(columns) != n_classes:
        raise ValueError(f"labels must be distinct; got {labels.tolist()}.")
    try:
        y = np.asarray(y_true)
        values = y.tolist() if y.ndim == 1 else None
        found = None if values is None else [columns.get(v, -1) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-D array of class labels.") from None
    if found is None or len(y) != n_rows:
        raise ValueError(f"{name} must hold one label per row of {rows_of} ({n_rows}); got shape {y.shape}.")
    found = np.asarray(found, dtype=np.int64).reshape(-1)
    unknown = np.flatnonzero(found < 0)
    if unknown.size:
        classes = f"{labels.tolist()[:10]}{' ...' if n_classes > 10 else ''}"
        raise ValueError(f"{name} has labels that are not among the classes {classes}, such as {values[unknown[0]]!r}"
                         f"{' (labels defaults to 0..n_classes - 1: pass labels=)' if default else ''}.")
    return found


def _bins(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin ``b`` of each confidence, ``b / n_bins < confidence <= (b + 1) / n_bins`` (float64 edges)."""
    m = float(n_bins)
    b = np.clip(np.ceil(confidence * m) - 1, 0, m - 1)  # off by one where confidence * m rounds onto an edge
    b -= (b > 0) & (confidence <= b / m)
    b += (b < m - 1) & (confidence > (b + 1) / m)
    return b


def _ece(proba: np.ndarray, columns: np.ndarray, n_bins: int) -> float:
    """ECE of checked probabilities and true columns: sum over bins of |hits - confidences| / n."""
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == columns).astype(np.float64)
    _, in_bin = np.unique(_bins(confidence, n_bins), return_inverse=True)
    gaps = np.bincount(in_bin, weights=correct) - np.bincount(in_bin, weights=confidence)
    return float(round(np.abs(gaps).sum() / len(proba), 12))


def expected_calibration_error(y_true, proba, *, n_bins=15, labels=None):
    """Expected calibration error with equal-width confidence bins (Guo et al. 2017).

    ``ECE = sum_b |B_b| / n * |accuracy(B_b) - confidence(B_b)|``, where ``B_b`` holds
    the samples whose top probability falls in bin ``b``, ``(b / n_bins, (b + 1) / n_bins]``
    (edges rounded to float64).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, each among ``labels``.
    proba : array-like of shape (n_samples, n_classes)
        Predicted probabilities, columns ordered as ``labels``: finite, non-negative, rows
        summing to one within 1e-3 (``SUM_ATOL``: float32 softmax outputs do); they are
        renormalised in float64.
    n_bins : int, default=15
        Number of bins, a positive integer.
    labels : array-like of shape (n_classes,), default=None
        Class of each column, distinct; by default ``0..n_classes - 1``.

    Returns
    -------
    float
        In [0, 1].

    Raises
    ------
    ValueError
        Naming the argument (``y_true``, ``proba``, ``n_bins`` or ``labels``) that breaks
        the above.

    Examples
    --------
    >>> expected_calibration_error([0, 1], [[0.9, 0.1], [0.2, 0.8]])
    0.15
    """
    proba = _check_proba(proba)
    n_bins = _check_n_bins(n_bins)
    columns = _label_columns(y_true, labels, *proba.shape)
    return _ece(proba, columns, n_bins)


def _uncertainty(proba: np.ndarray, columns: np.ndarray, n_bins: int) -> dict[str, float]:
    """The four metrics of checked probabilities and true columns."""
    rows = np.arange(len(proba))
    eps = np.finfo(np.float64).eps  # as sklearn.metrics.log_loss: a zero on the true class costs -log(eps)
    onehot = np.zeros_like(proba)
    onehot[rows, columns] = 1.0
    return {
        "accuracy": float(np.mean(proba.argmax(axis=1) == columns)),
        "nll": float(-np.log(np.clip(proba[rows, columns], eps, 1 - eps)).mean()),
        "ece": _ece(proba, columns, n_bins),
        "brier": float(((proba - onehot) ** 2).sum(axis=1).mean()),
    }


def uncertainty_metrics(y_true, proba, *, labels=None, n_bins=15):
    """Accuracy, negative log-likelihood, ECE and Brier score of predicted probabilities.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, each among ``labels``.
    proba : array-like of shape (n_samples, n_classes)
        Finite, non-negative, rows summing to one within 1e-3 (``SUM_ATOL``: float32
        softmax outputs do); they are renormalised in float64.
    labels : array-like of shape (n_classes,), default=None
        Class of each column (a classifier's ``classes_``), distinct; default
        ``0..n_classes - 1``.
    n_bins : int, default=15
        Bins of the ECE, a positive integer.

    Returns
    -------
    dict
        ``accuracy``, ``nll`` (mean, natural log, probabilities clipped to
        ``[eps, 1 - eps]`` as in ``sklearn.metrics.log_loss``), ``ece`` and ``brier``
        (mean squared error of the probability vector against the one-hot label, summed
        over classes).

    Raises
    ------
    ValueError
        Naming the argument (``y_true``, ``proba``, ``labels`` or ``n_bins``) that breaks
        the above.

    Examples
    --------
    >>> m = uncertainty_metrics([0, 1], [[0.9, 0.1], [0.2, 0.8]])
    >>> round(m["accuracy"], 2), round(m["brier"], 3)
    (1.0, 0.05)
    """
    proba = _check_proba(proba)
    n_bins = _check_n_bins(n_bins)
    return _uncertainty(proba, _label_columns(y_true, labels, *proba.shape), n_bins)


def disagreement(proba_a, proba_b) -> float:
    """Fraction of samples whose most probable class differs between two predictions.

    Parameters
    ----------
    proba_a, proba_b : array-like of shape (n_samples, n_classes)
        Probabilities as :func:`uncertainty_metrics` takes them, of one shape.

    Returns
    -------
    float
        In [0, 1]; 0 when both predict the same class everywhere.

    Raises
    ------
    ValueError
        Naming ``proba_a`` or ``proba_b`` when one is not probabilities, or when their
        shapes differ.

    Examples
    --------
    >>> disagreement([[0.9, 0.1], [0.4, 0.6]], [[0.6, 0.4], [0.7, 0.3]])
    0.5
    """
    a, b = _check_proba(proba_a, "proba_a"), _check_proba(proba_b, "proba_b")
    if a.shape != b.shape:
        raise ValueError(f"proba_a and proba_b must have one shape (n_samples, n_classes); got {a.shape} and {b.shape}.")
    return float(np.mean(a.argmax(axis=1) != b.argmax(axis=1)))


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
