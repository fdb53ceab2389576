"""Metrics of predictive uncertainty: expected calibration error and a summary of all four."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, log_loss

__all__ = ["expected_calibration_error", "uncertainty_metrics"]


def expected_calibration_error(y_true, proba, *, n_bins=15, labels=None):
    """Expected calibration error with equal-width confidence bins (Guo et al. 2017).

    ``ECE = sum_b |B_b| / n * |accuracy(B_b) - confidence(B_b)|``, where ``B_b`` holds
    the samples whose top probability falls in bin ``b`` of ``n_bins`` equal bins of
    (0, 1].

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    proba : array-like of shape (n_samples, n_classes)
        Predicted probabilities, columns ordered as ``labels``.
    n_bins : int, default=15
    labels : array-like of shape (n_classes,), default=None
        Class of each column; by default ``0..n_classes - 1``.

    Returns
    -------
    float

    Examples
    --------
    >>> expected_calibration_error([0, 1], [[0.9, 0.1], [0.2, 0.8]])
    0.15
    """
    proba = np.asarray(proba, dtype=np.float64)
    labels = np.arange(proba.shape[1]) if labels is None else np.asarray(labels)
    confidence = proba.max(axis=1)
    correct = labels[proba.argmax(axis=1)] == np.asarray(y_true)
    bins = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in np.unique(bins):
        in_bin = bins == b
        ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(round(ece, 12))


def uncertainty_metrics(y_true, proba, *, labels=None, n_bins=15):
    """Accuracy, negative log-likelihood, ECE and Brier score of predicted probabilities.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
    proba : array-like of shape (n_samples, n_classes)
        Rows must sum to one within 1e-4 (float32 softmax outputs do); they are
        renormalised in float64.
    labels : array-like of shape (n_classes,), default=None
        Class of each column (a classifier's ``classes_``); default ``0..n_classes - 1``.
    n_bins : int, default=15

    Returns
    -------
    dict
        ``accuracy``, ``nll`` (mean, natural log), ``ece`` and ``brier`` (mean squared
        error of the probability vector against the one-hot label, summed over classes).

    Examples
    --------
    >>> m = uncertainty_metrics([0, 1], [[0.9, 0.1], [0.2, 0.8]])
    >>> round(m["accuracy"], 2), round(m["brier"], 3)
    (1.0, 0.05)
    """
    proba = np.asarray(proba, dtype=np.float64)
    sums = proba.sum(axis=1, keepdims=True)
    if not np.allclose(sums, 1.0, atol=1e-4):
        raise ValueError(f"proba rows must sum to one; found sums from {sums.min():.6f} to {sums.max():.6f}.")
    proba = proba / sums
    labels = np.arange(proba.shape[1]) if labels is None else np.asarray(labels)
    y_true = np.asarray(y_true)
    onehot = (y_true[:, None] == labels[None, :]).astype(np.float64)
    return {
        "accuracy": float(accuracy_score(y_true, labels[proba.argmax(axis=1)])),
        "nll": float(log_loss(y_true, proba, labels=labels)),
        "ece": expected_calibration_error(y_true, proba, n_bins=n_bins, labels=labels),
        "brier": float(((proba - onehot) ** 2).sum(axis=1).mean()),
    }
