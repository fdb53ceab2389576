"""Never silently wrong: defects found by adversarial use, each with the case that showed it."""

import threading
import time
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_espro import ESPROClassifier, fit_curve_swag

BASE = dict(n_modes=1, n_vertices=3, max_epochs=3, vertex_epochs=2, n_samples=3, batch_size=16,
            random_state=0, device="cpu")


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(60, 5).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


class InplaceFirst(nn.Module):
    """An MLP whose first layer writes into its input (nn.ReLU(inplace=True))."""

    def __init__(self, n_features_in, n_classes):
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(n_features_in, 8), nn.ReLU(), nn.Linear(8, n_classes))

    def forward(self, x):
        return self.net(x)


class BatchNormMLP(nn.Module):
    def __init__(self, n_features_in, n_classes):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features_in, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, n_classes))

    def forward(self, x):
        return self.net(x)


class FrozenFirst(nn.Module):
    """An MLP whose first layer is frozen (requires_grad=False)."""

    def __init__(self, n_features_in, n_classes):
        super().__init__()
        self.frozen = nn.Linear(n_features_in, 8)
        self.frozen.requires_grad_(False)
        self.head = nn.Linear(8, n_classes)

    def forward(self, x):
        return self.head(torch.relu(self.frozen(x)))


class Tied(nn.Module):
    """Two layers sharing one weight matrix (``self.b.weight = self.a.weight``)."""

    def __init__(self, n_features_in, n_classes):
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(8, 8)
        self.b.weight = self.a.weight
        self.inp = nn.Linear(n_features_in, 8)
        self.out = nn.Linear(8, n_classes)

    def forward(self, x):
        return self.out(torch.relu(self.b(torch.relu(self.a(self.inp(x))))))


class Slow(nn.Module):
    """An MLP whose forward sleeps, so that concurrent predictions overlap."""

    def __init__(self, n_features_in, n_classes):
        super().__init__()
        self.linear = nn.Linear(n_features_in, n_classes)

    def forward(self, x):
        time.sleep(0.02)
        return self.linear(x)


# 1. silent NaN and silent blow-ups
def test_a_diverging_vertex_never_ends_in_nan_probabilities(data):
    X, y = data
    with pytest.raises(FloatingPointError, match="vertex 1 of simplex 0"):
        ESPROClassifier(**{**BASE, "vertex_lr": 1e9}).fit(X, y)


class NaNInEval(nn.Module):
    """Finite logits while training, NaN ones in evaluation mode (what prediction uses)."""

    def __init__(self, n_features_in, n_classes):
        super().__init__()
        self.linear = nn.Linear(n_features_in, n_classes)

    def forward(self, x):
        out = self.linear(x)
        return out if self.training else out * float("nan")


def test_a_fit_never_ends_with_non_finite_probabilities(data):
    X, y = data
    with pytest.raises(FloatingPointError, match="models kept for prediction from simplex 0 give non-finite"):
        ESPROClassifier(NaNInEval, **BASE).fit(X, y)


def test_a_fit_never_ends_with_non_finite_vertices():
    from sklearn_espro._core.members import _check_fitted_simplex
    from sklearn_espro import Simplex

    simplex = Simplex.from_module(nn.Linear(3, 2))
    simplex = simplex.add_vertex({"weight": torch.full((2, 3), float("nan")), "bias": torch.zeros(2)})
    with pytest.raises(FloatingPointError, match="Vertex 1 of simplex 4 has non-finite weights"):
        _check_fitted_simplex(simplex, torch.tensor([[0.5, 0.5]]), {}, torch.ones(2, 3), "simplex 4")


def test_a_vertex_whose_loss_grows_a_hundredfold_warns(data):
    X, y = data
    with pytest.warns(RuntimeWarning, match=r"loss of vertex 1 of simplex 0 grew from .*volume_reg=100\).*A smaller"):
        # without clipping: max_grad_norm's default bounds the steps that make the loss grow
        ESPROClassifier(**{**BASE, "volume_reg": 100.0, "max_epochs": 20, "max_grad_norm": None}).fit(X, y)


class PriorOnly(nn.Module):
    """Logits that ignore X: the best it can learn is the class frequencies."""

    def __init__(self, n_features_in, n_classes):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(n_classes))

    def forward(self, x):
        return self.bias.expand(len(x), -1)


def test_a_mode_no_better_than_the_class_frequencies_warns(data):
    X, y = data
    with pytest.warns(RuntimeWarning, match=r"mode of simplex 0 ended at .*class frequencies \(0\.69.*lr=0\.2\)"):
        ESPROClassifier(PriorOnly, **{**BASE, "n_vertices": 1, "max_epochs": 20}).fit(X, y)
    with warnings.catch_warnings():  # a network that learns does not warn
        warnings.simplefilter("error", RuntimeWarning)
        ESPROClassifier(**{**BASE, "n_vertices": 1, "max_epochs": 20}).fit(X, y)

def test_a_module_returning_nan_makes_predict_raise(data):
    X, y = data
    clf = ESPROClassifier(**BASE).fit(X, y)
    X_bad = X.copy()
    X_bad[4] = np.float32(3e38)  # finite input, infinite logits
    with pytest.raises(FloatingPointError, match="non-finite logits for 1 of 60 rows of X .*row 4"):
        clf.predict(X_bad)


# 2. the caller's arrays
def test_an_inplace_first_layer_leaves_the_callers_arrays_alone(data):
    X, y = data
    before = X.copy()
    clf = ESPROClassifier(InplaceFirst, **BASE).fit(X, y)
    np.testing.assert_array_equal(X, before)
    clf.predict_proba(X)
    clf.sample_models(2, X=X)
    np.testing.assert_array_equal(X, before)


# 3. BatchNorm and short last batches
@pytest.mark.parametrize("n, batch_size, n_train_samples", [(133, 128, 5), (40, 16, 5), (129, 128, 5), (33, 16, 3)])
def test_batchnorm_with_a_short_last_batch(n, batch_size, n_train_samples):
    rng = np.random.RandomState(0)
    X = rng.randn(n, 5).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    clf = ESPROClassifier(BatchNormMLP, **{**BASE, "batch_size": batch_size, "n_train_samples": n_train_samples})
    proba = clf.fit(X, y).predict_proba(X)  # raises FloatingPointError on non-finite rows
    assert np.allclose(proba.sum(1), 1.0)


# 4. frozen parameters
def test_a_frozen_parameter_is_the_same_at_every_vertex_and_out_of_the_volume(data):
    X, y = data
    clf = ESPROClassifier(FrozenFirst, **BASE).fit(X, y)
    simplex = clf.simplexes_[0]
    assert set(simplex.vertices) == {"head.weight", "head.bias"}  # only these vary, and span the volume
    for model in clf.sample_models(3, X=X):
        np.testing.assert_array_equal(model.frozen.weight.detach(), simplex.buffers["frozen.weight"])
        assert not model.frozen.weight.requires_grad


# 5. and 6. torch's global state
def test_fit_and_sample_models_leave_the_global_rng_as_found(data):
    X, y = data
    draws = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        ESPROClassifier(**{**BASE, "module__dropout": 0.3}).fit(X, y).sample_models(2, X=X)
        draws.append(torch.rand(2))
        torch.manual_seed(seed)
        draws.append(torch.rand(2))
    assert torch.equal(draws[0], draws[1]) and torch.equal(draws[2], draws[3])
    assert not torch.equal(draws[0], draws[2])


def test_dropout_in_modes_stays_reproducible(data):
    X, y = data
    first = ESPROClassifier(**{**BASE, "module__dropout": 0.3}).fit(X, y).predict_proba(X)
    torch.manual_seed(123)  # another global state: same fit
    second = ESPROClassifier(**{**BASE, "module__dropout": 0.3}).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)


def test_concurrent_predictions_leave_the_attention_switches_as_found(data):
    X, y = data
    clf = ESPROClassifier(Slow, **{**BASE, "n_vertices": 1, "max_epochs": 1}).fit(X, y)
    before = (torch.backends.mha.get_fastpath_enabled(), torch.backends.cuda.flash_sdp_enabled(),
              torch.backends.cuda.mem_efficient_sdp_enabled(), torch.backends.cuda.math_sdp_enabled())
    threads = [threading.Thread(target=clf.predict_proba, args=(X,)) for _ in range(6)]
    for i, thread in enumerate(threads):
        thread.start()
        time.sleep(0.005 * i)
    for thread in threads:
        thread.join()
    after = (torch.backends.mha.get_fastpath_enabled(), torch.backends.cuda.flash_sdp_enabled(),
             torch.backends.cuda.mem_efficient_sdp_enabled(), torch.backends.cuda.math_sdp_enabled())
    assert after == before == (True, True, True, True)


# 7. tied parameters
def test_tied_parameters_stay_tied_in_sampled_models(data):
    X, y = data
    clf = ESPROClassifier(Tied, **BASE).fit(X, y)
    models = clf.sample_models(2)
    assert all(m.b.weight is m.a.weight for m in models)
    models = clf.members_[0].models()
    assert all(m.b.weight is m.a.weight for m in models)
    mean = np.mean([m(torch.as_tensor(X)).softmax(-1).double().detach().numpy() for m in models], axis=0)
    np.testing.assert_allclose(clf.predict_proba(X), mean, atol=1e-6)


# 8. negative strides
def test_arrays_with_negative_strides(data):
    X, y = data
    clf = ESPROClassifier(**BASE).fit(X[::-1], y[::-1])
    np.testing.assert_array_equal(clf.predict_proba(X[::-1]), clf.predict_proba(np.ascontiguousarray(X[::-1])))


# 9. SWAG without deviations
def test_swag_max_rank_zero_keeps_no_deviation(data):
    X, y = data
    modes = [nn.Linear(5, 2), nn.Linear(5, 2)]
    swag = fit_curve_swag(modes, X, y, epochs=1, swag_epochs=3, max_rank=0, random_state=0)
    assert swag.deviations.shape == (0, 12)
    assert swag.sample(4).shape == (4, 12)
    assert fit_curve_swag(modes, X, y, epochs=1, swag_epochs=4, max_rank=2, random_state=0).deviations.shape == (2, 12)


# 11. a vertex step works wherever it is called, without writing into the simplex's statistics
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))])
@pytest.mark.parametrize("faces", [None, [(0,), (1,)]])
def test_vertex_step_with_batchnorm_outside_any_context(device, faces):
    from sklearn_espro import Simplex
    from sklearn_espro._core.training import init_vertex_state, train_step

    module = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3)).to(device)
    simplex = Simplex.from_module(module)  # in training mode, tracking running statistics
    simplex = simplex.add_vertex({k: v[0] + 0.1 for k, v in simplex.vertices.items()})
    buffers = {k: v.clone() for k, v in simplex.buffers.items()}
    state = init_vertex_state(simplex, volume_reg=0.1, lr=0.01, n_train_samples=4, optimizer=torch.optim.SGD,
                              optimizer_kwargs={}, criterion=nn.CrossEntropyLoss(),
                              generator=torch.Generator(device=device).manual_seed(0), faces=faces)
    x, y = torch.randn(66, 8, device=device), torch.randint(3, (66,), device=device)
    for _ in range(2):
        loss, _ = train_step(state, x, y)
        train_step(state, x[:3], y[:3])  # a short batch: one chunk of 3, never chunks of one
    assert torch.isfinite(loss).item()
    assert module.training and module[1].track_running_stats  # the caller's module is untouched
    for name, value in simplex.buffers.items():
        assert torch.equal(value, buffers[name]), name


@pytest.mark.slow
def test_a_failing_parallel_fit_leaks_no_semaphore(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "fail.py"
    script.write_text(
        "import numpy as np\n"
        "from sklearn_espro import ESPROClassifier\n"
        "X = np.random.RandomState(0).randn(200, 5).astype(np.float32); y = (X[:, 0] > 0).astype(int)\n"
        "try:\n"
        "    ESPROClassifier(n_modes=2, n_jobs=2, max_epochs=2, vertex_epochs=2, vertex_lr=1e12, volume_reg=1.0,\n"
        "                    device='cpu').fit(X * 1e3, y)\n"
        "except FloatingPointError as exc:\n"
        "    print('raised', exc)\n"
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert "raised The training loss became nan" in run.stdout, run.stderr[-2000:]
    assert "leaked semaphore" not in run.stderr, run.stderr[-2000:]


def test_global_rng_is_restored_when_calls_overlap_in_threads():
    from sklearn_espro._core.global_state import own_global_rng

    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def first():
        with own_global_rng(seed=1):
            a_in.set()
            b_in.wait(5)
            torch.rand(2)
        a_out.set()

    def second():
        a_in.wait(5)
        with own_global_rng(seed=2):
            b_in.set()
            a_out.wait(5)  # the first leaves while this one is inside
            torch.rand(2)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert torch.equal(torch.rand(3), expected)


def test_tools_refuse_modes_whose_frozen_parameters_differ(data):
    from sklearn_espro import connect_modes

    X, y = data
    modes = [nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2)) for _ in range(2)]
    for mode in modes:
        mode[0].requires_grad_(False)
    with pytest.raises(ValueError, match=r"modes\[1\].0.weight differs from modes\[0\].0.weight, which is frozen"):
        connect_modes(modes, X, y, epochs=1)
    modes[1][0].load_state_dict(modes[0][0].state_dict())  # equal frozen layers: a complex can share them
    cx = connect_modes(modes, X, y, epochs=1, random_state=0)
    member = cx.to_module(torch.tensor([0.0, 1.0, 0.0]))
    np.testing.assert_allclose(member(torch.as_tensor(X)).detach(), modes[1](torch.as_tensor(X)).detach(), atol=1e-6)


def test_batchnorm_needs_two_samples_in_tools_and_sample_models(data):
    from sklearn_espro import connect_modes

    X, y = data
    modes = [BatchNormMLP(5, 2) for _ in range(2)]
    with pytest.raises(ValueError, match="batch_size=1, but the module has BatchNorm"):
        connect_modes(modes, X, y, batch_size=1)
    clf = ESPROClassifier(BatchNormMLP, **{**BASE, "predict_batch_size": 1}).fit(X, y)
    assert len(clf.sample_models(2, X=X)) == 2  # statistics over batches of batch_size, not predict_batch_size
    with pytest.raises(ValueError, match="X has 1 sample, but the module has BatchNorm"):
        clf.sample_models(2, X=X[:1])


# 12. layers that update buffers in training mode; zero models; pickles of version 0.3
class InstanceNormNet(nn.Module):
    def __init__(self, n_features_in, n_classes):
        super().__init__()
        self.norm = nn.InstanceNorm1d(1, track_running_stats=True)  # updates its statistics while training
        self.out = nn.Linear(n_features_in, n_classes)

    def forward(self, x):
        return self.out(self.norm(x[:, None, :]).flatten(1))


def test_vertex_training_leaves_the_modes_buffers_alone(data):
    X, y = data
    modes_only = ESPROClassifier(InstanceNormNet, **{**BASE, "n_vertices": 1}).fit(X, y)
    grown = ESPROClassifier(InstanceNormNet, **BASE).fit(X, y)  # the same modes, then vertices
    for name, value in modes_only.simplexes_[0].buffers.items():
        assert torch.equal(grown.simplexes_[0].buffers[name], value), name


def test_zero_or_fewer_models_than_simplexes_with_batchnorm(data):
    X, y = data
    clf = ESPROClassifier(BatchNormMLP, **{**BASE, "n_modes": 2, "n_vertices": 2}).fit(X, y)
    assert clf.sample_models(0, X=X) == [] and clf.sample_models(0) == []
    assert len(clf.sample_models(1, X=X)) == 1


def test_an_estimator_pickled_by_version_0_3_loads_and_predicts_the_same(data):
    X, y = data
    clf = ESPROClassifier(**{**BASE, "n_modes": 2}).fit(X, y)
    state = dict(clf.__getstate__())
    members = state.pop("members_")  # version 0.3 kept three parallel lists and the history
    state.update(simplexes_=[m.simplex for m in members], sample_coords_=[m.coords for m in members],
                 sample_buffers_=[m.buffers for m in members], history_=clf.history_)
    old = ESPROClassifier.__new__(ESPROClassifier)
    old.__setstate__(state)
    np.testing.assert_array_equal(old.predict_proba(X), clf.predict_proba(X))
    assert old.history_ == clf.history_
