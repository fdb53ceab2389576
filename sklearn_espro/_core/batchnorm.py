"""BatchNorm for many weight settings at once: batch statistics while training, recomputed ones after.

Part of the simplex layer: a vertex trains on a copy of the module whose BatchNorm layers
normalise by the statistics of their own batch (:func:`training_copy`; :func:`batch_statistics`
does the same for a block), and every model kept for prediction gets running statistics of
its own, recomputed on the training data in one vectorised pass per batch, or one model at a
time (:func:`recompute_batchnorm`), over batches of at least two samples (:func:`batch_sizes`)
of at most a bounded number of rows drawn at random (:func:`subsample_rows`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .rows import StreamedRows
from .simplex import Params, batched_forward

__all__ = [
    "batch_sizes", "batch_statistics", "batchnorm_buffer_names", "has_batchnorm", "recompute_batchnorm",
    "subsample_rows", "training_copy",
]


def batch_sizes(n_samples: int, batch_size: int, min_size: int = 1) -> list[int]:
    """Sizes of consecutive minibatches of ``n_samples``, none smaller than ``min_size``.

    A last batch shorter than ``min_size`` joins the one before it (a BatchNorm layer
    in training mode needs two samples; a batch of one would fail).

    Parameters
    ----------
    n_samples, batch_size : int
    min_size : int, default=1

    Returns
    -------
    list of int
        Summing to ``n_samples``.

    Examples
    --------
    >>> batch_sizes(129, 64, min_size=2)
    [64, 65]
    >>> batch_sizes(10, 4)
    [4, 4, 2]
    """
    sizes = [min(batch_size, n_samples - start) for start in range(0, n_samples, batch_size)]
    if len(sizes) > 1 and sizes[-1] < min_size:
        last = sizes.pop()
        sizes[-1] += last
    return sizes


def subsample_rows(X: Tensor | StreamedRows, max_rows: int | None,
                   generator: torch.Generator) -> Tensor | StreamedRows:
    """``max_rows`` rows of ``X`` drawn uniformly without replacement, in their order in ``X``.

    All of ``X`` (itself, the generator untouched) when ``max_rows`` is None or ``X`` has
    no more rows; otherwise a new tensor (``X`` is only read; streamed rows are read now,
    onto the CPU).

    Parameters
    ----------
    X : Tensor of shape (n_samples, ...), or StreamedRows
    max_rows : int or None
    generator : torch.Generator
        Draws the rows (on its own device; the rows are taken on ``X``'s).

    Returns
    -------
    Tensor of shape (min(n_samples, max_rows), ...)

    Examples
    --------
    >>> import torch
    >>> X = torch.arange(10.0).view(5, 2)
    >>> subsample_rows(X, 2, torch.Generator().manual_seed(0)).shape
    torch.Size([2, 2])
    >>> subsample_rows(X, 8, torch.Generator()) is X
    True
    """
    if max_rows is None or len(X) <= max_rows:
        return X
    rows = torch.randperm(len(X), generator=generator, device=generator.device)[:max_rows].sort().values
    return X.take(rows) if isinstance(X, StreamedRows) else X[rows.to(X.device)]


def _batchnorm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def has_batchnorm(module: nn.Module) -> bool:
    """Whether ``module`` has a BatchNorm layer, which in training mode needs two samples a batch.

    Parameters
    ----------
    module : nn.Module

    Returns
    -------
    bool

    Examples
    --------
    >>> import torch
    >>> has_batchnorm(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)))
    True
    """
    return bool(_batchnorm_layers(module))


def batchnorm_buffer_names(module: nn.Module) -> list[str]:
    """Names of the running mean and variance buffers of BatchNorm layers.

    Parameters
    ----------
    module : nn.Module

    Returns
    -------
    list of str

    Examples
    --------
    >>> import torch
    >>> batchnorm_buffer_names(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)))
    ['1.running_mean', '1.running_var']
    """
    names = []
    for prefix, sub in module.named_modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm) and sub.track_running_stats:
            dot = f"{prefix}." if prefix else ""
            names += [f"{dot}running_mean", f"{dot}running_var"]
    return names


@contextmanager
def batch_statistics(module: nn.Module) -> Iterator[nn.Module]:
    """Training mode with BatchNorm normalising by batch statistics, never updating running ones.

    Inside the block ``module`` is in training mode and its BatchNorm layers do not track
    running statistics, so a vectorised forward writes nothing; both are restored after.

    Parameters
    ----------
    module : nn.Module

    Yields
    ------
    nn.Module
        ``module`` itself.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)).eval()
    >>> with batch_statistics(net):
    ...     _ = net(torch.randn(8, 2))
    >>> net.training, bool((net[1].running_mean == 0).all())  # nothing was written
    (False, True)
    """
    layers = _batchnorm_layers(module)
    saved = [(m, m.track_running_stats) for m in layers]
    was_training = module.training
    try:
        for m in layers:
            m.track_running_stats = False
        yield module.train()
    finally:
        for m, flag in saved:
            m.track_running_stats = flag
        module.train(was_training)


def training_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` in training mode whose BatchNorm layers use batch statistics only.

    What :func:`batch_statistics` does for a block, made permanent on a copy: a vertex's
    training steps can then run anywhere (under ``vmap``, with unbatched running
    statistics) and never write into the buffers they are given.

    Parameters
    ----------
    module : nn.Module

    Returns
    -------
    nn.Module
        A deep copy; ``module`` is unchanged.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)).eval()
    >>> copy = training_copy(net)
    >>> copy.training, copy[1].track_running_stats, net.training
    (True, False, False)
    """
    module = copy.deepcopy(module).train()
    for layer in _batchnorm_layers(module):
        layer.track_running_stats = False
    return module


@torch.no_grad()
def recompute_batchnorm(
    module: nn.Module, params: Params, buffers: Params, batches: Iterable[Tensor], *, per_model: bool = False
) -> Params:
    """BatchNorm statistics of each of ``n_models`` weight settings, over data batches.

    Each model's running mean and variance become the average over ``batches`` of
    its per-batch statistics, weighted by batch size (as ``torch.optim.swa_utils.
    update_bn`` does), computed for all models in one vectorised forward per batch,
    or (``per_model``) one model at a time: its weights copied into a working copy of
    ``module``, then plain forwards over every batch. The same statistics, up to
    rounding. For convolutional networks on a CPU the loop is the cheaper (under
    ``vmap`` a convolution becomes a grouped one): for 8 models, 1.9x for ResNet-18 and
    2.6x for a VGG-style CNN, and within 10% of ``vmap`` for the small MNIST-1D CNN
    (``benchmarks/batchnorm_cost.py``).

    Parameters
    ----------
    module : nn.Module
    params, buffers : dict of str to Tensor of shape ``(n_models, *shape)``
    batches : re-iterable of Tensor of shape (batch, ...)
        On ``module``'s device (a list, a tensor's ``split``, or streamed rows'
        :meth:`~.rows.StreamedRows.in_order`, read again for each model with
        ``per_model``); each of at least two samples (BatchNorm in training mode cannot normalise one);
        :func:`batch_sizes` makes such a split.
    per_model : bool, default=False

    Returns
    -------
    dict of str to Tensor of shape ``(n_models, *shape)``
        ``buffers`` with the BatchNorm statistics replaced; others unchanged.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.BatchNorm1d(1, affine=False)
    >>> from sklearn_espro._core.simplex import expand
    >>> buffers = expand(dict(net.named_buffers()), 2, clone=True)
    >>> x = torch.tensor([[1.0], [3.0]])
    >>> recompute_batchnorm(net, {}, buffers, [x])["running_mean"]  # the data's mean, per model
    tensor([[2.],
            [2.]])
    """
    names = batchnorm_buffer_names(module)
    if not names:
        return dict(buffers)
    layers = _batchnorm_layers(module)
    saved = [(m, m.momentum) for m in layers]
    was_training = module.training
    work = {k: v.clone() for k, v in buffers.items()}
    totals = {k: torch.zeros_like(work[k]) for k in names}
    count = 0
    try:
        for m in layers:
            m.momentum = 1.0  # running stats := this batch's stats
        module.train()
        if per_model:
            count = _statistics_per_model(module, params, work, totals, batches)
        else:
            for xb in batches:
                batched_forward(module, params, work, xb)
                count += len(xb)
                for k in names:
                    totals[k] += work[k] * len(xb)
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        module.train(was_training)
    return {**work, **{k: totals[k] / max(count, 1) for k in names}}


def _statistics_per_model(module: nn.Module, params: Params, work: Params, totals: Params,
                          batches: Iterable[Tensor]) -> int:
    """:func:`recompute_batchnorm`'s sums, one model at a time as a plain module (a copy of
    ``module``, in its mode, with each model's weights copied in); ``work`` gets each
    model's buffers after its last batch, as the vectorised forward leaves them. Returns the
    rows each model saw; ``batches`` is iterated once per model."""
    net = copy.deepcopy(module)
    own = dict(net.named_buffers())
    for i in range(next(iter(totals.values())).shape[0]):
        values = {**{k: v[i] for k, v in work.items()}, **{k: v[i] for k, v in params.items()}}
        for name, tensor in [*net.named_parameters(), *net.named_buffers()]:
            tensor.copy_(values[name])
        count = 0
        for xb in batches:
            net(xb)
            count += len(xb)
            for k in totals:
                totals[k][i].add_(own[k], alpha=len(xb))
        for k, tensor in own.items():
            work[k][i] = tensor
    return count
