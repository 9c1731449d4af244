"""The benchmarks compare like with like, and the docs show what they measured."""

import importlib.util
import json
import subprocess
import sys
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


AUTOATTACK = SCRIPT.with_name("autoattack_eval.py")


@pytest.fixture(scope="module")
def autoattack_eval():
    spec = importlib.util.spec_from_file_location("autoattack_eval", AUTOATTACK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_autoattack_tables_in_the_docs_come_from_the_runs_file(autoattack_eval):
    runs = AUTOATTACK.with_name("autoattack.jsonl")
    for path, text in autoattack_eval.generated_docs(runs).items():
        assert path.read_text() == text, (
            f"{path.name} differs from its runs file: python benchmarks/autoattack_eval.py "
            "--write-docs")


def test_autoattack_benchmark_runs_end_to_end(tmp_path):
    output = tmp_path / "runs.jsonl"
    subprocess.run([sys.executable, str(AUTOATTACK), "--smoke", "--models", "suite", "--norms",
                    "linf", "--output", str(output)], check=True, capture_output=True)
    (record,) = [json.loads(line) for line in output.read_text().splitlines()]
    assert set(record["attacks"]) == {"pgd-20", "apgd-ce", "apgd-t", "fab-t", "square",
                                      "autoattack"}
    assert record["autoattack_settings"].startswith("AutoAttack, standard")
