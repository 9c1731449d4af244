"""Adversarial attacks as plain torch functions.

The attacks take any ``torch.nn.Module`` that maps a batch of inputs to class
logits and return perturbed inputs. They do not depend on skorch, so they can
be used (and tested) on their own.

- :func:`pgd_attack`: PGD (Madry et al.), the training attack; :func:`trades_attack`,
  TRADES' (Zhang et al., 2019), which needs no labels;
- :func:`apgd_attack`, :func:`apgd_targeted_attack`, :func:`fab_attack`,
  :func:`square_attack`: the members of AutoAttack (Croce & Hein, 2020);
- :func:`autoattack`: standard AutoAttack, the evaluation the robustness
  community accepts; :func:`run_attack` runs any of them, or an ensemble, by
  name.

Every attack returns points inside the ``norm`` ball of radius ``epsilon``
around its input and inside the data bounds widened to contain that input.
"""

from .._torch import eval_mode
from ._common import (
                   NORM_NAMES,
                   NORMS,
                   check_attack_params,
                   project,
                   random_perturbation,
                   threat_box,
)
from ._run import (
                   ATTACKS,
                   AUTOATTACK,
                   DISPLAY_NAMES,
                   attack_members,
                   attack_settings,
                   autoattack,
                   check_attack,
                   describe_attack,
                   run_attack,
)
from .apgd import apgd_attack, apgd_targeted_attack, dlr_loss, dlr_targeted_loss
from .fab import fab_attack, project_onto_hyperplane
from .pgd import pgd_attack
from .square import square_attack
from .trades import trades_attack

__all__ = ["pgd_attack", "trades_attack", "apgd_attack", "apgd_targeted_attack", "fab_attack",
           "square_attack", "autoattack", "run_attack", "dlr_loss", "dlr_targeted_loss", "project",
           "project_onto_hyperplane", "random_perturbation", "threat_box", "eval_mode",
           "attack_members", "attack_settings", "describe_attack", "check_attack",
           "check_attack_params", "NORMS", "NORM_NAMES", "ATTACKS", "AUTOATTACK", "DISPLAY_NAMES"]
