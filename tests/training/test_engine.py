"""The training engine: configuration, on-device batches, one epoch, evaluation, checkpoints, pretraining."""

import json

import numpy as np
import pytest
import torch

from realtime.core.errors import UserInputError
from training.batches import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    augment_batch,
    images_to_tensor,
    prepare_batch,
    scale_flow,
    to_unit_rgb,
)
from training.checkpoints import ARCH_NAME, load_checkpoint, read_pretrained, save_checkpoint
from training.config import TrainConfig
from training.engine import build_loss_fn, build_model, build_optimizer, evaluate, fit, train_one_epoch
from training.preprocess import CropSet
from training.pretrain import pretrain, stratified_split, subject_split

SIZE = 32
FAST = dict(image_size=SIZE, device="cpu", channels_last=False, batch_size=8)


def two_class_images(n_per_class: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Dark vs bright noisy 32 px images (BGR uint8, N×S×S×3): separable at a glance."""
    rng = np.random.default_rng(seed)
    dark = rng.normal(60, 15, (n_per_class, SIZE, SIZE, 3))
    bright = rng.normal(190, 15, (n_per_class, SIZE, SIZE, 3))
    images = np.clip(np.concatenate([dark, bright]), 0, 255).astype(np.uint8)
    return images, np.repeat([0, 1], n_per_class)


def colour_crop_set(n_subjects: int = 4, per_class: int = 3, seed: int = 0) -> CropSet:
    rng = np.random.default_rng(seed)
    colours = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]])
    images, labels, subjects, ids = [], [], [], []
    for s in range(n_subjects):
        for c in range(3):
            for k in range(per_class):
                image = colours[c] + rng.normal(0, 20, (SIZE, SIZE, 3))
                images.append(np.clip(image, 0, 255).astype(np.uint8))
                labels.append(c)
                subjects.append(f"s{s}")
                ids.append(f"s{s}/{c}_{k}")
    return CropSet(
        np.stack(images), np.array(labels), tuple(subjects), tuple(ids), ("red", "green", "blue"), "toy", "3class"
    )


# --- configuration ------------------------------------------------------------------------------------------


def test_config_defaults_are_the_papers_method_and_round_trip_through_json():
    config = TrainConfig()
    assert (config.attention, config.loss, config.gamma, config.alpha) == ("dual", "focal", 2.0, "inverse")
    assert config.selection == "last" and config.image_size == 224
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


def test_alpha_accepts_words_lists_and_comma_separated_weights():
    assert TrainConfig(alpha="  Inverse ").alpha == "inverse"
    assert TrainConfig(alpha=None).alpha == "none"
    assert TrainConfig(alpha="1, 2,0.5").alpha == (1.0, 2.0, 0.5)
    assert TrainConfig(alpha=[1, 2]).alpha == (1.0, 2.0)
    assert TrainConfig.from_dict(TrainConfig(alpha="1,2").to_dict()).alpha == (1.0, 2.0)
    with pytest.raises(ValueError, match="alpha"):
        TrainConfig(alpha="banana")
    with pytest.raises(ValueError, match="alpha"):
        TrainConfig(alpha="1,-2")


@pytest.mark.parametrize(
    "bad",
    [{"attention": "cbam"}, {"loss": "hinge"}, {"epochs": 0}, {"batch_size": 1}, {"selection": "test"}, {"lr": 0}],
)
def test_invalid_config_values_are_refused(bad):
    with pytest.raises(ValueError):
        TrainConfig(**bad)


def test_from_dict_refuses_unknown_keys():
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainConfig.from_dict({"label_smoothing": 0.1})


def test_inverse_alpha_comes_from_the_training_labels_given():
    loss = build_loss_fn(TrainConfig(), np.array([0, 0, 0, 1]), 3)
    assert loss.alpha[1] > loss.alpha[0]  # rarer class weighs more
    with pytest.raises(UserInputError, match="3 classes"):
        build_loss_fn(TrainConfig(alpha="1,2"), np.array([0, 1]), 3)


# --- images and batches -------------------------------------------------------------------------------------


def test_images_become_one_uint8_channels_last_tensor_and_are_resized_once():
    images, _ = two_class_images(2)
    tensor = images_to_tensor(images, "cpu")
    assert tensor.dtype == torch.uint8 and tensor.shape == (4, 3, SIZE, SIZE)
    assert tensor.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(tensor[1, 2], torch.from_numpy(images[1, :, :, 2]))  # still BGR
    assert images_to_tensor(images, "cpu", image_size=48).shape == (4, 3, 48, 48)


def test_batch_preparation_is_bgr_to_rgb_then_imagenet_normalisation():
    images, _ = two_class_images(2)
    batch = images_to_tensor(images, "cpu", channels_last=False)
    x = prepare_batch(batch, TrainConfig(**FAST))
    rgb = images[..., ::-1].astype(np.float64) / 255.0
    expected = (rgb - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
    assert np.allclose(x.numpy(), expected.transpose(0, 3, 1, 2), atol=1e-5)


def test_augmentation_is_seeded_and_identity_when_its_ranges_are_zero():
    images, _ = two_class_images(3)
    x = images_to_tensor(images, "cpu", channels_last=False).float() / 255
    config = TrainConfig(**FAST)
    first = augment_batch(x, config, torch.Generator().manual_seed(1))
    second = augment_batch(x, config, torch.Generator().manual_seed(1))
    assert torch.equal(first, second) and not torch.equal(first, x)
    still = TrainConfig(
        **FAST, flip_probability=0.0, max_shift_fraction=0.0, max_scale_change=0.0, max_brightness_change=0.0
    )
    assert torch.allclose(augment_batch(x, still, torch.Generator().manual_seed(1)), x, atol=1e-5)
    flipped = TrainConfig(**{**still.to_dict(), "flip_probability": 1.0})
    assert torch.allclose(augment_batch(x, flipped, torch.Generator()), x.flip(3), atol=1e-5)


@pytest.fixture(scope="module")
def smiles_of_two_sizes(face_photo, expression_clip) -> dict[float, np.ndarray]:
    """The ``flow`` input of the same smile on a real face at two sizes (mouth corners moved 6 and 3 px)."""
    from realtime.core.align import AlignmentSettings, align_face
    from realtime.core.landmarks import LazyLandmarker
    from realtime.core.motion import build_classifier_input

    marker = LazyLandmarker().get()
    points = marker.landmarks(face_photo, marker.detect(face_photo)[0])
    settings = AlignmentSettings(output_size=64)
    inputs = {}
    for pixels in (6.0, 3.0):
        onset, *_, apex = expression_clip(face_photo, points[[48, 54]], n=4, apex=3, pixels=pixels)
        crops = [align_face(frame, points, settings).image for frame in (onset, apex)]
        inputs[pixels] = build_classifier_input("flow", crops[1], crops[0])
    return inputs


def test_a_flow_gain_turns_a_large_movement_into_the_smaller_one(smiles_of_two_sizes):
    """The gain augmentation (``min_flow_gain``) must show the network what a smaller micro-expression of the same
    shape looks like: half the gain on the 6 px smile lands near the 3 px smile, far nearer than the 6 px one."""
    big, small = (
        to_unit_rgb(images_to_tensor(smiles_of_two_sizes[p][None], "cpu", channels_last=False)) for p in (6.0, 3.0)
    )
    halved = scale_flow(big, torch.tensor([0.5]))
    assert torch.equal(scale_flow(big, torch.tensor([1.0])), big)
    inner = (slice(None), slice(None), slice(32, -6), slice(6, -6))  # the lower face, off the crop's edges
    assert (halved - small)[inner].abs().mean() < 0.5 * (big - small)[inner].abs().mean()


@pytest.mark.parametrize("kind", ["flow", "onset-apex", "apex"])
def test_the_flow_gain_scales_flow_inputs_only_and_within_its_range(kind, smiles_of_two_sizes):
    x = to_unit_rgb(images_to_tensor(np.stack([smiles_of_two_sizes[6.0]] * 6), "cpu", channels_last=False))
    geometry_off = dict(flip_probability=0.0, max_shift_fraction=0.0, max_scale_change=0.0, max_brightness_change=0.0)
    config = TrainConfig(**FAST, **geometry_off, input_kind=kind, min_flow_gain=0.3)
    out = augment_batch(x, config, torch.Generator().manual_seed(0))
    if kind != "flow":
        assert torch.allclose(out, x, atol=1e-5)
        return
    still = 128.0 / 255.0
    gains = ((out[:, 1:] - still).abs().sum((1, 2, 3)) / (x[:, 1:] - still).abs().sum((1, 2, 3))).numpy()
    assert np.all(gains >= 0.3 - 1e-3) and np.all(gains <= 1.0 + 1e-3) and gains.std() > 0.01


def test_a_flow_gain_outside_its_range_is_refused():
    with pytest.raises(ValueError, match="min_flow_gain"):
        TrainConfig(**FAST, min_flow_gain=0.0)


# --- training and evaluation --------------------------------------------------------------------------------


def test_train_one_epoch_reduces_the_loss_on_a_separable_problem():
    torch.manual_seed(0)
    images, labels = two_class_images(8)
    config = TrainConfig(**FAST, attention="dual", lr=1e-3, augment=False)
    model, _ = build_model(config, 2)
    tensor = images_to_tensor(images, "cpu", channels_last=False)
    targets = torch.as_tensor(labels)
    optimizer = build_optimizer(model, config)
    loss_fn = build_loss_fn(config, labels, 2)
    generator = torch.Generator().manual_seed(0)
    losses = [train_one_epoch(model, tensor, targets, optimizer, loss_fn, config, generator)["loss"] for _ in range(6)]
    assert losses[-1] < 0.5 * losses[0], losses


def test_a_trailing_batch_of_one_is_left_out_for_batch_normalisation():
    images, labels = two_class_images(5)  # 10 images, batches of 3 → 3, 3, 3, (1 left out)
    config = TrainConfig(**{**FAST, "batch_size": 3})
    model, _ = build_model(config, 2)
    stats = train_one_epoch(
        model,
        images_to_tensor(images, "cpu", channels_last=False),
        torch.as_tensor(labels),
        build_optimizer(model, config),
        build_loss_fn(config, labels, 2),
        config,
        torch.Generator().manual_seed(0),
    )
    assert (stats["n_steps"], stats["n_samples"]) == (3, 9)


def test_evaluate_returns_probabilities_that_sum_to_one():
    images, _ = two_class_images(3)
    model, _ = build_model(TrainConfig(**FAST), 5)
    probs = evaluate(model, images, batch_size=4, channels_last=False)
    assert probs.shape == (6, 5) and probs.dtype == np.float64
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-6) and (probs >= 0).all()
    tensor_probs = evaluate(model, images_to_tensor(images, "cpu", channels_last=False), 4, channels_last=False)
    assert np.allclose(probs, tensor_probs, atol=1e-6)


def test_fit_is_deterministic_and_marks_the_last_epoch_as_selected():
    images, labels = two_class_images(4)
    config = TrainConfig(**FAST, epochs=2)
    outputs = []
    for _ in range(2):
        torch.manual_seed(0)
        model, _ = build_model(config, 2)
        model, history = fit(model, images, labels, config, num_classes=2, seed=3, progress=False)
        outputs.append(evaluate(model, images, 8, channels_last=False))
        assert [row["selected"] for row in history] == [False, True]
    assert np.array_equal(outputs[0], outputs[1])


def test_inner_validation_chooses_the_epoch_on_training_subjects_only():
    images, labels = two_class_images(6)
    subjects = [f"p{i % 4}" for i in range(len(labels))]
    config = TrainConfig(**FAST, epochs=3, selection="inner-val", val_subjects=1)
    model, _ = build_model(config, 2)
    _, history = fit(model, images, labels, config, num_classes=2, subjects=subjects, progress=False)
    assert sum(row["selected"] for row in history) == 1
    assert all({"val_f1", "val_loss", "val_accuracy"} <= set(row) for row in history)
    assert len(history[0]["val_subjects"]) == 1 and set(history[0]["val_subjects"]) <= set(subjects)


# --- checkpoints --------------------------------------------------------------------------------------------


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    config = TrainConfig(**FAST, attention="spatial")
    torch.manual_seed(0)
    model, _ = build_model(config, 3)
    images, _ = two_class_images(2)
    before = evaluate(model, images, 4, channels_last=False)
    path = save_checkpoint(
        tmp_path / "m.pt", model, classes=["a", "b", "c"], config=config, dataset="toy", metrics={"accuracy": 0.5}
    )
    raw = torch.load(path, weights_only=True)
    assert raw["arch"] == {"name": ARCH_NAME, "attention": "spatial", "num_classes": 3}
    assert raw["normalization"] == {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "channel_order": "RGB"}
    assert raw["image_size"] == SIZE and raw["classes"] == ["a", "b", "c"] and "torch" in raw["versions"]
    loaded, meta = load_checkpoint(path)
    assert not loaded.training and "model" not in meta and meta["metrics"] == {"accuracy": 0.5}
    assert TrainConfig.from_dict(meta["config"]) == config
    assert np.array_equal(before, evaluate(loaded, images, 4, channels_last=False))


def test_loading_a_missing_foreign_or_damaged_checkpoint_names_the_file(tmp_path):
    with pytest.raises(UserInputError, match=r"nothere\.pt"):
        load_checkpoint(tmp_path / "nothere.pt")
    foreign = tmp_path / "resnet50.pt"
    torch.save({"model": {}, "arch": {"name": "resnet50", "num_classes": 5}}, foreign)
    with pytest.raises(UserInputError, match=r"resnet50\.pt.*architecture 'resnet50'"):
        load_checkpoint(foreign)
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserInputError, match=r"damaged\.pt"):
        load_checkpoint(damaged)


def test_transfer_from_a_checkpoint_of_other_classes_keeps_the_backbone_and_drops_the_head(tmp_path):
    config = TrainConfig(**FAST)
    source, _ = build_model(config, 7)
    path = save_checkpoint(tmp_path / "ck.pt", source, classes=[f"c{i}" for i in range(7)], config=config)
    state, info = read_pretrained(path, classes=["a", "b", "c", "d", "e"])
    assert info["kind"] == "checkpoint" and len(info["sha256"]) == 64
    assert not any(k.startswith("fc.") for k in state)
    model, load = build_model(config, 5, state)
    assert load["n_loaded"] == len(state) and load["n_missing"] == 2  # fc.weight, fc.bias
    assert torch.equal(model.state_dict()["layer2.0.conv1.weight"], source.state_dict()["layer2.0.conv1.weight"])
    with pytest.raises(UserInputError, match=r"missing\.pt"):
        read_pretrained(tmp_path / "missing.pt")


# --- pretraining ---------------------------------------------------------------------------------------------


def test_splits_are_stratified_or_by_subject():
    labels = np.repeat(np.arange(4), 10)
    train, test = stratified_split(labels, 0.2, seed=0)
    assert len(test) == 8 and np.bincount(labels[test]).tolist() == [2, 2, 2, 2]
    assert set(train) | set(test) == set(range(40)) and not set(train) & set(test)
    subjects = [f"s{i // 4}" for i in range(40)]
    train, test = subject_split(subjects, 0.2, seed=0)
    assert not {subjects[i] for i in train} & {subjects[i] for i in test}
    assert len(test) == 8


@pytest.mark.parametrize("split", ["random", "subject"])
def test_pretrain_saves_a_checkpoint_its_config_and_metrics(tmp_path, split):
    data = colour_crop_set(n_subjects=5, per_class=2)
    out = tmp_path / "weights" / "toy.pt"
    result = pretrain(data, TrainConfig(**FAST, epochs=1), split=split, test_fraction=0.2, out=out, progress=False)
    assert out.is_file() and result["n_train"] + result["n_test"] == 30 and result["n_test"] >= 6
    assert {"accuracy", "f1_macro", "uf1", "uar", "confusion_matrix"} <= set(result["test"])
    saved = json.loads(out.with_suffix(".config.json").read_text())
    assert saved["split"] == split and saved["config"]["epochs"] == 1 and "torch" in saved["versions"]
    assert json.loads(out.with_suffix(".metrics.json").read_text())["history"]
    _, meta = load_checkpoint(out)
    assert meta["classes"] == ["red", "green", "blue"] and meta["dataset"] == "toy"
    if split == "subject":
        assert result["n_train_subjects"] + result["n_test_subjects"] == 5
