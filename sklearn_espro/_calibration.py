"""Temperature scaling with scikit-learn and the deep-ensemble equivalent; public through :mod:`sklearn_espro.metrics`."""

from __future__ import annotations

import numpy as np
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, is_classifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.utils.validation import check_is_fitted

from ._scoring import (
    _check_proba,
    _label_columns,
    _uncertainty,
)


def _require_temperature_scaling() -> None:
    """Raise ImportError unless scikit-learn has ``CalibratedClassifierCV(method="temperature")`` (1.8+)."""
    major, minor = (int(part) for part in sklearn.__version__.split(".")[:2])
    if (major, minor) < (1, 8):
        raise ImportError("Temperature scaling needs scikit-learn >= 1.8 (CalibratedClassifierCV(method="
                          f"'temperature')); this is scikit-learn {sklearn.__version__}.")


def _one_split(n_rows: int) -> list:
    """A "cross-validation" of one split, every row both fitted and predicted.

    A frozen estimator's fit is a no-op, so scikit-learn's default 5 folds only split the
    prediction into 5 calls and warn on classes with fewer than 5 rows; the fitted temperature
    is the same.
    """
    rows = np.arange(n_rows)
    return [(rows, rows)]


class _GivenProbabilities(ClassifierMixin, BaseEstimator):
    """A fitted classifier whose input is its own ``predict_proba``: probabilities computed once.

    It lets scikit-learn's temperature scaling run on cached probabilities (the members of
    many ensembles in a benchmark) with classes ``0..n_classes - 1``, so the labels it is
    given are column indices.
    """

    def __init__(self, n_classes=2):
        self.n_classes = n_classes

    def fit(self, X=None, y=None):
        self.classes_ = np.arange(self.n_classes)
        return self

    def predict_proba(self, X):
        return np.asarray(X, dtype=np.float64)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _temperature(calibrated: CalibratedClassifierCV) -> float:
    """Fitted temperature T of a temperature-scaled CalibratedClassifierCV (scikit-learn 1.8+).

    With a frozen estimator there is one calibrated classifier and, for temperature scaling,
    one calibrator, whose ``beta_`` is the inverse temperature: probabilities are
    ``softmax(beta_ * logits)``.
    """
    (calibrated_classifier,) = calibrated.calibrated_classifiers_
    (calibrator,) = calibrated_classifier.calibrators
    return float(1.0 / calibrator.beta_)


def calibrated_nll(y_val, proba_val, y_test, proba_test, *, labels=None):
    """Test NLL before and after temperature scaling fitted on a validation split.

    The temperature is fitted by scikit-learn's own ``CalibratedClassifierCV(FrozenEstimator(
    est), method="temperature")`` on ``(proba_val, y_val)``, with ``est`` a frozen classifier
    that returns the given probabilities; both NLLs are measured on ``(proba_test, y_test)``.

    Parameters
    ----------
    y_val : array-like of shape (n_val,)
        True labels of the validation split, each among ``labels``; every class must occur.
    proba_val : array-like of shape (n_val, n_classes)
        Predicted probabilities on the validation split, as :func:`uncertainty_metrics`
        takes them (renormalised in float64).
    y_test : array-like of shape (n_test,)
        True labels of the test split, each among ``labels``.
    proba_test : array-like of shape (n_test, n_classes)
        Predicted probabilities on the test split, columns as ``proba_val``'s.
    labels : array-like of shape (n_classes,), default=None
        Class of each column (a classifier's ``classes_``), distinct; default
        ``0..n_classes - 1``.

    Returns
    -------
    dict
        ``nll``: the raw test NLL; ``calibrated_nll``: the test NLL after temperature
        scaling; ``temperature``: the fitted T (above 1: the predictions were overconfident
        and are softened; below 1: underconfident). NLLs as in :func:`uncertainty_metrics`.

    Raises
    ------
    ValueError
        Naming the argument (``y_val``, ``proba_val``, ``y_test``, ``proba_test`` or
        ``labels``) that breaks the above.
    ImportError
        With scikit-learn older than 1.8 (no temperature scaling).

    See Also
    --------
    temperature_scaled : The same calibration for a fitted estimator, as an estimator.
    deep_ensemble_equivalent : Calibrated NLL expressed as a number of networks.

    Notes
    -----
    Temperature scaling (Guo et al. 2017) replaces logits ``z`` by ``z / T``. Given
    probabilities, scikit-learn takes ``log(p + 1e-12)`` as the logits, so the calibrated
    prediction is ``p ** (1 / T)`` renormalised (probabilities under about 1e-12 floored).
    For one softmax network this is exactly
    scaling its logits: ``log softmax(z) = z - logsumexp(z)`` differs from ``z`` by a constant
    per row, which a softmax ignores. For an ensemble it scales the log of the averaged
    probabilities: the temperature comes after the averaging and calibrates the ensemble's
    own predictive distribution, the order Rahaman and Thiery (NeurIPS 2021) find works for
    deep ensembles. Accuracy is unchanged. T is searched in ``[exp(-10), exp(10)]``.

    References
    ----------
    Guo, Pleiss, Sun and Weinberger, "On Calibration of Modern Neural Networks", ICML 2017.
    Ashukha, Lyzhov, Molchanov and Vetrov, "Pitfalls of In-Domain Uncertainty Estimation and
    Ensembling in Deep Learning", ICLR 2020.
    Rahaman and Thiery, "Uncertainty Quantification and Deep Ensembles", NeurIPS 2021.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.normal(size=(4000, 3))
    >>> p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    >>> y = (rng.random((4000, 1)) > p.cumsum(axis=1)).sum(axis=1)  # drawn from p: calibrated
    >>> sharp = np.exp(3 * logits) / np.exp(3 * logits).sum(axis=1, keepdims=True)
    >>> out = calibrated_nll(y[:2000], sharp[:2000], y[2000:], sharp[2000:])
    >>> bool(2.7 < out["temperature"] < 3.3), bool(out["calibrated_nll"] < out["nll"])
    (True, True)
    """
    _require_temperature_scaling()
    proba_val, proba_test = _check_proba(proba_val, "proba_val"), _check_proba(proba_test, "proba_test")
    if proba_val.shape[1] != proba_test.shape[1]:
        raise ValueError(f"proba_val and proba_test must have one column per class, the same classes; got "
                         f"{proba_val.shape[1]} and {proba_test.shape[1]} columns.")
    n_classes = proba_val.shape[1]
    columns_val = _label_columns(y_val, labels, len(proba_val), n_classes, name="y_val", rows_of="proba_val")
    columns_test = _label_columns(y_test, labels, len(proba_test), n_classes, name="y_test", rows_of="proba_test")
    _require_every_class(columns_val, n_classes, labels)
    calibrated = CalibratedClassifierCV(FrozenEstimator(_GivenProbabilities(n_classes).fit()), method="temperature",
                                        cv=_one_split(len(proba_val))).fit(proba_val, columns_val)
    scaled = _check_proba(calibrated.predict_proba(proba_test), "the calibrated proba_test")
    return {
        "nll": _uncertainty(proba_test, columns_test, n_bins=1)["nll"],
        "calibrated_nll": _uncertainty(scaled, columns_test, n_bins=1)["nll"],
        "temperature": _temperature(calibrated),
    }


def _require_every_class(columns: np.ndarray, n_classes: int, labels, name: str = "y_val") -> None:
    """Raise ValueError unless every column's class occurs among ``columns``.

    scikit-learn 1.9 fits the temperature against the classes that occur in ``y``: with one
    missing, the columns and the classes disagree (an IndexError, or a wrong fit).
    """
    missing = np.setdiff1d(np.arange(n_classes), columns)
    if missing.size:
        names = np.arange(n_classes) if labels is None else np.asarray(labels)
        raise ValueError(f"{name} must hold every class at least once to fit a temperature; "
                         f"{missing.size} never occur, such as {names[missing[0]]!r}.")


def temperature_scaled(estimator, X_val, y_val):
    """A fitted classifier's temperature-scaled version, fitted on a validation split.

    Exactly ``CalibratedClassifierCV(FrozenEstimator(estimator), method="temperature")``
    fitted on ``(X_val, y_val)`` (one split: a frozen estimator is not refitted), after
    checks scikit-learn 1.9 does not make.

    Parameters
    ----------
    estimator : fitted classifier
        Such as an :class:`~sklearn_espro.ESPROClassifier`. scikit-learn calibrates its
        ``decision_function`` if it has one, else the log of its ``predict_proba``.
    X_val : array-like of shape (n_val, ...)
        Validation inputs, as ``estimator.predict_proba`` takes them.
    y_val : array-like of shape (n_val,)
        Their labels, each among ``estimator.classes_``; every class must occur.

    Returns
    -------
    CalibratedClassifierCV
        Fitted; its ``predict_proba(X)`` is the temperature-scaled probabilities and its
        ``classes_`` are ``estimator.classes_``.

    Raises
    ------
    TypeError
        If ``estimator`` is not a classifier.
    ValueError
        If ``y_val`` is not one label of ``estimator.classes_`` per row of ``X_val``, misses
        a class, or if the classes are neither sorted strings nor ``0..n_classes - 1``:
        scikit-learn 1.9 reads other labels as column indices for temperature scaling
        (classes ``[1, 2, 3]`` fit a wrong temperature silently). Use :func:`calibrated_nll`
        with ``labels=estimator.classes_`` for those.
    ImportError
        With scikit-learn older than 1.8.

    See Also
    --------
    calibrated_nll : The NLLs and the temperature, from probabilities.

    Notes
    -----
    :func:`calibrated_nll` with ``estimator.predict_proba`` of the same splits fits the same
    temperature and reports it.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_espro import ESPROClassifier
    >>> X, y = np.random.RandomState(0).randn(40, 3), np.arange(40) % 2
    >>> clf = ESPROClassifier(n_modes=1, n_vertices=1, max_epochs=2, random_state=0).fit(X, y)
    >>> calibrated = temperature_scaled(clf, X, y)
    >>> calibrated.predict_proba(X).shape, calibrated.classes_.tolist()
    ((40, 2), [0, 1])
    """
    _require_temperature_scaling()
    if not is_classifier(estimator):
        raise TypeError(f"temperature_scaled needs a fitted classifier; got {type(estimator).__name__}.")
    check_is_fitted(estimator)
    classes = np.asarray(estimator.classes_)
    n_classes = len(classes)
    # scikit-learn encodes string labels (in sorted order) and takes any other label as a column index
    strings = all(isinstance(c, str) for c in classes.tolist()) and classes.tolist() == sorted(classes.tolist())
    if not strings and not np.array_equal(classes, np.arange(n_classes)):
        raise ValueError(f"temperature_scaled needs sorted string classes or the integers 0..{n_classes - 1}: "
                         f"scikit-learn reads other labels as column indices for temperature scaling; got classes "
                         f"{classes.tolist()[:10]}. Use calibrated_nll(..., labels=estimator.classes_) instead.")
    try:
        n_rows = len(X_val)
    except TypeError:
        raise ValueError(f"X_val must be array-like of shape (n_val, ...); got {type(X_val).__name__}.") from None
    columns = _label_columns(y_val, classes, n_rows, n_classes, name="y_val", rows_of="X_val")
    _require_every_class(columns, n_classes, classes)
    calibrated = CalibratedClassifierCV(FrozenEstimator(estimator), method="temperature", cv=_one_split(n_rows))
    return calibrated.fit(X_val, np.asarray(y_val))


def _finite_array(values, name: str, *, ndim: int | None = None) -> np.ndarray:
    """``values`` as a float64 array of finite numbers (of ``ndim`` dimensions), or ValueError naming ``name``."""
    try:
        array = np.asarray(values)
        if array.dtype.kind not in "biuf":
            raise TypeError(array.dtype)
        array = array.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or an array of numbers.") from None
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite; got {array.ravel()[~np.isfinite(array.ravel())][0]}.")
    return array


def _check_de_curve(de_nlls, de_sizes) -> tuple[np.ndarray, np.ndarray]:
    """The deep-ensemble curve as two float64 arrays, sizes positive and strictly increasing."""
    curve = _finite_array(de_nlls, "de_nlls", ndim=1)
    if len(curve) < 2:
        raise ValueError(f"de_nlls needs the NLLs of at least two ensemble sizes; got {len(curve)}.")
    if de_sizes is None:
        return curve, np.arange(1.0, len(curve) + 1)
    sizes = _finite_array(de_sizes, "de_sizes", ndim=1)
    if sizes.shape != curve.shape:
        raise ValueError(f"de_sizes must give one size per entry of de_nlls ({len(curve)}); got shape {sizes.shape}.")
    if sizes[0] <= 0 or np.any(np.diff(sizes) <= 0):
        raise ValueError(f"de_sizes must be positive and strictly increasing; got {sizes.tolist()}.")
    return curve, sizes


def deep_ensemble_equivalent(nll, de_nlls, de_sizes=None):
    """Deep-ensemble equivalent (DEE): how many independent networks match an NLL.

    The smallest ensemble size at which the deep ensemble's NLL curve reaches ``nll``
    (Ashukha et al. 2020), the curve interpolated between the measured sizes linearly in
    ``1 / size``.

    Parameters
    ----------
    nll : float or array-like
        The method's NLL (calibrated: :func:`calibrated_nll`), or several; any score where
        lower is better works.
    de_nlls : array-like of shape (n_sizes,)
        The NLLs of deep ensembles of ``de_sizes`` independently trained networks, measured
        as ``nll`` (calibrated, on the same test set), at least two.
    de_sizes : array-like of shape (n_sizes,), default=None
        Their sizes, positive and strictly increasing; by default ``1..n_sizes``.

    Returns
    -------
    float or ndarray
        Of ``nll``'s shape, in ``[de_sizes[0], de_sizes[-1]]`` or ``inf``:
        ``de_sizes[0]`` when ``nll`` is no better than the smallest ensemble (with the
        default sizes, "no better than one network": the paper's definition keeps DEE >= 1);
        ``inf`` when ``nll`` is better than every measured ensemble (the minimum of an
        empty set: pass a longer curve to resolve it).

    Raises
    ------
    ValueError
        Naming ``nll``, ``de_nlls`` or ``de_sizes`` when one is not finite numbers, when
        ``de_nlls`` has fewer than two entries, or when ``de_sizes`` is not one positive,
        strictly increasing size per entry of ``de_nlls``.

    See Also
    --------
    calibrated_nll : The calibrated NLL of a method or of a deep ensemble.

    Notes
    -----
    ``DEE(nll) = min {s >= s_1 : NLL_DE(s) <= nll}`` (Ashukha et al. 2020), with
    ``NLL_DE`` through the points ``(s_k, L_k)`` and, between neighbours, linear in ``1 / s``:
    on the segment, ``L(s) = L_k + (L_{k+1} - L_k) t`` with
    ``t = (1 / s_k - 1 / s) / (1 / s_k - 1 / s_{k+1})``, so
    ``DEE = s_k s_{k+1} / ((1 - t) s_{k+1} + t s_k)`` at the crossing. A deep ensemble's
    score behaves close to ``a + b / s``: for the Brier score of ``s`` independent members
    the expectation is exactly that (their variance averages out), and Lobacheva et al.
    (NeurIPS 2020) fit calibrated NLL with power laws ``a + b s^-c``. This interpolation
    reproduces ``a + b / s`` exactly; linear in ``s``, it would overstate the DEE between
    sizes (the curve is convex in ``s``). The
    measured sizes themselves are returned exactly. A curve that is not monotone (noise at
    large sizes) needs no repair: the DEE is its first crossing, the fewest networks that
    already reach ``nll``.

    References
    ----------
    Ashukha, Lyzhov, Molchanov and Vetrov, "Pitfalls of In-Domain Uncertainty Estimation and
    Ensembling in Deep Learning", ICLR 2020.
    Lobacheva, Chirkova, Kodryan and Vetrov, "On Power Laws in Deep Ensembles", NeurIPS 2020.

    Examples
    --------
    >>> de = [1.0 + 0.5 / n for n in (1, 2, 3, 4)]  # NLL of deep ensembles of 1..4 networks
    >>> round(deep_ensemble_equivalent(1.0 + 0.5 / 2.5, de), 9)  # between DE(2) and DE(3)
    2.5
    >>> deep_ensemble_equivalent([2.0, de[2], 1.1], de).tolist()  # worse than one network; DE(3); beyond DE(4)
    [1.0, 3.0, inf]
    """
    values = _finite_array(nll, "nll")
    curve, sizes = _check_de_curve(de_nlls, de_sizes)
    flat = values.ravel()
    out = np.full(flat.shape, np.inf)
    out[flat >= curve[0]] = sizes[0]
    todo = flat < curve[0]  # rows whose NLL the curve has not reached yet
    for k in range(1, len(curve)):
        hit = todo & (flat >= curve[k])  # the curve first reaches them on the segment (s_{k-1}, s_k]
        t = (curve[k - 1] - flat[hit]) / (curve[k - 1] - curve[k])  # in (0, 1]; curve[k-1] > nll >= curve[k]
        out[hit] = sizes[k - 1] * sizes[k] / ((1 - t) * sizes[k] + t * sizes[k - 1])
        todo &= ~hit
    return float(out[0]) if values.ndim == 0 else out.reshape(values.shape)
