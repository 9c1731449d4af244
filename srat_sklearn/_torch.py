"""Small torch helpers that the attacks, the models and the estimator share.

They sit below every other module of the package, so that the attacks need
neither the models nor skorch.
"""

from contextlib import contextmanager

import torch

__all__ = ["check_device", "first_output", "eval_mode"]


def check_device(device, name="device"):
    """``device`` as a :class:`torch.device` that this machine has; else a ValueError naming it.

    Examples
    --------
    >>> check_device("cpu")
    device(type='cpu')
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{name}={device!r} is not a torch device; use 'cpu', 'cuda' or "
                         "'cuda:N'.") from None
    if parsed.type == "meta":
        raise ValueError(f"{name}={device!r} holds no data (tensors with shapes only), so "
                         "nothing can be trained or attacked on it; use 'cpu' or 'cuda'.")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name}={device!r}, but torch has no MPS device on this machine; "
                         "use 'cpu'.")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name}={device!r}, but torch sees no CUDA GPU on this machine; "
                             "use 'cpu'.")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"{name}={device!r}, but this machine has "
                             f"{torch.cuda.device_count()} CUDA GPU(s), from cuda:0.")
    return parsed


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
