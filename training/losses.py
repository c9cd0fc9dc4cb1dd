"""Multi-class focal loss (Lin et al. 2017), as used by the paper: FL = −α_t (1 − p_t)^γ log p_t."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("focal", "ce")


def inverse_frequency_alpha(class_counts: Sequence[int]) -> torch.Tensor:
    """Per-class α ∝ 1 / n_c, scaled to average 1 so the loss keeps the magnitude of cross-entropy.

    A class with no training sample gets the largest weight seen (it cannot contribute to the loss anyway).
    """
    counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
    if counts.numel() == 0:
        raise ValueError("no classes to weight")
    present = counts > 0
    if not present.any():
        raise ValueError("every class count is zero")
    inverse = torch.zeros_like(counts)
    inverse[present] = 1.0 / counts[present]
    inverse[~present] = inverse[present].max()
    return (inverse * counts.numel() / inverse.sum()).to(torch.float32)


class FocalLoss(nn.Module):
    """FL = −α_t (1 − p_t)^γ log p_t, averaged over the batch.

    ``alpha`` holds one weight per class (``None``: every α_t = 1). With γ = 0 and no α it is exactly
    cross-entropy; γ > 0 shrinks the loss of well-classified samples so training dwells on the hard and
    rare ones, which is why the paper uses it on CASME II's skewed classes.
    """

    def __init__(self, gamma: float = 2.0, alpha: torch.Tensor | Sequence[float] | None = None) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"focal loss γ must be ≥ 0, got {gamma}")
        self.gamma = float(gamma)
        self.register_buffer("alpha", None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1)
        log_p_t = log_p.gather(1, target[:, None]).squeeze(1)
        loss = -log_p_t
        if self.gamma:
            loss = loss * (1.0 - log_p_t.exp()).clamp_min(0.0).pow(self.gamma)
        if self.alpha is not None:
            loss = loss * self.alpha.to(loss.device)[target]
        return loss.mean()


def build_loss(name: str, gamma: float = 2.0, alpha: torch.Tensor | None = None) -> nn.Module:
    """``focal`` (the paper's) or ``ce`` (plain cross-entropy, for the ablation of Table 1)."""
    if name == "focal":
        return FocalLoss(gamma=gamma, alpha=alpha)
    if name == "ce":
        return nn.CrossEntropyLoss()
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
