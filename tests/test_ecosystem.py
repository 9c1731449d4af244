"""SRATClassifier among scikit-learn and imbalanced-learn tools: pipelines, samplers, searches."""

import numpy as np
import pytest
from imblearn.metrics import geometric_mean_score
from imblearn.over_sampling import SMOTE, RandomOverSampler
from imblearn.pipeline import make_pipeline as make_imblearn_pipeline
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from skorch.dataset import ValidSplit

from srat_sklearn import SRATClassifier, robust_accuracy_score
from srat_sklearn.metrics import make_robust_scorer, robust_predict


@pytest.fixture(scope="module")
def flat_digits(digits_split):
    """The imbalanced digits split with each image flattened to 64 columns."""
    X_train, X_test, y_train, y_test = digits_split
    return X_train.reshape(len(X_train), -1), X_test.reshape(len(X_test), -1), y_train, y_test


@pytest.fixture(scope="module")
def scaled_pipeline(tabular):
    X, y = tabular
    pipe = make_pipeline(StandardScaler(), SRATClassifier(
        max_epochs=3, epsilon=0.1, n_steps=2, random_state=0, verbose=0,
        module__hidden_units=(16,)))
    return pipe.fit(X, y)


def test_scorer_attacks_in_the_classifiers_input_space(scaled_pipeline, tabular):
    X, y = tabular
    scaler, clf = scaled_pipeline[0], scaled_pipeline[-1]
    scorer = make_robust_scorer(epsilon=0.3, random_start=False)
    direct = robust_accuracy_score(clf, scaler.transform(X), y, epsilon=0.3, random_start=False)
    assert scorer(scaled_pipeline, X, y) == direct


@pytest.mark.parametrize("score_func, kwargs", [
    (balanced_accuracy_score, {}),
    (geometric_mean_score, {}),
    (f1_score, {"average": "macro"}),
])
def test_scorer_takes_any_label_metric(scaled_pipeline, tabular, score_func, kwargs):
    X, y = tabular
    scorer = make_robust_scorer(score_func, epsilon=0.3, random_start=False, **kwargs)
    y_adv = robust_predict(scaled_pipeline, X, y, epsilon=0.3, random_start=False)
    assert scorer(scaled_pipeline, X, y) == pytest.approx(score_func(y, y_adv, **kwargs))


def test_scorer_is_below_clean_score(scaled_pipeline, tabular):
    X, y = tabular
    scorer = make_robust_scorer(balanced_accuracy_score, epsilon=0.5)
    assert scorer(scaled_pipeline, X, y) < balanced_accuracy_score(y, scaled_pipeline.predict(X))


def test_smote_pipeline_on_tabular_data(tabular):
    X, y = tabular
    pipe = make_imblearn_pipeline(StandardScaler(), SMOTE(random_state=0), SRATClassifier(
        max_epochs=3, epsilon=0.1, n_steps=2, random_state=0, verbose=0,
        module__hidden_units=(16,)))
    pipe.fit(X, y)
    clf = pipe[-1]
    # SMOTE balanced the training set that the classifier saw.
    assert len(set(clf.class_counts_.tolist())) == 1
    assert clf.class_counts_[0] == np.bincount(y).max()
    # At prediction time the sampler is skipped: one prediction per row.
    assert pipe.predict(X).shape == (len(X),)
    assert 0 <= make_robust_scorer(epsilon=0.1)(pipe, X, y) <= 1


def test_random_over_sampler_pipeline_on_flattened_images(flat_digits):
    X_train, X_test, y_train, y_test = flat_digits
    pipe = make_imblearn_pipeline(RandomOverSampler(random_state=0), SRATClassifier(
        input_shape=(1, 8, 8), max_epochs=2, epsilon=0.1, n_steps=2, random_state=0,
        verbose=0))
    pipe.fit(X_train, y_train)
    clf = pipe[-1]
    assert clf.sample_shape_ == (1, 8, 8)
    assert type(clf.module_).__name__ == "SmallCNN"
    assert len(set(clf.class_counts_.tolist())) == 1
    assert clf.bounds_ == (0.0, 1.0)
    assert 0 <= make_robust_scorer(epsilon=0.1, n_steps=5)(pipe, X_test, y_test) <= 1


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_with_clean_and_robust_scores(tabular, n_jobs):
    X, y = tabular
    pipe = make_imblearn_pipeline(MinMaxScaler(), RandomOverSampler(random_state=0),
                                  SRATClassifier(max_epochs=2, epsilon=0.1, n_steps=2,
                                                 random_state=0, verbose=0,
                                                 module__hidden_units=(16,)))
    search = GridSearchCV(
        pipe, {"sratclassifier__lambda_sep": [0.0, 1.0],
               "sratclassifier__class_weight": [None, "balanced"]},
        scoring={"clean": "balanced_accuracy",
                 "robust": make_robust_scorer(balanced_accuracy_score, epsilon=0.1,
                                              n_steps=5, random_start=False)},
        refit="robust", cv=StratifiedKFold(3), n_jobs=n_jobs)
    search.fit(X, y)
    results = search.cv_results_
    assert len(results["params"]) == 4
    robust = results["mean_test_robust"]
    assert np.all((0 <= robust) & (robust <= 1))
    assert search.best_index_ == int(np.argmax(robust))
    assert np.all(robust <= results["mean_test_clean"] + 1e-9)
    assert search.predict(X).shape == (len(X),)


def test_parallel_search_matches_serial_search(tabular):
    X, y = tabular
    pipe = make_pipeline(StandardScaler(), SRATClassifier(
        max_epochs=2, epsilon=0.1, n_steps=2, random_state=0, verbose=0,
        module__hidden_units=(16,)))
    grid = {"sratclassifier__lambda_sep": [0.0, 1.0]}
    scoring = make_robust_scorer(epsilon=0.2, random_start=False)
    serial = GridSearchCV(pipe, grid, scoring=scoring, cv=3).fit(X, y)
    parallel = GridSearchCV(pipe, grid, scoring=scoring, cv=3, n_jobs=2).fit(X, y)
    assert np.array_equal(serial.cv_results_["mean_test_score"],
                          parallel.cv_results_["mean_test_score"])


def test_grid_search_over_a_sampler_pipeline_on_flattened_images(flat_digits):
    X_train, X_test, y_train, y_test = flat_digits
    pipe = make_imblearn_pipeline(RandomOverSampler(random_state=0), SRATClassifier(
        input_shape=(1, 8, 8), max_epochs=2, epsilon=0.1, n_steps=2, random_state=0,
        verbose=0, module__channels=(8, 16), module__hidden_units=32))
    search = GridSearchCV(
        pipe, {"sratclassifier__lambda_sep": [0.0, 1.0]},
        scoring={"clean": "balanced_accuracy",
                 "robust": make_robust_scorer(geometric_mean_score, epsilon=0.1, n_steps=3)},
        refit="robust", cv=StratifiedKFold(2), n_jobs=2)
    search.fit(X_train, y_train)
    assert search.best_estimator_[-1].sample_shape_ == (1, 8, 8)
    assert np.all(search.cv_results_["mean_test_robust"] <= search.cv_results_["mean_test_clean"]
                  + 1e-9)
    assert search.score(X_test, y_test) >= 0


@pytest.fixture
def robust_epoch_scoring():
    from skorch.callbacks import EpochScoring

    def make(use_caching):
        return EpochScoring(make_robust_scorer(n_steps=3), name="valid_robust",
                            lower_is_better=False, use_caching=use_caching)
    return make


def test_robust_epoch_scoring_during_a_seeded_fit(tabular, fast_params, robust_epoch_scoring):
    # The scorer attacks (and seeds) inside the fit's own seeded context.
    X, y = tabular

    def fit():
        return SRATClassifier(callbacks=[robust_epoch_scoring(False)],
                              **{**fast_params, "train_split": ValidSplit(4)}).fit(X, y)
    first, second = fit(), fit()
    robust = first.history[:, "valid_robust"]
    assert robust == second.history[:, "valid_robust"]
    assert np.all(np.array(robust) <= np.array(first.history[:, "valid_acc"]) + 1e-9)


def test_robust_epoch_scoring_refuses_cached_clean_predictions(tabular, fast_params,
                                                               robust_epoch_scoring):
    X, y = tabular
    clf = SRATClassifier(callbacks=[robust_epoch_scoring(True)],
                         **{**fast_params, "train_split": ValidSplit(4)})
    with pytest.raises(ValueError, match="use_caching=False"):
        clf.fit(X, y)
