"""A threat model stated in a pipeline's input columns, carried to its classifier's features.

A user names the columns an attacker may change, and their budgets, in the units of the data
they hold (dollars, hours); the classifier behind a ``ColumnTransformer`` sees scaled and
encoded features. :func:`classifier_threat` carries the budget through the fitted
transformers, one per-column map at a time:

- scalers (``StandardScaler``, ``RobustScaler``, ``MaxAbsScaler``: divide by ``scale_``;
  ``MinMaxScaler``: multiply by it), ``SimpleImputer`` without indicators,
  ``FunctionTransformer()`` and ``"passthrough"`` map each column to one feature: the budget
  is rescaled;
- a ``ColumnTransformer`` does this per transformer, for the columns it takes, and drops
  what it drops;
- any other transformer (``OneHotEncoder``, ``OrdinalEncoder``, ``PCA``, ...) is accepted when
  none of its input columns may move (its outputs are then frozen), and refused otherwise:
  its outputs are not a rescaling of single columns, so no budget per feature describes it.
  A one-hot group in particular switches category rather than moving by an amount.
"""

import numbers

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    RobustScaler,
    StandardScaler,
)

from .._feature_threat import check_epsilon, perturbable_mask

_DIVIDE_BY_SCALE = (StandardScaler, RobustScaler, MaxAbsScaler)


def input_budget(epsilon, perturbable_features, n_features, feature_names=None):
    """One budget per input column: ``epsilon`` (a number, one per column, or a mapping
    ``{column: budget}``) on the ``perturbable_features``, 0 on the others.

    Examples
    --------
    >>> input_budget(0.5, [0, 2], 3).tolist()
    [0.5, 0.0, 0.5]
    >>> input_budget({"amount": 50.0}, None, 2, feature_names=["age", "amount"]).tolist()
    [0.0, 50.0]
    """
    if isinstance(epsilon, dict):
        values = np.zeros(n_features)
        for column, value in epsilon.items():
            _check_budget(value, f"epsilon[{column!r}]")
            values[perturbable_mask([column], n_features, feature_names)] = value
    elif np.ndim(epsilon) == 0:
        _check_budget(epsilon, "epsilon")
        values = np.full(n_features, float(epsilon))
    else:
        check_epsilon(epsilon)
        values = np.asarray(epsilon, dtype=np.float64)
        if len(values) != n_features:
            raise ValueError(f"epsilon has {len(values)} values, but X has {n_features} "
                             "columns: give one per column, a mapping {column: budget}, or a "
                             "number.")
    mask = perturbable_mask(perturbable_features, n_features, feature_names)
    return np.where(mask, values, 0.0)


def _check_budget(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}.")


def budget_radius(epsilon):
    """Validate an evaluation's ``epsilon`` (None, a number, one per column, or a mapping);
    return the radius that the attack's other checks take (None stays None)."""
    if epsilon is None:
        return None
    if isinstance(epsilon, dict):
        for column, value in epsilon.items():
            _check_budget(value, f"epsilon[{column!r}]")
        return float(max(epsilon.values(), default=0.0))
    if np.ndim(epsilon) == 0:
        return epsilon  # checked with the attack's settings
    check_epsilon(epsilon)
    return float(np.max(epsilon))


def is_per_feature(epsilon):
    return isinstance(epsilon, dict) or np.ndim(epsilon) > 0


def classifier_threat(transformers, budget):
    """The budget per feature of the classifier behind ``transformers`` (a fitted pipeline
    slice), from ``budget``, one value per input column; 0 means frozen."""
    steps = [step for _, step in transformers.steps
             if step not in (None, "passthrough") and hasattr(step, "transform")]
    for step in steps:
        budget = _through(step, budget)
    return budget


def _through(step, budget):
    if isinstance(step, Pipeline):
        return classifier_threat(step, budget)
    if isinstance(step, ColumnTransformer):
        return _through_columns(step, budget)
    if isinstance(step, _DIVIDE_BY_SCALE):
        return budget / _scale(step, budget)
    if isinstance(step, MinMaxScaler):
        return budget * step.scale_
    # An imputer without indicators keeps each column, unless it drops an empty one.
    if isinstance(step, SimpleImputer) and not step.add_indicator and \
            _n_outputs(step) == len(budget):
        return budget
    if isinstance(step, FunctionTransformer) and step.func is None:
        return budget
    if not np.any(budget > 0):  # nothing moves into it: its outputs stay as they are
        return np.zeros(_n_outputs(step))
    raise ValueError(
        f"The budget cannot be carried through {type(step).__name__}: its outputs are not a "
        "rescaling of single input columns"
        + (" (a one-hot group switches category; it does not move by an amount)"
           if type(step).__name__ == "OneHotEncoder" else "")
        + ". Leave its input columns out of perturbable_features, or state the threat model "
          "on the classifier's own features (SRATClassifier's perturbable_features and "
          "epsilon).")


def _n_outputs(step):
    try:
        return len(step.get_feature_names_out())
    except (AttributeError, ValueError, TypeError):
        raise ValueError(f"{type(step).__name__} does not say how many features it makes "
                         "(no get_feature_names_out), so the budget cannot be carried "
                         "through it.") from None


def _scale(step, budget):
    scale = getattr(step, "scale_", None)
    return np.ones(len(budget)) if scale is None else scale


def _column_indices(columns, n_features, feature_names):
    """The input indices a ColumnTransformer's fitted entry takes."""
    if isinstance(columns, slice):
        if not all(isinstance(b, (numbers.Integral, type(None)))
                   for b in (columns.start, columns.stop)):
            raise ValueError("Slices of column names in a ColumnTransformer are not "
                             "supported here; list the columns.")
        return np.arange(n_features)[columns]
    if isinstance(columns, (str, numbers.Integral)):
        columns = [columns]
    return np.flatnonzero(perturbable_mask(np.asarray(columns), n_features, feature_names))


def _through_columns(step, budget):
    names = getattr(step, "feature_names_in_", None)
    out = np.zeros(sum(s.stop - s.start for s in step.output_indices_.values()))
    for name, transformer, columns in step.transformers_:
        if transformer == "drop":
            continue
        part = budget[_column_indices(columns, len(budget), names)]
        if part.size == 0:  # an empty selection makes no features
            continue
        moved = part if transformer == "passthrough" else _through(transformer, part)
        where = step.output_indices_[name]
        if len(moved) != where.stop - where.start:
            raise ValueError(f"The budget cannot be carried through the ColumnTransformer's "
                             f"{name!r}: it makes {where.stop - where.start} features of "
                             f"{len(part)} columns.")
        out[where] = moved
    return out
