import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same global random state."""
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def digits():
    """400 scaled digits (64 features, 10 classes) and 200 held-out ones."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return X[:400], y[:400], X[400:600], y[400:600]


@pytest.fixture(scope="session")
def trained_mlp(digits):
    """An MLP trained on the digits fixture (a mode)."""
    from sklearn_espro._core.modes import ModeTraining, train_mode
    from sklearn_espro import MLP

    X, y, _, _ = digits
    torch.manual_seed(0)
    training = ModeTraining(n_classes=10, max_epochs=30, lr=0.05, batch_size=32, optimizer=torch.optim.SGD,
                            optimizer_kwargs={"momentum": 0.9}, criterion=torch.nn.CrossEntropyLoss, criterion_kwargs={})
    module, _ = train_mode(MLP(64, 10, hidden_sizes=(32,)), X, y.astype(np.int64), training, device="cpu", seed=0)
    return module.eval()
