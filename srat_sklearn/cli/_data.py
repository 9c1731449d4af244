"""The command line's data: the named data sets and ``.npz`` files, split, made imbalanced,
and checked before any training."""

import zipfile
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.utils import check_array

from ..datasets import load_cifar10, load_digits_images, load_svhn, make_imbalanced

#: Default attack radius per data set, in the units the classifier sees.
DEFAULT_EPSILON = {"digits": 0.2, "cifar10": 8 / 255, "svhn": 8 / 255, "images": 8 / 255,
                   "tabular": 0.25}


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
    infinity anywhere stops the command before training.
    """
    if name in ("digits", "breast-cancer"):
        X, y = (load_digits_images() if name == "digits"
                else load_breast_cancer(return_X_y=True))
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
    for X, split in ((X_train, "training"), (X_test, "test")):
        try:
            check_array(X, allow_nd=True, ensure_all_finite=True, dtype=None)
        except ValueError as error:
            raise ValueError(f"The {split} split of {name}: {error}") from None
    kind = "images" if np.ndim(X_train) == 4 else "tabular"
    return X_train, X_test, y_train, y_test, kind


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
