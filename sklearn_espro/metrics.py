"""Metrics of predictive uncertainty (ECE and a summary of four) and of a simplex's diversity.

Diversity (Section 5.3 of Benton et al. 2021): a simplex pays only if its members are
different functions. :func:`member_probabilities` gives the probabilities of every model
a fitted :class:`~sklearn_espro.ESPROClassifier` averages and of every mode;
:func:`simplex_diversity` turns them into disagreement with the mode, disagreement
between members, and the gain of each simplex's average over its mode alone.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, log_loss
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


def disagreement(proba_a, proba_b) -> float:
    """Fraction of samples whose most probable class differs between two predictions.

    Parameters
    ----------
    proba_a, proba_b : array-like of shape (n_samples, n_classes)

    Returns
    -------
    float
        In [0, 1]; 0 when both predict the same class everywhere.

    Examples
    --------
    >>> disagreement([[0.9, 0.1], [0.4, 0.6]], [[0.6, 0.4], [0.7, 0.3]])
    0.5
    """
    a, b = np.asarray(proba_a), np.asarray(proba_b)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"proba_a and proba_b must have one shape (n_samples, n_classes); got {a.shape} and {b.shape}.")
    return float(np.mean(a.argmax(axis=1) != b.argmax(axis=1)))


@torch.no_grad()
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
    from ._core.validation import resolve_device

    check_is_fitted(estimator)
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
    members, modes = member_probabilities(estimator, X)
    labels = estimator.classes_
    rows = []
    for j, (group, mode) in enumerate(zip(members, modes)):
        average = group.mean(axis=0)
        row = {
            "simplex": j,
            "disagreement_with_mode": float(np.mean([disagreement(m, mode) for m in group])),
            "disagreement_between_members": float(np.mean([disagreement(a, b) for a, b in combinations(group, 2)]
                                                          or [0.0])),
        }
        of_mode = uncertainty_metrics(y, mode, labels=labels)
        of_average = uncertainty_metrics(y, average, labels=labels)
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
    members, modes = member_probabilities(estimator, X)
    labels, mode_labels = members.argmax(-1), modes.argmax(-1)  # (J, M, n) and (J, n): each model's classes, once
    n_simplexes, n_members = labels.shape[:2]
    within = [np.mean(labels[j, a] != labels[j, b])
              for j in range(n_simplexes) for a, b in combinations(range(n_members), 2)]
    between = [np.mean(labels[i, :, None] != labels[j, None, :], axis=-1).mean()
               for i, j in combinations(range(n_simplexes), 2)]
    of_modes = [np.mean(mode_labels[i] != mode_labels[j]) for i, j in combinations(range(n_simplexes), 2)]
    return {name: float(np.mean(values)) if values else float("nan")
            for name, values in (("within_simplex", within), ("between_simplexes", between), ("between_modes", of_modes))}
