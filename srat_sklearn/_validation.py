"""Parameter checks shared by the estimator, the attacks and the metrics.

Hyper-parameters are declared the scikit-learn way, as tables of constraints
(:class:`sklearn.utils._param_validation.Interval`, ``StrOptions``, ...) that
:func:`validate_params` checks; it also refuses booleans where a number is
asked for, which scikit-learn lets through. ``check_real``, ``check_int`` and
``check_option`` check single values where no table applies.
"""

import math
import numbers

import numpy as np
from sklearn.utils import check_scalar
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    validate_parameter_constraints,
)

__all__ = ["validate_params", "check_real", "check_int", "check_option", "finite",
           "positive", "non_negative", "positive_int"]


def finite(low, high=np.inf, closed="left"):
    """A constraint: a real number in the interval, never infinite or NaN."""
    return Interval(numbers.Real, low, high, closed=closed)


def non_negative():
    return finite(0)


def positive():
    return finite(0, closed="neither")


def positive_int():
    return Interval(numbers.Integral, 1, None, closed="left")


def validate_params(constraints, params, caller):
    """Check ``params`` against a table of scikit-learn constraints, naming the bad one.

    Raises ``InvalidParameterError`` (a ``ValueError`` and a ``TypeError``).

    Examples
    --------
    >>> validate_params({"epsilon": [non_negative()]}, {"epsilon": -1.0}, "pgd_attack")
    Traceback (most recent call last):
    ...
    sklearn.utils._param_validation.InvalidParameterError: The 'epsilon' parameter of \
pgd_attack must be a float in the range [0.0, inf). Got -1.0 instead.
    """
    for name, value in params.items():
        numeric = [c for c in constraints.get(name, []) if isinstance(c, Interval)]
        if numeric and isinstance(value, (bool, np.bool_)):
            raise InvalidParameterError(f"The {name!r} parameter of {caller} must be a number, "
                                        f"not the bool {value!r}.")
    validate_parameter_constraints(constraints, params, caller_name=caller)


def check_real(value, name, *, min_val=None, max_val=None, include_boundaries="both",
               allow_none=False):
    """Check that ``value`` is a finite real number in range; return it as float."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got the bool {value!r}.")
    check_scalar(value, name, numbers.Real, min_val=min_val, max_val=max_val,
                 include_boundaries=include_boundaries)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    return float(value)


def check_int(value, name, *, min_val=None, max_val=None, allow_none=False):
    """Check that ``value`` is an integer in range; return it as int."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got the bool {value!r}.")
    check_scalar(value, name, numbers.Integral, min_val=min_val, max_val=max_val)
    return int(value)


def check_option(value, name, options):
    """Check that ``value`` is one of ``options``."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}.")
    return value
