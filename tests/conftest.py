"""Shared fixtures: small data sets and a trained digits model, built once per session."""

import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torchvision.datasets.cifar
import torchvision.datasets.svhn
from sklearn.datasets import make_classification
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from torch import nn

from srat_sklearn import SRATClassifier
from srat_sklearn.datasets import load_imbalanced_digits, make_fraud_like
from srat_sklearn.methods import DIGITS_RECIPE

UNDER = [5, 6, 7, 8, 9]


class CountingArray(np.ndarray):
    """A numpy array that counts how often it is indexed (``CountingArray.calls``)."""

    calls = 0

    def __getitem__(self, key):
        CountingArray.calls += 1
        return np.asarray(super().__getitem__(key))


def load_benchmark(name):
    """A module of ``benchmarks/`` (not a package), imported from its file."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: Marks of a test that needs a CUDA GPU: ``pytest -m cuda`` selects them
#: (``benchmarks/gpu_check.py`` does), and they are skipped on a machine without one.
CUDA = [pytest.mark.cuda,
        pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=CUDA)])
def device(request):
    """Each device the test runs on: the CPU, and a CUDA GPU where there is one."""
    return request.param


@pytest.fixture(autouse=True)
def _few_threads():
    # Two cores: intra-op threads beyond that only add contention.
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def digits_split():
    """Digits as 1x8x8 images in [0, 1]: stratified 70/30 split, classes 5-9 cut to 1/10."""
    return load_imbalanced_digits()


@pytest.fixture(scope="session")
def trained_digits(digits_split):
    """SRAT on imbalanced digits with the demo's recipe, 15 epochs."""
    X_train, _, y_train, _ = digits_split
    clf = SRATClassifier(**DIGITS_RECIPE, max_epochs=15, reweight_epoch=10, random_state=0,
                         verbose=0)
    return clf.fit(X_train, y_train)


@pytest.fixture(scope="session")
def tabular():
    """A small 3-class tabular problem, features scaled to about [-3, 3]."""
    X, y = make_classification(n_samples=240, n_features=8, n_informative=5, n_classes=3,
                               weights=[0.6, 0.3, 0.1], random_state=0)
    return X.astype(np.float64), y


@pytest.fixture(scope="session")
def mixed_table():
    """A fraud-like table: amount and hour an attacker moves, the rest fixed, two categories."""
    return make_fraud_like(300, positive_rate=0.15, random_state=0)


class QuantisedNet(nn.Module):
    """An MLP behind an input quantiser: its input gradients are zero everywhere."""

    def __init__(self, n_features=8, n_classes=3, levels=4):
        super().__init__()
        self.levels = levels
        self.body = nn.Sequential(nn.Linear(n_features, 32), nn.ReLU(), nn.Linear(32, n_classes))

    def forward(self, X):
        return self.body(torch.round(X * self.levels) / self.levels)


@pytest.fixture(scope="session")
def masked_model(tabular):
    """A gradient-masked classifier of ``tabular``: PGD sees zero gradients, Square does not."""
    X, y = tabular
    # Natural training (epsilon 0): the quantiser blocks only the input gradients.
    model = make_pipeline(MinMaxScaler(), SRATClassifier(
        QuantisedNet, epsilon=0.0, lambda_sep=0.0, class_weight=None, lr=1e-2, max_epochs=60,
        random_state=0, verbose=0)).fit(X, y)
    assert model.score(X, y) > 0.75  # a real model, not the majority class
    return model


@pytest.fixture
def fast_params():
    """Estimator settings for quick fits in API tests."""
    return dict(max_epochs=3, epsilon=0.1, n_steps=2, batch_size=32, random_state=0,
                verbose=0, module__hidden_units=(16,))


# CIFAR-10 and SVHN cannot be downloaded here: these fixtures write a few images in the
# datasets' own file formats (CIFAR's pickled batches, SVHN's MATLAB file), for the loaders
# to read through torchvision. torchvision checks the MD5 sums of the real files; the
# fixtures' files have other sums, so that check is reduced to "the file exists".

@pytest.fixture
def files_exist_is_enough(monkeypatch):
    def exists(fpath, md5=None):
        return os.path.isfile(fpath)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", exists)
    monkeypatch.setattr(torchvision.datasets.svhn, "check_integrity", exists)


def random_images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


@pytest.fixture
def cifar_root(tmp_path, files_exist_is_enough):
    """cifar-10-batches-py with 4 images per training batch and 6 test images."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        n = 6 if name == "test_batch" else 4
        images = random_images(n, seed)
        entry = {"data": images.transpose(0, 3, 1, 2).reshape(n, 3072),  # CIFAR's row layout
                 "labels": [(2 * seed + i) % 10 for i in range(n)]}  # all 10 classes
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    return tmp_path


@pytest.fixture
def svhn_root(tmp_path, files_exist_is_enough):
    """test_32x32.mat with 5 images; label 10 stands for digit 0, as in the real file."""
    images = random_images(5, 7)
    scipy.io.savemat(tmp_path / "test_32x32.mat", {
        "X": images.transpose(1, 2, 3, 0),  # SVHN stores (32, 32, 3, n)
        "y": np.array([[10], [1], [2], [3], [10]], dtype=np.uint8)})
    return tmp_path, images


@pytest.fixture(params=["before backward", "after the step"])
def loss_check(request, monkeypatch):
    """Both ways of the non-finite-loss guard, the accelerator's forced on the CPU."""
    if request.param == "after the step":
        monkeypatch.setattr("srat_sklearn._objective.checks_before_backward", lambda device: False)
    return request.param
