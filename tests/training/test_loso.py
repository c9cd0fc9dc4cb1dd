"""Leave-one-subject-out: fold integrity, no leakage of the held-out subject, resume, refusal, learning."""

import json

import numpy as np
import pytest
import torch

import training.loso as loso
from realtime.core.errors import UserInputError
from training.config import TrainConfig
from training.engine import fit
from training.preprocess import CropSet

SIZE = 32
QUICK = dict(image_size=SIZE, device="cpu", channels_last=False, batch_size=6, epochs=1)
CLASSES = ("red", "green", "blue", "grey")


def colour_crop_set(n_subjects: int = 4, per_class: int = 2, seed: int = 0, classes: int = 3) -> CropSet:
    """Each class a colour, each subject a brightness offset, noise per image; every image carries its own
    index in pixel (0, 0) (B = index % 256, G = index // 256) so a test can tell which images it got."""
    rng = np.random.default_rng(seed)
    colours = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [128, 128, 128]])
    images, labels, subjects, ids = [], [], [], []
    for s in range(n_subjects):
        offset = rng.integers(-25, 25)
        for c in range(classes):
            for k in range(per_class):
                image = np.clip(colours[c] + offset + rng.normal(0, 20, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
                image[0, 0, :2] = (len(images) % 256, len(images) // 256)
                images.append(image)
                labels.append(c)
                subjects.append(f"s{s:02d}")
                ids.append(f"s{s:02d}/{CLASSES[c]}_{k}")
    return CropSet(np.stack(images), np.array(labels), tuple(subjects), tuple(ids), CLASSES[:classes], "toy", "colours")


def markers(images: torch.Tensor) -> set[int]:
    """The per-image indices written into pixel (0, 0) of uint8 BGR (N, 3, S, S) images."""
    pixel = images[:, :2, 0, 0].cpu().long()
    return set((pixel[:, 0] + 256 * pixel[:, 1]).tolist())


class FitSpy:
    """Stands in for ``training.loso.fit``: records what each fold trains on, then trains (``real``) or not."""

    def __init__(self, real: bool = False, fail_after: int | None = None) -> None:
        self.calls: list[dict] = []
        self.real = real
        self.fail_after = fail_after

    def __call__(self, model, images, labels, config, **kwargs):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("killed for the test")
        self.calls.append(
            {"markers": markers(images), "labels": set(np.asarray(labels).tolist()), "subjects": kwargs["subjects"]}
        )
        if self.real:
            return fit(model, images, labels, config, **kwargs)
        return model, [{"epoch": 1, "train_loss": 0.0, "train_accuracy": 0.0, "lr": config.lr, "selected": True}]


def test_folds_are_complete_disjoint_and_the_held_out_subject_never_reaches_training(tmp_path, monkeypatch):
    data = colour_crop_set(n_subjects=5, per_class=2)
    # s04 alone holds the 'grey' class: its fold trains without ever seeing that label
    spy = FitSpy()
    monkeypatch.setattr(loso, "fit", spy)
    report = loso.run_loso(data, TrainConfig(**QUICK), tmp_path, progress=False)

    subjects = np.asarray(data.subjects)
    assert len(spy.calls) == 5
    for call, subject in zip(spy.calls, sorted(set(data.subjects)), strict=True):
        held_out = set(np.flatnonzero(subjects == subject).tolist())
        trained = call["markers"]
        assert not trained & held_out  # not one image of the test subject was passed to training
        assert trained | held_out == set(range(len(subjects)))  # every other image was
        assert subject not in call["subjects"]
    assert [f["subject"] for f in report["folds"]] == ["s00", "s01", "s02", "s03", "s04"]
    predicted = [p["sample"] for p in report["predictions"]]
    assert sorted(predicted) == sorted(data.sample_ids)  # every sample predicted exactly once
    for fold in report["folds"]:
        record = json.loads((tmp_path / "folds" / f"{fold['subject']}.json").read_text())
        assert {p["sample"] for p in record["predictions"]} == {
            s for s, subj in zip(data.sample_ids, data.subjects, strict=True) if subj == fold["subject"]
        }
        assert fold["subject"] not in record["train_subjects"]


def test_a_label_only_the_held_out_subject_has_is_never_trained_on(tmp_path, monkeypatch):
    base = colour_crop_set(n_subjects=4, per_class=2)
    labels = base.labels.copy()
    labels[np.asarray(base.subjects) == "s03"] = 3  # only s03 is 'grey'
    data = CropSet(base.images, labels, base.subjects, base.sample_ids, CLASSES, "toy", "colours")
    spy = FitSpy(real=True)
    monkeypatch.setattr(loso, "fit", spy)
    loso.run_loso(data, TrainConfig(**QUICK), tmp_path, progress=False)
    seen = {tuple(sorted(set(call["subjects"]))): call["labels"] for call in spy.calls}
    assert seen[("s00", "s01", "s02")] == {0, 1, 2}  # the fold of s03
    assert all(3 in labels for key, labels in seen.items() if "s03" in key)


def test_an_interrupted_run_resumes_with_only_the_missing_folds_and_the_same_report(tmp_path, monkeypatch):
    data = colour_crop_set(n_subjects=4, per_class=2)
    config = TrainConfig(**QUICK)

    monkeypatch.setattr(loso, "fit", FitSpy(real=True))
    reference = loso.run_loso(data, config, tmp_path / "reference", progress=False)

    monkeypatch.setattr(loso, "fit", FitSpy(real=True, fail_after=2))
    with pytest.raises(RuntimeError, match="killed"):
        loso.run_loso(data, config, tmp_path / "run", progress=False)
    assert sorted(p.name for p in (tmp_path / "run" / "folds").glob("*.json")) == ["s00.json", "s01.json"]
    assert not (tmp_path / "run" / "report.json").exists()

    resumed_fit = FitSpy(real=True)
    monkeypatch.setattr(loso, "fit", resumed_fit)
    resumed = loso.run_loso(data, config, tmp_path / "run", progress=False)
    assert len(resumed_fit.calls) == 2
    assert resumed["complete"]
    for key in ("predictions", "confusion_matrix", "accuracy", "uf1", "uar", "f1_macro", "per_class"):
        assert resumed[key] == reference[key], key

    again = FitSpy(real=True)
    monkeypatch.setattr(loso, "fit", again)
    loso.run_loso(data, config, tmp_path / "run", progress=False)
    assert again.calls == []  # a finished run trains nothing


def test_a_folder_of_another_configuration_is_refused_unless_overwritten(tmp_path, monkeypatch):
    data = colour_crop_set(n_subjects=3, per_class=1)
    monkeypatch.setattr(loso, "fit", FitSpy())
    loso.run_loso(data, TrainConfig(**QUICK), tmp_path, progress=False)
    with pytest.raises(UserInputError, match="holds a run with a different configuration; choose another --out"):
        loso.run_loso(data, TrainConfig(**{**QUICK, "epochs": 2}), tmp_path, progress=False)
    # the device says where a run executes, not what it computes: resuming elsewhere is allowed
    loso.run_loso(data, TrainConfig(**{**QUICK, "device": "auto"}), tmp_path, progress=False)

    spy = FitSpy()
    monkeypatch.setattr(loso, "fit", spy)
    loso.run_loso(data, TrainConfig(**{**QUICK, "epochs": 2}), tmp_path, progress=False, overwrite=True)
    assert len(spy.calls) == 3
    assert json.loads((tmp_path / "config.json").read_text())["config"]["epochs"] == 2

    (tmp_path / "config.json").unlink()  # fold files whose configuration is unknown are not trusted either
    with pytest.raises(UserInputError, match=r"without the config\.json"):
        loso.run_loso(data, TrainConfig(**QUICK), tmp_path, progress=False)


def test_config_json_records_the_run_and_the_pretrained_weights(tmp_path, monkeypatch):
    from realtime.core.files import file_sha256
    from training.checkpoints import save_checkpoint
    from training.engine import build_model

    data = colour_crop_set(n_subjects=3, per_class=1)
    config = TrainConfig(**QUICK)
    source, _ = build_model(config, 7)
    weights = save_checkpoint(tmp_path / "ck.pt", source, classes=[f"e{i}" for i in range(7)], config=config)
    monkeypatch.setattr(loso, "fit", FitSpy())
    loso.run_loso(data, config, tmp_path / "run", pretrained=weights, progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["config"] == config.to_dict()
    assert (saved["dataset"], saved["protocol"], saved["classes"]) == ("toy", "colours", list(data.classes))
    assert saved["pretrained"]["path"] == str(weights) and saved["pretrained"]["sha256"] == file_sha256(weights)
    assert {"torch", "torchvision", "numpy", "python"} <= set(saved["versions"])
    fold = json.loads((tmp_path / "run" / "folds" / "s00.json").read_text())
    assert fold["initial_tensors_loaded"] > 100  # the backbone came from the checkpoint
    assert {"n_train", "n_test", "seconds", "final_train_loss", "fold_seed"} <= set(fold)


def test_a_subset_of_subjects_gives_a_partial_report_that_a_full_run_completes(tmp_path, monkeypatch):
    data = colour_crop_set(n_subjects=3, per_class=1)
    monkeypatch.setattr(loso, "fit", FitSpy())
    partial = loso.run_loso(data, TrainConfig(**QUICK), tmp_path, subjects=["s01"], progress=False)
    assert not partial["complete"] and partial["missing_subjects"] == ["s00", "s02"] and partial["n_subjects"] == 1
    spy = FitSpy()
    monkeypatch.setattr(loso, "fit", spy)
    full = loso.run_loso(data, TrainConfig(**QUICK), tmp_path, progress=False)
    assert len(spy.calls) == 2 and full["complete"] and full["n_samples"] == 9
    with pytest.raises(UserInputError, match="unknown subjects s99"):
        loso.run_loso(data, TrainConfig(**QUICK), tmp_path, subjects=["s99"], progress=False)


def test_inner_validation_subjects_come_from_the_training_subjects_of_the_fold(tmp_path):
    data = colour_crop_set(n_subjects=4, per_class=1)
    config = TrainConfig(**{**QUICK, "selection": "inner-val", "val_subjects": 1})
    loso.run_loso(data, config, tmp_path, progress=False)
    for subject in ("s00", "s01", "s02", "s03"):
        fold = json.loads((tmp_path / "folds" / f"{subject}.json").read_text())
        assert len(fold["val_subjects"]) == 1
        assert subject not in fold["val_subjects"] and set(fold["val_subjects"]) <= set(fold["train_subjects"])


def test_fold_seeds_depend_on_the_seed_and_the_subject():
    from training.runtime import derive_seed

    assert derive_seed(0, "sub01") == derive_seed(0, "sub01")
    assert len({derive_seed(0, "sub01"), derive_seed(0, "sub02"), derive_seed(1, "sub01")}) == 3


@pytest.mark.slow
def test_a_loso_run_learns_an_easily_separable_problem(tmp_path):
    data = colour_crop_set(n_subjects=4, per_class=2)
    config = TrainConfig(**{**QUICK, "epochs": 4, "lr": 1e-3})
    report = loso.run_loso(data, config, tmp_path, progress=False)
    assert report["n_samples"] == 24 and report["n_subjects"] == 4
    assert report["accuracy"] >= 0.8 and report["uf1"] >= 0.75  # chance: 1/3
