"""The threat model of the training data: which features an attacker may change, and how far each.

``perturbable_features`` names the features that may move; the others stay exactly as they
are in every attack, in training and in evaluation. ``epsilon`` (a scalar, or one value per
feature) and ``epsilon_scale="std"`` give each feature its own budget: feature ``i`` may move
by ``epsilon_i * scale_i``, where ``scale_i`` is its standard deviation on the training data
(or 1). For the L2 norm the threat model is then the ellipsoid
``sum_i (delta_i / (epsilon_i * scale_i)) ** 2 <= 1``.

The attacks themselves know one radius only. :class:`FeatureThreat` runs them in scaled
coordinates ``z = x / profile``, in which the budget is the ball of radius ``epsilon``
(the largest per-feature value), on a model that takes ``z``; the frozen features get an
empty box (the attacks keep to the box), no gradient, and their exact values back at the end.

Images take one epsilon in the units of their values; :func:`warn_on_image_budget` catches a
budget in other units: 8/255 given to 8-bit pixels in [0, 255], or 8 given to images in [0, 1].
:func:`warn_on_rows_budget` catches budgets that move every row to one point.
"""

import warnings

import numpy as np
import torch

#: Ratio of feature scales above which a single epsilon draws a warning.
SCALE_RATIO_WARNING = 100.0
#: Levels of 8-bit pixels: images outside [0, 1] whose budget per value moves them by less than
#: one level of their range draw a warning.
PIXEL_LEVELS = 255


def radius(epsilon):
    """The one radius the attacks use: ``epsilon``, or its largest value per feature."""
    values = np.asarray(epsilon, dtype=np.float64)
    return float(values.max()) if values.size else 0.0


def check_epsilon(epsilon):
    """Validate an array-like ``epsilon``: 1-D, finite, non-negative (a scalar is checked apart)."""
    values = np.asarray(epsilon)
    if values.ndim == 0:
        return
    if values.ndim != 1 or values.size == 0 or not np.issubdtype(values.dtype, np.number) \
            or values.dtype == bool:
        raise ValueError(f"epsilon must be a number or a 1-D array of one number per feature; "
                         f"got {epsilon!r}.")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"epsilon per feature must be finite and >= 0; got {epsilon!r}.")


def perturbable_mask(perturbable_features, n_features, feature_names=None):
    """``perturbable_features`` as a boolean mask over the ``n_features`` features of X.

    None is every feature; a boolean mask has one entry per feature; integers are
    indices; strings are column names of the DataFrame given to fit.

    Examples
    --------
    >>> perturbable_mask([0, 2], 4).tolist()
    [True, False, True, False]
    >>> perturbable_mask(["b"], 2, feature_names=["a", "b"]).tolist()
    [False, True]
    """
    if perturbable_features is None:
        return np.ones(n_features, dtype=bool)
    given = np.asarray(perturbable_features)
    if given.ndim != 1:
        raise ValueError("perturbable_features must be None, a boolean mask, indices or column "
                         f"names (1-D); got {perturbable_features!r}.")
    if given.dtype == bool:
        if len(given) != n_features:
            raise ValueError(f"perturbable_features is a mask of {len(given)} entries, but X "
                             f"has {n_features} features.")
        return given.copy()
    mask = np.zeros(n_features, dtype=bool)
    if given.size == 0:
        return mask
    if given.dtype.kind in "US" or given.dtype == object:
        if feature_names is None:
            raise ValueError("perturbable_features names columns, but X has no column names: "
                             "fit on a DataFrame, or give indices or a boolean mask.")
        names = list(map(str, feature_names))
        unknown = [str(name) for name in given if str(name) not in names]
        if unknown:
            raise ValueError(f"perturbable_features names columns that X does not have: "
                             f"{unknown}; its columns are {names}.")
        mask[[names.index(str(name)) for name in given]] = True
        return mask
    if given.dtype.kind not in "iu":
        raise ValueError("perturbable_features must be None, a boolean mask, integer indices "
                         f"or column names; got {perturbable_features!r}.")
    if np.any(given < 0) or np.any(given >= n_features):
        raise ValueError(f"perturbable_features has indices outside 0..{n_features - 1}: "
                         f"{given[(given < 0) | (given >= n_features)].tolist()}.")
    mask[given] = True
    return mask


def feature_scale(epsilon_scale, X):
    """The unit of epsilon per feature: the training standard deviation, or None for 1."""
    if epsilon_scale is None:
        return None
    return X.std(axis=0, dtype=np.float64).astype(np.float32)


def warn_on_scales(X, mask, epsilon):
    """Warn when one epsilon means very different budgets for the perturbable features."""
    if radius(epsilon) == 0 or not mask.any():
        return
    std = X[:, mask].std(axis=0, dtype=np.float64)
    std = std[std > 0]
    if std.size > 1 and std.max() > SCALE_RATIO_WARNING * std.min():
        warnings.warn(
            f"The features of X differ in scale by a factor of {std.max() / std.min():.3g} "
            f"(standard deviations from {std.min():.3g} to {std.max():.3g}): one epsilon "
            f"({radius(epsilon):g}) is a very different budget per feature. Scale X (a "
            "StandardScaler in a pipeline), or set epsilon_scale='std' to measure epsilon in "
            "standard deviations of each feature.", UserWarning, stacklevel=4)


def warn_on_image_budget(X, epsilon, norm):
    """Warn when epsilon is a budget in other units than the images' values.

    - At least half their range (8 for 8/255 on images in [0, 1]): every image can be
      moved to the same flat image, so no classifier can be robust.
    - Below one 8-bit level of their range on images outside [0, 1]: the standard budgets
      (8/255, the default) of images in [0, 1] given to pixels in [0, 255] (or to sklearn's
      digits in [0, 16]) barely move them, and robust accuracy reads as clean accuracy.

    For L2, the budget per value is the root mean square ``epsilon / sqrt(values per sample)``.
    """
    epsilon = radius(epsilon)
    low, high = float(X.min()), float(X.max())
    span = high - low
    if epsilon == 0 or span == 0:
        return
    per_value = epsilon if norm == "linf" else epsilon / np.sqrt(X[0].size)
    units = ("epsilon is in the units of X: scale the images to [0, 1] (8-bit pixels: divide "
             "by 255), or give epsilon in their units (8/255 of [0, 1] is 8 of [0, 255]).")
    if reaches_one_point(np.full(X[0].size, span / 2), epsilon, norm):
        message = (f"epsilon={epsilon:g} ({norm}) is at least half the range [{low:g}, "
                   f"{high:g}] of the images' values: an attack can turn every image into "
                   "the same flat image, so no classifier can be robust.")
    elif (low < 0.0 or high > 1.0) and per_value * PIXEL_LEVELS < span:
        message = (f"The images of X take values in [{low:g}, {high:g}], not [0, 1]: epsilon="
                   f"{epsilon:g} ({norm}) moves a value by {100 * per_value / span:.2g}% of "
                   "that range, less than one level of 8-bit pixels, so attacks barely change "
                   "these images and robust accuracy reads as clean accuracy.")
    else:
        return
    warnings.warn(f"{message} {units}", UserWarning, stacklevel=4)


def reaches_one_point(half_widths, budgets, norm):
    """Whether the threat model of per-value ``budgets`` (L2: the axes of its ellipsoid) moves
    every point of a box of these half-widths to its centre: then no classifier is robust."""
    half_widths = np.asarray(half_widths, dtype=np.float64)
    budgets = np.broadcast_to(np.asarray(budgets, dtype=np.float64), half_widths.shape)
    needed = np.divide(half_widths, budgets, out=np.full(half_widths.shape, np.inf),
                       where=budgets > 0)
    needed[half_widths == 0] = 0.0  # a constant value needs no move
    return bool((needed.max() if norm == "linf" else np.sqrt((needed ** 2).sum())) <= 1)


def warn_on_rows_budget(X, budgets, norm):
    """Warn when the budgets of rows whose every feature is perturbable reach one point."""
    if reaches_one_point((X.max(axis=0) - X.min(axis=0)) / 2, budgets, norm):
        warnings.warn(
            f"epsilon (up to {np.max(budgets):g} in the units of X, {norm}) reaches the middle "
            "of every feature's training range from any row: an attack can move every row "
            "to the same point, so no classifier can be robust. epsilon is in the units of X "
            "(with epsilon_scale='std', in standard deviations of each feature).",
            UserWarning, stacklevel=4)


def fit_threat(estimator, X, feature_names=None, continuing=False):
    """``(perturbable_mask_, epsilon_scale_, threat)`` of a classifier for its samples.

    ``X`` is the training data (None when there is none: then ``epsilon_scale`` cannot be
    measured). Samples that are not rows (images) take only a scalar epsilon. A call that
    ``continuing`` training (partial_fit, a warm start) takes the current parameters, on the
    scale per feature that the first fit measured.
    """
    shape = tuple(estimator.sample_shape_)
    per_feature = np.ndim(estimator.epsilon) > 0
    if len(shape) != 1:
        for name, used in (("perturbable_features", estimator.perturbable_features is not None),
                           ("epsilon_scale", estimator.epsilon_scale is not None),
                           ("integer_features", estimator.integer_features is not None),
                           ("epsilon per feature", per_feature)):
            if used:
                raise ValueError(f"{name} applies to 2-D X (rows of features); these samples "
                                 f"have shape {shape}.")
        if X is not None:
            warn_on_image_budget(X, estimator.epsilon, estimator.norm)
        return None, None, None
    mask = perturbable_mask(estimator.perturbable_features, shape[0], feature_names)
    if continuing:
        scale = getattr(estimator, "epsilon_scale_", None)
        if (scale is None) != (estimator.epsilon_scale is None):
            raise ValueError(f"epsilon_scale={estimator.epsilon_scale!r}, but the first fit "
                             f"{'measured no' if scale is None else 'measured a'} scale per "
                             "feature: it is measured on the first fit's data only. Call fit "
                             "to train anew with it.")
    elif estimator.epsilon_scale is not None and X is None:
        raise ValueError("epsilon_scale='std' is measured on the training data: fit the "
                         "classifier rather than initialise it without data.")
    else:
        scale = None if X is None else feature_scale(estimator.epsilon_scale, X)
    if X is not None and scale is None and not per_feature:
        warn_on_scales(X, mask, estimator.epsilon)
    integer = integer_mask(estimator.integer_features, shape[0], feature_names, X)
    threat = FeatureThreat.from_params(estimator.epsilon, mask, scale, integer)  # validates
    if X is not None and threat is not None and threat.frozen.all() and \
            radius(estimator.epsilon) > 0:
        warnings.warn("The threat model moves no feature: perturbable_features names none, or "
                      "each has a budget of 0 (with epsilon_scale='std', a constant training "
                      "column has one). The attacks leave X as it is: this is natural training "
                      "at the cost of adversarial training (epsilon=0 is natural training).",
                      UserWarning, stacklevel=4)
    if X is not None and mask.all() and radius(estimator.epsilon) > 0:
        budgets = np.broadcast_to(np.asarray(estimator.epsilon, dtype=np.float64), mask.shape)
        warn_on_rows_budget(X, budgets if scale is None else budgets * scale, estimator.norm)
    return mask, scale, threat


def integer_mask(integer_features, n_features, feature_names=None, X=None):
    """``integer_features`` as a mask (None: no feature); its training values must be whole."""
    if integer_features is None:
        return np.zeros(n_features, dtype=bool)
    mask = perturbable_mask(integer_features, n_features, feature_names)
    if X is not None and mask.any():
        values = X[:, mask]
        broken = np.flatnonzero(np.any(values != np.round(values), axis=0))
        if broken.size:
            names = np.asarray(feature_names if feature_names is not None
                               else np.arange(n_features)).astype(str)[mask][broken]
            raise ValueError(f"integer_features {names.tolist()} hold values that are not whole "
                             "numbers in the training data; a scaler in front of the "
                             "classifier changes them (name the integer columns of unscaled X).")
    return mask


def evaluation_threat(estimator, epsilon, perturbable_features):
    """``(radius, threat)`` of one evaluation of a fitted classifier.

    ``threat`` is None when the evaluation keeps the classifier's own features
    and budget shape (no ``perturbable_features``, a scalar or no
    ``epsilon``); else a :class:`FeatureThreat` of the given features (None:
    the classifier's) and per-feature budgets (None: the classifier's), in the
    classifier's units (its ``epsilon_scale_`` applies).
    """
    if perturbable_features is None and np.ndim(epsilon) == 0:
        return epsilon, None
    fitted_mask = getattr(estimator, "perturbable_mask_", None)
    if fitted_mask is None:
        raise ValueError(f"perturbable_features and epsilon per feature apply to 2-D X (rows of "
                         f"features); this classifier's samples have shape "
                         f"{tuple(estimator.sample_shape_)}.")
    check_epsilon(epsilon)
    mask = fitted_mask if perturbable_features is None else perturbable_mask(
        perturbable_features, len(fitted_mask), getattr(estimator, "feature_names_in_", None))
    values = estimator.epsilon if epsilon is None else epsilon
    fitted = getattr(estimator, "feature_threat_", None)
    threat = FeatureThreat.from_params(values, mask, estimator.epsilon_scale_,
                                       None if fitted is None else fitted.integer)
    if threat is None:  # all features, one radius: still this evaluation's, not the fitted one
        threat = FeatureThreat(np.ones(len(mask)), np.zeros(len(mask), dtype=bool))
    return radius(values), threat


def describe_features(estimator, epsilon=None, mask=None):
    """How a classifier's threat model treats the features, for reports.

    ``epsilon`` and ``mask`` replace the classifier's for an evaluation's own.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> describe_features(SimpleNamespace(perturbable_mask_=np.array([True, False]),
    ...                                   epsilon=0.5, epsilon_scale="std"))
    '1 of 2 features perturbable; epsilon in standard deviations of each feature'
    """
    mask = estimator.perturbable_mask_ if mask is None else mask
    epsilon = estimator.epsilon if epsilon is None else epsilon
    parts = [f"{int(mask.sum())} of {len(mask)} features perturbable"]
    if np.ndim(epsilon):
        parts.append("epsilon per feature (the radius is its largest value)")
    if estimator.epsilon_scale == "std":
        parts.append("epsilon in standard deviations of each feature")
    return "; ".join(parts)


class FeatureThreat:
    """Per-feature budgets and frozen features, run as a change of coordinates.

    Parameters
    ----------
    profile : ndarray of shape (n_features,)
        Budget of each feature per unit of the attack's radius (1 for frozen features).
    frozen : ndarray of bool, shape (n_features,)
        Features that no attack changes.
    integer : ndarray of bool, shape (n_features,), optional
        Features that move by whole units only: after the attack their
        perturbation is truncated towards zero, which keeps every row inside
        the threat model and the bounds.
    """

    def __init__(self, profile, frozen, integer=None):
        self.profile = np.asarray(profile, dtype=np.float32)
        self.frozen = np.asarray(frozen, dtype=bool)
        self.integer = (np.zeros_like(self.frozen) if integer is None
                        else np.asarray(integer, dtype=bool))
        self._tensors = {}

    @classmethod
    def from_params(cls, epsilon, mask, scale, integer=None):
        """The threat of the estimator's parameters, or None when it is one radius for all.

        ``mask`` is the perturbable mask, ``scale`` the unit per feature (or None),
        ``integer`` the mask of the features that move by whole units only (or None).
        """
        n_features = len(mask)
        values = np.asarray(epsilon, dtype=np.float64)
        if values.ndim == 1 and len(values) != n_features:
            raise ValueError(f"epsilon has {len(values)} values, but X has {n_features} "
                             "features: give one per feature, or a number.")
        largest = radius(values)
        shape = (values / largest if values.ndim and largest > 0
                 else np.ones(n_features))
        if scale is not None:
            shape = shape * scale
        frozen = ~mask | (shape <= 0)
        integer = np.zeros(n_features, dtype=bool) if integer is None else integer & ~frozen
        if not frozen.any() and not integer.any() and np.all(shape == 1):
            return None
        return cls(np.where(frozen, 1.0, shape), frozen, integer)

    def _on(self, X):
        key = (X.device, X.dtype)
        if key not in self._tensors:
            self._tensors[key] = (torch.as_tensor(self.profile, dtype=X.dtype, device=X.device),
                                  torch.as_tensor(self.frozen, device=X.device),
                                  torch.as_tensor(self.integer, device=X.device))
        return self._tensors[key]

    def attack(self, run, model, X, bounds, start=None):
        """``run(model_z, Z, bounds=..., start=...)`` in scaled coordinates, back in those of X.

        ``bounds`` are the data bounds in the coordinates of X (None: unbounded).
        """
        profile, frozen, integer = self._on(X)
        if bounds is not None or self.frozen.any():
            inf = torch.full_like(profile, float("inf"))
            # Bounds per feature, or per sample and feature (class-aware budgets scale them).
            low, high = ((-inf, inf) if bounds is None else
                         (torch.as_tensor(b, dtype=X.dtype, device=X.device) / profile
                          for b in bounds))
            # An empty box (low > high) shrinks to the input itself in threat_box: frozen.
            bounds = torch.where(frozen, inf, low), torch.where(frozen, -inf, high)
        Z = X / profile
        Z_adv = run(_ScaledInputs(model, profile, frozen), Z, bounds=bounds,
                    start=None if start is None else start / profile)
        # What did not move (frozen features, samples left alone) keeps its exact value.
        X_adv = torch.where(frozen | (Z_adv == Z), X, Z_adv * profile)
        if self.integer.any():  # whole units, towards the clean value: never out of the ball
            delta = X_adv - X
            whole = torch.where((delta - delta.round()).abs() < 1e-4, delta.round(), delta.trunc())
            X_adv = torch.where(integer, X + whole, X_adv)
        return X_adv

    def __getstate__(self):
        return {"profile": self.profile, "frozen": self.frozen, "integer": self.integer,
                "_tensors": {}}

    def __setstate__(self, state):
        state.setdefault("integer", np.zeros_like(state["frozen"]))  # pickled before integers
        self.__dict__.update(state)


class _ScaledInputs(torch.nn.Module):
    """``model`` on scaled coordinates ``z``; no gradient flows to the frozen features."""

    def __init__(self, model, profile, frozen):
        super().__init__()
        self.model = model
        self.profile, self.frozen = profile, frozen

    def forward(self, z):
        return self.model(torch.where(self.frozen, z.detach(), z) * self.profile)
