"""The methods of the paper and today's baselines as SRATClassifier parameters, and the
digits recipe.

>>> PAPER_METHODS["AT"]
{'lambda_sep': 0.0, 'class_weight': None}
>>> METHODS["AT-BSL"]
{'lambda_sep': 0.0, 'class_weight': None, 'loss': 'bsl'}
>>> METHODS["SRAT-W"]
{'lambda_sep': 1.0, 'class_weight': 'balanced', 'loss': 'ce', 'weight_normalization': 'weights'}
"""

import torch

__all__ = ["PAPER_METHODS", "BASELINES", "RECOMMENDED", "METHODS", "DIGITS_RECIPE"]

#: The paper's objective: the class-weighted loss averaged over the batch's samples.
_PAPER_WEIGHTING = {"class_weight": "balanced", "weight_normalization": "samples"}
#: Parameters that turn :class:`~srat_sklearn.SRATClassifier` into each method of
#: Wang et al. (2021); the reweighting epoch of the deferred ones is the
#: estimator's ``reweight_epoch``.
PAPER_METHODS = {
    "NT": {"epsilon": 0.0, "lambda_sep": 0.0, "class_weight": None},
    "AT": {"lambda_sep": 0.0, "class_weight": None},
    "AT-RW": {"lambda_sep": 0.0, **_PAPER_WEIGHTING, "reweight_epoch": 0},
    "AT-DRW": {"lambda_sep": 0.0, **_PAPER_WEIGHTING},
    "SRAT-CE": {"lambda_sep": 1.0, **_PAPER_WEIGHTING, "loss": "ce"},
    "SRAT-Focal": {"lambda_sep": 1.0, **_PAPER_WEIGHTING, "loss": "focal"},
    "SRAT-LDAM": {"lambda_sep": 1.0, **_PAPER_WEIGHTING, "loss": "ldam"},
}

#: Baselines after the paper: AT-BSL (Yue et al., CVPR 2024), PGD adversarial training with
#: the balanced-softmax outer loss, and its combination with the separation loss (the
#: balanced softmax corrects the imbalance itself, so neither reweights); TRADES (Zhang et al.,
#: 2019) with beta 6, and TRADES with the separation loss and deferred reweighting; AT-BSL with
#: the class-aware budgets and epsilon warm-up of RobustLT (Zhang et al., CVPR 2026).
BASELINES = {
    "AT-BSL": {"lambda_sep": 0.0, "class_weight": None, "loss": "bsl"},
    "SRAT-BSL": {"lambda_sep": 1.0, "class_weight": None, "loss": "bsl"},
    "TRADES": {"lambda_sep": 0.0, "class_weight": None, "adversarial_loss": "trades"},
    "SRAT-TRADES": {"lambda_sep": 1.0, "class_weight": "balanced", "adversarial_loss": "trades"},
    # RobustLT's plug-ins on AT-BSL; the mix and the warm-up are this library's choice.
    "AT-BSL+RobustLT": {"lambda_sep": 0.0, "class_weight": None, "loss": "bsl",
                        "class_epsilon_mix": 0.5, "epsilon_warmup": 0.1},
}

#: The estimator's defaults, chosen on the validation twins of the real-data study
#: (``docs/results.md``): SRAT-CE with the class-weighted loss divided by the sum of the
#: batch's class weights, so that it keeps its scale next to the separation loss at the switch.
RECOMMENDED = {
    "SRAT-W": {"lambda_sep": 1.0, "class_weight": "balanced", "loss": "ce",
               "weight_normalization": "weights"},
}

#: Every method by name: :data:`PAPER_METHODS`, :data:`BASELINES` and :data:`RECOMMENDED`.
METHODS = {**PAPER_METHODS, **BASELINES, **RECOMMENDED}

#: The adversarial-training recipe of the digits images (1x8x8 in [0, 1],
#: :func:`~srat_sklearn.datasets.load_imbalanced_digits`) that the demo, the examples, the
#: tests and the benchmarks share: L-inf PGD-10 with eps 0.2 and step eps/4, SGD with
#: learning rate 0.05, momentum 0.9 and weight decay 5e-4, batches of 64. Each adds its own
#: number of epochs and reweighting epoch.
DIGITS_RECIPE = {"epsilon": 0.2, "step_size": 0.05, "n_steps": 10, "optimizer": torch.optim.SGD,
                 "lr": 0.05, "optimizer__momentum": 0.9, "optimizer__weight_decay": 5e-4,
                 "batch_size": 64}
