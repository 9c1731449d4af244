"""Auto-PGD (Croce & Hein, 2020): APGD-CE, APGD-DLR and the targeted APGD-T of AutoAttack."""

from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from .._torch import eval_mode
from ._common import (
    ascent_direction,
    attack_survivors,
    check_inputs,
    check_labels,
    clip,
    first_fooled,
    logits_of,
    sample_view,
    settled_siblings,
    stacked,
    targeted_runs,
    threat_box,
    to_threat_model,
    unit,
    validate_attack_args,
)


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


def dlr_targeted_loss(logits, y, target):
    """The targeted DLR loss of APGD-T, one value per sample.

    ``-(z_y - z_t) / (z_(1) - (z_(3) + z_(4)) / 2)`` for the target class
    ``t`` (Croce & Hein, 2020). The original needs 4 classes; with 3 the
    denominator is ``z_(1) - z_(3)``, as in :func:`dlr_loss`, and with 2 it is
    1 (there is no third logit to scale by), so that binary problems can be
    attacked too.

    Examples
    --------
    >>> import torch
    >>> logits = torch.tensor([[4.0, 2.0, 1.0, 0.0]])
    >>> dlr_targeted_loss(logits, torch.tensor([0]), torch.tensor([1]))
    tensor([-0.5714])
    """
    n_classes = logits.shape[1]
    margin = (logits.gather(1, y[:, None]) - logits.gather(1, target[:, None])).squeeze(1)
    if n_classes == 2:
        return -margin
    top = logits.topk(min(n_classes, 4), dim=1).values
    scale = top[:, 0] - (top[:, 2] if n_classes == 3 else (top[:, 2] + top[:, 3]) / 2)
    return -margin / (scale + 1e-12)


def _apgd_checkpoints(n_steps):
    """Iterations at which APGD may halve its step: p_0 = 0, p_1 = 0.22,
    p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), as fractions of ``n_steps``."""
    points = [0.0, 0.22]
    while points[-1] < 1:
        points.append(points[-1] + max(points[-1] - points[-2] - 0.03, 0.06))
    # Rounded first: 0.57 * 100 must give 57, not 58 from float error.
    return sorted({int(np.ceil(round(p * n_steps, 6))) for p in points[1:] if p < 1} - {0})


def _apgd_run(model, X, y, loss_fn, *, epsilon, n_steps, norm, rho, random_start, box,
              target=None, n_samples=None):
    """One run of APGD maximising ``loss_fn(logits, y, target)`` (per row).

    The model must be in eval mode with gradients enabled. Returns, per
    row, the first iterate that the model misclassifies, or else the
    point of highest loss. Fooled rows leave the computation at the next
    checkpoint (their result is final), so the host reads a flag 8 times per
    100 iterations rather than every iteration. With ``n_samples``, row ``r``
    attacks sample ``r % n_samples`` (towards one of several targets), and all
    the rows of a sample leave once one of them fooled the model.
    """
    if random_start:
        # On the surface of the ball, as the reference implementation starts.
        t = torch.rand_like(X) * 2 - 1 if norm == "linf" else torch.randn_like(X)
        x_adv = clip(X + epsilon * unit(t, norm), box)
    else:
        x_adv = X.clone()
    result = x_adv.clone()

    # The state of the samples still running, compacted at each checkpoint.
    s = {"rows": torch.arange(X.shape[0], device=X.device), "X": X, "y": y, "target": target,
         "low": None if box is None else box[0], "high": None if box is None else box[1]}

    def loss_and_grad(x):
        x = x.clone().requires_grad_(True)
        logits = logits_of(model, x)
        per_sample = loss_fn(logits, s["y"], s["target"])
        (grad,) = torch.autograd.grad(per_sample.sum(), x)
        return per_sample.detach(), grad, logits.detach().argmax(dim=1) != s["y"]

    def threat(x):
        box_now = None if s["low"] is None else (s["low"], s["high"])
        return to_threat_model(x, s["X"], epsilon, norm, box_now)

    loss_now, grad, fooled = loss_and_grad(x_adv)
    with torch.no_grad():
        s.update(x_adv=x_adv, x_prev=x_adv.clone(), x_best=x_adv.clone(), x_result=x_adv.clone(),
                 loss_now=loss_now, loss_best=loss_now.clone(), grad=grad,
                 grad_best=grad.clone(), done=fooled.clone(),
                 step=torch.full((X.shape[0],), 2.0 * epsilon, dtype=X.dtype, device=X.device),
                 rises=torch.zeros(X.shape[0], dtype=torch.long, device=X.device),
                 loss_best_at_check=loss_now.clone(),
                 # As in the reference: the first checkpoint halves only for oscillation.
                 halved_at_check=torch.ones(X.shape[0], dtype=torch.bool, device=X.device))
    checkpoints = set(_apgd_checkpoints(n_steps))
    last_check = 0
    for k in range(n_steps):
        with torch.no_grad():
            momentum = 0.75 if k > 0 else 1.0
            x_adv, x_prev = s["x_adv"], s["x_prev"]
            z = threat(x_adv + sample_view(s["step"], x_adv) * ascent_direction(s["grad"], norm))
            x_next = x_adv + momentum * (z - x_adv) + (1 - momentum) * (x_adv - x_prev)
            s["x_prev"], s["x_adv"] = x_adv, threat(x_next)
        loss_next, grad, fooled = loss_and_grad(s["x_adv"])
        with torch.no_grad():
            newly_fooled = fooled & ~s["done"]
            s["x_result"][newly_fooled] = s["x_adv"][newly_fooled]
            s["done"] |= fooled
            s["rises"] += loss_next > s["loss_now"]
            s["loss_now"], s["grad"] = loss_next, grad
            better = loss_next > s["loss_best"]
            s["x_best"][better], s["grad_best"][better] = s["x_adv"][better], grad[better]
            s["loss_best"] = torch.where(better, loss_next, s["loss_best"])
            if k + 1 not in checkpoints:
                continue
            since, last_check = k + 1 - last_check, k + 1
            oscillating = s["rises"] <= rho * since
            stalled = ~s["halved_at_check"] & (s["loss_best_at_check"] >= s["loss_best"])
            halve = oscillating | stalled
            s["step"] = torch.where(halve, s["step"] / 2, s["step"])
            # As in the reference, x_prev stays: the next momentum term points from
            # the last iterate towards x_best.
            s["x_adv"][halve], s["grad"][halve] = s["x_best"][halve], s["grad_best"][halve]
            s["halved_at_check"], s["loss_best_at_check"] = halve, s["loss_best"].clone()
            s["rises"].zero_()
            finished = s["done"] if n_samples is None else settled_siblings(
                s["done"], s["rows"], n_samples)
            if finished.any():
                final = torch.where(sample_view(s["done"], s["x_best"]), s["x_result"],
                                    s["x_best"])
                result[s["rows"][finished]] = final[finished]
                for key, value in s.items():
                    if value is not None:
                        s[key] = value[~finished]
                if s["rows"].numel() == 0:
                    return result
    with torch.no_grad():
        done = sample_view(s["done"], s["x_best"])
        result[s["rows"]] = torch.where(done, s["x_result"], s["x_best"])
    return result.detach()


def _untargeted(loss):
    return lambda logits, y, target: loss(logits, y)


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
        Integer class indices, each a column of the model's logits (0 to n_classes - 1;
        others raise a ``ValueError`` before the first step).
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
    validate_attack_args("apgd_attack", not_none=("n_steps",), epsilon=epsilon,
                         n_steps=n_steps, norm=norm, loss=loss, rho=rho,
                         random_start=random_start)
    check_inputs(model, X, y)
    return _apgd_attack(model, X, y, epsilon=epsilon, n_steps=n_steps, norm=norm, loss=loss,
                        rho=rho, random_start=random_start, bounds=bounds)


def _apgd_attack(model, X, y, *, epsilon, n_steps, norm, loss, random_start, bounds, rho=0.75):
    X = X.detach()
    if epsilon == 0:
        return X
    y = check_labels(y, X)
    loss_fn = _untargeted(dlr_loss if loss == "dlr" else partial(F.cross_entropy,
                                                                 reduction="none"))
    with eval_mode(model), torch.enable_grad():
        return _apgd_run(model, X, y, loss_fn, epsilon=epsilon, n_steps=n_steps, norm=norm,
                         rho=rho, random_start=random_start, box=threat_box(X, bounds))


def target_classes(logits, ranks):
    """The ``rank``-th most likely class of each sample (rank 0 is the most likely) for each
    of ``ranks``, rank after rank: shape (len(ranks) * n,)."""
    order = logits.argsort(dim=1, descending=True)
    return order[:, list(ranks)].T.reshape(-1)


def check_n_targets(n_targets, n_classes, attack):
    """How many targets a problem of ``n_classes`` allows (at least 2 classes)."""
    if n_classes < 2:
        raise ValueError(f"{attack} needs logits of at least 2 classes; the model returns "
                         f"{n_classes}.")
    return min(n_targets, n_classes - 1)


def apgd_targeted_attack(
    model,
    X,
    y,
    *,
    epsilon,
    n_steps=100,
    n_targets=9,
    n_restarts=1,
    norm="linf",
    rho=0.75,
    random_start=True,
    bounds=None,
    batch_size=None,
):
    """APGD-T: APGD on the targeted DLR loss, one run per target class (AutoAttack's member).

    For each of the ``n_targets`` most likely wrong classes of a sample, in
    order, APGD maximises :func:`dlr_targeted_loss` towards that class, on the
    samples that the earlier targets did not fool; with fewer classes, every
    wrong class is a target. A sample's result is the first adversarial
    example found. With ``batch_size``, several targets run in one pass, as many
    as fit for the samples still standing: a sample fooled towards one of them
    leaves the others at the next checkpoint.

    Parameters
    ----------
    model, X, y, epsilon, norm, rho, random_start, bounds
        As in :func:`apgd_attack`.
    n_steps : int, default=100
        Iterations per target (and restart).
    n_targets : int, default=9
        Target classes per sample, at most ``n_classes - 1``.
    n_restarts : int, default=1
        Random restarts per target.
    batch_size : int or None, default=None
        The most rows (one per sample and target) attacked in one pass; None:
        one target at a time. On a GPU, a batch of all targets fills the device
        far better than nine passes of the few samples still standing.

    Returns
    -------
    torch.Tensor
        Adversarial examples, detached, with the shape and dtype of ``X``.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Linear(4, 5)
    >>> X, y = torch.rand(8, 4), torch.randint(0, 5, (8,))
    >>> X_adv = apgd_targeted_attack(model, X, y, epsilon=0.1, n_steps=5, n_targets=2)
    >>> bool((X_adv - X).abs().max() <= 0.1 + 1e-6)
    True
    """
    validate_attack_args("apgd_targeted_attack", not_none=("n_steps", "n_targets"),
                         epsilon=epsilon, n_steps=n_steps, n_targets=n_targets,
                         n_restarts=n_restarts, norm=norm, rho=rho, random_start=random_start,
                         batch_size=batch_size)
    check_inputs(model, X, y)
    return _apgd_targeted_attack(model, X, y, epsilon=epsilon, n_steps=n_steps,
                                 n_targets=n_targets, n_restarts=n_restarts, norm=norm, rho=rho,
                                 random_start=random_start, bounds=bounds, batch_size=batch_size)


def _apgd_targeted_attack(model, X, y, *, epsilon, n_steps, n_targets, n_restarts, norm,
                          random_start, bounds, rho=0.75, batch_size=None):
    X = X.detach()
    y = check_labels(y, X)
    with eval_mode(model), torch.no_grad():
        n_classes = logits_of(model, X[:1]).shape[1]
    n_targets = check_n_targets(n_targets, n_classes, "apgd-t")
    if epsilon == 0:
        return X

    def towards(restart, ranks, X_part, y_part):  # every run starts at random
        X_rows = stacked(X_part, len(ranks))
        with torch.no_grad():
            target = target_classes(logits_of(model, X_part), ranks)
        with torch.enable_grad():
            found = _apgd_run(model, X_rows, y_part.repeat(len(ranks)), dlr_targeted_loss,
                              target=target, epsilon=epsilon, n_steps=n_steps, norm=norm,
                              rho=rho, random_start=random_start,
                              box=threat_box(X_rows, bounds), n_samples=len(X_part))
        return first_fooled(model, found, y_part)

    with eval_mode(model):
        return attack_survivors(model, X, y, targeted_runs(towards, n_targets, n_restarts,
                                                           batch_size))
