"""The attacks as plain torch functions: threat-model invariants and side effects."""

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from srat_sklearn.attacks import (
    ATTACKS,
    NORMS,
    apgd_attack,
    apgd_targeted_attack,
    autoattack,
    dlr_loss,
    fab_attack,
    pgd_attack,
    project,
    random_perturbation,
    run_attack,
    square_attack,
    trades_attack,
)
from srat_sklearn.attacks.apgd import _apgd_checkpoints

#: Small budgets for the attacks whose defaults take thousands of queries.
BUDGETS = {"square": {"n_queries": 30}, "autoattack": {"n_queries": 30}}


def make_model(in_features=6, n_classes=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(in_features, 16), nn.BatchNorm1d(16), nn.ReLU(),
                         nn.Dropout(0.5), nn.Linear(16, n_classes))


@pytest.fixture
def model():
    return make_model()


@pytest.fixture(params=ATTACKS)
def attack(request):
    """``attack(model, X, y, **kwargs)`` for each attack of the package, on a small budget."""
    return partial(run_attack, request.param, **BUDGETS.get(request.param, {}))


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
def test_stays_inside_ball(model, batch, attack, norm, random_start):
    X, y = batch
    X_adv = attack(model, X, y, epsilon=0.3, n_steps=5, norm=norm, random_start=random_start)
    assert torch.all(distance(X_adv, X, norm) <= 0.3 + 1e-5)
    assert not torch.equal(X_adv, X)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_a_point_outside_the_bounds_moves_at_most_epsilon(attack, norm):
    # Regression: with bounds (0, 1), x = (2, 0.5) and eps 0.1 came back as (1, 0.6), because
    # the attacks clamped to the bounds after projecting onto the ball.
    model = nn.Linear(2, 3)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]))
        model.bias.zero_()
    X, y = torch.tensor([[2.0, 0.5]]), torch.tensor([0])
    X_adv = attack(model, X, y, epsilon=0.1, n_steps=3, norm=norm, bounds=(0.0, 1.0))
    assert distance(X_adv, X, norm) <= 0.1 + 1e-6
    assert 0.0 <= X_adv[0, 1] <= 1.0  # a coordinate inside the bounds stays inside


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_stays_inside_bounds(model, batch, attack, norm):
    X, y = batch
    X_adv = attack(model, X, y, epsilon=0.5, n_steps=5, norm=norm, bounds=(0.0, 1.0))
    assert X_adv.min() >= 0.0 and X_adv.max() <= 1.0


def test_per_feature_bounds(model, batch, attack):
    X, y = batch
    low, high = torch.full((6,), 0.2), torch.linspace(0.5, 1.0, 6)
    X = torch.minimum(torch.maximum(X, low), high)
    X_adv = attack(model, X, y, epsilon=0.5, n_steps=3, bounds=(low, high))
    assert torch.all(X_adv >= low) and torch.all(X_adv <= high)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_epsilon_zero_is_identity(model, batch, attack, norm):
    X, y = batch
    assert torch.equal(attack(model, X, y, epsilon=0, n_steps=5, norm=norm), X)


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
def test_restores_mode(model, batch, attack, training):
    model.train(training)
    attack(model, *batch, epsilon=0.1, n_steps=2)
    assert all(m.training == training for m in model.modules())


def test_batchnorm_statistics_unchanged(model, batch, attack):
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attack(model, *batch, epsilon=0.1, n_steps=3)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_no_gradient_left_on_parameters(model, batch, attack):
    attack(model, *batch, epsilon=0.1, n_steps=3)
    assert all(p.grad is None for p in model.parameters())


def test_one_step_follows_the_sign_of_the_input_gradient(model, batch):
    X, y = batch
    model.eval()
    X_adv = X.clone().requires_grad_(True)
    loss = F.cross_entropy(model(X_adv), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, X_adv)
    expected = (X + 0.05 * grad.sign()).clamp(X - 0.1, X + 0.1)
    result = pgd_attack(model, X, y, epsilon=0.1, step_size=0.05, n_steps=1, random_start=False)
    assert torch.allclose(result, expected, atol=1e-7)


def test_works_under_no_grad(model, batch, attack):
    with torch.no_grad():
        X_adv = attack(model, *batch, epsilon=0.1, n_steps=2)
    assert not torch.equal(X_adv, batch[0])


def test_attack_in_eval_mode_is_deterministic(model, batch, attack):
    # Dropout is off while attacking, so two runs from the same seed see the same gradients.
    model.train()
    torch.manual_seed(0)
    first = attack(model, *batch, epsilon=0.1, n_steps=3, random_start=False)
    torch.manual_seed(0)
    second = attack(model, *batch, epsilon=0.1, n_steps=3, random_start=False)
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


PUBLIC_ATTACKS = {
    "pgd_attack": lambda m, X, y: pgd_attack(m, X, y, epsilon=0.1, n_steps=2),
    "apgd_attack": lambda m, X, y: apgd_attack(m, X, y, epsilon=0.1, n_steps=2),
    "apgd_targeted_attack": lambda m, X, y: apgd_targeted_attack(m, X, y, epsilon=0.1,
                                                                 n_steps=2, n_targets=2),
    "fab_attack": lambda m, X, y: fab_attack(m, X, y, epsilon=0.1, n_steps=2, n_targets=2),
    "square_attack": lambda m, X, y: square_attack(m, X, y, epsilon=0.1, n_queries=2),
    "trades_attack": lambda m, X, y: trades_attack(m, X, epsilon=0.1, n_steps=2),
    "run_attack": lambda m, X, y: run_attack("pgd", m, X, y, epsilon=0.1, n_steps=2),
    "autoattack": lambda m, X, y: autoattack(m, X, y, epsilon=0.1, n_steps=2, n_queries=2),
}


@pytest.mark.parametrize("name", PUBLIC_ATTACKS)
@pytest.mark.parametrize("as_given, match", [
    (lambda X: X.numpy(), "X must be a torch.Tensor, got ndarray"),
    (lambda X: (X * 10).long(), "X must be a floating-point tensor, got dtype torch.int64"),
])
def test_every_attack_names_an_input_it_cannot_perturb(model, batch, name, as_given, match):
    # They were an AttributeError from inside, or torch's "not implemented for 'Long'".
    X, y = batch
    with pytest.raises(TypeError, match=match):
        PUBLIC_ATTACKS[name](model, as_given(X), y)


@pytest.mark.parametrize("name", [n for n in PUBLIC_ATTACKS if n != "trades_attack"])
@pytest.mark.parametrize("labels, match", [
    (lambda y: y + 1, "class indices 0 to 2, .* got labels from 1 to 3"),
    (lambda y: y - 1, "class indices 0 to 2, .* got labels from -1 to 1"),
])
def test_every_attack_refuses_labels_outside_the_logits(model, batch, name, labels, match):
    # They were torch's IndexError from inside the loss, a device-side assert on CUDA.
    X, y = batch
    with pytest.raises(ValueError, match=match):
        PUBLIC_ATTACKS[name](model, X, labels(y))


def test_the_label_check_leaves_the_model_mode_alone(model, batch):
    X, y = batch
    model.train()
    with pytest.raises(ValueError, match="class indices"):
        pgd_attack(model, X, y + 3, epsilon=0.1, n_steps=2)
    assert model.training and model[1].num_batches_tracked.item() == 0


def test_project_l2_keeps_short_vectors():
    delta = torch.tensor([[0.3, 0.4], [3.0, 4.0]])
    projected = project(delta, 1.0, "l2")
    assert torch.allclose(projected, torch.tensor([[0.3, 0.4], [0.6, 0.8]]))


def within_threat_model(X_adv, X, epsilon, norm, bounds):
    """X_adv lies in the ball around X and in the bounds widened to contain X."""
    assert X_adv.shape == X.shape
    assert torch.all(distance(X_adv, X, norm) <= epsilon * (1 + 1e-5) + 1e-6)
    if bounds is not None:
        low, high = (torch.as_tensor(b, dtype=X.dtype) for b in bounds)
        assert torch.all(X_adv >= torch.minimum(low, X) - 1e-6)
        assert torch.all(X_adv <= torch.maximum(high, X) + 1e-6)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.sampled_from([(4, 5), (3, 1, 4, 4), (2, 3, 2, 2), (3, 2, 5)]),
    epsilon=st.floats(0.0, 2.0),
    norm=st.sampled_from(NORMS),
    bounds=st.sampled_from([None, (0.0, 1.0), (-0.5, 0.5), "per-feature"]),
    beyond=st.floats(0.0, 1.5),
    with_start=st.booleans(),
    seed=st.integers(0, 2**16),
    attack=st.sampled_from(ATTACKS),
)
def test_property_every_attack_stays_in_the_threat_model(shape, epsilon, norm, bounds, beyond,
                                                         with_start, seed, attack):
    generator = torch.Generator().manual_seed(seed)
    # Inputs reach up to `beyond` past [0, 1] on both sides, so partly outside the bounds.
    X = torch.rand(shape, generator=generator) * (1 + 2 * beyond) - beyond
    if bounds == "per-feature":
        low = 0.3 * torch.rand(shape[1:], generator=generator)
        bounds = (low, low + 0.5)
    model = nn.Sequential(nn.Flatten(), nn.Linear(X[0].numel(), 3))
    y = torch.randint(0, 3, (shape[0],), generator=generator)
    extra = dict(BUDGETS.get(attack, {}))
    if attack == "pgd" and with_start:  # the reused perturbations of the previous epoch
        extra["start"] = 3 * torch.randn(shape, generator=generator)
    X_adv = run_attack(attack, model, X, y, epsilon=epsilon, n_steps=3, norm=norm,
                       bounds=bounds, **extra)
    within_threat_model(X_adv, X, epsilon, norm, bounds)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_apgd_raises_the_loss(model, batch, norm):
    X, y = batch
    model.eval()
    X_adv = apgd_attack(model, X, y, epsilon=0.2, n_steps=10, norm=norm, random_start=False)
    with torch.no_grad():
        assert F.cross_entropy(model(X_adv), y) > F.cross_entropy(model(X), y) + 1e-3


def test_apgd_dlr_raises_the_dlr_loss(model, batch):
    X, y = batch
    model.eval()
    X_adv = apgd_attack(model, X, y, epsilon=0.2, n_steps=10, loss="dlr", random_start=False)
    with torch.no_grad():
        assert dlr_loss(model(X_adv), y).mean() > dlr_loss(model(X), y).mean() + 1e-3


@pytest.mark.parametrize("n_steps, expected", [
    # ceil(p_j * n) with p = 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (Croce & Hein, 2020).
    (100, [22, 41, 57, 70, 80, 87, 93, 99]),
    (10, [3, 5, 6, 7, 8, 9, 10]),
])
def test_apgd_checkpoints_follow_the_paper(n_steps, expected):
    assert _apgd_checkpoints(n_steps) == expected


class Sine(nn.Module):
    def forward(self, x):
        return torch.sin(x)


def reference_apgd_linf(model, x0, y, epsilon, n_steps, rho=0.75):
    """APGD-CE on one sample, step by step as Algorithm 1 of Croce & Hein (2020)
    and their code: a halving restarts from the best point, and the momentum
    of the next step points from the last iterate towards it."""
    def loss_and_grad(x):
        x = x.clone().requires_grad_(True)
        loss = F.cross_entropy(model(x[None]), y[None])
        return loss.item(), torch.autograd.grad(loss, x)[0]

    def project(x):
        return torch.min(torch.max(x, x0 - epsilon), x0 + epsilon)

    checkpoints = _apgd_checkpoints(n_steps)
    step, x, x_old = 2 * epsilon, x0.clone(), x0.clone()
    loss, grad = loss_and_grad(x)
    x_best, loss_best, grad_best = x, loss, grad
    rises, last, halved_last, loss_best_last = 0, 0, True, loss
    for k in range(n_steps):
        momentum = 1.0 if k == 0 else 0.75
        z = project(x + step * grad.sign())
        x, x_old = project(x + momentum * (z - x) + (1 - momentum) * (x - x_old)), x
        new_loss, grad = loss_and_grad(x)
        rises, loss = rises + (new_loss > loss), new_loss
        if loss > loss_best:
            x_best, loss_best, grad_best = x, loss, grad
        if k + 1 in checkpoints:
            stalled = not halved_last and loss_best_last >= loss_best
            halve = rises <= rho * (k + 1 - last) or stalled
            if halve:
                step, x, grad = step / 2, x_best, grad_best
            rises, last, halved_last, loss_best_last = 0, k + 1, halve, loss_best
    return x_best


def test_apgd_follows_the_reference_algorithm():
    # A large bias for class 0 keeps every sample correct, so APGD returns its best
    # point; steep sines make the loss oscillate, so that the step is halved.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), Sine(), nn.Linear(32, 3)).double().eval()
    with torch.no_grad():
        model[0].weight.mul_(10)
        model[2].bias.copy_(torch.tensor([8.0, 0.0, 0.0], dtype=torch.double))
    X = torch.rand(6, 6, dtype=torch.double, generator=torch.Generator().manual_seed(2))
    y = torch.zeros(6, dtype=torch.long)
    X_adv = apgd_attack(model, X, y, epsilon=0.1, n_steps=25, random_start=False)
    expected = torch.stack([reference_apgd_linf(model, x, label, 0.1, 25)
                            for x, label in zip(X, y)])
    assert (model(X_adv).argmax(dim=1) == 0).all()
    torch.testing.assert_close(X_adv, expected)


def test_dlr_loss_is_shift_and_scale_invariant():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=generator)
    y = torch.randint(0, 5, (16,), generator=generator)
    assert torch.allclose(dlr_loss(3 * logits + 7, y), dlr_loss(logits, y), atol=1e-5)


def test_dlr_loss_value():
    # z = (3, 1, 0), y = 0: -(3 - 1) / (3 - 0).
    assert dlr_loss(torch.tensor([[3.0, 1.0, 0.0]]), torch.tensor([0])).item() == \
        pytest.approx(-2 / 3)


def test_dlr_needs_three_classes():
    model = nn.Linear(4, 2)
    with pytest.raises(ValueError, match="at least 3 classes"):
        apgd_attack(model, torch.rand(4, 4), torch.zeros(4, dtype=torch.long), epsilon=0.1,
                    loss="dlr")


@pytest.mark.parametrize("kwargs, match", [
    (dict(loss="hinge"), "loss"),
    (dict(rho=1.5), "rho"),
    (dict(n_steps=0), "n_steps"),
])
def test_apgd_bad_parameters(model, batch, kwargs, match):
    with pytest.raises(ValueError, match=match):
        apgd_attack(model, *batch, epsilon=0.1, **kwargs)


def test_run_attack_rejects_unknown_name(model, batch):
    with pytest.raises(ValueError, match="attack"):
        run_attack("fgsm", model, *batch, epsilon=0.1, n_steps=1)


def test_run_attack_rejects_step_size_for_apgd(model, batch):
    with pytest.raises(ValueError, match="step_size"):
        run_attack("apgd-ce", model, *batch, epsilon=0.1, n_steps=1, step_size=0.1)


# ----------------------------------------------------------------- PGD from a given start

@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_random_perturbation_fills_the_ball(norm):
    delta = random_perturbation(torch.zeros(500, 6), 0.3, norm)
    size = distance(delta, torch.zeros_like(delta), norm)
    assert torch.all(size <= 0.3 + 1e-6) and size.max() > 0.25


def test_pgd_takes_its_first_step_from_start(model, batch):
    X, y = batch
    model.eval()
    start = torch.full_like(X, 0.05)
    x = (X + start).requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    expected = X + (start + 0.02 * grad.sign()).clamp(-0.1, 0.1)
    result = pgd_attack(model, X, y, epsilon=0.1, step_size=0.02, n_steps=1, start=start)
    assert torch.allclose(result, expected, atol=1e-7)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_start_outside_the_ball_is_projected(model, batch, norm):
    X, y = batch
    X_adv = pgd_attack(model, X, y, epsilon=0.1, n_steps=1, norm=norm, start=torch.ones_like(X),
                       bounds=(0.0, 1.0))
    assert torch.all(distance(X_adv, X, norm) <= 0.1 + 1e-5)
    assert X_adv.min() >= 0.0 and X_adv.max() <= 1.0


def test_start_replaces_the_random_start(model, batch):
    X, y = batch
    start = random_perturbation(X, 0.1, "linf")
    first = pgd_attack(model, X, y, epsilon=0.1, n_steps=2, start=start)
    second = pgd_attack(model, X, y, epsilon=0.1, n_steps=2, start=start)
    assert torch.equal(first, second)


def test_start_of_the_wrong_shape(model, batch):
    X, y = batch
    with pytest.raises(ValueError, match="start must have the shape of X"):
        pgd_attack(model, X, y, epsilon=0.1, start=torch.zeros(3, 6))


def test_start_is_for_pgd_only(model, batch):
    with pytest.raises(ValueError, match="start applies to pgd only"):
        run_attack("apgd-ce", model, *batch, epsilon=0.1, n_steps=2,
                   start=torch.zeros_like(batch[0]))
