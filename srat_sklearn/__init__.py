"""srat-sklearn: Separable Reweighted Adversarial Training for class-imbalanced data.

>>> from srat_sklearn import SRATClassifier
>>> clf = SRATClassifier(max_epochs=30, epsilon=0.1, lambda_sep=1.0,
...                      class_weight="balanced", reweight_epoch=0.75, random_state=0)
"""

from .attacks import pgd_attack
from .estimator import NonFiniteLossError, SRATClassifier
from .losses import (ReweightedLoss, focal_loss, ldam_loss, supervised_contrastive_loss,
                     weighted_cross_entropy)
from .metrics import (RobustnessAudit, RobustReport, audit_robustness, robust_accuracy_score,
                      robust_report)
from .weighting import DeferredReweighting, compute_class_weights

__version__ = "0.1.0"

__all__ = [
    "SRATClassifier",
    "NonFiniteLossError",
    "pgd_attack",
    "ReweightedLoss",
    "weighted_cross_entropy",
    "focal_loss",
    "ldam_loss",
    "supervised_contrastive_loss",
    "DeferredReweighting",
    "compute_class_weights",
    "robust_accuracy_score",
    "robust_report",
    "RobustReport",
    "audit_robustness",
    "RobustnessAudit",
]
