"""Robust evaluation on a trained imbalanced-digits model."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.exceptions import DataConversionWarning
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from srat_sklearn import audit_robustness, robust_accuracy_score, robust_report
from srat_sklearn.attacks import _run as attacks_run
from srat_sklearn.metrics import (
    REPORT_GROUPS,
    make_group_scorer,
    make_robust_scorer,
    robust_classification_report,
    robust_predict,
)

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


@pytest.mark.parametrize("kwargs, match", [
    (dict(verbose=0), r"passes \['verbose'\] to accuracy_score.*take no verbose"),
    (dict(average="macro"), r"passes \['average'\] to accuracy_score, which does not take"),
])
def test_a_scorer_refuses_what_its_metric_does_not_take_when_made(kwargs, match):
    # Found in a search, it was each fold's NaN score and a warning.
    with pytest.raises(TypeError, match=match):
        make_robust_scorer(**kwargs)


def test_a_scorer_passes_what_its_metric_takes(trained_digits, digits_split):
    _, X_test, _, y_test = digits_split
    scorer = make_robust_scorer(f1_score, average="macro", n_steps=2)
    assert 0 < scorer(trained_digits, X_test, y_test) < 1


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


# ----------------------------------------------------------------- AutoAttack in the reports

SMALL_AUTOATTACK = dict(attack="autoattack", n_steps=3, n_queries=20, n_targets=2)


@pytest.fixture
def few_test_images(digits_split):
    _, X_test, _, y_test = digits_split
    return X_test[::10], y_test[::10]


@pytest.mark.parametrize("evaluate", [
    lambda clf, X, y: robust_accuracy_score(clf, X, y, n_steps=2, verbose=0),
    lambda clf, X, y: make_robust_scorer(balanced_accuracy_score, n_steps=2)(clf, X, y),
    lambda clf, X, y: make_group_scorer("under", n_steps=2)(clf, X, y),
    lambda clf, X, y: str(robust_report(clf, X, y, n_steps=2, verbose=0)),
    lambda clf, X, y: robust_classification_report(clf, X, y, n_steps=2, verbose=0),
    lambda clf, X, y: clf.generate_adversarial(X, y, n_steps=2).tolist(),
    lambda clf, X, y: audit_robustness(clf, X, y, n_steps=4, n_queries=10, n_restarts=2,
                                       verbose=0).to_dict(),
], ids=["robust_accuracy_score", "make_robust_scorer", "make_group_scorer", "robust_report",
        "robust_classification_report", "generate_adversarial", "audit_robustness"])
def test_an_evaluation_takes_a_column_vector_y_as_fit_does(trained_digits, few_test_images,
                                                          evaluate):
    X, y = few_test_images
    expected = evaluate(trained_digits, X, y)
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        assert evaluate(trained_digits, X, y.reshape(-1, 1)) == expected


def test_report_states_every_setting_of_the_attack(trained_digits, few_test_images):
    report = robust_report(trained_digits, *few_test_images, verbose=0, **SMALL_AUTOATTACK)
    first_line = report.to_markdown().splitlines()[0]
    assert first_line == ("Attack: AutoAttack, standard (APGD-CE, APGD-T, FAB-T, Square): "
                          "3 iterations, 2 target classes, 20 queries, random start, 1 restart;"
                          " L-inf, epsilon 0.2; robust only if every attack fails")
    assert report.settings["members"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert report.to_dict()["settings"]["n_queries"] == 20


def test_report_gives_robust_accuracy_after_each_attack_of_an_ensemble(trained_digits,
                                                                      few_test_images):
    report = robust_report(trained_digits, *few_test_images, verbose=0, **SMALL_AUTOATTACK)
    after = report.robust_after
    assert list(after) == ["APGD-CE", "APGD-T", "FAB-T", "Square"]
    overall = [accuracy["overall"] for accuracy in after.values()]
    assert overall == sorted(overall, reverse=True) and overall[0] > overall[-1]
    assert after["Square"] == pytest.approx({g: report.groups[g]["robust"]
                                             for g in REPORT_GROUPS})
    assert report.to_dict()["robust_after"] == after
    assert "| FAB-T | " in report.to_markdown(per_class=False)


def test_robust_accuracy_after_an_attack_is_that_of_the_ensemble_up_to_it(trained_digits,
                                                                          few_test_images):
    X, y = few_test_images
    members = ("apgd-ce", "apgd-dlr", "pgd")
    after = robust_report(trained_digits, X, y, attack=members, n_steps=3,
                          verbose=0).robust_after
    for k, accuracy in enumerate(after.values()):
        assert accuracy["overall"] == robust_accuracy_score(
            trained_digits, X, y, attack=members[:k + 1], n_steps=3, verbose=0)


def test_robust_accuracy_after_each_attack_when_none_stands(trained_digits, few_test_images):
    # Every sample misclassified clean: the ensemble stops before its first attack.
    X, _ = few_test_images
    wrong = (trained_digits.predict(X) + 1) % 10
    report = robust_report(trained_digits, X, wrong, verbose=0, **SMALL_AUTOATTACK)
    assert [accuracy["overall"] for accuracy in report.robust_after.values()] == [0.0] * 4


def test_a_single_attack_reports_no_steps(trained_digits, few_test_images):
    report = robust_report(trained_digits, *few_test_images, n_steps=2, verbose=0)
    assert report.robust_after is None
    assert "after each attack" not in report.to_markdown()


def test_autoattack_defaults_are_the_standard_ones(trained_digits):
    settings = trained_digits.attack_settings("autoattack")
    assert (settings["n_steps"], settings["n_targets"], settings["n_queries"],
            settings["n_restarts"]) == (100, 9, 5000, 1)
    assert trained_digits.attack_settings("pgd")["n_steps"] == trained_digits.n_steps


@pytest.mark.parametrize("attack, verbose, shown", [
    ("autoattack", 1, True), ("autoattack", 0, False), ("pgd", 1, False), ("pgd", 2, True)])
def test_progress_bar_for_long_evaluations(trained_digits, few_test_images, capsys, attack,
                                           verbose, shown):
    kwargs = SMALL_AUTOATTACK if attack == "autoattack" else {"attack": "pgd"}
    robust_accuracy_score(trained_digits, *few_test_images, verbose=verbose, **kwargs)
    assert (("AutoAttack" if attack == "autoattack" else "PGD") in capsys.readouterr().err) \
        == shown


@pytest.mark.parametrize("verbose", [0, 2])
def test_a_single_attack_predicts_each_sample_once_clean_and_once_attacked(
        trained_digits, few_test_images, verbose):
    # A check of each attacked part, before predict does it again, was a pass for nothing;
    # only the progress bar, which counts the samples still robust, needs it.
    X, y = few_test_images
    rows = []
    handle = trained_digits.module_.register_forward_pre_hook(
        lambda module, inputs: None if torch.is_grad_enabled() else rows.append(len(inputs[0])))
    try:
        robust_accuracy_score(trained_digits, X, y, attack="pgd", n_steps=2, verbose=verbose)
    finally:
        handle.remove()
    correct = int((trained_digits.predict(X) == y).sum())
    assert sum(rows) == 2 * len(y) + (correct if verbose else 0)


def test_each_member_sees_the_survivors_of_all_batches(trained_digits, few_test_images,
                                                        monkeypatch):
    received = []
    run_member = attacks_run._run_member

    def recording(name, model, X, y, **kwargs):
        received.append((name, len(X)))
        return run_member(name, model, X, y, **kwargs)

    monkeypatch.setattr(attacks_run, "_run_member", recording)
    X, y = few_test_images
    trained_digits.generate_adversarial(X, y, attack=("pgd", "square"), n_steps=1,
                                        n_queries=5, batch_size=20)
    first = [n for name, n in received if name == "pgd"]
    second = [n for name, n in received if name == "square"]
    assert sum(first) == (trained_digits.predict(X) == y).sum()
    # The survivors of all the first member's batches, in as few near-equal batches as fit.
    assert len(second) == -(-sum(second) // 20) and max(second) - min(second) <= 1


@pytest.mark.parametrize("attack, n_steps, ran", [
    ("pgd", None, {"pgd": 20}),
    (("pgd", "apgd-ce"), None, {"pgd": 20, "apgd-ce": 100}),  # was PGD-10 in an ensemble
    (("apgd-ce", "pgd"), {"apgd-ce": 3}, {"pgd": 20, "apgd-ce": 3}),
    (("pgd", "apgd-ce"), {"pgd": 5}, {"pgd": 5, "apgd-ce": 100}),
    (("pgd", "apgd-ce"), 4, {"pgd": 4, "apgd-ce": 4}),
])
def test_each_attack_runs_and_reports_its_evaluation_iterations(
        trained_digits, few_test_images, monkeypatch, attack, n_steps, ran):
    seen = {}
    for name, function in (("pgd", "_pgd_attack"), ("apgd-ce", "_apgd_attack")):
        def spy(*args, _name=name, _run=getattr(attacks_run, function), **kwargs):
            seen[_name] = kwargs["n_steps"]
            return _run(*args, **kwargs)
        monkeypatch.setattr(attacks_run, function, spy)
    report = robust_report(trained_digits, *few_test_images, attack=attack, n_steps=n_steps,
                           verbose=0)
    assert seen == ran
    stated = report.settings["n_steps"]
    assert (stated if isinstance(stated, dict) else dict.fromkeys(ran, stated)) == ran


@pytest.mark.parametrize("kwargs, match", [
    (dict(attack="cw"), "attack"),
    (dict(attack=("pgd", "square"), n_steps={"square": 5}),
     r"n_steps names \['square'\], but the iterations of PGD \+ Square are those of \['pgd'\]"),
    (dict(attack=("pgd", "apgd-ce"), n_steps={"pgd": 0}), "'n_steps' parameter"),
    (dict(attack="pgd", n_steps="ten"), "'n_steps' parameter.*dict"),
    (dict(attack="square", n_queries=0), "n_queries"),
    (dict(attack="fab-t", n_targets=0), "n_targets"),
    (dict(attack="pgd", n_targets=3), "n_targets applies"),
    (dict(attack="autoattack", epsilon=-0.1), "epsilon"),
    (dict(attack="autoattack", n_restarts=0), "n_restarts"),
])
def test_bad_attacks_are_refused_before_any_work(trained_digits, few_test_images, monkeypatch,
                                                 kwargs, match):
    monkeypatch.setattr(type(trained_digits), "_adversarial_examples",
                        lambda *a, **k: pytest.fail("the attack started"))
    with pytest.raises(ValueError, match=match):
        robust_report(trained_digits, *few_test_images, **kwargs)


@pytest.mark.parametrize("attack", ["pgd", "apgd-ce", "square"])
def test_a_sample_counts_as_robust_only_if_it_is_also_classified_correctly(masked_model,
                                                                           tabular, attack):
    # Regression: a random start could carry a misclassified sample into its class, which
    # then counted as robust (robust accuracy above clean accuracy on this model).
    X, y = tabular
    budget = {"n_queries": 50} if attack == "square" else {"n_steps": 5}
    robust = robust_predict(masked_model, X, y, attack=attack, epsilon=0.3, verbose=0,
                            **budget) == y
    clean = masked_model.predict(X) == y
    assert not np.any(robust & ~clean)
