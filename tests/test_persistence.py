"""Pickle and save_params / load_params round trips, and a clear error on a wrong network."""

import pickle

import numpy as np
import pytest
import torchvision

from srat_sklearn import SRATClassifier


@pytest.fixture(scope="module")
def tiny_images():
    generator = np.random.default_rng(0)
    return generator.random((24, 3, 16, 16), dtype=np.float32), np.repeat(["a", "b", "c"], 8)


@pytest.fixture(scope="module")
def resnet(tiny_images):
    """A fitted estimator around a torchvision network."""
    return SRATClassifier(module=torchvision.models.resnet18, module__num_classes=3,
                          max_epochs=1, epsilon=0.03, n_steps=1, batch_size=12, verbose=0,
                          random_state=0).fit(*tiny_images)


@pytest.fixture
def mlp(tabular, fast_params):
    return SRATClassifier(**fast_params).fit(*tabular)


def test_pickle_round_trip(mlp, tabular):
    X, y = tabular
    restored = pickle.loads(pickle.dumps(mlp))
    assert np.array_equal(restored.predict_proba(X), mlp.predict_proba(X))
    assert restored.classes_.tolist() == mlp.classes_.tolist()


def test_pickle_round_trip_torchvision_module(resnet, tiny_images):
    X, _ = tiny_images
    restored = pickle.loads(pickle.dumps(resnet))
    assert np.array_equal(restored.predict(X), resnet.predict(X))
    assert np.array_equal(restored.predict_proba(X), resnet.predict_proba(X))


def test_pickled_model_still_attacks(mlp, tabular):
    X, y = tabular
    restored = pickle.loads(pickle.dumps(mlp))
    X_adv = restored.generate_adversarial(X, y, random_start=False)
    assert np.array_equal(X_adv, mlp.generate_adversarial(X, y, random_start=False))


def test_save_and_load_params_default_module(mlp, tabular, fast_params, tmp_path):
    X, y = tabular
    mlp.save_params(f_params=tmp_path / "params.pt", f_history=tmp_path / "history.json")
    new = SRATClassifier(classes=mlp.classes_, input_shape=(X.shape[1],),
                         **{k: v for k, v in fast_params.items() if k.startswith("module__")})
    new.initialize().load_params(f_params=tmp_path / "params.pt",
                                 f_history=tmp_path / "history.json")
    assert np.array_equal(new.predict_proba(X), mlp.predict_proba(X))
    assert len(new.history) == len(mlp.history)


def test_save_and_load_params_torchvision_module(resnet, tiny_images, tmp_path):
    X, _ = tiny_images
    resnet.save_params(f_params=tmp_path / "params.pt")
    new = SRATClassifier(module=torchvision.models.resnet18, module__num_classes=3,
                         classes=["a", "b", "c"]).initialize()
    new.load_params(f_params=tmp_path / "params.pt")
    assert np.array_equal(new.predict(X), resnet.predict(X))


@pytest.mark.parametrize("module_params", [
    {"module__hidden_units": (32,)},   # other widths
    {"module__hidden_units": (16, 16)},  # another depth
])
def test_load_params_into_another_architecture(mlp, tabular, tmp_path, module_params):
    X, _ = tabular
    mlp.save_params(f_params=tmp_path / "params.pt")
    new = SRATClassifier(classes=mlp.classes_, input_shape=(X.shape[1],), **module_params)
    with pytest.raises(ValueError, match="do not fit this estimator's network"):
        new.initialize().load_params(f_params=tmp_path / "params.pt")


def test_default_module_without_data_needs_input_shape():
    with pytest.raises(ValueError, match="input_shape"):
        SRATClassifier(classes=[0, 1]).initialize()


def test_auto_bounds_without_data_refuse_to_attack(mlp, tabular, fast_params, tmp_path):
    X, y = tabular
    mlp.save_params(f_params=tmp_path / "params.pt")
    new = SRATClassifier(classes=mlp.classes_, input_shape=(X.shape[1],),
                         module__hidden_units=(16,)).initialize()
    new.load_params(f_params=tmp_path / "params.pt")
    with pytest.raises(ValueError, match="bounds='auto'"):
        new.generate_adversarial(X, y)
