"""The under-represented group is never silently empty, and resampling does not hide it."""

import re
import warnings

import numpy as np
import pytest
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from srat_sklearn import SRATClassifier, robust_report
from srat_sklearn.datasets import imbalanced_counts
from srat_sklearn.metrics import make_group_scorer, under_represented_mask


@pytest.mark.parametrize("counts, expected", [
    ([1000, 50, 50], [False, True, True]),
    ([100] * 4 + [10] * 6, [False] * 4 + [True] * 6),
    ([100] * 5 + [10] * 5, [False] * 5 + [True] * 5),
    ([300, 30], [False, True]),
    ([4913, 329, 115, 87, 28], [False, True, True, True, True]),  # page-blocks
    ([50, 0, 50], [False, True, False]),  # a class without samples is rare
], ids=["one-common", "4-common-6-rare", "step", "binary", "page-blocks", "empty-class"])
def test_rule_finds_the_rare_classes(counts, expected):
    assert under_represented_mask(counts).tolist() == expected


def test_rule_splits_an_exponential_imbalance_at_its_middle():
    counts = imbalanced_counts({c: 126 for c in range(10)}, ratio=20, kind="exp")
    assert under_represented_mask(list(counts.values())).tolist() == [False] * 5 + [True] * 5


def test_rule_takes_frequencies_as_well_as_counts():
    assert under_represented_mask([0.8, 0.1, 0.1]).tolist() == [False, True, True]


@pytest.mark.parametrize("counts", [[40, 40, 40], [0.5, 0.5]])
def test_equal_counts_are_an_error_not_an_empty_group(counts):
    with pytest.raises(ValueError, match="same training count.*class_prior"):
        under_represented_mask(counts)


@pytest.mark.parametrize("counts", [[5], [-1, 3], [0, 0], [np.nan, 2]])
def test_rule_rejects_nonsense_counts(counts):
    with pytest.raises(ValueError, match="class_counts"):
        under_represented_mask(counts)


# ----------------------------------------------------------------- behind a sampler

@pytest.fixture(scope="module")
def imbalanced(tabular):
    X, y = tabular  # 3 classes, roughly 60% / 30% / 10%
    return X, y, np.bincount(y)


def smote_pipeline(fast_params, **params):
    return make_pipeline(StandardScaler(), SMOTE(random_state=0),
                         SRATClassifier(**fast_params, **params))


def test_smote_without_prior_warns_that_reweighting_does_nothing(imbalanced, fast_params):
    X, y, _ = imbalanced
    with pytest.warns(UserWarning, match="same number of training samples.*class_prior"):
        pipe = smote_pipeline(fast_params).fit(X, y)
    assert np.all(pipe[-1].class_weights_ == 1.0)


@pytest.mark.parametrize("params, named", [
    ({"loss": "ldam"}, "loss='ldam' gives every class the same margin"),
    ({"loss": "bsl"}, "loss='bsl' shifts every logit alike"),
    ({"class_epsilon_mix": 0.5}, "class_epsilon_mix=0.5 gives every class the same budget"),
])
def test_smote_without_prior_warns_of_what_else_the_counts_decide(imbalanced, fast_params,
                                                                   params, named):
    # Behind a sampler, AT-BSL without class_prior would silently be plain AT.
    X, y, counts = imbalanced
    with pytest.warns(UserWarning, match=re.escape(named)):
        smote_pipeline(fast_params, class_weight=None, **params).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        smote_pipeline(fast_params, class_weight=None, class_prior=counts, **params).fit(X, y)


@pytest.mark.parametrize("class_weight", [None, {0: 1.0, 1: 2.0, 2: 3.0}])
def test_no_warning_without_weights_computed_from_the_counts(imbalanced, fast_params,
                                                             class_weight):
    # Weights given by hand do not depend on the counts: they weigh as given.
    X, y, _ = imbalanced
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipe = smote_pipeline(fast_params, class_weight=class_weight).fit(X, y)
    if class_weight is not None:
        assert len(set(pipe[-1].class_weights_.tolist())) == 3


def test_class_prior_restores_the_weights_of_the_original_data(imbalanced, fast_params):
    X, y, counts = imbalanced
    pipe = smote_pipeline(fast_params, class_prior=counts).fit(X, y)
    clf = pipe[-1]
    assert np.all(clf.class_counts_ == clf.class_counts_[0])  # SMOTE balanced what it saw
    assert np.allclose(clf.class_prior_, counts / counts.sum())
    expected = (1 / counts) / np.mean(1 / counts)
    assert np.allclose(clf.class_weights_, expected)


def test_class_prior_as_a_dict_of_labels(imbalanced, fast_params):
    X, y, counts = imbalanced
    labels = np.array(["a", "b", "c"])[y]
    prior = {"a": counts[0], "b": counts[1], "c": counts[2]}
    clf = SRATClassifier(**fast_params, class_prior=prior).fit(X, labels)
    assert np.allclose(clf.class_prior_, counts / counts.sum())


@pytest.mark.parametrize("prior, error, match", [
    ([1.0, 2.0], ValueError, "one value per class"),
    ([1.0, -2.0, 1.0], ValueError, "class_prior"),
    ([1.0, 0.0, 1.0], ValueError, "class_prior"),
    ({0: 1.0, 1: 2.0}, ValueError, "every class"),
    ({0: 1.0, 1: 2.0, 2: 1.0, 7: 1.0}, ValueError, "not in y"),
    ("balanced", TypeError, "class_prior"),
])
def test_bad_class_prior(imbalanced, fast_params, prior, error, match):
    X, y, _ = imbalanced
    with pytest.raises(error, match=match):
        SRATClassifier(**fast_params, class_prior=prior).fit(X, y)


def test_report_groups_come_from_the_counts_before_resampling(imbalanced, fast_params):
    X, y, counts = imbalanced
    pipe = smote_pipeline(fast_params, class_prior=counts).fit(X, y)
    report = robust_report(pipe, X, y, epsilon=0.1, n_steps=2, verbose=0)
    assert report.under_represented == [2]
    assert not np.isnan(report.groups["under"]["robust"])


def test_report_on_balanced_training_warns_and_says_na(imbalanced, fast_params):
    X, y, _ = imbalanced
    pipe = smote_pipeline(fast_params, class_weight=None).fit(X, y)
    with pytest.warns(UserWarning, match="same training count.*'under' row is n/a"):
        report = robust_report(pipe, X, y, epsilon=0.1, n_steps=2, verbose=0)
    assert report.under_represented == [] and np.isnan(report.groups["under"]["clean"])
    assert "| under | n/a | n/a |" in report.to_markdown()


def test_a_report_on_unknown_labels_fails_before_it_warns_about_the_groups(imbalanced,
                                                                          fast_params):
    X, y, _ = imbalanced
    pipe = smote_pipeline(fast_params, class_weight=None).fit(X, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="labels the classifier was not fitted on"):
            robust_report(pipe, X, y + 10, epsilon=0.1, n_steps=2, verbose=0)
    assert [str(w.message) for w in caught] == []


def test_group_scorer_on_balanced_training_raises_instead_of_nan(imbalanced, fast_params):
    X, y, _ = imbalanced
    pipe = smote_pipeline(fast_params, class_weight=None).fit(X, y)
    with pytest.raises(ValueError, match="same training count"):
        make_group_scorer("under", epsilon=0.1, n_steps=2)(pipe, X, y)


def test_group_scorer_without_test_samples_of_the_group_raises(imbalanced, fast_params):
    X, y, counts = imbalanced
    clf = SRATClassifier(**fast_params).fit(X, y)
    common = y != 2
    with pytest.raises(ValueError, match="no sample of the under-represented"):
        make_group_scorer("under", robust=False)(clf, X[common], y[common])


def test_a_single_label_is_one_class_not_its_characters(imbalanced, fast_params):
    X, y, _ = imbalanced
    labels = np.array(["benign", "malignant", "other"])[y]
    clf = SRATClassifier(**fast_params).fit(X, labels)
    report = robust_report(clf, X, labels, under_represented="malignant", epsilon=0.0,
                           verbose=0)
    assert report.under_represented == ["malignant"]


def test_naming_every_class_under_represented_is_an_error(imbalanced, fast_params):
    X, y, _ = imbalanced
    clf = SRATClassifier(**fast_params).fit(X, y)
    with pytest.raises(ValueError, match="well-represented group is empty"):
        robust_report(clf, X, y, under_represented=[0, 1, 2], verbose=0)


def test_naming_no_class_under_represented_is_an_error(imbalanced, fast_params):
    # It was a report whose 'under' row was n/a, without a word.
    X, y, _ = imbalanced
    clf = SRATClassifier(**fast_params).fit(X, y)
    with pytest.raises(ValueError, match="under_represented names no class.*pass None"):
        robust_report(clf, X, y, under_represented=[], verbose=0)


@pytest.mark.parametrize("attack", [dict(attack="pgd"), dict(attack=("pgd", "apgd-ce"))])
def test_a_group_without_test_samples_warns_once(imbalanced, fast_params, attack):
    # Once, not once for the clean and once for the robust column (and per attack).
    X, y, _ = imbalanced
    clf = SRATClassifier(**fast_params).fit(X, y)
    common = y == np.bincount(y).argmax()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = robust_report(clf, X[common], y[common], n_steps=2, verbose=0, **attack)
    assert sum("hold no sample" in str(w.message) for w in caught) == 1
    assert "| under | n/a | n/a |" in report.to_markdown()


def test_a_group_scorer_naming_no_class_is_refused_when_made():
    with pytest.raises(ValueError, match="under_represented names no class"):
        make_group_scorer("under", under_represented=[])
