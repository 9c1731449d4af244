"""Losses against values computed by hand on tiny inputs."""

import math

import pytest
import torch

from srat_sklearn.losses import (
    ReweightedLoss,
    balanced_softmax_loss,
    focal_loss,
    ldam_loss,
    ldam_margins,
    log_class_prior,
    supervised_contrastive_loss,
    weighted_cross_entropy,
)


def ce_by_hand(logits, label):
    return -logits[label] + math.log(sum(math.exp(v) for v in logits))


LOGITS = [[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [0.0, 0.0, 3.0]]
TARGET = [0, 2, 2]


def test_weighted_cross_entropy_is_mean_of_weighted_terms():
    weight = [0.5, 1.0, 2.0]
    expected = sum(weight[t] * ce_by_hand(row, t) for row, t in zip(LOGITS, TARGET)) / 3
    got = weighted_cross_entropy(torch.tensor(LOGITS), torch.tensor(TARGET), torch.tensor(weight))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_weighted_cross_entropy_without_weight_is_cross_entropy():
    got = weighted_cross_entropy(torch.tensor(LOGITS), torch.tensor(TARGET))
    expected = sum(ce_by_hand(row, t) for row, t in zip(LOGITS, TARGET)) / 3
    assert got.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0])
def test_focal_loss_by_hand(gamma):
    weight = [1.0, 1.0, 3.0]
    terms = []
    for row, t in zip(LOGITS, TARGET):
        ce = weight[t] * ce_by_hand(row, t)  # the weight sits inside the CE
        terms.append((1 - math.exp(-ce)) ** gamma * ce)
    got = focal_loss(torch.tensor(LOGITS), torch.tensor(TARGET), torch.tensor(weight), gamma)
    assert got.item() == pytest.approx(sum(terms) / 3, rel=1e-6)


def test_ldam_margins_follow_quarter_power():
    margins = ldam_margins([10000, 100, 1], max_margin=0.5)
    assert margins.tolist() == pytest.approx([0.05, 0.5 / 10 ** 0.5, 0.5], rel=1e-6)


def test_ldam_loss_by_hand():
    margins = torch.tensor([0.1, 0.2, 0.4])
    scale = 2.0
    expected = 0.0
    for row, t in zip(LOGITS, TARGET):
        shifted = [scale * (v - (margins[t].item() if j == t else 0.0)) for j, v in enumerate(row)]
        expected += ce_by_hand(shifted, t)
    got = ldam_loss(torch.tensor(LOGITS), torch.tensor(TARGET), margins, scale=scale)
    assert got.item() == pytest.approx(expected / 3, rel=1e-6)


@pytest.mark.parametrize("counts", [[0, 3], [], [[1, 2]]])
def test_ldam_margins_reject_bad_counts(counts):
    with pytest.raises(ValueError, match="class_counts"):
        ldam_margins(counts)


def supcon_by_hand(features, labels, t):
    z = [[v / math.sqrt(sum(u * u for u in f)) for v in f] for f in features]
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    losses = []
    for i in range(len(z)):
        positives = [p for p in range(len(z)) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(math.exp(dot(z[i], z[a]) / t) for a in range(len(z)) if a != i)
        losses.append(-sum(math.log(math.exp(dot(z[i], z[p]) / t) / denominator)
                           for p in positives) / len(positives))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_supcon_by_hand(temperature):
    features = [[1.0, 2.0, 0.0], [0.5, 1.0, 1.0], [-1.0, 0.0, 2.0], [0.0, -1.0, 1.0],
                [3.0, 0.0, 0.0]]
    labels = [0, 0, 1, 1, 2]  # the anchor of class 2 has no positive and is left out
    got = supervised_contrastive_loss(torch.tensor(features), torch.tensor(labels), temperature)
    assert got.item() == pytest.approx(supcon_by_hand(features, labels, temperature), rel=1e-5)


def test_supcon_is_scale_invariant():
    features, labels = torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])
    assert supervised_contrastive_loss(features, labels).item() == pytest.approx(
        supervised_contrastive_loss(7.0 * features, labels).item(), rel=1e-5)


@pytest.mark.parametrize("labels", [[0, 1, 2, 3], [5]])
def test_supcon_without_pairs_is_zero_with_zero_gradient(labels):
    features = torch.randn(len(labels), 3, requires_grad=True)
    loss = supervised_contrastive_loss(features, torch.tensor(labels))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(features.grad, torch.zeros_like(features))


def test_supcon_gradient_is_finite_with_unpaired_anchors():
    features = torch.randn(5, 3, requires_grad=True)
    supervised_contrastive_loss(features, torch.tensor([0, 0, 1, 2, 3])).backward()
    assert torch.isfinite(features.grad).all()
    assert features.grad.abs().sum() > 0


def test_supcon_lower_for_separated_classes():
    labels = torch.tensor([0, 0, 1, 1])
    separated = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.1, 1.0]])
    loss = supervised_contrastive_loss
    assert loss(separated, labels) < loss(mixed, labels)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0])
def test_balanced_softmax_by_hand(tau):
    # -log(n_y^tau e^{z_y} / sum_j n_j^tau e^{z_j}), weighted by w_y and averaged (Ren et al.).
    counts, weight = [100, 10, 1], [0.5, 1.0, 1.5]
    expected = sum(
        weight[y] * -math.log(counts[y] ** tau * math.exp(z[y])
                              / sum(n ** tau * math.exp(v) for n, v in zip(counts, z)))
        for z, y in zip(LOGITS, TARGET)) / len(TARGET)
    got = balanced_softmax_loss(torch.tensor(LOGITS), torch.tensor(TARGET),
                                log_class_prior(counts), torch.tensor(weight), tau)
    assert got.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("counts", [[0, 3], [], [[1, 2]]])
def test_log_class_prior_rejects_bad_counts(counts):
    with pytest.raises(ValueError, match="positive counts"):
        log_class_prior(counts)


@pytest.mark.parametrize("loss", ["ce", "focal", "ldam", "bsl"])
def test_reweighted_loss_matches_functions(loss):
    logits, target = torch.tensor(LOGITS), torch.tensor(TARGET)
    criterion = ReweightedLoss(3, loss=loss, focal_gamma=2.0, ldam_max_margin=0.3, ldam_scale=2.0,
                               bsl_tau=0.5)
    criterion.set_class_weights([0.5, 1.0, 1.5])
    criterion.set_class_counts([100, 10, 1])
    weight = torch.tensor([0.5, 1.0, 1.5])
    expected = {
        "ce": weighted_cross_entropy(logits, target, weight),
        "focal": focal_loss(logits, target, weight, 2.0),
        "ldam": ldam_loss(logits, target, ldam_margins([100, 10, 1], 0.3), weight, 2.0),
        "bsl": balanced_softmax_loss(logits, target, log_class_prior([100, 10, 1]), weight,
                                     0.5),
    }[loss]
    assert criterion(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("loss", ["ce", "focal", "ldam", "bsl"])
def test_shares_normalised_by_the_whole_batch_average_to_its_loss(loss):
    # Data-parallel: DDP averages the processes' losses; each must divide by the mean weight
    # of the whole batch for that average to be the whole batch's weights-normalised loss.
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 0, 0, 1, 2, 2])  # shares of different mean weights
    criterion = ReweightedLoss(3, loss=loss, weight_normalization="weights")
    criterion.set_class_weights([0.2, 1.0, 4.0])
    criterion.set_class_counts([100, 10, 1])
    shares = [criterion(logits[rows], target[rows], batch_target=target)
              for rows in (slice(None, 3), slice(3, None))]
    assert torch.stack(shares).mean().item() == pytest.approx(
        criterion(logits, target).item(), rel=1e-6)


@pytest.mark.parametrize("loss", ["ce", "bsl"])
def test_weight_normalization_by_weights_is_torchs_weighted_mean(loss):
    # torch's cross_entropy(weight=...) divides by the sum of the batch's weights.
    logits, target = torch.tensor(LOGITS), torch.tensor(TARGET)
    weight, counts = torch.tensor([0.5, 1.0, 1.5]), [100, 10, 1]
    criterion = ReweightedLoss(3, loss=loss, weight_normalization="weights")
    criterion.set_class_weights(weight)
    criterion.set_class_counts(counts)
    shifted = logits + log_class_prior(counts) if loss == "bsl" else logits
    expected = torch.nn.functional.cross_entropy(shifted, target, weight=weight)
    assert criterion(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("loss", ["focal", "ldam"])
def test_weight_normalization_by_weights_divides_by_the_mean_sample_weight(loss):
    logits, target = torch.tensor(LOGITS), torch.tensor(TARGET)
    weights = [0.5, 1.0, 1.5]
    by_samples, by_weights = (ReweightedLoss(3, loss=loss, weight_normalization=normalization)
                              for normalization in ("samples", "weights"))
    for criterion in (by_samples, by_weights):
        criterion.set_class_weights(weights)
        criterion.set_class_counts([100, 10, 1])
    mean_weight = sum(weights[y] for y in TARGET) / len(TARGET)
    assert by_weights(logits, target).item() == pytest.approx(
        by_samples(logits, target).item() / mean_weight, rel=1e-6)


def test_set_class_weights_is_in_place():
    criterion = ReweightedLoss(2)
    buffer = criterion.weight
    criterion.set_class_weights([0.5, 1.5])
    assert criterion.weight is buffer
    assert criterion.weight.tolist() == [0.5, 1.5]
    assert "weight" in criterion.state_dict()


@pytest.mark.parametrize("kwargs, match", [
    (dict(loss="hinge"), "loss"),
    (dict(focal_gamma=-1.0), "focal_gamma"),
    (dict(ldam_scale=0.0), "ldam_scale"),
    (dict(bsl_tau=-1.0), "bsl_tau"),
    (dict(weight_normalization="batch"), "weight_normalization"),
])
def test_reweighted_loss_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReweightedLoss(3, **kwargs)
