"""The device path, on the CPU and (``pytest -m cuda``) a CUDA GPU: the attacks run where
the model is, and the batch loop stays on the device, with no host synchronisation beyond
skorch's own."""

import copy

import numpy as np
import pytest
import torch
from conftest import load_benchmark
from skorch.callbacks import Callback
from torch.utils._python_dispatch import _get_current_dispatch_mode

from srat_sklearn import SRATClassifier
from srat_sklearn.attacks import ATTACKS, NORMS, run_attack

# The GPU check's counter: host reads at the dispatcher, and CUDA's synchronisations.
SyncsPerBatch = load_benchmark("gpu_check").SyncsPerBatch


@pytest.mark.parametrize("params", [
    {},  # SRAT: attack, separation loss, class weights from the start
    {"separation_views": "adversarial+clean"},
    {"loss": "ldam"},
    {"sampler": "balanced", "class_weight": None, "norm": "l2", "epsilon": 0.5},
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


class LabelsSeen(SRATClassifier):
    """Records the labels that the training attack and the training loss receive."""

    def _attack(self, X, y, **kwargs):
        self.__dict__.setdefault("attacked", []).append(y)
        return super()._attack(X, y, **kwargs)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        if training:
            self.__dict__.setdefault("scored", []).append(y_true)
        return super().get_loss(y_pred, y_true, X=X, training=training)


def labels_as_numpy(samples):
    """A loader's batches with the labels left a NumPy array, which each use must copy."""
    return (torch.as_tensor(np.stack([x for x, _ in samples])),
            np.array([label for _, label in samples]))


def test_the_labels_go_to_the_device_once_per_batch(tabular, fast_params):
    # On a GPU a copy from pageable host memory synchronises: the loss takes the labels the
    # attack was given rather than copying the batch's again.
    X, y = tabular
    clf = LabelsSeen(iterator_train__collate_fn=labels_as_numpy, **fast_params).fit(X, y)
    assert clf.attacked and len(clf.attacked) == len(clf.scored)
    assert all(scored is attacked for scored, attacked in zip(clf.scored, clf.attacked))


class DispatchModeSeen(Callback):
    """Whether a Python dispatch mode is on at the start of each training batch."""

    def initialize(self):
        self.seen = []
        return self

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        if training:
            self.seen.append(_get_current_dispatch_mode() is not None)


def test_the_counter_leaves_the_batches_after_its_first_ones_alone(tabular, fast_params):
    # Counting routes every operation through Python, which on a GPU costs more than the
    # operations: the GPU check's timed epochs must run without it.
    X, y = tabular
    counter, probe = SyncsPerBatch(max_batches=2), DispatchModeSeen()
    SRATClassifier(callbacks=[("count", counter), ("probe", probe)], **fast_params).fit(X, y)
    assert len(counter.reads) == 2
    assert probe.seen[:2] == [True, True] and len(probe.seen) > 2 and not any(probe.seen[2:])


@pytest.mark.parametrize("attack", [a for a in ATTACKS if a != "trades"])
@pytest.mark.parametrize("norm", NORMS)
def test_attacks_stay_in_the_ball_on_the_device(trained_digits, digits_split, device, attack,
                                                norm):
    # On the CPU too, so that the call keeps up with the attacks' arguments: its cuda case,
    # run only on a GPU, once passed n_queries to attacks that refuse it.
    _, X_test, _, y_test = digits_split
    model = copy.deepcopy(trained_digits.module_).to(device).eval()
    X, y = (torch.as_tensor(a[:40], device=device) for a in (X_test, y_test))
    epsilon = 0.2 if norm == "linf" else 1.0
    queries = {"n_queries": 50} if attack in ("square", "autoattack") else {}
    X_adv = run_attack(attack, model, X, y, epsilon=epsilon, norm=norm, n_steps=5,
                       bounds=(0.0, 1.0), **queries)
    assert X_adv.device.type == torch.device(device).type
    delta = (X_adv - X).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert torch.all(size <= epsilon * (1 + 1e-5))
    assert X_adv.min() >= 0 and X_adv.max() <= 1


def operators_per_batch(method, n_steps):
    """Operators of a training batch of the GPU check's plain loop and of the estimator doing
    ``method`` (AT or SRAT), at tiny sizes on the CPU, after a first epoch (the optimizer's
    state is made in the first step, for both)."""
    gpu_check = load_benchmark("gpu_check")
    sizes = {**gpu_check.SIZES["tiny"], "n_train": 16, "batch_size": 16, "n_steps": n_steps}
    X, y = gpu_check.synthetic_data(sizes["n_train"], sizes["image_size"], torch.device("cpu"))
    plain = gpu_check.PlainLoop(torch.device("cpu"), "fp32", False, False, sizes, (X, y))
    plain.epoch()
    with gpu_check.OperatorCounts() as counted:
        plain.epoch()
    estimator = gpu_check.EstimatorEpochs(torch.device("cpu"), "fp32", False, False, sizes,
                                          (X.numpy(), y.numpy()), method=method)
    estimator.epoch()
    estimator.epoch()  # one batch an epoch: the counter's second
    return counted.operators, estimator.syncs.operators[-1]


@pytest.mark.parametrize("method, most_added", [("AT", 20), ("SRAT", 100)])
def test_a_training_batch_dispatches_about_what_a_plain_loop_does(method, most_added):
    # On a GPU at batch 128, resnet18_cifar's training is bound by the host launching kernels
    # (docs/performance.md): each operator the estimator adds costs time there. Measured:
    # per attack step one fewer than the plain loop; per batch 17 more in AT (skorch's
    # loss.item(), the non-finite check) and 93 in SRAT (the separation loss and the class
    # weights, forward and backward), at 2 steps.
    (plain_2, ours_2), (plain_5, ours_5) = (operators_per_batch(method, n) for n in (2, 5))
    assert (ours_5 - ours_2) <= (plain_5 - plain_2)  # per step: no more than the plain loop
    assert 0 <= ours_2 - plain_2 <= most_added, (ours_2, plain_2)
