"""What the estimator accepts as X and y: checked, shaped to samples, labels encoded.

Arrays go through scikit-learn's ``validate_data`` (which records ``n_features_in_`` and
feature names on the estimator); a 2-D X is reshaped to ``input_shape`` when one is given.
A torch tensor, on any device and whether or not it requires gradients, is read as the NumPy
array of its values. A torch Dataset is taken as it is, its labels already class indices.
"""

import warnings

import numpy as np
import torch
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d, validate_data
from skorch.utils import is_dataset, to_numpy

from ._torch import eval_mode, first_output
from .loading import dataset_labels


def shape_samples(X, input_shape):
    """``X`` with its rows reshaped to ``input_shape`` (when given and not already so)."""
    if X.ndim > 4:
        raise ValueError(f"X must have 2 (tabular) or 4 (images) dimensions, got X with "
                         f"{X.ndim} dimensions and shape {X.shape}.")
    if input_shape is None or X.shape[1:] == tuple(input_shape):
        return X
    if X.ndim != 2:
        raise ValueError(f"input_shape reshapes the rows of a 2-D X, but X has {X.ndim} "
                         f"dimensions and samples of shape {X.shape[1:]}.")
    if np.prod(input_shape) != X.shape[1]:
        raise ValueError(f"input_shape={tuple(input_shape)} holds {np.prod(input_shape)} "
                         f"values, but the rows of X have {X.shape[1]}.")
    return X.reshape(len(X), *input_shape)


def check_samples(X, sample_shape):
    """``X`` as contiguous float32, its samples of the fitted ``sample_shape`` (if known)."""
    if sample_shape is not None and tuple(X.shape[1:]) != tuple(sample_shape):
        raise ValueError(f"X has samples of shape {tuple(X.shape[1:])}, but the classifier "
                         f"was fitted on samples of shape {tuple(sample_shape)}.")
    return np.ascontiguousarray(X, dtype=np.float32)


def host_array(a):
    """A torch tensor as a NumPy array in host memory, from any device and detached (NumPy
    cannot read a GPU's memory or a tensor that requires gradients); anything else as is."""
    return to_numpy(a) if isinstance(a, torch.Tensor) else a


#: The error of an evaluation whose labels the classifier never saw.
UNFITTED_LABELS = "y holds labels the classifier was not fitted on"


def label_vector(y):
    """The labels of an evaluation as a NumPy array; a column vector, which ``fit`` takes,
    raveled with the same ``DataConversionWarning`` as there."""
    y = np.asarray(host_array(y))
    if y.ndim == 2 and y.shape[1] == 1:
        return column_or_1d(y, warn=True)
    return y


def _as_fitted(estimator, X):
    """``X`` in the form ``n_features_in_`` counted at fit, or an error about sample shapes.

    A classifier fitted on rows with ``input_shape`` also takes samples of that shape: they go
    to scikit-learn's checks as rows.
    """
    fitted, shape = getattr(estimator, "sample_shape_", None), getattr(X, "shape", None)
    if fitted is None or shape is None or len(shape) < 2 or (len(fitted) == 1 and len(shape) == 2):
        return X  # scikit-learn's checks and errors: "Reshape your data", "X has 3 features"
    shape, rows = tuple(shape[1:]), (int(np.prod(fitted)),)
    input_shape = None if estimator.input_shape is None else tuple(estimator.input_shape)
    if input_shape is not None and shape == input_shape and \
            getattr(estimator, "n_features_in_", None) == rows[0]:
        return np.reshape(np.asarray(X), (len(X), -1))
    if shape != tuple(fitted) and not (input_shape is not None and shape == rows):
        also = f" (or rows of {rows[0]} values)" if input_shape is not None else ""
        raise ValueError(f"X has samples of shape {shape}, but the classifier was fitted on "
                         f"samples of shape {tuple(fitted)}{also}.")
    return X


def refuse_sample_weight(fit_params):
    """A clear error for ``sample_weight``, which would reach the module's ``forward``."""
    if "sample_weight" in fit_params:
        raise TypeError("SRATClassifier.fit takes no sample_weight: weigh classes with "
                        "class_weight, or resample with imbalanced-learn in a pipeline.")


def validate_X(estimator, X, *, reset):
    """X checked by scikit-learn and shaped to the module's samples."""
    X = host_array(X)
    if not reset:
        X = _as_fitted(estimator, X)
    X = validate_data(estimator, X, reset=reset, allow_nd=True,
                      dtype=(np.float32, np.float64), ensure_all_finite=True)
    X = shape_samples(X, estimator.input_shape)
    return check_samples(X, None if reset else getattr(estimator, "sample_shape_", None))


def validate_Xy(estimator, X, y, *, reset):
    """Training arrays checked by scikit-learn; ``y`` still as given."""
    if y is None:
        raise ValueError(f"{type(estimator).__name__} requires y to be passed, but the target y "
                         "is None (only a torch Dataset X carries its own labels).")
    X, y = host_array(X), host_array(y)
    X, y = validate_data(estimator, X, y, reset=reset, allow_nd=True,
                         dtype=(np.float32, np.float64), ensure_all_finite=True)
    try:
        check_classification_targets(y)
    except TypeError as error:
        raise _mixed_types(y) from error
    if reset and X.ndim == 4 and X.shape[-1] in (1, 3, 4) and X.shape[1] > 4:
        warnings.warn(f"X has samples of shape {X.shape[1:]}: images with the channels last? "
                      "The networks take (channels, height, width); transpose X with "
                      "X.transpose(0, 3, 1, 2).", UserWarning, stacklevel=3)
    X = shape_samples(X, estimator.input_shape)
    return check_samples(X, None if reset else getattr(estimator, "sample_shape_", None)), y


def _mixed_types(labels):
    """The error for labels of several types, which NumPy cannot sort into classes."""
    kinds = sorted({type(label).__name__ for label in np.asarray(labels, dtype=object).ravel()})
    return TypeError(f"The labels mix types ({', '.join(kinds)}), which have no order to sort "
                     "them into classes: give them one type (y.astype(str), say).")


def learn_classes(y, classes=None):
    """The sorted labels: ``classes`` if given, else those of ``y``; at least 2."""
    labels = y if classes is None else classes
    try:
        learned = LabelEncoder().fit(labels).classes_
    except TypeError as error:  # NumPy cannot sort them
        raise _mixed_types(labels) from error
    if len(learned) < 2:
        raise ValueError(f"SRATClassifier needs samples of at least 2 classes in y; got 1 "
                         f"class: {learned.tolist()}.")
    return learned


def fit_classes(estimator, classes, *, reset):
    """The labels a fit must know beyond those of its y: ``partial_fit``'s ``classes`` or the
    constructor's, or None.

    As scikit-learn's incremental learners take them: the first call's ``classes`` may name
    labels its y lacks; a later call's must be the classes already learned.
    """
    if classes is None:
        return estimator.classes if reset else None
    classes = LabelEncoder().fit(host_array(classes)).classes_
    known, source = ((estimator.classes, "the constructor's classes") if reset else
                     (estimator.classes_, "the classes of the first call"))
    if known is not None and not np.array_equal(LabelEncoder().fit(known).classes_, classes):
        raise ValueError(f"partial_fit(classes={classes.tolist()}) is not the same as "
                         f"{source}, {np.asarray(known).tolist()}.")
    return classes


def label_indices(y, classes, *, what="y holds labels the classifier does not know"):
    """Positions of the labels ``y`` in ``classes``, as int64; unknown labels are an error."""
    unknown = np.setdiff1d(np.unique(y), classes)
    if len(unknown):
        raise ValueError(f"{what}: {unknown.tolist()}; its classes are {classes.tolist()}.")
    return np.searchsorted(classes, y).astype(np.int64)


def check_dataset(dataset, y, input_shape):
    """The class indices a training Dataset holds, checked."""
    if y is not None:
        raise ValueError("Pass y=None with a torch Dataset: its items hold the labels.")
    if input_shape is not None:
        raise ValueError("input_shape reshapes 2-D arrays; it does not apply to a Dataset.")
    labels = dataset_labels(dataset)
    if len(labels) == 0:
        raise ValueError("The Dataset is empty.")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError("The labels of a Dataset must be class indices 0, 1, ..., got labels "
                         f"of dtype {labels.dtype} with minimum {labels.min()}.")
    return labels


class InputsMixin:
    """skorch's check of the training data, left to what this module has checked, and a
    check that the module takes these data, before any training."""

    def check_data(self, X, y):
        # skorch reads a Dataset's labels only to infer the classes, which fit has learned:
        # its reading fails on a Subset with range indices, the usual kind.
        if y is not None or not is_dataset(X):
            super().check_data(X, y)
        first, module = _first_samples(X), self._bare_module()
        if first is None:
            return  # not one tensor per sample: the attacks say so (train_step)
        try:
            with torch.no_grad(), eval_mode(module):
                logits = self._forward_clean(
                    torch.as_tensor(first, device=self._compute_device()))
        except RuntimeError as error:
            raise ValueError(f"The module cannot take samples of shape {tuple(first.shape[1:])},"
                             f" those of X: {error}") from error
        check_logits(logits, len(self.classes_))


def _first_samples(X, n=2):
    """The first ``n`` samples of an array or a Dataset, as one float32 array; None when a
    Dataset's samples are not arrays."""
    if not is_dataset(X):
        return np.asarray(X[:n], dtype=np.float32)
    samples = [X[i][0] for i in range(min(n, len(X)))]
    if not all(isinstance(x, (torch.Tensor, np.ndarray)) for x in samples):
        return None
    return np.stack([host_array(x) for x in samples]).astype(np.float32)


def check_logits(output, n_classes):
    """``output`` of the module (its first item, if a tuple), which must be logits of shape
    (batch, n_classes)."""
    logits = first_output(output)
    if logits.ndim != 2 or logits.shape[1] != n_classes:
        raise ValueError(f"The module returns outputs of shape {tuple(logits.shape)}, but logits "
                         f"of shape (batch, {n_classes}) are needed, one column per class.")
    return logits


def dataset_sample_shape(dataset):
    return tuple(to_numpy(dataset[0][0]).shape)
