"""Scores of predicted probabilities (ECE, NLL, Brier, disagreement) and the checks of their inputs; public through :mod:`sklearn_espro.metrics`."""

from __future__ import annotations

import numbers

import numpy as np

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
