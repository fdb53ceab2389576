"""Data larger than memory: ESPRO fitted on a numpy memmap against the same array in memory.

Writes a ``.npy`` file of ``--gib`` GiB (rows of 4,096 float32 features, 10 classes from a
random linear map of the features; written in chunks, never held whole), then, each in a
fresh process so that its peak resident memory (``ru_maxrss``) is its own:

- ``memmap``: ``ESPROClassifier(MLP).fit(np.load(path, mmap_mode="r"), y)``;
- ``memory``: the same after ``np.load(path)`` (the whole array in memory);
- ``workers``: the memmap again, read by ``--workers`` DataLoader worker processes
  (``iterator_train__num_workers``), so that reading overlaps training; the workers'
  peak resident memory is reported apart (the largest worker's).

Each process fits once (one simplex: two mode epochs, then a vertex of two epochs), timing
every epoch (skorch's ``dur`` for a mode's, the vertex loop's call for a vertex's), so
that an epoch's cost comes without the fixed costs (the memmap's check for NaN, the
in-memory path's copy of ``X``); then predicts on the first 100,000 rows. Prints a markdown
table; writes ``benchmarks/out/streaming.json``.

    python benchmarks/streaming.py --gib 6 --dir /tmp     # a quarter of a 24 GiB machine
    python benchmarks/streaming.py --gib 0.5              # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FEATURES, CLASSES, CHUNK = 4096, 10, 8192


def write(path: Path, gib: float) -> tuple[int, int]:
    """The data file (and its labels beside it), written chunk by chunk; returns (rows, bytes)."""
    n = int(gib * 2**30) // (FEATURES * 4)
    labels = path.with_suffix(".labels.npy")
    if path.exists() and labels.exists() and np.load(path, mmap_mode="r").shape == (n, FEATURES):
        return n, path.stat().st_size
    rng = np.random.RandomState(0)
    W = rng.randn(FEATURES, CLASSES).astype(np.float32) / np.sqrt(FEATURES)
    y = np.empty(n, dtype=np.int64)
    header = {"descr": "<f4", "fortran_order": False, "shape": (n, FEATURES)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, n, CHUNK):
            X = rng.randn(min(CHUNK, n - start), FEATURES).astype(np.float32)
            y[start:start + len(X)] = (X @ W + 0.5 * rng.randn(len(X), CLASSES)).argmax(1)
            X.tofile(f)
    np.save(labels, y)
    return n, path.stat().st_size


def child(kind: str, path: Path, workers: int = 0) -> dict:
    """One process's fits and prediction; its seconds and peak resident memory."""
    import torch
    from skorch.callbacks import Callback

    from sklearn_espro import MLP, ESPROClassifier
    from sklearn_espro._core import growing

    torch.set_num_threads(1)
    y = np.load(path.with_suffix(".labels.npy"))
    kw = dict(module=MLP, module__hidden_sizes=(32,), n_modes=1, batch_size=256, lr=0.05, random_state=0, device="cpu",
              iterator_train__num_workers=workers)
    ESPROClassifier(**kw, max_epochs=1, n_vertices=1).fit(np.zeros((512, FEATURES), np.float32), y[:512])  # warm up
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    X = np.load(path) if kind == "memory" else np.load(path, mmap_mode="r")
    load = time.perf_counter() - start
    epochs = {"mode": [], "vertex": []}

    class ModeEpochs(Callback):  # skorch's own timing of each mode epoch
        def on_epoch_end(self, net, **kwargs):
            epochs["mode"].append(net.history[-1, "dur"])

    run_epoch = growing.run_epoch

    def timed(*args, **kwargs):  # each vertex epoch, timed where the loop calls it
        start = time.perf_counter()
        out = run_epoch(*args, **kwargs)
        epochs["vertex"].append(time.perf_counter() - start)
        return out

    growing.run_epoch = timed
    start = time.perf_counter()
    clf = ESPROClassifier(**kw, max_epochs=2, n_vertices=2, vertex_epochs=2, callbacks=[ModeEpochs()]).fit(X, y)
    seconds = {"fit: 2 mode epochs, 2 vertex epochs": time.perf_counter() - start}
    start = time.perf_counter()
    accuracy = float((clf.predict(X[:100_000]) == y[:100_000]).mean())
    seconds["predict 100,000 rows"] = time.perf_counter() - start
    return {"kind": kind, "load_s": load, "seconds": seconds, "epochs": epochs, "accuracy": accuracy, "baseline_rss": base,
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "worker_peak_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=6.0)
    parser.add_argument("--dir", type=Path, default=Path("/tmp"))
    parser.add_argument("--child", choices=["memmap", "memory", "workers"])
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers of the third run")
    parser.add_argument("--keep", action="store_true", help="keep the data file")
    args = parser.parse_args()
    path = args.dir / f"espro_streaming_{args.gib:g}gib.npy"
    if args.child:
        print(json.dumps(child(args.child, path, args.workers if args.child == "workers" else 0)))
        return
    start = time.perf_counter()
    n, size = write(path, args.gib)
    print(f"{n:,} rows x {FEATURES} float32 = {size / 2**30:.2f} GiB written in {time.perf_counter() - start:.0f} s",
          flush=True)
    runs = {}
    for kind in ("memmap", "memory", "workers"):
        out = subprocess.run([sys.executable, __file__, "--gib", str(args.gib), "--dir", str(args.dir),
                              "--child", kind, "--workers", str(args.workers)], capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        runs[kind] = json.loads(out.stdout.strip().splitlines()[-1])
        print(kind, runs[kind], flush=True)
    if not args.keep:
        path.unlink()
        path.with_suffix(".labels.npy").unlink()
    m, a, w = runs["memmap"], runs["memory"], runs["workers"]
    gib = 2**30
    lines = [f"{n:,} rows x {FEATURES} float32 features ({size / gib:.2f} GiB), MLP (32 hidden), batch 256, one "
             "CPU thread each; epochs: the second of each kind (the first warms up)\n",
             f"| | memmap | memmap, {args.workers} loader worker(s) | in memory | memmap / in memory | "
             "with workers / in memory |", "|---|---|---|---|---|---|"]
    for kind in ("mode", "vertex"):
        e = {k: r["epochs"][kind][-1] for k, r in runs.items()}
        lines.append(f"| a {kind} epoch (s) | {e['memmap']:.1f} | {e['workers']:.1f} | {e['memory']:.1f} | "
                     f"{e['memmap'] / e['memory']:.2f} | {e['workers'] / e['memory']:.2f} |")
    for k in m["seconds"]:
        lines.append(f"| {k} (s) | {m['seconds'][k]:.1f} | {w['seconds'][k]:.1f} | {a['seconds'][k]:.1f} | "
                     f"{m['seconds'][k] / a['seconds'][k]:.2f} | {w['seconds'][k] / a['seconds'][k]:.2f} |")
    lines += [f"| loading the array (s) | {m['load_s']:.1f} | {w['load_s']:.1f} | {a['load_s']:.1f} | | |",
              f"| peak resident memory (GiB) | {m['peak_rss'] / gib:.2f} | {w['peak_rss'] / gib:.2f} | "
              f"{a['peak_rss'] / gib:.2f} | | |",
              f"| largest loader worker's peak (GiB) | | {w['worker_peak_rss'] / gib:.2f} | | | |",
              f"| of which before loading (GiB) | {m['baseline_rss'] / gib:.2f} | {w['baseline_rss'] / gib:.2f} | "
              f"{a['baseline_rss'] / gib:.2f} | | |",
              f"| accuracy on the first 100,000 rows | {m['accuracy']:.4f} | {w['accuracy']:.4f} | "
              f"{a['accuracy']:.4f} | | |"]
    table = "\n".join(lines)
    print(table)
    out = ROOT / "benchmarks" / "out" / "streaming.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": n, "bytes": size, "runs": runs, "table": table}, indent=1))


if __name__ == "__main__":
    main()
