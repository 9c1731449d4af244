"""AutoAttack's members as plain torch functions: APGD-T, FAB-T, Square, and the ensemble."""

import numpy as np
import pytest
import torch
from scipy.optimize import linprog, minimize
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from srat_sklearn.attacks import apgd as apgd_module
from srat_sklearn.attacks import (
    apgd_targeted_attack,
    attack_members,
    attack_settings,
    autoattack,
    describe_attack,
    dlr_targeted_loss,
    fab_attack,
    pgd_attack,
    project_onto_hyperplane,
    run_attack,
    square_attack,
)
from srat_sklearn.attacks._common import attack_survivors, even_chunks, settled_siblings
from srat_sklearn.attacks.apgd import _apgd_run
from srat_sklearn.attacks.fab import SETTLE_EVERY, _fab_run
from srat_sklearn.attacks.square import DROP_EVERY


def linear_model(n_features=6, n_classes=5, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(n_features, n_classes)


@pytest.fixture
def data():
    generator = torch.Generator().manual_seed(3)
    X = torch.rand(40, 6, generator=generator)
    return X, X.new_zeros(40, dtype=torch.long)


def labelled_by(model, X):
    with torch.no_grad():
        return model(X).argmax(1)


# ----------------------------------------------------------------- the targeted DLR loss

def reference_dlr_targeted(z, y, t):
    z = np.asarray(z, dtype=np.float64)
    top = np.sort(z)[::-1]
    return -(z[y] - z[t]) / (top[0] - 0.5 * (top[2] + top[3]))


def test_dlr_targeted_matches_its_formula():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(20, 6, generator=generator)
    y, t = torch.randint(0, 6, (20,), generator=generator), torch.randint(0, 6, (20,),
                                                                         generator=generator)
    expected = [reference_dlr_targeted(z, a, b) for z, a, b in zip(logits.numpy(), y, t)]
    assert np.allclose(dlr_targeted_loss(logits, y, t).numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("n_classes", [3, 4, 7])
def test_dlr_targeted_is_shift_and_scale_invariant(n_classes):
    logits = torch.randn(10, n_classes, generator=torch.Generator().manual_seed(1))
    y, t = torch.zeros(10, dtype=torch.long), torch.ones(10, dtype=torch.long)
    assert torch.allclose(dlr_targeted_loss(5 * logits - 2, y, t), dlr_targeted_loss(logits, y, t),
                          atol=1e-5)


def test_dlr_targeted_with_two_classes_is_the_margin():
    logits = torch.tensor([[2.0, -1.0]])
    assert dlr_targeted_loss(logits, torch.tensor([0]), torch.tensor([1])).item() == -3.0


# ----------------------------------------------------------------- APGD-T

def test_apgd_t_raises_the_targeted_loss(data):
    model = linear_model()
    X, _ = data
    y = labelled_by(model, X)
    target = model(X).argsort(1, descending=True)[:, 1]
    X_adv = apgd_targeted_attack(model, X, y, epsilon=0.05, n_steps=10, n_targets=1,
                                 random_start=False)
    with torch.no_grad():
        before = dlr_targeted_loss(model(X), y, target)
        after = dlr_targeted_loss(model(X_adv), y, target)
    assert torch.all(after >= before - 1e-6) and after.mean() > before.mean() + 1e-3


def test_apgd_t_with_more_targets_fools_at_least_as_many(data):
    model = linear_model()
    X, _ = data
    y = labelled_by(model, X)
    fooled = []
    for n_targets in (1, 4):
        torch.manual_seed(0)
        X_adv = apgd_targeted_attack(model, X, y, epsilon=0.1, n_steps=10, n_targets=n_targets)
        fooled.append(int((labelled_by(model, X_adv) != y).sum()))
    assert fooled[1] >= fooled[0] > 0


@pytest.mark.parametrize("attack", [apgd_targeted_attack, fab_attack])
def test_targeted_attacks_need_two_classes(attack, data):
    X, y = data
    with pytest.raises(ValueError, match="at least 2 classes"):
        attack(nn.Linear(6, 1), X, y, epsilon=0.1, n_steps=2)


@pytest.mark.parametrize("attack", [apgd_targeted_attack, fab_attack])
@pytest.mark.parametrize("n_targets", [0, -1])
def test_targeted_attacks_need_a_target(attack, data, n_targets):
    X, y = data
    with pytest.raises(ValueError, match="n_targets"):
        attack(linear_model(), X, y, epsilon=0.1, n_steps=2, n_targets=n_targets)


@pytest.mark.parametrize("attack", [apgd_targeted_attack, fab_attack])
@pytest.mark.parametrize("batch_size, error", [(0, ValueError), (-3, ValueError),
                                                (2.5, TypeError)])
def test_targeted_attacks_need_a_positive_whole_batch_size(attack, data, batch_size, error):
    X, y = data
    with pytest.raises(error, match="batch_size"):
        attack(linear_model(), X, y, epsilon=0.1, n_steps=2, batch_size=batch_size)


# ----------------------------------------------------------------- several targets in one pass

class RowCounter(nn.Module):
    """``model``, recording how many rows each forward pass gets."""

    def __init__(self, model):
        super().__init__()
        self.model, self.rows = model, []

    def forward(self, x):
        self.rows.append(len(x))
        return self.model(x)


@pytest.mark.parametrize("attack, options", [
    (apgd_targeted_attack, dict(random_start=False)),
    (fab_attack, {}),
], ids=["apgd-t", "fab-t"])
def test_targets_together_fool_the_same_samples(attack, options, data):
    model = linear_model()
    X, _ = data
    y = labelled_by(model, X)
    fooled = {}
    for batch_size in (None, 4 * len(X)):
        X_adv = attack(model, X, y, epsilon=0.08, n_steps=10, n_targets=4, batch_size=batch_size,
                       **options)
        assert (X_adv - X).abs().max() <= 0.08 + 1e-6
        fooled[batch_size] = labelled_by(model, X_adv) != y
    assert 0 < int(fooled[None].sum()) < len(X)  # the check can tell the two apart
    assert torch.equal(fooled[None], fooled[4 * len(X)])


@pytest.mark.parametrize("batch_size, passes", [
    (None, [8, 8, 8]),  # one target at a time
    (16, [16, 8]),  # targets 1 and 2 together, then 3
    (24, [24]),  # all three in one pass
    (5, [4, 4, 4] * 2),  # two parts of 4 samples, one target per pass
], ids=["none", "two-then-one", "all", "small"])
def test_targets_share_a_pass_while_their_rows_fit(batch_size, passes, monkeypatch):
    calls = []
    real_run = apgd_module._apgd_run
    monkeypatch.setattr(apgd_module, "_apgd_run",
                        lambda model, X, *a, **k: calls.append(len(X)) or real_run(model, X, *a,
                                                                                   **k))
    model = linear_model()
    X = torch.rand(8, 6, generator=torch.Generator().manual_seed(0))
    # Too small a radius to fool any sample: every target runs on all 8.
    run_attack("apgd-t", model, X, labelled_by(model, X), epsilon=1e-6, n_steps=3, n_targets=3,
               batch_size=batch_size)
    assert calls == passes


def test_settled_siblings_spreads_to_every_row_of_a_sample():
    settled = torch.tensor([True, False, False, False, False, True])
    rows = torch.arange(6)
    assert settled_siblings(settled, rows, 3).tolist() == [True, False, True, True, False, True]


def test_apgd_rows_of_a_fooled_sample_leave_together():
    """Row 0 is misclassified from the start; row 1, of the same sample, is not fooled."""
    model = linear_model(n_classes=3)
    X = torch.rand(1, 6, generator=torch.Generator().manual_seed(0)).repeat(2, 1)
    label = labelled_by(model, X[:1]).item()
    y = torch.tensor([(label + 1) % 3, label])
    target = torch.tensor([label, (label + 2) % 3])
    rows = {}
    for n_samples in (None, 1):
        counter = RowCounter(model)
        with torch.enable_grad():
            _apgd_run(counter, X, y, dlr_targeted_loss, target=target, epsilon=1e-6, n_steps=30,
                      norm="linf", rho=0.75, random_start=False, box=None, n_samples=n_samples)
        rows[n_samples] = sum(counter.rows)
    # Both rows run until the first checkpoint; then row 0 leaves (fooled), and row 1 with it
    # only when it attacks the same sample.
    check = apgd_module._apgd_checkpoints(30)[0]
    assert rows[None] == 2 * (1 + check) + (30 - check)
    assert rows[1] == 2 * (1 + check)


def test_fab_rows_of_a_settled_sample_leave_together():
    """Towards class 1 the sample is 0.5 away; towards class 2, 10 away: beyond epsilon."""
    model = nn.Linear(2, 3)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
        model.bias.copy_(torch.tensor([0.0, 0.0, -10.0]))
    X, y, target = torch.tensor([[-0.5, 0.0]] * 2), torch.zeros(2, dtype=torch.long), \
        torch.tensor([1, 2])
    rows = {}
    for n_samples in (None, 1):
        counter = RowCounter(model)
        best, distance = _fab_run(counter, X, y, target, epsilon=1.0, n_steps=20, norm="linf",
                                  box=None, alpha_max=0.1, eta=1.05, beta=0.9, start=None,
                                  n_samples=n_samples)
        assert distance[0] <= 1.0 and distance[1] > 1.0
        rows[n_samples] = sum(counter.rows)
    # Two passes per step (gradient and check) for each row until the first check for settled
    # rows; then the row towards class 2 goes on alone, unless it attacks the same sample.
    assert rows[1] == 2 * 2 * SETTLE_EVERY
    assert rows[None] == rows[1] + 2 * (20 - SETTLE_EVERY)


class DeviceReads(TorchDispatchMode):
    """Counts the ops that make the host wait for the device: reading a value, or a count."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default):
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("attack", [apgd_targeted_attack, fab_attack], ids=["apgd-t", "fab-t"])
def test_targeted_attacks_read_the_device_not_at_every_step(attack, data):
    model = linear_model()
    X, _ = data
    y = labelled_by(model, X)
    reads = {}
    for n_steps in (20, 60):
        with DeviceReads() as counter:  # 1e-6: no sample is fooled, every target runs
            attack(model, X, y, epsilon=1e-6, n_steps=n_steps, n_targets=3, batch_size=3 * len(X))
        reads[n_steps] = counter.count
    assert reads[60] - reads[20] <= 40 // 5


def test_square_reads_the_device_not_at_every_query(data):
    model = linear_model()
    X, _ = data
    y = labelled_by(model, X)
    reads = {}
    for n_queries in (100, 300):
        with DeviceReads() as counter:
            square_attack(model, X, y, epsilon=1e-6, n_queries=n_queries)
        reads[n_queries] = counter.count
    assert reads[300] - reads[100] <= 200 // 10  # at most one read per 10 queries


def test_square_keeps_the_first_adversarial_example(data):
    # A sample fooled between two drops stays in the batch: its point must not move again.
    model = linear_model()
    X, _ = data
    y = labelled_by(model, X)
    torch.manual_seed(0)
    X_adv = square_attack(model, X, y, epsilon=0.3, n_queries=DROP_EVERY - 1)
    fooled = labelled_by(model, X_adv) != y
    assert fooled.any()
    torch.manual_seed(0)
    first = square_attack(model, X, y, epsilon=0.3, n_queries=1)
    once = labelled_by(model, first) != y
    assert once.any()  # fooled at the first query ...
    assert torch.equal(X_adv[once], first[once])  # ... and kept through the later ones


# ----------------------------------------------------------------- FAB's projection

def random_plane(seed, d=5):
    rng = np.random.default_rng(seed)
    point = rng.uniform(0.2, 0.8, size=d)
    w = rng.normal(size=d)
    c = rng.uniform(-0.5, 0.5)
    return point, w, c


def lp_linf(point, w, c, low, high):
    """min t s.t. |d_i| <= t, low - point <= d <= high - point, w . d = c (variables d, t)."""
    d = len(point)
    cost = np.r_[np.zeros(d), 1.0]
    upper = np.block([[np.eye(d), -np.ones((d, 1))], [-np.eye(d), -np.ones((d, 1))]])
    bounds = [(lo, hi) for lo, hi in zip(low - point, high - point)] + [(0, None)]
    result = linprog(cost, A_ub=upper, b_ub=np.zeros(2 * d), A_eq=np.r_[w, 0.0][None],
                     b_eq=[c], bounds=bounds)
    return result.x[-1] if result.success else None


def qp_l2(point, w, c, low, high):
    result = minimize(lambda d: d @ d, np.zeros_like(point), jac=lambda d: 2 * d,
                      constraints=[{"type": "eq", "fun": lambda d: w @ d - c}],
                      bounds=list(zip(low - point, high - point)), method="SLSQP",
                      options={"ftol": 1e-12, "maxiter": 500})
    return np.sqrt(result.fun) if result.success else None


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("norm, reference", [("linf", lp_linf), ("l2", qp_l2)])
def test_projection_is_the_smallest_step_onto_the_plane(seed, norm, reference):
    point, w, c = random_plane(seed)
    low, high = np.zeros_like(point), np.ones_like(point)
    as_t = lambda a: torch.tensor(np.atleast_2d(a), dtype=torch.float64)  # noqa: E731
    step = project_onto_hyperplane(as_t(point), as_t(w), torch.tensor([c], dtype=torch.float64),
                                   norm, low=as_t(low), high=as_t(high))[0].numpy()
    expected = reference(point, w, c, low, high)
    assert expected is not None  # the plane is reachable in these cases
    assert w @ step == pytest.approx(c, abs=1e-9)
    assert np.all(point + step >= low - 1e-12) and np.all(point + step <= high + 1e-12)
    size = np.abs(step).max() if norm == "linf" else np.linalg.norm(step)
    assert size == pytest.approx(expected, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_projection_without_a_box_has_the_closed_form(norm):
    w = torch.tensor([[3.0, -4.0]])
    step = project_onto_hyperplane(torch.zeros(1, 2), w, torch.tensor([5.0]), norm)[0]
    expected = [0.6, -0.8] if norm == "l2" else [5 / 7, -5 / 7]
    assert torch.allclose(step, torch.tensor(expected))


def test_projection_out_of_reach_goes_to_the_corner():
    # w . d = 10 cannot be reached with d in [0, 1]^2 - 0.5: the best is the corner (0.5, 0.5).
    step = project_onto_hyperplane(torch.full((1, 2), 0.5), torch.ones(1, 2), torch.tensor([10.0]),
                                   "l2", low=torch.zeros(1, 2), high=torch.ones(1, 2))
    assert torch.allclose(step, torch.tensor([[0.5, 0.5]]))


# ----------------------------------------------------------------- FAB-T

def two_class_linear_problem(seed=0):
    """Logits w.x and -w.x: the boundary w.x = 0 lies |w.x| / ||w||_dual from x."""
    torch.manual_seed(seed)
    model = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        model.weight[1] = -model.weight[0]
    X = torch.randn(30, 4)
    return model, X, labelled_by(model, X), model.weight[0] - model.weight[1]


def closest_distance(X, w, norm):
    return (X @ w).abs() / (w.abs().sum() if norm == "linf" else w.norm())


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_search_nearly_reaches_the_closest_point(norm):
    # With epsilon 0 no sample stops early: the run keeps stepping back to a closer point.
    model, X, y, w = two_class_linear_problem()
    best, distance = _fab_run(model, X, y, 1 - y, epsilon=0.0, n_steps=20, norm=norm, box=None,
                              alpha_max=0.1, eta=1.05, beta=0.9, start=None)
    assert torch.all(labelled_by(model, best) != y)
    assert torch.all(distance <= 1.01 * closest_distance(X, w, norm) + 1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_fools_every_sample_within_a_large_epsilon(norm):
    model, X, y, w = two_class_linear_problem()
    X_adv = fab_attack(model, X, y, epsilon=10.0, n_steps=5, norm=norm)
    assert torch.all(labelled_by(model, X_adv) != y)
    size = (X_adv - X).abs().amax(1) if norm == "linf" else (X_adv - X).norm(dim=1)
    assert torch.all(size <= 1.06 * closest_distance(X, w, norm) + 1e-6)


def test_fab_keeps_what_lies_beyond_epsilon_unchanged():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    X = torch.randn(30, 4)
    y = labelled_by(model, X)
    X_adv = fab_attack(model, X, y, epsilon=1e-4, n_steps=10)
    moved = (X_adv != X).any(1)
    assert torch.all(labelled_by(model, X_adv[moved]) != y[moved])
    assert (~moved).any()  # most samples lie further than 1e-4 from the boundary


# ----------------------------------------------------------------- Square

class Quantised(nn.Module):
    """A linear model behind an input quantiser: zero gradients everywhere, PGD is blind."""

    def __init__(self, weight, levels=4):
        super().__init__()
        self.linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        self.levels = levels
        with torch.no_grad():
            self.linear.weight.copy_(weight)

    def forward(self, X):
        return self.linear(torch.round(X * self.levels) / self.levels)


@pytest.fixture
def masked():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(3, 8, generator=generator)
    model = Quantised(weight)
    X = torch.rand(60, 8, generator=generator)
    return model, X, labelled_by(model, X)


@pytest.mark.parametrize("norm, epsilon", [("linf", 0.2), ("l2", 0.6)])
def test_square_fools_a_masked_model_that_pgd_cannot(masked, norm, epsilon):
    model, X, y = masked
    torch.manual_seed(0)
    pgd = labelled_by(model, pgd_attack(model, X, y, epsilon=epsilon, n_steps=20, norm=norm,
                                        random_start=False))
    square = labelled_by(model, square_attack(model, X, y, epsilon=epsilon, n_queries=300,
                                              norm=norm, bounds=(0.0, 1.0)))
    assert torch.all(pgd == y)  # zero gradients: PGD never moves
    assert (square != y).float().mean() > 0.3


@pytest.mark.parametrize("shape", [(12, 7), (12, 3, 9, 9), (12, 2, 5)])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_square_works_on_rows_images_and_other_shapes(shape, norm):
    generator = torch.Generator().manual_seed(0)
    X = torch.rand(shape, generator=generator)
    model = nn.Sequential(nn.Flatten(), nn.Linear(X[0].numel(), 4))
    y = torch.randint(0, 4, (shape[0],), generator=generator)
    X_adv = square_attack(model, X, y, epsilon=0.3, n_queries=30, norm=norm)
    size = (X_adv - X).flatten(1).abs().amax(1) if norm == "linf" else (X_adv - X).flatten(1).norm(
        dim=1)
    assert X_adv.shape == X.shape and torch.all(size <= 0.3 + 1e-5)
    assert not torch.equal(X_adv, X)


def test_square_lowers_the_margin(data):
    model = linear_model()
    X, _ = data
    y = labelled_by(model, X)
    X_adv = square_attack(model, X, y, epsilon=0.05, n_queries=100)

    def margin(x):
        z = model(x).detach()
        return z.gather(1, y[:, None]).squeeze(1) - z.scatter(1, y[:, None], -1e9).amax(1)
    assert torch.all(margin(X_adv) <= margin(X) + 1e-6)
    assert margin(X_adv).mean() < margin(X).mean()


@pytest.mark.parametrize("n_queries", [0, -3])
def test_square_needs_queries(data, n_queries):
    with pytest.raises(ValueError, match="n_queries"):
        square_attack(linear_model(), *data, epsilon=0.1, n_queries=n_queries)


# ----------------------------------------------------------------- ensembles and AutoAttack

class RecordingRun:
    """A fake attack that flips the prediction of one sample and records what it was given."""

    def __init__(self, sample):
        self.sample, self.received = sample, []

    def __call__(self, X, y, rows_of):
        self.received.append(sorted(rows_of(X)))
        X_adv = X.clone()
        for i, row in enumerate(rows_of(X)):
            if row == self.sample:
                X_adv[i, 1] = 10.0  # class 1 wins
        return X_adv


class FirstColumns(nn.Module):
    """The first three inputs are the logits; the fourth holds the row's index."""

    def forward(self, X):
        return X[:, :3]


def test_each_attack_runs_only_on_the_samples_still_standing():
    X = torch.tensor([[1.0, 0, 0, 0], [1.0, 0, 0, 1], [1.0, 0, 0, 2], [0.0, 5, 0, 3]])
    y = torch.zeros(4, dtype=torch.long)
    rows_of = lambda part: part[:, 3].long().tolist()  # noqa: E731
    first, second = RecordingRun(0), RecordingRun(1)
    X_adv = attack_survivors(FirstColumns(), X, y, [lambda a, b: first(a, b, rows_of),
                                                    lambda a, b: second(a, b, rows_of)])
    assert first.received == [[0, 1, 2]]  # row 3 is misclassified from the start
    assert second.received == [[1, 2]]
    assert X_adv[0, 1] == 10 and X_adv[1, 1] == 10
    assert torch.equal(X_adv[3], X[3])


@pytest.mark.parametrize("n, batch_size", [(540, 250), (7, 3), (5, 5), (4, 10), (1, 1),
                                           (10, None)])
def test_even_chunks_cover_in_near_equal_parts(n, batch_size):
    parts = even_chunks(n, batch_size)
    sizes = [part.stop - part.start for part in parts]
    assert [i for part in parts for i in range(part.start, part.stop)] == list(range(n))
    assert max(sizes) <= (batch_size or n) and max(sizes) - min(sizes) <= 1
    assert len(parts) == (1 if batch_size is None else -(-n // batch_size))


def test_each_run_gets_all_survivors_in_full_batches():
    # Six rows; the first run fools rows 0-3, so the second sees rows 4-5 as one batch of two,
    # not the remainders of the first run's batches.
    X = torch.cat([torch.tensor([[1.0, 0, 0]]).repeat(6, 1),
                   torch.arange(6.0)[:, None]], dim=1)
    y = torch.zeros(6, dtype=torch.long)
    rows_of = lambda part: part[:, 3].long().tolist()  # noqa: E731
    received = []

    def run(fooling):
        def attack(X_part, y_part):
            received.append(rows_of(X_part))
            X_adv = X_part.clone()
            X_adv[[r in fooling for r in rows_of(X_part)], 1] = 10.0
            return X_adv
        return attack

    attack_survivors(FirstColumns(), X, y, [run({0, 1, 2, 3}), run({4})], batch_size=3)
    assert received == [[0, 1, 2], [3, 4, 5], [4, 5]]


def test_batched_attack_equals_unbatched(data):
    model = linear_model()
    X, _ = data
    y = labelled_by(model, X)
    settings = dict(epsilon=0.1, n_steps=5, random_start=False)
    whole = run_attack("pgd", model, X, y, **settings)
    assert torch.equal(run_attack("pgd", model, X, y, batch_size=7, **settings), whole)


def test_autoattack_members_and_order():
    assert attack_members("autoattack") == ("apgd-ce", "apgd-t", "fab-t", "square")


def test_autoattack_is_at_least_as_strong_as_each_member(data):
    model = linear_model()
    X, _ = data
    y = labelled_by(model, X)
    budget = dict(epsilon=0.08, n_steps=10)
    fooled = {}
    for name in ("apgd-ce", "apgd-t", "fab-t", "square", "autoattack"):
        torch.manual_seed(0)
        extra = {"n_queries": 100} if name in ("square", "autoattack") else {}
        X_adv = run_attack(name, model, X, y, **budget, **extra)
        fooled[name] = set(torch.nonzero(labelled_by(model, X_adv) != y).flatten().tolist())
    for name in ("apgd-ce", "apgd-t", "fab-t", "square"):
        assert len(fooled["autoattack"]) >= len(fooled[name]), name


def test_autoattack_function_equals_run_attack(data):
    model = linear_model()
    X, y = data
    torch.manual_seed(1)
    first = autoattack(model, X, y, epsilon=0.05, n_steps=4, n_queries=10)
    torch.manual_seed(1)
    second = run_attack("autoattack", model, X, y, epsilon=0.05, n_steps=4, n_queries=10)
    assert torch.equal(first, second)


def test_autoattack_runs_on_binary_problems(data):
    model = linear_model(n_classes=2)
    X, _ = data
    y = labelled_by(model, X)
    X_adv = autoattack(model, X, y, epsilon=0.2, n_steps=5, n_queries=20)
    assert (labelled_by(model, X_adv) != y).any()


@pytest.mark.parametrize("kwargs, match", [
    (dict(attack="fgsm"), "attack"),
    (dict(attack=[]), "at least one"),
    (dict(attack="pgd", n_queries=10), "n_queries applies to square"),
    (dict(attack="apgd-ce", n_targets=3), "n_targets applies to"),
    (dict(attack="square", n_queries=0), "n_queries"),
    (dict(attack="autoattack", n_targets=0), "n_targets"),
    (dict(attack="apgd-t", n_restarts=0), "n_restarts"),
    (dict(attack="fab-t", epsilon=-0.1), "epsilon"),
    (dict(attack="apgd-ce", step_size=0.1), "step_size applies to pgd"),
    (dict(attack=("pgd", "square"), start=torch.zeros(40, 6)), "start applies"),
])
def test_bad_attack_parameters(data, kwargs, match):
    kwargs = {"epsilon": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        run_attack(kwargs.pop("attack"), linear_model(), *data, **kwargs)


def test_settings_state_every_budget():
    settings = attack_settings("autoattack", epsilon=8 / 255, norm="linf")
    assert settings["members"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert (settings["n_steps"], settings["n_targets"], settings["n_queries"],
            settings["n_restarts"]) == (100, 9, 5000, 1)
    line = describe_attack(settings)
    for words in ("AutoAttack", "100 iterations", "9 target classes", "5000 queries",
                  "1 restart", "L-inf", "epsilon 0.0313725", "every attack fails"):
        assert words in line
