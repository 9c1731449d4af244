"""Data: the embedded digits images, CIFAR-10 and SVHN through torchvision, real imbalanced
sets from pip wheels (MNIST-5k, UCI/KEEL tables: the ``data`` extra), the paper's Gaussian
mixture, a synthetic fraud-like table, and the imbalance protocols of the long-tail
literature.

Batch loading and label look-up live in :mod:`srat_sklearn.loading` (re-exported here), so
that training does not import the data set loaders."""

import os

import numpy as np
from imblearn.datasets import make_imbalance
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from skorch.utils import is_dataset
from torch.utils.data import Subset
from torchvision.datasets import CIFAR10, SVHN
from torchvision.transforms import ToTensor

from ._packaged_data import UCI_MEASURED_COLUMNS, UCI_MISSING_VALUES, load_mnist_5k, load_uci
from ._validation import check_int, check_option, check_real
from .loading import dataset_labels, make_loader

__all__ = ["load_digits_images", "load_imbalanced_digits", "load_cifar10", "load_svhn",
           "load_mnist_5k", "load_uci", "UCI_MEASURED_COLUMNS", "UCI_MISSING_VALUES",
           "make_gaussian_mixture", "make_fraud_like", "make_imbalanced", "imbalanced_counts",
           "dataset_labels", "make_loader"]

#: The rare classes of the step-imbalanced digits that the demo, the tests and the study use.
DIGITS_UNDER_REPRESENTED = [5, 6, 7, 8, 9]


def load_digits_images():
    """scikit-learn's 8x8 digits as images scaled to [0, 1].

    Returns
    -------
    X : numpy.ndarray of shape (1797, 1, 8, 8), float32
    y : numpy.ndarray of shape (1797,), int64

    Examples
    --------
    >>> X, y = load_digits_images()
    >>> X.shape, float(X.max())
    ((1797, 1, 8, 8), 1.0)
    """
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    return X, digits.target.astype(np.int64)


def load_imbalanced_digits(*, ratio=10, kind="step", under_represented=DIGITS_UNDER_REPRESENTED,
                           random_state=0):
    """The project's reference problem: digits images, the training split made imbalanced.

    :func:`load_digits_images`, a stratified 70/30 split that is the same for
    every seed (``random_state=0``), and :func:`make_imbalanced` on the
    training split only, so that the test split stays balanced. The demo, the
    examples, the tests and the study all use it.

    Parameters
    ----------
    ratio, kind : as in :func:`make_imbalanced`
        ``kind="step"`` with the default ``under_represented``: classes 5-9
        keep 1/``ratio`` of their training samples.
    under_represented : list of labels or None, default=[5, 6, 7, 8, 9]
        For ``kind="step"``; ignored for ``kind="exp"``.
    random_state : int, default=0
        Seeds which training samples the imbalance keeps.

    Returns
    -------
    X_train, X_test, y_train, y_test

    Examples
    --------
    >>> X_train, X_test, y_train, y_test = load_imbalanced_digits()
    >>> X_train.shape[1:], len(y_test), int((y_train == 9).sum()) < int((y_train == 0).sum())
    ((1, 8, 8), 540, True)
    """
    X, y = load_digits_images()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                        random_state=0)
    X_train, y_train = make_imbalanced(
        X_train, y_train, ratio=ratio, kind=kind,
        under_represented=under_represented if kind == "step" else None,
        random_state=random_state)
    return X_train, X_test, y_train, y_test


def _torchvision_dataset(name, make, root, download, as_dataset, transform):
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder path, got {root!r}.")
    if not isinstance(download, (bool, np.bool_)):
        raise TypeError(f"download must be a bool, got {download!r}.")
    if not isinstance(as_dataset, (bool, np.bool_)):
        raise TypeError(f"as_dataset must be a bool, got {as_dataset!r}.")
    if transform is not None and not as_dataset:
        raise ValueError("transform applies to the Dataset; pass as_dataset=True with it.")
    if transform is not None and not callable(transform):
        raise TypeError(f"transform must be callable, e.g. a torchvision transform, got "
                        f"{transform!r}.")
    try:
        return make(os.fspath(root), ToTensor() if transform is None else transform)
    except RuntimeError as error:
        if "not found or corrupted" not in str(error):
            raise
        raise FileNotFoundError(
            f"{name} is not under {os.fspath(root)!r}, or its files are damaged. Pass "
            "download=True to fetch it (needs internet), or point root at the folder that "
            "holds it.") from error


def _as_arrays(data_nhwc_or_nchw, labels, channels_last):
    X = np.asarray(data_nhwc_or_nchw)
    if channels_last:
        X = X.transpose(0, 3, 1, 2)
    return (X.astype(np.float32) / 255.0), np.asarray(labels, dtype=np.int64)


def load_cifar10(root, *, train=True, download=False, as_dataset=False, transform=None):
    """CIFAR-10 through ``torchvision.datasets.CIFAR10``, as arrays or as a Dataset.

    Parameters
    ----------
    root : str or path
        Folder that holds (or receives) ``cifar-10-batches-py``.
    train : bool, default=True
        The 50,000 training images, else the 10,000 test images.
    download : bool, default=False
        Download the archive when it is missing (needs internet).
    as_dataset : bool, default=False
        Return the torchvision Dataset (items: a (3, 32, 32) float tensor in
        [0, 1] and an int label) instead of arrays; ``fit(dataset, None)``
        takes it as it is and streams it, without copying all images.
    transform : callable or None, default=None
        With ``as_dataset=True``: the torchvision transform of each image,
        e.g. random crop and flip for training; default ``ToTensor()``.

    Returns
    -------
    (X, y) with X of shape (n, 3, 32, 32), float32 in [0, 1], and y int64;
    or a ``torchvision.datasets.CIFAR10``.

    Examples
    --------
    >>> X, y = load_cifar10("data", train=False, download=True)  # doctest: +SKIP
    >>> X.shape  # doctest: +SKIP
    (10000, 3, 32, 32)
    """
    dataset = _torchvision_dataset(
        "CIFAR-10",
        lambda path, transform: CIFAR10(path, train=train, download=download,
                                        transform=transform),
        root, download, as_dataset, transform)
    if as_dataset:
        return dataset
    return _as_arrays(dataset.data, dataset.targets, channels_last=True)


def load_svhn(root, *, split="train", download=False, as_dataset=False, transform=None):
    """SVHN through ``torchvision.datasets.SVHN``, as arrays or as a Dataset.

    Parameters
    ----------
    root : str or path
        Folder that holds (or receives) ``{split}_32x32.mat``.
    split : {"train", "test", "extra"}, default="train"
    download : bool, default=False
        Download the file when it is missing (needs internet).
    as_dataset : bool, default=False
        Return the torchvision Dataset instead of arrays (see :func:`load_cifar10`).
    transform : callable or None, default=None
        As in :func:`load_cifar10`.

    Returns
    -------
    (X, y) with X of shape (n, 3, 32, 32), float32 in [0, 1], and y int64 in
    0..9 (torchvision maps the files' label 10 to digit 0); or a
    ``torchvision.datasets.SVHN``.

    Examples
    --------
    >>> X, y = load_svhn("data", split="test", download=True)  # doctest: +SKIP
    >>> X.shape  # doctest: +SKIP
    (26032, 3, 32, 32)
    """
    check_option(split, "split", ("train", "test", "extra"))
    dataset = _torchvision_dataset(
        "SVHN",
        lambda path, transform: SVHN(path, split=split, download=download, transform=transform),
        root, download, as_dataset, transform)
    if as_dataset:
        return dataset
    return _as_arrays(dataset.data, dataset.labels, channels_last=False)


def make_gaussian_mixture(n_samples=1000, *, n_features=2, ratio=10, mean=1.0, std=1.0,
                          random_state=None):
    """The imbalanced binary Gaussian mixture of the paper's analysis.

    Class 0 (well represented) is ``N(+mean * 1, std^2 I)`` and class 1
    (under-represented) is ``N(-mean * 1, std^2 I)``, in ``n_features``
    dimensions, with ``ratio`` times more samples of class 0. Under an L-inf
    attack of radius eps the classes' effective gap shrinks from ``2 * mean`` to
    ``2 * (mean - eps)`` per coordinate, which is why a linear model's
    reweighted boundary costs the majority so much under adversarial
    training.

    Parameters
    ----------
    n_samples : int, default=1000
    n_features : int, default=2
    ratio : float >= 1, default=10
        Samples of class 0 per sample of class 1.
    mean : float > 0, default=1.0
        Coordinate of the class centres ``+mean`` and ``-mean``.
    std : float > 0, default=1.0
    random_state : int, RandomState or None

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    y : ndarray of shape (n_samples,), int64, 1 for the under-represented class

    Examples
    --------
    >>> X, y = make_gaussian_mixture(1100, ratio=10, random_state=0)
    >>> X.shape, int(y.sum())
    ((1100, 2), 100)
    """
    n_samples = check_int(n_samples, "n_samples", min_val=2)
    n_features = check_int(n_features, "n_features", min_val=1)
    ratio = check_real(ratio, "ratio", min_val=1)
    mean = check_real(mean, "mean", min_val=0, include_boundaries="neither")
    std = check_real(std, "std", min_val=0, include_boundaries="neither")
    rng = check_random_state(random_state)
    n_minority = max(1, int(round(n_samples / (ratio + 1))))
    y = np.r_[np.zeros(n_samples - n_minority, np.int64), np.ones(n_minority, np.int64)]
    centres = np.where(y == 0, mean, -mean)[:, None]
    X = centres + std * rng.standard_normal((n_samples, n_features))
    order = rng.permutation(n_samples)
    return X[order], y[order]


#: The columns of :func:`make_fraud_like` that an attacker controls; the others are fixed.
FRAUD_LIKE_PERTURBABLE = ["amount", "hour"]


def make_fraud_like(n_samples=2000, *, positive_rate=0.05, random_state=None):
    """A synthetic card-payment table with a rare fraud class, as a pandas DataFrame.

    Columns: ``amount`` (dollars, skewed) and ``hour`` (whole hours, 0-23),
    which whoever commits fraud controls; ``age`` (whole years),
    ``account_days`` (days since the account opened) and ``past_disputes``
    (a count), which they cannot change; and the categorical ``country`` and
    ``channel``. Fraud is more likely for large amounts, night hours, young
    accounts, past disputes, one country and one channel; the label is 1 for
    the ``positive_rate`` share of rows with the highest noisy fraud score.

    Parameters
    ----------
    n_samples : int, default=2000
    positive_rate : float in (0, 0.5], default=0.05
        Share of fraudulent rows.
    random_state : int, RandomState or None

    Returns
    -------
    X : pandas.DataFrame of shape (n_samples, 7)
    y : ndarray of shape (n_samples,), int64, 1 for fraud

    Examples
    --------
    >>> X, y = make_fraud_like(1000, positive_rate=0.05, random_state=0)
    >>> list(X.columns), int(y.sum())
    (['amount', 'hour', 'age', 'account_days', 'past_disputes', 'country', 'channel'], 50)
    """
    import pandas as pd

    n_samples = check_int(n_samples, "n_samples", min_val=20)
    positive_rate = check_real(positive_rate, "positive_rate", min_val=0, max_val=0.5,
                               include_boundaries="right")
    rng = check_random_state(random_state)
    X = pd.DataFrame({
        "amount": np.round(rng.gamma(2.0, 40.0, n_samples), 2),
        "hour": rng.randint(0, 24, n_samples).astype(float),
        "age": rng.randint(18, 90, n_samples).astype(float),
        "account_days": np.round(rng.exponential(700.0, n_samples)),
        "past_disputes": rng.poisson(0.3, n_samples).astype(float),
        "country": rng.choice(["DE", "FR", "IT", "NL"], n_samples, p=[0.4, 0.3, 0.2, 0.1]),
        "channel": rng.choice(["app", "web", "pos"], n_samples, p=[0.4, 0.4, 0.2]),
    })
    night = np.cos(2 * np.pi * X["hour"] / 24)  # 1 at midnight, -1 at noon
    score = (np.log1p(X["amount"]) - 4.0 + 0.8 * night - np.log1p(X["account_days"]) / 3
             + 0.7 * X["past_disputes"] + 0.8 * (X["country"] == "NL")
             + 0.6 * (X["channel"] == "web") + rng.normal(0.0, 0.6, n_samples)).to_numpy()
    n_positive = max(1, int(round(positive_rate * n_samples)))
    y = np.zeros(n_samples, dtype=np.int64)
    y[np.argsort(score)[-n_positive:]] = 1
    return X, y


def imbalanced_counts(class_counts, *, ratio, kind="step", under_represented=None):
    """Target number of samples per class for an imbalance protocol.

    Parameters
    ----------
    class_counts : dict {label: count}
        Samples available per class; labels in sorted order define class order.
    ratio : float >= 1
        Imbalance ratio ``n_max / n_min``.
    kind : {"step", "exp"}, default="step"
        ``"step"``: the under-represented classes keep ``n_max / ratio``, the
        others ``n_max`` (capped at what is available). ``"exp"``: class ``c``
        (in label order) keeps ``n_max * ratio ** (-c / (C - 1))``.
    under_represented : list of labels, optional
        For ``"step"``: which classes are under-represented; default the last
        half of the classes in label order.

    Returns
    -------
    dict {label: count}

    Examples
    --------
    >>> imbalanced_counts({0: 100, 1: 100, 2: 100, 3: 100}, ratio=10)
    {0: 100, 1: 100, 2: 10, 3: 10}
    >>> imbalanced_counts({0: 100, 1: 100, 2: 100}, ratio=100, kind="exp")
    {0: 100, 1: 10, 2: 1}
    """
    ratio = check_real(ratio, "ratio", min_val=1)
    check_option(kind, "kind", ("step", "exp"))
    labels = sorted(class_counts)
    n_max = max(class_counts.values())
    if kind == "step":
        if under_represented is None:
            under_represented = labels[len(labels) - len(labels) // 2:]
        unknown = set(under_represented) - set(labels)
        if unknown:
            raise ValueError(f"under_represented names labels that are not in y: "
                             f"{sorted(unknown)}.")
        targets = {c: n_max / ratio if c in set(under_represented) else n_max for c in labels}
    else:
        if under_represented is not None:
            raise ValueError("under_represented only applies to kind='step'.")
        last = max(len(labels) - 1, 1)
        targets = {c: n_max * ratio ** (-i / last) for i, c in enumerate(labels)}
    return {c: int(min(class_counts[c], max(1, round(targets[c])))) for c in labels}


def make_imbalanced(X, y, *, ratio, kind="step", under_represented=None, random_state=None):
    """Subsample ``X, y`` to an imbalance protocol of the long-tail literature.

    Built on :func:`imblearn.datasets.make_imbalance`; works for any number of
    dimensions of ``X`` (images included).

    Parameters
    ----------
    X : array-like of shape (n_samples, ...), or a torch Dataset
        A Dataset (e.g. from :func:`load_cifar10` with ``as_dataset=True``)
        gives a ``Subset`` of it, read lazily, with its transforms.
    y : array-like of shape (n_samples,), or None with a Dataset
    ratio, kind, under_represented
        See :func:`imbalanced_counts`.
    random_state : int, RandomState or None

    Returns
    -------
    X_res, y_res : arrays, a subset of the rows of ``X, y`` in their original order;
        for a Dataset, ``(Subset, None)``

    Examples
    --------
    >>> X, y = load_digits_images()
    >>> X_imb, y_imb = make_imbalanced(X, y, ratio=10, random_state=0)
    >>> X_imb.shape[1:], int((y_imb == 9).sum()) < int((y_imb == 0).sum())
    ((1, 8, 8), True)
    """
    if is_dataset(X):
        if y is not None:
            raise ValueError("Pass y=None with a torch Dataset: its items hold the labels.")
        rows, _ = make_imbalanced(np.arange(len(X)), dataset_labels(X), ratio=ratio, kind=kind,
                                  under_represented=under_represented,
                                  random_state=random_state)
        return Subset(X, rows.tolist()), None
    X = np.asarray(X)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, one label per sample; got shape {y.shape}.")
    if len(y) == 0:
        raise ValueError("make_imbalanced got 0 samples.")
    if len(X) != len(y):
        raise ValueError(f"X and y have different numbers of samples: {len(X)} and {len(y)}.")
    labels, counts = np.unique(y, return_counts=True)
    strategy = imbalanced_counts(dict(zip(labels.tolist(), counts.tolist())), ratio=ratio,
                                 kind=kind, under_represented=under_represented)
    # make_imbalance takes 2-D X only: select on row indices, then index X.
    rows = np.arange(len(y)).reshape(-1, 1)
    kept, _ = make_imbalance(rows, y, sampling_strategy=strategy,
                             random_state=check_random_state(random_state))
    kept = np.sort(kept.ravel())
    return X[kept], y[kept]
