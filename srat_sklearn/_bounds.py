"""The data bounds the attacks keep to: checked, inferred from the training data, cached per device.

The attacks widen the bounds to contain each input (see :func:`srat_sklearn.attacks.threat_box`),
so a point outside them still moves at most ``epsilon``.
"""

import numpy as np
import torch


def check_bounds(bounds):
    """Validate ``bounds``: ``"auto"``, ``None`` or a finite pair ``(low, high)``, low <= high."""
    if bounds is None or (isinstance(bounds, str) and bounds == "auto"):
        return bounds
    if isinstance(bounds, str) or not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise ValueError(f"bounds must be 'auto', None or a pair (low, high), got {bounds!r}.")
    low, high = (np.asarray(b, dtype=np.float64) for b in bounds)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValueError(f"bounds must be finite, got {bounds!r}.")
    if np.any(low > high):
        raise ValueError(f"bounds must have low <= high, got {bounds!r}.")
    return bounds


def infer_bounds(bounds, X):
    """``(low, high)`` as float32 arrays, or None for unbounded inputs.

    ``bounds="auto"`` takes the per-feature minimum and maximum of a 2-D ``X``
    and the global ones of images; ``X`` may be None when ``bounds`` is given.
    """
    if bounds is None:
        return None
    if not isinstance(bounds, str):
        low, high = bounds
        return np.asarray(low, np.float32), np.asarray(high, np.float32)
    if X.ndim == 2:
        return X.min(axis=0), X.max(axis=0)
    return np.float32(X.min()), np.float32(X.max())


def infer_bounds_from_batches(bounds, batches):
    """As :func:`infer_bounds` for ``"auto"``, reading a Dataset batch by batch: global bounds."""
    if not isinstance(bounds, str):
        return infer_bounds(bounds, None)
    low, high = np.inf, -np.inf
    for Xi, _ in batches:
        low, high = min(low, float(Xi.min())), max(high, float(Xi.max()))
    return np.float32(low), np.float32(high)


class BoundsOnDevice:
    """The bounds as tensors, made once per device and dtype.

    A host-to-device copy on every batch would synchronise the device.
    ``unknown`` is the error to raise instead, when the bounds are not known.
    """

    def __init__(self, bounds, unknown=None):
        self.bounds = bounds
        self.unknown = unknown
        self._tensors = {}

    def like(self, X):
        """``(low, high)`` on the device and in the dtype of ``X``, or None."""
        if self.unknown is not None:
            raise ValueError(self.unknown)
        if self.bounds is None:
            return None
        key = (X.device, X.dtype)
        if key not in self._tensors:
            self._tensors[key] = tuple(torch.as_tensor(b, dtype=X.dtype, device=X.device)
                                       for b in self.bounds)
        return self._tensors[key]

    def __getstate__(self):
        # Device tensors are rebuilt on demand.
        return {"bounds": self.bounds, "unknown": self.unknown, "_tensors": {}}
