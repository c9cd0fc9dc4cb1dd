"""Reports: report.json contents, report.md tables, confusion.png, and the ablation table and runs."""

import json

import cv2
import numpy as np
import pytest

import training.loso as loso
from training import ablation
from training.checkpoints import save_checkpoint
from training.config import TrainConfig
from training.engine import build_model
from training.preprocess import CropSet
from training.report import format_ablation_table, format_markdown, write_report

SIZE = 32
QUICK = dict(image_size=SIZE, device="cpu", channels_last=False, batch_size=4, epochs=1)


def tiny_crop_set(n_subjects: int = 3) -> CropSet:
    rng = np.random.default_rng(0)
    labels = np.tile([0, 1, 2], n_subjects)
    images = rng.integers(0, 255, (len(labels), SIZE, SIZE, 3), dtype=np.uint8)
    subjects = tuple(f"sub{1 + i // 3:02d}" for i in range(len(labels)))
    ids = tuple(f"{s}/EP{i:02d}" for i, s in enumerate(subjects))
    return CropSet(images, labels, subjects, ids, ("happiness", "disgust", "others"), "casme2", "3class")


def untrained_fit(model, images, labels, config, **kwargs):
    """Stands in for ``fit``: the report machinery is under test here, not learning."""
    return model, [{"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.0, "lr": config.lr, "selected": True}]


def hand_report() -> dict:
    return {
        "dataset": "casme2",
        "protocol": "5class",
        "classes": ["happiness", "others"],
        "n_samples": 4,
        "n_subjects": 2,
        "accuracy": 0.75,
        "f1_macro": 0.7333,
        "uf1": 0.7333,
        "uar": 0.75,
        "f1_weighted": 0.7333,
        "per_class": [
            {"class": "happiness", "precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2},
            {"class": "others", "precision": 0.6667, "recall": 1.0, "f1": 0.8, "support": 2},
        ],
        "confusion_matrix": [[1, 1], [0, 2]],
        "folds": [
            {"subject": "sub01", "n_test": 2, "n_train": 2, "accuracy": 1.0, "f1": 1.0, "seconds": 1.5},
            {"subject": "sub02", "n_test": 2, "n_train": 2, "accuracy": 0.5, "f1": 0.3333, "seconds": 1.2},
        ],
        "predictions": [],
    }


def test_write_report_writes_json_markdown_and_png(tmp_path):
    report = hand_report()
    write_report(report, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text()) == report
    markdown = (tmp_path / "report.md").read_text()
    for text in ("| accuracy |", "| happiness | 2 |", "| true \\ predicted | happiness | others |", "| sub02 |"):
        assert text in markdown, text
    image = cv2.imread(str(tmp_path / "confusion.png"))
    assert image is not None and image.shape[0] > 100
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_markdown_says_when_a_report_is_partial():
    report = {**hand_report(), "complete": False, "missing_subjects": ["sub03"]}
    assert "Partial report" in format_markdown(report) and "sub03" in format_markdown(report)


def test_loso_report_json_holds_everything_promised(tmp_path, monkeypatch):
    data = tiny_crop_set()
    monkeypatch.setattr(loso, "fit", untrained_fit)
    loso.run_loso(data, TrainConfig(**QUICK), tmp_path, progress=False)
    report = json.loads((tmp_path / "report.json").read_text())
    for key in ("n_samples", "n_subjects", "classes", "accuracy", "f1_macro", "uf1", "uar", "f1_weighted"):
        assert key in report, key
    assert report["n_samples"] == 9 and report["n_subjects"] == 3 and report["complete"]
    assert report["classes"] == ["happiness", "disgust", "others"]
    assert [row["class"] for row in report["per_class"]] == report["classes"]
    assert {"precision", "recall", "f1", "support"} <= set(report["per_class"][0])
    assert np.asarray(report["confusion_matrix"]).sum() == 9
    assert [f["subject"] for f in report["folds"]] == ["sub01", "sub02", "sub03"]
    assert {"subject", "n_test", "accuracy", "f1"} <= set(report["folds"][0])
    assert len(report["predictions"]) == 9
    first = report["predictions"][0]
    assert set(first) >= {"subject", "sample", "true", "predicted", "probabilities"}
    assert len(first["probabilities"]) == 3 and sum(first["probabilities"]) == pytest.approx(1.0, abs=1e-5)
    correct = sum(p["true"] == p["predicted"] for p in report["predictions"])
    assert report["accuracy"] == pytest.approx(correct / 9)
    assert (tmp_path / "report.md").is_file() and (tmp_path / "confusion.png").is_file()


def test_ablation_table_puts_ours_beside_the_paper_and_never_fakes_a_row():
    rows = [
        {"row": 1, "model": "ResNet18", "loss": "cross-entropy", "transfer": "no", "accuracy": 0.4, "f1_macro": 0.3,
         "uf1": 0.3, "uar": 0.35, "paper_accuracy": 37.34, "paper_f1": None, "status": "done"},
        {"row": 6, "model": "dual", "loss": "focal", "transfer": "CK+", "accuracy": None, "f1_macro": None,
         "uf1": None, "uar": None, "paper_accuracy": 44.97, "paper_f1": 0.3784,
         "status": ablation.NOT_RUN_WITHOUT_CKPLUS},
    ]  # fmt: skip
    table = format_ablation_table(rows).splitlines()
    assert table[2].startswith("| 1 | ResNet18 | cross-entropy | no | 40.00 | 37.34 | 0.3000 | — |")
    assert ablation.NOT_RUN_WITHOUT_CKPLUS in table[3] and "44.97" in table[3] and "0.3784" in table[3]


def test_paper_numbers_are_the_published_ones():
    assert [r.paper_accuracy for r in ablation.ROWS] == [37.34, 38.55, 42.57, 40.96, 43.37, 44.97]
    assert [r.paper_f1 for r in ablation.ROWS] == [None] * 5 + [0.3784]
    assert [(r.attention, r.loss, r.transfer) for r in ablation.ROWS] == [
        ("none", "ce", False),
        ("none", "focal", False),
        ("spatial", "focal", False),
        ("channel", "focal", False),
        ("dual", "focal", False),
        ("dual", "focal", True),
    ]


def test_run_ablation_runs_each_row_in_its_folder_and_transfers_only_in_row_6(tmp_path, monkeypatch):
    data = tiny_crop_set(n_subjects=2)
    monkeypatch.setattr(loso, "fit", untrained_fit)
    monkeypatch.setattr(loso, "write_report", lambda report, out_dir: None)  # tested above; PNGs are slow
    base = TrainConfig(**QUICK)
    rows = ablation.run_ablation(data, base, tmp_path / "without", pretrained=None, progress=False)
    assert [r["status"] for r in rows] == ["done"] * 5 + [ablation.NOT_RUN_WITHOUT_CKPLUS]
    assert rows[5]["accuracy"] is None and not (tmp_path / "without" / "6-dual-focal-ckplus").exists()
    markdown = (tmp_path / "without" / "ablation.md").read_text()
    table = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table) == 7  # header + 6 rows
    assert json.loads((tmp_path / "without" / "ablation.json").read_text())["rows"][0]["paper_accuracy"] == 37.34
    config = json.loads((tmp_path / "without" / "1-resnet18-ce" / "config.json").read_text())["config"]
    assert (config["attention"], config["loss"]) == ("none", "ce")

    source, _ = build_model(base, 7)
    weights = save_checkpoint(tmp_path / "ck.pt", source, classes=[f"e{i}" for i in range(7)], config=base)
    counted = []
    monkeypatch.setattr(loso, "fit", lambda *args, **kwargs: counted.append(1) or untrained_fit(*args, **kwargs))
    rows = ablation.run_ablation(data, base, tmp_path / "without", pretrained=weights, progress=False)
    assert len(counted) == 2  # rows 1-5 resumed from their folders; only row 6's two folds trained
    assert rows[5]["status"] == "done" and rows[5]["accuracy"] is not None
    transfer = json.loads((tmp_path / "without" / "6-dual-focal-ckplus" / "config.json").read_text())
    no_transfer = json.loads((tmp_path / "without" / "5-dual-focal" / "config.json").read_text())
    assert transfer["pretrained"]["path"] == str(weights) and no_transfer["pretrained"] is None
