"""TRADES (Zhang et al., 2019): its divergence, its attack, and the estimator's objective."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import make_classification

from srat_sklearn import SRATClassifier
from srat_sklearn.attacks import trades_attack
from srat_sklearn.cli import main
from srat_sklearn.losses import trades_kl_divergence
from srat_sklearn.methods import METHODS


def reference_kl(clean, adversarial):
    """KL(p || q) of the softmaxes, per row, in float64 numpy."""
    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    p, q = softmax(np.float64(clean)), softmax(np.float64(adversarial))
    return (p * (np.log(p) - np.log(q))).sum(axis=1)


@pytest.mark.parametrize("n_classes", [2, 5])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_divergence_matches_its_formula(n_classes, reduction):
    generator = torch.Generator().manual_seed(n_classes)
    clean, adversarial = torch.randn(2, 7, n_classes, generator=generator) * 3
    expected = reference_kl(clean.numpy(), adversarial.numpy())
    expected = {"none": expected, "mean": expected.mean(), "sum": expected.sum()}[reduction]
    np.testing.assert_allclose(trades_kl_divergence(clean, adversarial, reduction=reduction),
                               expected, rtol=1e-5, atol=1e-6)


def test_divergence_sends_gradients_to_both_predictions():
    clean = torch.randn(4, 3, requires_grad=True)
    adversarial = torch.randn(4, 3, requires_grad=True)
    trades_kl_divergence(clean, adversarial).backward()
    assert clean.grad.abs().sum() > 0 and adversarial.grad.abs().sum() > 0


@pytest.fixture
def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


@pytest.mark.parametrize("norm, epsilon", [("linf", 0.1), ("l2", 0.5)])
def test_attack_finds_more_divergence_than_random_points(model, norm, epsilon):
    X = torch.rand(64, 6)
    with torch.no_grad():
        clean = model(X)
        X_adv = trades_attack(model, X, epsilon=epsilon, norm=norm)
        attacked = trades_kl_divergence(clean, model(X_adv), reduction="none")
        noise = torch.empty_like(X).uniform_(-1, 1)
        noise = epsilon * (noise.sign() if norm == "linf" else noise / noise.norm(dim=1,
                                                                                  keepdim=True))
        random = trades_kl_divergence(clean, model(X + noise), reduction="none")
    assert attacked.mean() > 2 * random.mean()


def test_attack_restores_training_mode(model):
    model.train()
    trades_attack(model, torch.rand(8, 6), epsilon=0.1)
    assert model.training


@pytest.fixture(scope="module")
def trades_model(tabular):
    return SRATClassifier(adversarial_loss="trades", trades_beta=2.0, lambda_sep=0.0,
                          class_weight=None, max_epochs=3, epsilon=0.2, n_steps=3,
                          random_state=0, verbose=0, module__hidden_units=(16,)).fit(*tabular)


def test_loss_is_clean_loss_plus_beta_times_divergence(trades_model, tabular):
    X, y = tabular
    clean = torch.as_tensor(X[:32], dtype=torch.float32)
    target = torch.as_tensor(y[:32])
    adversarial = clean + 0.1
    module = trades_model.module_
    with torch.no_grad():
        with trades_model._clean_batch(clean):
            loss = trades_model.get_loss(module(adversarial), target, training=True)
        expected = (F.cross_entropy(module(clean), target)
                    + 2.0 * trades_kl_divergence(module(clean), module(adversarial)))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_training_uses_the_trades_attack(tabular, monkeypatch):
    seen = []

    class Recording(SRATClassifier):
        def _attack(self, X, y, **kwargs):
            seen.append(kwargs.get("attack"))
            return super()._attack(X, y, **kwargs)

    Recording(adversarial_loss="trades", max_epochs=1, epsilon=0.2, n_steps=2, verbose=0,
              reweight_epoch=0, module__hidden_units=(8,)).fit(*tabular)
    assert seen and set(seen) == {"trades"}


@pytest.mark.parametrize("method", ["TRADES", "SRAT-TRADES"])
def test_trades_methods_learn(tabular, method):
    X, y = tabular
    clf = SRATClassifier(**METHODS[method], max_epochs=15, lr=1e-2, epsilon=0.2, n_steps=3,
                         random_state=0, verbose=0, module__hidden_units=(16,)).fit(X, y)
    assert clf.score(X, y) > 0.75  # the majority class alone is 0.6


@pytest.mark.parametrize("params, match", [
    (dict(adversarial_loss="trades", reuse_perturbations=True), "one or the other"),
    (dict(adversarial_loss="mart"), "adversarial_loss"),
    (dict(trades_beta=0.0), "trades_beta"),
    (dict(trades_beta=-1.0), "trades_beta"),
])
def test_bad_trades_settings_are_refused_before_training(tabular, params, match):
    clf = SRATClassifier(max_epochs=1, verbose=0, **params)
    with pytest.raises(ValueError, match=match):
        clf.fit(*tabular)
    assert not hasattr(clf, "module_")


def test_cli_trains_trades(tmp_path):
    X, y = make_classification(n_samples=150, n_features=6, n_informative=4, n_classes=3,
                               random_state=0)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    main(["train", "--data", str(tmp_path / "data.npz"), "--method", "trades", "--max-epochs",
          "1", "--optimizer", "adam", "--output", str(tmp_path / "out"), "--no-progress",
          "--eval-steps", "2"])
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["estimator"]["adversarial_loss"] == "trades"



class CountingBatchNormMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16),
                                        torch.nn.ReLU())
        self.head = torch.nn.Linear(16, 3)
        self.calls = 0

    def forward(self, X):
        self.calls += 1
        return self.head(self.body(X))


def fit_trades(tabular, views, module=CountingBatchNormMLP, **params):
    return SRATClassifier(module, adversarial_loss="trades", separation_views=views,
                          epsilon=0.1, n_steps=2, max_epochs=1, batch_size=60, verbose=0,
                          random_state=0, **params).fit(*tabular)


def test_clean_view_is_the_clean_pass_of_trades(tabular):
    # Regression: the clean view and TRADES' loss each ran the clean batch.
    calls = {views: fit_trades(tabular, views).module_.calls
             for views in ("adversarial", "adversarial+clean")}
    assert calls["adversarial+clean"] == calls["adversarial"]


@pytest.mark.parametrize("views", ["adversarial", "adversarial+clean"])
def test_batchnorm_statistics_move_with_each_trades_pass(tabular, views):
    # The adversarial and the clean pass of each of the 4 steps, as in TRADES.
    clf = fit_trades(tabular, views)
    assert int(clf.module_.body[1].num_batches_tracked) == 8


def test_shared_clean_pass_trains_as_a_pass_of_its_own(tabular, monkeypatch):
    from srat_sklearn.separation import SeparationTerm

    def weights(clf):
        return {k: v.clone() for k, v in clf.module_.state_dict().items()}

    shared = weights(fit_trades(tabular, "adversarial+clean", module=None))
    original = SeparationTerm.loss

    def own_pass(self, labels, temperature):
        loss = original(self, labels, temperature)
        self.clean_output = None  # TRADES' loss runs the clean batch again
        return loss

    monkeypatch.setattr(SeparationTerm, "loss", own_pass)
    separate = weights(fit_trades(tabular, "adversarial+clean", module=None))
    # One graph with both outputs sums the gradients in another order than two: rounding only.
    for name in shared:
        torch.testing.assert_close(shared[name], separate[name], rtol=0, atol=1e-6)
