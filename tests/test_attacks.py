"""PGD as a plain torch function: threat-model invariants and side effects."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from srat_sklearn.attacks import pgd_attack, project


def make_model(in_features=6, n_classes=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(in_features, 16), nn.BatchNorm1d(16), nn.ReLU(),
                         nn.Dropout(0.5), nn.Linear(16, n_classes))


@pytest.fixture
def model():
    return make_model()


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(1)
    X = torch.rand(32, 6, generator=generator)
    y = torch.randint(0, 3, (32,), generator=generator)
    return X, y


def distance(X_adv, X, norm):
    delta = (X_adv - X).flatten(1)
    return delta.abs().max(dim=1).values if norm == "linf" else delta.norm(dim=1)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("random_start", [True, False])
def test_stays_inside_ball(model, batch, norm, random_start):
    X, y = batch
    X_adv = pgd_attack(model, X, y, epsilon=0.3, n_steps=5, norm=norm, random_start=random_start)
    assert torch.all(distance(X_adv, X, norm) <= 0.3 + 1e-5)
    assert not torch.equal(X_adv, X)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_stays_inside_bounds(model, batch, norm):
    X, y = batch
    X_adv = pgd_attack(model, X, y, epsilon=0.5, n_steps=5, norm=norm, bounds=(0.0, 1.0))
    assert X_adv.min() >= 0.0 and X_adv.max() <= 1.0


def test_per_feature_bounds(model, batch):
    X, y = batch
    low, high = torch.full((6,), 0.2), torch.linspace(0.5, 1.0, 6)
    X = torch.minimum(torch.maximum(X, low), high)
    X_adv = pgd_attack(model, X, y, epsilon=0.5, n_steps=3, bounds=(low, high))
    assert torch.all(X_adv >= low) and torch.all(X_adv <= high)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_epsilon_zero_is_identity(model, batch, norm):
    X, y = batch
    assert torch.equal(pgd_attack(model, X, y, epsilon=0, norm=norm), X)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_loss_does_not_go_down(model, batch, norm):
    X, y = batch
    model.eval()
    X_adv = pgd_attack(model, X, y, epsilon=0.2, n_steps=10, norm=norm, random_start=False)
    with torch.no_grad():
        clean = F.cross_entropy(model(X), y)
        adversarial = F.cross_entropy(model(X_adv), y)
    assert adversarial > clean + 1e-3


def test_more_steps_do_not_weaken(model, batch):
    X, y = batch
    model.eval()
    losses = []
    for n_steps in (1, 10):
        X_adv = pgd_attack(model, X, y, epsilon=0.2, step_size=0.05, n_steps=n_steps,
                           random_start=False)
        with torch.no_grad():
            losses.append(F.cross_entropy(model(X_adv), y).item())
    assert losses[1] >= losses[0]


@pytest.mark.parametrize("training", [True, False])
def test_restores_mode(model, batch, training):
    model.train(training)
    pgd_attack(model, *batch, epsilon=0.1, n_steps=2)
    assert all(m.training == training for m in model.modules())


def test_batchnorm_statistics_unchanged(model, batch):
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pgd_attack(model, *batch, epsilon=0.1, n_steps=3)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_no_gradient_left_on_parameters(model, batch):
    pgd_attack(model, *batch, epsilon=0.1, n_steps=3)
    assert all(p.grad is None for p in model.parameters())


def test_works_under_no_grad(model, batch):
    with torch.no_grad():
        X_adv = pgd_attack(model, *batch, epsilon=0.1, n_steps=2)
    assert not torch.equal(X_adv, batch[0])


def test_attack_in_eval_mode_is_deterministic_without_random_start(model, batch):
    # Dropout is off while attacking, so two runs see the same gradients.
    model.train()
    first = pgd_attack(model, *batch, epsilon=0.1, n_steps=3, random_start=False)
    second = pgd_attack(model, *batch, epsilon=0.1, n_steps=3, random_start=False)
    assert torch.equal(first, second)


@pytest.mark.parametrize("kwargs, match", [
    (dict(epsilon=-0.1), "epsilon"),
    (dict(epsilon=float("nan")), "epsilon"),
    (dict(epsilon=0.1, n_steps=0), "n_steps"),
    (dict(epsilon=0.1, step_size=0), "step_size"),
    (dict(epsilon=0.1, norm="l1"), "norm"),
])
def test_bad_parameters(model, batch, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pgd_attack(model, *batch, **kwargs)


def test_project_l2_keeps_short_vectors():
    delta = torch.tensor([[0.3, 0.4], [3.0, 4.0]])
    projected = project(delta, 1.0, "l2")
    assert torch.allclose(projected, torch.tensor([[0.3, 0.4], [0.6, 0.8]]))


@settings(max_examples=40, deadline=None)
@given(
    shape=st.sampled_from([(4, 5), (3, 1, 4, 4), (2, 3, 2, 2)]),
    epsilon=st.floats(0.0, 2.0),
    norm=st.sampled_from(["linf", "l2"]),
    bounds=st.sampled_from([None, (0.0, 1.0), (-0.5, 0.5)]),
    seed=st.integers(0, 2**16),
)
def test_property_ball_and_bounds(shape, epsilon, norm, bounds, seed):
    generator = torch.Generator().manual_seed(seed)
    X = torch.rand(shape, generator=generator)
    if bounds is not None:
        X = X.clamp(*bounds)
    model = nn.Sequential(nn.Flatten(), nn.Linear(X[0].numel(), 3))
    y = torch.randint(0, 3, (shape[0],), generator=generator)
    X_adv = pgd_attack(model, X, y, epsilon=epsilon, n_steps=3, norm=norm, bounds=bounds)
    assert X_adv.shape == X.shape
    assert torch.all(distance(X_adv, X, norm) <= epsilon + 1e-5)
    if bounds is not None:
        assert X_adv.min() >= bounds[0] and X_adv.max() <= bounds[1]
