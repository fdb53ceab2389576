"""ESPRORegressor: the scikit-learn contract, Gaussian outputs, the mixture, warm start."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch import nn

from sklearn_espro import ESPRORegressor
from sklearn_espro._core.regression import GaussianNLLLoss, mixture_moments

SMALL = dict(n_modes=2, n_vertices=2, max_epochs=10, vertex_epochs=1, n_samples=2, batch_size=32,
             module__hidden_sizes=(16,), random_state=0, device="cpu")
# scikit-learn's checks fit on unscaled inputs (features around 100), where SGD on a learnt variance diverges
# (a clear FloatingPointError): Adam, as scikit-learn's MLPRegressor uses, takes them
CHECKED = {**SMALL, "optimizer": torch.optim.Adam, "lr": 0.01, "vertex_lr": 0.001}


@pytest.mark.slow
@parametrize_with_checks([ESPRORegressor(**CHECKED)])
def test_sklearn_compatible_regressor(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(200, 4).astype(np.float32)
    y = 3.0 * X[:, 0] - 2.0 * X[:, 1] ** 2 + 10.0 + 0.3 * rng.randn(200)
    return X, y


class MeansOnly(nn.Module):
    def __init__(self, n_features_in):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features_in, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x)


def test_the_prediction_is_the_mixture_of_every_drawn_models_gaussian(data):
    X, y = data
    reg = ESPRORegressor(**SMALL).fit(X, y)
    mean, std = reg.predict(X[:20], return_std=True)
    assert mean.shape == std.shape == (20,) and (std > 0).all()
    np.testing.assert_array_equal(reg.predict(X[:20]), mean)
    # by hand: each drawn model's mean and softplus variance, a mixture with equal weights, y's units
    means, variances = [], []
    for member in reg.members_:
        for model in member.models():
            with torch.no_grad():
                out = model(torch.from_numpy(X[:20])).double()
            means.append(out[:, :1])
            variances.append(nn.functional.softplus(out[:, 1:]) + 1e-6)
    m, v = mixture_moments(torch.stack(means), torch.stack(variances), torch.full((len(means),), 1 / len(means)))
    np.testing.assert_allclose(mean, m[:, 0].numpy() * reg.y_scale_[0] + reg.y_mean_[0], rtol=1e-5)
    np.testing.assert_allclose(std, np.sqrt(v[:, 0].numpy()) * reg.y_scale_[0], rtol=1e-5)
    assert reg.score(X, y) > 0.8  # R^2 on the training data


def test_multi_output_and_a_means_only_module_with_a_fitted_noise_level(data):
    X, y = data
    Y = np.stack([y, -y], axis=1)
    reg = ESPRORegressor(**SMALL).fit(X, Y)
    mean, std = reg.predict(X[:5], return_std=True)
    assert mean.shape == std.shape == (5, 2) and reg.n_targets_ == 2 and reg.noise_var_ is None
    means_only = ESPRORegressor(MeansOnly, **{k: v for k, v in SMALL.items() if not k.startswith("module__")}).fit(X, y)
    assert means_only.n_outputs_ == 1 and means_only.noise_var_.shape == (1,)
    train_mean = (means_only.predict(X) - means_only.y_mean_) / means_only.y_scale_
    standardized = (y - means_only.y_mean_) / means_only.y_scale_
    np.testing.assert_allclose(means_only.noise_var_, [np.mean((standardized - train_mean) ** 2)], rtol=1e-4)
    _, std = means_only.predict(X[:5], return_std=True)
    assert (std >= np.sqrt(means_only.noise_var_[0]) * means_only.y_scale_[0] * (1 - 1e-6)).all()


@pytest.mark.slow
def test_pipeline_grid_search_and_an_exact_pickle(data):
    X, y = data
    pipe = Pipeline([("scale", StandardScaler()), ("espro", ESPRORegressor(**{**SMALL, "max_epochs": 4}))])
    search = GridSearchCV(pipe, {"espro__volume_reg": [0.0, 0.1]}, cv=2).fit(X, y)
    assert search.best_params_["espro__volume_reg"] in (0.0, 0.1)
    reg = ESPRORegressor(**SMALL).fit(X, y)
    loaded = pickle.loads(pickle.dumps(reg))
    for a, b in zip(reg.predict(X, return_std=True), loaded.predict(X, return_std=True)):
        np.testing.assert_array_equal(a, b)


def test_regressor_errors_name_the_argument(data):
    X, y = data
    with pytest.raises(ValueError, match="returned 3 outputs per sample; a regressor's module returns the 1 means"):
        ESPRORegressor(nn.Linear(4, 3), **{k: v for k, v in SMALL.items() if not k.startswith("module__")}).fit(X, y)
    with pytest.raises(ValueError, match="criterion=CrossEntropyLoss failed on outputs of shape"):
        ESPRORegressor(criterion=nn.CrossEntropyLoss, **SMALL).fit(X, np.arange(200) / 7.0 + 0.5)
    with pytest.raises(ValueError):
        ESPRORegressor(**SMALL).fit(X, np.array(["a"] * 200))
    reg = ESPRORegressor(warm_start=True, **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="y has 2 targets, but the fitted members were trained on 1"):
        reg.fit(X, np.stack([y, y], 1))


def test_warm_start_keeps_the_standardisation_and_grows_vertices(data):
    X, y = data
    reg = ESPRORegressor(warm_start=True, **SMALL).fit(X, y)
    scale, first = reg.y_scale_.copy(), reg.simplexes_[0].vertices["layers.0.weight"][:2].clone()
    reg.set_params(n_vertices=3).fit(X, y * 2)  # other targets: the fitted members' units are kept
    np.testing.assert_array_equal(reg.y_scale_, scale)
    assert torch.equal(reg.simplexes_[0].vertices["layers.0.weight"][:2], first)
    assert {r["vertex"] for r in reg.history_ if r["fit"] == 1} == {2}


def test_the_gaussian_loss_of_means_and_variances():
    loss = GaussianNLLLoss()
    out = torch.tensor([[1.0, 0.5]])
    var = float(nn.functional.softplus(torch.tensor(0.5))) + 1e-6
    expected = 0.5 * (np.log(var) + (2.0 - 1.0) ** 2 / var + np.log(2 * np.pi))
    assert float(loss(out, torch.tensor([[2.0]]))) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="returned 3 outputs"):
        loss(torch.zeros(2, 3), torch.zeros(2, 1))


def test_a_criterion_that_would_broadcast_and_a_module_of_the_wrong_shape_are_refused(data):
    X, y = data
    with pytest.raises(ValueError, match=r"criterion=MSELoss failed on outputs of shape \(4, 2\).*module__n_classes=1"):
        ESPRORegressor(criterion=nn.MSELoss, **SMALL).fit(X, y)
    means_only = {k: v for k, v in SMALL.items() if not k.startswith("module__")}
    ESPRORegressor(MeansOnly, criterion=nn.MSELoss, **{**means_only, "max_epochs": 1, "vertex_epochs": 1}).fit(X, y)

    class Flat(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 1)

        def forward(self, x):
            return self.linear(x)[:, 0]

    with pytest.raises(ValueError, match=r"returned a tensor of shape \(2,\).*expected a 2-D tensor \(2, n_outputs\)"):
        ESPRORegressor(Flat(), **means_only).fit(X, y)


# -- targets on any scale, and targets that are not numbers (issue 20) -----------------------------------
TINY = dict(n_modes=1, n_vertices=2, max_epochs=3, vertex_epochs=1, n_samples=2, batch_size=16,
            module__hidden_sizes=(8,), random_state=0, device="cpu")


@pytest.mark.parametrize("scale", [1e-300, 1e-310, 1e300, 1e306])
def test_tiny_and_huge_targets_are_learnt_at_their_own_scale(data, scale):
    X, y = data[0][:60], data[1][:60]
    reference = ESPRORegressor(**TINY).fit(X, y)
    reg = ESPRORegressor(**TINY).fit(X, y * scale)
    assert np.isfinite(reg.y_scale_).all() and np.isfinite(reg.y_mean_).all()
    np.testing.assert_allclose(reg.y_scale_, reference.y_scale_ * scale, rtol=1e-6 if scale > 1e-308 else 1e-3)
    mean, std = reg.predict(X[:10], return_std=True)
    ref_mean, ref_std = reference.predict(X[:10], return_std=True)
    rtol = 1e-5 if scale > 1e-308 else 1e-3  # subnormal numbers hold fewer digits
    np.testing.assert_allclose(mean, ref_mean * scale, rtol=rtol)
    np.testing.assert_allclose(std, ref_std * scale, rtol=rtol)


@pytest.mark.parametrize("value", [0.0, 5.0, -1e-300, 1e300])
def test_constant_targets_are_predicted_at_their_scale(data, value):
    X = data[0][:40]
    reg = ESPRORegressor(**TINY).fit(X, np.full(40, value))
    mean, std = reg.predict(X[:5], return_std=True)
    assert np.isfinite(mean).all() and np.isfinite(std).all()
    if value == 0.0:
        assert np.abs(mean).max() < 1.0
    else:
        assert np.abs(mean - value).max() < 0.5 * abs(value)  # the right sign and magnitude
        unit = ESPRORegressor(**TINY).fit(X, np.full(40, np.sign(value)))
        np.testing.assert_allclose(mean, unit.predict(X[:5]) * abs(value), rtol=1e-6)


def test_targets_that_warm_start_units_cannot_hold_in_float32_are_refused(data):
    X, y = data[0][:60], data[1][:60]
    reg = ESPRORegressor(warm_start=True, **TINY).fit(X, y)
    with pytest.raises(ValueError, match=r"y, standardised with the fitted members' y_mean_ and y_scale_"):
        reg.set_params(n_vertices=3).fit(X, y * 1e40)
    assert reg.simplexes_[0].n_vertices == 2  # nothing trained


@pytest.mark.parametrize("seed", [1, 4])
def test_the_default_training_fits_unscaled_features_and_random_targets(seed):
    """scikit-learn's check_fit_check_is_fitted data (features around 100), on which SGD without gradient
    clipping diverged: a mode's first steps (gradient norms of 1e6-1e9) left weights of norm 1e7 or NaN, and
    a vertex grown from such a mode overflowed float32 at its first step. The optimizer, learning rates,
    network and batch size are the defaults; fewer modes and epochs keep it fast."""
    rng = np.random.RandomState(42)
    X, y = rng.normal(loc=100, size=(100, 2)), rng.normal(size=100)
    reg = ESPRORegressor(n_modes=1, n_vertices=2, max_epochs=5, random_state=seed, device="cpu").fit(X, y)
    mean, std = reg.predict(X, return_std=True)
    assert np.isfinite(mean).all() and np.isfinite(std).all()


class Counting(nn.Module):
    """A network that counts how often it was built: targets must be refused before that."""

    built = 0

    def __init__(self, n_features_in, n_classes):
        super().__init__()
        Counting.built += 1
        self.linear = nn.Linear(n_features_in, n_classes)

    def forward(self, x):
        return self.linear(x)


@pytest.mark.parametrize("make_y, error, message", [
    (lambda y: np.array(["a"] * len(y)), ValueError, r"y must hold numbers; got strings \(dtype <U1\)"),
    (lambda y: y.astype(str), ValueError, r"y must hold numbers; got strings"),
    (lambda y: np.array(["a"] * len(y), dtype=object), ValueError, r"y must hold real numbers; got a str \('a'\) at index 0"),
    (lambda y: __import__("scipy.sparse").sparse.csr_matrix(y[:, None]), TypeError, r"y is a sparse matrix"),
    (lambda y: np.array([None] + list(y[1:]), dtype=object), ValueError, r"y holds None \(a missing target\) at index 0"),
    (lambda y: [None] * len(y), ValueError, r"y holds None \(a missing target\) at index 0"),
    (lambda y: np.array(list(y[:-1]) + [np.inf], dtype=object), ValueError, r"y contains infinity or NaN"),
    (lambda y: np.array(list(y[:-1]) + [10 ** 400], dtype=object), ValueError, r"y must hold numbers"),
    (lambda y: y + 1j, ValueError, r"Complex data not supported: y must hold real numbers; got dtype complex128"),
    (lambda y: (y + 1j).astype(object), ValueError, r"y must hold real numbers; got a complex \(\(15.39"),
    (lambda y: y.reshape(-1, 1, 1), ValueError, r"y must be of shape \(n_samples,\) or \(n_samples, n_targets\)"),
])
def test_targets_that_are_not_numbers_are_refused_before_training(data, make_y, error, message):
    X, y = data[0][:40], data[1][:40]
    Counting.built = 0
    with pytest.raises(error, match=message):
        ESPRORegressor(Counting, **{k: v for k, v in TINY.items() if not k.startswith("module__")}).fit(X, make_y(y))
    assert Counting.built == 0


def test_predictions_beyond_float64_in_the_units_of_y_are_an_error_naming_y(data):
    X, y = data[0][:40], data[1][:40]
    reg = ESPRORegressor(**TINY).fit(X, y)
    reg.y_mean_, reg.y_scale_ = np.array([1.79e308]), np.array([1e308])  # above the mean: beyond float64's range
    with pytest.raises(FloatingPointError, match=r"The predictions for \d+ of 40 rows of X .* exceed float64's range "
                                                 r"in the units of y"):
        reg.predict(X)
