"""Reports of clean and robust accuracy per class and per group of classes."""

import warnings
from dataclasses import dataclass, field

import numpy as np
from imblearn.metrics import classification_report_imbalanced

from .._inputs import UNFITTED_LABELS, label_indices, label_vector
from ..attacks import DISPLAY_NAMES, describe_attack
from ._groups import (
    GROUP_NAMES,
    REPORT_GROUPS,
    group_mask,
    plain,
    reference_counts,
    under_represented_mask,
)
from ._robust import attack_request, check_verbose, predict_under_attack, split_pipeline


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
        Per-class accuracy (recall) on clean and adversarial inputs; NaN for
        a class without test samples.
    under_represented : list
        Labels of the under-represented group.
    groups : dict
        ``{"overall" | "well" | "under": {"clean": float, "robust": float}}``;
        "overall" is the accuracy over all samples, "well" and "under" the mean
        per-class accuracy of their group (NaN, with a warning, when the group
        or its test samples are missing).
    epsilon, n_steps, norm, attack : the attack used
        ``attack`` is "worst-case" for ``worst_case=True``.
    settings : dict
        Every setting of the attack, resolved (see
        :func:`srat_sklearn.attacks.attack_settings`); ``to_markdown`` states them.
        ``epsilon`` is in the classifier's features; a budget given in a
        pipeline's input columns is also under ``"input_epsilon"``, as
        ``{column: budget}`` in their units.
    robust_after : dict or None
        For an ensemble such as AutoAttack, robust accuracy after each of its
        attacks in turn (each runs on the samples the earlier ones did not
        fool), as AutoAttack's log reports it: ``{attack: {"overall" | "well"
        | "under": float}}``, the groups as in ``groups``; the last equals the
        ``robust`` column. An attack that lowers it far below the earlier
        gradient attacks, Square most of all, points to masked gradients.
        None for a single attack.
    """

    classes: list
    support: list
    clean: list
    robust: list
    under_represented: list
    groups: dict
    epsilon: float
    n_steps: object
    norm: str
    attack: object = "pgd"
    settings: dict = field(default_factory=dict)
    robust_after: dict = None

    def describe_attack(self):
        """One line that states the attack and every setting it ran with."""
        return describe_attack(self.settings)

    def to_dict(self):
        """A JSON-serialisable dict."""
        return {
            "classes": [plain(c) for c in self.classes],
            "support": list(map(int, self.support)),
            "clean": list(map(float, self.clean)),
            "robust": list(map(float, self.robust)),
            "under_represented": [plain(c) for c in self.under_represented],
            "groups": self.groups,
            "epsilon": self.epsilon,
            "n_steps": self.n_steps,
            "norm": self.norm,
            "attack": self.attack,
            "settings": self.settings,
            "robust_after": self.robust_after,
        }

    def to_markdown(self, per_class=True):
        """The report as Markdown tables (percentages), under a line stating the attack."""
        lines = [f"Attack: {self.describe_attack()}", "",
                 "| group | clean | robust |", "|---|---|---|"]
        for name in REPORT_GROUPS:
            g = self.groups[name]
            lines.append(f"| {name} | {pct(g['clean'])} | {pct(g['robust'])} |")
        if self.robust_after:
            lines += ["", "Robust accuracy after each attack, each on the samples the earlier "
                      "ones did not fool:", "", "| after | " + " | ".join(REPORT_GROUPS) + " |",
                      "|---|" + "---|" * len(REPORT_GROUPS)]
            lines += [f"| {name} | " + " | ".join(pct(accuracy[g]) for g in REPORT_GROUPS)
                      + " |" for name, accuracy in self.robust_after.items()]
        if per_class:
            lines += ["", "| class | group | n | clean | robust |", "|---|---|---|---|---|"]
            under = set(map(plain, self.under_represented))
            for c, n, a, r in zip(self.classes, self.support, self.clean, self.robust):
                group = "under" if plain(c) in under else "well"
                lines.append(f"| {markdown_cell(c)} | {group} | {n} | {pct(a)} | {pct(r)} |")
        return "\n".join(lines)

    def __str__(self):
        return self.to_markdown()


def markdown_cell(value):
    """``value`` as the text of a Markdown table's cell: a ``|`` in a label would split it."""
    return str(plain(value)).replace("|", "\\|")


def _plain_values(report):
    """imbalanced-learn's report dict with Python keys and numbers (NumPy's do not go to
    JSON)."""
    return {plain(k): _plain_values(v) if isinstance(v, dict) else plain(v)
            for k, v in report.items()}


def check_reports(reports):
    """``reports`` as given, if it is a non-empty dict {method name: RobustReport}; else a
    ``TypeError`` or ``ValueError`` that says what to pass."""
    if isinstance(reports, RobustReport) or not isinstance(reports, dict):
        raise TypeError(f"reports must be a dict {{method name: RobustReport}}, got "
                        f"{type(reports).__name__}; for one report: {{'model': report}}.")
    if not reports:
        raise ValueError("reports is empty: pass {method name: RobustReport}.")
    wrong = [name for name, report in reports.items() if not isinstance(report, RobustReport)]
    if wrong:
        raise TypeError(f"reports maps {wrong} to something other than a RobustReport (as "
                        "robust_report returns).")
    return reports


def pct(value):
    """A fraction as a percentage with one decimal, or ``n/a``."""
    return "n/a" if value is None or np.isnan(value) else f"{100 * value:.1f}"


def _group_mean(values, members, present):
    if not (members & present).any():
        return float("nan")  # an empty group, or one without test samples: warned once
    return float(np.mean(values[members & present]))


def _warn_on_groups_without_samples(under_mask, present):
    for name, members in zip(GROUP_NAMES, (~under_mask, under_mask)):
        if members.any() and not (members & present).any():
            warnings.warn(f"The test data hold no sample of the {name}-represented classes: "
                          f"the report's '{name}' row is n/a.", UserWarning, stacklevel=3)


def _report_mask(classifier, under_represented):
    if under_represented is not None:
        return group_mask(classifier, under_represented)
    try:
        return under_represented_mask(reference_counts(classifier))
    except ValueError as error:
        warnings.warn(f"{error} The report's 'under' row is n/a.", UserWarning, stacklevel=3)
        return np.zeros(len(classifier.classes_), dtype=bool)


def robust_report(estimator, X, y, *, under_represented=None, attack="pgd", worst_case=False,
                  epsilon=None, n_steps=None, step_size=None, norm=None, random_start=None,
                  n_restarts=1, n_queries=None, n_targets=None, batch_size=None,
                  perturbable_features=None, verbose=1):
    """Clean and robust accuracy per class, for the under-/well-represented groups and overall.

    Parameters
    ----------
    estimator : fitted SRATClassifier, or a Pipeline ending in one
    X, y : test data
    under_represented : label or list of labels, optional
        Default: the classes whose count is below ``sqrt(n_max * n_min)``
        (:func:`under_represented_mask`), from the classifier's ``class_prior_``
        (the counts before any resampling). When every class has the same
        count, the report warns and leaves the "under" row n/a.
    attack, worst_case, epsilon, n_steps, step_size, norm, random_start, n_restarts, \
n_queries, n_targets, batch_size, perturbable_features, verbose
        The attack, as in :func:`robust_predict`; ``attack="autoattack"`` is
        the evaluation to report.

    Returns
    -------
    RobustReport

    Examples
    --------
    >>> print(robust_report(clf, X_test, y_test, attack="autoattack"))  # doctest: +SKIP
    """
    request = attack_request(attack, worst_case, epsilon, n_steps, step_size, norm,
                             random_start, n_restarts, n_queries, n_targets, batch_size,
                             perturbable_features)
    _, classifier = split_pipeline(estimator)
    y = label_vector(y)
    classes = classifier.classes_
    label_indices(y, classes, what=UNFITTED_LABELS)  # before the groups can warn
    under_mask = _report_mask(classifier, under_represented)
    y_adv, settings, robust_after = predict_under_attack(estimator, X, y, request,
                                                         check_verbose(verbose))
    y_clean = estimator.predict(X)
    support = np.array([(y == c).sum() for c in classes])
    present = support > 0
    hits = {"clean": y_clean == y, "robust": y_adv == y}
    _warn_on_groups_without_samples(under_mask, present)
    per_class = {kind: _per_class_accuracy(h, y, classes, present) for kind, h in hits.items()}
    by_kind = {kind: _accuracy_by_group(hits[kind], per_class[kind], under_mask, present)
               for kind in hits}
    groups = {name: {kind: by_kind[kind][name] for kind in hits} for name in REPORT_GROUPS}
    if robust_after is not None:
        names = [DISPLAY_NAMES[m] for m in settings["members"]]
        robust_after = {name: _accuracy_by_group(
            h, _per_class_accuracy(h, y, classes, present), under_mask, present)
            for name, h in zip(names, robust_after.T)}
    return RobustReport(
        classes=list(classes), support=support.tolist(), clean=per_class["clean"].tolist(),
        robust=per_class["robust"].tolist(), under_represented=list(classes[under_mask]),
        groups=groups, epsilon=settings["epsilon"], n_steps=settings.get("n_steps"),
        norm=settings["norm"], attack="worst-case" if worst_case else settings["attack"],
        settings=settings, robust_after=robust_after)


def _per_class_accuracy(hits, y, classes, present):
    """Per-class accuracy (recall) from per-sample ``hits``; NaN for a class without samples."""
    return np.array([hits[y == c].mean() if has else np.nan for c, has in zip(classes, present)])


def _accuracy_by_group(hits, per_class, under_mask, present):
    """``{"overall", "well", "under"}``: accuracy over all samples, and the mean per-class
    accuracy of each group (NaN when it has no test samples)."""
    return {"overall": float(hits.mean()),
            **{name: _group_mean(per_class, members, present)
               for name, members in zip(GROUP_NAMES, (~under_mask, under_mask))}}


def robust_classification_report(estimator, X, y, *, output_dict=False, attack="pgd",
                                 worst_case=False, epsilon=None, n_steps=None, step_size=None,
                                 norm=None, random_start=None, n_restarts=1, n_queries=None,
                                 n_targets=None, perturbable_features=None, batch_size=None,
                                 verbose=1, **kwargs):
    """imbalanced-learn's ``classification_report_imbalanced`` on clean and adversarial inputs.

    Parameters
    ----------
    estimator : fitted SRATClassifier, or a Pipeline ending in one
    X, y : test data
    output_dict : bool, default=False
        Return ``{"clean": dict, "adversarial": dict, "attack": str}`` instead of text.
    attack, worst_case, epsilon, n_steps, step_size, norm, random_start, n_restarts, \
n_queries, n_targets, batch_size, perturbable_features, verbose
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
    request = attack_request(attack, worst_case, epsilon, n_steps, step_size, norm,
                             random_start, n_restarts, n_queries, n_targets, batch_size,
                             perturbable_features)
    y = label_vector(y)
    y_adv, settings, _ = predict_under_attack(estimator, X, y, request, check_verbose(verbose))
    labels = split_pipeline(estimator)[1].classes_
    reports = {
        name: classification_report_imbalanced(y, y_pred, labels=labels,
                                               output_dict=output_dict, zero_division=0,
                                               **kwargs)
        for name, y_pred in (("clean", estimator.predict(X)), ("adversarial", y_adv))}
    if output_dict:
        return {**{k: _plain_values(r) for k, r in reports.items()},
                "attack": describe_attack(settings)}
    return (f"Clean inputs\n\n{reports['clean']}\n"
            f"Adversarial inputs ({describe_attack(settings)})\n\n{reports['adversarial']}")
