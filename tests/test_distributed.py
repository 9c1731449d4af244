"""Beyond one process: a Dask search on a 2-worker LocalCluster and a 2-process DDP fit."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from imblearn.over_sampling import RandomOverSampler
from imblearn.pipeline import make_pipeline
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, StratifiedKFold
from sklearn.preprocessing import StandardScaler

from srat_sklearn import SRATClassifier
from srat_sklearn.metrics import make_group_scorer, make_robust_scorer

distributed = pytest.importorskip("distributed")
pytest.importorskip("accelerate")

DDP_SCRIPT = Path(__file__).with_name("ddp_fit.py")


@pytest.fixture(scope="module")
def dask_client():
    from distributed import Client, LocalCluster

    environ = dict(os.environ)
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            yield client
    finally:
        # distributed sets OMP_NUM_THREADS=1 and MKL_NUM_THREADS=1 in this process's
        # environment for its workers; later subprocesses of the suite must not inherit them.
        os.environ.clear()
        os.environ.update(environ)


def search_pipeline():
    return make_pipeline(StandardScaler(), RandomOverSampler(random_state=0), SRATClassifier(
        max_epochs=3, epsilon=0.1, n_steps=2, random_state=0, verbose=0,
        module__hidden_units=(16,)))


SCORING = {"clean": "balanced_accuracy",
           "robust": make_robust_scorer(balanced_accuracy_score, epsilon=0.1, n_steps=5,
                                        random_start=False),
           # Fixed group: after oversampling no class is below the median count.
           "robust_under": make_group_scorer("under", under_represented=[2], epsilon=0.1,
                                             n_steps=5, random_start=False)}


@pytest.mark.parametrize("search_class, space", [
    (GridSearchCV, {"sratclassifier__lambda_sep": [0.0, 1.0],
                    "sratclassifier__class_weight": [None, "balanced"]}),
    (RandomizedSearchCV, {"sratclassifier__lambda_sep": [0.0, 0.5, 1.0, 2.0],
                          "sratclassifier__temperature": [0.05, 0.1, 0.5]}),
])
def test_dask_search_equals_the_serial_search(dask_client, tabular, search_class, space):
    from joblib import parallel_backend

    X, y = tabular
    extra = {"n_iter": 4, "random_state": 0} if search_class is RandomizedSearchCV else {}

    def search(n_jobs):
        return search_class(search_pipeline(), space, scoring=SCORING, refit="robust",
                            cv=StratifiedKFold(3), n_jobs=n_jobs, **extra)

    # Float sums depend on torch's thread count: compare with the workers' one thread.
    torch.set_num_threads(1)
    serial = search(1).fit(X, y)
    torch.set_num_threads(2)
    with parallel_backend("dask"):
        on_cluster = search(-1).fit(X, y)
    assert on_cluster.best_params_ == serial.best_params_
    for name in SCORING:
        assert np.all(np.isfinite(serial.cv_results_[f"mean_test_{name}"]))
        key = f"split0_test_{name}"
        np.testing.assert_array_equal(on_cluster.cv_results_[key], serial.cv_results_[key])
        np.testing.assert_array_equal(on_cluster.cv_results_[f"mean_test_{name}"],
                                      serial.cv_results_[f"mean_test_{name}"])


def test_dask_search_ran_on_both_workers(dask_client, tabular):
    from distributed import get_task_stream
    from joblib import parallel_backend

    X, y = tabular
    with get_task_stream(dask_client) as stream, parallel_backend("dask"):
        GridSearchCV(search_pipeline(), {"sratclassifier__lambda_sep": [0.0, 1.0]},
                     scoring=SCORING["robust"], cv=StratifiedKFold(2), n_jobs=-1).fit(X, y)
    assert len({task["worker"] for task in stream.data}) == 2


def run_ddp_fit(out_dir, n_processes, weight_normalization):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if n_processes == 1:
        command = [sys.executable, str(DDP_SCRIPT), "single", str(out_dir)]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={n_processes}", str(DDP_SCRIPT), "ddp", str(out_dir)]
    result = subprocess.run(command + [weight_normalization], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(n_processes)]


def single_and_ddp_runs(tmp_path_factory, weight_normalization):
    single = run_ddp_fit(tmp_path_factory.mktemp("single"), 1, weight_normalization)[0]
    ranks = run_ddp_fit(tmp_path_factory.mktemp("ddp"), 2, weight_normalization)
    return single, ranks


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    """One process and two on the defaults (the class-weighted loss divided by the weights)."""
    return single_and_ddp_runs(tmp_path_factory, "weights")


@pytest.fixture(scope="module")
def ddp_runs_samples(tmp_path_factory):
    """As ``ddp_runs``, with the paper's class-weighted loss averaged over the samples."""
    return single_and_ddp_runs(tmp_path_factory, "samples")


def test_ddp_runs_two_processes(ddp_runs):
    _, ranks = ddp_runs
    assert [r["world_size"] for r in ranks] == [2, 2]


@pytest.mark.parametrize("runs", ["ddp_runs", "ddp_runs_samples"])
def test_ddp_losses_match_one_process_on_the_global_batch(request, runs):
    # Each process logs the class-weighted loss of its half plus the separation loss of the
    # gathered global batch; their mean is the single-process loss of the whole batch. Equal
    # losses at every step of every epoch (before and after the reweighting switch at
    # epoch 2) also mean equal gradients and parameters all along. Regression: divided by
    # the weights, each half was divided by its own mean weight, not the global batch's.
    single, ranks = request.getfixturevalue(runs)
    for epoch, losses in enumerate(single["losses"]):
        mean = (np.array(ranks[0]["losses"][epoch]) + np.array(ranks[1]["losses"][epoch])) / 2
        np.testing.assert_allclose(mean, losses, rtol=1e-5, atol=1e-5)


def test_ddp_class_weights_come_from_the_whole_training_set(ddp_runs):
    single, ranks = ddp_runs
    for rank in ranks:
        assert rank["class_counts"] == single["class_counts"]
        assert sum(rank["class_counts"]) == 512  # both halves of every batch
        np.testing.assert_allclose(rank["class_weights"], single["class_weights"], rtol=1e-6)


def test_ddp_reweighting_switch_lowers_lr_on_every_process(ddp_runs):
    single, ranks = ddp_runs
    assert single["lr"] == pytest.approx([0.005])
    assert all(rank["lr"] == pytest.approx(single["lr"]) for rank in ranks)


def test_ddp_robust_validation_is_gathered(ddp_runs):
    # Per-process scores on half of the 128 validation rows would differ between ranks
    # and from the single-process scores.
    single, ranks = ddp_runs
    for rank in ranks:
        np.testing.assert_allclose(rank["valid_robust_acc"], single["valid_robust_acc"])


def test_ddp_robust_accuracy_after_each_attack_is_gathered(ddp_runs):
    # Each process attacks its share of the test set; the report counts all of it.
    single, ranks = ddp_runs
    for rank in ranks:
        assert rank["robust_after"][-1] == pytest.approx(rank["robust"])
        np.testing.assert_allclose(rank["robust_after"], single["robust_after"], atol=0.01)


def test_ddp_fit_reaches_the_same_accuracy(ddp_runs):
    single, ranks = ddp_runs
    assert single["test_accuracy"] > 0.5
    for rank in ranks:
        assert rank["test_accuracy"] == pytest.approx(single["test_accuracy"], abs=0.01)


def test_ddp_refuses_reused_perturbations(tabular):
    from srat_sklearn.distributed import AcceleratedSRATClassifier

    X, y = tabular
    clf = AcceleratedSRATClassifier(accelerator=None, device=None, reuse_perturbations=True,
                                    max_epochs=1, verbose=0)
    with pytest.raises(ValueError, match="reuse_perturbations=True is not supported"):
        clf.fit(X, y)
    assert not clf.initialized_


def test_accelerated_fit_runs_on_one_process(tabular):
    # The common single-GPU use (Accelerator(mixed_precision=...)): Accelerate could not
    # prepare the loader of whole-batch reads on one process.
    from accelerate import Accelerator

    from srat_sklearn.distributed import AcceleratedSRATClassifier

    X, y = tabular
    clf = AcceleratedSRATClassifier(accelerator=Accelerator(cpu=True), device=None, max_epochs=1,
                                    n_steps=2, verbose=0).fit(X, y)
    assert len(clf.history) == 1 and clf.predict(X).shape == y.shape


def test_accelerated_compiled_fit_ends_with_the_eager_weights(tabular):
    from accelerate import Accelerator

    from srat_sklearn.distributed import AcceleratedSRATClassifier

    X, y = tabular
    params = dict(device=None, max_epochs=2, epsilon=0.3, n_steps=2, random_state=0, verbose=0,
                  reweight_epoch=0.5)
    eager = AcceleratedSRATClassifier(accelerator=Accelerator(cpu=True), **params).fit(X, y)
    compiled = AcceleratedSRATClassifier(accelerator=Accelerator(cpu=True), compile=True,
                                         compile__backend="eager", **params).fit(X, y)
    assert compiled._compiled_steps().failure is None  # it ran compiled, not after a fallback
    for (name, p), q in zip(eager.module_.state_dict().items(),
                            compiled.module_.state_dict().values()):
        torch.testing.assert_close(q, p, rtol=0, atol=0, msg=name)
