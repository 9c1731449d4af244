"""scikit-learn's own estimator checks, run on a small SRATClassifier.

skorch's NeuralNetClassifier fails about half of these; SRATClassifier must
pass all but the few listed in EXPECTED_FAILED_CHECKS, each with its reason.
"""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from srat_sklearn import SRATClassifier

# check_set_params sets every parameter to -inf, inf and None; skorch's set_params builds the
# callbacks at once, so callbacks=-inf raises a TypeError there and sklearn warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:TypeError occurred during set_params")

EXPECTED_FAILED_CHECKS = {
    "check_no_attributes_set_in_init": (
        "skorch's NeuralNet.__init__ sets history_, initialized_ and virtual_params_, and "
        "stores prefixed arguments such as module__hidden_units and "
        "iterator_train__shuffle as attributes; skorch's get_params and set_params rely on "
        "all of them."),
}


def small_classifier():
    # Enough optimisation for the checks' accuracy thresholds on their blob data, in
    # well under a second per fit. reweight_epoch=0: check_class_weight_classifiers
    # needs the class weights on for the whole (short) fit.
    return SRATClassifier(max_epochs=10, lr=0.01, n_steps=1, reweight_epoch=0,
                          module__hidden_units=(16,), random_state=0, verbose=0)


def expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS


@parametrize_with_checks([small_classifier()], expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_at_most_five_expected_failures():
    assert len(EXPECTED_FAILED_CHECKS) <= 5
