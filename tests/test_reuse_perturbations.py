"""reuse_perturbations: each sample's attack starts where its last one ended."""

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from srat_sklearn import SRATClassifier

EPSILON = 0.2


@pytest.fixture
def digits(digits_split):
    X_train, _, y_train, _ = digits_split
    return X_train[:256], y_train[:256]


def frozen_fgsm(**params):
    """One FGSM step of eps/4 per epoch from zero, and a model that (almost) does not learn:
    only the reused perturbations can grow past one step."""
    return SRATClassifier(**{
        "epsilon": EPSILON, "n_steps": 1, "step_size": EPSILON / 4, "random_start": False,
        "reuse_perturbations": True, "lr": 1e-12, "lambda_sep": 0.0, "class_weight": None,
        "max_epochs": 1, "random_state": 0, "verbose": 0,
        "module__channels": (4, 8), "module__hidden_units": 16, **params})


def largest(clf):
    return clf.perturbations_.abs().max().item()


def test_one_perturbation_per_training_sample(digits):
    X, y = digits
    clf = frozen_fgsm(random_start=True, max_epochs=2).fit(X, y)
    assert clf.perturbations_.shape == (len(y), *X.shape[1:])
    assert largest(clf) <= EPSILON + 1e-6


@pytest.mark.parametrize("epochs, expected", [(1, EPSILON / 4), (2, EPSILON / 2),
                                              (5, EPSILON)])
def test_perturbations_add_up_over_epochs(digits, epochs, expected):
    X, y = digits
    assert largest(frozen_fgsm(max_epochs=epochs).fit(X, y)) == pytest.approx(expected)


def test_without_reuse_each_epoch_starts_anew(digits):
    X, y = digits
    clf = frozen_fgsm(max_epochs=3, reuse_perturbations=False).fit(X, y)
    assert not hasattr(clf, "perturbations_")


def test_partial_fit_continues_and_fit_starts_anew(digits):
    X, y = digits
    clf = frozen_fgsm().fit(X, y)
    clf.partial_fit(X, y)
    assert largest(clf) == pytest.approx(EPSILON / 2)
    clf.fit(X, y)
    assert largest(clf) == pytest.approx(EPSILON / 4)


def test_each_sample_keeps_its_own(digits):
    # The stored perturbation of a row is the one its own attack produced: the same in
    # shuffled and unshuffled training of the frozen model.
    X, y = digits
    shuffled = frozen_fgsm(max_epochs=2).fit(X, y).perturbations_
    ordered = frozen_fgsm(max_epochs=2, iterator_train__shuffle=False).fit(X, y).perturbations_
    assert torch.allclose(shuffled, ordered, atol=1e-6)


def test_torch_dataset_input(digits):
    X, y = digits
    data = TensorDataset(torch.as_tensor(X), torch.as_tensor(y))
    clf = frozen_fgsm(max_epochs=2, classes=np.arange(10)).fit(data)
    assert clf.perturbations_.shape == (len(y), *X.shape[1:])
    assert largest(clf) == pytest.approx(EPSILON / 2)


def test_not_pickled(digits):
    X, y = digits
    clf = pickle.loads(pickle.dumps(frozen_fgsm().fit(X, y)))
    assert not hasattr(clf, "perturbations_")
    clf.partial_fit(X, y)  # starts them anew
    assert largest(clf) == pytest.approx(EPSILON / 4)


def test_trains_with_the_balanced_sampler_and_separation_loss(digits):
    X, y = digits
    clf = SRATClassifier(epsilon=EPSILON, n_steps=2, reuse_perturbations=True,
                         sampler="balanced", class_weight=None, max_epochs=2, random_state=0,
                         verbose=0).fit(X, y)
    assert np.isfinite(clf.history[:, "train_loss"]).all()
    assert clf.predict(X).shape == y.shape
