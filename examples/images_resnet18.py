"""Images: SRAT with a CIFAR ResNet-18 from torchvision, on CIFAR-10 or a tiny stand-in.

With ``--data-root`` pointing at a folder that holds ``cifar-10-batches-py``
(or with ``--download``), this trains on CIFAR-10 made step-imbalanced (classes
5-9 keep 1/10), the setting of the paper. That needs a GPU: pass
``--device cuda``; on a CPU one epoch takes hours. Without CIFAR-10 it runs the
same code on a tiny generated stand-in (digits upscaled to 3x32x32) for one
epoch, which checks the pipeline end to end in about a minute on 2 CPU cores::

    python examples/images_resnet18.py                              # stand-in
    python examples/images_resnet18.py --data-root data --device cuda --epochs 100
"""

import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F

from srat_sklearn import SRATClassifier, robust_report
from srat_sklearn.datasets import load_cifar10, load_digits_images, make_imbalanced
from srat_sklearn.models import resnet18_cifar


def stand_in(n_per_class=8, seed=0):
    """Digits upscaled to 3x32x32 in [0, 1]: the shapes and value range of CIFAR-10."""
    X, y = load_digits_images()
    rng = np.random.default_rng(seed)
    rows = np.concatenate([rng.choice(np.flatnonzero(y == c), 2 * n_per_class, replace=False)
                           for c in range(10)])
    images = F.interpolate(torch.as_tensor(X[rows]), size=32, mode="bilinear")
    images = images.repeat(1, 3, 1, 1).numpy()
    half = len(rows) // 2
    order = rng.permutation(len(rows))
    images, labels = images[order], y[rows][order]
    return images[:half], labels[:half], images[half:], labels[half:]


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data-root", default=None, help="folder with cifar-10-batches-py")
parser.add_argument("--download", action="store_true", help="download CIFAR-10 (internet)")
parser.add_argument("--device", default="cpu")
parser.add_argument("--epochs", type=int, default=None,
                    help="default: 100 on CIFAR-10, 1 on the stand-in")
args = parser.parse_args()

cifar = args.data_root is not None and (
    args.download or os.path.isdir(os.path.join(args.data_root, "cifar-10-batches-py")))
if cifar:
    X_train, y_train = load_cifar10(args.data_root, train=True, download=args.download)
    X_test, y_test = load_cifar10(args.data_root, train=False)
    epochs, batch_size, n_steps = args.epochs or 100, 128, 10
else:
    print("CIFAR-10 not found: running on a tiny stand-in (pass --data-root for the real data)")
    X_train, y_train, X_test, y_test = stand_in()
    epochs, batch_size, n_steps = args.epochs or 1, 16, 2
X_train, y_train = make_imbalanced(X_train, y_train, ratio=10, under_represented=[5, 6, 7, 8, 9],
                                   random_state=0)

clf = SRATClassifier(
    module=resnet18_cifar, module__n_classes=10,
    epsilon=8 / 255, step_size=2 / 255, n_steps=n_steps, bounds=(0.0, 1.0),
    lambda_sep=1.0, class_weight="balanced", reweight_epoch=0.8,
    optimizer=torch.optim.SGD, lr=0.1, optimizer__momentum=0.9, optimizer__weight_decay=5e-4,
    max_epochs=epochs, batch_size=batch_size, device=args.device, random_state=0,
)
clf.fit(X_train, y_train)
report = robust_report(clf, X_test, y_test, under_represented=[5, 6, 7, 8, 9],
                       n_steps=20 if cifar else 2)
print(report.to_markdown(per_class=False))
