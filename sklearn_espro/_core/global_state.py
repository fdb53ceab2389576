"""torch's process-wide state that training and prediction touch, always restored.

The global random generators (dropout draws from them) and the switches of the fused
attention kernels (which ``vmap`` cannot vectorise) belong to the caller: every use here
restores what it found. Both are process-wide, so calls that overlap in threads share one
count: the first to enter saves, the last to leave restores. (Overlapping calls also share
the seeded generator while they run, so dropout is reproducible only for calls that do
not overlap; process-based joblib backends never overlap.)
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["own_global_rng", "private_module", "vectorisable_attention"]


_rng_lock = threading.Lock()
_rng_users = 0
_rng_saved: dict = {}  # "cpu" or a CUDA index: the state found by the first to enter


@contextmanager
def own_global_rng(device: torch.device | str = "cpu", seed: int | None = None) -> Iterator[None]:
    """Run a block that may draw from torch's global random state, and restore that state after.

    Dropout (and ``vmap(randomness="different")``) draw from the global generator; inside
    this block they may, seeded with ``seed`` for reproducibility, while the caller's
    random state is left exactly as it was (see the module's note on threads).

    Parameters
    ----------
    device : torch.device or str, default="cpu"
        A CUDA device's generator is saved and restored as well.
    seed : int, default=None
        Seeds the global generators inside the block.

    Examples
    --------
    >>> import torch
    >>> expected = torch.manual_seed(0) and torch.rand(2)
    >>> _ = torch.manual_seed(0)
    >>> with own_global_rng(seed=1):
    ...     _ = torch.rand(3)
    >>> bool((torch.rand(2) == expected).all())  # as if the block had not run
    True
    """
    global _rng_users
    device = torch.device(device)
    cuda = device.type == "cuda"
    index = (device.index if device.index is not None else torch.cuda.current_device()) if cuda else None
    with _rng_lock:
        if _rng_users == 0:
            _rng_saved.clear()
            _rng_saved["cpu"] = torch.get_rng_state()
        if cuda and index not in _rng_saved:
            _rng_saved[index] = torch.cuda.get_rng_state(index)
        _rng_users += 1
    try:
        if seed is not None:
            torch.default_generator.manual_seed(seed)
            if cuda:
                with torch.cuda.device(index):
                    torch.cuda.manual_seed(seed)
        yield
    finally:
        with _rng_lock:
            _rng_users -= 1
            if _rng_users == 0:
                for key, state in _rng_saved.items():
                    if key == "cpu":
                        torch.set_rng_state(state)
                    else:
                        torch.cuda.set_rng_state(state, key)


_ATTENTION_FLAGS = (  # global switches (getter, setter, value inside); those an old torch lacks are skipped
    ("mha", "get_fastpath_enabled", "set_fastpath_enabled", False),
    ("cuda", "flash_sdp_enabled", "enable_flash_sdp", False),
    ("cuda", "mem_efficient_sdp_enabled", "enable_mem_efficient_sdp", False),
    ("cuda", "cudnn_sdp_enabled", "enable_cudnn_sdp", False),
    ("cuda", "math_sdp_enabled", "enable_math_sdp", True),
)
_attention_lock = threading.Lock()
_attention_users = 0
_attention_saved: list = []


@contextmanager
def vectorisable_attention() -> Iterator[None]:
    """Attention kernels that vmap vectorises, with torch's global switches restored after.

    The fused kernels (``nn.TransformerEncoderLayer``'s inference fast path, flash and
    memory-efficient scaled-dot-product attention) have no vmap rule and would run one
    model at a time; the plain layers and the math backend vectorise. Calls that overlap
    in threads share one count: the first to enter saves and switches, the last to leave
    restores what it saved.
    """
    global _attention_users
    with _attention_lock:
        if _attention_users == 0:
            _attention_saved.clear()
            for backend, getter, setter, value in _ATTENTION_FLAGS:
                module = getattr(torch.backends, backend, None)
                if hasattr(module, getter) and hasattr(module, setter):
                    _attention_saved.append((getattr(module, setter), getattr(module, getter)()))
                    getattr(module, setter)(value)
        _attention_users += 1
    try:
        yield
    finally:
        with _attention_lock:
            _attention_users -= 1
            if _attention_users == 0:
                for setter, value in _attention_saved:
                    setter(value)


_pools: weakref.WeakKeyDictionary[nn.Module, list[nn.Module]] = weakref.WeakKeyDictionary()
_pools_lock = threading.Lock()


@contextmanager
def private_module(module: nn.Module, *, training: bool = False) -> Iterator[nn.Module]:
    """A copy of ``module`` that no other call uses while this block runs, in the mode asked for.

    ``functional_call`` swaps weights into the module it runs, and BatchNorm
    recomputation changes its layers' momentum and mode: two threads predicting with
    one fitted estimator must not do that to one shared module. Each block borrows a
    copy from a pool kept per ``module`` (made with ``copy.deepcopy`` the first time
    more blocks overlap than the pool holds) and gives it back after; ``module``
    itself is only read.

    Parameters
    ----------
    module : nn.Module
        The architecture (a simplex's module); never changed.
    training : bool, default=False
        The mode of the copy inside the block.

    Yields
    ------
    nn.Module

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 2).train()
    >>> with private_module(net) as work:
    ...     work is net, work.training
    (False, False)
    >>> net.training
    True
    """
    with _pools_lock:
        free = _pools.setdefault(module, [])
        work = free.pop() if free else None
    if work is None:
        work = copy.deepcopy(module)
    try:
        yield work.train(training)
    finally:
        with _pools_lock:
            _pools.setdefault(module, []).append(work)
