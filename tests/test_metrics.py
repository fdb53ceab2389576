import numpy as np
import pytest
from sklearn.metrics import log_loss

from sklearn_espro.metrics import expected_calibration_error, uncertainty_metrics


def test_ece_of_a_calibrated_and_of_an_overconfident_predictor():
    rng = np.random.RandomState(0)
    confidence = rng.uniform(0.5, 1.0, 20000)
    correct = rng.rand(20000) < confidence  # right exactly as often as it says
    y = np.where(correct, 0, 1)
    proba = np.stack([confidence, 1 - confidence], axis=1)
    assert expected_calibration_error(y, proba) < 0.01
    overconfident = np.stack([np.full(20000, 0.99), np.full(20000, 0.01)], axis=1)
    y_half = np.arange(20000) % 2
    assert expected_calibration_error(y_half, overconfident) == pytest.approx(0.49)


def test_uncertainty_metrics_match_closed_forms_and_sklearn():
    y = np.array(["a", "b", "b"])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    m = uncertainty_metrics(y, proba, labels=np.array(["a", "b"]))
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["nll"] == pytest.approx(log_loss(y, proba, labels=["a", "b"]))
    assert m["brier"] == pytest.approx(np.mean([0.04 + 0.04, 0.09 + 0.09, 0.36 + 0.36]))


def test_rows_that_do_not_sum_to_one_are_refused():
    with pytest.raises(ValueError, match="proba rows must sum to one"):
        uncertainty_metrics([0, 1], [[0.5, 0.2], [0.5, 0.5]])
