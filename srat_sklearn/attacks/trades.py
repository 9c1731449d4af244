"""TRADES' training attack (Zhang et al., ICML 2019).

It needs no labels: from a point very near the input, projected ascent on
``KL(p(x) || p(x'))`` finds the point of the threat model whose prediction moved
furthest from the clean one. TRADES trains on the clean classification loss plus
``beta`` times this divergence (:func:`srat_sklearn.losses.trades_kl_divergence`).
"""

import torch

from .._torch import eval_mode
from ..losses import trades_kl_divergence
from ._common import (
    ascent_direction,
    check_batch,
    logits_of,
    threat_box,
    to_threat_model,
    validate_attack_args,
)

#: Scale of the Gaussian start (TRADES' 0.001): the divergence and its gradient vanish at x.
START_SCALE = 1e-3


def trades_attack(model, X, *, epsilon, step_size=None, n_steps=10, norm="linf", bounds=None):
    """The point of the threat model whose prediction differs most from ``X``'s (TRADES).

    Starts at ``X`` plus Gaussian noise of scale 0.001 (inside the threat
    model), then takes ``n_steps`` projected ascent steps on the sum over the
    batch of ``KL(p(X) || p(x'))``, with the clean prediction held fixed. The
    model is in eval mode while attacking, as in the reference implementation.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch of inputs to logits of shape (n, n_classes).
    X : torch.Tensor of shape (n, ...)
    epsilon : float
        Radius of the threat model. ``0`` returns ``X`` unchanged.
    step_size : float or None, default=None
        Step of each ascent step; ``None`` uses ``2.5 * epsilon / n_steps``.
    n_steps : int, default=10
    norm : {"linf", "l2"}, default="linf"
    bounds : tuple (low, high) or None, default=None
        Valid data range, widened to contain ``X``.

    Returns
    -------
    torch.Tensor
        Adversarial examples, detached, with the shape and dtype of ``X``.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Linear(4, 3)
    >>> X = torch.rand(8, 4)
    >>> X_adv = trades_attack(model, X, epsilon=0.1)
    >>> bool((X_adv - X).abs().max() <= 0.1 + 1e-6)
    True
    """
    validate_attack_args("trades_attack", not_none=("n_steps",), epsilon=epsilon,
                         step_size=step_size, n_steps=n_steps, norm=norm)
    check_batch(X)
    return _trades_attack(model, X, epsilon=epsilon, step_size=step_size, n_steps=n_steps,
                          norm=norm, bounds=bounds)


def kl_divergence_sum(logits, clean_logits):
    """TRADES' attack objective: KL(f(x) || f(x')) summed over the batch."""
    return trades_kl_divergence(clean_logits, logits, reduction="sum")


def _trades_attack(model, X, *, epsilon, step_size, n_steps, norm, bounds, step=None):
    """``step``: as in :func:`~srat_sklearn.attacks.pgd._pgd_attack`."""
    X = X.detach()
    if epsilon == 0:
        return X
    if step_size is None:
        step_size = 2.5 * epsilon / n_steps
    box = threat_box(X, bounds)
    with eval_mode(model):
        with torch.no_grad():
            clean_logits = logits_of(model, X)
        x_adv = to_threat_model(X + START_SCALE * torch.randn_like(X), X, epsilon, norm, box)
        if step is not None:
            with torch.no_grad():
                for _ in range(n_steps):
                    x_adv = step(kl_divergence_sum, model, x_adv, X, clean_logits, step_size,
                                 epsilon, norm, box)
            return x_adv
        with torch.enable_grad():
            for _ in range(n_steps):
                x_adv.requires_grad_(True)
                divergence = kl_divergence_sum(logits_of(model, x_adv), clean_logits)
                (grad,) = torch.autograd.grad(divergence, x_adv)
                with torch.no_grad():
                    x_adv = to_threat_model(x_adv + step_size * ascent_direction(grad, norm), X,
                                            epsilon, norm, box)
    return x_adv.detach()
