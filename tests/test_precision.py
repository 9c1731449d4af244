"""Opt-in mixed precision (bfloat16 autocast, tested on the CPU) and channels-last images."""

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from srat_sklearn import SRATClassifier, robust_accuracy_score
from srat_sklearn.methods import DIGITS_RECIPE


class ForwardRecorder(Callback):
    """Records the output dtype and input memory order of every forward pass in fit."""

    def initialize(self):
        self.output_dtypes, self.inputs_channels_last = set(), set()
        return self

    def on_train_begin(self, net, **kwargs):
        net.module_.register_forward_hook(
            lambda m, args, out: self.output_dtypes.add(out.dtype))
        net.module_.register_forward_pre_hook(lambda m, args: self.inputs_channels_last.add(
            args[0].is_contiguous(memory_format=torch.channels_last)
            and not args[0].is_contiguous()))


def fit_briefly(digits_split, **params):
    """The digits recipe for 6 epochs (weights from epoch 4), plus ``params``.

    Short: bfloat16 runs about 8 times slower than float32 on CPUs without native bf16
    instructions. The comparisons below are with float32 trained the same way.
    """
    X_train, _, y_train, _ = digits_split
    recorder = ForwardRecorder()
    clf = SRATClassifier(**DIGITS_RECIPE, max_epochs=6, reweight_epoch=4, random_state=0,
                         verbose=0, callbacks=[("recorder", recorder)], **params)
    clf.fit(X_train, y_train)
    return clf, dict(clf.callbacks_)["recorder"]


@pytest.fixture(scope="module")
def float32_digits(digits_split):
    return fit_briefly(digits_split, channels_last=False)[0]  # the plain reference


@pytest.fixture(scope="module")
def bf16_digits(digits_split):
    return fit_briefly(digits_split, mixed_precision="bf16")


@pytest.fixture(scope="module")
def channels_last_digits(digits_split):
    return fit_briefly(digits_split, channels_last=True)


def accuracies(clf, digits_split):
    _, X_test, _, y_test = digits_split
    return (float(np.mean(clf.predict(X_test) == y_test)),
            robust_accuracy_score(clf, X_test, y_test, step_size=0.05))


def test_bf16_forward_passes_run_in_bfloat16(bf16_digits):
    _, recorder = bf16_digits
    assert recorder.output_dtypes == {torch.bfloat16}


def test_bf16_outputs_and_parameters_stay_float32(bf16_digits, digits_split):
    clf, _ = bf16_digits
    assert clf.predict_proba(digits_split[1][:5]).dtype == np.float32
    assert all(p.dtype == torch.float32 for p in clf.module_.parameters())


def test_bf16_trains_to_comparable_accuracy(bf16_digits, float32_digits, digits_split):
    clean, robust = accuracies(bf16_digits[0], digits_split)
    clean_32, robust_32 = accuracies(float32_digits, digits_split)
    assert abs(clean - clean_32) < 0.05 and abs(robust - robust_32) < 0.05


def test_channels_last_weights(channels_last_digits):
    clf, _ = channels_last_digits
    convs = [m for m in clf.module_.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last)
                         for c in convs)
    # (a 1-channel kernel is both; the 32-channel one tells the orders apart)
    assert not convs[1].weight.is_contiguous()


def test_channels_last_batches(digits_split, fast_params):
    # Three channels, so that the two memory orders differ.
    X_train, _, y_train, _ = digits_split
    X_rgb = np.repeat(X_train[:128], 3, axis=1)
    clf = SRATClassifier(channels_last=True, callbacks=[("recorder", ForwardRecorder())],
                         **{**fast_params, "max_epochs": 1, "module__hidden_units": 16,
                            "module__channels": (8, 16)}).fit(X_rgb, y_train[:128])
    assert dict(clf.callbacks_)["recorder"].inputs_channels_last == {True}


def test_channels_last_trains_to_comparable_accuracy(channels_last_digits, float32_digits,
                                                     digits_split):
    clean, robust = accuracies(channels_last_digits[0], digits_split)
    clean_32, robust_32 = accuracies(float32_digits, digits_split)
    assert abs(clean - clean_32) < 0.05 and abs(robust - robust_32) < 0.05


@pytest.mark.parametrize("channels_last, expected", [("auto", True), (False, False)])
def test_auto_runs_convolutions_channels_last_on_the_cpu(digits_split, fast_params,
                                                         channels_last, expected):
    X_train, _, y_train, _ = digits_split
    clf = SRATClassifier(channels_last=channels_last, **{**fast_params, "max_epochs": 1,
                                                         "module__hidden_units": 16})
    clf.fit(X_train[:64], y_train[:64])
    second_conv = [m for m in clf.module_.modules() if isinstance(m, torch.nn.Conv2d)][1]
    assert clf.channels_last_ is expected
    assert second_conv.weight.is_contiguous(memory_format=torch.channels_last) is expected


@pytest.mark.parametrize("device, mixed_precision, expected", [
    ("cpu", None, True), ("cuda", "bf16", True), ("cuda", None, False)])
def test_auto_choice_follows_device_and_precision(device, mixed_precision, expected):
    # Resolved without fitting, so that the GPU cases are checked on any machine.
    clf = SRATClassifier(device=device, mixed_precision=mixed_precision)
    assert clf._resolve_channels_last(torch.nn.Conv2d(3, 8, 3)) is expected


def test_auto_keeps_networks_without_convolutions_as_they_are(tabular, fast_params):
    clf = SRATClassifier(**{**fast_params, "max_epochs": 1}).fit(*tabular)
    assert clf.channels_last_ is False


def test_channels_last_leaves_tabular_data_alone(tabular, fast_params):
    X, y = tabular
    clf = SRATClassifier(channels_last=True, **fast_params).fit(X, y)
    assert clf.predict(X).shape == (len(X),)


@pytest.mark.parametrize("params, error, match", [
    ({"mixed_precision": "fp8"}, ValueError, "mixed_precision"),
    ({"mixed_precision": True}, (ValueError, TypeError), "mixed_precision"),
    ({"channels_last": "yes"}, TypeError, "channels_last"),
])
def test_precision_options_are_checked_before_training(tabular, params, error, match):
    with pytest.raises(error, match=match):
        SRATClassifier(max_epochs=1, **params).fit(*tabular)

