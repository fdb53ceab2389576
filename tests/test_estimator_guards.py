"""The estimators under hostile use (issue 20): each case a clear error before training, or a right answer."""

import copy

import numpy as np
import pytest
import torch
from skorch.callbacks import EarlyStopping, LRScheduler
from torch import nn

from sklearn_espro import ESPROClassifier, ESPRORegressor

TINY = dict(n_modes=1, n_vertices=2, max_epochs=2, vertex_epochs=1, n_samples=2, batch_size=16,
            module__hidden_sizes=(4,), random_state=0, device="cpu")


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(40, 5).astype(np.float32)
    return X, (X[:, 0] > 0).astype(int)


def _fails_before_training(monkeypatch):
    """Make any training step an error, so that a test shows its error comes before training."""
    from sklearn_espro._core import members

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(members, "train_mode", no_training)


def test_shallow_copy_set_params_leaves_the_original(data):
    clf = ESPROClassifier(module__hidden_sizes=(8,))
    other = copy.copy(clf).set_params(module__hidden_sizes=(3,), optimizer__momentum=0.5)
    assert clf.get_params()["module__hidden_sizes"] == (8,) and "optimizer__momentum" not in clf.get_params()
    assert other.get_params()["module__hidden_sizes"] == (3,)


@pytest.mark.parametrize("weight", [-1.0, 0.0, np.nan, np.inf, "2", True])
def test_bad_class_weight_is_named_before_training(data, weight, monkeypatch):
    X, y = data
    _fails_before_training(monkeypatch)
    with pytest.raises(ValueError, match=r"class_weight\[1\]"):
        ESPROClassifier(class_weight={0: 1.0, 1: weight}, **TINY).fit(X, y)


def test_n_jobs_zero_is_refused(data, monkeypatch):
    X, y = data
    _fails_before_training(monkeypatch)
    for est in (ESPROClassifier(n_jobs=0, **TINY), ESPRORegressor(n_jobs=0, **TINY)):
        with pytest.raises(ValueError, match="n_jobs"):
            est.fit(X, X[:, 0])


def test_early_stopping_on_an_unrecorded_monitor_is_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="'train_acc'.*records only 'train_loss'"):
        ESPROClassifier(callbacks=[EarlyStopping(monitor="train_acc")], **TINY).fit(X, y)
    clf = ESPROClassifier(callbacks=[EarlyStopping(monitor="train_loss", patience=1, threshold=10.0)],
                          **{**TINY, "max_epochs": 10}).fit(X, y)
    assert len([r for r in clf.history_ if r["phase"] == "mode"]) < 10  # it stopped the mode


def test_a_user_callback_named_like_an_internal_one(data):
    """A user's callback may be called "cosine"; the internal names are refused with a clear error."""
    X, y = data
    seen = []

    class Spy(LRScheduler):
        def on_epoch_end(self, net, **kwargs):
            seen.append(net.optimizer_.param_groups[0]["lr"])

    ESPROClassifier(callbacks=[("cosine", Spy())], **TINY).fit(X, y)
    assert seen  # it ran, under the user's name
    with pytest.raises(ValueError, match="espro_cosine"):
        ESPROClassifier(callbacks=[("espro_cosine", Spy())], **TINY).fit(X, y)


def test_a_user_lr_scheduler_replaces_the_cosine_schedule(data):
    X, y = data
    rates = []

    class Rates(LRScheduler):
        def on_epoch_begin(self, net, **kwargs):
            super().on_epoch_begin(net, **kwargs)
            rates.append(net.optimizer_.param_groups[0]["lr"])

    ESPROClassifier(callbacks=[Rates("StepLR", step_size=1, gamma=0.5)], lr=0.1,
                    **{**TINY, "max_epochs": 4}).fit(X, y)
    # skorch's StepLR alone halves the rate each epoch; with the cosine schedule beside it, it would not
    assert rates == pytest.approx([0.1, 0.05, 0.025, 0.0125])


def test_batchnorm_without_running_statistics_is_refused(data, monkeypatch):
    X, y = data

    class NoRunningStats(nn.Module):
        def __init__(self, n_features_in, n_classes):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(n_features_in, 8), nn.BatchNorm1d(8, track_running_stats=False),
                                     nn.ReLU(), nn.Linear(8, n_classes))

        def forward(self, x):
            return self.net(x)

    _fails_before_training(monkeypatch)
    with pytest.raises(ValueError, match="track_running_stats=False"):
        ESPROClassifier(NoRunningStats, **{k: v for k, v in TINY.items() if not k.startswith("module__")}).fit(X, y)
