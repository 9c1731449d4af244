"""Robust evaluation on a trained imbalanced-digits model."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score

from srat_sklearn import robust_accuracy_score, robust_report

UNDER = [5, 6, 7, 8, 9]


def independent_pgd(module, X, y, epsilon, n_steps, step_size):
    """A separate, minimal L-inf PGD (no random start) on [0, 1] images."""
    module.eval()
    X = torch.as_tensor(X)
    y = torch.as_tensor(y)
    X_adv = X.clone()
    for _ in range(n_steps):
        X_adv.requires_grad_(True)
        loss = F.cross_entropy(module(X_adv), y)
        (grad,) = torch.autograd.grad(loss, X_adv)
        X_adv = (X_adv.detach() + step_size * grad.sign())
        X_adv = torch.min(torch.max(X_adv, X - epsilon), X + epsilon).clamp(0, 1)
    with torch.no_grad():
        return module(X_adv).argmax(1).numpy()


def test_robust_accuracy_well_above_chance_and_below_clean(trained_digits, digits_split):
    _, X_test, _, y_test = digits_split
    clean = trained_digits.score(X_test, y_test)
    robust = robust_accuracy_score(trained_digits, X_test, y_test)
    assert robust > 0.3  # chance is 0.1
    assert robust <= clean


def test_agrees_with_independent_pgd(trained_digits, digits_split):
    _, X_test, _, y_test = digits_split
    ours = robust_accuracy_score(trained_digits, X_test, y_test, epsilon=0.2, n_steps=20,
                                 random_start=False)
    predictions = independent_pgd(trained_digits.module_, X_test, y_test, 0.2, 20, 2.5 * 0.2 / 20)
    theirs = accuracy_score(y_test, predictions)
    assert abs(ours - theirs) <= 0.02


def test_robust_report_groups(trained_digits, digits_split):
    _, X_test, _, y_test = digits_split
    report = robust_report(trained_digits, X_test, y_test)
    assert report.under_represented == UNDER  # below the median training count
    assert report.support == np.bincount(y_test).tolist()
    clean = np.array(report.clean)
    assert report.groups["under"]["clean"] == pytest.approx(clean[UNDER].mean())
    assert report.groups["well"]["clean"] == pytest.approx(np.delete(clean, UNDER).mean())
    assert report.groups["overall"]["clean"] == pytest.approx(trained_digits.score(X_test, y_test))
    assert all(r <= c for r, c in zip(report.robust, report.clean))
    assert "| under |" in report.to_markdown()


def test_robust_report_named_groups(trained_digits, digits_split):
    _, X_test, _, y_test = digits_split
    report = robust_report(trained_digits, X_test, y_test, under_represented=[0, 1], epsilon=0.0)
    assert report.under_represented == [0, 1]
    assert report.groups["under"]["robust"] == report.groups["under"]["clean"]


def test_robust_report_unknown_group_label(trained_digits, digits_split):
    _, X_test, _, y_test = digits_split
    with pytest.raises(ValueError, match="under_represented"):
        robust_report(trained_digits, X_test, y_test, under_represented=[42])


def test_generate_adversarial_keeps_input_shape_and_bounds(trained_digits, digits_split):
    _, X_test, _, y_test = digits_split
    X_adv = trained_digits.generate_adversarial(X_test[:50], y_test[:50], epsilon=0.3)
    assert X_adv.shape == X_test[:50].shape
    assert np.abs(X_adv - X_test[:50]).max() <= 0.3 + 1e-5
    assert X_adv.min() >= 0.0 and X_adv.max() <= 1.0


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(epsilon=-1.0), ValueError, "epsilon"),
    (dict(n_steps=0), ValueError, "n_steps"),
    (dict(norm="l0"), ValueError, "norm"),
])
def test_bad_scorer_parameters(trained_digits, digits_split, kwargs, error, match):
    _, X_test, _, y_test = digits_split
    with pytest.raises(error, match=match):
        robust_accuracy_score(trained_digits, X_test, y_test, **kwargs)


def test_scorer_rejects_unknown_labels(trained_digits, digits_split):
    _, X_test, _, y_test = digits_split
    with pytest.raises(ValueError, match="labels"):
        robust_accuracy_score(trained_digits, X_test, y_test + 100)


def test_scorer_needs_srat_estimator(digits_split):
    from sklearn.linear_model import LogisticRegression
    _, X_test, _, y_test = digits_split
    X = X_test.reshape(len(X_test), -1)
    with pytest.raises(TypeError, match="SRATClassifier"):
        robust_accuracy_score(LogisticRegression().fit(X, y_test), X, y_test)
