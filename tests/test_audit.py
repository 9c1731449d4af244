"""The executable evaluation checklist: a sound model passes, a gradient-masked one fails."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from srat_sklearn import SRATClassifier
from srat_sklearn.metrics import RobustnessAudit, audit_robustness

#: Small budgets: the audit's logic, not its full strength, is under test here.
BUDGET = dict(n_steps=8, n_queries=300, n_restarts=2, verbose=0)


@pytest.fixture(scope="module")
def test_subset(digits_split):
    _, X_test, _, y_test = digits_split
    rows = np.random.default_rng(0).permutation(len(y_test))[:180]
    return X_test[rows], y_test[rows]


@pytest.fixture(scope="module")
def sound_audit(trained_digits, test_subset):
    return audit_robustness(trained_digits, *test_subset, epsilon=0.2, **BUDGET)


def test_sound_model_passes_every_check(sound_audit):
    assert sound_audit.passed, sound_audit.to_markdown()
    assert len(sound_audit.checks) == 8


def test_audit_table_states_every_check_and_the_settings(sound_audit):
    table = sound_audit.to_markdown()
    assert table.startswith("Robustness audit: passed (8 of 8 checks); L-inf, epsilon 0.2, "
                            "180 samples")
    for check in sound_audit.checks:
        assert f"| {check.name} | {check.measured} | pass |" in table
    assert sound_audit.to_dict()["passed"] is True


def test_an_audit_on_few_samples_warns_that_its_tolerance_is_wide(trained_digits,
                                                                 test_subset):
    X, y = test_subset
    with pytest.warns(UserWarning, match="20 samples.*tolerates 2 samples \\(10 points\\)"):
        audit = audit_robustness(trained_digits, X[:20], y[:20], epsilon=0.2, **BUDGET)
    assert audit.to_dict()["settings"]["tolerance"] == 0.1


@pytest.mark.parametrize("n, tolerance", [(40, None), (20, 0.02)])
def test_an_audit_with_a_narrow_tolerance_does_not_warn(trained_digits, test_subset, n,
                                                        tolerance):
    X, y = test_subset
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        audit_robustness(trained_digits, X[:n], y[:n], epsilon=0.2, tolerance=tolerance,
                         **BUDGET)


def test_gradient_masking_fails_the_audit_and_says_why(masked_model, tabular):
    X, y = tabular
    audit = audit_robustness(masked_model, X, y, epsilon=0.15, **BUDGET)
    assert isinstance(audit, RobustnessAudit) and not audit.passed
    failed = {check.name: check for check in audit.failed}
    assert "white-box at least as strong as black-box" in failed
    assert "masked" in failed["white-box at least as strong as black-box"].explanation
    assert "| FAIL |" in audit.to_markdown() and "FAILED" in audit.to_markdown()


def test_audit_goes_through_the_pipelines_transformers(masked_model, tabular):
    X, y = tabular
    audit = audit_robustness(masked_model, X, y, epsilon=0.15, **BUDGET)
    zero = next(c for c in audit.checks if c.name == "epsilon 0 gives clean accuracy")
    assert zero.passed  # the attack sees the scaled inputs the classifier was trained on


def test_progress_bar(masked_model, tabular, capsys):
    audit_robustness(masked_model, *tabular, epsilon=0.15, **{**BUDGET, "verbose": 1})
    assert "robustness audit" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(epsilon=0.0), ValueError, "epsilon"),
    (dict(epsilon=-1.0), ValueError, "epsilon"),
    (dict(n_steps=2), ValueError, "n_steps"),
    (dict(n_restarts=1), ValueError, "n_restarts"),
    (dict(n_queries=0), ValueError, "n_queries"),
    (dict(tolerance=2.0), ValueError, "tolerance"),
    (dict(verbose=-1), ValueError, "verbose"),
    (dict(perturbable_features=[0]), ValueError, "2-D X"),
    (dict(epsilon=[0.1, 0.2]), ValueError, "2-D X"),
])
def test_bad_parameters(trained_digits, test_subset, kwargs, error, match):
    with pytest.raises(error, match=match):
        audit_robustness(trained_digits, *test_subset, **kwargs)


def test_unfitted_estimator(test_subset):
    with pytest.raises(NotFittedError):
        audit_robustness(SRATClassifier(), *test_subset)


def test_audit_reads_tensors_that_numpy_cannot(trained_digits, test_subset):
    # Inputs that require gradients (a feature extractor's output, say), as on a GPU: NumPy
    # reads neither as it is.
    X, y = (a[:40] for a in test_subset)
    as_arrays = audit_robustness(trained_digits, X, y, epsilon=0.2, **BUDGET)
    as_tensors = audit_robustness(trained_digits, torch.as_tensor(X).requires_grad_(True),
                                  torch.as_tensor(y), epsilon=0.2, **BUDGET)
    assert as_tensors.to_markdown() == as_arrays.to_markdown()
