"""Data larger than memory: a torch Dataset or a numpy memmap, read a batch at a time, fits the same model."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from skorch.callbacks import EarlyStopping
from torch.utils.data import Dataset, IterableDataset, TensorDataset

from sklearn_espro import ESPROClassifier, ESPRORegressor, ResNet1d
from sklearn_espro.augment import SeriesAugmentation

TINY = dict(n_modes=2, n_vertices=3, max_epochs=2, vertex_epochs=1, n_samples=2, batch_size=32, random_state=0,
            device="cpu", module__hidden_sizes=(16,))


class Pairs(Dataset):
    """(input, target) pairs, as skorch and torchvision datasets give them; records what is read."""

    def __init__(self, X, y):
        self.X, self.y, self.reads = X, y, []

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        self.reads.append(1)
        return torch.from_numpy(self.X[i]), int(self.y[i])

    def __getitems__(self, rows):  # what a DataLoader asks for at once
        self.reads.append(len(rows))
        return [(torch.from_numpy(self.X[i]), int(self.y[i])) for i in rows]


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(150, 40).astype(np.float32)
    return X, (X[:, :5].sum(1) > 0).astype(int) + (X[:, 5] > 1)


@pytest.fixture
def memmap(data, tmp_path):
    X, _ = data
    path = tmp_path / "X.npy"
    np.save(path, X)
    return np.load(path, mmap_mode="r")


def same_models(a, b):
    """The same vertices, prediction models and buffers (BatchNorm statistics), bit for bit."""
    return all(torch.equal(ma.simplex.flat_vertices(), mb.simplex.flat_vertices()) and torch.equal(ma.coords, mb.coords)
               and all(torch.equal(ma.buffers[k], mb.buffers[k]) for k in ma.buffers)
               for ma, mb in zip(a.members_, b.members_))


def test_a_dataset_and_a_memmap_fit_the_same_model_as_the_array(data, memmap):
    X, y = data
    array = ESPROClassifier(**TINY).fit(X, y)
    pairs = ESPROClassifier(**TINY).fit(Pairs(X, y), None)  # targets read from the dataset
    inputs = ESPROClassifier(**TINY).fit(TensorDataset(torch.from_numpy(X)), y)
    mapped = ESPROClassifier(**TINY).fit(memmap, y)
    expected = array.predict_proba(X)
    for est in (pairs, inputs, mapped):
        assert same_models(array, est)
        np.testing.assert_array_equal(est.predict_proba(X), expected)
    np.testing.assert_array_equal(array.predict_proba(Pairs(X, y)), expected)
    np.testing.assert_array_equal(array.predict_proba(memmap), expected)
    np.testing.assert_array_equal(mapped.predict(memmap), array.predict(X))
    assert mapped.n_features_in_ == pairs.n_features_in_ == 40


def test_batchnorm_network_with_augmentation_and_a_validation_split_streams_to_the_same_model(data, memmap):
    X, y = data
    kw = {**TINY, "augment": SeriesAugmentation(), "batchnorm_rows": 64, "validation_fraction": 0.2, "lr": 0.05}
    kw.pop("module__hidden_sizes")
    array = ESPROClassifier(ResNet1d, **kw).fit(X, y)
    mapped = ESPROClassifier(ResNet1d, **kw).fit(memmap, y)
    assert same_models(array, mapped)
    assert array.history_ == mapped.history_  # the held-out rows' valid_loss too
    np.testing.assert_array_equal(mapped.predict_proba(memmap), array.predict_proba(X))
    for rows in (None, 64):  # BatchNorm statistics from every row, streamed, or from a bounded draw
        array.batchnorm_rows = mapped.batchnorm_rows = rows
        a = array.sample_models(2, X=X, random_state=1)
        b = mapped.sample_models(2, X=Pairs(X, y), random_state=1)
        for ma, mb in zip(a, b):
            for (name, p), q in zip(ma.state_dict().items(), mb.state_dict().values()):
                assert torch.equal(p, q), name


def test_a_dataset_is_read_a_batch_at_a_time(data):
    X, y = data
    dataset = Pairs(X, y)
    clf = ESPROClassifier(**{**TINY, "predict_batch_size": 50}).fit(dataset, None)
    clf.predict_proba(dataset)
    assert max(dataset.reads) <= 150  # the one pass reading the targets: batches of up to 1024 rows
    dataset.reads.clear()
    clf.predict_proba(dataset)
    assert dataset.reads == [1, 50, 50, 50]  # the first sample (its shape checked), then the batches


def test_loader_workers_give_the_same_model(data, memmap):
    X, y = data
    array = ESPROClassifier(**TINY).fit(X, y)
    state = torch.get_rng_state()
    workers = ESPROClassifier(**TINY, iterator_train__num_workers=2, iterator_valid__num_workers=1).fit(memmap, y)
    assert same_models(array, workers)
    np.testing.assert_array_equal(workers.predict_proba(memmap), array.predict_proba(X))
    assert torch.equal(torch.get_rng_state(), state)  # no DataLoader drew its workers' seed from torch's generator
    assert workers.get_params()["iterator_train__num_workers"] == 2


def test_a_writable_memmap_is_never_written(data, tmp_path):
    X, y = data
    mm = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float32, shape=X.shape)
    mm[:] = X
    mm.flush()
    class WritesItsInput(torch.nn.Module):
        def __init__(self, n_features_in, n_classes):
            super().__init__()
            self.relu, self.linear = torch.nn.ReLU(inplace=True), torch.nn.Linear(n_features_in, n_classes)

        def forward(self, x):
            return self.linear(self.relu(x))

    clf = ESPROClassifier(WritesItsInput, **{k: v for k, v in TINY.items() if k != "module__hidden_sizes"}).fit(mm, y)
    clf.predict_proba(mm)
    clf.sample_models(2, X=mm)
    np.testing.assert_array_equal(np.asarray(mm), X)


def test_bad_streamed_input_is_refused_before_training(data, memmap, tmp_path):
    X, y = data
    with pytest.raises(ValueError, match="not .input, target. tuples, and y is None"):
        ESPROClassifier(**TINY).fit(TensorDataset(torch.from_numpy(X)), None)
    with pytest.raises(ValueError, match="pairs and y was passed too"):
        ESPROClassifier(**TINY).fit(Pairs(X, y), y)
    with pytest.raises(ValueError, match="X has 150 samples but y has 149"):
        ESPROClassifier(**TINY).fit(memmap, y[:-1])

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(X)

    with pytest.raises(ValueError, match="map-style Dataset"):
        ESPROClassifier(**TINY).fit(Stream(), y)
    bad = X.copy()
    bad[97, 3] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError, match=r"NaN or infinite values \(row 97\)"):
        ESPROClassifier(**TINY).fit(np.load(tmp_path / "bad.npy", mmap_mode="r"), y)
    with pytest.raises(ValueError, match=r"NaN or infinite values \(row 97\)"):
        ESPROClassifier(**TINY).fit(Pairs(bad, y), None)
    with pytest.raises(TypeError, match="iterator_train__batch_size, which is not a DataLoader argument"):
        ESPROClassifier(**TINY, iterator_train__batch_size=8).fit(X, y)
    with pytest.raises(ValueError, match=r"iterator_train__\* arguments .* are not valid DataLoader arguments"):
        ESPROClassifier(**TINY, iterator_train__prefetch_factor=2).fit(memmap, y)  # needs workers
    with pytest.raises(ValueError, match="ESPRORegressor takes X in memory"):
        ESPRORegressor(max_epochs=1, n_vertices=1).fit(TensorDataset(torch.from_numpy(X)), y.astype(float))
    fitted = ESPROClassifier(**TINY).fit(X, y)
    with pytest.raises(ValueError, match="fitted on samples of shape"):
        fitted.predict_proba(TensorDataset(torch.from_numpy(X[:, :20])))


def test_early_stopping_on_a_validation_split_of_a_dataset(data):
    X, y = data
    clf = ESPROClassifier(**{**TINY, "max_epochs": 40, "lr": 0.5}, validation_fraction=0.3,
                          callbacks=[EarlyStopping(patience=2)]).fit(Pairs(X, y), None)
    epochs = [r["epoch"] for r in clf.history_ if r["phase"] == "mode" and r["simplex"] == 0]
    assert len(epochs) < 40 and "valid_loss" in clf.history_[0]


def test_a_memmap_is_never_copied_whole(tmp_path):
    """Under a data-segment limit of half the memmap's size, fit and predict succeed; copying it fails."""
    pytest.importorskip("resource")
    script = textwrap.dedent(f"""
        import resource, numpy as np, torch
        from sklearn_espro import ESPROClassifier
        torch.set_num_threads(1)
        X = np.lib.format.open_memmap({str(tmp_path / "big.npy")!r}, mode="w+", dtype=np.float32, shape=(16384, 4096))
        for start in range(0, len(X), 512):
            X[start:start + 512] = np.random.RandomState(start).randn(512, 4096)
        X.flush()
        del X
        X = np.load({str(tmp_path / "big.npy")!r}, mmap_mode="r")  # 256 MiB on disk
        y = np.arange(len(X)) % 3
        kw = dict(n_modes=1, n_vertices=2, max_epochs=1, vertex_epochs=1, batch_size=256, module__hidden_sizes=(4,),
                  random_state=0, device="cpu")
        ESPROClassifier(**kw).fit(np.asarray(X[:512]), y[:512]).predict_proba(X[:512])  # imports and allocators warm
        used = int(open("/proc/self/statm").read().split()[5]) * resource.getpagesize()  # data segment now
        resource.setrlimit(resource.RLIMIT_DATA, (used + (128 << 20), resource.RLIM_INFINITY))
        clf = ESPROClassifier(**kw).fit(X, y)
        assert clf.predict_proba(X).shape == (16384, 3)
        try:
            np.array(X)
        except MemoryError:
            print("streamed; a whole copy fails")
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # no thread pools created under the limit
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "streamed; a whole copy fails" in out.stdout


class Noisy(Pairs):
    """A dataset whose items draw from torch's global generator (a random transform)."""

    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return x + 0.01 * torch.randn(x.shape), y

    def __getitems__(self, rows):
        return [self[i] for i in rows]


def test_reading_a_dataset_leaves_torchs_global_generator_as_it_was(data):
    X, y = data
    state = torch.get_rng_state()
    clf = ESPROClassifier(**TINY).fit(Noisy(X, y), None)
    clf.predict_proba(Noisy(X, y))
    clf.sample_models(2, X=Noisy(X, y))
    assert torch.equal(torch.get_rng_state(), state)


def test_more_bad_streamed_input(data, memmap, tmp_path):
    X, y = data
    with pytest.raises(ValueError, match="y is None"):
        ESPROClassifier(**TINY).fit(memmap, None)
    np.save(tmp_path / "empty.npy", np.zeros((40, 0), np.float32))
    with pytest.raises(ValueError, match="holds no samples or no values"):
        ESPROClassifier(**TINY).fit(np.load(tmp_path / "empty.npy", mmap_mode="r"), y[:40])

    class Ragged(Pairs):
        def __getitem__(self, i):
            x, t = super().__getitem__(i)
            return (x[:20] if i == 30 else x), t

        def __getitems__(self, rows):
            return [self[i] for i in rows]

    with pytest.raises(ValueError, match="samples have different shapes"):
        ESPROClassifier(**TINY).fit(Ragged(X, y), None)
    with pytest.raises(TypeError, match="iterator_train__in_order, which is not a DataLoader argument"):
        ESPROClassifier(**TINY, iterator_train__in_order=False).fit(memmap, y)


def test_loader_workers_draw_new_seeds_each_pass(data, memmap):
    """A dataset's random transforms in DataLoader workers differ from pass to pass, and a fit is reproducible."""
    from sklearn_espro._core.rows import StreamedRows

    X, y = data
    rows = StreamedRows(Noisy(X, y), (40,), loader={"train": {"num_workers": 1}, "valid": {}})
    first = torch.cat(list(rows.batches([np.arange(10)], "cpu")))
    second = torch.cat(list(rows.batches([np.arange(10)], "cpu")))
    assert not torch.equal(first, second)
    kw = {**TINY, "iterator_train__num_workers": 1}
    a = ESPROClassifier(**kw).fit(Noisy(X, y), None)
    b = ESPROClassifier(**kw).fit(Noisy(X, y), None)
    assert same_models(a, b)
