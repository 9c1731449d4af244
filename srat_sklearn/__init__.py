"""srat-sklearn: Separable Reweighted Adversarial Training for class-imbalanced data.

>>> from srat_sklearn import SRATClassifier
>>> clf = SRATClassifier(max_epochs=30, epsilon=0.1, lambda_sep=1.0,
...                      class_weight="balanced", reweight_epoch=0.75, random_state=0)

The names below load their module on first use, so that ``import srat_sklearn.attacks``
(plain torch) does not import the estimator and skorch.
"""

import importlib

__version__ = "0.1.0"

#: Each public name and the module that defines it.
_EXPORTS = {
    "SRATClassifier": "estimator",
    "NonFiniteLossError": "estimator",
    "CompileFallbackWarning": "_compiled",
    "pgd_attack": "attacks",
    "trades_attack": "attacks",
    "autoattack": "attacks",
    "ReweightedLoss": "losses",
    "weighted_cross_entropy": "losses",
    "focal_loss": "losses",
    "ldam_loss": "losses",
    "balanced_softmax_loss": "losses",
    "trades_kl_divergence": "losses",
    "supervised_contrastive_loss": "losses",
    "DeferredReweighting": "weighting",
    "compute_class_weights": "weighting",
    "robust_accuracy_score": "metrics",
    "robust_report": "metrics",
    "robust_classification_report": "metrics",
    "make_robust_scorer": "metrics",
    "make_group_scorer": "metrics",
    "RobustReport": "metrics",
    "audit_robustness": "metrics",
    "RobustnessAudit": "metrics",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'srat_sklearn' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
