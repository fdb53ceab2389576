"""Rows of ``X`` that stay where they are: a torch ``Dataset`` or a numpy memmap, read a minibatch at a time.

In-memory arrays become one tensor and are indexed directly (the fast path). Data larger
than memory becomes :class:`StreamedRows`: the same row numbers, fetched by a
``DataLoader`` (workers and pinned memory as the user configures them, skorch's
``iterator_train__*`` and ``iterator_valid__*``) and moved to the training device one
batch at a time. The training loops ask for rows through :func:`load_batches`,
:func:`ordered_batches` and :func:`take`, which work on both, so a fit draws the same
minibatches, and trains the same model, whichever way its rows arrive.

A memmap is read with ``os.pread`` from its file rather than through its mapping: pages
read through a mapping count as the process's resident memory until the kernel drops
them, pages read into a buffer do not (``benchmarks/streaming.py``).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

__all__ = ["LOADER_OPTIONS", "StreamedRows", "as_rows", "is_streamed", "load_batches", "ordered_batches", "streamed_input", "take"]

# DataLoader arguments a user may route (``iterator_train__*``, ``iterator_valid__*``); the
# batches, their order (``in_order`` stays True) and their collation are ESPRO's own, and a
# loader lives for one pass (``persistent_workers`` would do nothing)
LOADER_OPTIONS = frozenset({"num_workers", "pin_memory", "prefetch_factor", "timeout", "worker_init_fn",
                            "multiprocessing_context", "pin_memory_device"})


class MemmapRows(Dataset):
    """A C-ordered numpy memmap as a dataset of float32 rows, read from its file by position.

    Falls back to indexing the memmap (whose pages then count as resident memory) when the
    rows' place in the file cannot be found: a memmap that is not C-contiguous, or opened
    copy-on-write (``mode="c"``, whose changes are not in the file).
    """

    def __init__(self, array: np.memmap):
        self.shape, self.dtype = tuple(array.shape), array.dtype
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        position = _file_position(array)
        self.path, self.start = position if position is not None else (None, 0)
        self.array = array if position is None else None
        self._fd, self._pid = None, None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        return self.__getitems__([i])[0]

    def __getitems__(self, rows: Sequence[int]) -> Tensor:
        """The rows, in the order given, as one float32 tensor (what the ``DataLoader`` collates)."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.path is None:
            return torch.from_numpy(np.asarray(self.array[rows], dtype=np.float32))
        out = np.empty((len(rows), self.row_bytes), dtype=np.uint8)
        fd = self._file()
        # each run of consecutive rows (in the order given) is one read, straight into its place
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for first, last in zip(np.r_[0, breaks].tolist(), np.r_[breaks, len(rows)].tolist()):
            view, done = memoryview(out[first:last]).cast("B"), 0
            position = self.start + int(rows[first]) * self.row_bytes
            while done < len(view):
                got = os.preadv(fd, [view[done:]], position + done)
                if got == 0:
                    raise OSError(f"{self.path} ended before row {int(rows[last - 1])}")
                done += got
        values = out.view(self.dtype).reshape(len(rows), *self.shape[1:])
        return torch.from_numpy(values.astype(np.float32, copy=values.dtype != np.float32))

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # each DataLoader worker opens its own
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None, "_pid": None}

    def __del__(self):
        if getattr(self, "_fd", None) is not None and self._pid == os.getpid():
            os.close(self._fd)


def _file_position(array: np.memmap) -> tuple[str, int] | None:
    """``(path, byte offset of row 0)`` of a C-contiguous memmap's rows in its file, or None."""
    if not hasattr(os, "preadv") or getattr(array, "filename", None) is None or getattr(array, "mode", "c") == "c":
        return None  # (no os.preadv on Windows: the memmap is indexed)
    if not array.flags.c_contiguous or array.size == 0:
        return None
    base = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    if not isinstance(base, mmap.mmap):
        return None
    mapped_at = np.frombuffer(base, dtype=np.uint8).ctypes.data
    start = array.offset - array.offset % mmap.ALLOCATIONGRANULARITY + (array.ctypes.data - mapped_at)
    try:  # checked on the first and last rows: a wrong position falls back to indexing
        with open(array.filename, "rb") as f:
            row = array.nbytes // len(array)
            for i in (0, len(array) - 1):
                f.seek(start + i * row)
                if f.read(row) != array[i].tobytes():
                    return None
    except OSError:
        return None
    return str(array.filename), int(start)


def _inputs(items: list) -> Tensor:
    """Collate a batch of a user's dataset: the inputs (first elements of ``(x, y)`` or ``(x,)`` tuples), float32."""
    if isinstance(items, Tensor):
        return items
    inputs = [torch.as_tensor(item[0] if isinstance(item, tuple) else item, dtype=torch.float32) for item in items]
    shapes = {tuple(x.shape) for x in inputs}
    if len(shapes) > 1:
        raise ValueError(f"X's samples have different shapes ({sorted(shapes)[:2]}, ...): every sample of X needs "
                         "the same shape.")
    return torch.stack(inputs)


def _as_batch(batch: Tensor) -> Tensor:
    return batch


class StreamedRows(Dataset):
    """Rows of a dataset read on demand; ``index`` picks (and orders) the rows this view holds.

    Parameters
    ----------
    source : Dataset
        :class:`MemmapRows`, or a user's dataset whose items are inputs or ``(input, target)``
        pairs.
    sample_shape : tuple of int
    index : ndarray of int or None, default=None
        Rows of ``source`` (all, in order, when None).
    loader : dict, default=None
        DataLoader arguments: ``"train"`` for shuffled training batches, ``"valid"`` for
        batches in order (held-out rows, BatchNorm statistics, prediction).
    """

    def __init__(self, source: Dataset, sample_shape: tuple[int, ...], index: np.ndarray | None = None,
                 loader: dict[str, dict[str, Any]] | None = None):
        self.source, self.sample_shape = source, tuple(sample_shape)
        self.index = np.arange(len(source)) if index is None else np.asarray(index, dtype=np.int64)
        self.loader = loader or {"train": {}, "valid": {}}
        self.collate = _as_batch if isinstance(source, MemmapRows) else _inputs
        self.seed, self._passes = 0, 0  # each pass's DataLoader seeds its workers from seed + passes

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Tensor:
        return self.take(np.array([i]))[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.sample_shape)

    def subset(self, rows: np.ndarray) -> StreamedRows:
        """The view of ``rows`` of this one (a new object; nothing is read)."""
        view = StreamedRows(self.source, self.sample_shape, self.index[np.asarray(rows)], self.loader)
        view.seed = self.seed + 1_000_003  # its own worker seeds
        return view

    def take(self, rows) -> Tensor:
        """``rows`` (of this view) read now, in the order given: float32 on the CPU."""
        rows = self.index[np.asarray(torch.as_tensor(rows).cpu(), dtype=np.int64)]
        if isinstance(self.source, MemmapRows):
            return self._checked(self.source.__getitems__(rows), rows)
        return self._checked(_inputs([self.source[int(i)] for i in rows]), rows)

    def batches(self, row_batches: Iterable, device: str | torch.device, kind: str = "train") -> Iterator[Tensor]:
        """The rows of each of ``row_batches`` (of this view), on ``device``, through a DataLoader."""
        batches = [self.index[np.asarray(torch.as_tensor(b).cpu(), dtype=np.int64)].tolist() for b in row_batches]
        options = dict(self.loader.get(kind, {}))
        pin = bool(options.get("pin_memory")) and torch.device(device).type == "cuda"
        options["pin_memory"] = pin
        # its own generator: a DataLoader draws its workers' base seed, which must not come from torch's
        # global one; a new seed for each pass, so that a dataset's random transforms differ between epochs
        self._passes += 1
        generator = torch.Generator().manual_seed((self.seed + self._passes) % 2**63)
        loader = DataLoader(self.source, batch_sampler=batches, collate_fn=self.collate, generator=generator,
                            **options)
        for rows, xb in zip(batches, loader):
            yield self._checked(xb, rows).to(device, non_blocking=pin)

    def in_order(self, sizes: Sequence[int], device: str | torch.device = "cpu") -> _OrderedBatches:
        """Consecutive batches of ``sizes`` rows, re-iterable (each pass reads the rows again)."""
        return _OrderedBatches(self, list(sizes), device)

    def _checked(self, xb: Tensor, rows) -> Tensor:
        if xb.shape[1:] != self.sample_shape:
            raise ValueError(f"X's rows have shape {tuple(xb.shape[1:])} where the first had {self.sample_shape}: "
                             "every sample of X needs the same shape.")
        if xb.dtype != torch.float32:
            xb = xb.float()
        if len(xb) and not torch.isfinite(torch.stack(torch.aminmax(xb))).all():  # one pass; NaN propagates
            bad = int(np.asarray(rows)[int((~torch.isfinite(xb.reshape(len(xb), -1))).any(1).nonzero()[0])])
            raise ValueError(f"X has NaN or infinite values (row {bad}).")
        return xb


class _OrderedBatches:
    def __init__(self, rows: StreamedRows, sizes: list[int], device):
        self.rows, self.sizes, self.device = rows, sizes, device

    def __len__(self) -> int:
        return len(self.sizes)

    def __iter__(self) -> Iterator[Tensor]:
        ends = np.cumsum(self.sizes)
        return self.rows.batches([np.arange(e - s, e) for s, e in zip(self.sizes, ends)], self.device, kind="valid")


def load_batches(X: Tensor | StreamedRows, row_batches: Sequence[Tensor], device) -> Iterator[Tensor]:
    """The rows of each of ``row_batches``: indexed from an in-memory tensor, or streamed to ``device``."""
    if isinstance(X, StreamedRows):
        return X.batches(row_batches, device)
    return (X[idx] for idx in row_batches)


def ordered_batches(X: Tensor | StreamedRows, sizes: Sequence[int], device=None) -> Iterable[Tensor]:
    """Consecutive batches of ``sizes`` rows (``X.split(sizes)`` for a tensor); re-iterable."""
    if isinstance(X, StreamedRows):
        return X.in_order(sizes, "cpu" if device is None else device)
    return X.split(list(sizes))


def take(X: Tensor | StreamedRows, rows) -> Tensor:
    """``X[rows]`` as a tensor, read now when ``X`` is streamed."""
    if isinstance(X, StreamedRows):
        return X.take(rows)
    return X[rows]


def is_streamed(X) -> bool:
    """Whether ``X`` is read a batch at a time: a numpy memmap or a torch map-style ``Dataset``."""
    return isinstance(X, (np.memmap, Dataset))


def streamed_input(X, y=None, *, loader: dict[str, dict[str, Any]], fit: bool) -> tuple[StreamedRows, Any]:
    """Check a memmap or ``Dataset`` and view it as :class:`StreamedRows`, reading only what the checks need.

    A memmap must be numeric, at least 2-D, with finite values (checked in chunks of about
    16 MB, never the whole array at once). A dataset must have a length; its items are
    inputs (or ``(input,)`` tuples, as ``TensorDataset(X)`` gives) with ``y``, or
    ``(input, target)`` tuples with ``y=None`` at ``fit`` (the targets are then read in one
    pass, which also checks the inputs). Returns the rows and ``y``
    (read from the dataset, or as given).
    """
    if isinstance(X, np.memmap):
        if X.ndim < 2:
            raise ValueError(f"X is a memmap of shape {X.shape}; it needs a sample per row: (n_samples, ...).")
        if X.dtype.kind not in "biuf":
            raise ValueError(f"X must hold numbers (it is cast to float32); the memmap has dtype {X.dtype}.")
        if len(X) == 0 or 0 in X.shape[1:]:
            raise ValueError(f"X is a memmap of shape {X.shape}, which holds no samples or no values per sample.")
        rows = StreamedRows(MemmapRows(X), X.shape[1:], loader=loader)
        chunk = max(1, (16 << 20) // max(X[:1].nbytes, 1))
        for start in range(0, len(rows), chunk) if fit else ():  # NaN or infinity, named by row, before training
            rows.take(np.arange(start, min(start + chunk, len(rows))))
    else:
        if isinstance(X, IterableDataset):
            raise ValueError(f"X is an IterableDataset ({type(X).__name__}); ESPRO needs a map-style Dataset, "
                             "whose rows it can shuffle.")
        if not hasattr(X, "__len__"):
            raise ValueError(f"X is a {type(X).__name__} without a length (an IterableDataset?); ESPRO needs a "
                             "map-style Dataset, whose rows it can shuffle.")
        if len(X) == 0:
            raise ValueError("X is an empty Dataset.")
        try:
            first = X[0]
        except NotImplementedError as exc:
            raise ValueError(f"X ({type(X).__name__}) cannot be indexed (X[0] failed); ESPRO needs a map-style "
                             "Dataset.") from exc
        if isinstance(first, tuple) and len(first) not in (1, 2):
            raise ValueError(f"X's items are tuples of {len(first)}; ESPRO takes inputs, (input,) or (input, target).")
        pairs = isinstance(first, tuple) and len(first) == 2
        if fit and y is None and not pairs:
            raise ValueError("X is a Dataset whose items are not (input, target) tuples, and y is None: pass y, "
                             "or a Dataset of (input, target) tuples.")
        if y is not None and pairs:
            raise ValueError("X is a Dataset of (input, target) pairs and y was passed too: pass y=None (the "
                             "targets come from X), or a Dataset of inputs alone.")
        try:
            sample = torch.as_tensor(first[0] if isinstance(first, tuple) else first, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"X's items must hold numbers (cast to float32): {exc}") from exc
        if sample.dim() == 0 or 0 in sample.shape:
            raise ValueError(f"X's first sample has shape {tuple(sample.shape)}; samples need at least one value "
                             "per row, (n_features,) or (channels, ...).")
        rows = StreamedRows(X, tuple(sample.shape), loader=loader)
        if fit and y is None:
            y = _read_targets(rows)
    if fit and y is None:
        raise ValueError("y is None: fit needs the targets, as y or as the second element of a Dataset's items.")
    if y is not None and not isinstance(y, str) and hasattr(y, "__len__") and len(y) != len(rows):
        raise ValueError(f"X has {len(rows)} samples but y has {len(y)}; they must have one label per sample.")
    return rows, y


def _pairs(items: list) -> tuple[Tensor, list]:
    return _inputs(items), [item[1] for item in items]


def _read_targets(rows: StreamedRows) -> np.ndarray:
    """The targets of a dataset of ``(input, target)`` pairs, in one pass that also checks the inputs."""
    targets = []
    options = {k: v for k, v in rows.loader.get("valid", {}).items() if k not in ("pin_memory", "pin_memory_device")}
    loader = DataLoader(rows.source, batch_size=1024, collate_fn=_pairs, generator=torch.Generator().manual_seed(0),
                        **options)
    for start, (xb, yb) in zip(range(0, len(rows), 1024), loader):
        rows._checked(xb, np.arange(start, start + len(xb)))
        targets.extend(t.item() if isinstance(t, Tensor) and t.numel() == 1 else
                       (t.numpy() if isinstance(t, Tensor) else t) for t in yb)
    return np.asarray(targets)


def as_rows(X: np.ndarray | StreamedRows, device: str | torch.device = "cpu") -> Tensor | StreamedRows:
    """A checked in-memory array as a tensor on ``device`` (sharing its memory on the CPU);
    streamed rows as they are (read batch by batch, moved to the device then)."""
    return X if isinstance(X, StreamedRows) else torch.as_tensor(X, device=device)
