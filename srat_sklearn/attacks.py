"""Adversarial attacks as plain torch functions.

The attacks take any ``torch.nn.Module`` that maps a batch of inputs to class
logits and return perturbed inputs. They do not depend on skorch, so they can
be used (and tested) on their own.
"""

from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from ._validation import check_int, check_option, check_real
from .models import first_output

__all__ = ["pgd_attack", "apgd_attack", "dlr_loss", "run_attack", "project",
           "random_perturbation", "eval_mode", "NORMS", "ATTACKS"]

NORMS = ("linf", "l2")
#: Names accepted by :func:`run_attack` and by the ``attack=`` options of the metrics.
ATTACKS = ("pgd", "apgd-ce", "apgd-dlr")


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


def random_perturbation(like, epsilon, norm):
    """Perturbations drawn uniformly from the ``norm`` ball of radius ``epsilon``.

    One per sample of ``like`` (same shape, dtype and device), from torch's
    global generator: PGD's random start.

    Examples
    --------
    >>> import torch
    >>> delta = random_perturbation(torch.zeros(4, 3), 0.5, "l2")
    >>> delta.shape, bool((delta.norm(dim=1) <= 0.5).all())
    (torch.Size([4, 3]), True)
    """
    if norm == "linf":
        return torch.empty_like(like).uniform_(-epsilon, epsilon)
    # Uniform in the L2 ball: a uniform direction and a radius ~ eps * U^(1/d).
    direction = torch.randn_like(like)
    direction = direction / _per_sample_norm(direction).clamp_min(1e-12)
    dim = like[0].numel()
    radius = epsilon * torch.rand(like.shape[0], device=like.device, dtype=like.dtype) ** (
        1.0 / dim)
    return direction * radius.view(-1, *([1] * (like.dim() - 1)))


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
    start=None,
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
    check_attack_params(epsilon, step_size, n_steps, norm)
    X = X.detach()
    if epsilon == 0:
        return X
    if step_size is None:
        step_size = 2.5 * epsilon / n_steps
    bounds = _bounds_as_tensors(bounds, X)
    y = y.to(device=X.device, dtype=torch.long)

    if start is not None:
        if start.shape != X.shape:
            raise ValueError(f"start must have the shape of X, {tuple(X.shape)}; got "
                             f"{tuple(start.shape)}.")
        start = project(start.detach().to(dtype=X.dtype, device=X.device), epsilon, norm)
        x_adv = _clamp_to_bounds(X + start, bounds)
    elif random_start:
        x_adv = _clamp_to_bounds(X + random_perturbation(X, epsilon, norm), bounds)
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


def dlr_loss(logits, y):
    """Difference of logits ratio (Croce & Hein, 2020), one value per sample.

    ``-(z_y - max_{i != y} z_i) / (z_(1) - z_(3))`` with ``z_(k)`` the k-th
    largest logit. It is invariant to shifting and scaling the logits, so it
    cannot be fooled by a network whose cross-entropy saturates. Needs at
    least 3 classes.

    Examples
    --------
    >>> import torch
    >>> dlr_loss(torch.tensor([[3.0, 1.0, 0.0]]), torch.tensor([0]))
    tensor([-0.6667])
    """
    if logits.shape[1] < 3:
        raise ValueError(f"The DLR loss needs at least 3 classes, got {logits.shape[1]}.")
    top = logits.topk(3, dim=1).values
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf")).max(dim=1).values
    return -(true - others) / (top[:, 0] - top[:, 2] + 1e-12)


def _apgd_checkpoints(n_steps):
    """Iterations at which APGD may halve its step: p_0 = 0, p_1 = 0.22,
    p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), as fractions of ``n_steps``."""
    points = [0.0, 0.22]
    while points[-1] < 1:
        points.append(points[-1] + max(points[-1] - points[-2] - 0.03, 0.06))
    # Rounded first: 0.57 * 100 must give 57, not 58 from float error.
    return sorted({int(np.ceil(round(p * n_steps, 6))) for p in points[1:] if p < 1} - {0})


def _project_ball_and_bounds(x, X, epsilon, norm, bounds):
    return _clamp_to_bounds(X + project(x - X, epsilon, norm), bounds)


def apgd_attack(
    model,
    X,
    y,
    *,
    epsilon,
    n_steps=100,
    norm="linf",
    loss="ce",
    rho=0.75,
    random_start=True,
    bounds=None,
):
    """Auto-PGD (Croce & Hein, 2020), the step-size-free attack behind AutoAttack.

    Gradient ascent with momentum 0.75 and a step that starts at
    ``2 * epsilon`` and is halved per sample at the checkpoints
    ``ceil(p_j * n_steps)`` (``p_1 = 0.22``, ``p_{j+1} = p_j + max(p_j - p_{j-1}
    - 0.03, 0.06)``) when, since the last checkpoint, the loss rose in fewer
    than a fraction ``rho`` of the steps, or when the step was not halved
    at the last checkpoint and the best loss has not improved; the iterate then
    restarts from the best point found. A sample's result is the first iterate
    that the model misclassifies, or else the point of highest loss.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch of inputs to logits of shape (n, n_classes).
    X : torch.Tensor of shape (n, ...)
    y : torch.Tensor of shape (n,)
    epsilon : float
        Radius of the threat model. ``0`` returns ``X`` unchanged.
    n_steps : int, default=100
        Number of iterations (AutoAttack uses 100).
    norm : {"linf", "l2"}, default="linf"
    loss : {"ce", "dlr"}, default="ce"
        Cross-entropy, or the difference of logits ratio (:func:`dlr_loss`,
        at least 3 classes).
    rho : float, default=0.75
        The fraction of rising steps below which the step is halved.
    random_start : bool, default=True
        Start from a random point on the surface of the ball, as the
        reference implementation does; ``False`` starts from ``X``.
    bounds : tuple (low, high) or None, default=None
        Valid data range, as in :func:`pgd_attack`.

    Returns
    -------
    torch.Tensor
        Adversarial examples, detached, with the shape and dtype of ``X``.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Linear(4, 3)
    >>> X, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    >>> X_adv = apgd_attack(model, X, y, epsilon=0.1, n_steps=10, bounds=(0.0, 1.0))
    >>> bool((X_adv - X).abs().max() <= 0.1 + 1e-6)
    True
    """
    check_attack_params(epsilon, None, n_steps, norm)
    check_option(loss, "loss", ("ce", "dlr"))
    check_real(rho, "rho", min_val=0, max_val=1, include_boundaries="neither")
    X = X.detach()
    if epsilon == 0:
        return X
    bounds = _bounds_as_tensors(bounds, X)
    y = y.to(device=X.device, dtype=torch.long)
    n = X.shape[0]
    shape = (-1,) + (1,) * (X.dim() - 1)

    def loss_fn(logits):
        if loss == "ce":
            return F.cross_entropy(logits, y, reduction="none")
        return dlr_loss(logits, y)

    def loss_and_grad(x):
        x = x.clone().requires_grad_(True)
        logits = first_output(model(x))
        per_sample = loss_fn(logits)
        (grad,) = torch.autograd.grad(per_sample.sum(), x)
        return per_sample.detach(), grad, logits.detach().argmax(dim=1) != y

    if random_start:
        t = torch.rand_like(X) * 2 - 1 if norm == "linf" else torch.randn_like(X)
        scale = (t.flatten(1).abs().amax(dim=1) if norm == "linf"
                 else t.flatten(1).norm(dim=1)).clamp_min(1e-12)
        x_adv = _clamp_to_bounds(X + epsilon * t / scale.view(shape), bounds)
    else:
        x_adv = X.clone()

    checkpoints = set(_apgd_checkpoints(n_steps))
    with eval_mode(model), torch.enable_grad():
        loss_now, grad, fooled = loss_and_grad(x_adv)
        x_best, loss_best, grad_best = x_adv.clone(), loss_now.clone(), grad.clone()
        x_result = torch.where(fooled.view(shape), x_adv, x_best)
        done = fooled.clone()
        step = torch.full((n,), 2.0 * epsilon, dtype=X.dtype, device=X.device)
        x_prev = x_adv.clone()
        rises = torch.zeros(n, dtype=torch.long, device=X.device)
        loss_best_at_check = loss_best.clone()
        halved_at_check = torch.zeros(n, dtype=torch.bool, device=X.device)
        last_check = 0
        for k in range(n_steps):
            with torch.no_grad():
                momentum = 0.75 if k > 0 else 1.0
                z = _project_ball_and_bounds(
                    x_adv + step.view(shape) * _ascent_direction(grad, norm), X, epsilon, norm,
                    bounds)
                x_next = x_adv + momentum * (z - x_adv) + (1 - momentum) * (x_adv - x_prev)
                x_prev, x_adv = x_adv, _project_ball_and_bounds(x_next, X, epsilon, norm, bounds)
            loss_next, grad, fooled = loss_and_grad(x_adv)
            with torch.no_grad():
                newly_fooled = fooled & ~done
                x_result[newly_fooled] = x_adv[newly_fooled]
                done |= fooled
                rises += loss_next > loss_now
                loss_now = loss_next
                better = loss_next > loss_best
                x_best[better], grad_best[better] = x_adv[better], grad[better]
                loss_best = torch.where(better, loss_next, loss_best)
                if k + 1 in checkpoints:
                    since = k + 1 - last_check
                    oscillating = rises <= rho * since
                    stalled = ~halved_at_check & (loss_best_at_check >= loss_best)
                    halve = oscillating | stalled
                    step = torch.where(halve, step / 2, step)
                    x_adv[halve], grad[halve] = x_best[halve], grad_best[halve]
                    # Restarting at x_best: no momentum from the point left behind.
                    x_prev[halve] = x_best[halve]
                    halved_at_check, loss_best_at_check = halve, loss_best.clone()
                    rises.zero_()
                    last_check = k + 1
    return torch.where(done.view(shape), x_result, x_best).detach()


def run_attack(name, model, X, y, *, epsilon, n_steps, norm="linf", step_size=None,
               random_start=True, bounds=None, start=None):
    """Run the attack called ``name`` (one of :data:`ATTACKS`) with a common signature.

    ``step_size`` and ``start`` apply to PGD only; APGD chooses its own steps.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Linear(4, 3)
    >>> X, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    >>> run_attack("apgd-dlr", model, X, y, epsilon=0.1, n_steps=5).shape
    torch.Size([8, 4])
    """
    check_option(name, "attack", ATTACKS)
    if name == "pgd":
        return pgd_attack(model, X, y, epsilon=epsilon, step_size=step_size, n_steps=n_steps,
                          norm=norm, random_start=random_start, bounds=bounds, start=start)
    if step_size is not None:
        raise ValueError(f"step_size applies to PGD only; {name} sets its own step sizes.")
    if start is not None:
        raise ValueError(f"start applies to PGD only; {name} starts from X or at random.")
    return apgd_attack(model, X, y, epsilon=epsilon, n_steps=n_steps, norm=norm,
                       loss=name.removeprefix("apgd-"), random_start=random_start,
                       bounds=bounds)
