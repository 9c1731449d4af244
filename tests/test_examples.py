"""Every example runs as a new user would run it: ``python examples/NAME.py`` from any folder."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name, cwd, *args):
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd,
                            capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_every_example_is_tested():
    tested = {"quickstart_digits.py", "tabular_smote_pipeline.py", "grid_search_tradeoff.py",
              "images_resnet18.py", "theory_gaussian_mixture.py", "tabular_fraud_like.py",
              "real_data_baselines.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_example_has_a_docstring_with_its_command(name):
    text = (EXAMPLES / name).read_text()
    assert text.startswith('"""') and f"python examples/{name}" in text


def test_quickstart(tmp_path):
    out = run_example("quickstart_digits.py", tmp_path)
    assert "robust accuracy (PGD-20)" in out
    assert "the worst case of PGD, APGD-CE, APGD-DLR: 20 iterations" in out
    assert "| under |" in out


def test_tabular_smote_pipeline(tmp_path):
    out = run_example("tabular_smote_pipeline.py", tmp_path)
    assert "geometric mean: clean" in out
    assert "Adversarial inputs" in out and "malignant" in out


def test_tabular_fraud_like(tmp_path):
    out = run_example("tabular_fraud_like.py", tmp_path)
    assert out.count("robust balanced accuracy") == 4 and "best: {" in out
    assert "2 of 12 features perturbable" in out  # amount and hour, carried through
    assert "AutoAttack" in out and "| under |" in out


def test_real_data_baselines(tmp_path):
    out = run_example("real_data_baselines.py", tmp_path)
    assert "the attacker moves ['age', 'TSH', 'T3', 'TT4', 'T4U', 'FTI', 'TBG']" in out
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ")][1:]
    assert [row[0].strip() for row in rows] == ["SRAT-W", "AT-BSL", "TRADES"]
    assert all(0 <= float(value) <= 100 for row in rows for value in row[1:])
    assert "AutoAttack, standard" in out and "7 of 25 features perturbable" in out


def test_grid_search_tradeoff(tmp_path):
    out = run_example("grid_search_tradeoff.py", tmp_path)
    assert "best: {" in out
    assert (tmp_path / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_images_resnet18_on_the_stand_in(tmp_path):
    out = run_example("images_resnet18.py", tmp_path)
    assert "tiny stand-in" in out and "| overall |" in out


def test_images_resnet18_on_cifar10_files(tmp_path, cifar_root, capsys):
    # The real-data branch, on the small CIFAR-10 files of the fixture. The fixture's
    # integrity patch does not reach a subprocess, so the example runs in this process.
    import runpy
    argv = sys.argv
    sys.argv = ["images_resnet18.py", "--data-root", str(cifar_root), "--epochs", "1"]
    try:
        runpy.run_path(str(EXAMPLES / "images_resnet18.py"), run_name="__main__")
    finally:
        sys.argv = argv
    out = capsys.readouterr().out
    assert "stand-in" not in out and "PGD: 20 steps" in out and "| overall |" in out


@pytest.fixture(scope="module")
def theory(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("theory")
    stdout = run_example("theory_gaussian_mixture.py", out_dir, "--means", "0.5", "1.0")
    figures = json.loads((out_dir / "theory.json").read_text())
    return stdout, figures, out_dir


def test_theory_trained_models_match_the_closed_form(theory):
    _, figures, _ = theory
    for row in figures["rows"]:
        assert row["price_measured"] == pytest.approx(row["price_closed_form"], abs=0.05), row


@pytest.mark.parametrize("source", ["price_measured", "price_closed_form"])
def test_theory_reweighting_costs_more_under_at(theory, source):
    _, figures, _ = theory
    price = {(r["mean"], r["method"]): r[source] for r in figures["rows"]}
    for mean in (0.5, 1.0):
        assert price[mean, "AT"] > price[mean, "NT"]
    # Less separation, higher price.
    assert price[0.5, "NT"] > price[1.0, "NT"] and price[0.5, "AT"] > price[1.0, "AT"]


def test_theory_price_climbs_faster_under_at(theory):
    stdout, figures, out_dir = theory
    assert all(at > nt > 0 for nt, at in zip(figures["slopes"]["NT"], figures["slopes"]["AT"]))
    assert (out_dir / "theory.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "closed form" in stdout
