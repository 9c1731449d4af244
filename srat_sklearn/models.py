"""Default networks and the capture of penultimate features.

``MLP`` is the default module for 2-D (tabular) input, ``SmallCNN`` for 4-D
(image) input; ``resnet18_cifar`` is torchvision's ResNet-18 with the CIFAR stem.
``capture_features`` records the feature vector that the
separation loss works on, from the same forward pass as the logits.
"""

import numbers
from contextlib import contextmanager

from torch import nn
from torchvision.models import resnet18

from ._torch import first_output
from ._validation import check_int, check_real

__all__ = ["MLP", "SmallCNN", "resnet18_cifar", "default_module", "find_feature_layer",
           "capture_features", "record_features", "first_output"]


class MLP(nn.Module):
    """Fully connected ReLU network returning logits.

    Parameters
    ----------
    n_features : int
    n_classes : int
    hidden_units : tuple of int, default=(128, 128)
    dropout : float, default=0.0

    Examples
    --------
    >>> import torch
    >>> MLP(4, 3)(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
    """

    def __init__(self, n_features, n_classes, hidden_units=(128, 128), dropout=0.0,
                 layer_norm=True):
        super().__init__()
        hidden_units = _check_widths(hidden_units, "hidden_units", length=None)
        check_real(dropout, "dropout", min_val=0, max_val=1, include_boundaries="left")
        layers, width = [], n_features
        for units in hidden_units:
            layers += [nn.Linear(width, units), *_norm(units, layer_norm), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = units
        self.features = nn.Sequential(nn.Flatten(), *layers)
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, X):
        return self.classifier(self.features(X))


class SmallCNN(nn.Module):
    """Two 3x3 convolutions, a 2x2 max-pool and two linear layers, returning logits.

    The second convolution's ReLU comes after the max-pool: since ReLU is
    monotone, ``relu(maxpool(z)) == maxpool(relu(z))``, outputs and input
    gradients alike, and the ReLU runs on a quarter of the values. Images
    larger than 8x8 are average-pooled to 4x4 after the max-pool, so that the
    linear layer stays small.

    Parameters
    ----------
    in_channels : int
    n_classes : int
    image_size : tuple (height, width)
    channels : tuple of two ints, default=(32, 64)
    hidden_units : int, default=128

    Examples
    --------
    >>> import torch
    >>> SmallCNN(1, 10, (8, 8))(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """

    def __init__(self, in_channels, n_classes, image_size, channels=(32, 64), hidden_units=128,
                 layer_norm=True):
        super().__init__()
        channels = _check_widths(channels, "channels", length=2)
        hidden_units = check_int(hidden_units, "hidden_units", min_val=1)
        height, width = image_size
        max_pooled = ((height + 1) // 2, (width + 1) // 2)
        pooled = (min(max_pooled[0], 4), min(max_pooled[1], 4))
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, channels[0], 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels[0], channels[1], 3, padding=1),
            nn.MaxPool2d(2, ceil_mode=True), nn.ReLU(),
            # Identity when it would not change the size: a no-op pooling still costs a
            # forward and a backward kernel on every pass (about a quarter of an 8x8 step).
            nn.AdaptiveAvgPool2d(pooled) if pooled != max_pooled else nn.Identity(),
            nn.Flatten(),
            nn.Linear(channels[1] * pooled[0] * pooled[1], hidden_units),
            *_norm(hidden_units, layer_norm), nn.ReLU(),
        )
        self.classifier = nn.Linear(hidden_units, n_classes)

    def forward(self, X):
        return self.classifier(self.features(X))


def _check_widths(widths, name, length):
    if (not isinstance(widths, (tuple, list)) or (length is not None and len(widths) != length)
            or not all(isinstance(w, numbers.Integral) and not isinstance(w, bool) and w > 0
                       for w in widths)):
        what = f"a tuple of {length} positive ints" if length else "a tuple of positive ints"
        raise ValueError(f"{name} must be {what}, got {widths!r}.")
    return tuple(int(w) for w in widths)


def resnet18_cifar(n_classes=10, in_channels=3):
    """torchvision's ResNet-18 with the CIFAR stem: a 3x3 stride-1 first convolution, no max-pool.

    The ImageNet stem (7x7 stride 2 and a max-pool) shrinks a 32x32 image to
    8x8 before the first block; the usual recipe for CIFAR-10 adversarial
    training (Madry et al., Rice et al.) keeps the full resolution. The last
    layer is ``fc``, whose input (512 features) is what the separation loss
    uses by default. Pass it as ``SRATClassifier(module=resnet18_cifar,
    module__n_classes=10)``; it needs a GPU for real data sets.

    Examples
    --------
    >>> import torch
    >>> resnet18_cifar(10)(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """
    n_classes = check_int(n_classes, "n_classes", min_val=2)
    in_channels = check_int(in_channels, "in_channels", min_val=1)
    model = resnet18(num_classes=n_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def _norm(units, layer_norm):
    return [nn.LayerNorm(units)] if layer_norm else []


def default_module(sample_shape, n_classes, **kwargs):
    """The default network for samples of ``sample_shape``: an MLP for vectors, a CNN for images.

    Examples
    --------
    >>> type(default_module((1, 8, 8), 10)).__name__
    'SmallCNN'
    >>> type(default_module((30,), 2)).__name__
    'MLP'
    """
    if len(sample_shape) == 1:
        return MLP(sample_shape[0], n_classes, **kwargs)
    if len(sample_shape) == 3:
        return SmallCNN(sample_shape[0], n_classes, sample_shape[1:], **kwargs)
    raise ValueError(
        f"The default modules take samples of shape (n_features,) or (channels, height, width); "
        f"got samples of shape {tuple(sample_shape)}. Pass a module or an input_shape.")


def find_feature_layer(module, feature_layer=None):
    """The submodule whose input (``feature_layer=None``) or output is the feature vector.

    Parameters
    ----------
    module : torch.nn.Module
    feature_layer : str or None
        ``None`` picks the module's last ``nn.Linear`` (the classifier), whose
        input is the penultimate feature vector; a string names a submodule
        (as in ``module.named_modules()``) whose output is the feature vector.

    Returns
    -------
    (layer, use_input) : (torch.nn.Module, bool)
    """
    if feature_layer is None:
        linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(
                f"{type(module).__name__} has no nn.Linear layer whose input could serve as the "
                "features of the separation loss; name a submodule with feature_layer, "
                "or set lambda_sep=0.")
        return linears[-1], True
    try:
        return module.get_submodule(feature_layer), False
    except AttributeError:
        names = [name for name, _ in module.named_modules() if name]
        raise ValueError(
            f"feature_layer={feature_layer!r} is not a submodule of {type(module).__name__}; "
            f"its submodules are {names}.") from None


@contextmanager
def capture_features(module, feature_layer=None):
    """Record the feature vectors computed by forward passes of ``module``.

    Yields a list to which each forward pass appends the features of its
    batch, flattened to (n, d), with their autograd graph, so a loss on them
    needs no second forward pass.

    Examples
    --------
    >>> import torch
    >>> net = MLP(4, 3, hidden_units=(5,))
    >>> with capture_features(net) as captured:
    ...     logits = net(torch.zeros(2, 4))
    >>> captured[-1].shape
    torch.Size([2, 5])
    """
    with record_features(*find_feature_layer(module, feature_layer)) as captured:
        yield captured


@contextmanager
def record_features(layer, use_input):
    """:func:`capture_features` for a layer already found by :func:`find_feature_layer`."""
    captured = []
    if use_input:
        handle = layer.register_forward_pre_hook(
            lambda _, args: captured.append(args[0].flatten(1)))
    else:
        handle = layer.register_forward_hook(
            lambda _, args, output: captured.append(first_output(output).flatten(1)))
    try:
        yield captured
    finally:
        handle.remove()
