"""Interrupted training loses nothing: skorch's Checkpoint and LoadInitState, resumed exactly.

The estimator reseeds torch from ``(random_state, epoch)`` at every epoch and
keeps the reweighting state in the optimizer's parameter groups and the
criterion's buffers, all of which a skorch checkpoint holds. A fit resumed
after epoch k therefore ends where a fit that ran straight through ends.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback, Checkpoint, LoadInitState
from skorch.history import History

from srat_sklearn import NonFiniteLossError, SRATClassifier

# Resumed fits run fewer epochs than reweight_epoch on purpose: their history continues.
pytestmark = pytest.mark.filterwarnings("ignore:reweight_epoch=3 is past")

TOTAL_EPOCHS = 6
# Weights switch on (and lr drops) at epoch 3, after the interruption at epoch 2 or 3;
# dropout and momentum make the RNG and the optimizer state matter.
# Plain literals, so that the killed process below gets them through repr().
PARAMS = dict(epsilon=0.1, n_steps=2, batch_size=32, random_state=0, verbose=0,
              module__hidden_units=(16,), module__dropout=0.2, reweight_epoch=3,
              lr=0.05, optimizer__momentum=0.9)


def make(max_epochs, callbacks=None):
    return SRATClassifier(max_epochs=max_epochs, callbacks=callbacks,
                          optimizer=torch.optim.SGD, **PARAMS)


def epochs_saved(dirname):
    return len(History.from_file(os.path.join(dirname, "history.json")))


class InterruptAt(Callback):
    """Raise ``exception`` at the given (1-based) epoch and batch."""

    def __init__(self, epoch, batch, exception=KeyboardInterrupt):
        self.epoch, self.batch, self.exception = epoch, batch, exception

    def on_batch_end(self, net, **kwargs):
        if len(net.history) == self.epoch and len(net.history[-1]["batches"]) == self.batch:
            raise self.exception()


@pytest.fixture(scope="module")
def straight_through(tabular):
    X, y = tabular
    return X, y, make(TOTAL_EPOCHS).fit(X, y)


def resume(X, y, dirname):
    """A new estimator that loads the checkpoint and runs the epochs that are left."""
    checkpoint = Checkpoint(dirname=dirname, monitor=None)
    clf = make(TOTAL_EPOCHS - epochs_saved(dirname), [checkpoint, LoadInitState(checkpoint)])
    return clf.fit(X, y)


def assert_same_parameters(first, second):
    for (name, a), b in zip(first.module_.named_parameters(), second.module_.parameters()):
        assert torch.allclose(a, b, atol=1e-6, rtol=0), name


def test_keyboard_interrupt_keeps_a_usable_model_and_the_checkpoint(straight_through, tmp_path):
    X, y, _ = straight_through
    clf = make(TOTAL_EPOCHS, [Checkpoint(dirname=tmp_path, monitor=None),
                              InterruptAt(epoch=3, batch=4)])
    clf.fit(X, y)  # skorch ends the fit on KeyboardInterrupt
    assert clf.predict(X).shape == (len(X),)
    assert epochs_saved(tmp_path) == 2  # the interrupted epoch 3 was not checkpointed


def test_resume_after_keyboard_interrupt_matches_straight_through(straight_through, tmp_path):
    X, y, full = straight_through
    make(TOTAL_EPOCHS, [Checkpoint(dirname=tmp_path, monitor=None),
                        InterruptAt(epoch=3, batch=4)]).fit(X, y)
    resumed = resume(X, y, tmp_path)
    assert len(resumed.history) == TOTAL_EPOCHS
    assert_same_parameters(full, resumed)
    assert resumed.optimizer_.param_groups[0]["lr"] == pytest.approx(0.005)
    assert resumed.history[:, "class_weights_on"] == full.history[:, "class_weights_on"]


def test_resume_after_the_process_is_killed(straight_through, tmp_path):
    X, y, full = straight_through
    script = textwrap.dedent(f"""
        import os, signal, torch
        from sklearn.datasets import make_classification
        from skorch.callbacks import Callback, Checkpoint
        from srat_sklearn import SRATClassifier

        class Kill(Callback):
            def on_batch_end(self, net, **kwargs):
                if len(net.history) == 4 and len(net.history[-1]["batches"]) == 2:
                    os.kill(os.getpid(), signal.SIGKILL)

        X, y = make_classification(n_samples=240, n_features=8, n_informative=5, n_classes=3,
                                   weights=[0.6, 0.3, 0.1], random_state=0)
        SRATClassifier(max_epochs={TOTAL_EPOCHS}, optimizer=torch.optim.SGD, callbacks=[
            Checkpoint(dirname={str(tmp_path)!r}, monitor=None), Kill()], **{PARAMS!r}).fit(X, y)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert result.returncode == -9, result.stderr  # SIGKILL: no cleanup ran
    assert epochs_saved(tmp_path) == 3
    resumed = resume(X, y, tmp_path)
    assert len(resumed.history) == TOTAL_EPOCHS
    assert_same_parameters(full, resumed)


def test_non_finite_loss_keeps_the_last_good_checkpoint(straight_through, tmp_path):
    X, y, _ = straight_through
    clf = make(TOTAL_EPOCHS, [Checkpoint(dirname=tmp_path, monitor=None)])

    def poisoned_loss(y_pred, y_true, X=None, training=False):
        if training and len(clf.history) == 3:
            y_pred = y_pred * float("nan")
        return SRATClassifier.get_loss(clf, y_pred, y_true, X=X, training=training)

    clf.get_loss = poisoned_loss
    with pytest.raises(NonFiniteLossError, match="epoch 3, batch 1"):
        clf.fit(X, y)
    assert epochs_saved(tmp_path) == 2
    restored = make(1).fit(X, y)
    restored.load_params(checkpoint=Checkpoint(dirname=tmp_path, monitor=None))
    assert all(torch.isfinite(p).all() for p in restored.module_.parameters())
    assert np.isfinite(restored.predict_proba(X)).all()


def test_warm_start_continues_training(straight_through):
    X, y, _ = straight_through
    clf = make(2).set_params(warm_start=True).fit(X, y)
    module = clf.module_
    clf.fit(X, y)
    assert len(clf.history) == 4
    assert clf.module_ is module  # not re-initialised


def test_fit_without_warm_start_starts_over(straight_through):
    X, y, _ = straight_through
    clf = make(2).fit(X, y)
    module = clf.module_
    clf.fit(X, y)
    assert len(clf.history) == 2
    assert clf.module_ is not module


def test_partial_fit_adds_epochs(straight_through):
    X, y, _ = straight_through
    clf = make(2)
    clf.partial_fit(X, y)
    clf.partial_fit(X, y)
    assert len(clf.history) == 4
    assert clf.history[:, "class_weights_on"] == [False, False, False, True]
