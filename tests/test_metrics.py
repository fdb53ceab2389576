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


def test_member_probabilities_average_to_predict_proba_and_diversity_is_measured(digits):
    from sklearn_espro import ConvNet1d, ESPROClassifier
    from sklearn_espro.metrics import disagreement, member_probabilities, simplex_diversity

    X, y, X_test, y_test = digits
    X3, X3_test = X.reshape(-1, 1, 64), X_test.reshape(-1, 1, 64)
    clf = ESPROClassifier(ConvNet1d, module__channels=(4, 8), module__length=64, n_modes=2, n_vertices=3,
                          max_epochs=4, vertex_epochs=2, vertex_lr=0.2, batch_size=50, random_state=0,
                          device="cpu").fit(X3, y)
    members, modes = member_probabilities(clf, X3_test)
    assert members.shape == (2, 5, 200, 10) and modes.shape == (2, 200, 10)
    np.testing.assert_allclose(members.mean(axis=(0, 1)), clf.predict_proba(X3_test), atol=1e-10)
    rows = simplex_diversity(clf, X3_test, y_test)
    assert [r["simplex"] for r in rows] == [0, 1]
    for row, group, mode in zip(rows, members, modes):
        assert row["disagreement_with_mode"] == pytest.approx(np.mean([disagreement(m, mode) for m in group]))
        assert 0 < row["disagreement_with_mode"] < 1 and 0 < row["disagreement_between_members"] < 1
        assert row["gain_nll"] == pytest.approx(row["nll_mode"] - row["nll_simplex"])
        assert row["nll_mode"] == pytest.approx(log_loss(y_test, mode, labels=clf.classes_))


def test_disagreement_needs_matching_shapes():
    from sklearn_espro.metrics import disagreement

    assert disagreement([[1.0, 0.0]], [[1.0, 0.0]]) == 0.0
    with pytest.raises(ValueError, match="one shape"):
        disagreement([[1.0, 0.0]], [[1.0, 0.0, 0.0]])


def test_member_disagreement_is_the_mean_over_pairs_within_and_between_simplexes():
    from itertools import combinations

    from sklearn_espro import ESPROClassifier
    from sklearn_espro.metrics import disagreement, member_disagreement, member_probabilities

    rng = np.random.RandomState(0)
    X = rng.randn(120, 5)
    y = (X[:, 0] > 0).astype(int)
    clf = ESPROClassifier(n_modes=3, n_vertices=3, max_epochs=3, vertex_epochs=2, vertex_lr=0.5, random_state=0).fit(X, y)
    members, modes = member_probabilities(clf, X)
    J, M = members.shape[:2]
    within = [disagreement(members[j, a], members[j, b]) for j in range(J) for a, b in combinations(range(M), 2)]
    between = [disagreement(members[i, a], members[j, b])
               for i, j in combinations(range(J), 2) for a in range(M) for b in range(M)]
    out = member_disagreement(clf, X)
    assert out["within_simplex"] == pytest.approx(np.mean(within))
    assert out["between_simplexes"] == pytest.approx(np.mean(between))
    assert out["between_modes"] == pytest.approx(np.mean([disagreement(modes[i], modes[j])
                                                         for i, j in combinations(range(J), 2)]))
    assert out["between_simplexes"] > 0
