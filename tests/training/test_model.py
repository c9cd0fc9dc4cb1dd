"""The attention ResNet18: variants, where the attention sits, eq. 5, torchvision compatibility."""

import pytest
import torch
from torchvision.models import resnet18

from training.model import (
    ATTENTION_VARIANTS,
    AttentionBasicBlock,
    ChannelAttention,
    DualAttention,
    SpatialAttention,
    attention_resnet18,
    get_attention,
    load_backbone_weights,
)


@pytest.mark.parametrize("attention", ATTENTION_VARIANTS)
@pytest.mark.parametrize("size", [32, 64])
def test_every_variant_classifies_any_input_size(attention, size):
    model = attention_resnet18(num_classes=5, attention=attention).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 5) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("attention", "module_type"),
    [("spatial", SpatialAttention), ("channel", ChannelAttention), ("dual", DualAttention)],
)
def test_attention_sits_in_every_one_of_the_eight_residual_units(attention, module_type):
    model = attention_resnet18(num_classes=7, attention=attention)
    blocks = [m for m in model.modules() if isinstance(m, AttentionBasicBlock)]
    assert len(blocks) == 8
    assert all(isinstance(b.attn, module_type) for b in blocks)


def test_plain_variant_has_exactly_torchvision_resnet18_parameters():
    ours = attention_resnet18(num_classes=1000, attention="none")
    theirs = resnet18(weights=None)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


def test_imagenet_style_weights_load_into_the_dual_model_except_attention_and_head():
    source = resnet18(weights=None, num_classes=1000).state_dict()
    model = attention_resnet18(num_classes=5, attention="dual")
    result = load_backbone_weights(model, source)
    assert set(result["skipped"]) == {"fc.weight", "fc.bias"}
    assert all(".attn." in name or name.startswith("fc.") for name in result["missing"])
    assert torch.equal(model.state_dict()["layer3.1.conv2.weight"], source["layer3.1.conv2.weight"])


def test_spatial_map_is_sigmoid_of_conv_over_channel_max_and_mean():
    module = SpatialAttention(channels=4)
    x = torch.randn(1, 4, 6, 6)
    pooled = torch.stack([x.max(dim=1).values, x.mean(dim=1)], dim=1)
    expected = torch.sigmoid(torch.nn.functional.conv2d(pooled, module.conv.weight, padding=3))
    assert torch.allclose(module.attention_map(x), expected, atol=1e-6)
    assert torch.allclose(module(x), x * expected, atol=1e-6)


def test_channel_map_shares_one_mlp_over_max_and_average_pooling():
    module = ChannelAttention(channels=32, reduction=16)
    assert module.fc1.out_channels == 2  # reduction 16
    x = torch.randn(2, 32, 5, 5)
    w1, w2 = module.fc1.weight.flatten(1), module.fc2.weight.flatten(1)

    def mlp(v):
        return torch.relu(v @ w1.T) @ w2.T

    expected = torch.sigmoid(mlp(x.amax(dim=(2, 3))) + mlp(x.mean(dim=(2, 3))))[:, :, None, None]
    assert torch.allclose(module.attention_map(x), expected, atol=1e-6)


def test_dual_attention_is_eq5():
    module = DualAttention(channels=32)
    x = torch.randn(2, 32, 7, 7)
    f1 = module.spatial.attention_map(x) * x  # F' = S(F) ⊗ F
    f2 = module.channel.attention_map(x) * f1  # F'' = C(F) ⊗ F'
    assert torch.allclose(module(x), f2, atol=1e-6)


def test_residual_unit_adds_the_shortcut_to_the_attended_branch():
    block = AttentionBasicBlock(16, 16, attn_layer=get_attention("dual")).eval()
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        branch = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))
        expected = torch.relu(x + block.attn(branch))  # out = F ⊕ F''
        assert torch.allclose(block(x), expected, atol=1e-6)


def test_unknown_variant_and_class_count_are_rejected():
    with pytest.raises(ValueError, match="unknown attention"):
        get_attention("cbam++")
    with pytest.raises(ValueError, match="at least 2 classes"):
        attention_resnet18(num_classes=1)
