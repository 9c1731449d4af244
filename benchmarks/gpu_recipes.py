"""GPU-scale recipes: SRAT, AT-DRW and AT on step-imbalanced CIFAR-10 and SVHN.

    python benchmarks/gpu_recipes.py cifar10-step10 --method srat --data-root data --download \\
        --device cuda
    python benchmarks/gpu_recipes.py --list
    python benchmarks/gpu_recipes.py cifar10-step100 --stand-in     # tiny fake data, CPU

The recipe (Wang et al.'s setting, with the usual adversarial-training schedule): the
training set made step-imbalanced (classes 5-9 keep 1/ratio), random crop (padding 4) and,
for CIFAR-10 only, horizontal flips; ResNet-18 with the CIFAR stem
(``srat_sklearn.models.resnet18_cifar``); L-inf PGD-10 with eps 8/255 and step 2/255 for
training; SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch 128, 100 epochs, lr x0.1 at
epochs 75 and 90, class weights (deferred methods) from epoch 75. Evaluation on the
balanced test set: PGD-20, and the worst case of PGD, APGD-CE and APGD-DLR. Results go to
``--output`` (report.md, report.json, accuracy.png, params.pt).

Run time: not measured here (this project's machines have no GPU); the script prints the
seconds of every epoch. ``--count-flops`` gives the expected time per epoch from the
operation count: it runs one real training step of the recipe (attack, separation loss and
update) under ``torch.utils.flop_counter.FlopCounterMode``, scales it to the recipe's
training set, and divides by a sustained throughput (``--tflops``, default 15, what an
A100-class GPU sustains on ResNet-18 in float32/TF32; about 2x that with ``--amp``-style
bf16). Its output is in ``docs/user_guide.md``.

``--stand-in`` writes a few random images in the data set's own file format to a temporary
folder and trains one epoch on them, so that the whole code path runs on a CPU in seconds.
It bypasses torchvision's MD5 check of the files, which only the real files pass.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback, LRScheduler
from torch.optim.lr_scheduler import MultiStepLR
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry
from torchvision import transforms

from srat_sklearn import SRATClassifier, robust_report
from srat_sklearn.datasets import load_cifar10, load_svhn, make_imbalanced
from srat_sklearn.methods import PAPER_METHODS
from srat_sklearn.models import resnet18_cifar
from srat_sklearn.report import write_report

UNDER = [5, 6, 7, 8, 9]
RECIPES = {f"{data}-step{ratio}": {"data": data, "ratio": ratio}
           for data in ("cifar10", "svhn") for ratio in (10, 100)}
TRAINING = dict(epsilon=8 / 255, step_size=2 / 255, n_steps=10, bounds=(0.0, 1.0),
                optimizer=torch.optim.SGD, lr=0.1, optimizer__momentum=0.9,
                optimizer__weight_decay=5e-4, batch_size=128, max_epochs=100,
                reweight_epoch=75, reweight_lr_factor=1.0)
LR_MILESTONES = (75, 90)
METHODS = {"at": "AT", "at-drw": "AT-DRW", "srat": "SRAT-CE"}


def train_transform(data):
    steps = [transforms.RandomCrop(32, padding=4)]
    if data == "cifar10":
        steps.append(transforms.RandomHorizontalFlip())  # digits (SVHN) must not be mirrored
    return transforms.Compose(steps + [transforms.ToTensor()])


def load(data, root, download):
    """The training set as a lazily augmented Dataset, the test set as arrays."""
    if data == "cifar10":
        train = load_cifar10(root, train=True, download=download, as_dataset=True,
                             transform=train_transform(data))
        X_test, y_test = load_cifar10(root, train=False, download=download)
    else:
        train = load_svhn(root, split="train", download=download, as_dataset=True,
                          transform=train_transform(data))
        X_test, y_test = load_svhn(root, split="test", download=download)
    return train, X_test, y_test


def write_stand_in(data, root, n_train=30, n_test=10, seed=0):
    """A few random images in CIFAR-10's or SVHN's file format; returns the root."""
    import pickle

    import scipy.io
    import torchvision.datasets.cifar
    import torchvision.datasets.svhn

    rng = np.random.default_rng(seed)
    root = Path(root)
    if data == "cifar10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
            n = n_test if name == "test_batch" else n_train // 5
            images = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
            with open(folder / name, "wb") as f:
                pickle.dump({"data": images, "labels": [(i + j) % 10 for j in range(n)]}, f)
        with open(folder / "batches.meta", "wb") as f:
            pickle.dump({"label_names": [str(c) for c in range(10)]}, f)
    else:
        for split, n in (("train", n_train), ("test", n_test)):
            images = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
            labels = (np.arange(n) % 10 + 1).reshape(-1, 1)  # SVHN writes digit 0 as 10
            scipy.io.savemat(root / f"{split}_32x32.mat", {"X": images, "y": labels})
    # Only the real files match torchvision's MD5 sums.
    exists = lambda path, md5=None: Path(path).is_file()  # noqa: E731
    torchvision.datasets.cifar.check_integrity = exists
    torchvision.datasets.svhn.check_integrity = exists
    return root


# Training images per class: CIFAR-10 has 5,000 of each; SVHN's train split as torchvision
# labels it (0-9).
TRAIN_COUNTS = {"cifar10": [5000] * 10,
                "svhn": [4948, 13861, 10585, 8497, 7458, 6882, 5727, 5595, 5045, 4659]}


def n_training_images(recipe):
    counts = TRAIN_COUNTS[recipe["data"]]
    return sum(n if c not in UNDER else n // recipe["ratio"] for c, n in enumerate(counts))


class OperationCounter(TorchDispatchMode):
    """Sums torch's FLOP formulas (matmuls and convolutions, forward and backward).

    ``torch.utils.flop_counter.FlopCounterMode`` cannot be used: its module tracker
    refuses ``torch.autograd.grad`` with respect to the input, which is what the attack does.
    """

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def count_flops(recipe, method, tflops, batch_size=10):
    """Floating-point operations of one epoch, from one real training step."""
    params = {**TRAINING, **PAPER_METHODS[METHODS[method]], "reweight_epoch": 0,
              "max_epochs": 1, "batch_size": batch_size}
    clf = SRATClassifier(module=resnet18_cifar, module__n_classes=10, classes=list(range(10)),
                         device="cpu", random_state=0, verbose=0, **params)
    X = np.random.default_rng(0).random((batch_size, 3, 32, 32), dtype=np.float32)
    y = np.arange(batch_size) % 10
    with OperationCounter() as counter:  # a one-batch fit: one training step
        clf.fit(X, y)
    per_image = counter.total / batch_size
    n_images = n_training_images(recipe)
    epoch = per_image * n_images
    return {"gflop_per_image": per_image / 1e9, "training_images": n_images,
            "pflop_per_epoch": epoch / 1e15, "seconds_per_epoch": epoch / (tflops * 1e12)}


class EpochTimer(Callback):
    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        print(f"epoch {row['epoch']}: {row['dur']:.1f} s, train loss {row['train_loss']:.3f}",
              flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", choices=sorted(RECIPES))
    parser.add_argument("--method", choices=sorted(METHODS), default="srat")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--download", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=TRAINING["max_epochs"])
    parser.add_argument("--workers", type=int, default=4, help="DataLoader worker processes")
    parser.add_argument("--output", default=None, help="default: srat-<recipe>-<method>")
    parser.add_argument("--stand-in", action="store_true",
                        help="tiny generated data in the real file format, one epoch")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--count-flops", action="store_true",
                        help="print the operation count and expected time of one epoch")
    parser.add_argument("--tflops", type=float, default=15.0,
                        help="sustained TFLOP/s assumed by --count-flops")
    args = parser.parse_args()
    if args.count_flops:
        for name in [args.recipe] if args.recipe else sorted(RECIPES):
            est = count_flops(RECIPES[name], args.method, args.tflops)
            print(f"{name} ({args.method}): {est['gflop_per_image']:.1f} GFLOP per training "
                  f"image, {est['training_images']} images, {est['pflop_per_epoch']:.2f} PFLOP "
                  f"per epoch: {est['seconds_per_epoch']:.0f} s per epoch at "
                  f"{args.tflops:g} TFLOP/s")
        return
    if args.list or args.recipe is None:
        for name, recipe in RECIPES.items():
            print(f"{name}: {recipe['data']}, classes {UNDER} keep 1/{recipe['ratio']}")
        return
    recipe = RECIPES[args.recipe]
    params = {**TRAINING, **PAPER_METHODS[METHODS[args.method]]}
    root, epochs, eval_steps = args.data_root, args.epochs, 20
    if args.stand_in:
        root = write_stand_in(recipe["data"], tempfile.mkdtemp())
        epochs, eval_steps, args.workers = 1, 2, 0
        params.update(batch_size=16, n_steps=2)
    scale = epochs / TRAINING["max_epochs"]
    milestones = [max(1, round(m * scale)) for m in LR_MILESTONES]
    params.update(max_epochs=epochs, reweight_epoch=min(milestones[0], epochs))

    train, X_test, y_test = load(recipe["data"], root, args.download)
    train, _ = make_imbalanced(train, None, ratio=recipe["ratio"], under_represented=UNDER,
                               random_state=0)
    clf = SRATClassifier(
        module=resnet18_cifar, module__n_classes=10, classes=list(range(10)),
        device=args.device, random_state=0, verbose=0,
        iterator_train__num_workers=args.workers,
        iterator_train__pin_memory=args.device.startswith("cuda"),
        callbacks=[("lr_decay", LRScheduler(policy=MultiStepLR, milestones=milestones,
                                            gamma=0.1)), ("timer", EpochTimer())],
        **params)
    started = time.perf_counter()
    clf.fit(train, None)
    fit_seconds = time.perf_counter() - started
    name = METHODS[args.method]
    reports = {name: robust_report(clf, X_test, y_test, under_represented=UNDER,
                                   n_steps=eval_steps),
               f"{name} (worst case)": robust_report(clf, X_test, y_test,
                                                     under_represented=UNDER,
                                                     n_steps=eval_steps, worst_case=True)}
    output = Path(args.output or f"srat-{args.recipe}-{args.method}")
    settings = {"recipe": args.recipe, "method": args.method, "epochs": epochs,
                "training samples": len(train), "device": args.device,
                "fit seconds": round(fit_seconds, 1), "stand-in": args.stand_in}
    write_report(reports, output, title=f"{name} on {args.recipe}", settings=settings)
    clf.save_params(f_params=output / "params.pt")
    (output / "settings.json").write_text(json.dumps(settings, indent=2))
    for label, report in reports.items():
        print(f"\n{label}\n\n{report.to_markdown(per_class=False)}")
    print(f"\nsaved in {output}")


if __name__ == "__main__":
    main()
