"""The robustness-evaluation checklist, executable.

Each check is a property that any sound evaluation of any model has (Carlini et
al., 2019, "On evaluating adversarial robustness"; Croce & Hein, 2020): a
failed check means the robust accuracy measured on this model overstates its
robustness, usually because its gradients are masked.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .._feature_threat import describe_features, evaluation_threat, radius
from .._inputs import host_array, label_vector
from .._validation import check_int, check_real
from ..attacks import NORM_NAMES
from ..attacks._run import describe_budget
from ._pipeline_threat import is_per_feature
from ._robust import (
    attack_request,
    check_verbose,
    feature_budgets,
    predict_under_attack,
    split_pipeline,
    transform,
)

#: Fractions of epsilon at which robust accuracy must not rise.
RADII = (0.25, 0.5, 0.75, 1.0)
#: A default tolerance above this (2 samples of fewer than 40) is worth a warning.
WIDE_TOLERANCE = 0.05


@dataclass
class AuditCheck:
    """One row of a :class:`RobustnessAudit`."""

    name: str
    measured: str
    passed: bool
    explanation: str


@dataclass
class RobustnessAudit:
    """The checklist's verdict: one :class:`AuditCheck` per check.

    Attributes
    ----------
    checks : list of AuditCheck
        Name, what was measured, pass or fail, and a one-line explanation.
    settings : dict
        The threat model, the number of samples, the noise tolerance and the
        attacks' budgets the audit ran with.
    passed : bool
        True when every check holds.
    """

    checks: list
    settings: dict = field(default_factory=dict)

    @property
    def passed(self):
        return all(check.passed for check in self.checks)

    @property
    def failed(self):
        """The checks that failed."""
        return [check for check in self.checks if not check.passed]

    def to_markdown(self):
        """The audit as a Markdown table, with its verdict and settings."""
        s = self.settings
        lines = [f"Robustness audit: {'passed' if self.passed else 'FAILED'} "
                 f"({sum(c.passed for c in self.checks)} of {len(self.checks)} checks); "
                 f"{NORM_NAMES[s['norm']]}, {describe_budget(s)}, {s['n_samples']} samples, "
                 f"tolerance {100 * s['tolerance']:.1f} points, {s['n_steps']} iterations, "
                 f"{s['n_queries']} queries, {s['n_restarts']} restarts", "",
                 "| check | measured | result | why it matters |", "|---|---|---|---|"]
        for c in self.checks:
            lines.append(f"| {c.name} | {c.measured} | {'pass' if c.passed else 'FAIL'} | "
                         f"{c.explanation} |")
        return "\n".join(lines)

    def to_dict(self):
        return {"passed": self.passed, "settings": self.settings,
                "checks": [vars(c) for c in self.checks]}

    def __str__(self):
        return self.to_markdown()


def _percent(values):
    return ", ".join(f"{100 * v:.1f}" for v in values) + "%"


def _not_rising(scores, tolerance):
    return all(later <= earlier + tolerance for earlier, later in zip(scores, scores[1:]))


def _box_diameter(classifier, X, norm, threat):
    """The radius that lets an attack reach every point of the data's box from any input.

    ``threat`` is the evaluation's :class:`~srat_sklearn._feature_threat.FeatureThreat` (or
    None); None when it freezes features: no radius reaches every point.
    """
    X = np.asarray(host_array(X))
    low, high = X.min(axis=0), X.max(axis=0)
    bounds = getattr(classifier, "bounds_", None)
    if bounds is not None:
        low = np.minimum(low, np.broadcast_to(bounds[0], low.shape))
        high = np.maximum(high, np.broadcast_to(bounds[1], high.shape))
    width = (high - low).astype(np.float64)
    if threat is not None:  # its attacks measure the radius in units of each feature's budget
        if threat.frozen.any():
            return None
        width = width / threat.profile
    return float(width.max() if norm == "linf" else np.sqrt((width ** 2).sum()))


def audit_robustness(estimator, X, y, *, epsilon=None, norm=None, perturbable_features=None,
                     n_steps=20, n_queries=None, n_restarts=5, tolerance=None, verbose=1):
    """Run the robustness-evaluation checklist on a fitted model and test data.

    The checks, on ``(X, y)`` at the threat model ``(epsilon, norm)``:

    - the model is deterministic (two predictions agree), so that gradient
      attacks need no expectation over randomness;
    - ``epsilon = 0`` gives the clean accuracy exactly;
    - robust accuracy does not rise with ``epsilon`` (4 radii up to it, APGD-CE)
      nor with the number of iterations (a quarter, half and all of ``n_steps``);
    - a radius that reaches every point of the data's box leaves at most
      chance accuracy (the share of the most frequent class of ``y``); not
      when the threat model freezes features (``perturbable_features``);
    - PGD is at least as strong as FGSM, its first step;
    - ``n_restarts`` random restarts of APGD-CE do not raise robust accuracy;
    - AutoAttack's gradient members (APGD-CE, APGD-T, FAB-T) are at least as
      strong as its black-box member (Square).

    "Rise" and "at least as strong" allow ``tolerance`` for the noise of
    random starts.

    Parameters
    ----------
    estimator : fitted SRATClassifier, or a Pipeline ending in one
        A Pipeline's transformers are applied to X first, as for the scorers.
    X, y : test data
    epsilon, norm : optional
        The threat model; ``None`` uses the classifier's. For rows of
        features, ``epsilon`` may hold one budget per feature (or, behind a
        Pipeline, per input column, or a mapping ``{column: budget}``), as for
        :func:`~srat_sklearn.metrics.robust_report`; the checks that scale
        the radius scale every budget alike.
    perturbable_features : mask, indices or column names, or None
        The features the audit's attacks may change, as for
        :func:`~srat_sklearn.metrics.robust_report` (behind a Pipeline: its
        input columns); None keeps the classifier's.
    n_steps : int, default=20
        Iterations of the gradient attacks (at least 4).
    n_queries : int or None, default=None
        Square's queries; ``None``: 5000, AutoAttack's.
    n_restarts : int, default=5
        Restarts of the restart check (at least 2).
    tolerance : float or None, default=None
        Allowed noise, as a fraction; ``None``: 1 point or 2 samples,
        whichever is larger.
    verbose : int, default=1
        A progress bar over the checks; 0 for none.

    Returns
    -------
    RobustnessAudit
        ``passed`` is True when every check holds; ``to_markdown()`` prints it.

    Examples
    --------
    >>> audit = audit_robustness(clf, X_test, y_test)  # doctest: +SKIP
    >>> audit.passed, print(audit.to_markdown())  # doctest: +SKIP
    """
    transformers, classifier = split_pipeline(estimator)
    per_feature = perturbable_features is not None or is_per_feature(epsilon)
    if not per_feature:
        epsilon = radius(classifier.epsilon) if epsilon is None else epsilon
        check_real(epsilon, "epsilon", min_val=0, include_boundaries="neither")
    norm = classifier.norm if norm is None else norm
    check_int(n_steps, "n_steps", min_val=4)
    check_int(n_restarts, "n_restarts", min_val=2)
    check_real(tolerance, "tolerance", min_val=0, max_val=1, allow_none=True)
    attack_request("square", epsilon=epsilon, norm=norm, n_queries=n_queries,
                   perturbable_features=perturbable_features)  # validates
    verbose = check_verbose(verbose)
    features = stated = None
    if per_feature:
        # The budgets of the classifier's own features, once: the checks scale them.
        budgets, stated = feature_budgets(transformers, classifier, X, dict(
            epsilon=epsilon, perturbable_features=perturbable_features))
        epsilon = budgets.get("epsilon", classifier.epsilon if epsilon is None else epsilon)
        perturbable_features = budgets.get("perturbable_features", perturbable_features)
        _, threat = evaluation_threat(classifier, epsilon, perturbable_features)
        features = describe_features(classifier, epsilon, ~threat.frozen)
        if radius(epsilon) <= 0 or threat.frozen.all():
            raise ValueError("The audit's threat model changes no feature: epsilon is 0 on "
                             "every perturbable feature.")
    else:
        threat = getattr(classifier, "feature_threat_", None)
        if threat is not None:  # the classifier's own features and units, as reports say
            features = describe_features(classifier)
    largest = radius(epsilon)

    def scaled(factor):
        """The threat model with every budget times ``factor``."""
        return factor * epsilon if np.ndim(epsilon) == 0 else factor * np.asarray(epsilon)

    X = transform(transformers, X)
    y = label_vector(y)
    n = len(y)
    if n == 0:
        raise ValueError("The audit needs at least one test sample.")
    if tolerance is None:
        tolerance = max(0.01, 2 / n)
        if tolerance > WIDE_TOLERANCE:
            warnings.warn(f"The audit runs on {n} samples, so each check tolerates 2 samples "
                          f"({100 * tolerance:.0f} points) of noise and cannot fail on a "
                          "smaller effect: audit on a few hundred test samples, or pass "
                          "tolerance=.", UserWarning, stacklevel=2)
    base = dict(epsilon=epsilon, norm=norm, perturbable_features=perturbable_features)

    def accuracy(**attack):
        request = attack_request(**{**base, **attack})
        return float(np.mean(predict_under_attack(classifier, X, y, request)[0] == y))

    def deterministic():
        first, second = classifier.predict_proba(X), classifier.predict_proba(X)
        same = np.allclose(first, second, rtol=0, atol=1e-6)
        return AuditCheck(
            "deterministic model", f"largest change between two predictions "
            f"{np.abs(first - second).max():.2g}", bool(same),
            "gradient attacks see the model they are scored on" if same else
            "the model is random at prediction time: gradient attacks need an expectation "
            "over its randomness (EOT), and single runs overstate robustness")

    def zero_radius():
        clean = float(np.mean(classifier.predict(X) == y))
        at_zero = accuracy(attack="pgd", epsilon=0.0)
        return AuditCheck(
            "epsilon 0 gives clean accuracy", f"{100 * at_zero:.1f}% vs clean "
            f"{100 * clean:.1f}%", at_zero == clean,
            "the evaluation attacks the model it scores" if at_zero == clean else
            "an attack of radius 0 changed predictions: preprocessing, label encoding or "
            "randomness differ between the attack and the score")

    def growing_radius():
        scores = [accuracy(attack="apgd-ce", epsilon=scaled(f), n_steps=n_steps)
                  for f in RADII]
        ok = _not_rising(scores, tolerance)
        return AuditCheck(
            "robust accuracy falls as epsilon grows",
            f"epsilon {', '.join(f'{f * largest:g}' for f in RADII)}: {_percent(scores)}", ok,
            "a larger ball never helps the model" if ok else
            "a larger radius left more samples robust: the attack fails to find adversarial "
            "examples that must exist (gradient masking, or too few iterations)")

    def more_steps():
        steps = sorted({max(1, n_steps // 4), max(1, n_steps // 2), n_steps})
        scores = [accuracy(attack="apgd-ce", n_steps=s) for s in steps]
        ok = _not_rising(scores, tolerance)
        return AuditCheck(
            "robust accuracy falls with more iterations",
            f"{', '.join(map(str, steps))} iterations: {_percent(scores)}", ok,
            "longer attacks never help the model" if ok else
            "more iterations left more samples robust: the attack is not converging")

    diameter = _box_diameter(classifier, X, norm, threat)

    def whole_box():
        chance = float(np.unique(y, return_counts=True)[1].max() / n)
        score = accuracy(attack="apgd-ce", epsilon=scaled(diameter / largest), n_steps=n_steps)
        ok = score <= chance + tolerance
        return AuditCheck(
            "unbounded attack leaves at most chance", f"epsilon {diameter:.3g}: "
            f"{100 * score:.1f}% vs chance {100 * chance:.1f}%", ok,
            "an attacker who may move any input anywhere in the data's range wins" if ok else
            "an attacker who may move any input anywhere in the data's range still fails: "
            "the attack cannot find adversarial examples that must exist")

    def at_least_as_strong(name, strong, weak, ok_text, failed_text):
        """A check that the attack ``strong`` leaves no more robust samples than ``weak``."""
        (strong_label, strong_score), (weak_label, weak_score) = strong, weak
        ok = strong_score <= weak_score + tolerance
        return AuditCheck(name, f"{strong_label} {100 * strong_score:.1f}% vs {weak_label} "
                          f"{100 * weak_score:.1f}%", ok, ok_text if ok else failed_text)

    def iterative():
        return at_least_as_strong(
            "iterative at least as strong as single-step",
            (f"PGD-{n_steps}", accuracy(attack="pgd", n_steps=n_steps)),
            ("FGSM", accuracy(attack="pgd", n_steps=1, step_size=largest, random_start=False)),
            "iterating finds at least what one step finds",
            "PGD left more samples robust than its own first step: the loss surface defeats "
            "iteration (gradient masking)")

    def restarts():
        return at_least_as_strong(
            "restarts do not raise robust accuracy",
            (f"{n_restarts} runs", accuracy(attack="apgd-ce", n_steps=n_steps,
                                            n_restarts=n_restarts)),
            ("1 run", accuracy(attack="apgd-ce", n_steps=n_steps)),
            "more runs only find more adversarial examples",
            "more random restarts left more samples robust: the attack is unreliable")

    def white_box():
        return at_least_as_strong(
            "white-box at least as strong as black-box",
            ("APGD-CE + APGD-T + FAB-T", accuracy(attack=("apgd-ce", "apgd-t", "fab-t"),
                                                  n_steps=n_steps)),
            ("Square", accuracy(attack="square", n_queries=n_queries)),
            "the gradients lead the attacks to adversarial examples",
            "Square, which never sees a gradient, fooled more samples than the gradient "
            "attacks: the gradients are masked or obfuscated, so gradient-based robust "
            "accuracy overstates robustness")

    # With frozen features no radius reaches every point of the box: that check cannot apply.
    reach = (whole_box,) if diameter is not None else ()
    steps = (deterministic, zero_radius, growing_radius, more_steps, *reach, iterative,
             restarts, white_box)
    checks = []
    for step in tqdm(steps, desc="robustness audit", unit="check", disable=verbose == 0):
        checks.append(step())
    settings = dict(epsilon=largest, norm=norm, n_samples=n, tolerance=tolerance,
                    n_steps=n_steps, n_queries=5000 if n_queries is None else n_queries,
                    n_restarts=n_restarts)
    if features is not None:
        settings["features"] = features
    if stated is not None:
        settings["input_epsilon"] = stated
    return RobustnessAudit(checks, settings)
