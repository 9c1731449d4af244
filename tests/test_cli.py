"""The command line: demo, train, evaluate, and their errors."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, make_classification

from srat_sklearn import SRATClassifier
from srat_sklearn.cli import build_parser, main
from srat_sklearn.datasets import load_digits_images


def test_demo_prints_table_and_writes_report(tmp_path, capsys):
    main(["demo", "--max-epochs", "1", "--output", str(tmp_path / "out"), "--no-progress"])
    printed = capsys.readouterr().out
    for method in ("NT", "AT", "AT-DRW", "SRAT-CE"):
        assert f"| {method} |" in printed
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| SRAT-CE |" in report and "robust under" in report
    png = (tmp_path / "out" / "accuracy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "out" / "report.json").exists()


@pytest.mark.parametrize("args", [["demo", "--max-epochs", "0"], ["demo", "--epsilon", "-1"],
                                  ["demo", "--max-epochs", "many"], ["fly"], []])
def test_bad_arguments_exit_2_with_one_line(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("srat-sklearn") and "error:" in err


def test_console_process_exits_2():
    result = subprocess.run([sys.executable, "-m", "srat_sklearn.cli", "demo", "--epsilon", "x"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1


def test_unusable_output_path_exits_2_before_training(tmp_path, capsys):
    blocker = tmp_path / "report"
    blocker.write_text("a file where the report folder should go")
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--output", str(blocker), "--no-progress"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "demo: error:" in captured.err
    assert "Training" not in captured.out


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    """``srat-sklearn train`` on digits for 2 epochs, saved in a folder."""
    folder = tmp_path_factory.mktemp("model")
    main(["train", "--data", "digits", "--max-epochs", "2", "--output", str(folder),
          "--no-progress", "--eval-steps", "5"])
    return folder


def test_train_saves_model_params_and_report(trained_model):
    names = {p.name for p in trained_model.iterdir()}
    assert {"model.pkl", "params.pt", "history.json", "config.json", "report.md",
            "report.json", "accuracy.png"} <= names
    config = json.loads((trained_model / "config.json").read_text())
    assert config["data"] == "digits" and config["epsilon"] == 0.2
    assert config["train_counts"]["9"] < config["train_counts"]["0"]  # step:10 by default


def test_train_with_progress_bar_saves_a_loadable_pickle(tmp_path):
    main(["train", "--data", "breast-cancer", "--max-epochs", "1", "--eval-steps", "2",
          "--output", str(tmp_path)])  # the progress bar is on: not --no-progress
    with open(tmp_path / "model.pkl", "rb") as f:
        model = pickle.load(f)
    assert model.predict(load_breast_cancer(return_X_y=True)[0][:5]).shape == (5,)


def test_saved_params_load_into_a_new_estimator(trained_model):
    with open(trained_model / "model.pkl", "rb") as f:
        model = pickle.load(f)
    new = SRATClassifier(classes=model.classes_, input_shape=(1, 8, 8), bounds=(0.0, 1.0))
    new.initialize().load_params(f_params=trained_model / "params.pt")
    X, _ = load_digits_images()
    assert np.array_equal(new.predict_proba(X[:20]), model.predict_proba(X[:20]))


def test_evaluate_reproduces_the_training_report(trained_model, capsys):
    main(["evaluate", str(trained_model), "--eval-steps", "5"])
    printed = capsys.readouterr().out
    saved = json.loads((trained_model / "report.json").read_text())
    clean = next(iter(saved["reports"].values()))["groups"]["overall"]["clean"]
    assert f"| overall | {100 * clean:.1f} |" in printed


def test_train_on_npz_with_tabular_data(tmp_path, capsys):
    X, y = make_classification(n_samples=150, n_features=6, n_informative=4, n_classes=3,
                               random_state=0)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    main(["train", "--data", str(tmp_path / "data.npz"), "--method", "at-drw",
          "--imbalance", "exp:5", "--max-epochs", "2", "--optimizer", "adam",
          "--output", str(tmp_path / "out"), "--no-progress", "--eval-steps", "3"])
    with open(tmp_path / "out" / "model.pkl", "rb") as f:
        model = pickle.load(f)
    assert [name for name, _ in model.steps] == ["standardscaler", "sratclassifier"]
    assert model[-1].lambda_sep == 0.0
    assert "| overall |" in capsys.readouterr().out


def test_train_on_cifar10_files(cifar_root, tmp_path, capsys):
    main(["train", "--data", "cifar10", "--data-root", str(cifar_root), "--imbalance", "none",
          "--max-epochs", "1", "--batch-size", "10", "--output", str(tmp_path / "out"),
          "--no-progress", "--eval-steps", "2"])
    assert "Trained SRAT-CE on cifar10 (20 training samples)" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "mnist"], "--data"),
    (["train", "--data", "digits", "--imbalance", "step"], "--imbalance"),
    (["train", "--data", "digits", "--imbalance", "step:0.5"], "--imbalance"),
    (["train", "--data", "digits", "--reweight-epoch", "1.5"], "--reweight-epoch"),
    (["train", "--data", "digits", "--test-size", "1"], "--test-size"),
    (["train", "--data", "digits", "--method", "srat-ldam"], "--method"),
    (["train"], "--data"),
    (["evaluate"], "model"),
])
def test_bad_train_and_evaluate_arguments(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "cifar10", "--data-root", "{tmp}"], "download=True"),
    (["train", "--data", "{tmp}/missing.npz"], "No such file"),
    (["train", "--data", "{tmp}/bad.npz"], "must hold arrays X and y"),
    (["train", "--data", "digits", "--under", "42"], "under_represented"),
    (["evaluate", "{tmp}"], "No model"),
    (["train", "--data", "digits", "--n-queries", "10"], "n_queries applies to square"),
    (["train", "--data", "digits", "--attack", "square", "--n-targets", "3"],
     "n_targets applies"),
    (["train", "--data", "digits", "--audit", "--eval-steps", "2"], "at least 4"),
    (["evaluate", "{tmp}", "--attack", "apgd-ce", "--n-queries", "5"], "n_queries applies"),
])
def test_runtime_errors_exit_2_with_one_line(tmp_path, args, message, capsys):
    np.savez(tmp_path / "bad.npz", features=np.zeros((4, 2)))
    args = [a.format(tmp=tmp_path) for a in args]
    if args[0] == "train":
        args += ["--output", str(tmp_path / "out"), "--no-progress"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and message in captured.err
    assert "Trained" not in captured.out  # refused before any training


def test_evaluate_with_autoattack_and_the_audit(trained_model, tmp_path, capsys):
    main(["evaluate", str(trained_model), "--attack", "autoattack", "--eval-steps", "4",
          "--n-queries", "20", "--n-targets", "2", "--audit", "--no-progress",
          "--output", str(tmp_path)])
    printed = capsys.readouterr().out
    assert ("Attack: AutoAttack, standard (APGD-CE, APGD-T, FAB-T, Square): 4 iterations, "
            "2 target classes, 20 queries") in printed
    assert "Robustness audit:" in printed and "| white-box at least as strong" in printed
    assert (tmp_path / "audit.md").read_text().startswith("Robustness audit:")
    assert "AutoAttack" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("command", ["demo", "train", "evaluate"])
def test_help_gives_every_option_a_text_and_default(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    parser = build_parser()
    subparser = parser._subparsers._group_actions[0].choices[command]
    for action in subparser._actions:
        if action.dest == "help" or action.required or not action.option_strings:
            continue
        assert action.help, action.dest
        flag = action.default is False
        text = subparser._get_formatter()._get_help_string(action)
        assert flag or "default" in text, action.dest
