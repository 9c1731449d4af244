"""Attacks chosen by name: restarts, ensembles such as standard AutoAttack, and their settings."""

from functools import partial

import torch

from .._torch import eval_mode
from .._validation import check_option, validate_params
from ._common import (
    ATTACK_PARAMETERS,
    NORM_NAMES,
    NORMS,
    attack_survivors,
    check_inputs,
    check_labels,
    even_chunks,
    validate_attack_args,
)
from .apgd import _apgd_attack, _apgd_targeted_attack
from .fab import _fab_attack
from .pgd import _pgd_attack
from .square import _square_attack
from .trades import _trades_attack

#: Names accepted by :func:`run_attack` and by the ``attack=`` options of the metrics.
ATTACKS = ("pgd", "apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square", "autoattack", "trades")
#: Standard AutoAttack (Croce & Hein, 2020): its members, in the order they run.
AUTOATTACK = ("apgd-ce", "apgd-t", "fab-t", "square")
#: How reports name each attack.
DISPLAY_NAMES = {"pgd": "PGD", "apgd-ce": "APGD-CE", "apgd-dlr": "APGD-DLR", "apgd-t": "APGD-T",
                 "fab-t": "FAB-T", "square": "Square", "autoattack": "AutoAttack",
                 "trades": "TRADES"}
#: Iterations when ``n_steps`` is None: PGD's training default, AutoAttack's 100 for the rest.
DEFAULT_STEPS = {"pgd": 10, "apgd-ce": 100, "apgd-dlr": 100, "apgd-t": 100, "fab-t": 100,
                 "trades": 10}
#: The attacks with a step size of their own (the training attacks).
_STEPPED = {"pgd", "trades"}
DEFAULT_QUERIES = 5000
DEFAULT_TARGETS = 9
_TARGETED = ("apgd-t", "fab-t")


def attack_members(attack):
    """The single attacks that ``attack`` (a name, or a sequence of names) runs, in order.

    Examples
    --------
    >>> attack_members("autoattack")
    ('apgd-ce', 'apgd-t', 'fab-t', 'square')
    >>> attack_members(["pgd", "apgd-ce"])
    ('pgd', 'apgd-ce')
    """
    names = (attack,) if isinstance(attack, str) else tuple(attack)
    if not names:
        raise ValueError("attack must name at least one attack.")
    for name in names:
        check_option(name, "attack", ATTACKS)
    return tuple(m for name in names for m in (AUTOATTACK if name == "autoattack" else (name,)))


def member_steps(name, n_steps):
    """The iterations of the attack ``name`` under ``n_steps``: one number for every gradient
    attack, a dict per attack name, or None, for :data:`DEFAULT_STEPS`.

    Examples
    --------
    >>> member_steps("apgd-ce", {"pgd": 20}), member_steps("pgd", {"pgd": 20})
    (100, 20)
    """
    if isinstance(n_steps, dict):
        n_steps = n_steps.get(name)
    return DEFAULT_STEPS.get(name) if n_steps is None else n_steps


def _check_steps(n_steps, members, attack, caller):
    """``n_steps``: a number, None, or a dict by the names of the members that iterate."""
    validate_params({"n_steps": [*ATTACK_PARAMETERS["n_steps"], dict]}, {"n_steps": n_steps},
                    caller)
    if not isinstance(n_steps, dict):
        return
    iterated = [m for m in members if m in DEFAULT_STEPS]
    unknown = [name for name in n_steps if name not in iterated]
    if unknown:
        raise ValueError(f"n_steps names {unknown}, but the iterations of "
                         f"{_describe_names(attack)} are those of {iterated}.")
    for steps in n_steps.values():
        validate_attack_args(caller, n_steps=steps)


def check_attack(attack, *, epsilon, norm, n_steps=None, step_size=None, n_restarts=1,
                 n_queries=None, n_targets=None, start=None, caller="the attack"):
    """Validate an attack and its settings before any work; return its members."""
    members = attack_members(attack)
    _check_steps(n_steps, members, attack, caller)
    validate_attack_args(caller, epsilon=epsilon, step_size=step_size, norm=norm,
                         n_restarts=n_restarts, n_queries=n_queries, n_targets=n_targets)
    uses = set(members)
    for value, name, users, named in (
            (step_size, "step_size", _STEPPED, "pgd and trades"),
            (start, "start", {"pgd"}, "pgd"),
            (n_queries, "n_queries", {"square"}, "square and autoattack"),
            (n_targets, "n_targets", set(_TARGETED), "apgd-t, fab-t and autoattack")):
        if value is not None and not uses & users:
            raise ValueError(f"{name} applies to {named} only; {_describe_names(attack)} "
                             "does not use it.")
    if start is not None and (len(members) > 1 or n_restarts > 1):
        raise ValueError("start applies to a single run of PGD, not to restarts or ensembles.")
    return members


def _describe_names(attack):
    names = (attack,) if isinstance(attack, str) else tuple(attack)
    return " + ".join(DISPLAY_NAMES[n] for n in names)


def _run_member(name, model, X, y, *, epsilon, n_steps, norm, step_size, random_start,
                n_restarts, n_queries, n_targets, bounds, start, step=None, batch_size=None):
    """One attack on ``(X, y)``; ``batch_size`` bounds the rows of a targeted attack's pass."""
    n_steps = member_steps(name, n_steps)
    common = dict(epsilon=epsilon, norm=norm, bounds=bounds)
    if name in _TARGETED:
        targeted = _apgd_targeted_attack if name == "apgd-t" else _fab_attack
        extra = dict(random_start=random_start) if name == "apgd-t" else {}
        return targeted(model, X, y, n_steps=n_steps, n_restarts=n_restarts,
                        n_targets=DEFAULT_TARGETS if n_targets is None else n_targets,
                        batch_size=batch_size, **common, **extra)
    if name == "pgd":
        run = partial(_pgd_attack, step_size=step_size, n_steps=n_steps,
                      random_start=random_start, start=start, step=step, **common)
    elif name == "trades":
        def run(model, X, y):  # TRADES needs no labels
            return _trades_attack(model, X, step_size=step_size, n_steps=n_steps, step=step,
                                  **common)
    elif name == "square":
        run = partial(_square_attack, n_queries=DEFAULT_QUERIES if n_queries is None
                      else n_queries, **common)
    else:
        run = partial(_apgd_attack, n_steps=n_steps, loss=name.removeprefix("apgd-"),
                      random_start=random_start, **common)
    if n_restarts == 1:
        return run(model, X, y)
    with eval_mode(model):
        return attack_survivors(model, X, y, [partial(run, model)] * n_restarts)


def run_attack(attack, model, X, y, *, epsilon, n_steps=None, norm="linf", step_size=None,
               random_start=True, n_restarts=1, n_queries=None, n_targets=None, bounds=None,
               start=None, skip_misclassified=False, batch_size=None):
    """Run an attack chosen by name, or an ensemble of attacks, with a common signature.

    Parameters
    ----------
    attack : str or sequence of str
        One of :data:`ATTACKS`, or several: an ensemble that runs each attack
        on the samples that the earlier ones did not fool, so that a sample
        stays robust only if every attack fails. ``"autoattack"`` is
        standard AutoAttack: APGD-CE, APGD-T, FAB-T and Square.
    model : torch.nn.Module
        Maps a batch of inputs to logits of shape (n, n_classes).
    X : torch.Tensor of shape (n, ...)
    y : torch.Tensor of shape (n,)
        Integer class indices, each a column of the model's logits (0 to n_classes - 1;
        others raise a ``ValueError`` before the first step).
    epsilon : float
        Radius of the threat model.
    n_steps : int, dict or None, default=None
        Iterations of each gradient attack, or a dict of them by attack name
        (``{"pgd": 20}``; the attacks it does not name keep their default);
        None: 10 for PGD, 100 for the others (AutoAttack's setting).
    norm : {"linf", "l2"}, default="linf"
    step_size : float or None, default=None
        PGD's step (see :func:`pgd_attack`); the other attacks set their own.
    random_start : bool, default=True
        For PGD and APGD.
    n_restarts : int, default=1
        Runs of each attack, restarts from random points on the samples not
        fooled yet (per target for APGD-T and FAB-T).
    n_queries : int or None, default=None
        Square's queries; None: 5000.
    n_targets : int or None, default=None
        Target classes of APGD-T and FAB-T; None: 9 (at most ``n_classes - 1``).
    bounds : tuple (low, high) or None, default=None
        Valid data range, widened to contain ``X``.
    start : torch.Tensor or None, default=None
        PGD's starting perturbation (see :func:`pgd_attack`).
    skip_misclassified : bool, default=False
        Return ``X`` itself for the samples the model misclassifies at ``X``
        (it is their adversarial example) instead of attacking them, as robust
        accuracy counts them; ensembles always do. Training attacks perturb
        every sample, so the default is False.
    batch_size : int or None, default=None
        The most samples attacked together; None: all of ``X`` at once. An
        ensemble runs each attack on all the samples still standing, in
        parts of nearly equal size, as AutoAttack does. APGD-T and FAB-T
        attack as many targets of each sample in one pass as fit in
        ``batch_size`` rows (None: one target at a time).

    Returns
    -------
    torch.Tensor
        Adversarial examples inside the threat model. With an ensemble, the
        first that fooled the model; a sample no attack fooled keeps the
        first attack's point, and a sample misclassified at ``X`` stays ``X``.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Linear(4, 3)
    >>> X, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    >>> run_attack("apgd-dlr", model, X, y, epsilon=0.1, n_steps=5).shape
    torch.Size([8, 4])
    >>> run_attack(("pgd", "square"), model, X, y, epsilon=0.1, n_steps=5, n_queries=20).shape
    torch.Size([8, 4])
    """
    check_attack(attack, epsilon=epsilon, norm=norm, n_steps=n_steps, step_size=step_size,
                 n_restarts=n_restarts, n_queries=n_queries, n_targets=n_targets, start=start,
                 caller="run_attack")
    validate_attack_args("run_attack", random_start=random_start,
                         skip_misclassified=skip_misclassified, batch_size=batch_size)
    check_inputs(model, X, y)
    return _run_attack(attack, model, X, y, epsilon=epsilon, n_steps=n_steps, norm=norm,
                       step_size=step_size, random_start=random_start, n_restarts=n_restarts,
                       n_queries=n_queries, n_targets=n_targets, bounds=bounds, start=start,
                       skip_misclassified=skip_misclassified, batch_size=batch_size)


def _run_attack(attack, model, X, y, *, epsilon, n_steps=None, norm="linf", step_size=None,
                random_start=True, n_restarts=1, n_queries=None, n_targets=None, bounds=None,
                start=None, skip_misclassified=False, batch_size=None, after_member=None,
                step=None):
    """:func:`run_attack` without validation: the training loop's per-batch path.

    ``after_member(i, standing)`` is told when member ``i`` has run on every
    part, with the mask of the samples still robust (for progress bars; without
    it, a single attack's results are not checked here); ``step``
    replaces the eager ascent loop of PGD and TRADES (a compiled
    :func:`~srat_sklearn.attacks._common.ascent_step`).
    """
    members = attack_members(attack)
    settings = dict(epsilon=epsilon, n_steps=n_steps, norm=norm, step_size=step_size,
                    random_start=random_start, n_restarts=n_restarts, n_queries=n_queries,
                    n_targets=n_targets, bounds=bounds, step=step, batch_size=batch_size)
    if start is not None and skip_misclassified:
        raise ValueError("start applies to attacks on every sample, not with "
                         "skip_misclassified=True.")
    X, y = X.detach(), check_labels(y, X)
    if len(members) == 1 and not skip_misclassified:
        parts = [_run_member(members[0], model, X[part], y[part],
                             start=None if start is None else start[part], **settings)
                 for part in even_chunks(len(X), batch_size)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)
    runs = [partial(_run_member, name, model, start=None, **settings) for name in members]
    with eval_mode(model):
        # Unchecked if one attack without a progress bar: its caller predicts the results.
        return attack_survivors(model, X, y, runs, batch_size=batch_size, after_run=after_member,
                                check=len(runs) > 1 or after_member is not None)


def autoattack(model, X, y, *, epsilon, norm="linf", n_steps=100, n_queries=5000, n_targets=9,
               bounds=None, batch_size=None):
    """Standard AutoAttack (Croce & Hein, ICML 2020): APGD-CE, APGD-T, FAB-T, Square.

    Each attack runs on the samples that are still classified correctly after
    the earlier ones, with the original's settings: 100 iterations, 9 target
    classes (all wrong classes when there are fewer), 5000 queries, one run
    each. A sample is robust only if every attack fails. For fewer than 4
    classes, where the original's targeted DLR loss is undefined, see
    :func:`~srat_sklearn.attacks.dlr_targeted_loss`. ``batch_size`` bounds the
    samples attacked together (see :func:`run_attack`).

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Linear(4, 5)
    >>> X, y = torch.rand(6, 4), torch.randint(0, 5, (6,))
    >>> autoattack(model, X, y, epsilon=0.05, n_steps=5, n_queries=10).shape
    torch.Size([6, 4])
    """
    return run_attack("autoattack", model, X, y, epsilon=epsilon, norm=norm, n_steps=n_steps,
                      n_queries=n_queries, n_targets=n_targets, bounds=bounds,
                      batch_size=batch_size)


def attack_settings(attack, *, epsilon, norm, n_steps=None, step_size=None, random_start=True,
                    n_restarts=1, n_queries=None, n_targets=None):
    """The settings that ``attack`` actually uses, resolved, for reports.

    Examples
    --------
    >>> attack_settings("autoattack", epsilon=0.1, norm="linf")["n_queries"]
    5000
    """
    members = attack_members(attack)
    settings = {"attack": attack if isinstance(attack, str) else list(attack),
                "members": list(members), "epsilon": float(epsilon), "norm": norm}
    steps = {m: member_steps(m, n_steps) for m in members if m in DEFAULT_STEPS}
    if steps:
        settings["n_steps"] = (next(iter(steps.values())) if len(set(steps.values())) == 1
                               else steps)
    stepped = _STEPPED & set(members)
    if stepped:
        own_steps = steps[next(iter(stepped))]
        settings["step_size"] = float(2.5 * epsilon / own_steps if step_size is None
                                      else step_size)
    if set(members) & {"pgd", "apgd-ce", "apgd-dlr", "apgd-t"}:
        settings["random_start"] = bool(random_start)
    if set(members) & set(_TARGETED):
        settings["n_targets"] = DEFAULT_TARGETS if n_targets is None else n_targets
    if "square" in members:
        settings["n_queries"] = DEFAULT_QUERIES if n_queries is None else n_queries
    settings["n_restarts"] = n_restarts
    return settings


def describe_budget(settings):
    """The budget of an evaluation's settings: its radius, or the budgets per input column of
    a pipeline (``input_epsilon``), and the classifier's features it may change.

    Examples
    --------
    >>> describe_budget({"epsilon": 0.2})
    'epsilon 0.2'
    >>> describe_budget({"epsilon": 0.5, "input_epsilon": {"amount": 30.0}})
    "epsilon per input column: amount 30 (at most 0.5 in the classifier's features)"
    """
    notes = [settings["features"]] if "features" in settings else []
    if "input_epsilon" not in settings:
        text = f"epsilon {settings['epsilon']:g}"
    else:
        budgets = ", ".join(f"{column} {budget:g}"
                            for column, budget in settings["input_epsilon"].items())
        text = f"epsilon per input column: {budgets or 'none'}"
        notes.insert(0, f"at most {settings['epsilon']:g} in the classifier's features")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def describe_attack(settings):
    """One line that states an attack and every setting it ran with (the evaluation checklist).

    Examples
    --------
    >>> describe_attack(attack_settings("pgd", epsilon=0.2, norm="linf", n_steps=20))
    'PGD: 20 steps of size 0.025, random start, 1 restart; L-inf, epsilon 0.2'
    """
    members = settings["members"]
    attack = settings["attack"]
    if attack == "autoattack":
        name = "AutoAttack, standard (APGD-CE, APGD-T, FAB-T, Square)"
    elif len(members) > 1:
        name = "the worst case of " + ", ".join(DISPLAY_NAMES[m] for m in members)
    else:
        name = DISPLAY_NAMES[members[0]]
    parts = []
    steps = settings.get("n_steps")
    if isinstance(steps, dict):
        parts.append(", ".join(f"{DISPLAY_NAMES[m]} {n} steps" for m, n in steps.items()))
    elif steps is not None:
        alone = len(members) == 1 and members[0] in _STEPPED
        unit = "steps" if alone else "iterations"
        sized = f" of size {settings['step_size']:g}" if alone else ""
        parts.append(f"{steps} {unit}{sized}")
    if "n_targets" in settings:
        n_targets = settings["n_targets"]
        parts.append(f"{n_targets} target class" + ("es" if n_targets != 1 else ""))
    if "n_queries" in settings:
        parts.append(f"{settings['n_queries']} queries")
    if settings.get("random_start") is not None:
        parts.append("random start" if settings["random_start"] else "no random start")
    restarts = settings["n_restarts"]
    parts.append(f"{restarts} restart" + ("s" if restarts > 1 else ""))
    norm = NORM_NAMES[settings["norm"]]
    line = f"{name}: {', '.join(parts)}; {norm}, {describe_budget(settings)}"
    if len(members) > 1:
        line += "; robust only if every attack fails"
    return line


__all__ = ["ATTACKS", "AUTOATTACK", "NORMS", "attack_members", "attack_settings",
           "autoattack", "check_attack", "describe_attack", "run_attack"]
