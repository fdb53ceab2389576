import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import accuracy_score
from torch import nn

from sklearn_espro import MLP, ConvNet1d, ESPROClassifier, ResNet1d

FAST = dict(n_modes=2, max_epochs=4, vertex_epochs=2, batch_size=50, random_state=0)


class TinyTransformer(nn.Module):
    """Tokens (n, seq, d_input) -> logits, through one nn.TransformerEncoder layer."""

    def __init__(self, n_classes, d_input=4, d_model=16):
        super().__init__()
        self.embed = nn.Linear(d_input, d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead=2, dim_feedforward=32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(1))


def _softmax_mean(models, X):
    with torch.no_grad():
        return np.mean([m(torch.as_tensor(X)).softmax(-1).double().numpy() for m in models], axis=0)


def test_fit_predict_mlp(digits):
    X, y, X_test, y_test = digits
    clf = ESPROClassifier(n_vertices=3, **{**FAST, "max_epochs": 15}).fit(X, y)
    proba = clf.predict_proba(X_test)
    assert proba.shape == (len(X_test), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-10)
    np.testing.assert_array_equal(clf.predict(X_test), clf.classes_[proba.argmax(1)])
    assert accuracy_score(y_test, clf.predict(X_test)) > 0.7  # a plain MLP scores about 0.8 on this split
    assert clf.n_features_in_ == 64
    assert len(clf.simplexes_) == 2 and all(s.n_vertices == 3 for s in clf.simplexes_)
    assert clf.log_volumes_.shape == (2,) and np.isfinite(clf.log_volumes_).all()
    phases = {(r["simplex"], r["phase"], r["vertex"]) for r in clf.history_}
    assert phases == {(j, p, v) for j in range(2) for p, v in [("mode", 0), ("vertex", 1), ("vertex", 2)]}


def test_fit_predict_cnn_with_batchnorm(digits):
    X, y, X_test, _ = digits
    X3 = X.reshape(-1, 1, 64)
    clf = ESPROClassifier(ConvNet1d, n_vertices=2, module__channels=(4, 8), module__length=64, **FAST).fit(X3, y)
    proba = clf.predict_proba(X_test.reshape(-1, 1, 64))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-10)
    # predict_proba is the mean of the sampled models, each with its own BatchNorm statistics
    models = clf.sample_models(3, X=X3, random_state=0)
    assert all(isinstance(m, ConvNet1d) and not m.training for m in models)
    with pytest.raises(ValueError, match="BatchNorm.*pass X"):
        clf.sample_models(1)


def test_resnet1d_learns_digits_as_sequences(digits):
    X, y, X_test, y_test = digits
    clf = ESPROClassifier(ResNet1d, n_vertices=2, module__channels=(8, 16), module__blocks_per_stage=1,
                          **FAST).fit(X, y)  # 2-D X: one channel of length 64
    proba = clf.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-10)
    assert accuracy_score(y_test, clf.classes_[proba.argmax(1)]) > 0.3  # 4 epochs; chance is 0.1
    with pytest.raises(ValueError, match="expecting 64 features"):  # fitted on 2-D X: (n, 1, length) is refused
        clf.predict_proba(X_test.reshape(-1, 1, 64))


def test_fit_predict_transformer_encoder():
    rng = np.random.RandomState(0)
    X = rng.randn(120, 6, 4).astype(np.float32)
    y = np.where(X[:, :, 0].mean(1) > 0, "pos", "neg")
    clf = ESPROClassifier(TinyTransformer, n_vertices=2, module__d_model=8, **FAST).fit(X, y)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-10)
    assert list(clf.classes_) == ["neg", "pos"]
    assert np.mean(clf.predict(X) == y) > 0.7  # the sign of a mean of one feature


def test_one_vertex_is_a_deep_ensemble(digits):
    X, y, X_test, _ = digits
    clf = ESPROClassifier(n_vertices=1, n_samples=7, **FAST).fit(X, y)
    assert all(m.coords.shape == (1, 1) for m in clf.members_)  # one model per simplex: the mode
    with pytest.warns(FutureWarning, match=r"sample_coords_ is deprecated.*members_"):
        assert [c.shape for c in clf.sample_coords_] == [(1, 1), (1, 1)]
    modes = [s.vertex_module(0) for s in clf.simplexes_]
    np.testing.assert_allclose(clf.predict_proba(X_test), _softmax_mean(modes, X_test), atol=1e-6)
    assert not any(r["phase"] == "vertex" for r in clf.history_)


def test_start_from_pretrained_modes(digits):
    X, y, X_test, _ = digits
    ensemble = ESPROClassifier(n_vertices=1, **FAST).fit(X, y)
    modes = [s.vertex_module(0) for s in ensemble.simplexes_]
    clf = ESPROClassifier(n_vertices=2, modes=modes, max_epochs=0, vertex_epochs=2, random_state=1).fit(X, y)
    assert len(clf.simplexes_) == 2
    for simplex, mode in zip(clf.simplexes_, modes):
        for name, value in mode.named_parameters():
            assert torch.equal(simplex.vertices[name][0], value.detach())
    assert {r["phase"] for r in clf.history_} == {"vertex"}
    # the mode's state dict and a plain state dict give the same start
    again = ESPROClassifier(n_vertices=2, modes=[m.state_dict() for m in modes], vertex_epochs=2, random_state=1)
    np.testing.assert_array_equal(again.fit(X, y).predict_proba(X_test), clf.predict_proba(X_test))


def test_string_labels(digits):
    X, y, X_test, _ = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    clf = ESPROClassifier(n_vertices=2, **FAST).fit(X, names[y])
    assert list(clf.classes_) == sorted(names)
    np.testing.assert_array_equal(clf.predict(X_test), np.array(sorted(names))[clf.predict_proba(X_test).argmax(1)])


def test_same_seed_same_result(digits):
    X, y, X_test, _ = digits
    a = ESPROClassifier(n_vertices=2, **FAST).fit(X, y).predict_proba(X_test)
    b = ESPROClassifier(n_vertices=2, **FAST).fit(X, y).predict_proba(X_test)
    c = ESPROClassifier(n_vertices=2, **{**FAST, "random_state": 1}).fit(X, y).predict_proba(X_test)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_predict_is_deterministic_for_a_fitted_estimator(digits):
    X, y, X_test, _ = digits
    clf = ESPROClassifier(n_vertices=3, **FAST).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X_test), clf.predict_proba(X_test))


def test_module_instance_is_copied_and_reinitialised(digits):
    X, y, _, _ = digits
    template = MLP(64, 10, hidden_sizes=(16,))
    before = [p.detach().clone() for p in template.parameters()]
    clf = ESPROClassifier(template, n_vertices=1, **FAST).fit(X, y)
    assert all(torch.equal(p, q) for p, q in zip(before, template.parameters()))
    v0, v1 = (s.flat_vertices()[0] for s in clf.simplexes_)
    assert not torch.allclose(v0, v1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fit_returns_cpu_results(digits):
    X, y, X_test, _ = digits
    clf = ESPROClassifier(n_vertices=2, device="cuda", **FAST).fit(X, y)
    assert clf.simplexes_[0].flat_vertices().device.type == "cpu"
    np.testing.assert_allclose(clf.predict_proba(X_test).sum(1), 1.0, atol=1e-10)


def test_parallel_jobs_give_the_same_fit(digits):
    X, y, X_test, _ = digits
    one = ESPROClassifier(n_vertices=2, n_jobs=1, **FAST).fit(X, y)
    two = ESPROClassifier(n_vertices=2, n_jobs=2, **FAST).fit(X, y)
    # worker processes run torch with fewer threads, so sums may round differently
    np.testing.assert_allclose(one.predict_proba(X_test), two.predict_proba(X_test), atol=1e-6)


def test_verbose_shows_progress_per_simplex(digits, capsys):
    X, y, _, _ = digits
    ESPROClassifier(n_vertices=2, verbose=1, **FAST).fit(X, y)
    err = capsys.readouterr().err
    assert "simplex 0" in err and "simplex 1" in err and "log_volume" in err


def test_one_vertex_from_skorch_nets_equals_their_deep_ensemble(digits):
    from skorch import NeuralNetClassifier

    X, y, X_test, _ = digits
    nets = []
    for seed in range(3):
        torch.manual_seed(seed)
        net = NeuralNetClassifier(MLP, module__n_features_in=64, module__n_classes=10, module__hidden_sizes=(16,),
                                  criterion=nn.CrossEntropyLoss, max_epochs=3, lr=0.1, train_split=None, verbose=0)
        nets.append(net.fit(X, y))
    deep_ensemble = np.mean([net.predict_proba(X_test) for net in nets], axis=0)
    clf = ESPROClassifier(n_vertices=1, modes=nets, module__hidden_sizes=(16,), random_state=0).fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X_test), deep_ensemble, atol=1e-6)
    assert clf.history_ == []  # nothing was trained


def test_skorch_callbacks_run_during_mode_training(digits):
    from skorch.callbacks import EarlyStopping

    X, y, _, _ = digits
    stop = EarlyStopping(monitor="train_loss", patience=1, threshold=10.0)  # stops after 2 epochs
    clf = ESPROClassifier(n_vertices=1, callbacks=[stop], **{**FAST, "max_epochs": 10}).fit(X, y)
    assert {r["epoch"] for r in clf.history_ if r["phase"] == "mode"} == {0, 1}


def test_fit_works_inside_torch_no_grad(digits):
    X, y, _, _ = digits
    with torch.no_grad():
        clf = ESPROClassifier(n_vertices=2, **FAST).fit(X, y)
    assert clf.history_[-1]["phase"] == "vertex" and np.isfinite(clf.log_volumes_).all()


def test_predict_log_proba_and_a_batch_size_of_its_own(digits):
    X, y, X_test, _ = digits
    clf = ESPROClassifier(n_vertices=2, **FAST).fit(X, y)
    proba = clf.predict_proba(X_test)
    np.testing.assert_array_equal(clf.predict_log_proba(X_test), np.log(proba))
    small = clone(clf).set_params(predict_batch_size=7).fit(X, y)
    np.testing.assert_allclose(small.predict_proba(X_test), proba, rtol=1e-6, atol=1e-9)


def test_class_weight_balanced_or_dict_weights_the_loss(digits):
    X, y, _, _ = digits
    y2 = (y == 0).astype(int)  # 10% positives
    kw = dict(n_modes=1, n_vertices=2, max_epochs=3, vertex_epochs=1, lr=0.05, batch_size=50, random_state=0,
              device="cpu")  # short of a perfect fit, where the weights would not show
    plain = ESPROClassifier(**kw).fit(X, y2)
    balanced = ESPROClassifier(class_weight="balanced", **kw).fit(X, y2)
    by_dict = ESPROClassifier(class_weight={0: 1.0, 1: 9.0}, **kw).fit(X, y2)
    # weighting the rare class raises its predicted probability
    assert balanced.predict_proba(X)[:, 1].mean() > plain.predict_proba(X)[:, 1].mean() + 0.02
    assert by_dict.predict_proba(X)[:, 1].mean() > plain.predict_proba(X)[:, 1].mean() + 0.02
    same = ESPROClassifier(criterion__weight=torch.tensor([1.0, 9.0]), **kw).fit(X, y2)
    np.testing.assert_allclose(same.predict_proba(X), by_dict.predict_proba(X), atol=1e-6)


def _records(clf, **match):
    return [r for r in clf.history_ if all(r.get(k) == v for k, v in match.items())]


def test_warm_start_with_more_vertices_trains_only_the_missing_ones(digits):
    X, y, X_test, _ = digits
    clf = ESPROClassifier(n_vertices=2, warm_start=True, **FAST).fit(X, y)
    first = [{k: v.clone() for k, v in s.vertices.items()} for s in clf.simplexes_]
    assert {r["fit"] for r in clf.history_} == {0}
    assert clf.set_params(n_vertices=4).fit(X, y) is clf
    for before, simplex in zip(first, clf.simplexes_):
        assert simplex.n_vertices == 4
        assert all(torch.equal(simplex.vertices[k][:2], before[k]) for k in before)  # the fitted vertices, kept
    added = _records(clf, fit=1)
    assert all(r["phase"] == "vertex" for r in added)  # no mode trained again
    assert len(added) == 2 * 2 * FAST["vertex_epochs"]  # 2 simplexes x 2 new vertices x their epochs
    assert sorted({(r["simplex"], r["vertex"]) for r in added}) == [(0, 2), (0, 3), (1, 2), (1, 3)]
    assert len(_records(clf, fit=0)) == 2 * (FAST["max_epochs"] + FAST["vertex_epochs"])
    assert all(m.coords.shape == (5, 4) for m in clf.members_)  # prediction models drawn from the grown simplexes
    np.testing.assert_allclose(clf.predict_proba(X_test).sum(1), 1, rtol=1e-6)


def test_warm_start_with_more_modes_trains_only_the_new_members(digits):
    X, y, _, _ = digits
    clf = ESPROClassifier(n_vertices=2, warm_start=True, **FAST).fit(X, y)
    members = list(clf.members_)
    clf.set_params(n_modes=3).fit(X, y)
    assert clf.members_[:2] == members  # the very same fitted members
    added = _records(clf, fit=1)
    assert {r["simplex"] for r in added} == {2}
    assert len(added) == FAST["max_epochs"] + FAST["vertex_epochs"]
    # the new member is the one a cold fit with three modes trains third
    cold = ESPROClassifier(n_vertices=2, **{**FAST, "n_modes": 3}).fit(X, y)
    for k, v in cold.simplexes_[2].vertices.items():
        torch.testing.assert_close(clf.simplexes_[2].vertices[k], v)
    before = list(clf.members_)
    clf.fit(X, y)  # the same parameters: nothing new
    assert clf.members_ == before and not _records(clf, fit=2)


def test_warm_start_refuses_fewer_members_vertices_or_other_data(digits):
    X, y, _, _ = digits
    clf = ESPROClassifier(n_vertices=2, warm_start=True, **FAST).fit(X, y)
    with pytest.raises(ValueError, match="n_modes is 1, but 2 members are fitted"):
        clf.set_params(n_modes=1).fit(X, y)
    with pytest.raises(ValueError, match="n_vertices=1, but the fitted simplexes have 2 vertices"):
        clf.set_params(n_modes=2, n_vertices=1).fit(X, y)
    clf.set_params(n_vertices=2)
    with pytest.raises(ValueError, match=r"X has samples of shape \(32,\), but the fitted members were trained"):
        clf.fit(X[:, :32], y)
    with pytest.raises(ValueError, match=r"y has the classes \[0, 1, 2, 3, 4, 5, 6, 7, 8\]"):
        clf.fit(X[y < 9], y[y < 9])
    assert len(clf.members_) == 2 and not _records(clf, fit=1)  # a refused fit changes nothing
    cold = clone(clf).set_params(warm_start=False, n_modes=1).fit(X, y)  # without warm_start: a new fit
    assert len(cold.members_) == 1


def test_warm_start_refuses_a_modes_list_that_does_not_extend_the_fitted_one(digits):
    X, y, _, _ = digits
    nets = [MLP(64, 10, hidden_sizes=(8,)) for _ in range(2)]
    clf = ESPROClassifier(modes=nets[:1], n_vertices=2, warm_start=True, module__hidden_sizes=(8,), **FAST).fit(X, y)
    with pytest.raises(ValueError, match=r"modes\[0\] is not the mode member 0 was fitted from"):
        clf.set_params(modes=nets[::-1]).fit(X, y)
    clf.set_params(modes=nets).fit(X, y)  # extended at its end: one new member
    assert len(clf.members_) == 2 and {r["simplex"] for r in clf.history_ if r["fit"] == 1} == {1}


def test_an_estimator_pickled_before_warm_start_refits_and_clones(digits):
    X, y, _, _ = digits
    clf = ESPROClassifier(n_vertices=1, **FAST).fit(X, y)
    state = clf.__getstate__()
    del state["warm_start"]  # as version 0.4.0 pickled it
    for member in state["members_"]:
        for record in member.history:
            record.pop("fit", None)
    old = ESPROClassifier.__new__(ESPROClassifier)
    old.__setstate__(state)
    assert clone(old).get_params()["warm_start"] is False
    assert {r["fit"] for r in old.history_} == {0}
    old.fit(X, y)
