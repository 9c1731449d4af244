"""Class weights and the deferred reweighting schedule (DRW).

``compute_class_weights`` turns a ``class_weight`` specification into one
weight per class, normalised to mean 1; ``balanced_sampler`` spends the same
inverse frequencies on sampling instead, anew in every epoch. ``DeferredReweighting`` is the skorch
callback that keeps the weights at 1 until the reweighting epoch, then switches
them on in place and lowers the learning rate, without touching the optimizer
state.
"""

import numbers
import warnings

import numpy as np
import torch
from skorch.callbacks import Callback
from torch.utils.data import WeightedRandomSampler

from ._validation import check_real

__all__ = ["CLASS_WEIGHTS", "SAMPLERS", "compute_class_weights", "balanced_sampler",
           "resolve_class_prior", "reweighting_counts", "resolve_reweight_epoch",
           "DeferredReweighting"]

CLASS_WEIGHTS = ("balanced", "effective")
SAMPLERS = ("balanced",)


def balanced_sampler(labels):
    """A sampler that draws every class equally often, with replacement.

    Sample ``i`` is drawn with probability proportional to ``1 / count[y_i]``,
    and an epoch has as many draws as there are samples. Unlike
    imbalanced-learn's samplers, which resample once per ``fit``, the
    DataLoader draws a new balanced set every epoch, so the rare classes'
    samples are repeated in different batches and majority samples are not
    left out for the whole fit. Draws come from torch's global generator,
    which the estimator seeds per epoch.

    Parameters
    ----------
    labels : array-like of int, shape (n_samples,)

    Returns
    -------
    torch.utils.data.WeightedRandomSampler

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> drawn = list(balanced_sampler([0] * 90 + [1] * 10))
    >>> len(drawn), 30 < sum(i >= 90 for i in drawn) < 70
    (100, True)
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    weights = 1.0 / counts[labels]
    return WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double),
                                 num_samples=len(labels), replacement=True)


def check_class_weight(class_weight, classes=None):
    """Validate a ``class_weight`` specification; with ``classes``, check dict keys too."""
    if class_weight is None or (isinstance(class_weight, str) and class_weight in CLASS_WEIGHTS):
        return class_weight
    if isinstance(class_weight, str):
        raise ValueError(
            f"class_weight must be None, one of {CLASS_WEIGHTS} or a dict, got {class_weight!r}.")
    if not isinstance(class_weight, dict):
        raise TypeError(
            f"class_weight must be None, one of {CLASS_WEIGHTS} or a dict, "
            f"got {type(class_weight).__name__}.")
    for label, weight in class_weight.items():
        check_real(weight, f"class_weight[{label!r}]", min_val=0, include_boundaries="neither")
    if classes is not None:
        unknown = [label for label in class_weight if label not in set(classes.tolist())]
        if unknown:
            raise ValueError(
                f"class_weight names labels that are not in y: {unknown!r}; "
                f"the classes are {classes.tolist()!r}.")
    return class_weight


def check_class_prior(class_prior):
    """Validate the type of a ``class_prior`` before any data is seen."""
    if class_prior is None or isinstance(class_prior, dict):
        return class_prior
    if isinstance(class_prior, str) or np.ndim(class_prior) != 1:
        raise TypeError(f"class_prior must be None, a dict {{label: count}} or a 1-D array of "
                        f"counts per class, got {class_prior!r}.")
    return class_prior


def resolve_class_prior(class_prior, class_counts, classes):
    """The class frequencies (summing to 1) that weights and groups are computed from.

    Parameters
    ----------
    class_prior : None, array-like of shape (n_classes,) or dict {label: count}
        Counts or frequencies of the data before any resampling; ``None``
        takes ``class_counts``.
    class_counts : array-like of shape (n_classes,)
        The training split's counts.
    classes : array-like of shape (n_classes,)
        The labels, sorted, in the order of ``class_counts``.

    Examples
    --------
    >>> resolve_class_prior(None, [30, 10], [0, 1])
    array([0.75, 0.25])
    >>> resolve_class_prior({"cat": 1, "dog": 3}, [5, 5], ["cat", "dog"])
    array([0.25, 0.75])
    """
    classes = np.asarray(classes)
    if class_prior is None:
        values = np.asarray(class_counts, dtype=np.float64)
    elif isinstance(class_prior, dict):
        known = set(classes.tolist())
        unknown = [label for label in class_prior if label not in known]
        if unknown:
            raise ValueError(f"class_prior names labels that are not in y: {unknown!r}; the "
                             f"classes are {classes.tolist()!r}.")
        missing = [label for label in classes.tolist() if label not in class_prior]
        if missing:
            raise ValueError(f"class_prior needs a count for every class; {missing!r} have "
                             "none.")
        values = np.array([check_real(class_prior[label], f"class_prior[{label!r}]")
                           for label in classes.tolist()])
    else:
        values = np.asarray(class_prior, dtype=np.float64)
        if values.shape != (len(classes),):
            raise ValueError(f"class_prior must hold one value per class ({len(classes)}, in "
                             f"the order of the sorted labels); got {values.shape[0]}.")
    if class_prior is not None and not (np.all(np.isfinite(values)) and np.all(values > 0)):
        raise ValueError(f"class_prior must be positive and finite for every class, got "
                         f"{values.tolist()}.")
    return values / values.sum()


def reweighting_counts(class_prior, class_counts, classes, class_weight, *, loss="ce",
                       class_epsilon_mix=0.0):
    """``(prior, counts)``: the class frequencies and counts that weights and margins come from.

    ``counts`` are the training split's when ``class_prior`` is None, else the
    prior on the scale of the training split. Warns when the training split
    has equal counts (a sampler in front, say), no prior is given, and
    something is asked for that the counts decide: class weights computed from
    them ("balanced", "effective"), LDAM's margins, balanced softmax's prior
    shift, or class-aware budgets. Each would treat every class alike. Weights
    given as a dict weigh as given.
    """
    class_counts = np.asarray(class_counts)
    prior = resolve_class_prior(class_prior, class_counts, classes)
    if class_prior is None:
        if class_counts.sum() and np.all(class_counts == class_counts[0]):
            _warn_equal_counts(class_counts[0], class_weight, loss, class_epsilon_mix)
        return prior, class_counts
    return prior, prior * class_counts.sum()


def _warn_equal_counts(count, class_weight, loss, class_epsilon_mix):
    alike = []
    if isinstance(class_weight, str):
        alike.append(f"class_weight={class_weight!r} weighs every class 1 (the deferred "
                     "reweighting changes only the learning rate)")
    if loss == "ldam":
        alike.append("loss='ldam' gives every class the same margin")
    if loss == "bsl":
        alike.append("loss='bsl' shifts every logit alike, which is plain cross-entropy")
    if class_epsilon_mix:
        alike.append(f"class_epsilon_mix={class_epsilon_mix!r} gives every class the same "
                     "budget")
    if alike:
        warnings.warn(
            f"Every class has the same number of training samples ({count}), so "
            + "; ".join(alike) + ". If a sampler balanced the data in front of this "
            "estimator, pass the class counts before resampling as class_prior=...; else "
            "leave out what the counts decide.", UserWarning, stacklevel=4)


def warn_double_correction(sampler, class_weight, loss):
    """Warn when class-balanced batches meet a correction computed from the training split's
    class counts: together they correct the imbalance twice and favour the rare classes.

    Balanced softmax shifts the logits by the log class prior that the batches no longer
    have; ``"balanced"`` and ``"effective"`` class weights weigh up classes that the batches
    already draw as often as the others. Weights given as a dict weigh as given.
    """
    if sampler != "balanced":
        return
    twice = []
    if loss == "bsl":
        twice.append("loss='bsl' shifts the logits by the log class prior of the training "
                     "split")
    if isinstance(class_weight, str):
        twice.append(f"class_weight={class_weight!r} weighs the rare classes up")
    if twice:
        warnings.warn("sampler='balanced' draws every class equally often, and "
                      + " and ".join(twice) + ": the imbalance is corrected twice, which "
                      "favours the rare classes. Keep one of them (with the sampler: "
                      "class_weight=None, loss 'ce', 'focal' or 'ldam').",
                      UserWarning, stacklevel=4)


def compute_class_weights(class_weight, class_counts, classes=None, beta=0.9999):
    """One weight per class, normalised to mean 1 over the classes.

    Parameters
    ----------
    class_weight : None, "balanced", "effective" or dict
        - ``None``: all ones.
        - ``"balanced"``: inverse frequency, ``n / (k * n_c)`` as
          :func:`sklearn.utils.class_weight.compute_class_weight` computes it.
        - ``"effective"``: inverse effective number of samples (Cui et al.,
          2019), ``(1 - beta) / (1 - beta ** n_c)``.
        - dict ``{label: weight}``: the given weights, 1 for labels not named.
    class_counts : array-like of shape (n_classes,)
        Number of samples of each class: the training split's, or those of
        the data before resampling (``class_prior``); need not be integers.
    classes : array-like of shape (n_classes,), optional
        The labels, in the order of ``class_counts``; needed for a dict.
    beta : float in [0, 1), default=0.9999
        Only for ``"effective"``.

    Returns
    -------
    numpy.ndarray of shape (n_classes,), float64, with mean 1

    Examples
    --------
    >>> compute_class_weights("balanced", [30, 10])
    array([0.5, 1.5])
    >>> compute_class_weights({"cat": 3.0}, [5, 5], classes=["cat", "dog"])
    array([1.5, 0.5])
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    n_classes = len(counts)
    if class_weight is None:
        return np.ones(n_classes)
    if isinstance(class_weight, str) and np.any(counts <= 0):
        empty = counts <= 0
        named = (f"classes {np.asarray(classes)[empty].tolist()}" if classes is not None else
                 f"classes at positions {np.flatnonzero(empty).tolist()}")
        raise ValueError(
            f"class_weight={class_weight!r} needs every class in the training split; {named} "
            "have no training sample. Where the split holds part of the data (partial_fit), "
            "pass the class counts of the whole as class_prior=...")
    if class_weight == "balanced":
        # sklearn's compute_class_weight("balanced"), n / (k * n_c), from the counts.
        weights = counts.sum() / (n_classes * counts)
    elif class_weight == "effective":
        beta = check_real(beta, "beta", min_val=0, max_val=1, include_boundaries="left")
        weights = (1.0 - beta) / (1.0 - np.power(beta, counts))
    else:
        if classes is None:
            raise ValueError("classes are needed to map a class_weight dict to classes.")
        classes = np.asarray(classes)
        check_class_weight(class_weight, classes)
        weights = np.array([float(class_weight.get(label, 1.0)) for label in classes.tolist()])
    return weights / weights.mean()


def resolve_reweight_epoch(reweight_epoch, max_epochs, *, warn=True):
    """The 0-based epoch from which the class weights are on.

    Parameters
    ----------
    reweight_epoch : int or float
        An int is the epoch itself; a float in [0, 1) is a fraction of
        ``max_epochs``, rounded to the nearest epoch.
    max_epochs : int
    warn : bool, default=True
        Warn when the epoch is not among this fit's epochs ``0 .. max_epochs - 1``.

    Examples
    --------
    >>> resolve_reweight_epoch(0.75, 40)
    30
    >>> resolve_reweight_epoch(5, 40)
    5
    """
    if isinstance(reweight_epoch, bool) or not isinstance(reweight_epoch, numbers.Real):
        raise TypeError(
            f"reweight_epoch must be an int epoch or a float in [0, 1), got {reweight_epoch!r}.")
    if isinstance(reweight_epoch, numbers.Integral):
        epoch = int(reweight_epoch)
    else:
        if not 0.0 <= reweight_epoch < 1.0:
            raise ValueError(
                "reweight_epoch as a float is a fraction of max_epochs and must lie in [0, 1); "
                f"got {reweight_epoch!r} (pass an int for an epoch number).")
        epoch = int(round(reweight_epoch * max_epochs))
    if epoch < 0:
        raise ValueError(f"reweight_epoch must be >= 0, got {reweight_epoch!r}.")
    if warn and epoch >= max_epochs:
        _warn_past_the_fit(f"reweight_epoch={reweight_epoch!r} is epoch {epoch}", max_epochs,
                           "the class weights stay off")
    return epoch


def _warn_past_the_fit(when, max_epochs, outcome):
    # Epochs run from 0 to max_epochs - 1. Not an error: a fit resumed from a checkpoint, or
    # continued with partial_fit, numbers its epochs after those already run.
    warnings.warn(f"{when}, but this fit's epochs are 0 to {max_epochs - 1} (max_epochs="
                  f"{max_epochs}): {outcome} in this fit unless it continues a history (a "
                  "checkpoint loaded with LoadInitState, or partial_fit).", UserWarning,
                  stacklevel=4)


def resolve_lr_drop_epoch(lr_drop_epoch, reweight_epoch, max_epochs, *, warn=True):
    """The 0-based epoch of the learning-rate drop.

    ``lr_drop_epoch`` (as :func:`resolve_reweight_epoch` reads it), or by default the class
    weights' switch, or 3/4 of the fit when the weights are on from the start: AT-RW then
    drops when the deferred methods do. ``warn``: when the drop is past this fit's epochs.

    Examples
    --------
    >>> resolve_lr_drop_epoch(None, 0.75, 40), resolve_lr_drop_epoch(None, 0, 40)
    (30, 30)
    """
    if lr_drop_epoch is None:
        switch = resolve_reweight_epoch(reweight_epoch, max_epochs, warn=False)
        lr_drop_epoch = reweight_epoch if switch > 0 else 0.75
    epoch = resolve_reweight_epoch(lr_drop_epoch, max_epochs, warn=False)
    if warn and epoch >= max_epochs:
        _warn_past_the_fit(f"The learning-rate drop (reweight_lr_factor) is at epoch {epoch}",
                           max_epochs, "the learning rate stays as it is")
    return epoch


#: Schedulers that set the learning rate from their own bounds every step: a one-time drop
#: would last one step under them.
_CYCLIC_SCHEDULERS = ("CyclicLR", "OneCycleLR")


def _lr_schedulers(net):
    for _, callback in getattr(net, "callbacks_", []):
        scheduler = getattr(callback, "lr_scheduler_", None)
        if scheduler is not None:
            yield scheduler


def check_lr_drop_composes(net):
    """Refuse schedulers that would undo the learning-rate drop, before training."""
    if net.reweight_lr_factor == 1:
        return
    for _, callback in getattr(net, "callbacks_", []):
        policy = getattr(callback, "policy", None)
        name = policy if isinstance(policy, str) else getattr(policy, "__name__", "")
        if name in _CYCLIC_SCHEDULERS:
            raise ValueError(f"{name} sets the learning rate from its own bounds at every "
                             "step, so the drop of reweight_lr_factor would last one step: "
                             "set reweight_lr_factor=1.0 with it.")


def _lower_scheduler_base(net, factor):
    """Scale the schedulers' base rates too, so that the drop outlasts LambdaLR-like ones,
    which compute the rate from them at every step."""
    for scheduler in _lr_schedulers(net):
        if hasattr(scheduler, "base_lrs"):
            scheduler.base_lrs = [base * factor for base in scheduler.base_lrs]


class DeferredReweighting(Callback):
    """Switch the class weights on at the reweighting epoch, in place.

    At the beginning of every epoch the callback sets the criterion's class
    weights from the global epoch number ``len(net.history) - 1`` (0-based; skorch's
    table counts from 1, so ``reweight_epoch=20`` switches at its epoch 21): all ones
    before ``net.reweight_epoch_`` and ``net.class_weights_`` from it on, and records in
    the history whether weights other than 1 are on (``class_weights_on``). At
    ``net.lr_drop_epoch_`` every parameter group's learning rate is multiplied
    by ``net.reweight_lr_factor`` once, with or without class weights: the
    drop is the schedule that the methods of the paper share. The optimizer
    is not re-created, so momentum and other state survive. The "already
    lowered" flag is kept in the optimizer's parameter groups, so it is saved
    and restored with the optimizer by skorch's ``Checkpoint`` and
    ``LoadInitState``. The drop composes with skorch's ``LRScheduler``: the
    schedulers' base rates are scaled too, so that StepLR, MultiStepLR,
    CosineAnnealingLR and LambdaLR all continue at ``reweight_lr_factor`` times
    their own rate; CyclicLR and OneCycleLR, which would undo it, are refused.

    The net must provide ``class_weights_``, ``reweight_epoch_``,
    ``lr_drop_epoch_`` and ``reweight_lr_factor``, as
    :class:`~srat_sklearn.SRATClassifier` does, and ``criterion_.set_class_weights``
    unless every class weight is 1 (any criterion that takes ``(logits, y)``
    trains without class weights).
    """

    LR_FLAG = "srat_lr_lowered"

    def on_train_begin(self, net, **kwargs):
        check_lr_drop_composes(net)

    def on_epoch_begin(self, net, **kwargs):
        epoch = len(net.history) - 1
        switch = net.reweight_epoch_
        weights_on = epoch >= switch
        weights = net.class_weights_ if weights_on else np.ones_like(net.class_weights_)
        if hasattr(net.criterion_, "set_class_weights"):
            net.criterion_.set_class_weights(weights)
        elif np.any(weights != 1):
            raise TypeError(f"Class weights need a criterion with set_class_weights, such as "
                            f"ReweightedLoss; {type(net.criterion_).__name__} has none.")
        # Only weights that differ from 1 are "on": class_weight=None reweights nothing.
        net.history.record("class_weights_on", bool(np.any(weights != 1)))

        drop = getattr(net, "lr_drop_epoch_", switch if switch > 0 else None)
        if drop is None or epoch < drop:
            return
        factor = net.reweight_lr_factor
        lowering = [group for group in net.optimizer_.param_groups
                    if not group.get(self.LR_FLAG, False)]
        for group in lowering:
            group["lr"] *= factor
            group[self.LR_FLAG] = True
        if lowering and factor != 1:
            _lower_scheduler_base(net, factor)
