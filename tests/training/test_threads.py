"""base.threads caps OpenMP and BLAS, not only torch."""

from __future__ import annotations

import os

import repo_params
from threadpoolctl import threadpool_info, threadpool_limits

from reprotrain.training.fitting import configure_threads


def test_base_threads_caps_every_loaded_thread_pool(monkeypatch) -> None:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)  # restored after the test
    with threadpool_limits(limits=None):  # restores the test process's limits afterwards
        configure_threads(repo_params.parse("base", {"threads": 1}))
        pools = threadpool_info()
        assert any(pool["user_api"] == "openmp" for pool in pools)  # scikit-learn's OpenMP
        assert {pool["num_threads"] for pool in pools} == {1}
        assert os.environ["OMP_NUM_THREADS"] == "1"


def test_random_forest_workers_follow_base_threads(monkeypatch) -> None:
    from reprotrain.models.model import SklearnModel

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # recorded: the test's value goes afterwards
    monkeypatch.delenv("OMP_NUM_THREADS")
    train = repo_params.parse("train", {"model": "random_forest"})
    forest = SklearnModel.from_params(train, "classification", 2, seed=0).estimator[-1]
    assert forest.n_jobs == 1  # nothing set a cap
    with threadpool_limits(limits=None):
        configure_threads(repo_params.parse("base", {"threads": 2}))
        forest = SklearnModel.from_params(train, "classification", 2, seed=0).estimator[-1]
    assert forest.n_jobs == 2
