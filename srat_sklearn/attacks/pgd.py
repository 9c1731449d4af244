"""Projected gradient descent (Madry et al., 2018)."""

import torch
import torch.nn.functional as F

from .._torch import eval_mode
from ._common import (
    ascent_direction,
    check_inputs,
    check_labels,
    clip,
    logits_of,
    project,
    random_perturbation,
    threat_box,
    to_threat_model,
    validate_attack_args,
)


def pgd_attack(
    model,
    X,
    y,
    *,
    epsilon,
    step_size=None,
    n_steps=10,
    norm="linf",
    random_start=True,
    bounds=None,
    start=None,
):
    """Projected gradient descent (Madry et al., 2018) on the cross-entropy loss.

    Maximises the plain (unweighted) cross-entropy of ``model`` inside the
    ``norm`` ball of radius ``epsilon`` around ``X`` and inside ``bounds``
    (widened to contain ``X``, so that a point outside them never moves more
    than ``epsilon``). The model is put in eval mode while attacking and
    restored afterwards; gradients are taken with respect to the perturbation
    only, so nothing is left in the ``.grad`` of the model's parameters.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch of inputs to logits of shape (n, n_classes).
    X : torch.Tensor of shape (n, ...)
        Clean inputs, on the model's device.
    y : torch.Tensor of shape (n,)
        Integer class indices, each a column of the model's logits (0 to n_classes - 1;
        others raise a ``ValueError`` before the first step).
    epsilon : float
        Radius of the threat model. ``0`` returns ``X`` unchanged.
    step_size : float or None, default=None
        Step of each ascent step; ``None`` uses ``2.5 * epsilon / n_steps``.
    n_steps : int, default=10
        Number of ascent steps.
    norm : {"linf", "l2"}, default="linf"
        The threat model's norm.
    random_start : bool, default=True
        Start from a uniform random point of the ball instead of ``X``.
    bounds : tuple (low, high) or None, default=None
        Valid data range; each of ``low`` and ``high`` is a scalar or a
        tensor broadcastable to one sample (e.g. per-feature bounds).
    start : torch.Tensor or None, default=None
        Perturbations to start from, shaped like ``X``, in place of the
        random start: for instance each sample's adversarial perturbation of
        the previous epoch, so that a few steps per epoch add up to a strong
        attack (Zheng et al., 2020). Projected onto the ball and the bounds
        first.

    Returns
    -------
    torch.Tensor
        Adversarial examples, detached, with the shape and dtype of ``X``.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Linear(4, 3)
    >>> X, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    >>> X_adv = pgd_attack(model, X, y, epsilon=0.1, bounds=(0.0, 1.0))
    >>> bool((X_adv - X).abs().max() <= 0.1 + 1e-6)
    True
    """
    validate_attack_args("pgd_attack", not_none=("n_steps",), epsilon=epsilon,
                         step_size=step_size, n_steps=n_steps, norm=norm,
                         random_start=random_start)
    check_inputs(model, X, y)
    return _pgd_attack(model, X, y, epsilon=epsilon, step_size=step_size, n_steps=n_steps,
                       norm=norm, random_start=random_start, bounds=bounds, start=start)


def cross_entropy_sum(logits, y):
    """PGD's objective: the cross-entropy summed over the batch (one gradient per sample)."""
    return F.cross_entropy(logits, y, reduction="sum")


def _pgd_attack(model, X, y, *, epsilon, step_size, n_steps, norm, random_start, bounds, start,
                step=None):
    """``step``: :func:`~srat_sklearn.attacks._common.ascent_step` or its compiled version,
    in place of the eager loop, which takes its gradients with ``torch.autograd.grad``."""
    X = X.detach()
    if epsilon == 0:
        return X
    if step_size is None:
        step_size = 2.5 * epsilon / n_steps
    box = threat_box(X, bounds)
    y = check_labels(y, X)

    if start is not None:
        if start.shape != X.shape:
            raise ValueError(f"start must have the shape of X, {tuple(X.shape)}; got "
                             f"{tuple(start.shape)}.")
        start = project(start.detach().to(dtype=X.dtype, device=X.device), epsilon, norm)
        x_adv = clip(X + start, box)
    elif random_start:
        x_adv = clip(X + random_perturbation(X, epsilon, norm), box)
    else:
        x_adv = X.clone()

    if step is not None:
        with eval_mode(model), torch.no_grad():
            for _ in range(n_steps):
                x_adv = step(cross_entropy_sum, model, x_adv, X, y, step_size, epsilon, norm, box)
        return x_adv
    with eval_mode(model), torch.enable_grad():
        for _ in range(n_steps):
            x_adv.requires_grad_(True)
            loss = cross_entropy_sum(logits_of(model, x_adv), y)
            (grad,) = torch.autograd.grad(loss, x_adv)
            with torch.no_grad():
                x_adv = to_threat_model(x_adv + step_size * ascent_direction(grad, norm), X,
                                        epsilon, norm, box)
    return x_adv.detach()
