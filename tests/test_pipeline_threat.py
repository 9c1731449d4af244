"""A threat model named in a pipeline's input columns and units, carried to the classifier."""

import json
import pickle
from contextlib import contextmanager

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MinMaxScaler,
    OneHotEncoder,
    StandardScaler,
)

from srat_sklearn import SRATClassifier, audit_robustness, robust_report
from srat_sklearn.metrics import make_group_scorer, robust_predict
from srat_sklearn.metrics._pipeline_threat import classifier_threat, input_budget

NUMERIC = ["amount", "hour", "age", "account_days", "past_disputes"]
CATEGORICAL = ["country", "channel"]
N_FEATURES = 5 + 4 + 3  # scaled numeric columns, then one-hot countries and channels


def columns(numeric=StandardScaler(), categorical=OneHotEncoder()):
    return ColumnTransformer([("num", numeric, NUMERIC), ("cat", categorical, CATEGORICAL)])


@pytest.fixture(scope="module")
def pipeline(mixed_table):
    frame, y = mixed_table
    clf = SRATClassifier(max_epochs=3, epsilon=0.1, n_steps=2, random_state=0, verbose=0,
                         module__hidden_units=(16,))
    return make_pipeline(columns(), clf).fit(frame, y)


@contextmanager
def recorded_attacks(classifier):
    """The classifier's input and adversarial examples of each attack it runs (the metrics'
    and generate_adversarial's)."""
    calls = []
    generate = type(classifier)._adversarial_examples

    def recording(self, X, y, **kwargs):
        X_adv, robust_after = generate(self, X, y, **kwargs)
        calls.append((np.asarray(X, dtype=np.float32), X_adv))
        return X_adv, robust_after

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(classifier), "_adversarial_examples", recording)
        yield calls


@pytest.fixture
def attacked(pipeline):
    with recorded_attacks(pipeline[-1]) as calls:
        yield calls


@pytest.mark.parametrize("epsilon, features, expected", [
    (0.5, [0, 2], [0.5, 0, 0.5]),
    ([1.0, 2.0, 3.0], None, [1, 2, 3]),
    ([1.0, 2.0, 3.0], [1], [0, 2, 0]),
    ({"b": 4.0}, None, [0, 4, 0]),
])
def test_input_budget(epsilon, features, expected):
    assert input_budget(epsilon, features, 3, ["a", "b", "c"]).tolist() == expected


@pytest.mark.parametrize("epsilon, features, match", [
    ([1.0, 2.0], None, "2 values, but X has 3 columns"),
    ([1.0, -2.0, 0.0], None, ">= 0"),
    ({"b": -1.0}, None, r"epsilon\['b'\]"),
    ({"z": 1.0}, None, "does not have"),
    (1.0, ["z"], "does not have"),
])
def test_bad_input_budget(epsilon, features, match):
    with pytest.raises(ValueError, match=match):
        input_budget(epsilon, features, 3, ["a", "b", "c"])


def test_scalers_rescale_and_fixed_one_hot_columns_are_frozen(pipeline, mixed_table):
    frame, _ = mixed_table
    transformer = pipeline[:-1]
    budget = input_budget({"amount": 30.0, "hour": 2.0}, None, 7, frame.columns)
    carried = classifier_threat(transformer, budget)
    scale = transformer[0].named_transformers_["num"].scale_
    np.testing.assert_allclose(carried[:5], [30 / scale[0], 2 / scale[1], 0, 0, 0])
    assert carried.shape == (N_FEATURES,) and not carried[5:].any()


def test_min_max_scaler_multiplies(mixed_table):
    frame, _ = mixed_table
    transformer = make_pipeline(columns(numeric=MinMaxScaler())).fit(frame)
    carried = classifier_threat(transformer, input_budget({"hour": 2.0}, None, 7,
                                                           frame.columns))
    np.testing.assert_allclose(carried[1], 2.0 / (frame["hour"].max() - frame["hour"].min()))


def test_an_imputer_carries_the_budget_unchanged():
    X = np.array([[1.0, np.nan, 3.0], [2.0, 5.0, np.nan], [4.0, 6.0, 1.0]])
    transformer = make_pipeline(SimpleImputer()).fit(X)
    np.testing.assert_array_equal(classifier_threat(transformer, np.array([0.5, 0, 2.0])),
                                  [0.5, 0, 2.0])


def test_an_imputer_that_drops_a_column_is_refused():
    X = np.array([[1.0, np.nan, 3.0], [2.0, np.nan, 1.0]])
    transformer = make_pipeline(SimpleImputer()).fit(X)  # the empty middle column goes
    with pytest.raises(ValueError, match="SimpleImputer"):
        classifier_threat(transformer, np.array([0.5, 0, 2.0]))


def test_a_transformer_that_cannot_count_its_outputs_gets_a_clear_error():
    transformer = make_pipeline(FunctionTransformer(np.log1p)).fit(np.ones((3, 2)))
    with pytest.raises(ValueError, match="does not say how many features"):
        classifier_threat(transformer, np.zeros(2))


@pytest.mark.parametrize("make, match", [
    (lambda: make_pipeline(columns()), "OneHotEncoder.*switches category"),
    (lambda: make_pipeline(columns(numeric=PCA(2))), "PCA"),
])
def test_budgets_that_cannot_be_carried_are_refused(mixed_table, make, match):
    frame, _ = mixed_table
    transformer = make().fit(frame)
    budget = input_budget({"country": 1.0, "amount": 1.0}, None, 7, frame.columns)
    with pytest.raises(ValueError, match=match):
        classifier_threat(transformer, budget)


def test_the_attack_moves_only_the_named_columns_within_their_budget(pipeline, mixed_table,
                                                                     attacked):
    frame, y = mixed_table
    robust_predict(pipeline, frame, y, epsilon={"amount": 30.0, "hour": 2.0}, verbose=0)
    ((X, X_adv),) = attacked
    moved = np.abs(X_adv - X).max(axis=0)
    scale = pipeline[0].named_transformers_["num"].scale_
    assert np.all(moved[2:] == 0)
    assert np.all(moved[:2] <= np.array([30.0, 2.0]) / scale[:2] + 1e-5)
    assert np.all(moved[:2] > 0.5 * np.array([30.0, 2.0]) / scale[:2])  # PGD uses its budget


def test_perturbable_columns_with_one_budget(pipeline, mixed_table, attacked):
    frame, y = mixed_table
    robust_predict(pipeline, frame, y, epsilon=1.0, perturbable_features=["hour"], verbose=0)
    ((X, X_adv),) = attacked
    moved = np.abs(X_adv - X).max(axis=0)
    assert np.all(np.delete(moved, 1) == 0) and 0 < moved[1] <= 1.0 / pipeline[0]. \
        named_transformers_["num"].scale_[1] + 1e-5


def test_report_states_the_carried_threat(pipeline, mixed_table):
    frame, y = mixed_table
    report = robust_report(pipeline, frame, y, epsilon={"amount": 30.0}, verbose=0)
    assert f"1 of {N_FEATURES} features perturbable" in report.to_markdown().splitlines()[0]


@pytest.mark.parametrize("kwargs, stated", [
    (dict(epsilon={"amount": 30.0, "hour": 2.0}), {"amount": 30.0, "hour": 2.0}),
    (dict(epsilon=1.5, perturbable_features=["hour"]), {"hour": 1.5}),
])
def test_report_states_the_budget_in_the_units_of_the_input_columns(pipeline, mixed_table,
                                                                    kwargs, stated):
    # The classifier's radius is in its standardised features: alone it does not say what an
    # attacker may do to the data.
    frame, y = mixed_table
    report = robust_report(pipeline, frame, y, n_steps=2, verbose=0, **kwargs)
    assert report.settings["input_epsilon"] == stated
    budgets = ", ".join(f"{column} {budget:g}" for column, budget in stated.items())
    assert f"L-inf, epsilon per input column: {budgets} (at most " in \
        report.to_markdown().splitlines()[0]
    assert json.loads(json.dumps(report.to_dict()))["settings"]["input_epsilon"] == stated


@pytest.mark.filterwarnings("ignore:The features of X differ in scale")
def test_a_bare_classifiers_budget_is_stated_in_its_own_features(mixed_table):
    frame, y = mixed_table
    clf = SRATClassifier(max_epochs=1, epsilon=0.1, n_steps=1, random_state=0, verbose=0,
                         module__hidden_units=(8,)).fit(frame[NUMERIC], y)
    report = robust_report(clf, frame[NUMERIC], y, epsilon={"hour": 3.0}, n_steps=2, verbose=0)
    assert "input_epsilon" not in report.settings
    assert "L-inf, epsilon 3 (1 of 5 features" in report.to_markdown().splitlines()[0]


def test_input_columns_need_an_input_budget(pipeline, mixed_table):
    frame, y = mixed_table
    with pytest.raises(ValueError, match="give epsilon in their units"):
        robust_predict(pipeline, frame, y, perturbable_features=["amount"], verbose=0)


def test_perturbable_categorical_column_is_refused_before_the_attack(pipeline, mixed_table,
                                                                     attacked):
    frame, y = mixed_table
    with pytest.raises(ValueError, match="OneHotEncoder"):
        robust_predict(pipeline, frame, y, epsilon=1.0, perturbable_features=["country"])
    assert not attacked


def test_grid_search_with_a_column_transformer_and_a_pickled_scorer(mixed_table):
    frame, y = mixed_table
    scorer = pickle.loads(pickle.dumps(make_group_scorer(
        "under", epsilon={"amount": 30.0, "hour": 2.0}, n_steps=3)))
    clf = SRATClassifier(max_epochs=3, epsilon=0.1, n_steps=2, random_state=0, verbose=0,
                         module__hidden_units=(16,))
    search = GridSearchCV(make_pipeline(columns(), clf),
                          {"sratclassifier__lambda_sep": [0.0, 0.5]}, cv=2,
                          scoring={"robust_under": scorer}, refit="robust_under").fit(frame, y)
    assert np.isfinite(search.cv_results_["mean_test_robust_under"]).all()
    pickle.loads(pickle.dumps(search.best_estimator_))


def test_bare_classifier_takes_a_mapping_of_budgets(mixed_table):
    frame, y = mixed_table
    numeric = frame[NUMERIC]
    clf = SRATClassifier(max_epochs=3, epsilon=0.1, n_steps=2, random_state=0, verbose=0,
                         module__hidden_units=(8,)).fit(numeric, y)
    X_adv = clf.generate_adversarial(numeric, y, epsilon=np.array([0.0, 3.0, 0.0, 0.0, 0.0]))
    moved = np.abs(X_adv - numeric.to_numpy(np.float32)).max(axis=0)
    assert moved[[0, 2, 3, 4]].max() == 0 and 0 < moved[1] <= 3.0 + 1e-4
    report = robust_report(clf, numeric, y, epsilon={"hour": 3.0}, verbose=0)
    assert "1 of 5 features perturbable" in report.to_markdown().splitlines()[0]


def test_a_binary_report_states_the_one_target_there_is(pipeline, mixed_table):
    frame, y = mixed_table
    report = robust_report(pipeline, frame[:40], y[:40], attack="apgd-t", n_steps=2, verbose=0)
    assert "1 target class," in report.to_markdown().splitlines()[0]


# ----------------------------------------------------------------- the audit

AUDIT_BUDGET = dict(n_steps=4, n_restarts=2, n_queries=20, verbose=0)


@pytest.fixture(scope="module")
def column_audit(pipeline, mixed_table):
    """The audit of a threat model in input columns, and the inputs of each of its attacks."""
    frame, y = mixed_table
    with recorded_attacks(pipeline[-1]) as calls:
        audit = audit_robustness(pipeline, frame[:60], y[:60],
                                 epsilon={"amount": 30.0, "hour": 2.0}, **AUDIT_BUDGET)
    budget = np.array([30.0, 2.0]) / pipeline[0].named_transformers_["num"].scale_[:2]
    return audit, calls, budget


def test_audit_attacks_move_only_the_named_input_columns(column_audit):
    _, calls, budget = column_audit
    for X, X_adv in calls:
        moved = np.abs(X_adv - X).max(axis=0)
        assert np.all(moved[2:] == 0) and np.all(moved[:2] <= budget + 1e-5)


def test_audit_scales_every_input_budget_alike(column_audit):
    _, calls, budget = column_audit
    # The calls after the one at radius 0: the growing radii, a quarter of each budget first.
    for factor, (X, X_adv) in zip((0.25, 0.5, 0.75, 1.0), calls[1:5]):
        moved = np.abs(X_adv - X).max(axis=0)[:2]
        assert np.all(moved <= factor * budget + 1e-5)
        assert np.all(moved > 0.5 * factor * budget)  # each budget used, not only the largest


def test_audit_of_input_columns_states_them_and_skips_the_whole_box(column_audit):
    audit, _, _ = column_audit
    assert audit.settings["features"].startswith(f"2 of {N_FEATURES} features perturbable")
    assert audit.settings["input_epsilon"] == {"amount": 30.0, "hour": 2.0}
    first_line = audit.to_markdown().splitlines()[0]
    assert "L-inf, epsilon per input column: amount 30, hour 2 (at most " in first_line
    assert f"2 of {N_FEATURES} features perturbable" in first_line
    assert "unbounded attack leaves at most chance" not in [c.name for c in audit.checks]


@pytest.fixture(scope="module")
def numeric_classifier(mixed_table):
    """A classifier of the standardised numeric columns, without a pipeline, and its data."""
    frame, y = mixed_table
    numeric = frame[NUMERIC].to_numpy(np.float64)
    numeric = (numeric - numeric.mean(0)) / numeric.std(0)
    clf = SRATClassifier(max_epochs=5, epsilon=0.1, n_steps=2, random_state=0, verbose=0,
                         module__hidden_units=(16,)).fit(numeric, y)
    return clf, numeric, y


def test_audit_of_the_bare_classifier_reaches_the_box_in_each_features_budget(
        numeric_classifier):
    clf, numeric, y = numeric_classifier
    audit = audit_robustness(clf, numeric[:80], y[:80], epsilon=[0.1, 0.2, 0.1, 0.1, 0.4],
                             **AUDIT_BUDGET)
    box = next(c for c in audit.checks if c.name == "unbounded attack leaves at most chance")
    assert box.passed, audit.to_markdown()
    assert audit.settings["epsilon"] == 0.4
    assert "epsilon per feature" in audit.settings["features"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(epsilon={"amount": 0.0}), "changes no feature"),
    (dict(perturbable_features=["amount"]), "give epsilon in their units"),
    (dict(epsilon=1.0, perturbable_features=["country"]), "OneHotEncoder"),
])
def test_audit_refuses_a_threat_model_of_no_use(pipeline, mixed_table, kwargs, match):
    frame, y = mixed_table
    with pytest.raises(ValueError, match=match):
        audit_robustness(pipeline, frame[:20], y[:20], **kwargs, **AUDIT_BUDGET)


@pytest.mark.parametrize("kwargs, match", [
    (dict(perturbable_features=[7]), "indices outside"),
    (dict(epsilon=[0.1, np.nan, 0.1, 0.1, 0.1]), "finite"),
    (dict(epsilon=[0.1, 0.2]), "2 values"),
])
def test_audit_refuses_bad_feature_budgets(numeric_classifier, kwargs, match):
    clf, numeric, y = numeric_classifier
    with pytest.raises(ValueError, match=match):
        audit_robustness(clf, numeric[:20], y[:20], **kwargs, **AUDIT_BUDGET)
