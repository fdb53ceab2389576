"""Data augmentation for the ``augment`` parameter of the estimators: batched, on the training device.

An ``augment`` callable takes a minibatch of training inputs, a tensor of shape
``(batch, ...)`` on the training device, and returns one of the same shape; the
estimators apply it to every minibatch that trains a mode or a vertex, never at
prediction and never to the data on which BatchNorm statistics are recomputed. Its
randomness comes from torch's global generator, which the estimators seed from
``random_state`` around training (and restore after), so a fit stays reproducible.
Plain functions and ``torchvision.transforms.v2`` objects work the same way.

Two ready ones, each a whole batch at a time, with one random draw per sample:

- :class:`SeriesAugmentation`: a random circular shift and Gaussian noise, for series
  such as MNIST-1D (inputs ``(batch, length)`` or ``(batch, channels, length)``);
- :class:`ImageAugmentation`: a random crop of the zero-padded image and a horizontal
  flip, as in the CIFAR recipe of the paper (inputs ``(batch, channels, height, width)``).

They are picklable, so an estimator that holds one can be saved and cloned.
"""

from __future__ import annotations

from numbers import Integral, Real

import torch
from torch import Tensor

__all__ = ["ImageAugmentation", "SeriesAugmentation"]


def _check_number(name: str, value, *, integer: bool, minimum: float = 0.0) -> None:
    kind = Integral if integer else Real
    if isinstance(value, bool) or not isinstance(value, kind) or not value >= minimum or value != value:
        what = "an int" if integer else "a number"
        raise ValueError(f"{name} must be {what} >= {minimum:g}; got {value!r}.")


def _check_batch(x, ndims: tuple[int, ...], who: str) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"{who} takes a floating-point tensor (a minibatch); got {type(x).__name__}.")
    if x.ndim not in ndims:
        raise ValueError(f"{who} takes batches of {' or '.join(f'{d}-D' for d in ndims)} tensors; got shape "
                         f"{tuple(x.shape)}.")


class SeriesAugmentation:
    """A random circular shift of each series and additive Gaussian noise.

    Parameters
    ----------
    max_shift : int, default=5
        Each series is rolled by a whole number of steps drawn uniformly from
        ``[-max_shift, max_shift]``, its own for each series (all channels alike).
    noise : float, default=0.05
        Standard deviation of the Gaussian noise added to every value, in the units of
        the inputs (MNIST-1D's series have values of about unit scale).

    Examples
    --------
    >>> import torch
    >>> x = torch.arange(8.0).repeat(3, 1)
    >>> out = SeriesAugmentation(max_shift=2, noise=0.0)(x)
    >>> out.shape, sorted(out[0].tolist()) == list(range(8))  # each row is a rotation of 0..7
    (torch.Size([3, 8]), True)
    """

    def __init__(self, max_shift: int = 5, noise: float = 0.05):
        self.max_shift = max_shift
        self.noise = noise

    def __call__(self, x: Tensor) -> Tensor:
        _check_number("max_shift", self.max_shift, integer=True)
        _check_number("noise", self.noise, integer=False)
        _check_batch(x, (2, 3), "SeriesAugmentation")
        n, length = x.shape[0], x.shape[-1]
        shift = torch.randint(-self.max_shift, self.max_shift + 1, (n, 1), device=x.device)
        index = (torch.arange(length, device=x.device) - shift) % length  # out[t] = x[t - shift]
        if x.ndim == 3:
            index = index[:, None, :].expand_as(x)
        out = x.gather(-1, index)
        if self.noise > 0:
            out = out + self.noise * torch.randn(out.shape, device=x.device, dtype=x.dtype)
        return out

    def __repr__(self) -> str:
        return f"SeriesAugmentation(max_shift={self.max_shift}, noise={self.noise})"


class ImageAugmentation:
    """A random crop of each zero-padded image and a random horizontal flip.

    Parameters
    ----------
    padding : int, default=4
        Zeros added on every side before a crop of the original size, whose offset is
        drawn uniformly for each image (CIFAR-10's usual 4 pixels).
    flip : bool, default=True
        Mirror each image left to right with probability one half.

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(5, 3, 8, 8)
    >>> ImageAugmentation(padding=2)(x).shape
    torch.Size([5, 3, 8, 8])
    >>> bool(torch.equal(ImageAugmentation(padding=0, flip=False)(x), x))
    True
    """

    def __init__(self, padding: int = 4, flip: bool = True):
        self.padding = padding
        self.flip = flip

    def __call__(self, x: Tensor) -> Tensor:
        _check_number("padding", self.padding, integer=True)
        if not isinstance(self.flip, bool):
            raise ValueError(f"flip must be a bool; got {self.flip!r}.")
        _check_batch(x, (4,), "ImageAugmentation")
        n, _, height, width = x.shape
        out = x
        p = self.padding
        if p > 0:
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            top = torch.randint(0, 2 * p + 1, (n,), device=x.device)
            left = torch.randint(0, 2 * p + 1, (n,), device=x.device)
            rows = (top[:, None] + torch.arange(height, device=x.device))[:, None, :, None]
            cols = (left[:, None] + torch.arange(width, device=x.device))[:, None, None, :]
            batch = torch.arange(n, device=x.device)[:, None, None, None]
            channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
            out = padded[batch, channel, rows, cols]
        if self.flip:
            mirror = torch.rand(n, device=x.device) < 0.5
            out = torch.where(mirror[:, None, None, None], out.flip(-1), out)
        return out

    def __repr__(self) -> str:
        return f"ImageAugmentation(padding={self.padding}, flip={self.flip})"
