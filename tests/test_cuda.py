"""The CUDA path: fit, attack, evaluate and pickle with ``device="cuda"``.

Marked ``cuda`` and skipped without a GPU; ``benchmarks/gpu_check.py`` runs them first, with
the ``cuda`` cases of the tests that take the ``device`` fixture (``test_device_path.py``),
which run on the CPU everywhere else.
"""

import copy
import pickle

import numpy as np
import pytest
import torch
from conftest import CUDA

from srat_sklearn import SRATClassifier, robust_accuracy_score, robust_report
from srat_sklearn.attacks import run_attack
from srat_sklearn.methods import DIGITS_RECIPE

pytestmark = CUDA


@pytest.fixture(scope="module")
def cuda_digits(digits_split):
    X_train, _, y_train, _ = digits_split
    return SRATClassifier(**DIGITS_RECIPE, max_epochs=6, reweight_epoch=4, random_state=0,
                          verbose=0, device="cuda").fit(X_train, y_train)


def test_training_keeps_the_model_and_criterion_on_the_gpu(cuda_digits):
    assert all(p.device.type == "cuda" for p in cuda_digits.module_.parameters())
    assert cuda_digits.criterion_.weight.device.type == "cuda"


def test_predictions_come_back_as_numpy(cuda_digits, digits_split):
    _, X_test, _, y_test = digits_split
    predicted = cuda_digits.predict(X_test)
    assert isinstance(predicted, np.ndarray) and predicted.shape == y_test.shape
    assert np.mean(predicted == y_test) > 0.5
    np.testing.assert_allclose(cuda_digits.predict_proba(X_test).sum(axis=1), 1.0, rtol=1e-5)


def test_a_deterministic_attack_agrees_across_devices(cuda_digits, digits_split):
    # The same weights and no random start: only the devices' float arithmetic differs, so
    # at most a few samples may flip.
    _, X_test, _, y_test = digits_split
    accuracy = {}
    for device in ("cuda", "cpu"):
        model = copy.deepcopy(cuda_digits.module_).to(device).eval()
        X, y = (torch.as_tensor(a, device=device) for a in (X_test, y_test))
        X_adv = run_attack("pgd", model, X, y, epsilon=0.2, step_size=0.05, n_steps=10,
                           random_start=False, bounds=(0.0, 1.0))
        with torch.no_grad():
            accuracy[device] = (model(X_adv).argmax(1) == y).float().mean().item()
    assert abs(accuracy["cuda"] - accuracy["cpu"]) <= 0.02


def test_autoattack_report_on_the_gpu(cuda_digits, digits_split):
    _, X_test, _, y_test = digits_split
    report = robust_report(cuda_digits, X_test[:100], y_test[:100], attack="autoattack",
                           verbose=0)
    pgd = robust_accuracy_score(cuda_digits, X_test[:100], y_test[:100], n_steps=20, verbose=0)
    assert report.groups["overall"]["robust"] <= pgd + 0.02


def test_pickled_gpu_model_predicts_the_same(cuda_digits, digits_split):
    _, X_test, _, _ = digits_split
    restored = pickle.loads(pickle.dumps(cuda_digits))
    np.testing.assert_array_equal(restored.predict(X_test), cuda_digits.predict(X_test))


def test_bf16_and_channels_last_train_on_the_gpu(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    clf = SRATClassifier(**DIGITS_RECIPE, max_epochs=6, reweight_epoch=4, random_state=0,
                         verbose=0, device="cuda", mixed_precision="bf16",
                         channels_last=True).fit(X_train, y_train)
    assert np.mean(clf.predict(X_test) == y_test) > 0.5
    assert next(clf.module_.parameters()).dtype == torch.float32
