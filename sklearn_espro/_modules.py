"""Small ready-made networks: the default MLP, 1-D and 2-D CNNs and a 1-D ResNet.

Any ``nn.Module`` mapping a float32 batch to logits works with
:class:`~sklearn_espro.ESPROClassifier`; these exist so that the estimator has a
sensible default and the benchmarks shared networks. All take ``n_features_in`` and
``n_classes``, which the estimator fills from the data when not given.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["MLP", "ConvNet1d", "ConvNet2d", "ResNet1d"]


class MLP(nn.Module):
    """Multi-layer perceptron with ReLU activations, returning logits.

    Parameters
    ----------
    n_features_in : int
        Input width (filled from X by the estimator).
    n_classes : int
        Output width (filled from y by the estimator).
    hidden_sizes : sequence of int, default=(128, 128)
        Width of each hidden layer.
    dropout : float, default=0.0
        Dropout probability after each hidden layer.

    Examples
    --------
    >>> import torch
    >>> MLP(4, 3, hidden_sizes=(8,))(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
    """

    def __init__(
        self, n_features_in: int, n_classes: int, hidden_sizes: Sequence[int] = (128, 128), dropout: float = 0.0
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features_in
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, n_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x.flatten(1))


class ConvNet1d(nn.Module):
    """1-D convolutional network: strided conv, BatchNorm, ReLU blocks, then a linear head.

    Parameters
    ----------
    n_features_in : int
        Sequence length of 2-D input (n, length), read as a single channel; for 3-D
        input (n, in_channels, length) pass the length explicitly as ``length``.
    n_classes : int
        Number of logits.
    channels : sequence of int, default=(32, 32, 32)
        Output channels of each block; each block halves the length (stride 2).
    kernel_size : int, default=5
    batchnorm : bool, default=True
    in_channels : int, default=1
    length : int, default=None
        Sequence length; ``None`` means ``n_features_in``.

    Examples
    --------
    >>> import torch
    >>> ConvNet1d(40, 10)(torch.zeros(3, 40)).shape
    torch.Size([3, 10])
    """

    def __init__(
        self,
        n_features_in: int,
        n_classes: int,
        channels: Sequence[int] = (32, 32, 32),
        kernel_size: int = 5,
        batchnorm: bool = True,
        in_channels: int = 1,
        length: int | None = None,
    ):
        super().__init__()
        length = n_features_in if length is None else length
        blocks: list[nn.Module] = []
        width = in_channels
        for size in channels:
            blocks.append(nn.Conv1d(width, size, kernel_size, stride=2, padding=kernel_size // 2))
            if batchnorm:
                blocks.append(nn.BatchNorm1d(size))
            blocks.append(nn.ReLU())
            width = size
            length = (length - 1) // 2 + 1
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(width * length, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        return self.head(self.features(x).flatten(1))


class ConvNet2d(nn.Module):
    """Small 2-D convolutional network for images: conv, BatchNorm, ReLU blocks, pooling, linear.

    Parameters
    ----------
    n_features_in : int
        Input channels (``X.shape[1]`` of images shaped (n, channels, height, width)).
    n_classes : int
        Number of logits.
    channels : sequence of int, default=(16, 32)
        Output channels of each 3x3 block; each block but the last is followed by 2x2 max pooling.
    batchnorm : bool, default=True

    Examples
    --------
    >>> import torch
    >>> ConvNet2d(1, 10)(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """

    def __init__(self, n_features_in: int, n_classes: int, channels: Sequence[int] = (16, 32), batchnorm: bool = True):
        super().__init__()
        blocks: list[nn.Module] = []
        width = n_features_in
        for i, size in enumerate(channels):
            blocks.append(nn.Conv2d(width, size, 3, padding=1))
            if batchnorm:
                blocks.append(nn.BatchNorm2d(size))
            blocks.append(nn.ReLU())
            if i < len(channels) - 1:
                blocks.append(nn.MaxPool2d(2))
            width = size
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean(dim=(-2, -1)))


class _Block1d(nn.Module):
    """Two 3-wide convolutions with BatchNorm and a shortcut (a 1x1 projection when the shape changes)."""

    def __init__(self, width: int, size: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(width, size, 3, stride=stride, padding=1, bias=False), nn.BatchNorm1d(size), nn.ReLU(),
            nn.Conv1d(size, size, 3, padding=1, bias=False), nn.BatchNorm1d(size),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or width != size:
            self.shortcut = nn.Sequential(nn.Conv1d(width, size, 1, stride=stride, bias=False), nn.BatchNorm1d(size))

    def forward(self, x: Tensor) -> Tensor:
        return (self.body(x) + self.shortcut(x)).relu()


class ResNet1d(nn.Module):
    """1-D residual network (He et al., 2016) for sequences: a stem, stages of residual blocks, pooling.

    Each stage after the first halves the length; the head is a linear layer on the
    channel means.

    Parameters
    ----------
    n_features_in : int
        Sequence length of 2-D input (unused: the network pools over any length).
    n_classes : int
        Number of logits.
    channels : sequence of int, default=(16, 32, 64)
        Output channels of each stage.
    blocks_per_stage : int, default=2
        Residual blocks (two convolutions each) per stage.
    in_channels : int, default=1
        Channels of 3-D input (n, in_channels, length); 2-D input is one channel.

    Examples
    --------
    >>> import torch
    >>> ResNet1d(40, 10)(torch.zeros(3, 40)).shape
    torch.Size([3, 10])
    """

    def __init__(
        self,
        n_features_in: int,
        n_classes: int,
        channels: Sequence[int] = (16, 32, 64),
        blocks_per_stage: int = 2,
        in_channels: int = 1,
    ):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv1d(in_channels, channels[0], 5, padding=2, bias=False), nn.BatchNorm1d(channels[0]), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        width = channels[0]
        for i, size in enumerate(channels):
            for b in range(blocks_per_stage):
                blocks.append(_Block1d(width, size, stride=2 if i > 0 and b == 0 else 1))
                width = size
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        return self.head(self.blocks(self.stem(x)).mean(dim=-1))
