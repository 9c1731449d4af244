"""The speed benchmark compares like with like."""

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_fit.py"


@pytest.fixture(scope="module")
def bench_fit():
    spec = importlib.util.spec_from_file_location("bench_fit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("model", ["new_model", "linear_model"])
def test_plain_loop_does_the_estimators_work(bench_fit, digits_split, model):
    # Same initial weights, batches, random starts and arithmetic: the same weights after
    # two epochs, so a timing difference is the estimator's own cost.
    X_train, _, y_train, _ = digits_split
    X, y = X_train[:200], y_train[:200]
    make_model = getattr(bench_fit, model)
    plain = bench_fit.plain_fit(X, y, 2, make_model=make_model)
    estimator = bench_fit.estimator_fit(X, y, 2, make_model=make_model).module_
    for p, q in zip(plain.parameters(), estimator.parameters()):
        assert torch.equal(p, q)
