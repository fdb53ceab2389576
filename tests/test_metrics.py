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


# -- refusing what is not a classifier's probabilities (issue 20) ------------------------------


@pytest.fixture(scope="module")
def regressor():
    from sklearn_espro import ESPRORegressor

    rng = np.random.RandomState(0)
    X = rng.randn(60, 3).astype(np.float32)
    y = X[:, 0] + 0.1 * rng.randn(60)
    reg = ESPRORegressor(n_modes=1, n_vertices=2, max_epochs=2, vertex_epochs=1, module__hidden_sizes=(8,),
                         random_state=0, device="cpu").fit(X, y)
    return reg, X, y


@pytest.mark.parametrize("name", ["member_probabilities", "member_disagreement", "simplex_diversity"])
def test_member_metrics_refuse_a_regressor(regressor, name):
    from sklearn_espro import metrics

    reg, X, y = regressor
    args = (reg, X, y) if name == "simplex_diversity" else (reg, X)
    with pytest.raises(TypeError, match=f"{name} needs a fitted ESPROClassifier.*got ESPRORegressor"):
        getattr(metrics, name)(*args)


def test_member_metrics_refuse_other_objects():
    from sklearn.linear_model import LogisticRegression

    from sklearn_espro.metrics import member_probabilities

    fitted = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(TypeError, match="member_probabilities needs a fitted ESPROClassifier.*LogisticRegression"):
        member_probabilities(fitted, [[0.0]])
    with pytest.raises(TypeError, match="member_probabilities needs a fitted ESPROClassifier.*NoneType"):
        member_probabilities(None, [[0.0]])


GOOD_Y, GOOD_PROBA = [0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]


@pytest.mark.parametrize("kwargs,argument", [
    ({"y_true": [0, 1]}, "y_true"),  # one label short: used to broadcast
    ({"y_true": [0, 1, 1, 0]}, "y_true"),
    ({"y_true": [[0, 1, 1]]}, "y_true"),
    ({"y_true": [0, 1, 2]}, "y_true"),  # a class with no column
    ({"y_true": 1}, "y_true"),
    ({"proba": [[0.9, 2.1], [0.2, 0.8], [0.6, 0.4]]}, "proba"),  # a row summing to 3: ECE above 1
    ({"proba": [[1.2, -0.2], [0.2, 0.8], [0.6, 0.4]]}, "proba"),  # a negative probability
    ({"proba": [[np.nan, 1.0], [0.2, 0.8], [0.6, 0.4]]}, "proba"),
    ({"proba": [[np.inf, 1.0], [0.2, 0.8], [0.6, 0.4]]}, "proba"),
    ({"proba": [0.1, 0.8, 0.4]}, "proba"),  # 1-D: only the positive class
    ({"proba": [[0.9, 0.1], [0.2, 0.8]]}, "proba"),  # a row short
    ({"proba": [["a", "b"], ["c", "d"], ["e", "f"]]}, "proba"),
    ({"proba": [[0.9, 0.1], [0.2, 0.8], [1.0]]}, "proba"),  # ragged
    ({"n_bins": 0}, "n_bins"),
    ({"n_bins": -3}, "n_bins"),
    ({"n_bins": 2.5}, "n_bins"),
    ({"n_bins": True}, "n_bins"),
    ({"n_bins": "15"}, "n_bins"),
    ({"labels": [0]}, "labels"),  # too few labels
    ({"labels": [0, 1, 2]}, "labels"),
    ({"labels": [0, 0]}, "labels"),
    ({"labels": [[0, 1]]}, "labels"),
])
@pytest.mark.parametrize("metric", ["expected_calibration_error", "uncertainty_metrics"])
def test_calibration_metrics_refuse_bad_input_naming_the_argument(metric, kwargs, argument):
    from sklearn_espro import metrics

    call = {"y_true": GOOD_Y, "proba": GOOD_PROBA, **kwargs}
    with pytest.raises(ValueError, match=rf"\b{argument}\b"):
        getattr(metrics, metric)(call.pop("y_true"), call.pop("proba"), **call)


@pytest.mark.parametrize("a,b,argument", [
    ([[0.9, 2.1]], [[1.0, 0.0]], "proba_a"),
    ([[1.0, 0.0]], [[-0.5, 1.5]], "proba_b"),
    ([[np.nan, 1.0]], [[1.0, 0.0]], "proba_a"),
    ([0.9, 0.1], [0.9, 0.1], "proba_a"),
    ([[1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]], "one shape"),
])
def test_disagreement_refuses_what_are_not_probabilities(a, b, argument):
    from sklearn_espro.metrics import disagreement

    with pytest.raises(ValueError, match=argument):
        disagreement(a, b)


def test_rows_summing_to_one_within_float32_rounding_are_accepted_and_renormalised():
    proba = np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32) * np.float32(1.0004)
    exact = expected_calibration_error([0, 1], proba.astype(np.float64) / proba.sum(1, keepdims=True))
    assert expected_calibration_error([0, 1], proba) == pytest.approx(exact)
    assert uncertainty_metrics([0, 1], proba)["ece"] == pytest.approx(exact)


def test_ece_bins_a_confidence_just_above_an_edge_in_the_upper_bin():
    # bins (0, 1/3], (1/3, 2/3], (2/3, 1]; c is the double just above 2/3, but c * 3 rounds to 2.0
    c = float(np.nextafter(2 / 3, 1))
    assert c > 2 / 3 and c * 3 == 2.0
    proba = [[c, 1 - c], [0.9, 0.1]]  # rows summing to one exactly
    y = [0, 1]  # the first right, the second wrong: one bin, accuracy 1/2
    assert expected_calibration_error(y, proba, n_bins=3) == pytest.approx(abs(0.5 - (c + 0.9) / 2))
