"""The estimator's hyper-parameters, declared the scikit-learn way, and the checks across them.

``PARAMETER_CONSTRAINTS`` is ``SRATClassifier._parameter_constraints``: scikit-learn's
``Interval``, ``StrOptions`` and friends, checked by :func:`check_params` at every ``fit``,
``partial_fit`` and ``initialize``, before any data is touched. The few rules that no single
constraint states (a pair of finite bounds, positive sample dimensions, options that the
criterion and the estimator would both set) are checked by hand after the table.
"""

import inspect
import numbers
import warnings
from functools import partial

from sklearn.utils._param_validation import Interval, Options, StrOptions

from ._bounds import check_bounds
from ._feature_threat import check_epsilon
from ._torch import check_device
from ._validation import finite, non_negative, positive, positive_int, validate_params
from .attacks import NORMS
from .losses import LOSSES, WEIGHT_NORMALIZATIONS, ReweightedLoss
from .separation import SEPARATION_VIEWS
from .weighting import (
    CLASS_WEIGHTS,
    SAMPLERS,
    check_class_weight,
    resolve_lr_drop_epoch,
    resolve_reweight_epoch,
    warn_double_correction,
)

MIXED_PRECISIONS = ("bf16",)
#: Training objectives: PGD adversarial training (Madry et al., 2018), or TRADES (Zhang et al.,
#: 2019).
ADVERSARIAL_LOSSES = ("madry", "trades")
#: Options of ReweightedLoss that the estimator's own parameters set.
CRITERION_OPTIONS = ("loss", "focal_gamma", "ldam_max_margin", "ldam_scale", "bsl_tau",
                     "weight_normalization")

PARAMETER_CONSTRAINTS = {
    "max_epochs": [positive_int()],
    "batch_size": [positive_int(), Options(numbers.Integral, {-1})],
    "lr": [positive()],
    "epsilon": [non_negative(), "array-like"],
    "step_size": [positive(), None],
    "n_steps": [positive_int()],
    "norm": [StrOptions(set(NORMS))],
    "random_start": ["boolean"],
    "reuse_perturbations": ["boolean"],
    "adversarial_loss": [StrOptions(set(ADVERSARIAL_LOSSES))],
    "trades_beta": [positive()],
    "class_epsilon_mix": [finite(0, 1, closed="both")],
    "epsilon_warmup": [Interval(numbers.Integral, 0, None, closed="left"),
                       finite(0, 1, closed="left")],
    "bounds": [StrOptions({"auto"}), tuple, list, None],
    "perturbable_features": ["array-like", None],
    "epsilon_scale": [StrOptions({"std"}), None],
    "integer_features": ["array-like", None],
    "lambda_sep": [non_negative()],
    "temperature": [positive()],
    "separation_views": [StrOptions(set(SEPARATION_VIEWS))],
    "class_weight": [StrOptions(set(CLASS_WEIGHTS)), dict, None],
    "class_prior": ["array-like", dict, None],
    "beta": [finite(0, 1, closed="left")],
    "reweight_epoch": [Interval(numbers.Integral, 0, None, closed="left"),
                       finite(0, 1, closed="left")],
    "reweight_lr_factor": [positive()],
    "lr_drop_epoch": [Interval(numbers.Integral, 0, None, closed="left"),
                      finite(0, 1, closed="left"), None],
    "sampler": [StrOptions(set(SAMPLERS)), None],
    "loss": [StrOptions(set(LOSSES))],
    "focal_gamma": [non_negative()],
    "ldam_max_margin": [non_negative()],
    "ldam_scale": [positive()],
    "bsl_tau": [non_negative()],
    "weight_normalization": [StrOptions(set(WEIGHT_NORMALIZATIONS))],
    "feature_layer": [str, None],
    "input_shape": [tuple, list, None],
    "mixed_precision": [StrOptions(set(MIXED_PRECISIONS)), None],
    "channels_last": ["boolean", StrOptions({"auto"})],
    "compile": ["boolean"],
    "random_state": ["random_state"],
    "train_split": [callable, None],  # skorch's ValidSplit(...), not a fraction
}


def uses_reweighted_loss(criterion):
    """Whether ``criterion`` (a class or an instance) is a ReweightedLoss."""
    return issubclass(criterion if isinstance(criterion, type) else type(criterion),
                      ReweightedLoss)


def check_params(estimator, *, warn=True):
    """Validate ``estimator``'s hyper-parameters; raise a ValueError or TypeError naming one.

    ``warn``: also warn about a schedule that this fit would not reach the end of.
    """
    params = {name: getattr(estimator, name) for name in PARAMETER_CONSTRAINTS}
    validate_params(PARAMETER_CONSTRAINTS, params, type(estimator).__name__)
    check_bounds(estimator.bounds)
    check_epsilon(estimator.epsilon)
    if estimator.device is not None:
        check_device(estimator.device)
    check_class_weight(estimator.class_weight)
    # Without class weights a late switch leaves nothing off: a one-epoch fit of AT is no
    # mistake.
    switch = resolve_reweight_epoch(estimator.reweight_epoch, estimator.max_epochs,
                                    warn=warn and estimator.class_weight is not None)
    drop = partial(resolve_lr_drop_epoch, estimator.lr_drop_epoch, estimator.reweight_epoch,
                   estimator.max_epochs)
    warn_drop = warn and estimator.reweight_lr_factor != 1
    if warn_drop and estimator.class_weight is not None:
        warn_drop = drop(warn=False) != switch  # else the switch's warning named its epoch
    drop(warn=warn_drop)
    if warn:
        check_epsilon_warmup(estimator.epsilon_warmup, estimator.max_epochs)
        warn_double_correction(estimator.sampler, estimator.class_weight, estimator.loss)
    if estimator.adversarial_loss == "trades" and estimator.reuse_perturbations:
        raise ValueError("reuse_perturbations=True continues PGD's attack across epochs; "
                         "TRADES' attack starts next to each input: use one or the other.")
    shape = estimator.input_shape
    if shape is not None and (not shape or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0
            for s in shape)):
        raise ValueError(f"input_shape must be None or a tuple of positive ints, got {shape!r}.")
    if not uses_reweighted_loss(estimator.criterion):
        if estimator.class_weight is not None or estimator.loss != "ce":
            raise ValueError(
                "class_weight and loss='focal'/'ldam' need criterion=ReweightedLoss (the "
                f"default); got criterion={estimator.criterion!r}. Set class_weight=None to use "
                "another criterion.")
        return
    given = estimator.get_params_for("criterion")
    for name in CRITERION_OPTIONS:  # one source of truth: the estimator's parameter
        if name in given and given[name] != getattr(estimator, name):
            raise ValueError(f"criterion__{name}={given[name]!r} contradicts "
                             f"{name}={getattr(estimator, name)!r}: set {name} on the "
                             "estimator, which passes it to the criterion.")


def check_epsilon_warmup(epsilon_warmup, max_epochs):
    """Warn when a warm-up in epochs outlasts the fit, whose budget then never reaches epsilon.

    Not an error, as for a late ``reweight_epoch``: a fit that continues a history
    (``partial_fit``, a loaded checkpoint) counts its epochs after those already run.
    """
    if isinstance(epsilon_warmup, numbers.Integral) and epsilon_warmup > max_epochs:
        warnings.warn(f"epsilon_warmup={epsilon_warmup} epochs outlasts this fit "
                      f"(max_epochs={max_epochs}): its training budget grows only to "
                      f"{max_epochs / epsilon_warmup:.0%} of epsilon unless it continues a "
                      "history (a checkpoint loaded with LoadInitState, or partial_fit).",
                      UserWarning, stacklevel=3)


def changed_params(estimator):
    """The parameters of ``estimator`` that differ from its defaults, for its repr."""
    # skorch's parameters reach the estimator through **kwargs: their defaults are in the
    # signatures of its base classes.
    defaults = {}
    for cls in reversed(type(estimator).__mro__):
        if "__init__" in vars(cls) and cls is not object:
            defaults.update({name: p.default for name, p in
                             inspect.signature(cls.__init__).parameters.items()
                             if p.default is not inspect.Parameter.empty})
    defaults["iterator_train__shuffle"] = True  # the estimator's own default for skorch's
    # Sorted by name, as scikit-learn's get_params lists them.
    return {name: value for name, value in sorted(estimator.get_params(deep=False).items())
            if name not in defaults or repr(value) != repr(defaults[name])}
