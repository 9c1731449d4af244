"""Adversarial attacks as plain torch functions.

The attacks take any ``torch.nn.Module`` that maps a batch of inputs to class
logits and return perturbed inputs. They do not depend on skorch, so they can
be used (and tested) on their own.
"""

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from ._validation import check_int, check_option, check_real
from .models import first_output

__all__ = ["pgd_attack", "project", "NORMS"]

NORMS = ("linf", "l2")


@contextmanager
def eval_mode(module):
    """Put ``module`` in eval mode and restore its previous mode afterwards.

    Batch-norm running statistics must not move while an attack queries the
    model, and dropout must not randomise the gradient.
    """
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes.items():
            m.training = training


def _per_sample_norm(t):
    return t.flatten(1).norm(p=2, dim=1).view(-1, *([1] * (t.dim() - 1)))


def _clamp_to_bounds(x, bounds):
    if bounds is None:
        return x
    low, high = bounds
    return torch.clamp(x, min=low, max=high)


def _bounds_as_tensors(bounds, like):
    if bounds is None:
        return None
    low, high = bounds
    as_t = lambda v: torch.as_tensor(v, dtype=like.dtype, device=like.device)  # noqa: E731
    return as_t(low), as_t(high)


def project(delta, epsilon, norm):
    """Project perturbations ``delta`` onto the ``norm`` ball of radius ``epsilon``.

    Parameters
    ----------
    delta : torch.Tensor of shape (n, ...)
        One perturbation per sample.
    epsilon : float
        Radius of the ball.
    norm : {"linf", "l2"}
        The norm of the ball.

    Returns
    -------
    torch.Tensor
        The projected perturbations, same shape as ``delta``.

    Examples
    --------
    >>> import torch
    >>> project(torch.tensor([[0.5, -2.0]]), 1.0, "linf")
    tensor([[ 0.5000, -1.0000]])
    >>> project(torch.tensor([[3.0, 4.0]]), 1.0, "l2")
    tensor([[0.6000, 0.8000]])
    """
    if norm == "linf":
        return delta.clamp(-epsilon, epsilon)
    if norm == "l2":
        factor = (epsilon / _per_sample_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
        return delta * factor
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}.")


def _random_start(x, epsilon, norm):
    if norm == "linf":
        return torch.empty_like(x).uniform_(-epsilon, epsilon)
    # Uniform in the L2 ball: a uniform direction and a radius ~ eps * U^(1/d).
    direction = torch.randn_like(x)
    direction = direction / _per_sample_norm(direction).clamp_min(1e-12)
    dim = x[0].numel()
    radius = epsilon * torch.rand(x.shape[0], device=x.device, dtype=x.dtype) ** (1.0 / dim)
    return direction * radius.view(-1, *([1] * (x.dim() - 1)))


def _ascent_direction(grad, norm):
    if norm == "linf":
        return grad.sign()
    return grad / _per_sample_norm(grad).clamp_min(1e-12)


def check_attack_params(epsilon, step_size, n_steps, norm):
    """Validate attack parameters; raise ``ValueError``/``TypeError`` naming the bad one."""
    check_real(epsilon, "epsilon", min_val=0)
    check_real(step_size, "step_size", min_val=0, include_boundaries="neither", allow_none=True)
    check_int(n_steps, "n_steps", min_val=1)
    check_option(norm, "norm", NORMS)


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
):
    """Projected gradient descent (Madry et al., 2018) on the cross-entropy loss.

    Maximises the plain (unweighted) cross-entropy of ``model`` inside the
    ``norm`` ball of radius ``epsilon`` around ``X`` and inside ``bounds``.
    The model is put in eval mode while attacking and restored afterwards;
    gradients are taken with respect to the perturbation only, so nothing is
    left in the ``.grad`` of the model's parameters.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch of inputs to logits of shape (n, n_classes).
    X : torch.Tensor of shape (n, ...)
        Clean inputs, on the model's device.
    y : torch.Tensor of shape (n,)
        Integer class indices.
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
    check_attack_params(epsilon, step_size, n_steps, norm)
    X = X.detach()
    if epsilon == 0:
        return X
    if step_size is None:
        step_size = 2.5 * epsilon / n_steps
    bounds = _bounds_as_tensors(bounds, X)
    y = y.to(device=X.device, dtype=torch.long)

    if random_start:
        x_adv = _clamp_to_bounds(X + _random_start(X, epsilon, norm), bounds)
    else:
        x_adv = X.clone()

    with eval_mode(model), torch.enable_grad():
        for _ in range(n_steps):
            x_adv.requires_grad_(True)
            loss = F.cross_entropy(first_output(model(x_adv)), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x_adv)
            with torch.no_grad():
                x_adv = x_adv + step_size * _ascent_direction(grad, norm)
                x_adv = X + project(x_adv - X, epsilon, norm)
                x_adv = _clamp_to_bounds(x_adv, bounds)
    return x_adv.detach()
