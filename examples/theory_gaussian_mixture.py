"""The paper's analysis, runnable: why reweighting costs more under adversarial training.

Data: the binary Gaussian mixture of the paper (``make_gaussian_mixture``), class 0
``N(+mu 1, I)`` ten times as frequent as class 1 ``N(-mu 1, I)``. Model: a linear
classifier. Reweighting (class weights ``balanced``) moves its boundary towards
the majority; the *price* of reweighting is the error it adds on the majority class
for each point of error it removes on the minority class::

    price = (err_major(weighted) - err_major(plain)) / (err_minor(plain) - err_minor(weighted))

For natural training (NT) the errors are natural errors; for adversarial training
(AT, L-inf radius eps) they are the robust errors it is trained for. Against a
linear model the L-inf attack shifts every sample by ``eps * ||w||_1``, so AT sees
the mixture with its means moved to ``mu - eps``: adversarial training *shrinks the
separation*. With ``m`` the distance of the class means to the boundary along the
optimal direction (``mu * sqrt(d)`` for NT, ``(mu - eps) * sqrt(d)`` for AT), the
best boundary for class weights ``1 : rho`` sits at ``log(K / rho) / (2 m)`` towards
the minority (K the imbalance ratio), and the price is, in closed form,

    price(m) = (Phi(-m) - Phi(-m - b)) / (Phi(b - m) - Phi(-m)),   b = log(K) / (2 m).

It falls from 1 at ``m = 0`` to ``1 / sqrt(K)`` for well separated classes, and it
falls fastest where the classes are least separated. So as the separation ``mu``
shrinks, or ``eps`` grows, reweighting costs more, and the price climbs faster
under AT than under NT: the paper's argument for making features separable before
reweighting. The script checks the closed form against linear models trained with
SRATClassifier (PGD on a linear model finds the exact worst case) and draws both.
About a minute on 2 CPU cores::

    python examples/theory_gaussian_mixture.py
    python examples/theory_gaussian_mixture.py --json benchmarks/theory.json \\
        --plot docs/results-theory.png
"""

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import norm  # noqa: E402

from srat_sklearn import SRATClassifier  # noqa: E402
from srat_sklearn.datasets import make_gaussian_mixture  # noqa: E402
from srat_sklearn.metrics import robust_predict  # noqa: E402


def group_errors(margin, shift):
    """Majority and minority error of the boundary moved ``shift`` towards the minority."""
    return norm.cdf(-margin - shift), norm.cdf(shift - margin)


def reweighting_price(margin, ratio):
    """Closed-form price of balanced reweighting at class-mean margin ``margin``."""
    margin = np.asarray(margin, dtype=float)
    plain_major, plain_minor = group_errors(margin, np.log(ratio) / (2 * margin))
    weighted_major, weighted_minor = group_errors(margin, 0.0)
    return (weighted_major - plain_major) / (plain_minor - weighted_minor)


def fit_linear(X, y, *, epsilon, class_weight, seed):
    clf = SRATClassifier(
        torch.nn.Linear(X.shape[1], 2), epsilon=epsilon, n_steps=5, bounds=None,
        lambda_sep=0.0,  # a linear model has no feature layer to separate
        class_weight=class_weight, reweight_epoch=0, optimizer=torch.optim.Adam, lr=0.05,
        max_epochs=20, batch_size=256, random_state=seed, verbose=0)
    return clf.fit(X, y)


def measured_errors(clf, X, y, epsilon):
    pred = robust_predict(clf, X, y, epsilon=epsilon, n_steps=10) if epsilon else \
        clf.predict(X)
    return float(np.mean(pred[y == 0] != 0)), float(np.mean(pred[y == 1] != 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--means", type=float, nargs="+", default=[0.35, 0.5, 0.7, 1.0],
                        help="class-mean coordinates mu at which to train linear models")
    parser.add_argument("--epsilon", type=float, default=0.2, help="L-inf radius of AT")
    parser.add_argument("--ratio", type=float, default=10.0, help="imbalance ratio K")
    parser.add_argument("--n-features", type=int, default=2)
    parser.add_argument("--n-train", type=int, default=11000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="theory.json", help="where to write the figures")
    parser.add_argument("--plot", default="theory.png", help="where to draw the curves")
    args = parser.parse_args()
    if min(args.means) <= args.epsilon:
        parser.error("every mean must exceed --epsilon, or AT leaves no separation")
    root_d = np.sqrt(args.n_features)

    rows = []
    for mean in args.means:
        data = {}
        for split, n, seed in (("train", args.n_train, args.seed),
                               ("test", 10 * args.n_train, args.seed + 1)):
            X, y = make_gaussian_mixture(n, n_features=args.n_features, ratio=args.ratio,
                                         mean=mean, random_state=seed)
            data[split] = X.astype(np.float32), y
        for method, epsilon in (("NT", 0.0), ("AT", args.epsilon)):
            errors = {}
            for weights in (None, "balanced"):
                clf = fit_linear(*data["train"], epsilon=epsilon, class_weight=weights,
                                 seed=args.seed)
                errors[weights] = measured_errors(clf, *data["test"], epsilon)
            (plain_major, plain_minor), (rw_major, rw_minor) = errors[None], errors["balanced"]
            margin = (mean - epsilon) * root_d
            rows.append({
                "mean": mean, "method": method, "epsilon": epsilon, "margin": margin,
                "errors_plain": [plain_major, plain_minor],
                "errors_reweighted": [rw_major, rw_minor],
                "price_measured": (rw_major - plain_major) / (plain_minor - rw_minor),
                "price_closed_form": float(reweighting_price(margin, args.ratio)),
            })
            print(f"mu={mean:.2f} {method}: error major/minor plain {plain_major:.3f}/"
                  f"{plain_minor:.3f}, reweighted {rw_major:.3f}/{rw_minor:.3f}; price "
                  f"{rows[-1]['price_measured']:.3f} (closed form "
                  f"{rows[-1]['price_closed_form']:.3f})")

    # Slopes of the closed form at the same mu: how fast the price climbs as mu shrinks.
    slopes = {}
    for method, epsilon in (("NT", 0.0), ("AT", args.epsilon)):
        slopes[method] = [float(-(reweighting_price((m - epsilon + 1e-4) * root_d, args.ratio)
                                  - reweighting_price((m - epsilon - 1e-4) * root_d, args.ratio))
                                / 2e-4) for m in args.means]
    print("price climb per unit of lost separation (-d price / d mu), NT vs AT:")
    for mean, nt, at in zip(args.means, slopes["NT"], slopes["AT"]):
        print(f"  mu={mean:.2f}: NT {nt:.3f}, AT {at:.3f}")

    with open(args.json, "w") as f:
        json.dump({"ratio": args.ratio, "epsilon": args.epsilon,
                   "n_features": args.n_features, "n_train": args.n_train,
                   "seed": args.seed, "rows": rows, "slopes": slopes}, f, indent=1)

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    mus = np.linspace(args.epsilon + 0.02, 2.0, 200)
    for method, epsilon, color in (("NT", 0.0, "tab:blue"), ("AT", args.epsilon, "tab:red")):
        label = method if not epsilon else f"{method}, eps={epsilon:g}"
        left.plot(mus, reweighting_price((mus - epsilon) * root_d, args.ratio), color=color,
                  label=f"{label}, closed form")
        measured = [r for r in rows if r["method"] == method]
        left.plot([r["mean"] for r in measured], [r["price_measured"] for r in measured], "o",
                  color=color, label=f"{label}, trained linear model")
    left.axhline(1 / np.sqrt(args.ratio), color="grey", ls=":", lw=1)
    left.set(xlabel="class separation mu", ylabel="majority error added per minority error "
             "removed", title=f"Price of reweighting (K={args.ratio:g})")
    left.legend(fontsize=8)
    mean = max(args.means)
    epsilons = np.linspace(0, 0.95 * mean, 200)
    right.plot(epsilons, reweighting_price((mean - epsilons) * root_d, args.ratio),
               color="tab:red", label="AT")
    right.axhline(float(reweighting_price(mean * root_d, args.ratio)), color="tab:blue",
                  label="NT")
    right.set(xlabel="attack radius eps", ylabel="price", title=f"mu={mean:g}: price vs eps")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"wrote {args.json} and {args.plot}")


if __name__ == "__main__":
    main()
