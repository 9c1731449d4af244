"""Class-weight formulas and the deferred switch inside a real fit."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight
from skorch.callbacks import Callback, LRScheduler
from skorch.dataset import ValidSplit
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    CyclicLR,
    LambdaLR,
    MultiStepLR,
    OneCycleLR,
    StepLR,
)

from srat_sklearn import SRATClassifier
from srat_sklearn.weighting import (
    compute_class_weights,
    resolve_lr_drop_epoch,
    resolve_reweight_epoch,
)

COUNTS = [50, 20, 5]


def test_balanced_is_sklearn_inverse_frequency_normalised():
    y = np.repeat([0, 1, 2], COUNTS)
    sklearn_weights = compute_class_weight("balanced", classes=np.arange(3), y=y)
    got = compute_class_weights("balanced", COUNTS)
    assert got == pytest.approx(sklearn_weights / sklearn_weights.mean())
    assert got.mean() == pytest.approx(1.0)


def test_effective_number_formula():
    beta = 0.99
    raw = np.array([(1 - beta) / (1 - beta ** n) for n in COUNTS])
    assert compute_class_weights("effective", COUNTS, beta=beta) == pytest.approx(raw / raw.mean())


def test_dict_weights_by_label_default_one():
    got = compute_class_weights({"b": 4.0}, [3, 3, 3], classes=np.array(["a", "b", "c"]))
    assert got == pytest.approx(np.array([1.0, 4.0, 1.0]) / 2.0)


def test_none_is_all_ones():
    assert compute_class_weights(None, COUNTS).tolist() == [1.0, 1.0, 1.0]


def test_dict_with_unknown_label():
    with pytest.raises(ValueError, match="not in y"):
        compute_class_weights({"z": 2.0}, [3, 3], classes=np.array(["a", "b"]))


def test_balanced_with_empty_class():
    with pytest.raises(ValueError, match="no training sample"):
        compute_class_weights("balanced", [3, 0])


@pytest.mark.parametrize("value, max_epochs, expected", [
    (0, 10, 0), (7, 10, 7), (10, 10, 10), (0.75, 40, 30), (0.0, 10, 0), (0.5, 3, 2)])
def test_resolve_reweight_epoch(value, max_epochs, expected):
    assert resolve_reweight_epoch(value, max_epochs) == expected


@pytest.mark.parametrize("value, error", [
    (1.0, ValueError), (-1, ValueError), (1.5, ValueError),
    ("half", TypeError), (True, TypeError)])
def test_resolve_reweight_epoch_rejects(value, error):
    with pytest.raises(error, match="reweight_epoch"):
        resolve_reweight_epoch(value, 10)


@pytest.mark.parametrize("value, max_epochs, epoch", [(11, 10, 11), (10, 10, 10), (0.75, 2, 2)])
def test_reweight_epoch_at_or_past_the_last_epoch_warns(value, max_epochs, epoch):
    # Allowed for a fit that continues a loaded history, but usually a mistake; a fraction
    # that rounds to max_epochs (0.75 of 2 epochs) would never switch the weights on.
    with pytest.warns(UserWarning, match="stay off"):
        assert resolve_reweight_epoch(value, max_epochs) == epoch


@pytest.mark.parametrize("class_weight, warns", [("balanced", True), (None, False)])
def test_late_reweight_epoch_warns_only_with_class_weights(tabular, class_weight, warns):
    # With no class weights nothing switches on (the learning-rate drop warns for itself).
    clf = SRATClassifier(class_weight=class_weight, max_epochs=1, n_steps=1, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(*tabular)
    assert any("stay off" in str(w.message) for w in caught) == warns


@pytest.mark.parametrize("params, drop_warns", [
    (dict(lr_drop_epoch=5, reweight_epoch=1), True),  # said nothing: the lr never dropped
    (dict(lr_drop_epoch=0.99, reweight_epoch=1), True),  # a fraction rounding to the end
    (dict(class_weight=None, reweight_epoch=5), True),  # the drop follows the switch
    (dict(class_weight=None, reweight_epoch=5, reweight_lr_factor=1.0), False),  # no drop
    (dict(reweight_epoch=5), False),  # the switch's warning names that epoch already
    (dict(reweight_epoch=5, lr_drop_epoch=5), False),  # so it does when set (the CLI's)
    (dict(reweight_epoch=0, lr_drop_epoch=5), True),
    (dict(lr_drop_epoch=1, reweight_epoch=1), False),
])
def test_a_learning_rate_drop_past_the_fit_warns(tabular, params, drop_warns):
    clf = SRATClassifier(**params, max_epochs=2, n_steps=1, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(*tabular)
    assert any("The learning-rate drop (reweight_lr_factor) is at epoch" in str(w.message)
               for w in caught) == drop_warns


@pytest.mark.parametrize("value, reweight_epoch, expected", [
    (None, 0.75, 30), (None, 0, 30), (None, 10, 10), (5, 0.75, 5), (0.5, 0, 20)])
def test_resolve_lr_drop_epoch(value, reweight_epoch, expected):
    assert resolve_lr_drop_epoch(value, reweight_epoch, 40) == expected


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("params, match", [
    (dict(class_weight="balanced", max_epochs=1), "stay off"),
    (dict(class_weight=None, epsilon_warmup=4, max_epochs=2), "outlasts"),
    (dict(class_weight=None, max_epochs=1), "learning-rate drop"),
])
def test_schedule_warnings_come_once_per_fit(tabular, method, params, match):
    # The parameters are checked when the data are prepared and again when the net is
    # initialised; only the first check warns.
    clf = SRATClassifier(**params, n_steps=1, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        getattr(clf, method)(*tabular)
    assert sum(match in str(w.message) for w in caught) == 1


class Recorder(Callback):
    """Records, at the start of each epoch (after the reweighting callback), what the net uses."""

    def initialize(self):
        self.weights, self.lrs, self.optimizers, self.momentum_start, self.momentum_end = \
            [], [], [], [], []
        return self

    def _momentum(self, net):
        states = [net.optimizer_.state[p].get("momentum_buffer") for p in net.module_.parameters()]
        return [None if s is None else s.clone() for s in states]

    def on_epoch_begin(self, net, **kwargs):
        self.weights.append(net.criterion_.weight.clone())
        self.lrs.append([g["lr"] for g in net.optimizer_.param_groups])
        self.optimizers.append(id(net.optimizer_))
        self.momentum_start.append(self._momentum(net))

    def on_epoch_end(self, net, **kwargs):
        self.momentum_end.append(self._momentum(net))


@pytest.fixture
def recorded_fit(tabular, fast_params):
    def fit(**params):
        recorder = Recorder()
        kwargs = {**fast_params, "max_epochs": 4, "optimizer": torch.optim.SGD, "lr": 0.05,
                  "optimizer__momentum": 0.9, "callbacks": [recorder], **params}
        clf = SRATClassifier(**kwargs).fit(*tabular)
        return clf, recorder
    return fit


def test_weights_switch_on_at_reweight_epoch(recorded_fit):
    clf, rec = recorded_fit(reweight_epoch=2, class_weight="balanced")
    ones = torch.ones(3)
    assert torch.equal(rec.weights[0], ones) and torch.equal(rec.weights[1], ones)
    expected = torch.as_tensor(clf.class_weights_, dtype=torch.float32)
    assert torch.allclose(rec.weights[2], expected) and torch.allclose(rec.weights[3], expected)
    assert not torch.allclose(expected, ones)
    assert [bool(v) for v in clf.history[:, "class_weights_on"]] == [False, False, True, True]


def test_lr_drops_once_at_deferred_switch(recorded_fit):
    _, rec = recorded_fit(reweight_epoch=2, reweight_lr_factor=0.1)
    assert [lr[0] for lr in rec.lrs] == pytest.approx([0.05, 0.05, 0.005, 0.005])


def test_weights_from_the_start_still_drop_the_lr_where_deferred_methods_do(recorded_fit):
    # AT-RW shares the schedule: the drop at 3/4 of max_epochs, as reweight_epoch=0.75.
    clf, rec = recorded_fit(reweight_epoch=0)
    assert [lr[0] for lr in rec.lrs] == pytest.approx([0.05, 0.05, 0.05, 0.005])
    assert torch.allclose(rec.weights[0], torch.as_tensor(clf.class_weights_, dtype=torch.float32))


def test_lr_drop_epoch_moves_the_drop_only(recorded_fit):
    clf, rec = recorded_fit(reweight_epoch=2, lr_drop_epoch=1)
    assert [lr[0] for lr in rec.lrs] == pytest.approx([0.05, 0.005, 0.005, 0.005])
    assert [bool(v) for v in clf.history[:, "class_weights_on"]] == [False, False, True, True]


SCHEDULES = {
    "StepLR": dict(policy=StepLR, step_size=2, gamma=0.5),
    "MultiStepLR": dict(policy=MultiStepLR, milestones=[1, 4], gamma=0.5),
    "CosineAnnealingLR": dict(policy=CosineAnnealingLR, T_max=6),
    "LambdaLR": dict(policy=LambdaLR, lr_lambda=lambda epoch: 1 / (1 + epoch)),
}


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_the_drop_composes_with_schedulers(recorded_fit, schedule):
    def lrs(factor):
        recorder = Recorder()
        recorded_fit(max_epochs=6, reweight_epoch=3, reweight_lr_factor=factor,
                     callbacks=[recorder, LRScheduler(**SCHEDULES[schedule])])
        return np.array([lr[0] for lr in recorder.lrs])

    scheduled, dropped = lrs(1.0), lrs(0.1)
    np.testing.assert_allclose(dropped[:3], scheduled[:3], rtol=1e-6)
    np.testing.assert_allclose(dropped[3:], 0.1 * scheduled[3:], rtol=1e-6)


@pytest.mark.parametrize("scheduler", [
    dict(policy=OneCycleLR, max_lr=0.1, total_steps=1000),
    dict(policy=CyclicLR, base_lr=0.01, max_lr=0.1, step_every="batch"),
])
def test_cyclic_schedulers_that_would_undo_the_drop_are_refused(recorded_fit, scheduler):
    with pytest.raises(ValueError, match="reweight_lr_factor=1.0"):
        recorded_fit(callbacks=[LRScheduler(**scheduler)])


def test_switch_keeps_optimizer_and_momentum(recorded_fit):
    _, rec = recorded_fit(reweight_epoch=2)
    assert len(set(rec.optimizers)) == 1
    # The momentum buffers entering the switch epoch are those that left the epoch before it.
    before, at_switch = rec.momentum_end[1], rec.momentum_start[2]
    assert all(b is not None and torch.equal(b, s) for b, s in zip(before, at_switch))
    assert any(b.abs().sum() > 0 for b in before)


def test_class_counts_come_from_training_split_only(tabular, fast_params):
    X, y = tabular
    clf = SRATClassifier(**{**fast_params, "max_epochs": 1},
                         train_split=ValidSplit(4, stratified=True)).fit(X, y)
    full = np.bincount(y)
    assert clf.class_counts_.sum() == int(len(y) * 3 / 4)
    assert np.all(clf.class_counts_ < full)
    assert clf.class_weights_ == pytest.approx(compute_class_weights("balanced",
                                                                     clf.class_counts_))


class BatchLabels(Callback):
    """Collects the labels of every training batch."""

    def initialize(self):
        self.labels = []
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training:
            self.labels.append(np.asarray(batch[1]))


@pytest.fixture
def batch_labels(tabular, fast_params):
    def fit(**params):
        recorder = BatchLabels()
        SRATClassifier(**{**fast_params, "max_epochs": 4, "callbacks": [recorder],
                          **params}).fit(*tabular)
        return np.concatenate(recorder.labels)
    return fit


def test_balanced_sampler_evens_out_the_classes(batch_labels, tabular):
    seen = np.bincount(batch_labels(sampler="balanced", class_weight=None))
    assert seen.sum() == 4 * len(tabular[1])  # as many draws per epoch as samples
    assert np.all(np.abs(seen / seen.sum() - 1 / 3) < 0.05)


def test_without_sampler_every_sample_is_seen_once_per_epoch(batch_labels, tabular):
    seen = np.bincount(batch_labels())
    assert np.array_equal(seen, 4 * np.bincount(tabular[1]))


def test_balanced_sampler_draws_anew_each_epoch(tabular, fast_params):
    recorder = BatchLabels()
    SRATClassifier(**{**fast_params, "max_epochs": 2, "batch_size": -1, "callbacks": [recorder],
                      "sampler": "balanced", "class_weight": None}).fit(*tabular)
    first, second = recorder.labels
    assert not np.array_equal(first, second)


def test_balanced_sampler_is_reproducible(batch_labels):
    balanced = dict(sampler="balanced", class_weight=None)
    assert np.array_equal(batch_labels(**balanced), batch_labels(**balanced))


@pytest.mark.parametrize("params, named", [
    (dict(loss="bsl", class_weight=None), "loss='bsl' shifts the logits"),
    (dict(), "class_weight='balanced' weighs"),
    (dict(class_weight="effective", loss="bsl"), "loss='bsl'.* and class_weight='effective'"),
])
def test_a_balanced_sampler_with_a_correction_from_the_counts_warns(tabular, fast_params,
                                                                     params, named):
    # Balanced softmax with balanced batches predicted the rarest class for most rows.
    with pytest.warns(UserWarning, match=f"sampler='balanced'.*{named}.*corrected twice"):
        SRATClassifier(**fast_params, sampler="balanced", **params).fit(*tabular)


@pytest.mark.parametrize("params", [
    dict(sampler="balanced", class_weight=None),
    dict(sampler="balanced", class_weight=None, loss="ldam"),  # LDAM's margins, as LDAM-DRS
    dict(sampler="balanced", class_weight={0: 2.0}),  # weights given, weighing as given
    dict(loss="bsl", class_weight=None),
])
def test_one_correction_does_not_warn(tabular, fast_params, params):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        SRATClassifier(**fast_params, **params).fit(*tabular)


def test_unknown_sampler_is_rejected(tabular):
    with pytest.raises(ValueError, match="sampler"):
        SRATClassifier(sampler="smote").fit(*tabular)


def test_without_class_weights_the_table_claims_none_and_the_lr_still_drops(tabular,
                                                                            fast_params):
    X, y = tabular
    clf = SRATClassifier(**{**fast_params, "class_weight": None, "reweight_epoch": 1,
                            "lr": 0.01}).fit(X, y)
    assert clf.history[:, "class_weights_on"] == [False] * 3
    assert clf.optimizer_.param_groups[0]["lr"] == pytest.approx(0.01 * clf.reweight_lr_factor)
