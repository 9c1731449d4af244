"""The redesign: defects that stay fixed, arrows that point down, modules that stay small."""

import importlib
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch import nn

from srat_sklearn import SRATClassifier
from srat_sklearn.callbacks import CatastrophicOverfittingGuard
from srat_sklearn.methods import METHODS, PAPER_METHODS

PACKAGE = Path(__file__).resolve().parents[1] / "srat_sklearn"


# ----------------------------------------------------------------- the review's defects

def test_clone_of_a_fitted_estimator_with_the_guard(tabular, fast_params):
    # Regression: the guard's state (_batch, _best_state) looked like constructor parameters
    # to skorch, and clone() failed with "unexpected keyword argument '_batch'".
    guard = CatastrophicOverfittingGuard(n_samples=16, n_steps=2)
    clf = SRATClassifier(**fast_params, callbacks=[("guard", guard)]).fit(*tabular)
    copy = clone(clf)
    assert copy.callbacks[0][1].get_params() == guard.get_params()
    copy.fit(*tabular)


@pytest.mark.parametrize("given, estimator, match", [
    ({"criterion__loss": "ldam"}, {}, "criterion__loss='ldam' contradicts loss='ce'"),
    ({"criterion__focal_gamma": 3.0}, {"loss": "focal"}, "criterion__focal_gamma"),
    ({"criterion__ldam_scale": 30.0}, {"loss": "ldam"}, "criterion__ldam_scale"),
])
def test_criterion_options_have_one_source_of_truth(tabular, fast_params, given, estimator,
                                                    match):
    # Regression: criterion__loss="ldam" trained LDAM with zero margins, and
    # criterion__focal_gamma silently overrode focal_gamma.
    with pytest.raises(ValueError, match=match):
        SRATClassifier(**fast_params, **estimator, **given).fit(*tabular)


@pytest.mark.parametrize("normalization", ["samples", "weights"])
def test_weight_normalization_reaches_the_criterion(tabular, fast_params, normalization):
    clf = SRATClassifier(**fast_params, weight_normalization=normalization).fit(*tabular)
    assert clf.criterion_.weight_normalization == normalization


def test_defaults_are_the_recommended_configuration():
    # The defaults were chosen on the study's validation twins (docs/results.md).
    params = SRATClassifier().get_params()
    assert {key: params[key] for key in METHODS["SRAT-W"]} == METHODS["SRAT-W"]


@pytest.mark.parametrize("method", [name for name, params in PAPER_METHODS.items()
                                    if params["class_weight"] is not None])
def test_paper_methods_keep_the_papers_weighted_loss(method):
    # Regression: the defaults' weights-normalised loss must not turn the paper's methods
    # (and the study's records of them) into something else.
    assert SRATClassifier(**PAPER_METHODS[method]).weight_normalization == "samples"


def test_criterion_options_that_agree_are_accepted(tabular, fast_params):
    clf = SRATClassifier(**fast_params, loss="ldam", criterion__loss="ldam").fit(*tabular)
    assert clf.criterion_.loss == "ldam" and torch.all(clf.criterion_.margins > 0)


def test_write_report_keeps_the_callers_matplotlib_backend(trained_digits, digits_split,
                                                          tmp_path):
    # Regression: write_report called matplotlib.use("Agg").
    from srat_sklearn import robust_report
    from srat_sklearn.report import write_report
    _, X_test, _, y_test = digits_split
    report = robust_report(trained_digits, X_test[:50], y_test[:50], epsilon=0.0, verbose=0)
    original = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        write_report({"SRAT": report}, tmp_path)
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(original)
    assert (tmp_path / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class BatchNormMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU())
        self.head = nn.Linear(16, 3)

    def forward(self, X):
        return self.head(self.body(X))


@pytest.mark.parametrize("views", ["adversarial", "adversarial+clean"])
def test_batchnorm_statistics_move_once_per_step(tabular, views):
    # Regression: the clean view's forward pass updated the running statistics a second time.
    clf = SRATClassifier(BatchNormMLP, epsilon=0.1, n_steps=2, separation_views=views,
                         max_epochs=1, batch_size=60, verbose=0, random_state=0).fit(*tabular)
    assert int(clf.module_.body[1].num_batches_tracked) == 4  # 240 samples / 60


def test_feature_layer_is_looked_up_once(tabular, fast_params, monkeypatch):
    # Regression: the feature layer was looked up again on every batch.
    import srat_sklearn.separation as separation
    calls = []
    original = separation.find_feature_layer
    monkeypatch.setattr(separation, "find_feature_layer",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    SRATClassifier(**{**fast_params, "batch_size": 60, "max_epochs": 2}).fit(*tabular)
    assert len(calls) == 1  # 8 batches


@pytest.mark.parametrize("lambda_sep", [0.0, 1.0])
def test_any_criterion_trains_without_class_weights(tabular, fast_params, lambda_sep):
    # Regression: the reweighting callback called criterion_.set_class_weights and crashed.
    clf = SRATClassifier(criterion=nn.CrossEntropyLoss, class_weight=None,
                         **{**fast_params, "lambda_sep": lambda_sep}).fit(*tabular)
    assert len(clf.history) == fast_params["max_epochs"]


# ----------------------------------------------------------------- arrows that point down

def imported_by(statement, blocked=()):
    code = ("import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked)
            + f"{statement}\nprint(' '.join(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return set(result.stdout.split())


def test_the_attacks_need_no_skorch_and_no_models():
    modules = imported_by("import srat_sklearn.attacks", blocked=["skorch"])
    assert "srat_sklearn.models" not in modules and "srat_sklearn.estimator" not in modules


def test_training_does_not_import_the_data_set_loaders():
    assert "srat_sklearn.datasets" not in imported_by("import srat_sklearn.estimator")


@pytest.mark.parametrize("name", ["make_robust_scorer", "make_group_scorer",
                                  "robust_classification_report", "autoattack", "trades_attack",
                                  "balanced_softmax_loss", "trades_kl_divergence"])
def test_the_everyday_names_import_from_the_package(name):
    # Regression: ``from srat_sklearn import make_robust_scorer`` failed, unlike
    # ``robust_accuracy_score``, though a grid search over lambda_sep needs it.
    import srat_sklearn
    assert name in srat_sklearn.__all__
    module = importlib.import_module(f"srat_sklearn.{srat_sklearn._EXPORTS[name]}")
    assert getattr(srat_sklearn, name) is getattr(module, name) and name in module.__all__


# ----------------------------------------------------------------- sizes

def test_modules_stay_small():
    sizes = {p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines())
             for p in PACKAGE.rglob("*.py")}
    assert sizes.pop("estimator.py") <= 600
    assert max(sizes.values()) <= 450, max(sizes.items(), key=lambda item: item[1])


def test_declared_parameters_cover_every_added_hyperparameter():
    added = set(SRATClassifier().get_params(deep=False)) - {
        "module", "criterion", "train_split", "classes", "optimizer", "callbacks", "device",
        "iterator_train", "iterator_valid", "dataset", "predict_nonlinearity", "warm_start",
        "verbose", "compile", "use_caching", "torch_load_kwargs", "iterator_train__shuffle"}
    assert added <= set(SRATClassifier._parameter_constraints), added - set(
        SRATClassifier._parameter_constraints)


def test_parameter_errors_name_the_parameter_the_scikit_learn_way():
    X, y = np.zeros((10, 2)), np.arange(10) % 2
    with pytest.raises(ValueError, match="The 'temperature' parameter of SRATClassifier"):
        SRATClassifier(temperature=0.0).fit(X, y)


# ----------------------------------------------------------------- packaging

def read_pyproject():
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())


def test_oldest_releases_tested_are_the_declared_lower_bounds():
    # `make test-oldest` runs the suite on .ci/oldest.txt; a lower bound raised or lowered in
    # pyproject.toml alone would claim releases that no run has tried.
    from packaging.requirements import Requirement
    from packaging.version import Version

    declared = {}
    for line in read_pyproject()["project"]["dependencies"]:
        requirement = Requirement(line)
        (lower,) = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        declared[requirement.name] = Version(lower)
    oldest = (PACKAGE.parent / ".ci" / "oldest.txt").read_text().splitlines()
    pins = [line.split("==") for line in oldest if line and not line.startswith("#")]
    assert {name: Version(version) for name, version in pins} == declared


def test_the_code_needs_no_python_newer_than_declared():
    # No machine of this project has the oldest Python that requires-python allows; vermin
    # reads which syntax and standard-library names each module needs.
    pytest.importorskip("vermin")
    oldest = read_pyproject()["project"]["requires-python"].removeprefix(">=")
    run_vermin = "import sys, vermin; sys.argv[0] = 'vermin'; sys.exit(vermin.main())"
    result = subprocess.run(
        [sys.executable, "-c", run_vermin, "--no-tips", "--violations", "--eval-annotations",
         f"--target={oldest}-", "srat_sklearn", "benchmarks", "examples", "tests"],
        cwd=PACKAGE.parent, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
