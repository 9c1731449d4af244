"""What the attacks share: the threat model, random starts, and running attacks on the
samples that earlier attacks did not fool.

The threat model of every attack is the ``norm`` ball of radius ``epsilon`` around each
input, intersected with the data bounds *widened to contain that input*: an input that
lies outside the bounds (a test row beyond the training range, say) may move towards
them, but never further than ``epsilon``.
"""

import torch
from sklearn.utils._param_validation import StrOptions

from .._torch import eval_mode, first_output
from .._validation import finite, non_negative, positive, positive_int, validate_params

NORMS = ("linf", "l2")
#: How reports and tables name each norm.
NORM_NAMES = {"linf": "L-inf", "l2": "L2"}

#: The constraints of every parameter of the attacks, in scikit-learn's terms: the public
#: functions validate their arguments against them once; the training loop's per-batch
#: calls go to the private functions, which do not.
ATTACK_PARAMETERS = {
    "epsilon": [non_negative()],
    "step_size": [positive(), None],
    "n_steps": [positive_int(), None],
    "norm": [StrOptions(set(NORMS))],
    "random_start": ["boolean"],
    "n_restarts": [positive_int()],
    "n_queries": [positive_int(), None],
    "n_targets": [positive_int(), None],
    "loss": [StrOptions({"ce", "dlr"})],
    "rho": [finite(0, 1, closed="neither")],
    "p_init": [finite(0, 1, closed="right")],
    "alpha_max": [finite(0, 1, closed="both")],
    "eta": [finite(1)],
    "beta": [finite(0, 1, closed="neither")],
    "skip_misclassified": ["boolean"],
    "batch_size": [positive_int(), None],
}


def sample_view(values, like):
    """``values`` of shape (n,) viewed as (n, 1, ..., 1) to broadcast against ``like``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def norms(t, norm):
    """The ``norm`` of each sample of ``t``, shape (n,)."""
    flat = t.flatten(1)
    return flat.abs().amax(dim=1) if norm == "linf" else flat.norm(p=2, dim=1)


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
        factor = (epsilon / norms(delta, "l2").clamp_min(1e-12)).clamp(max=1.0)
        return delta * sample_view(factor, delta)
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
    direction = unit(torch.randn_like(like), "l2")
    dim = like[0].numel()
    radius = epsilon * torch.rand(like.shape[0], device=like.device, dtype=like.dtype) ** (
        1.0 / dim)
    return direction * sample_view(radius, like)


def unit(t, norm):
    """``t`` scaled to ``norm`` 1 per sample (zero samples stay zero)."""
    return t / sample_view(norms(t, norm).clamp_min(1e-12), t)


def ascent_direction(grad, norm):
    """The steepest-ascent step of ``norm`` size 1 for the gradient ``grad``."""
    return grad.sign() if norm == "linf" else unit(grad, "l2")


def threat_box(X, bounds):
    """``(low, high)`` shaped like ``X``: ``bounds`` widened to contain ``X``; None if unbounded.

    Examples
    --------
    >>> import torch
    >>> low, high = threat_box(torch.tensor([[2.0, 0.5]]), (0.0, 1.0))
    >>> low.tolist(), high.tolist()
    ([[0.0, 0.0]], [[2.0, 1.0]])
    """
    if bounds is None:
        return None
    low, high = (torch.as_tensor(b, dtype=X.dtype, device=X.device) for b in bounds)
    return torch.minimum(low, X), torch.maximum(high, X)


def clip(x, box):
    """``x`` clamped into ``box`` (from :func:`threat_box`)."""
    return x if box is None else torch.clamp(x, box[0], box[1])


def to_threat_model(x, X, epsilon, norm, box):
    """``x`` moved into the threat model of ``X``: onto the ball, then into the box.

    The box contains ``X``, so clamping only shortens each coordinate of the
    perturbation and the point stays in the ball, whatever the norm.
    """
    return clip(X + project(x - X, epsilon, norm), box)


def logits_of(model, X):
    return first_output(model(X))


def ascent_step(loss, model, x, X, target, step_size, epsilon, norm, box):
    """One step of projected gradient ascent on ``loss(logits_of(model, x), target)``.

    The input gradient comes from :func:`torch.func.grad`, which ``torch.compile`` captures
    in the same graph as the forward and backward passes and the projection (it cannot
    capture ``torch.autograd.grad``): the step that a compiled training attack repeats.
    Called under ``torch.no_grad()``, it leaves no graph behind; ``step_size`` and
    ``epsilon`` may be 0-dim tensors, so that a compiled step serves every budget.

    Examples
    --------
    >>> from functools import partial
    >>> import torch
    >>> import torch.nn.functional as F
    >>> model, X = torch.nn.Linear(4, 3), torch.rand(8, 4)
    >>> x = ascent_step(partial(F.cross_entropy, reduction="sum"), model, X, X,
    ...                 torch.zeros(8, dtype=torch.long), 0.05, 0.1, "linf", None)
    >>> bool((x - X).abs().max() <= 0.1 + 1e-6)
    True
    """
    grad = torch.func.grad(lambda x: loss(logits_of(model, x), target))(x)
    return to_threat_model(x + step_size * ascent_direction(grad, norm), X, epsilon, norm, box)


def predict(model, X):
    """Predicted class indices of ``model`` on ``X``, without a graph."""
    with torch.no_grad():
        return logits_of(model, X).argmax(dim=1)


def even_chunks(n, batch_size):
    """Slices that cover ``range(n)`` in parts of at most ``batch_size``, of nearly equal size.

    Equal parts rather than full ones and a small remainder: an attack's cost per
    iteration barely grows with the batch, so a remainder of a few samples costs
    nearly as much as a full batch.

    >>> even_chunks(540, 250)
    [slice(0, 180, None), slice(180, 360, None), slice(360, 540, None)]
    """
    parts = 1 if batch_size is None else max(-(-n // batch_size), 1)
    edges = [n * i // parts for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(edges, edges[1:])]


def predict_in_chunks(model, X, batch_size=None):
    """:func:`predict` on ``X`` in parts of at most ``batch_size`` samples."""
    return torch.cat([predict(model, X[part]) for part in even_chunks(len(X), batch_size)])


def attack_survivors(model, X, y, runs, *, batch_size=None, after_run=None, check=True):
    """Run each of ``runs`` in turn on the samples that no earlier run fooled.

    Samples the model misclassifies at ``X`` are not attacked. Each run is a
    callable ``run(X_part, y_part) -> X_adv_part``. A sample's result is the
    first adversarial example that fooled the model; a sample that every run
    failed on keeps the point the first run returned.

    With ``batch_size``, each run gets all the samples still standing in
    parts of at most that size, as AutoAttack runs its members: the later
    runs, which see few samples, then see them in few full batches.
    ``after_run(i, standing)`` is called after run ``i`` with the mask of
    the samples still standing. ``check=False`` stops after the first run
    without predicting its results: a single run whose caller predicts them.

    The model must be in eval mode (the callers use :func:`eval_mode`).
    """
    X_adv = X.clone()
    standing = predict_in_chunks(model, X, batch_size) == y
    for i, run in enumerate(runs):
        rows = standing.nonzero().squeeze(1)
        if rows.numel() == 0:
            break
        for part in even_chunks(rows.numel(), batch_size):
            some = rows[part]
            adversarial = run(X[some], y[some])
            if not check:
                X_adv[some] = adversarial
                continue
            fooled = predict(model, adversarial) != y[some]
            if i == 0:
                X_adv[some] = adversarial
            else:
                X_adv[some[fooled]] = adversarial[fooled]
            standing[some[fooled]] = False
        if not check:
            break
        if after_run is not None:
            after_run(i, standing)
    return X_adv


def settled_siblings(settled, rows, n_samples):
    """``settled`` spread to every row of the same sample, without a host synchronisation.

    When a batch stacks one row per (target, sample), row ``r`` attacks sample
    ``r % n_samples``: once one target has fooled a sample, the others need not go on.
    """
    ids = rows % n_samples
    hit = torch.zeros(n_samples, dtype=torch.long, device=rows.device)
    return hit.scatter_reduce_(0, ids, settled.long(), "amax").bool()[ids]


def targeted_runs(run_targets, n_targets, n_restarts, batch_size):
    """The runs of a targeted attack, for :func:`attack_survivors`, several targets at once.

    ``run_targets(restart, ranks, X_part, y_part)`` attacks every sample of ``X_part``
    towards each of its ``ranks``-th most likely classes, in run ``restart`` (0 first).
    Targets 1 to ``n_targets`` run in order, for each restart, each on the samples that the
    earlier ones did not fool, as many together as fit in ``batch_size`` rows (one row per
    sample and target; None: one target at a time): the fewer samples stand, the more
    targets share a pass. The generator is advanced only after a run, so that each run
    knows how many samples it got.
    """
    for restart in range(n_restarts):
        rank = 1
        while rank <= n_targets:
            taken = []

            def run(X_part, y_part, restart=restart, first=rank, taken=taken):
                together = 1 if batch_size is None else max(batch_size // len(X_part), 1)
                ranks = range(first, min(first + together, n_targets + 1))
                taken.append(len(ranks))
                return run_targets(restart, ranks, X_part, y_part)

            yield run
            rank += taken[0] if taken else n_targets


def first_fooled(model, candidates, y):
    """Per sample, the first of its candidates that fools ``model``, else the first of them.

    ``candidates`` stacks ``k`` candidates per sample of ``y``, target by target
    (row ``r`` is for sample ``r % len(y)``).
    """
    n = len(y)
    k = len(candidates) // n
    if k == 1:  # the caller's own check of the result will do
        return candidates
    fooled = (predict(model, candidates) != y.repeat(k)).view(k, n)
    pick = torch.where(fooled.any(dim=0), fooled.int().argmax(dim=0), 0)
    return candidates.view(k, n, *candidates.shape[1:])[pick, torch.arange(n, device=y.device)]


def stacked(X, k):
    """``k`` copies of ``X`` one after the other (keeping its memory format)."""
    return X if k == 1 else torch.cat([X] * k)


def validate_attack_args(caller, not_none=(), **params):
    """Validate attack arguments against :data:`ATTACK_PARAMETERS`, naming the bad one.

    ``not_none`` names the parameters that ``caller`` needs set.
    """
    constraints = {name: [c for c in ATTACK_PARAMETERS[name] if c is not None
                          or name not in not_none] for name in params}
    validate_params(constraints, params, caller)


def check_attack_params(epsilon, step_size, n_steps, norm):
    """Validate the threat model and steps of an attack; raise ``ValueError``/``TypeError``."""
    validate_attack_args("the attack", epsilon=epsilon, step_size=step_size, n_steps=n_steps,
                         norm=norm)


def check_batch(X):
    """Refuse a batch that no attack can perturb: ``X`` must be a floating-point tensor."""
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"X must be a torch.Tensor, got {type(X).__name__}: the attack "
                        "functions take tensors (torch.as_tensor(X)); the estimator and the "
                        "metrics take arrays.")
    if not X.is_floating_point():
        raise TypeError(f"X must be a floating-point tensor, got dtype {X.dtype}: an attack "
                        "moves it by fractions of epsilon (X.float()).")


def check_labels(y, X):
    """``y`` as int64 on the device of ``X``, one label per sample of the batch ``X``
    (:func:`check_batch`)."""
    check_batch(X)
    y = torch.as_tensor(y)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must hold one class index per sample of X, shape ({X.shape[0]},);"
                         f" got shape {tuple(y.shape)}.")
    return y.to(device=X.device, dtype=torch.long)


def check_inputs(model, X, y):
    """Refuse what a public attack cannot run on, before its first step: ``X`` as in
    :func:`check_batch`, ``y`` as in :func:`check_labels`, and every label a column of the
    logits of ``model``.

    Out of that range, cross-entropy raises an ``IndexError`` deep in the attack on a CPU and
    a device-side assert on a GPU, which leaves the CUDA context unusable; one forward pass
    on a single sample tells the number of classes first.
    """
    y = check_labels(y, X)
    if y.numel() == 0:
        return y
    with eval_mode(model), torch.no_grad():
        n_classes = logits_of(model, X[:1]).shape[1]
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= n_classes:
        raise ValueError(f"y must hold class indices 0 to {n_classes - 1}, one per column of "
                         f"the model's logits; got labels from {low} to {high} (encode class "
                         "labels with sklearn.preprocessing.LabelEncoder).")
    return y
