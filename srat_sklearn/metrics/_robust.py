"""Predictions under attack, robust accuracy, and scorers for model selection."""

import inspect

import numpy as np
from sklearn.metrics import accuracy_score
from sklearn.utils.validation import check_consistent_length, check_is_fitted

from .._inputs import host_array, label_vector
from .._validation import check_int
from ..attacks import check_attack
from ._groups import NO_CLASS_NAMED, as_label_list, check_group, group_mask, plain
from ._pipeline_threat import budget_radius, classifier_threat, input_budget, is_per_feature

#: PGD's steps in evaluation, alone, in an ensemble and in the worst case, unless n_steps
#: is given.
EVALUATION_PGD_STEPS = 20
#: The attacks of ``worst_case=True``, run in this order on the samples still standing.
WORST_CASE_ATTACKS = ("pgd", "apgd-ce", "apgd-dlr")


def split_pipeline(estimator):
    """``(transformers, classifier)``: the SRATClassifier at the end of ``estimator``
    and the pipeline slice that brings X to its input space (None without one).

    The slice ends at the last step before the classifier that transforms: a
    sampler there (which has no ``transform``) is skipped, as imbalanced-learn
    skips every sampler at prediction time.
    """
    transformers = None
    steps = getattr(estimator, "steps", None)
    if steps is not None:
        last = max((i for i, (_, step) in enumerate(steps[:-1]) if hasattr(step, "transform")),
                   default=None)
        transformers = None if last is None else estimator[:last + 1]
        estimator = estimator[-1]
    if not hasattr(estimator, "generate_adversarial"):
        raise TypeError(f"The estimator must be a fitted SRATClassifier, or a Pipeline that ends "
                        f"in one (the scorer attacks the network); got "
                        f"{type(estimator).__name__}. Models that combine several fitted "
                        "models (CalibratedClassifierCV, BalancedBaggingClassifier) are not "
                        "attacked as a whole: score each SRATClassifier they hold.")
    check_is_fitted(estimator, ["classes_", "module_"])
    return transformers, estimator


def transform(transformers, X):
    return X if transformers is None else transformers.transform(X)


def attack_request(attack="pgd", worst_case=False, epsilon=None, n_steps=None, step_size=None,
                   norm=None, random_start=None, n_restarts=1, n_queries=None, n_targets=None,
                   batch_size=None, perturbable_features=None):
    """Validate an evaluation attack before any work; return it as ``generate_adversarial``'s
    keyword arguments. ``None`` leaves a setting to the classifier (its threat model) or to
    the attack (its standard number of iterations, queries and targets)."""
    if not isinstance(worst_case, (bool, np.bool_)):
        raise TypeError(f"worst_case must be a bool, got {worst_case!r}.")
    if worst_case:
        attack = WORST_CASE_ATTACKS
    largest = budget_radius(epsilon)
    members = check_attack(attack, epsilon=0.0 if largest is None else largest,
                           norm="linf" if norm is None else norm, n_steps=n_steps,
                           step_size=step_size, n_restarts=n_restarts, n_queries=n_queries,
                           n_targets=n_targets)
    check_int(batch_size, "batch_size", min_val=1, allow_none=True)
    if n_steps is None and (worst_case or members == ("pgd",)):
        n_steps = EVALUATION_PGD_STEPS
    elif "pgd" in members and (n_steps is None or isinstance(n_steps, dict)):
        # PGD's own default is the training attack's 10; the others keep theirs (100).
        n_steps = {"pgd": EVALUATION_PGD_STEPS, **(n_steps or {})}
    return dict(attack=attack if isinstance(attack, str) else tuple(attack), epsilon=epsilon,
                n_steps=n_steps, step_size=step_size, norm=norm, random_start=random_start,
                n_restarts=n_restarts, n_queries=n_queries, n_targets=n_targets,
                batch_size=batch_size, perturbable_features=perturbable_features)


def check_verbose(verbose):
    return check_int(verbose, "verbose", min_val=0)


def predict_under_attack(estimator, X, y, request, verbose=0):
    """``(predictions on adversarial examples, the attack's resolved settings, robust_after)``.

    ``robust_after``: for an ensemble, which samples were still robust after each of its
    attacks, (n_samples, n_attacks) bool; None for a single attack.
    """
    transformers, classifier = split_pipeline(estimator)
    if "forward_iter" in vars(classifier):
        # skorch's EpochScoring with caching answers every forward pass with the clean
        # predictions of the validation step, so the adversarial inputs would go unseen.
        raise ValueError("A robust score needs fresh forward passes: pass use_caching=False "
                         "to the EpochScoring callback that computes it.")
    check_consistent_length(X, y)
    request = dict(request)
    if request["attack"] == WORST_CASE_ATTACKS and len(classifier.classes_) < 3:
        request["attack"] = WORST_CASE_ATTACKS[:2]  # the DLR loss needs 3 classes
    stated = None
    if request["perturbable_features"] is not None or is_per_feature(request["epsilon"]):
        budgets, stated = feature_budgets(transformers, classifier, X, request)
        request.update(budgets)
    X = transform(transformers, X)
    y = label_vector(y)
    X_adv, robust_after = classifier._adversarial_examples(X, y, **request, verbose=verbose)
    request.pop("batch_size")
    settings = classifier.attack_settings(**request)
    if stated is not None:
        settings["input_epsilon"] = stated
    return classifier.predict(with_columns_of(X, X_adv)), settings, robust_after


def feature_budgets(transformers, classifier, X, request):
    """``(budgets, stated)`` for an evaluation that names columns or budgets per column.

    ``budgets``: the classifier's ``epsilon`` and ``perturbable_features``, from columns of
    the pipeline's input when transformers come first. ``stated``: then, the budget as given,
    ``{column: budget}`` of the columns that may move, for reports (the classifier's budgets
    are in the units of its scaled features); else None.
    """
    epsilon, features = request["epsilon"], request["perturbable_features"]
    if transformers is None and not isinstance(epsilon, dict):
        return {}, None  # the classifier's own features: it checks them
    if transformers is not None and epsilon is None:
        raise ValueError("perturbable_features names the pipeline's input columns: give "
                         "epsilon in their units too (a number, one per column, or a mapping "
                         "{column: budget}).")
    names = getattr(X, "columns", None)
    if names is None:
        names = getattr(transformers or classifier, "feature_names_in_", None)
    budget = input_budget(epsilon, features, np.shape(X)[1], names)
    if transformers is None:
        return {"epsilon": budget, "perturbable_features": budget > 0}, None
    stated = {plain(names[i]) if names is not None else int(i): float(budget[i])
              for i in np.flatnonzero(budget > 0)}
    budget = classifier_threat(transformers, budget)
    scale = getattr(classifier, "epsilon_scale_", None)
    if scale is not None:  # the classifier measures epsilon in its own units
        budget = np.divide(budget, scale, out=np.zeros_like(budget), where=scale > 0)
    return {"epsilon": budget, "perturbable_features": budget > 0}, stated


def with_columns_of(X, values):
    """``values`` as a data frame with the columns (and index) of ``X``, when ``X`` has them.

    The classifier checks feature names: adversarial rows keep those of the rows they come from.
    """
    columns = getattr(X, "columns", None)
    if columns is None or np.ndim(values) != 2:
        return values
    if hasattr(X, "index"):  # pandas
        return type(X)(values, columns=columns, index=X.index)
    return type(X)(values, schema=list(columns), orient="row")


def robust_predict(estimator, X, y, *, attack="pgd", worst_case=False, epsilon=None,
                   n_steps=None, step_size=None, norm=None, random_start=None, n_restarts=1,
                   n_queries=None, n_targets=None, batch_size=None, perturbable_features=None,
                   verbose=1):
    """Predictions of ``estimator`` on adversarial examples of ``(X, y)``.

    Parameters
    ----------
    estimator : fitted SRATClassifier, or a Pipeline ending in one
    X : array-like
    y : array-like of shape (n_samples,)
        True labels; the attack needs them.
    attack : str or sequence of str, default="pgd"
        One of ``"pgd"``, ``"apgd-ce"``, ``"apgd-dlr"``, ``"apgd-t"``,
        ``"fab-t"``, ``"square"`` and ``"autoattack"`` (standard AutoAttack,
        the evaluation to report), or several: an ensemble in which a sample
        is robust only if every attack fails. Ignored with ``worst_case=True``.
    worst_case : bool, default=False
        The ensemble of PGD, APGD-CE and APGD-DLR (the last with 3 or more
        classes).
    epsilon : float, array-like, dict or None, default=None
        ``None`` uses the classifier's ``epsilon``; a number is the radius of
        the classifier's threat model. For rows of features it may also be one
        budget per column or a mapping ``{column: budget}`` (columns not in it
        stay fixed): behind transformers, in the units of the pipeline's
        input columns, carried to the classifier's features (see
        ``perturbable_features``).
    n_steps : int, dict or None, default=None
        Iterations of each gradient attack, or a dict of them by attack name
        (``{"pgd": 50}``; the others keep their default); ``None``: 20 for PGD
        (alone or in an ensemble) and the worst case, 100 (AutoAttack's) for
        the others.
    step_size : float or None, default=None
        PGD's step; ``None`` is ``2.5 * epsilon / n_steps``.
    norm : {"linf", "l2"} or None
    random_start : bool or None
    n_restarts : int, default=1
        Runs of each attack; later runs restart from random points on the
        samples not fooled yet.
    n_queries : int or None, default=None
        Square's queries; ``None``: 5000.
    n_targets : int or None, default=None
        Target classes of APGD-T and FAB-T; ``None``: 9 (or every wrong class).
    batch_size : int or None, default=None
        The most samples attacked together; ``None``: 250, as AutoAttack
        evaluates. Lower it when the device runs out of memory; raise it on a
        GPU: APGD-T and FAB-T attack as many targets of each sample still
        standing in one pass as fit in ``batch_size`` rows.
    perturbable_features : mask, indices or column names, or None
        The columns this evaluation may change (None: the classifier's
        ``perturbable_features``). When transformers come before the
        classifier, these are columns of the pipeline's input and ``epsilon``
        is in their units: scalers rescale the budget, and a transformer
        whose outputs are not a rescaling of single columns (a
        ``OneHotEncoder``, say) must take only fixed columns, else a
        ``ValueError`` says so.
    verbose : int, default=1
        1 shows a progress bar for the long evaluations (AutoAttack and other
        ensembles, APGD-T, FAB-T, Square), 2 for every attack, 0 none.

    Returns
    -------
    ndarray of shape (n_samples,)
        For each sample, the prediction on its adversarial example; with an
        ensemble, on the first adversarial example that fooled it.
    """
    request = attack_request(attack, worst_case, epsilon, n_steps, step_size, norm,
                             random_start, n_restarts, n_queries, n_targets, batch_size,
                             perturbable_features)
    return predict_under_attack(estimator, X, y, request, check_verbose(verbose))[0]


def robust_accuracy_score(estimator, X, y, *, attack="pgd", worst_case=False, epsilon=None,
                          n_steps=None, step_size=None, norm=None, random_start=None,
                          n_restarts=1, n_queries=None, n_targets=None, batch_size=None,
                          perturbable_features=None, sample_weight=None, verbose=1):
    """Accuracy of ``estimator`` on adversarial examples of ``X``.

    Has the scorer signature ``(estimator, X, y)``, so it can be passed as
    ``scoring=`` to ``cross_val_score`` or ``GridSearchCV``; for another
    metric use :func:`make_robust_scorer`. Threat-model parameters left at
    ``None`` are the classifier's own.

    Parameters
    ----------
    estimator : fitted SRATClassifier, or a Pipeline ending in one
    X : array-like
    y : array-like of shape (n_samples,)
    attack, worst_case, epsilon, n_steps, step_size, norm, random_start, n_restarts, \
n_queries, n_targets, batch_size, perturbable_features, verbose
        The attack, as in :func:`robust_predict`. PGD-20 is the default;
        ``attack="autoattack"`` is the evaluation to report.
    sample_weight : array-like of shape (n_samples,), optional

    Returns
    -------
    float

    Examples
    --------
    >>> robust_accuracy_score(clf, X_test, y_test, epsilon=0.1)  # doctest: +SKIP
    0.62
    >>> robust_accuracy_score(clf, X_test, y_test, attack="autoattack")  # doctest: +SKIP
    0.55
    """
    y = label_vector(y)
    y_adv = robust_predict(estimator, X, y, attack=attack, worst_case=worst_case,
                           epsilon=epsilon, n_steps=n_steps, step_size=step_size, norm=norm,
                           random_start=random_start, n_restarts=n_restarts,
                           n_queries=n_queries, n_targets=n_targets, batch_size=batch_size,
                           perturbable_features=perturbable_features, verbose=verbose)
    return accuracy_score(y, y_adv, sample_weight=host_array(sample_weight))


def _request_repr(request):
    return "".join(f", {k}={v!r}" for k, v in request.items())


class RobustScorer:
    """A scorer ``(estimator, X, y) -> float``: ``score_func`` on adversarial predictions.

    Made by :func:`make_robust_scorer`; a plain class so that it pickles for
    ``n_jobs > 1``.
    """

    def __init__(self, score_func, attack_request, score_params):
        self.score_func = score_func
        self.attack_request = attack_request
        self.score_params = score_params

    def __call__(self, estimator, X, y, sample_weight=None):
        y = label_vector(y)
        y_adv = predict_under_attack(estimator, X, y, self.attack_request)[0]
        score_params = dict(self.score_params)
        if sample_weight is not None:
            score_params["sample_weight"] = host_array(sample_weight)
        return self.score_func(y, y_adv, **score_params)

    def __repr__(self):
        extra = "".join(f", {k}={v!r}" for k, v in self.score_params.items())
        return (f"make_robust_scorer({self.score_func.__name__}"
                f"{_request_repr(self.attack_request)}{extra})")


def make_robust_scorer(score_func=accuracy_score, *, attack="pgd", worst_case=False,
                       epsilon=None, n_steps=None, step_size=None, norm=None, random_start=None,
                       n_restarts=1, n_queries=None, n_targets=None, batch_size=None,
                       perturbable_features=None,
                       **kwargs):
    """Make a scorer that evaluates ``score_func`` on adversarial examples.

    Parameters
    ----------
    score_func : callable ``score_func(y_true, y_pred, **kwargs)``, default=accuracy_score
        Any scikit-learn or imbalanced-learn metric on labels, e.g.
        ``balanced_accuracy_score``, ``imblearn.metrics.geometric_mean_score``
        or ``f1_score`` (with ``average="macro"``). Greater must be better.
    attack, worst_case, epsilon, n_steps, step_size, norm, random_start, n_restarts, \
n_queries, n_targets, batch_size, perturbable_features
        The attack, as in :func:`robust_predict`; ``None`` takes the
        classifier's own setting or the attack's standard one. Validated here,
        not in a search's first fold.
    **kwargs
        Passed to ``score_func``.

    Returns
    -------
    RobustScorer
        A callable ``(estimator, X, y)``; ``estimator`` is a fitted
        SRATClassifier or a scikit-learn / imbalanced-learn Pipeline ending in
        one, whose transformers are applied to X first (samplers are
        skipped), so the attack runs in the classifier's input space.

    Examples
    --------
    >>> from sklearn.metrics import balanced_accuracy_score
    >>> scorer = make_robust_scorer(balanced_accuracy_score, epsilon=0.1, n_steps=10)
    >>> scorer
    make_robust_scorer(balanced_accuracy_score, attack='pgd', epsilon=0.1, n_steps=10, \
step_size=None, norm=None, random_start=None, n_restarts=1, n_queries=None, n_targets=None, \
batch_size=None, perturbable_features=None)
    >>> search = GridSearchCV(pipe, {"srat__lambda_sep": [0, 1]}, refit="robust",
    ...                       scoring={"clean": "balanced_accuracy", "robust": scorer})
    ... # doctest: +SKIP
    """
    if not callable(score_func):
        raise TypeError(f"score_func must be a metric callable score_func(y_true, y_pred), got "
                        f"{score_func!r}.")
    request = attack_request(attack, worst_case, epsilon, n_steps, step_size, norm,
                             random_start, n_restarts, n_queries, n_targets, batch_size,
                             perturbable_features)
    _check_score_params(score_func, kwargs)
    return RobustScorer(score_func, request, kwargs)


def _check_score_params(score_func, score_params):
    """Refuse keyword arguments that ``score_func`` does not take: here, and not as a
    search's first fold, whose error scikit-learn records as a NaN score with a warning."""
    try:
        signature = inspect.signature(score_func)
    except (TypeError, ValueError):
        return  # no signature to read: the metric says so itself when called
    try:
        signature.bind_partial(None, None, **score_params)
    except TypeError as error:
        name = getattr(score_func, "__name__", repr(score_func))
        quiet = (" (scorers attack without a progress bar: they take no verbose)"
                 if "verbose" in score_params else "")
        raise TypeError(f"make_robust_scorer passes {sorted(score_params)} to {name}, which "
                        f"does not take them: {error}{quiet}.") from None


class GroupScorer:
    """A scorer: mean per-class recall over one group of classes, clean or under attack.

    Made by :func:`make_group_scorer`.
    """

    def __init__(self, group, robust, under_represented, attack_request):
        self.group = group
        self.robust = robust
        self.under_represented = under_represented
        self.attack_request = attack_request

    def __call__(self, estimator, X, y, sample_weight=None):
        _, classifier = split_pipeline(estimator)
        under = group_mask(classifier, self.under_represented)
        members = classifier.classes_[under if self.group == "under" else ~under]
        y = label_vector(y)
        if not np.isin(y, members).any():
            raise ValueError(f"The test data hold no sample of the {self.group}-represented "
                             f"classes {members.tolist()}, so their accuracy is undefined.")
        y_pred = (predict_under_attack(estimator, X, y, self.attack_request)[0] if self.robust
                  else estimator.predict(X))
        return float(np.mean([np.mean(y_pred[y == c] == c) for c in members if np.any(y == c)]))

    def __repr__(self):
        return (f"make_group_scorer({self.group!r}, robust={self.robust}, "
                f"under_represented={self.under_represented!r}"
                f"{_request_repr(self.attack_request) if self.robust else ''})")


def make_group_scorer(group, *, robust=True, under_represented=None, attack="pgd",
                      worst_case=False, epsilon=None, n_steps=None, step_size=None, norm=None,
                      random_start=None, n_restarts=1, n_queries=None, n_targets=None,
                      batch_size=None, perturbable_features=None):
    """Make a scorer of one group's accuracy: the mean recall of its classes.

    With a pair of them in ``GridSearchCV(scoring=...)``, the search records
    how the well- and the under-represented classes trade off as ``lambda_sep``
    or the class weights change; :func:`~srat_sklearn.plotting.plot_tradeoff`
    draws it.

    Parameters
    ----------
    group : {"well", "under"}
    robust : bool, default=True
        Score adversarial examples; ``False`` scores clean inputs.
    under_represented : label or list of labels, optional
        Default: the classes whose count is below ``sqrt(n_max * n_min)``
        (:func:`under_represented_mask`), counted by the fitted classifier of
        each fold, before any resampling when it has a ``class_prior``. A
        scorer whose group is empty, or that finds no test sample of it,
        raises a ``ValueError`` that says why.
    attack, worst_case, epsilon, n_steps, step_size, norm, random_start, n_restarts, \
n_queries, n_targets, batch_size, perturbable_features
        The attack, as in :func:`robust_predict`.

    Returns
    -------
    GroupScorer
        A callable ``(estimator, X, y)``; the estimator may be a Pipeline.

    Examples
    --------
    >>> scoring = {"robust_well": make_group_scorer("well", epsilon=0.1),
    ...            "robust_under": make_group_scorer("under", epsilon=0.1)}
    >>> scoring["robust_under"].group
    'under'
    """
    check_group(group)
    if not isinstance(robust, (bool, np.bool_)):
        raise TypeError(f"robust must be a bool, got {robust!r}.")
    if under_represented is not None and not as_label_list(under_represented):
        raise ValueError(NO_CLASS_NAMED)  # here, not as a search's NaN scores
    request = attack_request(attack, worst_case, epsilon, n_steps, step_size, norm,
                             random_start, n_restarts, n_queries, n_targets, batch_size,
                             perturbable_features)
    return GroupScorer(group, robust, as_label_list(under_represented), request)
