"""validation_fraction (issue 21): held-out rows that no network trains on, scored in history_, for EarlyStopping."""

import math

import numpy as np
import pytest
import torch
from skorch.callbacks import Checkpoint, EarlyStopping
from torch import nn

from sklearn_espro import ESPROClassifier, ESPRORegressor

TINY = dict(n_modes=1, n_vertices=2, max_epochs=3, vertex_epochs=1, n_samples=2, batch_size=16,
            module__hidden_sizes=(8,), random_state=0, device="cpu")
LINEAR = {**{k: v for k, v in TINY.items() if k != "module__hidden_sizes"}, "lr": 0.05}  # for Recording


class Recording(nn.Module):
    """A linear model of features 1, 2, ... noting feature 0, a row id, of every row it trains on
    (in training mode, with gradients)."""

    seen: set = set()

    def __init__(self, n_features_in, n_classes):
        super().__init__()
        self.linear = nn.Linear(n_features_in - 1, n_classes)

    def forward(self, x):
        if self.training and torch.is_grad_enabled():
            Recording.seen.update(x[:, 0].tolist())
        return self.linear(x[:, 1:])


@pytest.fixture
def data():
    """90 rows of 3 classes (30, 30, 30), feature 0 a row id."""
    rng = np.random.RandomState(0)
    y = np.repeat([0, 1, 2], 30)
    X = rng.randn(90, 5).astype(np.float32)
    X[np.arange(90), 1 + y] += 2.0
    X[:, 0] = np.arange(90)
    return X, y


def _scaled(X):
    """``X`` with its row ids scaled, for networks that read them."""
    X = X.copy()
    X[:, 0] /= len(X)
    return X


def _held_out(estimator, X, y, **params):
    """Fit ``estimator`` with the Recording module; the ids of the rows it never trained on."""
    Recording.seen = set()
    estimator(module=Recording, **{**LINEAR, **params}).fit(X, y)
    return np.setdiff1d(np.arange(len(X)), sorted(Recording.seen)).astype(int)


def _fails_before_training(monkeypatch):
    from sklearn_espro._core import members

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(members, "train_mode", no_training)


def test_held_out_rows_are_never_trained_on_and_stratified(data):
    X, y = data
    X_before, y_before = X.copy(), y.copy()
    held = _held_out(ESPROClassifier, X, y, validation_fraction=0.2)
    assert len(held) == math.ceil(0.2 * len(X))  # 18 rows, as train_test_split holds out
    assert np.bincount(y[held]).tolist() == [6, 6, 6]  # stratified
    np.testing.assert_array_equal(X, X_before)  # the caller's arrays are untouched
    np.testing.assert_array_equal(y, y_before)
    assert len(_held_out(ESPROClassifier, X, y)) == 0  # None: every row


def test_the_split_changes_nothing_but_the_rows(data):
    """With a split, the fit is exactly the fit (validation_fraction=None) on the rows kept: the same
    seeds, and scoring the held-out rows draws no randomness."""
    X, y = data
    held = _held_out(ESPROClassifier, X, y, validation_fraction=0.2, n_modes=2)  # the seeds of the split below
    kept = np.setdiff1d(np.arange(len(X)), held)
    X = _scaled(X)
    params = {**TINY, "n_modes": 2, "module__dropout": 0.2}
    split = ESPROClassifier(validation_fraction=0.2, **params).fit(X, y)
    alone = ESPROClassifier(**params).fit(X[kept], y[kept])
    np.testing.assert_array_equal(split.predict_proba(X), alone.predict_proba(X))
    assert [r["loss"] for r in split.history_] == [r["loss"] for r in alone.history_]


def test_history_records_the_held_out_scores_of_each_mode_epoch(data):
    X, y = data
    clf = ESPROClassifier(validation_fraction=0.2, module=Recording, **LINEAR).fit(X, y)
    modes = [r for r in clf.history_ if r["phase"] == "mode"]
    assert len(modes) == 3 and all({"valid_loss", "valid_acc"} <= set(r) for r in modes)
    assert not any("valid_loss" in r for r in clf.history_ if r["phase"] == "vertex")
    held = _held_out(ESPROClassifier, X, y, validation_fraction=0.2)
    with torch.no_grad():  # the last epoch's scores are those of the mode on the held-out rows
        logits = clf.simplexes_[0].vertex_module(0).eval()(torch.from_numpy(X[held]))
    assert modes[-1]["valid_loss"] == pytest.approx(float(nn.functional.cross_entropy(logits, torch.from_numpy(y[held]))), rel=1e-5)
    assert modes[-1]["valid_acc"] == pytest.approx(float((logits.argmax(1).numpy() == y[held]).mean()))
    assert not any("valid_loss" in r for r in ESPROClassifier(**TINY).fit(_scaled(X), y).history_)


def test_early_stopping_with_its_default_monitor_stops_a_mode_early():
    """The acceptance test: validation_fraction and EarlyStopping() stop a mode early."""
    rng = np.random.RandomState(0)
    X, y = rng.randn(200, 10).astype(np.float32), rng.randint(2, size=200)  # noise: valid_loss soon rises
    clf = ESPROClassifier(validation_fraction=0.25, callbacks=[EarlyStopping()],
                          **{**TINY, "n_modes": 2, "max_epochs": 60, "module__hidden_sizes": (64,)}).fit(X, y)
    for j in range(2):
        modes = [r for r in clf.history_ if r["phase"] == "mode" and r["simplex"] == j]
        assert len(modes) < 60  # it stopped this mode
        losses = [r["valid_loss"] for r in modes]
        assert int(np.argmin(losses)) == len(losses) - 1 - EarlyStopping().patience  # no better in its patience
    assert [r["vertex"] for r in clf.history_ if r["phase"] == "vertex"] == [1, 1]  # the vertices still grew
    assert np.isfinite(clf.predict_proba(X)).all()


@pytest.mark.parametrize("load_best", [False, True])
def test_early_stopping_load_best_keeps_the_mode_of_the_best_epoch(load_best):
    rng = np.random.RandomState(0)
    X, y = rng.randn(120, 21).astype(np.float32), rng.randint(2, size=120)
    X[:, 0] = np.arange(120)
    params = dict(validation_fraction=0.25, n_vertices=1, max_epochs=60)
    held = _held_out(ESPROClassifier, X, y, **{**params, "max_epochs": 1})  # the split does not depend on epochs
    clf = ESPROClassifier(module=Recording, callbacks=[EarlyStopping(load_best=load_best)],
                          **{**LINEAR, **params}).fit(X, y)
    losses = [r["valid_loss"] for r in clf.history_]
    assert len(losses) < 60 and min(losses) < losses[-1]
    with torch.no_grad():
        logits = clf.simplexes_[0].vertex_module(0).eval()(torch.from_numpy(X[held]))
    loss = float(nn.functional.cross_entropy(logits, torch.from_numpy(y[held])))
    assert loss == pytest.approx(min(losses) if load_best else losses[-1], rel=1e-5)


def test_callbacks_may_monitor_what_the_split_records(data, monkeypatch):
    X, y = data
    _fails_before_training(monkeypatch)
    with pytest.raises(ValueError, match=r"monitors 'valid_loss'.*or set validation_fraction"):
        ESPROClassifier(callbacks=[EarlyStopping()], **TINY).fit(X, y)
    with pytest.raises(ValueError, match=r"'valid_f1'.*records only 'train_loss', 'valid_loss', 'valid_acc'"):
        ESPROClassifier(validation_fraction=0.2, callbacks=[EarlyStopping(monitor="valid_f1")], **TINY).fit(X, y)
    with pytest.raises(ValueError, match=r"'valid_acc'.*records only 'train_loss', 'valid_loss' "):
        ESPRORegressor(validation_fraction=0.2, callbacks=[EarlyStopping(monitor="valid_acc")], **TINY).fit(X, y)
    with pytest.raises(AssertionError, match="training started"):  # accepted: training starts
        ESPROClassifier(validation_fraction=0.2, callbacks=[EarlyStopping(monitor="valid_acc", lower_is_better=False),
                                                            Checkpoint(dirname="unused")], **TINY).fit(X, y)


@pytest.mark.parametrize("fraction, message", [
    (0, r"validation_fraction' parameter of ESPROClassifier must be a float in the range \(0.0, 1.0\) or None"),
    (1, r"validation_fraction' parameter .* must be a float in the range \(0.0, 1.0\)"),
    (1.5, r"validation_fraction' parameter .* must be a float in the range \(0.0, 1.0\)"),
    (-0.1, r"validation_fraction' parameter .* must be a float in the range \(0.0, 1.0\)"),
    (True, r"validation_fraction' parameter .* must be a float in the range \(0.0, 1.0\)"),
    ("0.1", r"validation_fraction' parameter .* must be a float in the range \(0.0, 1.0\)"),
    (0.01, r"validation_fraction=0.01 holds out 1 of the 90 rows and leaves 89 to train on; each part needs at least 2"),
    (0.99, r"validation_fraction=0.99 holds out 90 of the 90 rows and leaves 0 to train on"),
    (0.97, r"validation_fraction=0.97 holds out 88 of the 90 rows and leaves 2 .* each part needs a row of each class"),
])
def test_bad_fractions_are_named_before_training(data, fraction, message, monkeypatch):
    X, y = data
    _fails_before_training(monkeypatch)
    with pytest.raises(ValueError, match=message):
        ESPROClassifier(validation_fraction=fraction, **TINY).fit(X, y)


def test_classes_too_small_to_stratify_are_named(data, monkeypatch):
    X, y = data
    _fails_before_training(monkeypatch)
    y = y.copy()
    y[0] = 7  # a class of one row
    with pytest.raises(ValueError, match=r"validation_fraction=0.2 splits .* class 7 has 1"):
        ESPROClassifier(validation_fraction=0.2, **TINY).fit(X, y)
    y = np.r_[np.zeros(88, int), 1, 1]  # two rows of class 1: a large fraction leaves none to train on
    with pytest.raises(ValueError, match="validation_fraction=0.8 leaves no row of class 1 to train on"):
        ESPROClassifier(validation_fraction=0.8, **TINY).fit(X, y)


def test_the_regressor_holds_rows_out_at_random(data):
    X, _ = data
    y = X[:, 1] - X[:, 2] + 100.0
    reg = ESPRORegressor(validation_fraction=0.3, callbacks=[EarlyStopping(patience=1)],
                         **{**TINY, "max_epochs": 20}).fit(_scaled(X), y)
    modes = [r for r in reg.history_ if r["phase"] == "mode"]
    assert all(np.isfinite(r["valid_loss"]) and "valid_acc" not in r for r in modes)
    mean, std = reg.predict(_scaled(X), return_std=True)
    assert np.isfinite(mean).all() and (std > 0).all()
    held = _held_out(ESPRORegressor, X, y, validation_fraction=0.3)
    assert len(held) == 27


def test_warm_start_draws_the_split_per_call(data):
    X, y = data
    X = _scaled(X)
    clf = ESPROClassifier(validation_fraction=0.2, warm_start=True, **TINY).fit(X, y)
    clf.set_params(n_modes=2, n_vertices=3).fit(X, y)
    history = clf.history_
    assert [(r["simplex"], r["fit"]) for r in history if r["phase"] == "mode"] == [(0, 0)] * 3 + [(1, 1)] * 3
    assert all("valid_loss" in r for r in history if r["phase"] == "mode")
    assert sorted((r["simplex"], r["vertex"], r["fit"]) for r in history if r["phase"] == "vertex") == [
        (0, 1, 0), (0, 2, 1), (1, 1, 1), (1, 2, 1)]
    # a later fit without a split keeps the scores recorded before
    clf.set_params(validation_fraction=None, n_vertices=4).fit(X, y)
    assert len([r for r in clf.history_ if "valid_loss" in r]) == 6
