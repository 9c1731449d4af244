"""The catastrophic-overfitting guard of fast adversarial training."""

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from srat_sklearn import SRATClassifier
from srat_sklearn.callbacks import CatastrophicOverfittingGuard


class Sabotage(Callback):
    """Wrecks the network at the end of one epoch, as catastrophic overfitting would.

    Every prediction becomes the rarest class, 10% of the data.
    """

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            with torch.no_grad():
                for p in net.module_.parameters():
                    p.zero_()
                net.module_.classifier.bias[2] = 1.0


class Snapshots(Callback):
    """Keeps the module's parameters after every epoch."""

    def initialize(self):
        self.states = {}
        return self

    def on_epoch_end(self, net, **kwargs):
        self.states[len(net.history)] = {k: v.clone() for k, v in
                                         net.module_.state_dict().items()}


@pytest.fixture
def fast_at_params(fast_params):
    return {**fast_params, "max_epochs": 6, "n_steps": 1, "step_size": 0.125,
            "module__hidden_units": (32,)}


def guarded_fit(tabular, params, *callbacks, **guard):
    X, y = tabular
    clf = SRATClassifier(callbacks=[*callbacks, ("guard", CatastrophicOverfittingGuard(
        n_samples=64, n_steps=5, **guard))], **params)
    return clf.fit(X, y)


def test_guard_records_a_robust_check_every_epoch(tabular, fast_at_params):
    clf = guarded_fit(tabular, fast_at_params)
    checks = clf.history[:, "check_robust_acc"]
    assert len(checks) == 6 and all(0 <= c <= 1 for c in checks)
    guard = dict(clf.callbacks_)["guard"]
    assert guard.best_score_ == max(checks)
    assert guard.collapsed_epoch_ is None and guard.restored_epoch_ is None


def test_guard_rolls_back_to_the_best_epoch_and_stops(tabular, fast_at_params):
    snapshots = Snapshots()
    clf = guarded_fit(tabular, fast_at_params, ("snapshots", snapshots),
                      ("sabotage", Sabotage(epoch=4)))
    guard = dict(clf.callbacks_)["guard"]
    assert len(clf.history) == 4  # stopped at the collapse
    assert guard.collapsed_epoch_ == 4 and clf.history[-1, "catastrophic_overfitting"]
    assert guard.restored_epoch_ == guard.best_epoch_ < 4
    for name, value in clf.module_.state_dict().items():
        torch.testing.assert_close(value, snapshots.states[guard.best_epoch_][name])
    X, y = tabular
    assert np.mean(clf.predict(X) == y) > 0.5  # the restored model works


def test_guard_can_stop_without_rolling_back(tabular, fast_at_params):
    clf = guarded_fit(tabular, fast_at_params, ("sabotage", Sabotage(epoch=3)),
                      on_collapse="stop")
    assert len(clf.history) == 3
    assert all(bool((p == 0).all()) for p in clf.module_.features.parameters())


def test_guard_watches_each_fit_anew(tabular, fast_at_params):
    clf = guarded_fit(tabular, fast_at_params, ("sabotage", Sabotage(epoch=3)))
    assert len(clf.history) == 3
    clf.set_params(callbacks__sabotage__epoch=100).fit(*tabular)
    assert len(clf.history) == 6


@pytest.mark.parametrize("params, match", [
    ({"max_drop": 0}, "max_drop"),
    ({"n_steps": 0}, "n_steps"),
    ({"n_samples": 2.5}, "n_samples"),
    ({"on_collapse": "ignore"}, "on_collapse"),
])
def test_guard_rejects_bad_parameters_before_training(tabular, fast_at_params, params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        guarded_fit(tabular, {**fast_at_params, "max_epochs": 1}, **params)
