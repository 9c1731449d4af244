"""Class-aware training budgets and the epsilon warm-up (RobustLT's plug-ins)."""

import warnings

import numpy as np
import pytest
import torch

from srat_sklearn import SRATClassifier
from srat_sklearn._budgets import attack_per_sample, class_radius_factors, warmup_factor
from srat_sklearn.attacks._run import _run_attack


@pytest.mark.parametrize("counts", [[100, 10, 1], [500, 50, 50, 20], [7, 3]])
@pytest.mark.parametrize("mix", [0.25, 1.0])
def test_factors_grow_for_rarer_classes_and_keep_the_mean(counts, mix):
    factors = class_radius_factors(counts, mix)
    spread = np.sqrt(np.log(max(counts) / np.asarray(counts, dtype=float)))
    np.testing.assert_allclose(factors, (1 - mix) + mix * spread / spread.mean())
    assert factors.mean() == pytest.approx(1.0)
    assert np.all(np.diff(factors[np.argsort(counts)[::-1]]) >= 0)


def test_warmup_grows_linearly_then_holds():
    assert [warmup_factor(e, 3) for e in range(5)] == pytest.approx([1 / 3, 2 / 3, 1, 1, 1])
    assert warmup_factor(0, 0) == 1.0


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_each_sample_keeps_its_own_budget(norm):
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    X, y = torch.rand(6, 5), torch.randint(0, 3, (6,))
    shares = torch.tensor([1.0, 0.5, 0.0, 0.25, 1.0, 0.75])
    run = lambda m, X_, bounds=None, start=None: _run_attack(  # noqa: E731
        "pgd", m, X_, y, epsilon=0.4, n_steps=10, norm=norm, bounds=bounds, start=start)
    X_adv = attack_per_sample(run, model, X, shares, bounds=(0.0, 1.0))
    delta = (X_adv - X).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert torch.all(size <= 0.4 * shares + 1e-5)
    assert torch.equal(X_adv[2], X[2]) and size[0] > 0.2  # PGD uses what it gets
    assert X_adv.min() >= 0 and X_adv.max() <= 1


class RecordingRadii(SRATClassifier):
    def _attack(self, X, y, **kwargs):
        adv = super()._attack(X, y, **kwargs)
        self.__dict__.setdefault("moved_", []).append(
            (len(self.history) - 1, y.cpu().numpy(), (adv - X).abs().amax(dim=1).cpu().numpy()))
        return adv


class RecordingDeltas(SRATClassifier):
    def _attack(self, X, y, **kwargs):
        adv = super()._attack(X, y, **kwargs)
        self.__dict__.setdefault("deltas_", []).append(
            (y.cpu().numpy(), (adv - X).cpu().numpy()))
        return adv


def test_training_attacks_rare_classes_harder(tabular):
    clf = RecordingRadii(class_epsilon_mix=1.0, max_epochs=2, reweight_epoch=1, epsilon=0.2,
                         n_steps=5, verbose=0, random_state=0,
                         module__hidden_units=(8,)).fit(*tabular)
    factors = clf.class_radius_factors_
    for _, labels, moved in clf.moved_:
        assert np.all(moved <= 0.2 * factors[labels] + 1e-5)
    labels = np.concatenate([m[1] for m in clf.moved_])
    moved = np.concatenate([m[2] for m in clf.moved_])
    rare, common = np.argmin(clf.class_counts_), np.argmax(clf.class_counts_)
    assert moved[labels == rare].mean() > moved[labels == common].mean()


def test_training_budget_warms_up(tabular):
    clf = RecordingRadii(epsilon_warmup=4, max_epochs=5, epsilon=0.2, n_steps=5, verbose=0,
                         random_state=0, module__hidden_units=(8,)).fit(*tabular)
    largest = {}
    for epoch, _, moved in clf.moved_:
        largest[epoch] = max(largest.get(epoch, 0.0), float(moved.max()))
    expected = [0.05, 0.1, 0.15, 0.2, 0.2]
    assert all(largest[e] <= expected[e] + 1e-5 for e in range(5))
    assert all(largest[e] > 0.8 * expected[e] for e in range(5))


@pytest.mark.parametrize("threat", [dict(epsilon_scale="std"),
                                    dict(perturbable_features=[0, 2, 5])])
def test_class_budgets_compose_with_feature_budgets(tabular, threat):
    # Regression: per-sample bounds (the class-aware budgets' scaled coordinates) met the
    # per-feature budgets' broadcast to one row and crashed the first training batch.
    clf = RecordingDeltas(class_epsilon_mix=1.0, max_epochs=1, epsilon=0.2, n_steps=3,
                          verbose=0, random_state=0, module__hidden_units=(8,),
                          **threat).fit(*tabular)
    labels = np.concatenate([labels for labels, _ in clf.deltas_])
    deltas = np.abs(np.concatenate([delta for _, delta in clf.deltas_]))
    scale = clf.epsilon_scale_ if "epsilon_scale" in threat else np.ones(8)
    frozen = ~np.isin(np.arange(8), threat.get("perturbable_features", np.arange(8)))
    assert np.all(deltas <= 0.2 * scale * clf.class_radius_factors_[labels][:, None] + 1e-5)
    assert np.all(deltas[:, frozen] == 0) and deltas.max() > 0


@pytest.mark.parametrize("warmup, max_epochs, warns", [(4, 2, True), (2, 2, False),
                                                      (0.9, 2, False)])
def test_warmup_longer_than_the_fit_warns(tabular, warmup, max_epochs, warns):
    # Epoch e trains at (e + 1) / warmup of epsilon: past the end, never at epsilon itself.
    clf = SRATClassifier(epsilon_warmup=warmup, max_epochs=max_epochs, class_weight=None,
                         n_steps=1, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(*tabular)
    messages = {str(w.message) for w in caught if "epsilon_warmup" in str(w.message)}
    assert messages == ({"epsilon_warmup=4 epochs outlasts this fit (max_epochs=2): its "
                         "training budget grows only to 50% of epsilon unless it continues a "
                         "history (a checkpoint loaded with LoadInitState, or partial_fit)."}
                        if warns else set())


@pytest.mark.parametrize("params, match", [
    (dict(class_epsilon_mix=1.5), "class_epsilon_mix"),
    (dict(class_epsilon_mix=-0.1), "class_epsilon_mix"),
    (dict(epsilon_warmup=-1), "epsilon_warmup"),
    (dict(epsilon_warmup=1.5), "epsilon_warmup"),
])
def test_bad_budgets_are_refused_before_training(tabular, params, match):
    clf = SRATClassifier(max_epochs=1, verbose=0, **params)
    with pytest.raises(ValueError, match=match):
        clf.fit(*tabular)
    assert not hasattr(clf, "module_")
