"""The non-finite-loss guard: a NaN or infinite training loss stops ``fit`` before it spoils
the weights.

On the CPU the loss is checked before the backward pass, where reading it costs nothing. On
an accelerator that read would stall the device in the middle of every batch, so there the
guard keeps a copy of the module's state and the optimizer's instead (device-to-device
copies, queued like any kernel), lets skorch read the loss after the step as it does anyway
for its history, and puts the copy back when that loss is not finite.
"""

import torch


def checks_before_backward(device):
    """Whether the loss is read before the backward pass: on the CPU, where it is free."""
    return torch.device(device).type == "cpu"


class TrainingSnapshot:
    """The state of a module and its optimizer before a step, to be restored if it fails.

    :meth:`take` copies the state before each step into buffers allocated once, with one
    fused copy per device and dtype (``torch._foreach_copy_``): a copy of each tensor through
    ``copy.deepcopy`` costs more host time than the copy itself on a GPU, where the host's
    time per batch is what a small network's training waits on.

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
        self._layout = None
        self.take()

    def take(self):
        """Copy the current state; :attr:`pending` until the step's loss has been looked at."""
        # The optimizer's entries as they are now: a step may add entries (its first) or
        # replace their tensors, and restore() puts these objects back.
        self._optimizer_state = {param: dict(state)
                                 for param, state in self.optimizer.state.items()}
        self._live = [t.detach() for t in self.module.state_dict(keep_vars=True).values()]
        self._live += [value for state in self._optimizer_state.values()
                       for value in state.values() if isinstance(value, torch.Tensor)]
        layout = [(t.shape, t.dtype, t.device) for t in self._live]
        if layout != self._layout:
            self._layout, self._saved = layout, [torch.empty_like(t) for t in self._live]
            groups = {}
            for i, (_, dtype, device) in enumerate(layout):
                groups.setdefault((dtype, device), []).append(i)
            self._groups = list(groups.values())
        self._copy(self._saved, self._live)
        self._param_groups = [{key: value for key, value in group.items() if key != "params"}
                              for group in self.optimizer.param_groups]
        self.pending = True

    def _copy(self, destinations, sources):
        with torch.no_grad():
            for rows in self._groups:
                torch._foreach_copy_([destinations[i] for i in rows], [sources[i] for i in rows])

    def restore(self):
        """Put back the state of the last :meth:`take`."""
        self._copy(self._live, self._saved)
        self.optimizer.state.clear()
        self.optimizer.state.update(self._optimizer_state)
        for group, saved in zip(self.optimizer.param_groups, self._param_groups):
            group.update(saved)
