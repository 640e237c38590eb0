"""ASL losses on hand-made tensors, checked against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import ResNetConfig

from hf_asl import ASLConfig, ASLLoss, ASLModel, CosFaceLoss, InfoNCELoss, NormRatioLoss, build_asl_loss

E = math.e


def test_norm_ratio_pk_batch_hand_value():
    # Two identities x three views. Valid (wider, narrower) pairs with tolerance 0.05:
    # (0,1) 1.0 > 0.55, (0,2) 1.0 > 0.57, (3,5) and (4,5) 1.0 > 0.35; not (2,1): 0.52 < 0.55,
    # not (3,4): equal content.
    norms = torch.tensor([2.0, 1.0, 4.0, 3.0, 3.0, 1.5])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    content = torch.tensor([1.0, 0.5, 0.52, 1.0, 1.0, 0.3])
    loss = NormRatioLoss(tolerance=0.05)(norms, labels, content)
    expected = (E ** (1 - 2 / 1) + E ** (1 - 2 / 4) + E ** (1 - 3 / 1.5) + E ** (1 - 3 / 1.5)) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # A wider-view hard-negative pair adds its ordering (row 1 holds more than row 2).
    with_pair = NormRatioLoss(tolerance=0.05)(norms, labels, content, ordered_pairs=torch.tensor([[1, 2]]))
    assert with_pair.item() == pytest.approx((4 * expected + E ** (1 - 1 / 4)) / 5, rel=1e-6)


def test_norm_ratio_gradient_reaches_both_norms():
    norms = torch.tensor([2.0, 1.0], requires_grad=True)
    loss = NormRatioLoss()(norms, torch.tensor([0, 0]), torch.tensor([1.0, 0.5]))
    loss.backward()
    # d/da exp(1 - a/b) = -exp(1 - a/b) / b ; d/db = exp(1 - a/b) * a / b^2
    torch.testing.assert_close(norms.grad, torch.tensor([-E ** -1, 2 * E ** -1]))


def test_norm_ratio_without_valid_pairs_is_zero_with_a_gradient():
    norms = torch.tensor([2.0, 1.0, 3.0], requires_grad=True)
    loss = NormRatioLoss()(norms, torch.tensor([0, 1, 2]), torch.tensor([1.0, 0.5, 0.2]))
    assert loss.item() == 0.0
    loss.backward()
    torch.testing.assert_close(norms.grad, torch.zeros(3))


def test_norm_ratio_matches_a_loop_for_any_p_by_k():
    generator = torch.Generator().manual_seed(0)
    p, k, tolerance = 5, 7, 0.05
    norms = torch.rand(p * k, generator=generator) + 0.5
    labels = torch.arange(p).repeat_interleave(k)
    content = torch.rand(p * k, generator=generator)
    terms = [
        math.exp(1 - norms[a].item() / norms[b].item())
        for a in range(p * k)
        for b in range(p * k)
        if labels[a] == labels[b] and content[a] > content[b] + tolerance
    ]
    loss = NormRatioLoss(tolerance)(norms, labels, content)
    assert loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def cosface_with_unit_centres(**kwargs) -> CosFaceLoss:
    loss = CosFaceLoss(n_classes=2, dim=2, **kwargs)
    with torch.no_grad():
        loss.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))  # centres are normalised inside
    return loss


def test_cosface_hand_value():
    # Row 0: cos = (1, 0), target 0 -> logits (10 * 0.8, 0) = (8, 0): CE = log(1 + e^-8).
    # Row 1: cos = (0.6, 0.8), target 1 -> logits (6, 10 * 0.6) = (6, 6): CE = log 2.
    descriptors = torch.tensor([[3.0, 0.0], [0.6, 0.8]])  # row 0 un-normalised on purpose
    labels = torch.tensor([0, 1])
    loss = cosface_with_unit_centres(scale=10.0, margin=0.2)(descriptors, labels)
    assert loss.item() == pytest.approx((math.log1p(E ** -8) + math.log(2)) / 2, rel=1e-6)


def test_cosface_label_smoothing_hand_value():
    # Row 0 of the previous test: -log p0 = a, -log p1 = 8 + a, a = log(1 + e^-8);
    # smoothing 0.1 over 2 classes: 0.9 a + 0.1 (a + 8 + a) / 2 = a + 0.4.
    loss = cosface_with_unit_centres(scale=10.0, margin=0.2, label_smoothing=0.1)(
        torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    assert loss.item() == pytest.approx(math.log1p(E ** -8) + 0.4, rel=1e-6)


def test_infonce_hand_value_and_negatives():
    descriptors = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])  # row 2 has no positive: not an anchor, still a candidate
    loss = InfoNCELoss(temperature=1.0)(descriptors, labels)
    anchor0 = -math.log(E ** 0.6 / (E ** 0.6 + E ** 0.0))
    anchor1 = -math.log(E ** 0.6 / (E ** 0.6 + E ** 0.8))
    assert loss.item() == pytest.approx((anchor0 + anchor1) / 2, rel=1e-6)

    negatives = torch.tensor([[-2.0, 0.0]])  # normalised to (-1, 0): cos -1 with row 0, -0.6 with row 1
    loss = InfoNCELoss(temperature=1.0)(descriptors, labels, negatives=negatives)
    anchor0 = -math.log(E ** 0.6 / (E ** 0.6 + E ** 0.0 + E ** -1.0))
    anchor1 = -math.log(E ** 0.6 / (E ** 0.6 + E ** 0.8 + E ** -0.6))
    assert loss.item() == pytest.approx((anchor0 + anchor1) / 2, rel=1e-6)


def test_infonce_averages_over_several_positives():
    # K = 3 views of one identity + one other: anchor 0 has positives 1 and 2.
    descriptors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 0, 1])
    t = 0.5
    loss = InfoNCELoss(temperature=t)(descriptors, labels)
    unit = descriptors / descriptors.norm(dim=1, keepdim=True)
    sims = (unit @ unit.T / t).tolist()
    expected = []
    for i in range(3):
        denominator = sum(math.exp(sims[i][j]) for j in range(4) if j != i)
        expected.append(-sum(sims[i][j] - math.log(denominator) for j in range(3) if j != i) / 2)
    assert loss.item() == pytest.approx(sum(expected) / 3, rel=1e-6)


def test_infonce_gradient_is_finite_despite_masked_diagonal():
    descriptors = torch.randn(8, 4, requires_grad=True)
    InfoNCELoss()(descriptors, torch.arange(4).repeat_interleave(2), negatives=torch.randn(3, 4)).backward()
    assert torch.isfinite(descriptors.grad).all() and descriptors.grad.abs().sum() > 0


def test_infonce_without_positives_is_zero():
    descriptors = torch.randn(3, 4, requires_grad=True)
    loss = InfoNCELoss()(descriptors, torch.tensor([0, 1, 2]))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(descriptors.grad == 0)


def test_asl_loss_combines_parts_and_routes_negatives():
    torch.manual_seed(0)
    descriptors = torch.nn.functional.normalize(torch.randn(6, 4), dim=1)
    norms = torch.tensor([2.0, 1.0, 4.0, 3.0, 3.0, 1.5])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    content = torch.tensor([1.0, 0.5, 0.52, 1.0, 1.0, 0.3])
    negatives = torch.randn(2, 4)
    cosface, infonce, norm_ratio = CosFaceLoss(2, 4), InfoNCELoss(0.1), NormRatioLoss(0.05)
    total = ASLLoss({"cosface": cosface, "infonce": infonce}, norm_ratio, norm_ratio_weight=0.5)
    parts = total(descriptors, norms, labels, content, negatives=negatives)
    expected = (cosface(descriptors, labels) + infonce(descriptors, labels, negatives=negatives)
                + 0.5 * norm_ratio(norms, labels, content))
    assert parts["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(parts) == {"loss", "cosface", "infonce", "norm_ratio"}
    assert parts["infonce"].item() == pytest.approx(infonce(descriptors, labels, negatives=negatives).item())


def test_build_asl_loss_from_config():
    config = ASLConfig(descriptor_dim=8, norm_ratio_weight=0.3, cosface_margin=0.25, content_tolerance=0.1)
    loss = build_asl_loss(config, n_classes=5)
    assert set(loss.metric_losses) == {"cosface", "infonce"}
    assert loss.metric_losses["cosface"].weight.shape == (5, 8) and loss.metric_losses["cosface"].margin == 0.25
    assert loss.norm_ratio_weight == 0.3 and loss.norm_ratio.tolerance == 0.1
    with pytest.raises(ValueError, match="n_classes"):
        build_asl_loss(config)
    assert set(build_asl_loss(ASLConfig(metric_losses=["infonce"])).metric_losses) == {"infonce"}


def test_norm_ratio_gradient_flows_into_the_model():
    backbone = ResNetConfig(depths=[1, 1], hidden_sizes=[8, 16], embedding_size=8, layer_type="basic")
    model = ASLModel(ASLConfig(backbone_config=backbone, descriptor_dim=8))
    out = model(torch.randn(4, 3, 32, 32))
    loss = NormRatioLoss()(out.norm, torch.tensor([0, 0, 1, 1]), torch.tensor([1.0, 0.4, 1.0, 0.4]))
    loss.backward()
    assert model.neck.weight.grad.abs().sum() > 0
    assert model.projection.weight.grad.abs().sum() > 0
    assert model.backbone.embedder.embedder.convolution.weight.grad.abs().sum() > 0
