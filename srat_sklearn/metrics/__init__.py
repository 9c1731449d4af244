"""Robust evaluation: accuracy under attack, per class and per group of classes, scorers for
model selection, and the robustness-evaluation checklist.

Standard AutoAttack (``attack="autoattack"``) is the evaluation to report; PGD-20,
the default, is the quick one for model selection.
"""

from ._audit import AuditCheck, RobustnessAudit, audit_robustness
from ._groups import GROUP_NAMES, REPORT_GROUPS, under_represented_mask
from ._report import RobustReport, robust_classification_report, robust_report
from ._robust import (
                      GroupScorer,
                      RobustScorer,
                      make_group_scorer,
                      make_robust_scorer,
                      robust_accuracy_score,
                      robust_predict,
)

__all__ = ["robust_accuracy_score", "robust_predict", "make_robust_scorer", "make_group_scorer",
           "robust_report", "RobustReport", "robust_classification_report", "audit_robustness",
           "RobustnessAudit", "AuditCheck", "under_represented_mask", "RobustScorer",
           "GroupScorer", "GROUP_NAMES", "REPORT_GROUPS"]
