"""report.html: self-contained, the headline beside the paper, the figures inline; checked in a real browser."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from training.report import format_markdown, write_report
from training.report_html import format_html


def hand_report(**changes) -> dict:
    report = {
        "dataset": "casme2",
        "protocol": "5class",
        "evaluation": "leave-one-subject-out",
        "classes": ["happiness", "others"],
        "complete": True,
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
        "config": {"attention": "dual", "loss": "focal", "epochs": 30, "lr": 0.0003, "alpha": [1.0, 2.0]},
        "pretrained": "weights/ckplus.pt (sha256 0123456789ab…)",
        "versions": {"torch": "2.14.1", "cuda": None},
    }
    return {**report, **changes}


def test_the_page_is_self_contained_with_every_section(tmp_path):
    write_report(hand_report(), tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"<script|<link|@import|url\(|https?://", page)  # nothing to fetch, nothing to run
    images = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(images) == 2  # the per-fold chart and the confusion figure, both inline
    for uri in images:
        assert uri.startswith("data:image/png;base64,")
        pixels = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
        assert pixels is not None and pixels.shape[0] > 100
    for text in ("75.00 %", "0.7333", "0.7500", "44.97 %", "0.3784", "+30.03 pt"):  # ours beside the paper's
        assert text in page, text
    for text in ('id="headline"', 'class="cm"', 'id="folds"', 'id="config"', "sub02", "ckplus.pt", "focal"):
        assert text in page, text
    assert "Partial report" not in page


def test_markdown_shows_the_same_figures_and_points_to_the_page(tmp_path):
    write_report(hand_report(), tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    assert "](confusion.png)" in markdown and "](folds.png)" in markdown and "](report.html)" in markdown
    assert "44.97 %" in markdown and "0.3784" in markdown
    chart = cv2.imread(str(tmp_path / "folds.png"))
    assert chart is not None and chart.shape[1] > chart.shape[0] > 200


def test_no_paper_figures_beside_other_data_and_text_is_escaped():
    page = format_html(hand_report(dataset="samm", classes=["<b>happy</b>", "others"]))
    assert "44.97" not in page and "0.3784" not in page and "CASME II 5-class results only" in page
    assert "<b>happy</b>" not in page and "&lt;b&gt;happy&lt;/b&gt;" in page
    assert "44.97" not in format_markdown(hand_report(protocol="3class"))
    partial = format_html(hand_report(complete=False, missing_subjects=["sub03"]))
    assert "Partial report" in partial and "sub03" in partial


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--hide-scrollbars"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)")
def test_a_headless_browser_renders_the_metrics_and_the_figures(tmp_path):
    write_report(hand_report(), tmp_path)
    url = (tmp_path / "report.html").as_uri()
    dom = subprocess.run([CHROMIUM, *HEADLESS, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    for text in ("Leave-one-subject-out: casme2 5class", "75.00 %", "44.97 %", "0.3784", "sub02", "happiness"):
        assert text in dom, text
    shot = tmp_path / "page.png"
    subprocess.run(
        [CHROMIUM, *HEADLESS, "--window-size=1200,1600", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        cwd=tmp_path,
    )
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (1600, 1200)
    # drawn, not blank: dark text, the blue confusion diagonal and the blue bars of the chart are there
    assert (image < 80).all(axis=2).sum() > 2000
    blue = (image[:, :, 0] > 120) & (image[:, :, 2] < 110)
    assert blue.sum() > 5000
