"""The SRATClassifier API: sklearn conventions, data kinds, modules, persistence."""


import numpy as np
import pytest
import torch
import torchvision
from conftest import CountingArray
from sklearn.base import clone
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV
from torch import nn
from torch.utils.data import Subset, TensorDataset

from srat_sklearn import SRATClassifier, robust_accuracy_score
from srat_sklearn.callbacks import CatastrophicOverfittingGuard
from srat_sklearn.metrics import make_robust_scorer, robust_classification_report
from srat_sklearn.models import MLP, SmallCNN


def test_params_stored_unchanged():
    clf = SRATClassifier(epsilon=0.3, lambda_sep=0.5, class_weight={1: 2.0}, reweight_epoch=0.5,
                         input_shape=(1, 8, 8), loss="ldam")
    params = clf.get_params()
    assert params["epsilon"] == 0.3 and params["lambda_sep"] == 0.5
    assert params["class_weight"] == {1: 2.0} and params["reweight_epoch"] == 0.5
    assert params["input_shape"] == (1, 8, 8) and params["loss"] == "ldam"


def test_clone_keeps_params():
    clf = SRATClassifier(epsilon=0.3, temperature=0.2, random_state=3, module__hidden_units=(8,))
    cloned = clone(clf)
    for name in ("epsilon", "temperature", "random_state", "module__hidden_units"):
        assert cloned.get_params()[name] == clf.get_params()[name]


def test_private_skorch_state_is_not_a_parameter():
    clf = SRATClassifier(module__hidden_units=(8,))
    assert not any(name.startswith("_") for name in clf.get_params())
    assert clone(clf)._params_to_validate is not clf._params_to_validate


def test_set_params_then_fit(tabular, fast_params):
    clf = SRATClassifier(**fast_params).set_params(lambda_sep=0.0, class_weight=None)
    clf.fit(*tabular)
    assert clf.lambda_sep == 0.0 and clf.class_weights_.tolist() == [1.0, 1.0, 1.0]


def test_predict_returns_original_string_labels(tabular, fast_params):
    X, y = tabular
    lookup = np.array(["fraud", "normal", "review"])
    clf = SRATClassifier(**fast_params).fit(X, lookup[y])
    reference = SRATClassifier(**fast_params).fit(X, y)
    assert list(clf.classes_) == ["fraud", "normal", "review"]
    assert np.array_equal(clf.predict(X), lookup[reference.predict(X)])
    assert clf.score(X, lookup[y]) == reference.score(X, y)


def test_non_contiguous_integer_labels(tabular, fast_params):
    X, y = tabular
    labels = np.array([5, 17, 40])[y]
    clf = SRATClassifier(**fast_params).fit(X, labels)
    assert clf.classes_.tolist() == [5, 17, 40]
    assert set(clf.predict(X)) <= {5, 17, 40}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_predict_proba_rows_sum_to_one(tabular, fast_params, dtype):
    X, y = tabular
    clf = SRATClassifier(**fast_params).fit(X.astype(dtype), y)
    proba = clf.predict_proba(X.astype(dtype))
    assert proba.shape == (len(X), 3)
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5) and np.all(proba >= 0)


def test_fitted_attributes(tabular, fast_params):
    X, y = tabular
    clf = SRATClassifier(**fast_params, bounds="auto").fit(X, y)
    assert clf.n_features_in_ == 8 and clf.sample_shape_ == (8,)
    assert clf.class_counts_.tolist() == np.bincount(y).tolist()
    assert np.allclose(clf.bounds_[0], X.min(axis=0)) and np.allclose(clf.bounds_[1], X.max(axis=0))
    assert clf.reweight_epoch_ == round(0.75 * 3)


@pytest.mark.parametrize("bounds", [None, (-1.0, 1.0)])
def test_explicit_bounds(tabular, fast_params, bounds):
    X, y = tabular
    clf = SRATClassifier(**fast_params, bounds=bounds).fit(X, y)
    if bounds is None:
        assert clf.bounds_ is None
        return
    assert (float(clf.bounds_[0]), float(clf.bounds_[1])) == bounds
    X_inside = np.clip(X, -1.0, 1.0)  # rows outside the bounds may stay outside them
    X_adv = clf.generate_adversarial(X_inside, y, epsilon=0.5)
    assert X_adv.min() >= -1.0 and X_adv.max() <= 1.0


def test_l2_threat_model_end_to_end(tabular, fast_params):
    X, y = tabular
    clf = SRATClassifier(**{**fast_params, "norm": "l2", "epsilon": 0.5}).fit(X, y)
    X_adv = clf.generate_adversarial(X, y)
    assert np.linalg.norm(X_adv - X, axis=1).max() <= 0.5 + 1e-4
    assert np.abs(X_adv - X).max() > 0


def test_image_bounds_are_global(digits_split):
    X, _, y, _ = digits_split
    clf = SRATClassifier(max_epochs=1, verbose=0, n_steps=1).fit(X[:200], y[:200])
    assert float(clf.bounds_[0]) == pytest.approx(X[:200].min())
    assert float(clf.bounds_[1]) == pytest.approx(X[:200].max())


@pytest.mark.parametrize("input_kind", ["images", "flat_with_input_shape"])
def test_default_cnn_for_images(digits_split, input_kind):
    X, _, y, _ = digits_split
    X = X[:300]
    kwargs = {}
    if input_kind == "flat_with_input_shape":
        X, kwargs = X.reshape(len(X), -1), {"input_shape": (1, 8, 8)}
    clf = SRATClassifier(max_epochs=1, n_steps=1, verbose=0, **kwargs).fit(X, y[:300])
    assert isinstance(clf.module_, SmallCNN)
    assert clf.predict(X).shape == (300,)


def test_default_mlp_for_tabular(tabular, fast_params):
    clf = SRATClassifier(**fast_params).fit(*tabular)
    assert isinstance(clf.module_, MLP)


def test_grid_search_over_lambda_and_class_weight(tabular, fast_params):
    grid = GridSearchCV(SRATClassifier(**fast_params),
                        {"lambda_sep": [0.0, 1.0], "class_weight": [None, "balanced"]},
                        cv=2, scoring="balanced_accuracy")
    grid.fit(*tabular)
    assert len(grid.cv_results_["params"]) == 4
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    assert grid.best_params_["lambda_sep"] in (0.0, 1.0)


def test_torchvision_resnet18_on_tiny_images():
    generator = np.random.default_rng(0)
    X = generator.random((24, 3, 16, 16), dtype=np.float32)
    y = np.repeat([0, 1, 2], 8)
    clf = SRATClassifier(module=torchvision.models.resnet18, module__num_classes=3,
                         max_epochs=1, epsilon=0.03, n_steps=1, batch_size=12, verbose=0,
                         random_state=0)
    clf.fit(X, y)
    assert clf.predict_proba(X).shape == (24, 3)


def test_torch_dataset_input(tabular, fast_params):
    X, y = tabular
    dataset = TensorDataset(torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y))
    clf = SRATClassifier(**fast_params).fit(dataset, None)
    assert clf.classes_.tolist() == [0, 1, 2]
    assert clf.class_counts_.tolist() == np.bincount(y).tolist()
    assert clf.predict(dataset).shape == (len(y),)


@pytest.mark.parametrize("indices", [range(150), list(range(150)), np.arange(150)])
def test_a_subset_of_a_dataset_fits_whatever_holds_its_indices(tabular, fast_params, indices):
    # skorch's own reading of a Subset's labels failed on range indices, the usual kind.
    X, y = tabular
    dataset = TensorDataset(torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y))
    clf = SRATClassifier(**fast_params).fit(Subset(dataset, indices))
    assert clf.class_counts_.tolist() == np.bincount(y[:150]).tolist()


@pytest.mark.parametrize("labels, fits", [
    (lambda y: y.astype(np.float32), True),  # whole numbers held as floats: class indices
    (lambda y: y + 0.5, False),
])
def test_dataset_labels_must_be_whole_numbers(tabular, fast_params, labels, fits):
    # Continuous values were truncated to classes, silently.
    X, y = tabular
    dataset = TensorDataset(torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(labels(y)))
    clf = SRATClassifier(**fast_params)
    if fits:
        assert clf.fit(dataset).class_counts_.tolist() == np.bincount(y).tolist()
    else:
        with pytest.raises(ValueError, match=r"must be class indices 0, 1, ...; got values "
                                             r"such as \[0.5, "):
            clf.fit(dataset)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_tensors_are_read_as_their_values(tabular, fast_params, device, requires_grad):
    # From any device, and when they require gradients (a feature extractor's output, say),
    # which NumPy cannot read as they are.
    X, y = tabular
    X = X.astype(np.float32)
    X_t = torch.as_tensor(X, device=device).requires_grad_(requires_grad)
    y_t = torch.as_tensor(y, device=device)
    from_tensors = SRATClassifier(**fast_params, device=device).fit(X_t, y_t)
    from_arrays = SRATClassifier(**fast_params, device=device).fit(X, y)
    np.testing.assert_array_equal(from_tensors.predict(X_t), from_arrays.predict(X))
    assert robust_accuracy_score(from_tensors, X_t, y_t, verbose=0) == \
        robust_accuracy_score(from_arrays, X, y, verbose=0)


@pytest.mark.parametrize("score", [
    lambda clf, X, y: clf.score(X, y),
    lambda clf, X, y: robust_accuracy_score(clf, X, y, verbose=0),
    lambda clf, X, y: make_robust_scorer(balanced_accuracy_score)(clf, X, y),
    lambda clf, X, y: robust_classification_report(clf, X, y, output_dict=True, verbose=0),
], ids=["score", "robust_accuracy_score", "make_robust_scorer", "robust_classification_report"])
def test_scores_read_label_tensors_that_numpy_cannot(tabular, fast_params, device, score):
    # Labels on a GPU, or requiring gradients (on any device): NumPy reads neither as it is.
    # A GPU run found robust_accuracy_score handing such labels to scikit-learn.
    X, y = tabular
    clf = SRATClassifier(**fast_params, device=device).fit(X, y)
    y_t = torch.as_tensor(y, dtype=torch.float32, device=device).requires_grad_(True)
    assert score(clf, X, y_t) == score(clf, X, y)


class CountingMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.head = nn.Linear(16, 3)
        self.calls = 0

    def forward(self, X):
        self.calls += 1
        return self.head(self.body(X))


@pytest.mark.parametrize("epsilon, n_steps", [(0.0, 1), (0.1, 3)])
def test_separation_loss_needs_no_extra_forward(tabular, epsilon, n_steps):
    module = CountingMLP()
    clf = SRATClassifier(module=module, epsilon=epsilon, n_steps=n_steps, lambda_sep=1.0,
                         max_epochs=2, batch_size=60, verbose=0, random_state=0)
    clf.fit(*tabular)
    batches = 2 * 4  # 240 samples / 60, two epochs
    attack_calls = n_steps if epsilon > 0 else 0
    assert module.calls == 1 + batches * (1 + attack_calls)  # 1: fit's check of the module


def test_clean_view_costs_one_forward_and_doubles_the_contrasted_batch(tabular, monkeypatch):
    import srat_sklearn.separation as separation_module
    sizes = []
    original = separation_module.supervised_contrastive_loss

    def recording(features, labels, temperature):
        sizes.append((len(features), torch.equal(labels[:len(labels) // 2],
                                                 labels[len(labels) // 2:])))
        return original(features, labels, temperature)

    monkeypatch.setattr(separation_module, "supervised_contrastive_loss", recording)
    module = CountingMLP()
    SRATClassifier(module=module, epsilon=0.1, n_steps=3, separation_views="adversarial+clean",
                   max_epochs=1, batch_size=60, verbose=0, random_state=0).fit(*tabular)
    assert module.calls == 1 + 4 * (1 + 3 + 1)
    assert sizes == [(120, True)] * 4


class LogitsAndFeatures(CountingMLP):
    """CountingMLP returning ``(logits, features)``: skorch takes the first as the output."""

    def forward(self, X):
        features = self.body(X)
        return self.head(features), features


@pytest.mark.parametrize("params", [
    {"lambda_sep": 0.0}, {"lambda_sep": 1.0}, {"adversarial_loss": "trades"},
    {"adversarial_loss": "trades", "separation_views": "adversarial+clean"},
    {"callbacks": [("guard", CatastrophicOverfittingGuard(n_samples=32))]}])
def test_a_module_returning_a_tuple_trains_on_its_first_output(tabular, fast_params, params):
    # Regression: the loss read the tuple itself ("'tuple' object has no attribute 'ndim'").
    params = {**{k: v for k, v in fast_params.items() if not k.startswith("module__")}, **params}
    fitted = [SRATClassifier(module=module, **params).fit(*tabular).module_
              for module in (CountingMLP, LogitsAndFeatures)]
    for plain, with_tuple in zip(*(module.parameters() for module in fitted)):
        assert torch.equal(plain, with_tuple)


def test_named_feature_layer(tabular, fast_params):
    params = {k: v for k, v in fast_params.items() if not k.startswith("module__")}
    clf = SRATClassifier(module=CountingMLP, feature_layer="body", **params).fit(*tabular)
    assert clf.predict(tabular[0]).shape == (240,)


def test_separation_loss_changes_training(tabular, fast_params):
    X, y = tabular
    without = SRATClassifier(**{**fast_params, "lambda_sep": 0.0}).fit(X, y)
    with_sep = SRATClassifier(**{**fast_params, "lambda_sep": 1.0}).fit(X, y)
    assert without.history[0, "train_loss"] < with_sep.history[0, "train_loss"]


def test_random_state_makes_fit_reproducible(tabular, fast_params):
    X, y = tabular
    first = SRATClassifier(**fast_params).fit(X, y)
    second = SRATClassifier(**fast_params).fit(X, y)
    other = SRATClassifier(**{**fast_params, "random_state": 1}).fit(X, y)
    assert np.array_equal(first.predict_proba(X), second.predict_proba(X))
    assert first.history[:, "train_loss"] == second.history[:, "train_loss"]
    assert not np.array_equal(first.predict_proba(X), other.predict_proba(X))


def test_random_state_leaves_global_rng_alone(tabular, fast_params):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    SRATClassifier(**fast_params).fit(*tabular)
    assert torch.equal(torch.rand(3), expected)


def test_training_batches_are_shuffled_by_default():
    assert SRATClassifier().get_params()["iterator_train__shuffle"] is True


def test_epsilon_zero_trains_on_clean_batches(tabular, fast_params, monkeypatch):
    import srat_sklearn._adversarial as adversarial_module

    def fail(*args, **kwargs):
        raise AssertionError("the attack ran with epsilon=0")

    monkeypatch.setattr(adversarial_module, "_run_attack", fail)
    SRATClassifier(**{**fast_params, "epsilon": 0.0}).fit(*tabular)


@pytest.mark.parametrize("loss", ["focal", "ldam"])
def test_other_losses_train(tabular, fast_params, loss):
    X, y = tabular
    params = {**fast_params, "max_epochs": 6, "batch_size": 64, "module__hidden_units": (128, 128)}
    clf = SRATClassifier(**params, loss=loss).fit(X, y)
    assert clf.score(X, y) > 0.7
    if loss == "ldam":
        margins = clf.criterion_.margins
        assert margins[2] == pytest.approx(0.5) and margins[0] < margins[1] < margins[2]


def test_balanced_softmax_trains_on_the_prior_and_predicts_from_raw_logits(tabular, fast_params):
    X, y = tabular
    clf = SRATClassifier(**{**fast_params, "max_epochs": 6, "batch_size": 64,
                            "module__hidden_units": (128, 128)}, loss="bsl",
                         class_weight=None).fit(X, y)
    counts = np.bincount(y)
    np.testing.assert_allclose(clf.criterion_.log_prior.numpy(), np.log(counts / counts.sum()),
                               rtol=1e-5)
    with torch.no_grad():
        raw = torch.softmax(clf.module_(torch.as_tensor(X, dtype=torch.float32)), dim=1)
    np.testing.assert_allclose(clf.predict_proba(X), raw.numpy(), rtol=1e-5, atol=1e-6)
    assert clf.score(X, y) > 0.7


def test_balanced_softmax_needs_every_class_in_training(tabular, fast_params):
    X, y = tabular
    with pytest.raises(ValueError, match="loss='bsl' needs every class"):
        SRATClassifier(**fast_params, loss="bsl", class_weight=None,
                       classes=[0, 1, 2, 3]).fit(X, y)


def test_failed_set_params_leaves_the_estimator_unchanged():
    # skorch builds the callbacks inside set_params, after it has set the plain parameters.
    clf = SRATClassifier(lambda_sep=0.5, callbacks=-1.0)
    with pytest.raises(TypeError):
        clf.set_params(callbacks=[], lambda_sep=2.0)
    assert clf.lambda_sep == 0.5 and clf.callbacks == -1.0


@pytest.mark.parametrize("sampler", [None, "balanced"])
def test_whole_batch_reads_train_as_the_row_by_row_loader(digits_split, sampler):
    # A collate_fn turns whole-batch reads off (srat_sklearn.datasets.make_loader).
    from torch.utils.data.dataloader import default_collate

    X_train, X_test, y_train, _ = digits_split
    params = dict(epsilon=0.1, n_steps=2, max_epochs=2, random_state=0, verbose=0,
                  sampler=sampler, class_weight=None if sampler else "balanced",
                  module__channels=(4, 8), module__hidden_units=16)
    fast = SRATClassifier(**params).fit(X_train, y_train)
    per_row = SRATClassifier(iterator_train__collate_fn=default_collate,
                             iterator_valid__collate_fn=default_collate,
                             **params).fit(X_train, y_train)
    for p, q in zip(fast.module_.parameters(), per_row.module_.parameters()):
        assert torch.equal(p, q)
    assert np.array_equal(fast.predict_proba(X_test), per_row.predict_proba(X_test))


@pytest.mark.parametrize("training", [True, False])
def test_iterators_read_arrays_one_batch_at_a_time(tabular, fast_params, training):
    from skorch.dataset import Dataset

    X, y = tabular
    clf = SRATClassifier(**fast_params).fit(X, y)
    data = Dataset(X.astype(np.float32).view(CountingArray), y)
    CountingArray.calls = 0
    batches = list(clf.get_iterator(data, training=training))
    assert CountingArray.calls == len(batches) == -(-len(y) // clf.batch_size)
