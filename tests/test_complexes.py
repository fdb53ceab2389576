import numpy as np
import pytest
import torch
from torch import nn

from sklearn_espro import ESPROClassifier, Simplex, SimplexVolume, SimplicialComplex
from sklearn_espro import connect_modes


def _loss(module, X, y):
    with torch.no_grad():
        return nn.functional.cross_entropy(module.eval()(torch.as_tensor(X)), torch.as_tensor(y)).item()


@pytest.fixture(scope="module")
def three_modes(digits):
    X, y, _, _ = digits
    # version 0.2's mode rate: at the default lr=0.2 the modes reach a tenth of this training loss (0.013) and the
    # connectors, at their own default settings, end 3-6x above it, outside the bounds asserted below
    clf = ESPROClassifier(n_modes=3, n_vertices=1, max_epochs=20, lr=0.05, batch_size=50, module__hidden_sizes=(32,),
                          random_state=0).fit(X, y)
    return [s.vertex_module(0) for s in clf.simplexes_]


def test_three_modes_connected_through_two_points_keep_low_loss(three_modes, digits):
    X, y, _, _ = digits
    before = [p.detach().clone() for p in three_modes[0].parameters()]
    cx = connect_modes(three_modes, X, y, n_connectors=2, batch_size=50, random_state=0)
    assert cx.n_vertices == 5 and cx.simplexes == [(0, 3, 4), (1, 3, 4), (2, 3, 4)]
    assert all(torch.equal(p, q) for p, q in zip(before, three_modes[0].parameters()))  # modes untouched
    for i, mode in enumerate(three_modes):  # the modes are the complex's first vertices
        flat = torch.cat([p.detach().flatten() for p in mode.parameters()])
        assert torch.allclose(cx.points.flat_vertices()[i], flat)
    logs = cx.log_volumes()
    assert torch.isfinite(logs).all()
    np.testing.assert_allclose(SimplexVolume(log=True).fit_transform(cx).ravel(), logs.numpy(), rtol=1e-10)
    assert cx.total_volume() == pytest.approx(float(logs.exp().sum()))
    coords = cx.sample_coords(20, torch.Generator().manual_seed(0))
    assert torch.allclose(coords.sum(1), torch.ones(20))
    assert ((coords[:, :3] > 0).sum(1) == 1).all()  # each point lies in one simplex: one mode
    mode_loss = np.mean([_loss(m, X, y) for m in three_modes])
    sampled = [_loss(cx.to_module(t), X, y) for t in coords]
    assert np.mean(sampled) < 1.25 * mode_loss
    assert max(sampled) < 2 * mode_loss
    # without training, the connecting points (at the modes' centroid) are far worse
    untrained = connect_modes(three_modes, X, y, n_connectors=1, epochs=0, random_state=0)
    assert _loss(untrained.to_module(torch.tensor([0.0, 0.0, 0.0, 1.0])), X, y) > 2 * mode_loss


def test_connect_modes_rejects_bad_arguments(three_modes, digits):
    X, y, _, _ = digits
    with pytest.raises(ValueError, match="modes must hold at least 1 networks; got 0"):
        connect_modes([], X, y)
    with pytest.raises(ValueError, match="The 'n_connectors' parameter of connect_modes must be an int in the range"):
        connect_modes(three_modes, X, y, n_connectors=0)


def test_first_vertices_give_the_earlier_complex_and_it_ensembles(three_modes, digits):
    X, y, X_test, y_test = digits
    cx = connect_modes(three_modes, X, y, n_connectors=2, batch_size=50, random_state=0)
    one = cx.first(4)
    assert one.simplexes == [(0, 3), (1, 3), (2, 3)] and one.n_vertices == 4
    assert torch.equal(one.points.flat_vertices(), cx.points.flat_vertices()[:4])
    np.testing.assert_array_equal(cx.first(5).log_volumes().numpy(), cx.log_volumes().numpy())
    with pytest.raises(ValueError, match="n_vertices must be in"):
        cx.first(6)
    proba = cx.predict_proba(X_test, n_samples=10, random_state=0)
    assert proba.shape == (len(X_test), 10)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-6)
    np.testing.assert_array_equal(proba, cx.predict_proba(X_test, n_samples=10, random_state=0))
    labels = cx.predict(X_test, n_samples=10, random_state=0)
    np.testing.assert_array_equal(cx.classes, np.arange(10))
    assert (labels == y_test).mean() > 0.8


# The paper's Fig. 4b: 7 modes and 9 connecting points in 12 simplexes, not every mode sharing a simplex
# with every connector. The paper does not list the simplexes; this is our reading: three groups of three
# connectors, each joining four modes (Fig. 4a's shape, 4 modes and 3 connectors, three times over).
FIG_4B = [(m, "c0", "c1", "c2") for m in (0, 1, 2, 3)] + [(m, "c3", "c4", "c5") for m in (2, 3, 4, 5)] \
    + [(m, "c6", "c7", "c8") for m in (4, 5, 6, 0)]


@pytest.mark.slow
def test_fig_4b_complex_of_7_modes_and_9_connectors_keeps_low_loss_in_every_simplex(digits):
    X, y, _, _ = digits
    clf = ESPROClassifier(n_modes=7, n_vertices=1, max_epochs=20, lr=0.05, batch_size=50, module__hidden_sizes=(32,),
                          random_state=0).fit(X, y)
    modes = [s.vertex_module(0) for s in clf.simplexes_]
    cx = connect_modes(modes, X, y, simplexes=FIG_4B, batch_size=50, random_state=0)
    assert cx.n_vertices == 16 and len(cx.simplexes) == 12
    assert cx.simplexes[0] == (0, 7, 8, 9) and cx.simplexes[4] == (2, 10, 11, 12) and cx.simplexes[11] == (0, 13, 14, 15)
    assert not any(0 in s and 10 in s for s in cx.simplexes)  # mode 0 never shares a simplex with c3
    logs = cx.log_volumes()
    assert torch.isfinite(logs).all()
    assert cx.log_total_volume() == pytest.approx(float(torch.logsumexp(logs, 0)))
    mode_loss = np.mean([_loss(m, X, y) for m in modes])
    generator = torch.Generator().manual_seed(0)
    for s in cx.simplexes:  # 10 uniform points of each simplex
        t = -torch.rand(10, 4, generator=generator).log()
        t = t / t.sum(1, keepdim=True)
        coords = torch.zeros(10, cx.n_vertices)
        coords[:, list(s)] = t
        sampled = np.mean([_loss(cx.to_module(c), X, y) for c in coords])
        assert sampled < 1.5 * mode_loss, (s, sampled, mode_loss)


def test_complex_shapes_are_checked_before_training(three_modes, digits):
    X, y, _, _ = digits
    cases = [
        ([(0, "c0", "c1"), (1, "c0")], "simplexes of one length"),
        ([(0, "c0"), (1, "c2")], "c0 to c1 without gaps"),
        ([(0, "c0"), (3, "c0")], r"simplexes\[1\] holds 3: a vertex is a mode index from 0 to 2"),
        ([(0, 1), (1, "c0")], r"simplexes\[0\] = \(0, 1\) needs at least one mode and one connector"),
        ([(0, "c0"), (0, "c0")], "lists a simplex twice"),
        ([(0, "c0", "c0")], "names a vertex twice"),
        ([(0, True)], "holds True"),
        ([(0, "c0", "c1"), (1, "c1", "c2")], "when connector c1 trains, the simplexes that hold it have \\[1, 2\\]"),
    ]
    for simplexes, message in cases:
        with pytest.raises(ValueError, match=message):
            connect_modes(three_modes, X, y, simplexes=simplexes, epochs=0)
    with pytest.raises(ValueError, match="n_connectors=3, but simplexes name 1 connectors"):
        connect_modes(three_modes, X, y, simplexes=[(0, "c0"), (1, "c0")], n_connectors=3)


def test_the_volume_term_of_a_complex_is_the_log_of_its_total_volume():
    # two segments that share the connector c = (1, 1): from mode (0, 0), length sqrt(2); from (4, 0), sqrt(10)
    from sklearn_espro import Simplex, SimplicialComplex
    from sklearn_espro._core.training import get_loss, init_vertex_state

    points = Simplex(nn.Linear(2, 1, bias=False), {"weight": torch.tensor([[[0.0, 0.0]], [[4.0, 0.0]]])})
    state = init_vertex_state(points, volume_reg=0.1, lr=0.1, n_train_samples=1, optimizer=torch.optim.SGD,
                              optimizer_kwargs={}, criterion=nn.MSELoss(), generator=torch.Generator().manual_seed(0),
                              faces=[[0], [1]])
    with torch.no_grad():
        state.vertex.copy_(torch.tensor([1.0, 1.0]))
    loss, data_loss = get_loss(state, torch.zeros(1, 3, 1), torch.ones(1, 3, 1))
    expected = np.log(np.sqrt(2) + np.sqrt(10))  # log(V1 + V2), not log V1 + log V2
    assert float(data_loss - loss) == pytest.approx(0.1 * expected, rel=1e-6)
    cx = SimplicialComplex(points.add_vertex({"weight": torch.tensor([[1.0, 1.0]])}), [(0, 2), (1, 2)])
    assert cx.log_total_volume() == pytest.approx(expected, rel=1e-12)
    assert cx.total_volume() == pytest.approx(np.sqrt(2) + np.sqrt(10), rel=1e-12)


def test_a_complex_with_batchnorm_recomputes_each_drawn_models_statistics(digits):
    X, y, X_test, _ = digits
    def net():
        return nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    clf = ESPROClassifier(net(), n_modes=2, n_vertices=1, max_epochs=5, lr=0.05, random_state=0).fit(X, y)
    modes = [s.vertex_module(0) for s in clf.simplexes_]
    cx = connect_modes(modes, X, y, epochs=2, random_state=0)
    with pytest.raises(ValueError, match="BatchNorm layers: pass the training data as X_train"):
        cx.predict_proba(X_test)
    proba = cx.predict_proba(X_test, n_samples=4, random_state=0, batch_size=2000, X_train=X)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-6)
    # the same draw, each model's statistics recomputed by hand on X (one batch of all of it)
    coords = cx.sample_coords(4, torch.Generator().manual_seed(
        int(np.random.RandomState(0).randint(np.iinfo(np.int32).max))))
    by_hand = []
    for t in coords:
        model = cx.to_module(t)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.momentum = 1.0  # running statistics := those of the batch
        model.train()
        with torch.no_grad():
            model(torch.from_numpy(X))
            by_hand.append(torch.softmax(model.eval()(torch.from_numpy(X_test)), 1))
    np.testing.assert_allclose(proba, torch.stack(by_hand).mean(0).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="X_train has samples of shape"):
        cx.predict_proba(X_test, X_train=X[:, :10])


def test_a_face_that_two_simplexes_share_counts_once_in_the_volume_term():
    from sklearn_espro._complexes import complex_plan

    # while c0 trains, (0, c0, c1) and (0, c0, c2) both cut to the face (0,): one simplex, not two
    shape, faces = complex_plan(1, None, [(0, "c0", "c1"), (0, "c0", "c2")])
    assert shape == [(0, 1, 2), (0, 1, 3)]
    assert faces == [[(0,)], [(0, 1)], [(0, 1)]]


def _tiny_modes():
    torch.manual_seed(0)
    X, y = np.random.RandomState(0).randn(40, 2).astype(np.float32), np.arange(40) % 2
    return [nn.Linear(2, 2) for _ in range(2)], X, y


def test_counts_refuse_bools_with_the_argument_named():
    modes, X, y = _tiny_modes()
    cx = connect_modes(modes, X, y, epochs=1, random_state=0)
    for call, name in ((lambda: cx.predict_proba(X, n_samples=True), "'n_samples' parameter of SimplicialComplex"),
                       (lambda: cx.predict(X, n_samples=True), "'n_samples' parameter of SimplicialComplex.predict"),
                       (lambda: cx.predict_proba(X, batch_size=True), "'batch_size' parameter of SimplicialComplex"),
                       (lambda: cx.predict_proba(X, n_samples=np.True_), "'n_samples' parameter of SimplicialComplex"),
                       (lambda: cx.sample_coords(True), "'n_models' parameter of SimplicialComplex.sample_coords"),
                       (lambda: cx.sample_coords(0), "'n_models' parameter of SimplicialComplex.sample_coords"),
                       (lambda: cx.first(True), "'n_vertices' parameter of SimplicialComplex.first"),
                       (lambda: cx.first(2.0), "'n_vertices' parameter of SimplicialComplex.first")):
        with pytest.raises(ValueError, match=name):
            call()
    for name in ("n_connectors", "epochs", "batch_size", "n_train_samples", "volume_reg", "lr"):
        with pytest.raises(ValueError, match=f"The '{name}' parameter of connect_modes must be .*not a bool; got True"):
            connect_modes(modes, X, y, **{name: True})
    for bad in ((0, True), (0, 1.5), (0, 0)):
        with pytest.raises(ValueError, match=r"simplexes\[0\]"):
            SimplicialComplex(cx.points, [bad])


def test_more_connectors_than_the_weight_space_holds_are_refused_before_training(monkeypatch):
    import sklearn_espro._complexes as complexes

    def no_training(*args, **kwargs):
        raise AssertionError("trained")

    modes, X, y = _tiny_modes()  # 6 weights: a simplex has at most 7 affinely independent vertices
    monkeypatch.setattr(complexes, "grow_vertex", no_training)
    with pytest.raises(ValueError, match=r"n_connectors=8 gives simplexes of 9 vertices.*6 trainable parameters"
                                         r".*at most n_params \+ 1 = 7 vertices"):
        connect_modes(modes, X, y, n_connectors=8)
    with pytest.raises(ValueError, match=r"simplexes have 8 vertices.*at most n_params \+ 1 = 7"):
        connect_modes(modes, X, y, simplexes=[(0, 1, *[f"c{j}" for j in range(6)])])
    with pytest.raises(AssertionError, match="trained"):  # 6 connectors: 7 vertices, the limit, trains
        connect_modes(modes, X, y, n_connectors=6)
    # a complex built by hand: its simplexes hold at most n_params + 1 vertices too
    points = Simplex(nn.Linear(1, 1, bias=False), {"weight": torch.arange(3.0).view(3, 1, 1)})
    with pytest.raises(ValueError, match=r"simplexes have 3 vertices.*1 trainable parameter"):
        SimplicialComplex(points, [(0, 1, 2)])
