"""Data: the embedded digits images, imbalance protocols, and label look-up in Datasets."""

import numpy as np
from imblearn.datasets import make_imbalance
from sklearn.datasets import load_digits
from sklearn.utils import check_random_state
from skorch.dataset import Dataset as SkorchDataset
from skorch.utils import to_numpy
from torch.utils.data import Subset

from ._validation import check_option, check_real

__all__ = ["load_digits_images", "make_imbalanced", "imbalanced_counts", "dataset_labels"]


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
            raise ValueError(f"under_represented names labels that are not in y: {sorted(unknown)}.")
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
    X : array-like of shape (n_samples, ...)
    y : array-like of shape (n_samples,)
    ratio, kind, under_represented
        See :func:`imbalanced_counts`.
    random_state : int, RandomState or None

    Returns
    -------
    X_res, y_res : arrays, a subset of the rows of ``X, y`` in their original order

    Examples
    --------
    >>> X, y = load_digits_images()
    >>> X_imb, y_imb = make_imbalanced(X, y, ratio=10, random_state=0)
    >>> X_imb.shape[1:], int((y_imb == 9).sum()) < int((y_imb == 0).sum())
    ((1, 8, 8), True)
    """
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


def dataset_labels(dataset):
    """The labels of a torch Dataset as a numpy array, without loading inputs where possible.

    Looks, in order, at skorch's ``Dataset.y``, ``Subset`` indices, the
    ``targets`` (torchvision's CIFAR, MNIST, ImageFolder) or ``labels`` (SVHN)
    attribute, and finally iterates over the dataset.
    """
    if isinstance(dataset, Subset):
        return dataset_labels(dataset.dataset)[np.asarray(dataset.indices)]
    if isinstance(dataset, SkorchDataset) and dataset.y is not None:
        return np.asarray(to_numpy(dataset.y))
    for name in ("targets", "labels"):
        labels = getattr(dataset, name, None)
        if labels is not None:
            return np.asarray(to_numpy(labels) if hasattr(labels, "cpu") else labels)
    return np.asarray([int(dataset[i][1]) for i in range(len(dataset))])
