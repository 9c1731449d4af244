"""The batch loop stays on the device: no host synchronisation beyond skorch's own."""

import pytest
import torch
from conftest import load_benchmark

from srat_sklearn import SRATClassifier

# The GPU check's counter: host reads at the dispatcher, and CUDA's synchronisations.
SyncsPerBatch = load_benchmark("gpu_check").SyncsPerBatch


@pytest.mark.parametrize("params", [
    {},  # SRAT: attack, separation loss, class weights from the start
    {"separation_views": "adversarial+clean"},
    {"loss": "ldam"},
    {"sampler": "balanced", "norm": "l2", "epsilon": 0.5},
    {"reuse_perturbations": True, "n_steps": 2},
])
def test_host_reads_per_training_batch(tabular, fast_params, params, device, loss_check):
    # skorch's loss.item() for its history, and on the CPU the non-finite check before the
    # backward pass too, where it is free; on a GPU that read would wait for the forward
    # pass, so there the guard undoes a bad step after skorch's read instead. An .item() in
    # the attack's loop would add n_steps reads. SGD: Adam reads its step counters, which
    # stay on the host even with a GPU (so reading them costs no synchronisation), but a
    # CPU run cannot tell them apart.
    X, y = tabular
    counter = SyncsPerBatch()
    SRATClassifier(callbacks=[("count", counter)], reweight_epoch=0, optimizer=torch.optim.SGD,
                   device=device, **{**fast_params, "n_steps": 5, **params}).fit(X, y)
    checked_before = loss_check == "before backward" and device == "cpu"
    assert counter.reads and set(counter.reads) == {2 if checked_before else 1}
