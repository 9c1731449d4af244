"""Batches for training and prediction: labels of torch Datasets, and whole-batch reads of
in-memory arrays."""

import numpy as np
import torch
from skorch.dataset import Dataset as SkorchDataset
from skorch.utils import to_numpy
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, Subset

__all__ = ["dataset_labels", "make_loader"]


def dataset_labels(dataset):
    """The labels of a torch Dataset as a numpy array, without loading inputs where possible.

    Looks, in order, at skorch's ``Dataset.y``, ``Subset`` indices, the
    ``targets`` (torchvision's CIFAR, MNIST, ImageFolder) or ``labels`` (SVHN)
    attribute, and finally iterates over the dataset.
    """
    if isinstance(dataset, Subset):
        return dataset_labels(dataset.dataset)[np.asarray(dataset.indices)]
    if isinstance(dataset, SkorchDataset) and dataset.y is not None:
        return _class_indices(to_numpy(dataset.y))
    for name in ("targets", "labels"):
        labels = getattr(dataset, name, None)
        if labels is not None:
            return _class_indices(to_numpy(labels) if hasattr(labels, "cpu") else labels)
    return _class_indices([_value(dataset[i][1]) for i in range(len(dataset))])


def _value(label):
    """A label as a Python number: a 0-dim tensor or NumPy scalar holds one."""
    return label.item() if hasattr(label, "item") else label


def _class_indices(labels):
    """``labels`` as an array; floats holding whole numbers (a TensorDataset of float labels)
    as int64, other floats refused: a class index is a whole number."""
    labels = np.asarray(labels)
    if labels.dtype.kind != "f":
        return labels
    fractional = labels != np.round(labels)  # NaN too
    if fractional.any():
        raise ValueError("The labels of a Dataset must be class indices 0, 1, ...; got "
                         f"values such as {labels[fractional][:3].tolist()}.")
    return labels.astype(np.int64)


class _WholeBatches(torch.utils.data.Dataset):
    """A skorch Dataset of in-memory arrays, indexed by a whole batch of rows at once."""

    def __init__(self, dataset, with_indices=False):
        self.dataset = dataset
        self.with_indices = with_indices

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, rows):
        rows = np.asarray(rows, dtype=np.int64)
        X = _take(self.dataset.X, rows)
        # skorch's per-row placeholder for y=None, as the DataLoader would have stacked it.
        y = torch.zeros(len(rows), 1) if self.dataset.y is None else _take(self.dataset.y, rows)
        return (X, y, torch.from_numpy(rows)) if self.with_indices else (X, y)


class _WithIndices(torch.utils.data.Dataset):
    """Each sample of ``dataset`` followed by its index."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return (*self.dataset[i], i)


def _take(data, rows):
    # Plain indexing: skorch's multi_indexing goes through sklearn's _safe_indexing, which
    # inspects every index of a list (about 0.2 ms for a batch of 64).
    return data[torch.from_numpy(rows)] if isinstance(data, torch.Tensor) else data[rows]


def _indexes_whole_batches(iterator, dataset, kwargs):
    in_memory = (np.ndarray, torch.Tensor)
    return (iterator is DataLoader and type(dataset) is SkorchDataset
            and isinstance(dataset.X, in_memory)
            and (dataset.y is None or isinstance(dataset.y, in_memory))
            and "batch_sampler" not in kwargs and "collate_fn" not in kwargs)


def make_loader(iterator, dataset, *, with_indices=False, whole_batches=True, **kwargs):
    """``iterator(dataset, **kwargs)``, reading a batch of in-memory rows with one index.

    PyTorch's DataLoader asks the dataset for each row of a batch in turn and
    stacks the rows, which for arrays held in memory costs more than the
    indexing itself (a few microseconds per row, every batch). When
    ``iterator`` is the DataLoader and ``dataset`` is skorch's ``Dataset``
    over a numpy array or tensor, the loader instead gets a batch sampler
    and, with automatic batching off, indexes the arrays once per batch, as
    PyTorch documents for bulk loading. The sampler is the one the DataLoader
    would have built (random or sequential, or the given ``sampler``), so the
    batches, their order and the random draws are the same. Any other
    iterator or dataset, or a ``batch_sampler`` or ``collate_fn``, is passed
    through unchanged.

    Parameters
    ----------
    iterator : class
        The DataLoader class, or any callable taking ``(dataset, **kwargs)``.
    dataset : torch.utils.data.Dataset
        Yields ``(x, y)`` pairs.
    with_indices : bool, default=False
        Batches are ``(X, y, indices)``, with the position of each sample in
        ``dataset`` as a tensor of int64.
    whole_batches : bool, default=True
        False: always ``iterator(dataset, **kwargs)``, for consumers of the
        loader that cannot take a sampler of whole batches.
    **kwargs
        DataLoader arguments; ``batch_size`` is required.

    Returns
    -------
    iterable of batches

    Examples
    --------
    >>> import numpy as np
    >>> from skorch.dataset import Dataset
    >>> from torch.utils.data import DataLoader
    >>> data = Dataset(np.arange(10, dtype=np.float32).reshape(5, 2), np.arange(5))
    >>> [y.tolist() for _, y in make_loader(DataLoader, data, batch_size=2)]
    [[0, 1], [2, 3], [4]]
    """
    if not (whole_batches and _indexes_whole_batches(iterator, dataset, kwargs)):
        return iterator(_WithIndices(dataset) if with_indices else dataset, **kwargs)
    batch_size = kwargs.pop("batch_size")
    drop_last = kwargs.pop("drop_last", False)
    sampler = kwargs.pop("sampler", None)
    if sampler is None:
        shuffle = kwargs.pop("shuffle", False)
        sampler = (RandomSampler(dataset, generator=kwargs.get("generator")) if shuffle
                   else SequentialSampler(dataset))
    kwargs.pop("shuffle", None)
    batches = BatchSampler(sampler, batch_size, drop_last)
    return DataLoader(_WholeBatches(dataset, with_indices), batch_size=None, sampler=batches,
                      **kwargs)
