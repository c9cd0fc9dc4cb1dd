"""ResNet18 with an attention module inside every residual unit (Xu, Zheng, Yang 2021, Sec. 2).

Built from torchvision's ``ResNet`` and ``BasicBlock`` so that the parameter names match torchvision's
ResNet18: users who hold ImageNet weights can load them (``load_backbone_weights``); nothing is ever
downloaded.

Where the attention sits. In each residual unit the residual branch computes F = BN(conv(ReLU(BN(conv x)))).
The attention then re-weights F and the unit adds the shortcut, as in timm's ``attn_layer`` blocks:

    F' = S(F) ⊗ F,   F'' = C(F) ⊗ F',   out = ReLU(shortcut(x) ⊕ F'')          (eq. 5, "dual")

with the spatial map S(F) = σ(conv7×7([max_c F; mean_c F])) (1×H×W) and the channel map
C(F) = σ(W2·ReLU(W1·maxpool F) + W2·ReLU(W1·avgpool F)) (C×1×1, W1/W2 as 1×1 convs, reduction 16).
As eq. 5 is written, both maps are computed from the same F; ⊗ broadcasts. "spatial" and "channel" use
one map alone, "none" is the plain ResNet18 of the baselines. Pooling is ``amax``/``mean`` over axes and the
MLP is 1×1 convs, so every variant exports to ONNX with plain operators.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

ATTENTION_VARIANTS = ("none", "spatial", "channel", "dual")


class SpatialAttention(nn.Module):
    """S(F) = σ(conv7×7([max over channels; mean over channels])): one weight per position."""

    def __init__(self, channels: int, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention_map(x)


class ChannelAttention(nn.Module):
    """C(F) = σ(MLP(maxpool F) + MLP(avgpool F)): one weight per channel, MLP shared, reduction 16."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(x)))

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self._mlp(x.amax(dim=(2, 3), keepdim=True)) + self._mlp(x.mean(dim=(2, 3), keepdim=True)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention_map(x)


class DualAttention(nn.Module):
    """Eq. 5: F' = S(F) ⊗ F, then F'' = C(F) ⊗ F' (both maps from the unit's residual features F)."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.spatial = SpatialAttention(channels, kernel_size)
        self.channel = ChannelAttention(channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        refined = self.spatial.attention_map(x) * x
        return self.channel.attention_map(x) * refined


AttentionFactory = Callable[[int], nn.Module]

_ATTENTION_LAYERS: dict[str, AttentionFactory | None] = {
    "none": None,
    "spatial": SpatialAttention,
    "channel": ChannelAttention,
    "dual": DualAttention,
}


def get_attention(name: str) -> AttentionFactory | None:
    """The attention factory for a variant name (``None`` for the plain ResNet), like timm's ``get_attn``."""
    try:
        return _ATTENTION_LAYERS[name]
    except KeyError:
        raise ValueError(f"unknown attention {name!r}; choose one of {', '.join(ATTENTION_VARIANTS)}") from None


class AttentionBasicBlock(BasicBlock):
    """torchvision's BasicBlock with ``attn_layer`` applied to the residual branch before the shortcut add."""

    def __init__(self, *args, attn_layer: AttentionFactory | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.attn = attn_layer(self.conv2.out_channels) if attn_layer is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self.attn(out)
        return self.relu(out + identity)


def _block_with(attn_layer: AttentionFactory | None) -> Callable[..., BasicBlock]:
    """A block factory torchvision's ``ResNet`` can call; it reads ``expansion`` off the factory."""
    factory = functools.partial(AttentionBasicBlock, attn_layer=attn_layer)
    factory.expansion = AttentionBasicBlock.expansion  # type: ignore[attr-defined]
    return factory


def attention_resnet18(
    num_classes: int,
    attention: str = "dual",
    norm_layer: Callable[..., nn.Module] | None = None,
) -> ResNet:
    """ResNet18 (layers 2-2-2-2) with the chosen attention in each of its eight residual units."""
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
    return ResNet(_block_with(get_attention(attention)), [2, 2, 2, 2], num_classes=num_classes, norm_layer=norm_layer)


def num_outputs(model: nn.Module) -> int:
    """The number of classes ``model``'s ``fc`` head predicts (0 when it has no linear head): what a
    checkpoint records and an empty evaluation's shape needs."""
    fc = getattr(model, "fc", None)
    return int(fc.out_features) if isinstance(fc, nn.Linear) else 0


def load_backbone_weights(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Copy every tensor whose name and shape match (ImageNet ResNet18, or a CK+ checkpoint for transfer).

    The classifier head is left out when its class count differs, and attention parameters stay at their
    initialisation when the source has none. Returns what was loaded and what was left, so callers can
    say so instead of guessing.
    """
    own = model.state_dict()
    loaded, skipped = [], []
    for name, tensor in state_dict.items():
        if name in own and own[name].shape == tensor.shape:
            own[name] = tensor.detach().clone()
            loaded.append(name)
        else:
            skipped.append(name)
    model.load_state_dict(own)
    missing = [name for name in own if name not in state_dict]
    return {"loaded": loaded, "skipped": skipped, "missing": missing}
