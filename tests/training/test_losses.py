"""Focal loss against a hand computation, and its reduction to cross-entropy."""

import math

import pytest
import torch
import torch.nn.functional as F

from training.losses import FocalLoss, build_loss, inverse_frequency_alpha


def test_gamma_zero_without_alpha_is_cross_entropy():
    logits = torch.randn(16, 5)
    target = torch.randint(0, 5, (16,))
    assert torch.allclose(FocalLoss(gamma=0.0)(logits, target), F.cross_entropy(logits, target), atol=1e-6)


def test_matches_a_hand_computation():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    target = torch.tensor([0, 2])
    alpha = torch.tensor([0.25, 1.0, 2.0])
    gamma = 2.0
    expected = 0.0
    for row, t in zip(logits.tolist(), target.tolist(), strict=True):
        p_t = math.exp(row[t]) / sum(math.exp(v) for v in row)
        expected += -alpha[t].item() * (1 - p_t) ** gamma * math.log(p_t)
    expected /= 2
    assert FocalLoss(gamma=gamma, alpha=alpha)(logits, target).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 5.0])
def test_focusing_down_weights_easy_samples_more_than_hard_ones(gamma):
    easy = torch.tensor([[6.0, 0.0]])
    hard = torch.tensor([[0.2, 0.0]])
    target = torch.tensor([0])
    ratio_easy = FocalLoss(gamma)(easy, target) / F.cross_entropy(easy, target)
    ratio_hard = FocalLoss(gamma)(hard, target) / F.cross_entropy(hard, target)
    assert ratio_easy < ratio_hard < 1.0


def test_inverse_frequency_alpha_favours_rare_classes_and_averages_one():
    alpha = inverse_frequency_alpha([99, 32, 63, 28, 27])  # CASME II 5-class counts (others first)
    assert alpha.mean().item() == pytest.approx(1.0)
    assert alpha.argmin().item() == 0 and alpha.argmax().item() == 4
    assert alpha[0] / alpha[4] == pytest.approx(27 / 99)


def test_gradients_flow_and_losses_are_built_by_name():
    logits = torch.randn(8, 5, requires_grad=True)
    build_loss("focal", gamma=2.0)(logits, torch.randint(0, 5, (8,))).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert isinstance(build_loss("ce"), torch.nn.CrossEntropyLoss)
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("hinge")
    with pytest.raises(ValueError):
        FocalLoss(gamma=-1)
