"""Parameter checks shared by the estimator, the attacks and the metrics.

Thin wrappers around :func:`sklearn.utils.check_scalar` that also reject
booleans and non-finite values, which ``check_scalar`` lets through.
"""

import math
import numbers

from sklearn.utils import check_scalar


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
