"""The methods of the paper as SRATClassifier parameters.

>>> PAPER_METHODS["AT"]
{'lambda_sep': 0.0, 'class_weight': None}
"""

__all__ = ["PAPER_METHODS"]

#: Parameters that turn :class:`~srat_sklearn.SRATClassifier` into each method of
#: Wang et al. (2021); the reweighting epoch of the deferred ones is the
#: estimator's ``reweight_epoch``.
PAPER_METHODS = {
    "NT": {"epsilon": 0.0, "lambda_sep": 0.0, "class_weight": None},
    "AT": {"lambda_sep": 0.0, "class_weight": None},
    "AT-RW": {"lambda_sep": 0.0, "class_weight": "balanced", "reweight_epoch": 0},
    "AT-DRW": {"lambda_sep": 0.0, "class_weight": "balanced"},
    "SRAT-CE": {"lambda_sep": 1.0, "class_weight": "balanced", "loss": "ce"},
    "SRAT-Focal": {"lambda_sep": 1.0, "class_weight": "balanced", "loss": "focal"},
    "SRAT-LDAM": {"lambda_sep": 1.0, "class_weight": "balanced", "loss": "ldam"},
}
