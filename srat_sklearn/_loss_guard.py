"""The non-finite-loss guard: a NaN or infinite training loss stops ``fit`` before it spoils
the weights.

On the CPU the loss is checked before the backward pass, where reading it costs nothing. On
an accelerator that read would stall the device in the middle of every batch, so there the
guard keeps a copy of the module's state and the optimizer's instead (device-to-device
copies, queued like any kernel), lets skorch read the loss after the step as it does anyway
for its history, and puts the copy back when that loss is not finite.
"""

import copy

import torch


def checks_before_backward(device):
    """Whether the loss is read before the backward pass: on the CPU, where it is free."""
    return torch.device(device).type == "cpu"


class TrainingSnapshot:
    """The state of a module and its optimizer before a step, to be restored if it fails.

    Examples
    --------
    >>> import torch
    >>> module = torch.nn.Linear(2, 1)
    >>> optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    >>> snapshot = TrainingSnapshot(module, optimizer)
    >>> with torch.no_grad():
    ...     _ = module.weight.fill_(float("nan"))
    >>> snapshot.restore()
    >>> bool(torch.isfinite(module.weight).all())
    True
    """

    def __init__(self, module, optimizer):
        self.module, self.optimizer = module, optimizer
        # deepcopy clones the tensors, on their device; state_dict() would only share them.
        self.module_state = copy.deepcopy(module.state_dict())
        self.optimizer_state = copy.deepcopy(optimizer.state_dict())

    def restore(self):
        self.module.load_state_dict(self.module_state)
        self.optimizer.load_state_dict(self.optimizer_state)
