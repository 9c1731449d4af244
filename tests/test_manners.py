"""scikit-learn manners that a newcomer expects: feature names, sample shapes, refusals that
say what to do instead, predict_log_proba, a short repr."""

import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from srat_sklearn import SRATClassifier, robust_accuracy_score, robust_report


@pytest.fixture(scope="module")
def frame(tabular):
    X, y = tabular
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]), y


@contextmanager
def feature_name_warnings_fail():
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*feature names.*")
        yield


def test_robust_evaluation_of_a_data_frame_keeps_feature_names(frame, fast_params):
    X, y = frame
    clf = SRATClassifier(**fast_params).fit(X, y)
    with feature_name_warnings_fail():
        robust_accuracy_score(clf, X, y, verbose=0)
        robust_report(clf, X, y, verbose=0)


def test_robust_evaluation_under_pandas_output(tabular, fast_params):
    X, y = tabular
    with sklearn.config_context(transform_output="pandas"):
        pipe = make_pipeline(StandardScaler(), SRATClassifier(**fast_params)).fit(X, y)
        with feature_name_warnings_fail():
            robust_report(pipe, X, y, verbose=0)


@pytest.fixture(scope="module")
def rows_model(digits_split):
    X_train, _, y_train, _ = digits_split
    clf = SRATClassifier(input_shape=(1, 8, 8), max_epochs=1, n_steps=1, epsilon=0.1,
                         random_state=0, verbose=0)
    return clf.fit(X_train.reshape(len(X_train), -1), y_train)


def test_input_shape_takes_rows_and_samples_of_that_shape(rows_model, digits_split):
    _, X_test, _, _ = digits_split
    from_images = rows_model.predict_proba(X_test)
    from_rows = rows_model.predict_proba(X_test.reshape(len(X_test), -1))
    assert np.array_equal(from_images, from_rows)


def test_shape_errors_speak_of_sample_shapes(rows_model, digits_split):
    _, X_test, _, _ = digits_split
    with pytest.raises(ValueError, match=r"samples of shape \(1, 4, 4\).*\(1, 8, 8\).*rows of "
                                         r"64 values"):
        rows_model.predict(X_test[:, :, :4, :4])


def test_channels_last_images_get_a_warning(digits_split, fast_params):
    X_train, _, y_train, _ = digits_split
    nhwc = X_train.transpose(0, 2, 3, 1)  # (n, 8, 8, 1)
    with pytest.warns(UserWarning, match="channels last"):
        SRATClassifier(max_epochs=1, n_steps=1, epsilon=0.1, random_state=0,
                       verbose=0).fit(nhwc, y_train)


def _fit_images(X, y, **params):
    # One epoch, no schedule: neither class weights nor a learning-rate drop to warn about.
    return SRATClassifier(max_epochs=1, n_steps=1, class_weight=None, reweight_lr_factor=1.0,
                          random_state=0, verbose=0, **params).fit(X, y)


@pytest.mark.parametrize("scale, dtype, params", [
    (255, np.uint8, {}),  # 8-bit pixels, the default budget of [0, 1]
    (255, np.float32, dict(epsilon=2 / 255)),
    (16, np.float32, {}),  # sklearn's digits as load_digits returns them
    (255, np.float32, dict(norm="l2", epsilon=0.5)),
])
def test_a_budget_for_images_in_0_1_given_other_units_warns_once(digits_split, scale, dtype,
                                                                 params):
    X_train, _, y_train, _ = digits_split
    X = np.round(X_train[:200] * scale).astype(dtype)
    with pytest.warns(UserWarning, match=rf"values in \[0, {scale}\], not \[0, 1\].*divide by "
                                         r"255") as record:
        _fit_images(X, y_train[:200], **params)
    assert sum("not [0, 1]" in str(w.message) for w in record) == 1


@pytest.mark.parametrize("params", [dict(epsilon=8.0), dict(epsilon=0.5),
                                    dict(norm="l2", epsilon=4.0)])
def test_a_budget_that_reaches_a_flat_image_warns(digits_split, params):
    # Images in [0, 1]: at L-inf 0.5 (L2 0.5 per value of 64) every image reaches the gray one.
    X_train, _, y_train, _ = digits_split
    with pytest.warns(UserWarning, match=r"at least half the range \[0, 1\].*no classifier "
                                         r"can be robust"):
        _fit_images(X_train[:200], y_train[:200], **params)


@pytest.mark.parametrize("offset, scale, params", [
    (0.0, 1, {}),  # the default budget where it belongs
    (0.0, 255, dict(epsilon=8.0)),  # 8/255 in the pixels' own units
    (-0.5, 4, {}),  # normalised images: 8/255 is more than a level of their range
    (0.0, 255, dict(epsilon=0.0)),  # natural training has no budget to check
    (0.0, 1, dict(epsilon=0.3)),  # MNIST's standard budget
])
def test_a_budget_in_the_units_of_the_images_does_not_warn(digits_split, offset, scale, params):
    X_train, _, y_train, _ = digits_split
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _fit_images((X_train[:200] + offset) * scale, y_train[:200], **params)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_sample_weight_is_refused_with_what_to_do(tabular, fast_params, method):
    X, y = tabular
    with pytest.raises(TypeError, match="sample_weight.*class_weight"):
        getattr(SRATClassifier(**fast_params), method)(X, y, sample_weight=np.ones(len(y)))


def test_predict_log_proba(tabular, fast_params):
    X, y = tabular
    clf = SRATClassifier(**fast_params).fit(X, y)
    assert np.allclose(clf.predict_log_proba(X), np.log(clf.predict_proba(X)))


def test_repr_shows_what_differs_from_the_defaults():
    assert repr(SRATClassifier()) == "SRATClassifier()"
    assert repr(SRATClassifier(epsilon=0.1, max_epochs=2, module__hidden_units=(16,))) == \
        "SRATClassifier(epsilon=0.1, max_epochs=2, module__hidden_units=(16,))"


def test_scorers_say_which_estimators_they_attack(tabular, fast_params):
    X, y = tabular
    wrapped = CalibratedClassifierCV(SRATClassifier(**fast_params), cv=2).fit(X, y)
    with pytest.raises(TypeError, match="CalibratedClassifierCV.*score each SRATClassifier"):
        robust_accuracy_score(wrapped, X, y)


@pytest.fixture
def binary_model(tabular, fast_params):
    X, y = tabular
    y = (y == 2).astype(np.int64)
    return SRATClassifier(**fast_params).fit(X, y), X, y


def test_binary_worst_case_names_only_the_attacks_that_ran(binary_model):
    clf, X, y = binary_model
    report = robust_report(clf, X, y, worst_case=True, n_steps=2, verbose=0)
    assert "the worst case of PGD, APGD-CE: 2 iterations" in report.to_markdown()
    assert report.to_dict()["settings"]["members"] == ["pgd", "apgd-ce"]


def test_reports_show_labels_as_plain_values(binary_model):
    clf, X, y = binary_model
    report = robust_report(clf, X, y, n_steps=2, verbose=0).to_dict()
    labels = report["classes"] + report["under_represented"]
    assert labels and all(type(label) is int for label in labels)
    assert "np." not in repr(report)


@pytest.fixture
def stream(tabular):
    """``tabular`` as two parts, the first without its rarest class (label 2)."""
    X, y = tabular
    first = y[:120] != 2
    return (X[:120][first], y[:120][first]), (X[120:], y[120:])


@pytest.mark.parametrize("weights", [dict(class_weight=None), dict(class_prior=[144, 72, 24])])
def test_partial_fit_learns_the_classes_its_first_call_names(stream, fast_params, weights):
    (X_first, y_first), (X_next, y_next) = stream
    clf = SRATClassifier(**fast_params, **weights)
    clf.partial_fit(X_first, y_first, classes=[0, 1, 2])
    assert clf.classes_.tolist() == [0, 1, 2]
    assert clf.predict_proba(X_first).shape == (len(y_first), 3)
    clf.partial_fit(X_next, y_next, classes=[0, 1, 2])  # later calls may repeat them
    assert len(clf.history) == 2 * fast_params["max_epochs"]


@pytest.mark.parametrize("constructor, first, later, match", [
    ([0, 1], [0, 1, 2], None, r"classes=\[0, 1, 2\]\) is not the same as the constructor's"),
    (None, [0, 1, 2], [0, 1, 2, 3], r"classes=\[0, 1, 2, 3\]\) is not the same as the classes "
                                    r"of the first call, \[0, 1, 2\]"),
])
def test_partial_fit_refuses_classes_that_contradict_the_known_ones(
        stream, fast_params, constructor, first, later, match):
    (X_first, y_first), _ = stream
    clf = SRATClassifier(**fast_params, classes=constructor, class_weight=None)
    with pytest.raises(ValueError, match=match):
        clf.partial_fit(X_first, y_first, classes=first)
        clf.partial_fit(X_first, y_first, classes=later)


def test_balanced_weights_of_a_part_without_a_class_say_to_pass_the_prior(stream, fast_params):
    (X_first, y_first), _ = stream
    with pytest.raises(ValueError, match=r"classes \[2\] have no training sample.*"
                                         r"class_prior="):
        SRATClassifier(**fast_params).partial_fit(X_first, y_first, classes=[0, 1, 2])
