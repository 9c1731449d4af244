"""The command line's data: the named data sets and ``.npz`` files, split, made imbalanced,
and checked before any training."""

import zipfile
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.utils import check_array, check_consistent_length

from ..datasets import (
    UCI_MEASURED_COLUMNS,
    UCI_MISSING_VALUES,
    load_cifar10,
    load_digits_images,
    load_mnist_5k,
    load_svhn,
    load_uci,
    make_imbalanced,
)

#: Default attack radius per data set, in the units the classifier sees (MNIST's standard 0.3).
DEFAULT_EPSILON = {"digits": 0.2, "mnist-5k": 0.3, "cifar10": 8 / 255, "svhn": 8 / 255,
                   "images": 8 / 255, "tabular": 0.25}
#: What epsilon measures, per kind of data: the command line standardises tabular data in
#: front of the classifier, and the attacks act on what the classifier sees.
EPSILON_UNITS = {"images": "the pixel values of the images, as stored",
                 "tabular": "standard deviations of each training column (the model "
                            "standardises the columns in front of the classifier)"}
#: Default epsilon warm-up (a fraction of the epochs) per data set: at MNIST's 0.3 from the
#: first epoch, adversarial training collapses to predicting one class (the study's MNIST
#: settings warm up over the first third).
DEFAULT_EPSILON_WARMUP = {"mnist-5k": 1 / 3}
#: The data sets split here, and how each is read.
_SPLIT_HERE = {"digits": load_digits_images,
               "breast-cancer": lambda: load_breast_cancer(return_X_y=True),
               "mnist-5k": load_mnist_5k,
               **{name: (lambda name=name: load_uci(name)) for name in UCI_MEASURED_COLUMNS}}


def _npz_arrays(name):
    path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {name}.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{name} is not an .npz file (numpy.savez writes a zip archive of "
                         "arrays).")
    arrays = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            try:
                arrays[key] = data[key]
            except ValueError:
                raise ValueError(f"{name}: array {key!r} holds Python objects, which are not "
                                 "loaded (they could run code); save labels as strings or "
                                 "numbers, e.g. numpy.savez(..., y=y.astype(str)).") from None
    return arrays


def _split_npz(name, test_size, seed):
    arrays = _npz_arrays(name)
    if {"X_train", "y_train", "X_test", "y_test"} <= set(arrays):
        return arrays["X_train"], arrays["X_test"], arrays["y_train"], arrays["y_test"]
    if {"X", "y"} <= set(arrays):
        return train_test_split(arrays["X"], arrays["y"], test_size=test_size,
                                stratify=arrays["y"], random_state=seed)
    raise ValueError(f"{name} must hold arrays X and y, or X_train, y_train, X_test and y_test; "
                     f"it holds {sorted(arrays)}.")


def load_data(name, *, root="data", download=False, test_size=0.3, seed=0):
    """``(X_train, X_test, y_train, y_test, kind)`` of a data set named on the command line.

    ``kind`` is "images" (arrays in [0, 1]) or "tabular" (raw features; the
    model standardises them). Every row of both splits is checked: a NaN or an
    infinity anywhere stops the command before training, except the missing
    values (NaN) of the tables that have them, which the model imputes.
    """
    if name in _SPLIT_HERE:
        X, y = _SPLIT_HERE[name]()
        splits = train_test_split(X, y, test_size=test_size, stratify=y, random_state=seed)
    elif name in ("cifar10", "svhn"):
        load = (lambda train: load_cifar10(root, train=train, download=download)) \
            if name == "cifar10" else \
            (lambda train: load_svhn(root, split="train" if train else "test", download=download))
        (X_train, y_train), (X_test, y_test) = load(True), load(False)
        splits = X_train, X_test, y_train, y_test
    else:
        splits = _split_npz(name, test_size, seed)
    X_train, X_test, y_train, y_test = splits
    for X, y, split in ((X_train, y_train, "training"), (X_test, y_test, "test")):
        try:
            check_array(X, allow_nd=True, dtype=None,
                        ensure_all_finite="allow-nan" if name in UCI_MISSING_VALUES else True)
            check_consistent_length(X, y)
        except ValueError as error:
            raise ValueError(f"The {split} split of {name}: {error}") from None
    _check_splits_match(name, X_train, X_test, y_train, y_test)
    kind = "images" if np.ndim(X_train) == 4 else "tabular"
    return X_train, X_test, y_train, y_test, kind


def _check_splits_match(name, X_train, X_test, y_train, y_test):
    """Refuse, before any training, a test split that the trained model could not score: a
    different sample shape, or labels that the training split never shows."""
    if np.shape(X_test)[1:] != np.shape(X_train)[1:]:
        raise ValueError(f"The splits of {name} differ in sample shape: training "
                         f"{np.shape(X_train)[1:]}, test {np.shape(X_test)[1:]}.")
    unseen = np.setdiff1d(np.unique(y_test), np.unique(y_train))
    if unseen.size:
        raise ValueError(f"The test split of {name} holds labels that its training split lacks: "
                         f"{unseen.tolist()[:10]}; the model could not predict them.")


def missing_value_imputer():
    """The step in front of a tabular model whose data have missing values: the training
    split's median of each column (0 for a column with none, which then stays)."""
    return SimpleImputer(strategy="median", keep_empty_features=True)


def default_perturbable_features(name):
    """The columns attacks may change when ``--perturbable-features`` is not given (None:
    all): a UCI table's measured columns, its flags fixed."""
    return UCI_MEASURED_COLUMNS.get(name)


def make_imbalanced_split(X, y, imbalance, under, seed):
    """The training split made imbalanced as ``--imbalance`` says (``none``: as it is)."""
    if imbalance == "none":
        return X, y
    kind, _, ratio = imbalance.partition(":")
    return make_imbalanced(X, y, ratio=float(ratio), kind=kind, under_represented=under,
                           random_state=seed)


def provenance(name, root, test_size, seed):
    """Where the data came from, with paths that resolve from any folder."""
    source = {"name": name, "test_size": test_size, "seed": seed}
    if name.endswith(".npz"):
        source["path"] = str(Path(name).resolve())
    elif name in ("cifar10", "svhn"):
        source["root"] = str(Path(root).resolve())
    return source
