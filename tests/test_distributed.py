"""ESPRO's jobs on a dask.distributed cluster through joblib, without code changes."""

import numpy as np
import pytest
import torch

from sklearn_espro import ESPROClassifier

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")
pytestmark = pytest.mark.slow  # starts a two-process dask cluster


def _estimator(n_jobs):
    return ESPROClassifier(n_modes=2, n_vertices=2, max_epochs=3, vertex_epochs=2, batch_size=50,
                           module__hidden_sizes=(32,), n_jobs=n_jobs, random_state=0)


def test_local_cluster_of_two_workers_fits_like_one_process(digits):
    X, y, X_test, _ = digits
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the arithmetic of a dask worker (one torch thread), for exact equality
    try:
        local = _estimator(n_jobs=1).fit(X, y)
    finally:
        torch.set_num_threads(threads)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        scattered = []
        scatter = client.scatter

        def counting_scatter(data, *args, **kwargs):
            scattered.extend(data if isinstance(data, list) else [data])
            return scatter(data, *args, **kwargs)

        client.scatter = counting_scatter
        with distributed.get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
            remote = _estimator(n_jobs=-1).fit(X, y)
        client.scatter = scatter
        workers = {task["worker"] for task in stream.data}
        addresses = set(client.scheduler_info()["workers"])
    assert workers and workers <= addresses  # the simplexes trained on the cluster's worker processes
    print(f"tasks ran on {len(workers)} of {len(addresses)} workers: {sorted(t['key'] for t in stream.data)}")
    # the training data went to the cluster once, not once per job
    assert sum(isinstance(a, np.ndarray) and a.shape == X.shape for a in scattered) == 1
    for s in remote.simplexes_:
        assert all(v.device == torch.device("cpu") for v in s.vertices.values())
    np.testing.assert_allclose(remote.log_volumes_, local.log_volumes_, rtol=1e-6)
    for a, b in zip(remote.simplexes_, local.simplexes_):
        torch.testing.assert_close(a.flat_vertices(), b.flat_vertices(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(remote.predict_proba(X_test), local.predict_proba(X_test), atol=1e-6)
    np.testing.assert_array_equal(remote.predict(X_test), local.predict(X_test))
