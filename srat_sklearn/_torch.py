"""Small torch helpers that the attacks, the models and the estimator share.

They sit below every other module of the package, so that the attacks need
neither the models nor skorch.
"""

from contextlib import contextmanager

__all__ = ["first_output", "eval_mode"]


def first_output(output):
    """The logits (or features) of a module that may return a tuple whose first item they are."""
    return output[0] if isinstance(output, (tuple, list)) else output


@contextmanager
def eval_mode(module):
    """Put ``module`` in eval mode and restore its previous mode afterwards.

    Batch-norm running statistics must not move while an attack queries the
    model, and dropout must not randomise the gradient.
    """
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes.items():
            m.training = training
