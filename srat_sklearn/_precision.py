"""Mixed precision and memory format of the forward passes (``mixed_precision``, ``channels_last``).

A mixin of :class:`~srat_sklearn.SRATClassifier`: training, attacks and prediction run their
forward passes under bfloat16 autocast when asked, with losses, input gradients and
probabilities in float32, and image batches in channels-last order when asked, or, with
``channels_last="auto"``, where that order is the faster one.
"""

from contextlib import nullcontext

import torch
from skorch.utils import to_tensor


class PrecisionMixin:
    """``_autocast``, ``_memory_format`` and skorch's ``infer`` in the chosen precision."""

    def _autocast(self):
        """Mixed precision for the forward passes, on the estimator's device."""
        if self.mixed_precision != "bf16":
            return nullcontext()  # a disabled autocast still costs a few state switches
        return torch.autocast(self._compute_device().type, dtype=torch.bfloat16)

    def _resolve_channels_last(self, module):
        """Whether ``module`` runs channels last: ``channels_last``, or for ``"auto"``, when it
        has convolutions and runs on the CPU (oneDNN's faster order: gradient-free attack
        queries in about half the time) or in bfloat16 (tensor cores)."""
        if self.channels_last != "auto":
            return bool(self.channels_last)
        return any(p.dim() == 4 for p in module.parameters()) and (
            self._compute_device().type == "cpu" or self.mixed_precision == "bf16")

    def _uses_channels_last(self):
        # Estimators pickled before "auto" existed have no channels_last_.
        return getattr(self, "channels_last_", self.channels_last is True)

    def _memory_format(self, X):
        if self._uses_channels_last() and isinstance(X, torch.Tensor) and X.ndim == 4:
            return X.contiguous(memory_format=torch.channels_last)
        return X

    def infer(self, x, **fit_params):
        if self._uses_channels_last():
            x = self._memory_format(to_tensor(x, device=self.device))
        with self._autocast():
            y_pred = super().infer(x, **fit_params)
        # Losses, softmax and the numpy conversion (which has no bfloat16) in float32.
        return y_pred.float() if self.mixed_precision else y_pred
