import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_espro._core.members import VertexTraining, fit_simplex
from sklearn_espro._core.modes import ModeTraining, train_mode
from sklearn_espro._modules import MLP, ConvNet1d

MODE = ModeTraining(n_classes=10, max_epochs=3, lr=0.05, batch_size=50, optimizer=torch.optim.SGD,
                    optimizer_kwargs={"momentum": 0.9}, criterion=nn.CrossEntropyLoss, criterion_kwargs={})
VERTEX = VertexTraining(epochs=2, lr=0.01, schedule="cosine", batch_size=50, n_train_samples=5,
                        optimizer=torch.optim.SGD, optimizer_kwargs={"momentum": 0.9}, criterion=nn.CrossEntropyLoss(),
                        volume_reg=0.1)


def test_train_mode_lowers_the_loss_and_records_history(digits):
    X, y, _, _ = digits
    module, history = train_mode(MLP(64, 10), X, y.astype(np.int64), MODE, device="cpu", seed=0)
    assert [r["epoch"] for r in history] == [0, 1, 2]
    assert history[-1]["loss"] < history[0]["loss"]
    assert next(module.parameters()).device.type == "cpu"


def test_train_mode_is_reproducible(digits):
    X, y, _, _ = digits
    m1, m2, m3 = MLP(64, 10), MLP(64, 10), MLP(64, 10)
    m2.load_state_dict(m1.state_dict())
    m3.load_state_dict(m1.state_dict())
    r1, _ = train_mode(m1, X, y.astype(np.int64), MODE, device="cpu", seed=2)
    torch.manual_seed(123)  # the global random state must not matter
    r2, _ = train_mode(m2, X, y.astype(np.int64), MODE, device="cpu", seed=2)
    r3, _ = train_mode(m3, X, y.astype(np.int64), MODE, device="cpu", seed=3)
    assert all(torch.equal(p, q) for p, q in zip(r1.parameters(), r2.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(r1.parameters(), r3.parameters()))


def test_fit_simplex_returns_cpu_results_with_recomputed_batchnorm(digits):
    X, y, _, _ = digits
    out = fit_simplex(
        ConvNet1d(64, 10, channels=(4, 4)), X, y.astype(np.int64), n_vertices=3, n_samples=4, pretrained=False,
        mode=MODE, vertex=VERTEX, device="cpu", seed=0,
    )
    assert out.simplex.n_vertices == 3
    assert out.coords.shape == (4, 3)
    assert out.buffers["features.1.running_mean"].shape == (4, 4)
    # each sampled model has statistics of its own
    means = out.buffers["features.1.running_mean"]
    assert not torch.allclose(means[0], means[1])
    assert [r["phase"] for r in out.history] == ["mode"] * 3 + ["vertex"] * 4
    assert all(t.device.type == "cpu" for t in [out.coords, *out.buffers.values(), *out.simplex.vertices.values()])


def test_fit_simplex_names_the_mode_when_training_diverges(digits):
    X, y, _, _ = digits
    with pytest.raises(FloatingPointError, match=r"mode of simplex 2 \(lr=.*learning rate"):
        fit_simplex(
            MLP(64, 10), X * 1e20, y.astype(np.int64), n_vertices=1, n_samples=1, pretrained=False,
            mode=dataclasses.replace(MODE, lr=1e10), vertex=VERTEX, device="cpu", seed=0,
            name="simplex 2",
        )
