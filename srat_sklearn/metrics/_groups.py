"""The well- and the under-represented groups of classes."""

import numpy as np

from .._validation import check_option

#: The two groups every report and group scorer speaks of.
GROUP_NAMES = ("well", "under")
#: The rows of a report: all samples, then the two groups.
REPORT_GROUPS = ("overall", *GROUP_NAMES)

#: Why a group can come out empty, and what to do about it.
_EQUAL_COUNTS_ADVICE = (
    "If a sampler balanced the data in front of the classifier, pass the class counts of the "
    "data before resampling as SRATClassifier(class_prior=...), or name the classes with "
    "under_represented=[...].")


def under_represented_mask(class_counts):
    """Which classes are under-represented, from their training counts (or frequencies).

    A class is under-represented when its count is below
    ``sqrt(n_max * n_min)``, the geometric mean of the largest and the smallest
    count: the midpoint of the counts on a log scale. Unlike "below the
    median", this finds the rare classes of a step imbalance whatever their
    number (``[1000, 50, 50]``, 4 common and 6 rare classes), and the tail of
    an exponential one. A class without training samples is always
    under-represented.

    Parameters
    ----------
    class_counts : array-like of shape (n_classes,)
        Counts or frequencies, non-negative, not all zero.

    Returns
    -------
    ndarray of bool, shape (n_classes,)

    Raises
    ------
    ValueError
        When every class has the same count: then no class is rarer than another.

    Examples
    --------
    >>> under_represented_mask([1000, 50, 50]).tolist()
    [False, True, True]
    >>> int(under_represented_mask([100] * 4 + [10] * 6).sum())
    6
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) < 2 or not np.all(np.isfinite(counts)) \
            or np.any(counts < 0) or not np.any(counts > 0):
        raise ValueError(f"class_counts must be non-negative counts of at least 2 classes, not "
                         f"all zero; got {class_counts!r}.")
    present = counts[counts > 0]
    if present.max() == present.min() and len(present) == len(counts):
        raise ValueError(
            f"Every class has the same training count, so no class is under-represented. "
            f"{_EQUAL_COUNTS_ADVICE}")
    return (counts < np.sqrt(present.max() * present.min())) | (counts == 0)


def reference_counts(classifier):
    """The class counts the groups are defined on: the prior before resampling, if given."""
    prior = getattr(classifier, "class_prior_", None)
    return classifier.class_counts_ if prior is None else prior


def as_label_list(labels):
    """``labels`` as a list; a single label (a string, say) is one label, not its characters."""
    if labels is None:
        return None
    if isinstance(labels, (str, bytes)) or np.ndim(labels) == 0:
        return [labels]
    return list(labels)


def plain(value):
    """A numpy scalar as the Python value it holds (labels print as ``0``, not ``np.int64(0)``)."""
    return value.item() if isinstance(value, np.generic) else value


def group_mask(classifier, under_represented=None):
    """Boolean mask over ``classifier.classes_``: the under-represented group.

    ``under_represented=None`` applies :func:`under_represented_mask` to the
    classifier's class prior (``class_prior_``). Both groups must hold a class.
    """
    classes = classifier.classes_
    if under_represented is None:
        mask = under_represented_mask(reference_counts(classifier))
    else:
        named = as_label_list(under_represented)
        known = set(map(plain, classes))
        unknown = [label for label in named if plain(label) not in known]
        if unknown:
            raise ValueError(f"under_represented names labels the classifier does not know: "
                             f"{sorted(map(plain, unknown), key=str)}; its classes are "
                             f"{[plain(c) for c in classes]}.")
        mask = np.isin(np.array([plain(c) for c in classes], dtype=object),
                       np.array([plain(c) for c in named], dtype=object))
    if mask.all():
        raise ValueError("Every class is in the under-represented group, so the "
                         "well-represented group is empty; name fewer classes.")
    if not mask.any():  # only a list naming no class gets here: the rule raises itself
        raise ValueError(NO_CLASS_NAMED)
    return mask


NO_CLASS_NAMED = ("under_represented names no class, so the under-represented group is empty; "
                  "name the rare classes, or pass None for the library's rule.")


def check_group(group):
    return check_option(group, "group", GROUP_NAMES)
