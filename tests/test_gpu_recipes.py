"""The GPU recipes run end to end on their tiny stand-in data (``--stand-in``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_recipes.py"


def test_lists_the_four_recipes():
    out = subprocess.run([sys.executable, str(SCRIPT), "--list"], capture_output=True,
                         text=True, check=True).stdout
    for name in ("cifar10-step10", "cifar10-step100", "svhn-step10", "svhn-step100"):
        assert name in out


@pytest.mark.parametrize("recipe, method", [("cifar10-step10", "srat"), ("svhn-step100", "at")])
def test_recipe_runs_on_the_stand_in(tmp_path, recipe, method):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), recipe, "--method", method, "--stand-in",
         "--device", "cpu", "--output", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "epoch 1:" in result.stdout and "(worst case)" in result.stdout
    settings = json.loads((tmp_path / "out" / "settings.json").read_text())
    assert settings["recipe"] == recipe and settings["stand-in"] is True
    assert {"report.md", "report.json", "params.pt"} <= {p.name for p in
                                                       (tmp_path / "out").iterdir()}


def test_count_flops_of_one_real_training_step():
    out = subprocess.run([sys.executable, str(SCRIPT), "cifar10-step10", "--count-flops"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "2"}).stdout
    # 5 classes x 5000 + 5 classes x 500 images; ResNet-18 at 32x32 is ~1.1 GFLOP forward, and
    # PGD-10 training is 10 x (forward + input backward) + forward + full backward.
    assert "27500 images" in out
    gflop = float(out.split(" GFLOP per training image")[0].split()[-1])
    assert 20 < gflop < 30
