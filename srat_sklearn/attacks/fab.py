"""Targeted FAB (Croce & Hein, ICML 2020), the minimum-norm member of AutoAttack.

FAB walks towards the decision boundary between the true class ``y`` and a
target class ``t``. At the current point ``x`` it linearises
``g = z_t - z_y`` and projects both ``x`` and the clean input ``x0`` onto the
hyperplane ``g(x) + grad g(x) . (z - x) = 0`` (with the smallest perturbation
of the threat model's norm that stays in the box), then moves to a convex
combination of the two projections that leans towards ``x0``, overshooting by
``eta``. Once the point is adversarial it records it when it is the closest
found and steps back towards ``x0`` by a factor ``beta``, to look for a closer
one. The attack returns the closest adversarial example if it lies within
``epsilon``, as AutoAttack counts it, and the clean input otherwise.
"""

import torch

from .._torch import eval_mode
from ._common import (
    attack_survivors,
    check_inputs,
    check_labels,
    clip,
    first_fooled,
    logits_of,
    norms,
    predict,
    random_perturbation,
    sample_view,
    settled_siblings,
    stacked,
    targeted_runs,
    threat_box,
    validate_attack_args,
)
from .apgd import check_n_targets, target_classes


def _cheapest_crossing(breakpoints, saturated, slope, target):
    """The smallest ``s >= 0`` with ``phi(s) = target``, per row; ``inf`` if out of reach.

    ``phi(s) = sum_{b_i <= s} saturated_i + s * sum_{b_i > s} slope_i`` is the
    piecewise-linear, non-decreasing gain of a step of size ``s`` whose
    coordinate ``i`` stops growing at the (finite) ``breakpoints[i]``; it is
    evaluated at every breakpoint after one sort, and solved exactly on the
    segment where it crosses ``target``.
    """
    order = breakpoints.argsort(dim=1)
    b = breakpoints.gather(1, order)
    total_slope = slope.sum(dim=1, keepdim=True)
    gained = saturated.gather(1, order).cumsum(dim=1)
    remaining = total_slope - slope.gather(1, order).cumsum(dim=1)
    at_breakpoint = gained + b * remaining
    first = torch.searchsorted(at_breakpoint.contiguous(), target[:, None].contiguous())
    before = (first - 1).clamp(min=0)
    gained_before = torch.where(first > 0, gained.gather(1, before), 0.0)
    slope_before = torch.where(first > 0, remaining.gather(1, before), total_slope)
    s = ((target[:, None] - gained_before) / slope_before.clamp_min(1e-30)).squeeze(1)
    return torch.where(first.squeeze(1) < b.shape[1], s, torch.full_like(s, float("inf")))


def project_onto_hyperplane(points, w, c, norm, low=None, high=None):
    """The smallest ``d`` (in ``norm``) with ``w . d = c`` and ``low <= points + d <= high``.

    Works on flattened samples: ``points``, ``w``, ``low`` and ``high`` of
    shape (n, d), ``c`` of shape (n,). The box must contain ``points``. When
    the box does not let the hyperplane be reached, ``d`` is the box's corner
    that comes closest to it.

    For L2 the minimiser is ``clamp(lam * w, low - points, high - points)``
    for a scalar ``lam`` (its KKT conditions); for L-inf it is
    ``sign(w) * min(tau, room)`` for a level ``tau``, where ``room`` is how far
    each coordinate may move in the direction of the hyperplane. Either
    scalar solves a piecewise-linear, non-decreasing equation, found exactly
    after one sort.

    Examples
    --------
    >>> import torch
    >>> w = torch.tensor([[1.0, 1.0]])
    >>> project_onto_hyperplane(torch.zeros(1, 2), w, torch.tensor([1.0]), "l2")
    tensor([[0.5000, 0.5000]])
    >>> project_onto_hyperplane(torch.zeros(1, 2), w, torch.tensor([1.0]), "linf",
    ...                         low=torch.zeros(1, 2), high=torch.tensor([[0.2, 1.0]]))
    tensor([[0.2000, 0.8000]])
    """
    direction = torch.sign(w) * torch.sign(c)[:, None]  # the way each coordinate must go
    a, target = w.abs(), c.abs()
    moving = a > 0
    if low is None:  # no box: the closed-form projections
        if norm == "l2":
            size = a * (target / (a * a).sum(dim=1).clamp_min(1e-30))[:, None]
        else:
            size = (target / a.sum(dim=1).clamp_min(1e-30))[:, None].expand_as(a)
    else:
        room = torch.where(direction > 0, high - points, points - low).clamp_min(0.0)
        if norm == "l2":
            # |d_i| = min(lam * a_i, room_i): coordinate i saturates at lam = room_i / a_i.
            breakpoints = torch.where(moving, room / a.clamp_min(1e-30), torch.zeros_like(a))
            lam = _cheapest_crossing(breakpoints, a * room, a * a, target)
            size = torch.minimum(lam[:, None] * a, room)
        else:
            # |d_i| = min(tau, room_i): coordinate i saturates at tau = room_i.
            tau = _cheapest_crossing(torch.where(moving, room, torch.zeros_like(a)), a * room, a,
                                     target)
            size = torch.minimum(tau[:, None].expand_as(room), room)
    return torch.where(moving, direction * size, torch.zeros_like(size))


#: Steps between two checks for settled rows: the only times a FAB-T run reads the device.
SETTLE_EVERY = 10


def _fab_run(model, X, y, target, *, epsilon, n_steps, norm, box, alpha_max, eta, beta, start,
             n_samples=None):
    """One FAB-T run on a batch; model in eval mode. Returns (closest adversarial, its norm).

    A row that has an adversarial example within ``epsilon`` is settled (whether it is
    robust is known); settled rows leave the run at the next check, every
    :data:`SETTLE_EVERY` steps, so that the host does not wait for the device at every
    step. Each step costs one forward and backward pass for the gradient and one forward
    pass to see whether the new point is adversarial. With ``n_samples``, row ``r``
    attacks sample ``r % n_samples``, and all the rows of a sample leave once one settled it.
    """
    n = X.shape[0]
    flat = lambda t: t.reshape(len(t), -1)  # noqa: E731
    best = X.clone()
    best_norm = torch.full((n,), float("inf"), device=X.device, dtype=X.dtype)
    s = {"rows": torch.arange(n, device=X.device), "X": X, "y": y, "target": target,
         "low": None if box is None else box[0], "high": None if box is None else box[1]}
    x = X.clone() if start is None else clip(X + start, box)
    for step in range(1, n_steps + 1):
        with torch.enable_grad():
            x_var = x.clone().requires_grad_(True)
            logits = logits_of(model, x_var)
            picked = torch.arange(len(x), device=x.device)
            gap = logits[picked, s["target"]] - logits[picked, s["y"]]
            (grad,) = torch.autograd.grad(gap.sum(), x_var)
        with torch.no_grad():
            # The linearised boundary: gap(x) + w . (z - x) = 0. From x it is w . d = -gap,
            # from the clean input w . d = -gap + w . (x - X).
            X_now, w, gap = s["X"], flat(grad), gap.detach()
            twice = lambda t: torch.cat([t, t])  # noqa: E731  (x and X in one call)
            steps = project_onto_hyperplane(
                torch.cat([flat(x), flat(X_now)]), twice(w),
                torch.cat([-gap, -gap + (w * flat(x - X_now)).sum(dim=1)]), norm,
                *((None, None) if s["low"] is None else (twice(flat(s["low"])),
                                                         twice(flat(s["high"])))))
            k = len(x)
            d_x, d_0 = steps[:k].reshape(x.shape), steps[k:].reshape(x.shape)
            size_x, size_0 = norms(d_x, norm).clamp_min(1e-8), norms(d_0, norm).clamp_min(1e-8)
            alpha = sample_view((size_x / (size_x + size_0)).clamp(0.0, alpha_max), x)
            box_now = None if s["low"] is None else (s["low"], s["high"])
            x = clip((x + eta * d_x) * (1 - alpha) + (X_now + eta * d_0) * alpha, box_now)
            adversarial = predict(model, x) != s["y"]
            distance = norms(x - X_now, norm)
            known = best_norm[s["rows"]]
            closer = adversarial & (distance < known)
            # Masked writes, not boolean indexing: the host learns no count.
            best[s["rows"]] = torch.where(sample_view(closer, x), x, best[s["rows"]])
            best_norm[s["rows"]] = torch.where(closer, distance, known)
            # Step back towards X from an adversarial point, to look for a closer one.
            x = torch.where(sample_view(adversarial, x), X_now + beta * (x - X_now), x)
            if step % SETTLE_EVERY:
                continue
            settled = best_norm[s["rows"]] <= epsilon
            if n_samples is not None:
                settled = settled_siblings(settled, s["rows"], n_samples)
            if settled.any():
                keep = ~settled
                x = x[keep]
                s = {key: None if value is None else value[keep] for key, value in s.items()}
                if not len(x):
                    break
    return best, best_norm


def fab_attack(
    model,
    X,
    y,
    *,
    epsilon,
    n_steps=100,
    n_targets=9,
    n_restarts=1,
    norm="linf",
    bounds=None,
    alpha_max=0.1,
    eta=1.05,
    beta=0.9,
    batch_size=None,
):
    """Targeted FAB (FAB-T), with AutoAttack's settings as defaults.

    For each of the ``n_targets`` most likely wrong classes, in order, FAB
    searches the adversarial example closest to ``X`` (in ``norm``) on the
    samples that earlier targets did not fool (see the module docstring);
    restarts after the first start at a random point of half the radius. A
    sample counts as fooled when an adversarial example found lies within
    ``epsilon``, and its search stops there (as robust accuracy needs no
    closer one); the others are returned unchanged.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch of inputs to logits of shape (n, n_classes).
    X : torch.Tensor of shape (n, ...)
    y : torch.Tensor of shape (n,)
        Integer class indices, each a column of the model's logits (0 to n_classes - 1;
        others raise a ``ValueError`` before the first step).
    epsilon : float
        Radius within which an adversarial example counts.
    n_steps : int, default=100
        Iterations per target (and restart).
    n_targets : int, default=9
        Target classes per sample, at most ``n_classes - 1``.
    n_restarts : int, default=1
        Runs per target; the first starts at ``X``.
    norm : {"linf", "l2"}, default="linf"
    bounds : tuple (low, high) or None, default=None
        Valid data range, widened to contain ``X``.
    alpha_max, eta, beta : float, default=0.1, 1.05, 0.9
        The largest pull towards ``X``, the overshoot and the backward step.
    batch_size : int or None, default=None
        The most rows (one per sample and target) attacked in one pass; None:
        one target at a time (see :func:`apgd_targeted_attack`).

    Returns
    -------
    torch.Tensor
        Adversarial examples within ``epsilon`` where found, else ``X``.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Linear(4, 3)
    >>> X, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    >>> X_adv = fab_attack(model, X, y, epsilon=0.5, n_steps=10)
    >>> bool((X_adv - X).abs().max() <= 0.5 + 1e-6)
    True
    """
    validate_attack_args("fab_attack", not_none=("n_steps", "n_targets"), epsilon=epsilon,
                         n_steps=n_steps, n_targets=n_targets, n_restarts=n_restarts, norm=norm,
                         alpha_max=alpha_max, eta=eta, beta=beta, batch_size=batch_size)
    check_inputs(model, X, y)
    return _fab_attack(model, X, y, epsilon=epsilon, n_steps=n_steps, n_targets=n_targets,
                       n_restarts=n_restarts, norm=norm, bounds=bounds, alpha_max=alpha_max,
                       eta=eta, beta=beta, batch_size=batch_size)


def _fab_attack(model, X, y, *, epsilon, n_steps, n_targets, n_restarts, norm, bounds,
                alpha_max=0.1, eta=1.05, beta=0.9, batch_size=None):
    X = X.detach()
    y = check_labels(y, X)
    with eval_mode(model), torch.no_grad():
        n_classes = logits_of(model, X[:1]).shape[1]
    n_targets = check_n_targets(n_targets, n_classes, "fab-t")
    if epsilon == 0:
        return X

    def towards(restart, ranks, X_part, y_part):
        X_rows = stacked(X_part, len(ranks))
        target = target_classes(logits_of(model, X_part), ranks)
        start = None if restart == 0 else random_perturbation(X_rows, epsilon / 2, norm)
        best, distance = _fab_run(model, X_rows, y_part.repeat(len(ranks)), target,
                                  epsilon=epsilon, n_steps=n_steps, norm=norm,
                                  box=threat_box(X_rows, bounds), alpha_max=alpha_max, eta=eta,
                                  beta=beta, start=start, n_samples=len(X_part))
        within = sample_view(distance <= epsilon, X_rows)
        return first_fooled(model, torch.where(within, best, X_rows), y_part)

    with eval_mode(model), torch.no_grad():
        return attack_survivors(model, X, y, targeted_runs(towards, n_targets, n_restarts,
                                                           batch_size))
