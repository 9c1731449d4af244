"""The training attack's budget per sample: class-aware radii and an epsilon warm-up.

The plug-ins of RobustLT (Zhang et al., CVPR 2026), on top of any method:

- class-aware budgets: class ``c`` is attacked at ``epsilon * f_c`` with
  ``f_c = (1 - mix) + mix * s_c / mean(s)`` and ``s_c = sqrt(log(n_max / n_c))``, so rarer
  classes get larger budgets and the mean over classes stays ``epsilon``;
- a warm-up: the budget grows linearly from ``epsilon / warmup_epochs`` at the first epoch to
  ``epsilon`` at epoch ``warmup_epochs - 1``.

Attacks know one radius: :func:`attack_per_sample` runs one in coordinates scaled per sample,
``z = x / p`` with ``p`` each sample's share of the largest budget, on a model that takes ``z``.
"""

import numpy as np
import torch


def class_radius_factors(class_counts, mix):
    """``f_c``, the budget of each class per unit of epsilon (mean 1 over the classes).

    Examples
    --------
    >>> class_radius_factors([100, 100], 1.0).tolist()
    [1.0, 1.0]
    >>> [round(f, 3) for f in class_radius_factors([100, 10, 1], 1.0).tolist()]
    [0.0, 1.243, 1.757]
    """
    counts = np.maximum(np.asarray(class_counts, dtype=np.float64), 1.0)
    spread = np.sqrt(np.log(counts.max() / counts))
    if mix == 0 or spread.mean() == 0:
        return np.ones(len(counts))
    return (1.0 - mix) + mix * spread / spread.mean()


def warmup_factor(epoch, warmup_epochs):
    """The share of epsilon at the 0-based ``epoch`` of a linear warm-up (1 without one).

    >>> [warmup_factor(e, 4) for e in range(5)]
    [0.25, 0.5, 0.75, 1.0, 1.0]
    """
    return 1.0 if warmup_epochs <= 0 else min(1.0, (epoch + 1) / warmup_epochs)


class _ScaledSamples(torch.nn.Module):
    """``model`` on coordinates ``z = x / p``, scaled per sample."""

    def __init__(self, model, share):
        super().__init__()
        self.model, self.share = model, share

    def forward(self, z):
        return self.model(z * self.share)


def attack_per_sample(run, model, X, shares, bounds=None, start=None):
    """``run(model_z, Z, bounds=..., start=...)`` with sample ``i``'s budget ``shares[i]``
    times the run's radius; ``shares`` in [0, 1], 0 leaves a sample as it is."""
    view = shares.view(-1, *([1] * (X.dim() - 1))).to(X.dtype)
    resting = view == 0
    share = torch.where(resting, torch.ones_like(view), view)
    Z = X / share
    if bounds is not None:
        bounds = tuple(torch.as_tensor(b, dtype=X.dtype, device=X.device) / share
                       for b in bounds)
    Z_adv = run(_ScaledSamples(model, share), Z, bounds=bounds,
                start=None if start is None else start / share)
    # What did not move keeps its exact value (x / p * p need not give x back).
    return torch.where(resting | (Z_adv == Z), X, Z_adv * share)
