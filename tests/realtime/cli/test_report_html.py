"""The HTML report: self-contained (opens offline, nothing fetched), escaped, and it shows a generated clip's
events in a real headless browser (Debian's chromium; skipped with the reason when it is not installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import cv2
import pytest

import stream
from realtime.cli.report_html import VideoReport, render, timeline_svg
from training.synth.scripted import ClipSpec, blink, micro, write

BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
SPEC = ClipSpec(
    fps=30.0,
    duration_ms=4200.0,
    size=(320, 240),
    motions=(micro("smile", 1200.0, 300.0, 2.0), blink(2000.0, 200.0), micro("brow_raise", 2800.0, 260.0, 2.0)),
    seed=5,
)


def sample(name: str = "clip.avi", **changes) -> VideoReport:
    event = {
        "face": 0,
        "onset_frame": 30,
        "apex_frame": 36,
        "offset_frame": 42,
        "onset_ms": 1000.0,
        "apex_ms": 1200.0,
        "offset_ms": 1400.0,
        "score": 12.5,
        "label": "surprise",
        "confidence": 0.61,
        "probabilities": {"surprise": 0.61, "others": 0.39},
    }
    signal = {
        "faces": {"0": {"t_ms": [0.0, 1200.0, 3000.0], "signal": [0.1, 12.5, 0.2], "threshold": [5.0, 5.0, 5.0]}},
        "rejected": [{"face": 0, "kind": "blink", "onset_ms": 2000.0, "offset_ms": 2200.0, "score": 40.0}],
    }
    summary = {"frames": 90, "duration_s": 3.0, "fps": 30.0, "faces": 1, "events": 1, "provider": "CPU"}
    video = VideoReport(name, f"/videos/{name}", "done", "", summary, [event], signal, {})
    for key, value in changes.items():
        setattr(video, key, value)
    return video


def external_references(page: str) -> list[str]:
    """Anything the page would fetch: src/href that are not data: URIs or anchors, CSS url()/@import, links."""
    found = [m for m in re.findall(r'(?:src|href)="([^"]*)"', page) if not m.startswith(("data:", "#"))]
    found += re.findall(r"url\(|@import|<link\b|<script\b", page)
    return found


def test_a_batch_page_is_self_contained_and_escapes_what_it_shows():
    videos = [
        sample("a.avi"),
        sample("<script>alert(1)</script>.avi"),
        VideoReport("broken.avi", "/videos/broken.avi", "failed", "cannot decode: <bad> & worse"),
    ]
    page = render(videos, "batch & co")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not external_references(page)
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;.avi" in page
    assert "cannot decode: &lt;bad&gt; &amp; worse" in page and "batch &amp; co" in page
    assert page.count('class="event-card"') == 2
    assert page.count('<svg class="timeline"') == 2  # the failed video has none
    assert 'aria-label="events per label"' in page and ">surprise<" in page
    assert page.count('<tr class="') == 3  # the table of videos


def test_the_timeline_shades_events_and_rejected_rises_where_they_happened():
    svg = timeline_svg(sample(), {"surprise": "#123456"}, width=1000, height=200)
    left, right = 44, 12  # the plot spans x 44..988 over 0..3000 ms
    x = lambda t: left + (1000 - left - right) * t / 3000.0  # noqa: E731
    shaded = re.search(r'<rect x="([\d.]+)" y="\d+" width="([\d.]+)" height="[\d.]+" fill="#123456"', svg)
    assert (
        shaded and abs(float(shaded.group(1)) - x(1000)) < 1 and abs(float(shaded.group(2)) - (x(1400) - x(1000))) < 1
    )
    assert "blink" in svg and "<polyline" in svg and ">surprise</text>" in svg


def test_report_without_events_or_a_file_name_is_one_line_and_exit_2(tmp_path, capsys, tiny_onnx_model):
    clip = write(ClipSpec(fps=30.0, duration_ms=500.0), tmp_path / "c.avi")
    code = stream.main(["--source", str(clip), "--model", str(tiny_onnx_model), "--no-display", "--report"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: --report") and "Traceback" not in err


@pytest.fixture(scope="module")
def stream_report(tmp_path_factory, tiny_onnx_model):
    """stream.py on a generated clip with --events and --report (the report lands beside the events)."""
    folder = tmp_path_factory.mktemp("report")
    clip = write(SPEC, folder / "clip.avi")
    events = folder / "events.jsonl"
    args = ["--source", clip, "--model", tiny_onnx_model, "--no-display", "--quiet", "--events", events, "--report"]
    code = stream.main([str(a) for a in args])
    assert code == 0
    return folder / "events.html", [json.loads(line) for line in events.read_text().splitlines() if line]


def test_stream_report_holds_the_events_and_their_apex_faces(stream_report):
    page_path, events = stream_report
    page = page_path.read_text()
    assert len(events) >= 2
    assert not external_references(page)
    assert page.count('class="event-card"') == len(events)
    assert page.count('src="data:image/png;base64,') == len(events)  # every apex has its aligned face
    for event in events:
        assert f"frame {event['apex_frame']}" in page


@pytest.mark.skipif(BROWSER is None, reason="no chromium: install it (apt-get install -y chromium) to test the page")
def test_the_report_loads_in_a_headless_browser_and_shows_the_events(stream_report, tmp_path):
    page_path, events = stream_report
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--hide-scrollbars"]
    flags += ["--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}"]
    url = page_path.resolve().as_uri()
    dom = subprocess.run([BROWSER, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "</html>" in dom.stdout and dom.stdout.count('class="event-card"') == len(events)
    for event in events:
        assert f">{event['label']}</span>" in dom.stdout
    problems = [
        line
        for line in dom.stderr.splitlines()
        if "CONSOLE" in line or "net::ERR" in line or "Uncaught" in line or "Failed to load resource" in line
    ]
    assert not problems, problems

    shot = tmp_path / "page.png"
    run = subprocess.run(
        [BROWSER, *flags, "--window-size=1100,1400", f"--screenshot={shot}", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (1400, 1100)
    assert float(image.std()) > 20  # a drawn page, not a blank one


@pytest.mark.parametrize(
    "name, report_at, shown",
    [
        ("out/annotated.mp4", "out/report.html", "annotated.mp4"),
        ("videos/a b.mp4", "report.html", "videos/a%20b.mp4"),
        ("out/annotated.mkv", "out/report.html", ""),  # browsers do not play Matroska: no player
    ],
)
def test_the_annotated_video_plays_in_the_page_from_beside_it(tmp_path, name, report_at, shown):
    from realtime.cli.report_html import video_link

    video = tmp_path / name
    video.parent.mkdir(parents=True, exist_ok=True)
    video.write_bytes(b"\x00")
    link = video_link(video, tmp_path / report_at)
    assert link == shown
    page = render([VideoReport("clip", "clip.mp4", summary={"frames": 1}, video=link)])
    if shown:
        assert f'<video class="annotated" controls preload="metadata" src="{shown}">' in page
    else:
        assert "<video" not in page
    assert video_link(tmp_path / "missing.mp4", tmp_path / report_at) == ""


def test_the_cards_name_the_regions_that_moved(stream_report):
    """Each card says what moved, as the events file does (region, direction, share)."""
    page_path, events = stream_report
    page = page_path.read_text()
    assert events and all(event["moved"] for event in events)
    for event in events:
        first = event["moved"][0]
        words = f"{first['region'].replace('_', ' ')} {first['direction']}".strip()
        assert f"{words} {100 * first['share']:.0f}%" in page
    assert page.count('class="moved"') == len(events)
