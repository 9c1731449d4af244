"""The networks: defaults, the CIFAR ResNet-18, and their parameter checks."""

import numpy as np
import pytest
import torch
from torch import nn

from srat_sklearn import SRATClassifier
from srat_sklearn.models import MLP, SmallCNN, capture_features, resnet18_cifar


@pytest.mark.parametrize("image_size, pooling", [
    ((8, 8), nn.Identity), ((7, 8), nn.Identity), ((8, 10), nn.AdaptiveAvgPool2d),
    ((28, 28), nn.AdaptiveAvgPool2d)])
def test_small_cnn_pools_only_when_it_shrinks(image_size, pooling):
    model = SmallCNN(1, 3, image_size)
    assert isinstance(model.features[5], pooling)
    assert model(torch.zeros(2, 1, *image_size)).shape == (2, 3)


@pytest.mark.parametrize("image_size", [(8, 8), (7, 8), (28, 28)])
def test_small_cnn_pools_before_its_relu_as_the_textbook_order_after(image_size):
    # ReLU is monotone, so it commutes with the max-pool: pooling first runs the ReLU on a
    # quarter of the values and computes the same logits and input gradients.
    model = SmallCNN(1, 10, image_size).eval()
    conv, relu, conv2, pool, relu2, *rest = model.features
    assert isinstance(pool, nn.MaxPool2d) and isinstance(relu2, nn.ReLU)
    textbook = nn.Sequential(conv, relu, conv2, relu2, pool, *rest, model.classifier)
    X = torch.randn(32, 1, *image_size)
    outputs, gradients = [], []
    for network in (model, textbook):
        x = X.clone().requires_grad_(True)
        outputs.append(network(x))
        gradients.append(torch.autograd.grad(outputs[-1].logsumexp(dim=1).sum(), x)[0])
    assert torch.equal(*outputs) and torch.equal(*gradients)


def test_resnet18_cifar_keeps_full_resolution():
    model = resnet18_cifar(10)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    with capture_features(model, "layer1") as captured:
        model.eval()(torch.zeros(1, 3, 32, 32))
    assert captured[-1].shape[1] == 64 * 32 * 32  # no downsampling before layer1


def test_resnet18_cifar_penultimate_features():
    model = resnet18_cifar(4, in_channels=1).eval()
    with capture_features(model, None) as captured:
        logits = model(torch.zeros(2, 1, 32, 32))
    assert logits.shape == (2, 4) and captured[-1].shape == (2, 512)


def test_resnet18_cifar_trains_with_separation_loss():
    rng = np.random.default_rng(0)
    X = rng.random((16, 3, 32, 32), dtype=np.float32)
    y = np.repeat([0, 1], 8)
    clf = SRATClassifier(module=resnet18_cifar, module__n_classes=2, max_epochs=1, n_steps=1,
                         batch_size=8, lambda_sep=1.0, verbose=0, random_state=0).fit(X, y)
    assert np.isfinite(clf.history[-1, "train_loss"])


@pytest.mark.parametrize("make, match", [
    (lambda: MLP(4, 2, hidden_units=(0,)), "hidden_units"),
    (lambda: MLP(4, 2, hidden_units=16), "hidden_units"),
    (lambda: MLP(4, 2, dropout=1.0), "dropout"),
    (lambda: SmallCNN(1, 2, (8, 8), channels=(4,)), "channels"),
    (lambda: SmallCNN(1, 2, (8, 8), hidden_units=0), "hidden_units"),
    (lambda: resnet18_cifar(1), "n_classes"),
])
def test_bad_network_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_network_parameter_through_the_estimator(tabular):
    with pytest.raises(ValueError, match="hidden_units"):
        SRATClassifier(module__hidden_units=(16, -1), verbose=0).fit(*tabular)
