"""The batch loop stays on the device: no host synchronisation beyond skorch's own."""

import pytest
import torch
from skorch.callbacks import Callback
from torch.utils._python_dispatch import TorchDispatchMode

from srat_sklearn import SRATClassifier


class HostReads(TorchDispatchMode):
    """Counts reads of a tensor's value by the host (``.item()``, ``bool(tensor)``, ...)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


class CountPerBatch(Callback):
    """Host reads inside each training batch: from batch begin to batch end."""

    def initialize(self):
        self.per_batch = []
        return self

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        if training:
            self._mode = HostReads()
            self._mode.__enter__()

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        if training:
            self._mode.__exit__(None, None, None)
            self.per_batch.append(self._mode.count)


@pytest.mark.parametrize("params", [
    {},  # SRAT: attack, separation loss, class weights from the start
    {"separation_views": "adversarial+clean"},
    {"loss": "ldam"},
    {"sampler": "balanced", "norm": "l2", "epsilon": 0.5},
    {"reuse_perturbations": True, "n_steps": 2},
])
def test_two_host_reads_per_training_batch(tabular, fast_params, params, device):
    # Two reads: skorch's loss.item() for its history, and the non-finite check before
    # the update (which on a GPU waits for the forward pass, as skorch's read then waits
    # for the backward). An .item() in the attack's loop would add n_steps reads.
    # SGD: Adam reads its step counters, which stay on the host even with a GPU (so
    # reading them costs no synchronisation), but a CPU run cannot tell them apart.
    X, y = tabular
    counter = CountPerBatch()
    SRATClassifier(callbacks=[("count", counter)], reweight_epoch=0, optimizer=torch.optim.SGD,
                   device=device, **{**fast_params, "n_steps": 5, **params}).fit(X, y)
    assert counter.per_batch and set(counter.per_batch) == {2}
