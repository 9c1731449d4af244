"""Robust evaluation: accuracy under attack, per class and per group of classes."""

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score

__all__ = ["robust_accuracy_score", "robust_report", "RobustReport"]


def _check_fitted_srat(estimator):
    if not hasattr(estimator, "generate_adversarial"):
        raise TypeError(f"The estimator must be a fitted SRATClassifier (it attacks the "
                        f"network); got {type(estimator).__name__}.")


def robust_accuracy_score(estimator, X, y, *, epsilon=None, n_steps=20, step_size=None,
                          norm=None, random_start=None, sample_weight=None):
    """Accuracy of ``estimator`` on PGD adversarial examples of ``X``.

    Has the scorer signature ``(estimator, X, y)``, so it can be passed as
    ``scoring=`` to ``cross_val_score`` or ``GridSearchCV``. Threat-model
    parameters left at ``None`` are the estimator's own.

    Parameters
    ----------
    estimator : fitted SRATClassifier
    X : array-like
    y : array-like of shape (n_samples,)
    epsilon : float or None, default=None
        ``None`` uses ``estimator.epsilon``.
    n_steps : int, default=20
        PGD-20 is the usual evaluation.
    step_size : float or None, default=None
        ``None`` uses ``2.5 * epsilon / n_steps``.
    norm : {"linf", "l2"} or None
    random_start : bool or None
    sample_weight : array-like of shape (n_samples,), optional

    Returns
    -------
    float

    Examples
    --------
    >>> robust_accuracy_score(clf, X_test, y_test, epsilon=0.1)  # doctest: +SKIP
    0.62
    """
    _check_fitted_srat(estimator)
    X_adv = estimator.generate_adversarial(X, y, epsilon=epsilon, n_steps=n_steps,
                                           step_size=step_size, norm=norm,
                                           random_start=random_start)
    return accuracy_score(y, estimator.predict(X_adv), sample_weight=sample_weight)


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
    epsilon, n_steps, norm : the attack used
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
        }

    def to_markdown(self, per_class=True):
        """The report as Markdown tables (percentages)."""
        lines = [f"Attack: PGD-{self.n_steps}, {self.norm}, epsilon {self.epsilon:g}", "",
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


def robust_report(estimator, X, y, *, under_represented=None, epsilon=None, n_steps=20,
                  step_size=None, norm=None, random_start=None):
    """Clean and robust accuracy per class, for the under-/well-represented groups and overall.

    Parameters
    ----------
    estimator : fitted SRATClassifier
    X, y : test data
    under_represented : list of labels, optional
        Default: the classes whose training count (``estimator.class_counts_``)
        is below the median training count.
    epsilon, n_steps, step_size, norm, random_start
        The attack, as in :func:`robust_accuracy_score`.

    Returns
    -------
    RobustReport

    Examples
    --------
    >>> print(robust_report(clf, X_test, y_test).to_markdown(per_class=False))  # doctest: +SKIP
    """
    _check_fitted_srat(estimator)
    y = np.asarray(y)
    classes = estimator.classes_
    if under_represented is None:
        counts = estimator.class_counts_
        under_mask = counts < np.median(counts)
    else:
        unknown = set(map(_plain, under_represented)) - set(map(_plain, classes))
        if unknown:
            raise ValueError(f"under_represented names labels the classifier does not know: "
                             f"{sorted(unknown, key=str)}.")
        under_mask = np.isin(classes, np.asarray(list(under_represented), dtype=classes.dtype))
    X_adv = estimator.generate_adversarial(X, y, epsilon=epsilon, n_steps=n_steps,
                                           step_size=step_size, norm=norm,
                                           random_start=random_start)
    clean_hit = estimator.predict(X) == y
    robust_hit = estimator.predict(X_adv) == y

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
        epsilon=float(estimator.epsilon if epsilon is None else epsilon), n_steps=int(n_steps),
        norm=estimator.norm if norm is None else norm,
    )
