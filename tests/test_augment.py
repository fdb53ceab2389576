"""Augmentation: applied to every training minibatch of modes and vertices, never at prediction; reproducible."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sklearn_espro import ConvNet1d, ConvNet2d, ESPROClassifier, ESPRORegressor
from sklearn_espro.augment import ImageAugmentation, SeriesAugmentation

TINY = dict(n_modes=1, n_vertices=2, max_epochs=2, vertex_epochs=1, n_samples=2, batch_size=20, random_state=0,
            device="cpu")


@pytest.fixture
def series():
    rng = np.random.RandomState(0)
    X = rng.randn(100, 16).astype(np.float32)
    return X, (X[:, :8].sum(1) > 0).astype(int)


class Counting:
    """An augmentation that counts the rows it sees (and adds nothing)."""

    def __init__(self):
        self.rows = 0

    def __call__(self, x):
        self.rows += len(x)
        return x.clone()


def test_every_training_batch_of_modes_and_vertices_is_augmented_and_prediction_never(series):
    X, y = series
    counts = {}
    for vertex_epochs in (0, 1, 2):
        augment = Counting()
        clf = ESPROClassifier(augment=augment, **{**TINY, "vertex_epochs": vertex_epochs}).fit(X, y)
        counts[vertex_epochs] = augment.rows - 2  # less the probe of two rows that fit checks it with
        augment.rows = 0
        clf.predict_proba(X)
        clf.sample_models(2, X=X)
        assert augment.rows == 0
    assert counts[0] == 2 * len(X)  # two mode epochs, every row once each
    assert counts[1] == 3 * len(X) and counts[2] == 4 * len(X)  # and each vertex epoch
    assert clf.augment.rows == 0  # the estimator holds the caller's object; a clone would not


def test_augmentation_reaches_modes_and_vertices(series):
    """Inputs replaced by zeros: neither the mode nor the vertices can beat the class frequencies."""
    X, y = series
    freq = np.bincount(y) / len(y)
    prior = float(-(freq * np.log(freq)).sum())
    with pytest.warns(RuntimeWarning, match="did not learn"):
        clf = ESPROClassifier(augment=torch.zeros_like, **{**TINY, "max_epochs": 5, "vertex_epochs": 3}).fit(X, y)
    assert all(r["loss"] > 0.95 * prior for r in clf.history_ if r["phase"] == "mode")
    assert all(r["data_loss"] > 0.95 * prior for r in clf.history_ if r["phase"] == "vertex")
    plain = ESPROClassifier(**{**TINY, "max_epochs": 5, "vertex_epochs": 3}).fit(X, y)
    assert plain.history_[-1]["data_loss"] < 0.8 * prior  # without it, they learn


def test_two_fits_with_augmentation_are_identical_and_leave_the_global_rng(series):
    X, y = series
    state = torch.get_rng_state()
    kw = dict(TINY, augment=SeriesAugmentation(max_shift=3, noise=0.1))
    a = ESPROClassifier(ConvNet1d, module__channels=(4,), **kw).fit(X, y).predict_proba(X)
    b = ESPROClassifier(ConvNet1d, module__channels=(4,), **kw).fit(X, y).predict_proba(X)
    c = ESPROClassifier(ConvNet1d, module__channels=(4,), **{**kw, "augment": None}).fit(X, y).predict_proba(X)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert torch.equal(state, torch.get_rng_state())


def test_an_estimator_with_an_augmentation_clones_and_pickles(series):
    X, y = series
    clf = ESPRORegressor(augment=SeriesAugmentation(), **TINY).fit(X, X[:, 0])
    again = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(again.predict(X), clf.predict(X))
    assert repr(clone(clf).augment) == "SeriesAugmentation(max_shift=5, noise=0.05)"


@pytest.mark.parametrize("augment, error, match", [
    ("flip", ValueError, "'augment' parameter"),
    (lambda x: x[:, :4], ValueError, r"augment must return a batch of the shape"),
    (lambda x: x.long(), ValueError, "floating-point tensor"),
    (lambda x: x.mul_(2), ValueError, "in place"),
    (lambda x: x / 0, ValueError, "NaN or infinite"),
    (lambda x: 1 / 0, ValueError, "augment failed.*ZeroDivisionError"),
])
def test_a_bad_augmentation_is_named_before_training(series, augment, error, match, monkeypatch):
    from sklearn_espro._core import members

    X, y = series
    monkeypatch.setattr(members, "train_mode", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(error, match=match):
        ESPROClassifier(augment=augment, **TINY).fit(X, y)


def test_series_augmentation_rolls_each_series_and_adds_noise():
    x = torch.arange(10.0).repeat(200, 1)
    torch.manual_seed(0)
    out = SeriesAugmentation(max_shift=3, noise=0.0)(x)
    shifts = (-out[:, 0]) % 10  # out[t] = x[t - s]: out[0] = -s mod 10
    assert set(shifts.tolist()) == {0.0, 1.0, 2.0, 3.0, 7.0, 8.0, 9.0}  # s in [-3, 3], each drawn
    for row, s in zip(out, shifts.long()):
        assert torch.equal(row, torch.roll(x[0], int(s)))
    three = torch.zeros(4000, 2, 10)
    noisy = SeriesAugmentation(max_shift=0, noise=0.5)(three)
    assert noisy.std().item() == pytest.approx(0.5, rel=0.05) and noisy.shape == three.shape


def test_image_augmentation_crops_the_padded_image_and_flips():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(300, 2, 1, 1)
    torch.manual_seed(0)
    out = ImageAugmentation(padding=1, flip=False)(x)
    padded = torch.nn.functional.pad(x[0], (1, 1, 1, 1))
    windows = {(i, j) for i in range(3) for j in range(3)}
    found = set()
    for img in out:
        match = [(i, j) for i, j in windows if torch.equal(img, padded[:, i:i + 4, j:j + 4])]
        assert len(match) == 1
        found.add(match[0])
    assert found == windows  # every offset drawn
    flipped = ImageAugmentation(padding=0, flip=True)(x)
    mirrored = torch.tensor([torch.equal(f, x[0].flip(-1)) for f in flipped])
    assert all(torch.equal(f, x[0]) or m for f, m in zip(flipped, mirrored))
    assert 100 < int(mirrored.sum()) < 200


def test_image_augmentation_trains_a_2d_network():
    rng = np.random.RandomState(0)
    X = rng.rand(40, 1, 6, 6).astype(np.float32)
    y = (X[:, 0, :, :3].mean((1, 2)) > X[:, 0, :, 3:].mean((1, 2))).astype(int)
    clf = ESPROClassifier(ConvNet2d, module__channels=(4,), augment=ImageAugmentation(padding=1), **TINY).fit(X, y)
    assert clf.predict_proba(X).shape == (40, 2)


@pytest.mark.parametrize("augment, x, match", [
    (SeriesAugmentation(), torch.zeros(2, 2, 2, 2), "2-D or 3-D"),
    (SeriesAugmentation(max_shift=-1), torch.zeros(2, 5), "max_shift"),
    (SeriesAugmentation(noise=float("nan")), torch.zeros(2, 5), "noise"),
    (ImageAugmentation(), torch.zeros(2, 5), "4-D"),
    (ImageAugmentation(padding=1.5), torch.zeros(2, 1, 3, 3), "padding"),
    (ImageAugmentation(flip="yes"), torch.zeros(2, 1, 3, 3), "flip"),
])
def test_the_shipped_augmentations_name_bad_settings(augment, x, match):
    with pytest.raises(ValueError, match=match):
        augment(x)
