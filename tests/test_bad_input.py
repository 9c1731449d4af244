"""Bad input and nonsense parameters fail before training, with a message naming the problem."""

import copy

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback
from torch import nn

from srat_sklearn import NonFiniteLossError, SRATClassifier, robust_accuracy_score, robust_report
from srat_sklearn.estimator import SRATClassifier as _Estimator


@pytest.fixture
def Xy():
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 4)), np.repeat([0, 1], 20)


@pytest.fixture
def no_training(monkeypatch):
    """Fails the test if a training step starts."""
    def fail(self, *args, **kwargs):
        raise AssertionError("training started")
    monkeypatch.setattr(_Estimator, "train_step", fail)


def with_nan(X):
    X = X.copy()
    X[3, 1] = np.nan
    return X


def with_inf(X):
    X = X.copy()
    X[0, 0] = np.inf
    return X


@pytest.mark.parametrize("make_data, match", [
    (lambda X, y: (with_nan(X), y), "NaN"),
    (lambda X, y: (with_inf(X), y), "infinity"),
    (lambda X, y: (X[:, 0], y), "2D array"),
    (lambda X, y: (X.reshape(40, 1, 2, 2, 1), y), "dimensions"),
    (lambda X, y: (X, y[:30]), "inconsistent numbers of samples"),
    (lambda X, y: (X, np.zeros_like(y)), "at least 2 classes"),
    (lambda X, y: (X[:0], y[:0]), "0 sample"),
    (lambda X, y: (X, y + 0.5), "Unknown label type"),
], ids=["nan", "inf", "1d", "5d", "length", "one-class", "empty", "continuous-y"])
def test_bad_data(Xy, no_training, make_data, match):
    X, y = make_data(*Xy)
    with pytest.raises(ValueError, match=match):
        SRATClassifier(verbose=0).fit(X, y)


@pytest.mark.parametrize("labels", [
    lambda y: np.where(y == 0, "zero", y).astype(object),  # strings among the numbers
    lambda y: np.array(["a", 1, 2.5] * (len(y) // 3) + ["a"] * (len(y) % 3), dtype=object),
])
def test_labels_of_mixed_types_are_named(Xy, no_training, labels):
    # They were NumPy's "'<' not supported between instances of 'int' and 'str'".
    X, y = Xy
    y = labels(y)
    y[0], y[1] = "zero", 1  # both kinds, whatever the data
    with pytest.raises(TypeError,
                       match=r"The labels mix types \((float, )?int, str\).*y.astype\(str\)"):
        SRATClassifier(verbose=0).fit(X, y)


@pytest.mark.parametrize("device, match", [
    ("gpu", "not a torch device"),
    pytest.param("cuda", "no CUDA GPU", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="this machine has a CUDA GPU")),
    ("cuda:99", "CUDA GPU"),
    ("meta", "holds no data"),
    pytest.param("mps", "no MPS device", marks=pytest.mark.skipif(
        torch.backends.mps.is_available(), reason="this machine has an MPS device")),
])
def test_device_this_machine_lacks(Xy, no_training, device, match):
    # Named before the data are validated, not as torch's RuntimeError from deep in
    # initialisation.
    with pytest.raises(ValueError, match=match):
        SRATClassifier(device=device, verbose=0).fit(*Xy)


@pytest.mark.parametrize("params, error, match", [
    ({"epsilon": -0.1}, ValueError, "epsilon"),
    ({"epsilon": "big"}, TypeError, "epsilon"),
    ({"step_size": 0.0}, ValueError, "step_size"),
    ({"n_steps": 0}, ValueError, "n_steps"),
    ({"n_steps": 2.5}, TypeError, "n_steps"),
    ({"norm": "l1"}, ValueError, "norm"),
    ({"separation_views": "clean"}, ValueError, "separation_views"),
    ({"random_start": "yes"}, TypeError, "random_start"),
    ({"reuse_perturbations": 1}, TypeError, "reuse_perturbations"),
    ({"bounds": (1.0, 0.0)}, ValueError, "bounds"),
    ({"bounds": "data"}, ValueError, "bounds"),
    ({"lambda_sep": -1.0}, ValueError, "lambda_sep"),
    ({"temperature": 0.0}, ValueError, "temperature"),
    ({"temperature": -0.1}, ValueError, "temperature"),
    ({"class_weight": "inverse"}, ValueError, "class_weight"),
    ({"class_weight": [1.0, 2.0]}, TypeError, "class_weight"),
    ({"class_weight": {0: -1.0}}, ValueError, "class_weight"),
    ({"class_weight": {7: 2.0}}, ValueError, "not in y"),
    ({"beta": 1.0}, ValueError, "beta"),
    ({"reweight_epoch": 1.5}, ValueError, "reweight_epoch"),
    ({"reweight_lr_factor": 0.0}, ValueError, "reweight_lr_factor"),
    ({"loss": "hinge"}, ValueError, "loss"),
    ({"focal_gamma": -1.0}, ValueError, "focal_gamma"),
    ({"ldam_scale": 0.0}, ValueError, "ldam_scale"),
    ({"bsl_tau": -0.5}, ValueError, "bsl_tau"),
    ({"weight_normalization": "sum"}, ValueError, "weight_normalization"),
    ({"input_shape": (3, 3)}, ValueError, "input_shape"),
    ({"input_shape": (2, -2)}, ValueError, "input_shape"),
    ({"feature_layer": "nonexistent"}, ValueError, "feature_layer"),
    ({"feature_layer": 3}, TypeError, "feature_layer"),
    ({"max_epochs": 0}, ValueError, "max_epochs"),
    ({"lr": -1.0}, ValueError, "lr"),
    ({"random_state": "seed"}, ValueError, "seed"),
    ({"criterion": nn.CrossEntropyLoss}, ValueError, "criterion"),
    ({"train_split": 0.2}, TypeError, "train_split"),
])
def test_bad_parameters(Xy, no_training, params, error, match):
    with pytest.raises(error, match=match):
        SRATClassifier(verbose=0, **params).fit(*Xy)


def test_module_without_linear_layer(Xy, no_training):
    module = nn.Sequential(nn.Conv1d(1, 2, 1), nn.Flatten())
    with pytest.raises(ValueError, match="no nn.Linear"):
        SRATClassifier(module=module, verbose=0).fit(*Xy)


def test_module_with_wrong_number_of_outputs(Xy, no_training):
    with pytest.raises(ValueError, match=r"outputs of shape \(2, 5\).*one column per class"):
        SRATClassifier(module=nn.Linear(4, 5), lambda_sep=0.0, verbose=0).fit(*Xy)


@pytest.mark.parametrize("module", [nn.Linear(3, 2), nn.Linear(4, 2).double()])
def test_module_that_cannot_take_X(Xy, no_training, module):
    # Regression: torch's error came from inside the first training step.
    with pytest.raises(ValueError, match=r"cannot take samples of shape \(4,\), those of X"):
        SRATClassifier(module=module, lambda_sep=0.0, verbose=0).fit(*Xy)


def test_predict_with_wrong_number_of_features(Xy):
    X, y = Xy
    clf = SRATClassifier(max_epochs=1, n_steps=1, verbose=0).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :3])


@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_predict_before_fit(Xy, method):
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        getattr(SRATClassifier(), method)(Xy[0])


def test_missing_y(Xy, no_training):
    with pytest.raises(ValueError, match="requires y to be passed"):
        SRATClassifier().fit(Xy[0], None)


@pytest.mark.parametrize("optimizer", [torch.optim.SGD, torch.optim.Adam])
def test_non_finite_loss_stops_with_the_state_before_the_step(Xy, loss_check, optimizer):
    X, y = Xy
    clf = SRATClassifier(max_epochs=3, lr=1e30, optimizer=optimizer, epsilon=0.0,
                         lambda_sep=0.0, verbose=0)
    with pytest.raises(NonFiniteLossError, match=r"epoch \d+, batch \d+"):
        clf.fit(X, y)
    assert all(torch.isfinite(p).all() for p in clf.module_.parameters())
    moments = [v for state in clf.optimizer_.state.values() for v in state.values()
               if isinstance(v, torch.Tensor)]
    assert all(torch.isfinite(v).all() for v in moments)


class StateAtBatchStart(Callback):
    """The module's and the optimizer's state at the start of the latest training batch."""

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        if training:
            self.module = copy.deepcopy(net.module_.state_dict())
            self.optimizer = copy.deepcopy(net.optimizer_.state_dict()["state"])


@pytest.mark.parametrize("optimizer, params", [(torch.optim.SGD, {"optimizer__momentum": 0.9}),
                                               (torch.optim.Adam, {})])
def test_non_finite_loss_leaves_the_state_from_before_the_bad_batch(Xy, loss_check, optimizer,
                                                                    params):
    X, y = Xy
    state = StateAtBatchStart()
    clf = SRATClassifier(max_epochs=3, lr=1e30, optimizer=optimizer, epsilon=0.0,
                         lambda_sep=0.0, verbose=0, callbacks=[("state", state)], **params)
    with pytest.raises(NonFiniteLossError):
        clf.fit(X, y)
    assert state.optimizer  # the bad batch is not the first: the optimizer has moments
    torch.testing.assert_close(clf.module_.state_dict(), state.module, rtol=0, atol=0)
    torch.testing.assert_close(clf.optimizer_.state_dict()["state"], state.optimizer, rtol=0,
                               atol=0)


# ---------------------------------------------------------------- scorers and report

@pytest.fixture(scope="module")
def fitted(request):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), np.repeat([0, 1, 2], 20)
    clf = SRATClassifier(max_epochs=1, n_steps=1, verbose=0, random_state=0,
                         module__hidden_units=(8,)).fit(X, y)
    return clf, X, y


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(score_func="accuracy"), TypeError, "score_func"),
    (dict(attack="fgsm"), ValueError, "attack"),
    (dict(worst_case="yes"), TypeError, "worst_case"),
    (dict(epsilon=-1.0), ValueError, "epsilon"),
    (dict(n_steps=0), ValueError, "n_steps"),
    (dict(norm="l1"), ValueError, "norm"),
    (dict(step_size=0.0), ValueError, "step_size"),
])
def test_make_robust_scorer_rejects(kwargs, error, match):
    from srat_sklearn.metrics import make_robust_scorer
    with pytest.raises(error, match=match):
        make_robust_scorer(**kwargs)


@pytest.mark.parametrize("call, error, match", [
    (lambda clf, X, y: robust_accuracy_score(clf, X[:, :3], y), ValueError, "features"),
    (lambda clf, X, y: robust_accuracy_score(clf, with_nan(X), y), ValueError, "NaN"),
    (lambda clf, X, y: robust_accuracy_score(clf, X, y[:10]), ValueError,
     "inconsistent numbers of samples"),
    (lambda clf, X, y: robust_accuracy_score(clf, X, y + 5), ValueError, "labels"),
    (lambda clf, X, y: robust_accuracy_score(clf, X, y, attack="cw"), ValueError, "attack"),
    (lambda clf, X, y: robust_accuracy_score(clf, X, y, attack="pgd", worst_case=1), TypeError,
     "worst_case"),
    (lambda clf, X, y: robust_accuracy_score(clf, X, y, attack="apgd-ce", step_size=0.1),
     ValueError, "step_size"),
    (lambda clf, X, y: robust_report(clf, X, y, under_represented=[7]), ValueError,
     "under_represented"),
    (lambda clf, X, y: robust_report(clf, X, y, n_steps=-2), ValueError, "n_steps"),
    (lambda clf, X, y: robust_report(object(), X, y), TypeError, "SRATClassifier"),
], ids=["n-features", "nan", "y-length", "unknown-label", "attack", "worst-case",
        "apgd-step", "report-group", "report-steps", "report-estimator"])
def test_evaluation_entry_points_reject(fitted, call, error, match):
    with pytest.raises(error, match=match):
        call(*fitted)


def test_dlr_attack_needs_three_classes(Xy):
    clf = SRATClassifier(max_epochs=1, n_steps=1, verbose=0, module__hidden_units=(8,))
    clf.fit(*Xy)
    with pytest.raises(ValueError, match="at least 3 classes"):
        robust_accuracy_score(clf, *Xy, attack="apgd-dlr")


@pytest.mark.parametrize("method", ["robust_accuracy_score", "robust_report"])
def test_evaluation_before_fit(Xy, method):
    from sklearn.exceptions import NotFittedError

    import srat_sklearn
    with pytest.raises(NotFittedError):
        getattr(srat_sklearn, method)(SRATClassifier(), *Xy)


# ---------------------------------------------------------------- datasets

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(ratio=0.5), ValueError, "ratio"),
    (dict(ratio=float("nan")), ValueError, "ratio"),
    (dict(ratio="10"), TypeError, "ratio"),
    (dict(ratio=10, kind="linear"), ValueError, "kind"),
    (dict(ratio=10, under_represented=[9]), ValueError, "under_represented"),
    (dict(ratio=10, kind="exp", under_represented=[1]), ValueError, "under_represented"),
])
def test_make_imbalanced_rejects_parameters(Xy, kwargs, error, match):
    from srat_sklearn.datasets import make_imbalanced
    with pytest.raises(error, match=match):
        make_imbalanced(*Xy, **kwargs)


@pytest.mark.parametrize("make_data, match", [
    (lambda X, y: (X, y[:10]), "different numbers of samples"),
    (lambda X, y: (X, y.reshape(-1, 1)), "1-D"),
    (lambda X, y: (X[:0], y[:0]), "0 samples"),
])
def test_make_imbalanced_rejects_data(Xy, make_data, match):
    from srat_sklearn.datasets import make_imbalanced
    with pytest.raises(ValueError, match=match):
        make_imbalanced(*make_data(*Xy), ratio=10)
