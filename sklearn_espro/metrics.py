"""Metrics of predictive uncertainty (ECE and a summary of four) and of a simplex's diversity.

Judging an ensemble: raw NLL rewards any method that merely softens an overconfident network,
so compare methods on :func:`calibrated_nll` (the test NLL after temperature scaling fitted on
a validation split with scikit-learn's ``CalibratedClassifierCV(FrozenEstimator(est),
method="temperature")``; :func:`temperature_scaled` returns that object for an estimator) and
express a gain as a :func:`deep_ensemble_equivalent`: how many independent networks a deep
ensemble needs to reach the same calibrated NLL (Ashukha et al., ICLR 2020).

Diversity (Section 5.3 of Benton et al. 2021): a simplex pays only if its members are
different functions. :func:`member_probabilities` gives the probabilities of every model
a fitted :class:`~sklearn_espro.ESPROClassifier` averages and of every mode;
:func:`simplex_diversity` turns them into disagreement with the mode, disagreement
between members, and the gain of each simplex's average over its mode alone.
"""

from __future__ import annotations

from ._calibration import calibrated_nll, deep_ensemble_equivalent, temperature_scaled
from ._diversity import member_disagreement, member_probabilities, simplex_diversity
from ._scoring import (
    disagreement,
    expected_calibration_error,
    uncertainty_metrics,
)

__all__ = [
    "calibrated_nll",
    "deep_ensemble_equivalent",
    "disagreement",
    "expected_calibration_error",
    "member_disagreement",
    "member_probabilities",
    "simplex_diversity",
    "temperature_scaled",
    "uncertainty_metrics",
]
