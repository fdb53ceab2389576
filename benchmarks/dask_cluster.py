"""Wall time of one fit with n_jobs=1 against a dask.distributed cluster of 2 worker processes.

``ESPROClassifier(ConvNet1d, n_modes=4, n_vertices=3)`` with the library's defaults on
MNIST-1D (4000 series). The cluster (``LocalCluster(n_workers=2, threads_per_worker=1)``)
runs the four mode-and-simplex jobs through ``joblib.parallel_config(backend="dask")``;
the estimator's code is the same. Each round fits three times: ``n_jobs=1`` as a user
runs it (torch uses every core for one job), the cluster (one torch thread per worker,
dask's default), and ``n_jobs=1`` with one torch thread (the cluster's arithmetic, so
its predictions must match the cluster's); ratios are reported per round, so that both
sides of a ratio saw the same machine load. Cluster start-up is timed apart from the
fits. Needs the ``dask`` extra.

    python benchmarks/dask_cluster.py             # 2 pairs, about 3 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import time

import joblib
import numpy as np
import torch
from distributed import Client, LocalCluster

import datasets
from sklearn_espro import ConvNet1d, ESPROClassifier


def fit_seconds(data, n_jobs, seed: int) -> tuple[float, ESPROClassifier]:
    start = time.perf_counter()
    clf = ESPROClassifier(ConvNet1d, n_modes=4, n_vertices=3, n_jobs=n_jobs, random_state=seed).fit(data.X, data.y)
    return time.perf_counter() - start, clf


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args(argv)
    data = datasets.mnist1d(shift=False)
    start = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.run(lambda: __import__("sklearn_espro"))  # import torch in the workers before timing
        startup = time.perf_counter() - start
        rows = []
        threads = torch.get_num_threads()
        for i in range(args.pairs):
            local, clf_local = fit_seconds(data, 1, seed=i)
            with joblib.parallel_config(backend="dask"):
                remote, clf_remote = fit_seconds(data, -1, seed=i)
            torch.set_num_threads(1)
            single, clf_single = fit_seconds(data, 1, seed=i)
            torch.set_num_threads(threads)
            p_remote = clf_remote.predict_proba(data.X_test)
            gaps = [np.abs(c.predict_proba(data.X_test) - p_remote).max() for c in (clf_local, clf_single)]
            rows.append((local, remote, single, *gaps))
            print(f"round {i}: n_jobs=1 {local:.1f} s, cluster {remote:.1f} s, n_jobs=1 on 1 thread {single:.1f} s; "
                  f"max |p - p_cluster| {gaps[0]:.1e} and {gaps[1]:.1e}", flush=True)
    print(f"\ntorch {torch.__version__}, {threads} torch threads in this process, 1 per worker; "
          f"cluster start-up {startup:.1f} s (not in the fits)")
    print("| round | n_jobs=1 (s) | LocalCluster, 2 workers (s) | n_jobs=1, 1 thread (s) | n_jobs=1 / cluster "
          "| n_jobs=1 on 1 thread / cluster | max abs. difference of predict_proba from the cluster's: "
          "n_jobs=1 / n_jobs=1 on 1 thread |")
    print("|---|---|---|---|---|---|---|")
    for i, (local, remote, single, gap, gap_single) in enumerate(rows):
        print(f"| {i} | {local:.1f} | {remote:.1f} | {single:.1f} | {local / remote:.2f} | {single / remote:.2f} "
              f"| {gap:.1e} / {gap_single:.1e} |")
    ratios = np.array([(r[0] / r[1], r[2] / r[1]) for r in rows])
    print(f"| median | | | | {np.median(ratios[:, 0]):.2f} | {np.median(ratios[:, 1]):.2f} | |")


if __name__ == "__main__":
    main()
