"""torch's process-wide state that training and prediction touch, always restored.

The global random generators (dropout draws from them) and the switches of the fused
attention kernels (which ``vmap`` cannot vectorise) belong to the caller: every use
here runs on a private copy or restores what it found, also under threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["own_global_rng", "vectorisable_attention"]


@contextmanager
def own_global_rng(device: torch.device | str = "cpu", seed: int | None = None) -> Iterator[None]:
    """Run a block on a private copy of torch's global random state, restored after.

    Dropout (and ``vmap(randomness="different")``) draw from the global generator; inside
    this block they may, seeded with ``seed`` for reproducibility, while the caller's
    random state is left exactly as it was.

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
    device = torch.device(device)
    cuda = device.type == "cuda"
    index = (device.index if device.index is not None else torch.cuda.current_device()) if cuda else None
    with torch.random.fork_rng(devices=[index] if cuda else []):
        if seed is not None:
            torch.default_generator.manual_seed(seed)
            if cuda:
                with torch.cuda.device(index):
                    torch.cuda.manual_seed(seed)
        yield


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
    model at a time; the plain layers and the math backend vectorise. These switches
    are process-wide, so concurrent calls (threads) share one count: the first to enter
    saves and switches them off, the last to leave restores what it saved.
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
