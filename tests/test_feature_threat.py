"""The tabular threat model: perturbable features, per-feature budgets, epsilon_scale."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import GridSearchCV

from srat_sklearn import SRATClassifier, audit_robustness, robust_report
from srat_sklearn.attacks import ATTACKS

PERTURBABLE = [0, 2, 5]
FROZEN = [1, 3, 4, 6, 7]

def fast_settings(attack):
    """Short budgets, each given only to the attacks that take it."""
    settings = {} if attack == "pgd" else dict(n_steps=5)
    if attack in ("square", "autoattack"):
        settings["n_queries"] = 30
    if attack in ("apgd-t", "fab-t", "autoattack"):
        settings["n_targets"] = 2
    return settings


def _fit_frozen(tabular, bounds):
    return SRATClassifier(max_epochs=2, epsilon=0.3, n_steps=2, random_state=0, verbose=0,
                          module__hidden_units=(16,), perturbable_features=PERTURBABLE,
                          bounds=bounds).fit(*tabular)


@pytest.fixture(scope="module")
def frozen_model(tabular):
    return _fit_frozen(tabular, "auto")


@pytest.fixture(scope="module")
def unbounded_frozen_model(tabular):
    return _fit_frozen(tabular, None)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("bounded", [True, False])
def test_no_attack_changes_a_frozen_feature(frozen_model, unbounded_frozen_model, tabular,
                                            attack, norm, bounded):
    X, y = tabular
    model = frozen_model if bounded else unbounded_frozen_model
    X_adv = model.generate_adversarial(X, y, attack=attack, norm=norm, epsilon=1.0,
                                       **fast_settings(attack))
    assert np.isfinite(X_adv).all()
    np.testing.assert_array_equal(X_adv[:, FROZEN], X[:, FROZEN].astype(np.float32))
    assert np.abs(X_adv[:, PERTURBABLE] - X[:, PERTURBABLE]).max() > 0.05


def test_training_attacks_change_only_perturbable_features(tabular):
    seen = []

    class Recording(SRATClassifier):
        def _attack(self, X, y, **kwargs):
            X_adv = super()._attack(X, y, **kwargs)
            seen.append((X.detach().clone(), X_adv.detach().clone()))
            return X_adv

    X, y = tabular
    Recording(max_epochs=1, epsilon=0.5, n_steps=3, random_state=0, verbose=0,
              perturbable_features=PERTURBABLE, reuse_perturbations=True).fit(X, y)
    assert seen
    for clean, adversarial in seen:
        assert (adversarial[:, FROZEN] == clean[:, FROZEN]).all()
        assert (adversarial[:, PERTURBABLE] != clean[:, PERTURBABLE]).any()


@pytest.mark.parametrize("continue_with", ["partial_fit", "warm_start"])
def test_a_continued_fit_attacks_with_the_current_threat_parameters(tabular, continue_with):
    # Regression: a fit that continued training kept the first fit's perturbable features and
    # per-feature budgets, whatever set_params said since.
    seen = []

    class Recording(SRATClassifier):
        def _attack(self, X, y, **kwargs):
            X_adv = super()._attack(X, y, **kwargs)
            seen.append((X_adv - X).abs().amax(dim=0))
            return X_adv

    X, y = tabular
    clf = Recording(max_epochs=1, epsilon=0.5, n_steps=3, random_state=0, verbose=0,
                    perturbable_features=PERTURBABLE, warm_start=continue_with == "warm_start")
    getattr(clf, continue_with if continue_with == "partial_fit" else "fit")(X, y)
    epsilon = np.array([0.4, 0.1, 0.0, 0.2, 0.0, 0.0, 0.0, 0.3])
    clf.set_params(perturbable_features=None, epsilon=epsilon)
    seen.clear()
    getattr(clf, continue_with if continue_with == "partial_fit" else "fit")(X, y)
    moved = torch.stack(seen).amax(dim=0).numpy()
    np.testing.assert_array_equal(clf.perturbable_mask_, np.ones(8, dtype=bool))
    budgeted = epsilon > 0
    assert (moved <= epsilon + 1e-6).all() and (moved[budgeted] > 0.5 * epsilon[budgeted]).all()


def test_a_continued_fit_keeps_the_scale_its_first_fit_measured(tabular, fast_params):
    X, y = tabular
    clf = SRATClassifier(**{**fast_params, "max_epochs": 1}, epsilon_scale="std").fit(X, y)
    measured = clf.epsilon_scale_.copy()
    clf.partial_fit(X * 3, y)
    np.testing.assert_array_equal(clf.epsilon_scale_, measured)
    clf.set_params(epsilon_scale=None)
    with pytest.raises(ValueError, match="measured on the first fit's data only"):
        clf.partial_fit(X, y)


@pytest.mark.parametrize("features", [
    [True, False, True, False, False, True, False, False], np.array(PERTURBABLE)])
def test_masks_and_indices_select_the_same_features(tabular, fast_params, features):
    clf = SRATClassifier(**fast_params, perturbable_features=features).fit(*tabular)
    assert np.flatnonzero(clf.perturbable_mask_).tolist() == PERTURBABLE


def test_column_names_select_features_of_a_data_frame(tabular, fast_params):
    X, y = tabular
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    clf = SRATClassifier(**fast_params, perturbable_features=["f0", "f2", "f5"]).fit(frame, y)
    assert np.flatnonzero(clf.perturbable_mask_).tolist() == PERTURBABLE
    X_adv = clf.generate_adversarial(frame, y, epsilon=0.5)
    np.testing.assert_array_equal(X_adv[:, FROZEN], X[:, FROZEN].astype(np.float32))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_per_feature_epsilon_bounds_each_feature(tabular, fast_params, norm):
    X, y = tabular
    budgets = np.linspace(0.05, 0.4, X.shape[1])
    clf = SRATClassifier(**{**fast_params, "epsilon": budgets, "norm": norm,
                            "bounds": None}).fit(X, y)
    delta = clf.generate_adversarial(X, y, attack="apgd-ce", n_steps=10) - X.astype(np.float32)
    if norm == "linf":
        assert (np.abs(delta) <= budgets + 1e-5).all()
        moved = np.abs(delta).max(axis=1) > 0
        assert moved.sum() > 20  # APGD's sign steps end at the corners of the box
        assert np.isclose(np.abs(delta[moved]), budgets, atol=1e-4).mean() > 0.5
    else:  # the ellipsoid with the budgets as its axes
        assert ((delta / budgets) ** 2).sum(axis=1).max() <= 1 + 1e-4


def test_epsilon_scale_measures_epsilon_in_standard_deviations(tabular, fast_params):
    X, y = tabular
    X = X * np.logspace(-2, 2, X.shape[1])  # scales 1e-2 .. 1e2
    clf = SRATClassifier(**{**fast_params, "epsilon": 0.25, "bounds": None},
                         epsilon_scale="std").fit(X, y)
    np.testing.assert_allclose(clf.epsilon_scale_, X.std(axis=0), rtol=1e-5)
    delta = clf.generate_adversarial(X, y, attack="pgd", n_steps=5) - X
    ratio = np.abs(delta).max(axis=0) / (0.25 * X.std(axis=0))
    assert (ratio <= 1 + 1e-4).all() and (ratio > 0.9).all()
    # Evaluation after pickling attacks with the budget measured at fit.
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.epsilon_scale_, clf.epsilon_scale_)
    delta_again = restored.generate_adversarial(X * 2, y, attack="pgd", n_steps=5) - X * 2
    assert (np.abs(delta_again).max(axis=0) <= 0.25 * clf.epsilon_scale_ * (1 + 1e-4)).all()


def test_epsilon_scale_freezes_a_constant_feature(tabular, fast_params):
    X, y = tabular
    X = X.copy()
    X[:, 3] = 7.0
    clf = SRATClassifier(**{**fast_params, "bounds": None}, epsilon_scale="std").fit(X, y)
    X_test = X + np.random.default_rng(0).normal(size=X.shape)  # column 3 varies at test time
    delta = clf.generate_adversarial(X_test, y, epsilon=0.5) - X_test.astype(np.float32)
    assert (delta[:, 3] == 0).all() and np.abs(delta).max() > 0.1


@pytest.mark.parametrize("params, moves", [
    (dict(perturbable_features=np.zeros(8, dtype=bool)), False),
    (dict(perturbable_features=[3], epsilon_scale="std"), False),  # column 3 is constant
    (dict(epsilon=[0.0] * 7 + [0.1]), True),
    (dict(perturbable_features=[2, 3], epsilon_scale="std"), True),
])
def test_a_threat_model_that_moves_no_feature_warns(unit_box, fast_params, params, moves):
    # Natural training at the price of adversarial training, silently.
    X, y = unit_box
    X = X.copy()
    X[:, 3] = 0.5
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        SRATClassifier(**{**fast_params, **params}).fit(X, y)
    assert any("moves no feature" in str(w.message) for w in caught) == (not moves)


def test_one_epsilon_over_scales_far_apart_warns_once(tabular, fast_params):
    X, y = tabular
    X = X * np.logspace(-2, 2, X.shape[1])
    with pytest.warns(UserWarning, match="epsilon_scale='std'") as record:
        SRATClassifier(**fast_params).fit(X, y)
    assert sum("differ in scale" in str(w.message) for w in record) == 1


@pytest.fixture
def unit_box(tabular):
    """The tabular problem min-max scaled to [0, 1]: each feature's half-width is 0.5."""
    X, y = tabular
    return (X - X.min(axis=0)) / (X.max(axis=0) - X.min(axis=0)), y


@pytest.mark.parametrize("params", [
    dict(epsilon=0.6), dict(epsilon=[0.6] * 8), dict(epsilon=100.0, epsilon_scale="std"),
    dict(norm="l2", epsilon=1.5),  # the L2 ball of the box's half-diagonal, sqrt(8) / 2
])
def test_a_budget_that_moves_every_row_to_one_point_warns(unit_box, fast_params, params):
    with pytest.warns(UserWarning, match="every row to the same point") as record:
        SRATClassifier(**{**fast_params, **params}).fit(*unit_box)
    assert sum("same point" in str(w.message) for w in record) == 1


@pytest.mark.parametrize("params", [
    dict(epsilon=0.4), dict(norm="l2", epsilon=1.3),
    dict(epsilon=0.6, perturbable_features=[0, 1]),  # the frozen features still tell classes
])
def test_a_budget_short_of_one_point_does_not_warn(unit_box, fast_params, params):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        SRATClassifier(**{**fast_params, **params}).fit(*unit_box)


@pytest.mark.parametrize("params", [dict(epsilon_scale="std"), dict(perturbable_features=[0])])
def test_no_scale_warning_when_the_threat_model_handles_it(tabular, fast_params, params):
    X, y = tabular
    X = X * np.logspace(-2, 2, X.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        SRATClassifier(**{**fast_params, "bounds": None}, **params).fit(X, y)


@pytest.mark.parametrize("params, match", [
    (dict(perturbable_features=[True, False]), "mask of 2 entries"),
    (dict(perturbable_features=["f0"]), "no column names"),
    (dict(perturbable_features=[0, 8]), "outside 0..7"),
    (dict(perturbable_features=[0.5]), "integer indices"),
    (dict(perturbable_features=[[0, 1]]), "1-D"),
    (dict(epsilon=[0.1, 0.2]), "2 values, but X has 8"),
    (dict(epsilon=[0.1] * 7 + [-0.1]), ">= 0"),
    (dict(epsilon=[0.1] * 7 + [np.nan]), ">= 0"),
    (dict(epsilon=[[0.1]]), "1-D array"),
    (dict(epsilon_scale="mad"), "epsilon_scale"),
    (dict(integer_features=[1]), "not whole numbers"),
    (dict(integer_features=[9]), "outside 0..7"),
])
def test_bad_threat_models_are_refused_before_training(tabular, fast_params, params, match):
    clf = SRATClassifier(**{**fast_params, **params})
    with pytest.raises(ValueError, match=match):
        clf.fit(*tabular)
    assert not hasattr(clf, "module_")


def test_unknown_column_names_are_listed(tabular, fast_params):
    X, y = tabular
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    with pytest.raises(ValueError, match=r"does not have: \['amount'\]"):
        SRATClassifier(**fast_params, perturbable_features=["amount"]).fit(frame, y)


@pytest.mark.parametrize("params", [dict(perturbable_features=[0]), dict(epsilon_scale="std"),
                                    dict(epsilon=[0.1] * 64), dict(integer_features=[0])])
def test_feature_threats_are_refused_on_images(digits_split, params):
    X_train, _, y_train, _ = digits_split
    with pytest.raises(ValueError, match="applies to 2-D X"):
        SRATClassifier(max_epochs=1, verbose=0, **params).fit(X_train[:50], y_train[:50])


def test_reports_state_the_feature_threat(frozen_model, tabular):
    report = robust_report(frozen_model, *tabular, n_steps=3)
    assert "3 of 8 features perturbable" in report.describe_attack()


def test_audit_leaves_out_the_whole_box_check_when_features_are_frozen(frozen_model, tabular):
    X, y = tabular
    audit = audit_robustness(frozen_model, X[:40], y[:40], n_steps=4, n_restarts=2,
                             n_queries=20, verbose=0)
    names = [check.name for check in audit.checks]
    assert "unbounded attack leaves at most chance" not in names and len(names) == 7


def test_audit_states_the_classifiers_own_feature_threat_as_reports_do(frozen_model, tabular):
    # It stated a radius alone, as if every feature moved.
    X, y = tabular
    audit = audit_robustness(frozen_model, X[:40], y[:40], n_steps=4, n_restarts=2,
                             n_queries=20, verbose=0)
    described = f"{len(PERTURBABLE)} of 8 features perturbable"
    assert audit.settings["features"] == described
    assert f"L-inf, epsilon 0.3 ({described})" in audit.to_markdown().splitlines()[0]
    assert described in robust_report(frozen_model, X, y, verbose=0).to_markdown()


def test_grid_search_clones_and_pickles_the_threat_model(tabular, fast_params):
    X, y = tabular
    search = GridSearchCV(
        SRATClassifier(**fast_params, perturbable_features=np.array(PERTURBABLE)),
        {"epsilon_scale": [None, "std"]}, cv=2).fit(X, y)
    best = pickle.loads(pickle.dumps(search.best_estimator_))
    np.testing.assert_array_equal(best.perturbable_mask_, search.best_estimator_.perturbable_mask_)
    X_adv = best.generate_adversarial(X, y, epsilon=0.5)
    np.testing.assert_array_equal(X_adv[:, FROZEN], X[:, FROZEN].astype(np.float32))


# ----------------------------------------------------------------- integer features

@pytest.fixture(scope="module")
def integer_table(tabular):
    X, y = tabular
    X = X.copy()
    X[:, 0] = np.round(X[:, 0] * 3)  # a count, say
    return X, y


@pytest.fixture(scope="module")
def integer_model(integer_table):
    return SRATClassifier(max_epochs=3, epsilon=1.6, n_steps=3, random_state=0, verbose=0,
                          module__hidden_units=(16,), integer_features=[0],
                          epsilon_scale=None).fit(*integer_table)


@pytest.mark.parametrize("norm, epsilon", [("linf", 1.6), ("l2", 2.5)])
@pytest.mark.parametrize("attack", ["pgd", "apgd-ce", "square", "fab-t"])
def test_integer_features_move_by_whole_units_inside_the_ball(integer_model, integer_table,
                                                             attack, norm, epsilon):
    X, y = integer_table
    X_adv = integer_model.generate_adversarial(X, y, attack=attack, norm=norm, epsilon=epsilon,
                                               **fast_settings(attack))
    step = X_adv[:, 0] - X[:, 0].astype(np.float32)
    np.testing.assert_array_equal(step, np.round(step))
    delta = X_adv - X.astype(np.float32)
    size = np.abs(delta).max(axis=1) if norm == "linf" else np.linalg.norm(delta, axis=1)
    assert size.max() <= epsilon + 1e-4


def test_integer_features_do_move(integer_model, integer_table):
    X, y = integer_table
    X_adv = integer_model.generate_adversarial(X, y, epsilon=1.6, n_steps=10)
    assert np.abs(X_adv[:, 0] - X[:, 0]).max() >= 1


def test_integer_features_survive_pickling(integer_model, integer_table):
    X, y = integer_table
    restored = pickle.loads(pickle.dumps(integer_model))
    assert restored.feature_threat_.integer.tolist() == [True] + [False] * 7
