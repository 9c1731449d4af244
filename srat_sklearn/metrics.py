"""Robust evaluation: accuracy under attack, per class and per group of classes."""

from dataclasses import dataclass

import numpy as np
from imblearn.metrics import classification_report_imbalanced
from sklearn.metrics import accuracy_score
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_consistent_length, check_is_fitted

from ._validation import check_option
from .attacks import ATTACKS, check_attack_params

__all__ = ["robust_accuracy_score", "robust_predict", "make_robust_scorer", "make_group_scorer",
           "robust_report", "RobustReport", "robust_classification_report"]

GROUP_NAMES = ("well", "under")
#: How reports name ``RobustReport.attack``.
ATTACK_NAMES = {"pgd": "PGD", "apgd-ce": "APGD-CE", "apgd-dlr": "APGD-DLR",
                "worst-case": "the worst case of PGD, APGD-CE and APGD-DLR"}

#: The attacks of ``worst_case=True``, run in this order on the samples still standing.
WORST_CASE_ATTACKS = ("pgd", "apgd-ce", "apgd-dlr")


def _split_pipeline(estimator):
    """``(transformers, classifier)``: the SRATClassifier at the end of ``estimator``
    and the steps that bring X to its input space.

    For a scikit-learn or imbalanced-learn ``Pipeline`` the transformers are
    the steps before the last one, without samplers, which imbalanced-learn
    also skips at prediction time.
    """
    transformers = []
    steps = getattr(estimator, "steps", None)
    if steps is not None:
        for _, step in steps[:-1]:
            if step is None or (isinstance(step, str) and step == "passthrough"):
                continue
            if hasattr(step, "fit_resample") and not hasattr(step, "transform"):
                continue
            transformers.append(step)
        estimator = steps[-1][1]
    if not hasattr(estimator, "generate_adversarial"):
        raise TypeError(f"The estimator must be a fitted SRATClassifier, or a Pipeline that ends "
                        f"in one (the scorer attacks the network); got "
                        f"{type(estimator).__name__}.")
    check_is_fitted(estimator, ["classes_", "module_"])
    return transformers, estimator


def _check_attack_choice(attack, worst_case, step_size=None):
    if not isinstance(worst_case, (bool, np.bool_)):
        raise TypeError(f"worst_case must be a bool, got {worst_case!r}.")
    check_option(attack, "attack", ATTACKS)
    if step_size is not None and attack != "pgd" and not worst_case:
        raise ValueError(f"step_size applies to attack='pgd' only; {attack} sets its own step "
                         "sizes.")


def _scorer_attack_params(attack, worst_case, epsilon, n_steps, step_size, norm, random_start):
    """Validate a scorer's attack now, not inside a search's first fold; None: the model's."""
    _check_attack_choice(attack, worst_case, step_size)
    check_attack_params(0.0 if epsilon is None else epsilon, step_size, n_steps,
                        "linf" if norm is None else norm)
    return dict(attack=attack, worst_case=worst_case, epsilon=epsilon, n_steps=n_steps,
                step_size=step_size, norm=norm, random_start=random_start)


def robust_predict(estimator, X, y, *, attack="pgd", worst_case=False, epsilon=None,
                   n_steps=20, step_size=None, norm=None, random_start=None):
    """Predictions of ``estimator`` on adversarial examples of ``(X, y)``.

    Parameters
    ----------
    estimator : fitted SRATClassifier, or a Pipeline ending in one
    X : array-like
    y : array-like of shape (n_samples,)
        True labels; the attack needs them.
    attack : {"pgd", "apgd-ce", "apgd-dlr"}, default="pgd"
        The attack; ignored with ``worst_case=True``.
    worst_case : bool, default=False
        Run PGD, APGD-CE and APGD-DLR (the last with 3 or more classes) one
        after the other, each on the samples that the previous ones did not
        fool: a sample counts as robust only if every attack fails.
    epsilon : float or None, default=None
        ``None`` uses the classifier's ``epsilon``.
    n_steps : int, default=20
        Iterations of each attack.
    step_size : float or None, default=None
        PGD's step; ``None`` is ``2.5 * epsilon / n_steps``.
    norm : {"linf", "l2"} or None
    random_start : bool or None

    Returns
    -------
    ndarray of shape (n_samples,)
        For each sample, the prediction on its adversarial example; with
        ``worst_case``, on the first adversarial example that fooled it.
    """
    _check_attack_choice(attack, worst_case, step_size)
    transformers, classifier = _split_pipeline(estimator)
    if "forward_iter" in vars(classifier):
        # skorch's EpochScoring with caching answers every forward pass with the clean
        # predictions of the validation step, so the adversarial inputs would go unseen.
        raise ValueError("A robust score needs fresh forward passes: pass use_caching=False "
                         "to the EpochScoring callback that computes it.")
    check_consistent_length(X, y)
    for step in transformers:
        X = step.transform(X)
    y = np.asarray(y)
    attacks = [attack]
    if worst_case:
        attacks = [a for a in WORST_CASE_ATTACKS
                   if a != "apgd-dlr" or len(classifier.classes_) >= 3]
    kwargs = dict(epsilon=epsilon, n_steps=n_steps, norm=norm, random_start=random_start)
    predictions = None
    standing = np.arange(len(y))
    for name in attacks:
        X_part, y_part = _safe_indexing(X, standing), y[standing]
        X_adv = classifier.generate_adversarial(
            X_part, y_part, attack=name, step_size=step_size if name == "pgd" else None,
            **kwargs)
        predicted = classifier.predict(X_adv)
        if predictions is None:
            predictions = predicted
        else:
            predictions[standing] = predicted
        standing = standing[predicted == y_part]
        if len(standing) == 0:
            break
    return predictions


def robust_accuracy_score(estimator, X, y, *, attack="pgd", worst_case=False, epsilon=None,
                          n_steps=20, step_size=None, norm=None, random_start=None,
                          sample_weight=None):
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
    attack, worst_case, epsilon, n_steps, step_size, norm, random_start
        The attack, as in :func:`robust_predict`. PGD-20 is the default.
    sample_weight : array-like of shape (n_samples,), optional

    Returns
    -------
    float

    Examples
    --------
    >>> robust_accuracy_score(clf, X_test, y_test, epsilon=0.1)  # doctest: +SKIP
    0.62
    >>> robust_accuracy_score(clf, X_test, y_test, worst_case=True)  # doctest: +SKIP
    0.58
    """
    y_adv = robust_predict(estimator, X, y, attack=attack, worst_case=worst_case,
                           epsilon=epsilon, n_steps=n_steps, step_size=step_size, norm=norm,
                           random_start=random_start)
    return accuracy_score(y, y_adv, sample_weight=sample_weight)


class RobustScorer:
    """A scorer ``(estimator, X, y) -> float``: ``score_func`` on adversarial predictions.

    Made by :func:`make_robust_scorer`; a plain class so that it pickles for
    ``n_jobs > 1``.
    """

    def __init__(self, score_func, attack_params, score_params):
        self.score_func = score_func
        self.attack_params = attack_params
        self.score_params = score_params

    def __call__(self, estimator, X, y, sample_weight=None):
        y_adv = robust_predict(estimator, X, y, **self.attack_params)
        score_params = dict(self.score_params)
        if sample_weight is not None:
            score_params["sample_weight"] = sample_weight
        return self.score_func(y, y_adv, **score_params)

    def __repr__(self):
        params = {**self.attack_params, **self.score_params}
        args = "".join(f", {k}={v!r}" for k, v in params.items())
        return f"make_robust_scorer({self.score_func.__name__}{args})"


def make_robust_scorer(score_func=accuracy_score, *, attack="pgd", worst_case=False,
                       epsilon=None, n_steps=20, step_size=None, norm=None, random_start=None,
                       **kwargs):
    """Make a scorer that evaluates ``score_func`` on adversarial examples.

    Parameters
    ----------
    score_func : callable ``score_func(y_true, y_pred, **kwargs)``, default=accuracy_score
        Any scikit-learn or imbalanced-learn metric on labels, e.g.
        ``balanced_accuracy_score``, ``imblearn.metrics.geometric_mean_score``
        or ``f1_score`` (with ``average="macro"``). Greater must be better.
    attack, worst_case, epsilon, n_steps, step_size, norm, random_start
        The attack, as in :func:`robust_predict`; ``None`` takes the
        classifier's own setting.
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
    make_robust_scorer(balanced_accuracy_score, attack='pgd', worst_case=False, epsilon=0.1, \
n_steps=10, step_size=None, norm=None, random_start=None)
    >>> search = GridSearchCV(pipe, {"srat__lambda_sep": [0, 1]}, refit="robust",
    ...                       scoring={"clean": "balanced_accuracy", "robust": scorer})
    ... # doctest: +SKIP
    """
    if not callable(score_func):
        raise TypeError(f"score_func must be a metric callable score_func(y_true, y_pred), got "
                        f"{score_func!r}.")
    attack_params = _scorer_attack_params(attack, worst_case, epsilon, n_steps, step_size, norm,
                                          random_start)
    return RobustScorer(score_func, attack_params, kwargs)


def _under_represented_mask(classifier, under_represented):
    """Boolean mask over ``classifier.classes_``: the under-represented group.

    Default: the classes whose training count is below the median count.
    """
    classes = classifier.classes_
    if under_represented is None:
        counts = classifier.class_counts_
        return counts < np.median(counts)
    unknown = set(map(_plain, under_represented)) - set(map(_plain, classes))
    if unknown:
        raise ValueError(f"under_represented names labels the classifier does not know: "
                         f"{sorted(unknown, key=str)}.")
    return np.isin(classes, np.asarray(list(under_represented), dtype=classes.dtype))


class GroupScorer:
    """A scorer: mean per-class recall over one group of classes, clean or under attack.

    Made by :func:`make_group_scorer`.
    """

    def __init__(self, group, robust, under_represented, attack_params):
        self.group = group
        self.robust = robust
        self.under_represented = under_represented
        self.attack_params = attack_params

    def __call__(self, estimator, X, y, sample_weight=None):
        _, classifier = _split_pipeline(estimator)
        under = _under_represented_mask(classifier, self.under_represented)
        members = classifier.classes_[under if self.group == "under" else ~under]
        y = np.asarray(y)
        y_pred = (robust_predict(estimator, X, y, **self.attack_params) if self.robust
                  else estimator.predict(X))
        recalls = [np.mean(y_pred[y == c] == c) for c in members if np.any(y == c)]
        return float(np.mean(recalls)) if recalls else float("nan")

    def __repr__(self):
        return (f"make_group_scorer({self.group!r}, robust={self.robust}, "
                f"under_represented={self.under_represented!r})")


def make_group_scorer(group, *, robust=True, under_represented=None, attack="pgd",
                      worst_case=False, epsilon=None, n_steps=20, step_size=None, norm=None,
                      random_start=None):
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
    under_represented : list of labels, optional
        Default: the classes whose training count is below the median, as
        counted by the fitted classifier of each fold.
    attack, worst_case, epsilon, n_steps, step_size, norm, random_start
        The attack, as in :func:`robust_predict`.

    Returns
    -------
    GroupScorer
        A callable ``(estimator, X, y)``; the estimator may be a Pipeline.

    Examples
    --------
    >>> scoring = {"robust_well": make_group_scorer("well", epsilon=0.1),
    ...            "robust_under": make_group_scorer("under", epsilon=0.1)}
    >>> scoring["robust_under"]
    make_group_scorer('under', robust=True, under_represented=None)
    """
    check_option(group, "group", GROUP_NAMES)
    if not isinstance(robust, (bool, np.bool_)):
        raise TypeError(f"robust must be a bool, got {robust!r}.")
    attack_params = _scorer_attack_params(attack, worst_case, epsilon, n_steps, step_size, norm,
                                          random_start)
    under = None if under_represented is None else list(under_represented)
    return GroupScorer(group, robust, under, attack_params)


def robust_classification_report(estimator, X, y, *, output_dict=False, attack="pgd",
                                 worst_case=False, epsilon=None, n_steps=20, step_size=None,
                                 norm=None, random_start=None, **kwargs):
    """imbalanced-learn's ``classification_report_imbalanced`` on clean and adversarial inputs.

    Parameters
    ----------
    estimator : fitted SRATClassifier, or a Pipeline ending in one
    X, y : test data
    output_dict : bool, default=False
        Return ``{"clean": dict, "adversarial": dict}`` instead of text.
    attack, worst_case, epsilon, n_steps, step_size, norm, random_start
        The attack, as in :func:`robust_predict`.
    **kwargs
        Passed to ``classification_report_imbalanced`` (``digits``,
        ``target_names``, ...).

    Returns
    -------
    str or dict

    Examples
    --------
    >>> print(robust_classification_report(clf, X_test, y_test))  # doctest: +SKIP
    """
    y_adv = robust_predict(estimator, X, y, attack=attack, worst_case=worst_case,
                           epsilon=epsilon, n_steps=n_steps, step_size=step_size, norm=norm,
                           random_start=random_start)
    labels = _split_pipeline(estimator)[1].classes_
    reports = {
        name: classification_report_imbalanced(y, y_pred, labels=labels,
                                               output_dict=output_dict, zero_division=0,
                                               **kwargs)
        for name, y_pred in (("clean", estimator.predict(X)), ("adversarial", y_adv))}
    if output_dict:
        return reports
    return (f"Clean inputs\n\n{reports['clean']}\n"
            f"Adversarial inputs\n\n{reports['adversarial']}")


@dataclass
class RobustReport:
    """Clean and robust accuracy per class and per group of classes.

    Attributes
    ----------
    classes : list
        Labels, in the estimator's order.
    support : list of int
        Test samples per class.
    clean, robust : list of float
        Per-class accuracy (recall) on clean and adversarial inputs.
    under_represented : list
        Labels of the under-represented group.
    groups : dict
        ``{"overall" | "well" | "under": {"clean": float, "robust": float}}``;
        "overall" is the accuracy over all samples, "well" and "under" the mean
        per-class accuracy of their group (NaN for an empty group).
    epsilon, n_steps, norm, attack : the attack used
    """

    classes: list
    support: list
    clean: list
    robust: list
    under_represented: list
    groups: dict
    epsilon: float
    n_steps: int
    norm: str
    attack: str = "pgd"

    def to_dict(self):
        """A JSON-serialisable dict."""
        return {
            "classes": [_plain(c) for c in self.classes],
            "support": list(map(int, self.support)),
            "clean": list(map(float, self.clean)),
            "robust": list(map(float, self.robust)),
            "under_represented": [_plain(c) for c in self.under_represented],
            "groups": self.groups,
            "epsilon": self.epsilon,
            "n_steps": self.n_steps,
            "norm": self.norm,
            "attack": self.attack,
        }

    def to_markdown(self, per_class=True):
        """The report as Markdown tables (percentages)."""
        lines = [f"Attack: {ATTACK_NAMES[self.attack]}, {self.n_steps} steps, {self.norm}, "
                 f"epsilon {self.epsilon:g}", "",
                 "| group | clean | robust |", "|---|---|---|"]
        for name in ("overall", "well", "under"):
            g = self.groups[name]
            lines.append(f"| {name} | {_pct(g['clean'])} | {_pct(g['robust'])} |")
        if per_class:
            lines += ["", "| class | group | n | clean | robust |", "|---|---|---|---|---|"]
            under = set(map(_plain, self.under_represented))
            for c, n, a, r in zip(self.classes, self.support, self.clean, self.robust):
                group = "under" if _plain(c) in under else "well"
                lines.append(f"| {c} | {group} | {n} | {_pct(a)} | {_pct(r)} |")
        return "\n".join(lines)

    def __str__(self):
        return self.to_markdown()


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _pct(value):
    return "n/a" if np.isnan(value) else f"{100 * value:.1f}"


def _mean_or_nan(values):
    return float(np.mean(values)) if len(values) else float("nan")


def robust_report(estimator, X, y, *, under_represented=None, attack="pgd", worst_case=False,
                  epsilon=None, n_steps=20, step_size=None, norm=None, random_start=None):
    """Clean and robust accuracy per class, for the under-/well-represented groups and overall.

    Parameters
    ----------
    estimator : fitted SRATClassifier, or a Pipeline ending in one
    X, y : test data
    under_represented : list of labels, optional
        Default: the classes whose training count (``class_counts_``) is
        below the median training count.
    attack, worst_case, epsilon, n_steps, step_size, norm, random_start
        The attack, as in :func:`robust_predict`.

    Returns
    -------
    RobustReport

    Examples
    --------
    >>> print(robust_report(clf, X_test, y_test).to_markdown(per_class=False))  # doctest: +SKIP
    """
    _, classifier = _split_pipeline(estimator)
    y = np.asarray(y)
    classes = classifier.classes_
    under_mask = _under_represented_mask(classifier, under_represented)
    y_adv = robust_predict(estimator, X, y, attack=attack, worst_case=worst_case,
                           epsilon=epsilon, n_steps=n_steps, step_size=step_size, norm=norm,
                           random_start=random_start)
    clean_hit = estimator.predict(X) == y
    robust_hit = y_adv == y

    support, clean, robust = [], [], []
    for c in classes:
        rows = y == c
        support.append(int(rows.sum()))
        clean.append(float(clean_hit[rows].mean()) if rows.any() else float("nan"))
        robust.append(float(robust_hit[rows].mean()) if rows.any() else float("nan"))
    clean, robust = np.array(clean), np.array(robust)
    present = np.array(support) > 0
    groups = {
        "overall": {"clean": float(clean_hit.mean()), "robust": float(robust_hit.mean())},
        "well": {"clean": _mean_or_nan(clean[~under_mask & present]),
                 "robust": _mean_or_nan(robust[~under_mask & present])},
        "under": {"clean": _mean_or_nan(clean[under_mask & present]),
                  "robust": _mean_or_nan(robust[under_mask & present])},
    }
    return RobustReport(
        classes=list(classes), support=support, clean=clean.tolist(), robust=robust.tolist(),
        under_represented=list(classes[under_mask]), groups=groups,
        epsilon=float(classifier.epsilon if epsilon is None else epsilon), n_steps=int(n_steps),
        norm=classifier.norm if norm is None else norm,
        attack="worst-case" if worst_case else attack,
    )
