"""A self-contained HTML report of spotted micro-expressions: one file that opens offline from disk.

Per video: a timeline of the spotting signal (inline SVG) with each micro-expression shaded and labelled
and the rejected rises (blinks, macro expressions…) shaded in grey, the threshold dashed, and a card per
event with the aligned apex face (inline base64 PNG), its label, confidence and timing. For a batch, a
table of the videos (failures with their reason) and a chart of the events per label come first.

No JavaScript, no external CSS, fonts or images: plain strings built with :func:`html.escape`.
"""

from __future__ import annotations

import html
import json
import math
import os
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from realtime.core.files import atomic_write_text

PALETTE = ("#e4572e", "#2e86ab", "#a23b72", "#f1a208", "#3bb273", "#7768ae", "#d1495b", "#00798c", "#8d6a9f")
REJECTED_FILL = "#9aa5b1"
FACE_LINES = ("#1f2937", "#2563eb", "#b45309", "#047857")


@dataclass
class VideoReport:
    """What the report shows about one video. ``summary`` holds the numbers of ``summary.json`` (frames,
    duration_s, fps, faces, events, events_per_label, stage_ms, provider, wall_s); ``events`` the objects
    of ``events.jsonl``; ``signal`` the spotting signal per face and the rejected rises (see
    :meth:`realtime.process.ReportRecorder.signal`); ``thumbnails`` ``"<face>_<apex frame>"`` → base64 PNG;
    ``video`` the annotated video's address relative to the report (see :func:`video_link`), shown in a player
    (the file stays beside the report: a page with the video inlined would be as large as the video)."""

    name: str
    path: str
    status: str = "done"
    reason: str = ""
    summary: dict = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    signal: dict = field(default_factory=dict)
    thumbnails: dict[str, str] = field(default_factory=dict)
    video: str = ""


BROWSER_VIDEO = (".mp4", ".m4v")  # H.264 in MP4: what every browser's <video> plays


def video_link(video_path: Path | str | None, report_path: Path | str) -> str:
    """The annotated video's address relative to the report (a URL path), or "" when there is no video a
    browser can play there."""
    if video_path is None:
        return ""
    video_path = Path(video_path)
    if video_path.suffix.lower() not in BROWSER_VIDEO or not video_path.is_file():
        return ""
    relative = os.path.relpath(video_path.resolve(), Path(report_path).resolve().parent)
    return urllib.parse.quote(Path(relative).as_posix())


def _player(video: VideoReport) -> str:
    if not video.video:
        return ""
    src = _e(video.video)
    return (
        f'<video class="annotated" controls preload="metadata" src="{src}"></video>'
        f'<p class="muted small">annotated video: <a href="{src}">{src}</a> (kept beside this page)</p>'
    )


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _num(value, digits: int = 1, default: str = "–") -> str:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        return _e(value)
    if not math.isfinite(number):
        return default
    return f"{number:,.{digits}f}" if digits else f"{round(number):,}"


def _anchor(index: int) -> str:
    return f"video-{index}"


def label_colours(labels) -> dict[str, str]:
    """A stable colour per label (sorted order through the palette)."""
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(sorted(set(labels)))}


def _nice_step(span: float, ticks: int = 8) -> float:
    raw = max(span / max(ticks, 1), 1e-9)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def timeline_svg(video: VideoReport, colours: dict[str, str], width: int = 960, height: int = 190) -> str:
    """The spotting signal of each face over time, threshold dashed, events shaded (inline SVG)."""
    faces = (video.signal or {}).get("faces", {})
    rejected = (video.signal or {}).get("rejected", [])
    left, right, top, bottom = 44, 12, 26, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    t_end = float(video.summary.get("duration_s") or 0.0) * 1000.0
    y_max = 1.0
    for trace in faces.values():
        if trace.get("t_ms"):
            t_end = max(t_end, float(trace["t_ms"][-1]))
            y_max = max(y_max, max(trace["signal"], default=0.0) * 1.08, max(trace["threshold"], default=0.0) * 1.3)
    for event in video.events:
        t_end = max(t_end, float(event.get("offset_ms", 0.0)))
    t_end = max(t_end, 1.0)

    def x(t_ms: float) -> float:
        return left + plot_w * min(max(t_ms / t_end, 0.0), 1.0)

    scale = math.log1p(y_max)  # compressed: a blink 100× the threshold must not flatten the micro-expressions

    def y(value: float) -> float:
        return top + plot_h * (1.0 - min(max(math.log1p(max(value, 0.0)) / scale, 0.0), 1.0))

    parts = [
        f'<svg class="timeline" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="spotting signal of {_e(video.name)}" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fbfcfd" stroke="#e2e8f0"/>',
    ]
    ticks = [v for v in (1, 3, 10, 30, 100, 300, 1000, 3000, 10000, 30000) if v < y_max * 0.95]
    if len(ticks) > 5:
        ticks = ticks[::2]
    for value in ticks:
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#eef2f6"/>'
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" class="tick" text-anchor="end">{value:g}</text>'
        )
    for event in rejected:
        x0, x1 = x(event.get("onset_ms", 0.0)), x(event.get("offset_ms", 0.0))
        parts.append(
            f'<rect x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 1.5):.1f}" height="{plot_h}" fill="{REJECTED_FILL}" '
            f'fill-opacity="0.22"><title>{_e(event.get("kind", "rejected"))}: rejected, '
            f"{_num(event.get('onset_ms', 0) / 1000, 2)}–{_num(event.get('offset_ms', 0) / 1000, 2)} s</title></rect>"
            f'<text x="{(x0 + x1) / 2:.1f}" y="{top + plot_h - 5}" class="rejected" text-anchor="middle">'
            f"{_e(event.get('kind', ''))}</text>"
        )
    for event in video.events:
        label = event.get("label") or "micro"
        colour = colours.get(label, PALETTE[0])
        x0, x1 = x(event.get("onset_ms", 0.0)), x(event.get("offset_ms", 0.0))
        xa = x(event.get("apex_ms", 0.0))
        confidence = float(event.get("confidence") or 0.0)
        parts.append(
            f'<g class="event"><rect x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 2.0):.1f}" height="{plot_h}" '
            f'fill="{colour}" fill-opacity="0.20" stroke="{colour}" stroke-opacity="0.55"/>'
            f'<line x1="{xa:.1f}" x2="{xa:.1f}" y1="{top}" y2="{top + plot_h}" stroke="{colour}" stroke-width="1.5"/>'
            f"<title>{_e(label)} {100 * confidence:.0f}% · face {_e(event.get('face', 0))} · apex "
            f"{_num(event.get('apex_ms', 0) / 1000, 2)} s (frame {_e(event.get('apex_frame', ''))})</title>"
            f'<text x="{xa:.1f}" y="{top - 8}" class="label" fill="{colour}" text-anchor="middle">{_e(label)}</text>'
            "</g>"
        )
    for i, (face_id, trace) in enumerate(sorted(faces.items())):
        times, signal, threshold = trace.get("t_ms", []), trace.get("signal", []), trace.get("threshold", [])
        if not times:
            continue
        colour = FACE_LINES[i % len(FACE_LINES)]
        line = " ".join(f"{x(t):.1f},{y(s):.1f}" for t, s in zip(times, signal, strict=False))
        dashed = " ".join(f"{x(t):.1f},{y(s):.1f}" for t, s in zip(times, threshold, strict=False))
        parts.append(
            f'<polyline points="{dashed}" fill="none" stroke="#94a3b8" stroke-width="1" stroke-dasharray="4 3">'
            f"<title>threshold, face {_e(face_id)}</title></polyline>"
            f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.4" stroke-linejoin="round">'
            f"<title>spotting signal, face {_e(face_id)}</title></polyline>"
        )
    step_ms = _nice_step(t_end, 10)
    tick = 0.0
    while tick <= t_end + 1e-6:
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
            'stroke="#94a3b8"/>'
            f'<text x="{x(tick):.1f}" y="{top + plot_h + 17}" class="tick" text-anchor="middle">'
            f"{tick / 1000:g} s</text>"
        )
        tick += step_ms
    if not faces:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" class="empty" text-anchor="middle">'
            "no face was tracked: no signal</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def label_chart_svg(counts: dict[str, int], colours: dict[str, str], width: int = 520) -> str:
    """Horizontal bars: events per label (inline SVG)."""
    if not counts:
        return '<p class="muted">No micro-expressions were spotted.</p>'
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    bar, gap, left, right = 22, 8, 110, 50
    height = len(items) * (bar + gap) + gap
    most = max(c for _, c in items) or 1
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" role="img" '
        'aria-label="events per label" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (label, count) in enumerate(items):
        y0 = gap + i * (bar + gap)
        w = (width - left - right) * count / most
        parts.append(
            f'<text x="{left - 8}" y="{y0 + bar * 0.7:.1f}" class="bar-label" text-anchor="end">{_e(label)}</text>'
            f'<rect x="{left}" y="{y0}" width="{max(w, 2):.1f}" height="{bar}" rx="3" '
            f'fill="{colours.get(label, PALETTE[0])}"><title>{_e(label)}: {count}</title></rect>'
            f'<text x="{left + w + 6:.1f}" y="{y0 + bar * 0.7:.1f}" class="bar-value">{count}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _event_cards(video: VideoReport, colours: dict[str, str]) -> str:
    if not video.events:
        return '<p class="muted">No micro-expression was spotted in this video.</p>'
    cards = []
    for event in sorted(video.events, key=lambda e: (e.get("apex_ms", 0.0), e.get("face", 0))):
        label = event.get("label") or "micro-expression"
        colour = colours.get(event.get("label") or "micro", PALETTE[0])
        thumb = video.thumbnails.get(f"{event.get('face', 0)}_{event.get('apex_frame', -1)}")
        image = (
            f'<img src="data:image/png;base64,{thumb}" alt="aligned apex face, {_e(label)}" width="112" height="112">'
            if thumb
            else '<div class="noimg">no crop</div>'
        )
        probabilities = event.get("probabilities") or {}
        top = sorted(probabilities.items(), key=lambda kv: -kv[1])[:3]
        hint = " · ".join(f"{_e(k)} {100 * float(v):.0f}%" for k, v in top)
        cards.append(
            f'<figure class="event-card" style="--c:{colour}">{image}<figcaption>'
            f'<span class="event-label" style="color:{colour}">{_e(label)}</span> '
            f'<span class="conf">{100 * float(event.get("confidence") or 0):.0f}%</span>'
            f'<span class="when">apex <b>{_num(float(event.get("apex_ms", 0)) / 1000, 2)} s</b> · frame '
            f"{_e(event.get('apex_frame', ''))}</span>"
            f'<span class="when">{_num(float(event.get("onset_ms", 0)) / 1000, 2)}–'
            f"{_num(float(event.get('offset_ms', 0)) / 1000, 2)} s · face {_e(event.get('face', 0))}</span>"
            f'<span class="probs">{hint}</span>{_moved_line(event)}</figcaption></figure>'
        )
    return f'<div class="cards">{"".join(cards)}</div>'


def moved_text(event: dict, regions: int = 3) -> str:
    """The regions that moved in an event, for people: ``"brow left up 31% · brow right up 28%"``."""
    parts = []
    for item in (event.get("moved") or [])[:regions]:
        name = str(item.get("region", "")).replace("_", " ")
        direction = f" {item['direction']}" if item.get("direction") else ""
        parts.append(f"{name}{direction} {100 * float(item.get('share') or 0):.0f}%")
    return " · ".join(parts)


def _moved_line(event: dict) -> str:
    text = moved_text(event)
    if not text:
        return ""
    return f'<span class="moved" title="regions that moved, share of the movement">{_e(text)}</span>'


def _stage_line(summary: dict) -> str:
    stages = summary.get("stage_ms") or {}
    if not stages:
        return ""
    text = ", ".join(f"{_e(k)} {float(v):.2f}" for k, v in stages.items())
    return f'<p class="muted small">ms per frame: {text}</p>'


def _video_section(index: int, video: VideoReport, colours: dict[str, str]) -> str:
    s = video.summary
    badge = f'<span class="badge {_e(video.status)}">{_e(video.status)}</span>'
    head = f'<h2 id="{_anchor(index)}">{_e(video.name)} {badge}</h2><p class="path">{_e(video.path)}</p>'
    if video.status == "failed":
        return f'<section class="video failed">{head}<p class="reason">{_e(video.reason)}</p></section>'
    facts = (
        f"{_num(s.get('frames'), 0)} frames · {_num(s.get('duration_s'), 2)} s at {_num(s.get('fps'), 1)} fps · "
        f"{_num(s.get('faces'), 0)} face(s) · <b>{len(video.events)}</b> micro-expression(s)"
        + (f" · {_e(s.get('provider'))}" if s.get("provider") else "")
        + (f" · processed in {_num(s.get('wall_s'), 1)} s" if s.get("wall_s") is not None else "")
    )
    legend = (
        '<p class="legend"><span class="swatch line"></span>spotting signal (robust z, log scale) '
        '<span class="swatch dash"></span>'
        'threshold <span class="swatch micro"></span>micro-expression (line: apex) '
        '<span class="swatch rejected"></span>rejected rise (blink, macro expression, global change)</p>'
    )
    return (
        f'<section class="video">{head}<p class="facts">{facts}</p>{timeline_svg(video, colours)}{legend}'
        f"{_event_cards(video, colours)}{_player(video)}{_stage_line(s)}</section>"
    )


def _videos_table(videos: list[VideoReport], labels: list[str]) -> str:
    head = "".join(
        f"<th>{_e(h)}</th>"
        for h in ("video", "status", "frames", "duration s", "fps", "faces", "events", *labels, "wall s", "provider")
    )
    rows = []
    for i, video in enumerate(videos):
        s = video.summary
        per_label = s.get("events_per_label") or Counter(e.get("label") or "micro" for e in video.events)
        failed = video.status == "failed"
        cells = [
            f'<td class="name"><a href="#{_anchor(i)}">{_e(video.name)}</a>'
            + (f'<div class="reason">{_e(video.reason)}</div>' if video.reason else "")
            + "</td>",
            f'<td><span class="badge {_e(video.status)}">{_e(video.status)}</span></td>',
        ]
        if failed:
            cells.append(f'<td colspan="{7 + len(labels)}" class="muted">–</td>')
        else:
            cells += [
                f'<td class="n">{_num(s.get("frames"), 0)}</td>',
                f'<td class="n">{_num(s.get("duration_s"), 2)}</td>',
                f'<td class="n">{_num(s.get("fps"), 1)}</td>',
                f'<td class="n">{_num(s.get("faces"), 0)}</td>',
                f'<td class="n"><b>{len(video.events)}</b></td>',
                *(f'<td class="n">{per_label.get(label, 0) or ""}</td>' for label in labels),
                f'<td class="n">{_num(s.get("wall_s"), 1)}</td>',
                f"<td>{_e(s.get('provider', ''))}</td>",
            ]
        rows.append(f'<tr class="{_e(video.status)}">{"".join(cells)}</tr>')
    return f'<table class="videos"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


CSS = """
:root{--ink:#1f2937;--muted:#64748b;--line:#e2e8f0;--bg:#f4f6f9;--card:#fff;--accent:#2e86ab}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
 font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{background:#1f2937;color:#f8fafc;padding:22px 32px}
header h1{margin:0;font-size:22px;font-weight:600;letter-spacing:.2px}
header p{margin:4px 0 0;color:#cbd5e1}
main{max-width:1080px;margin:0 auto;padding:20px 24px 48px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 22px;margin:18px 0;
 box-shadow:0 1px 2px rgba(15,23,42,.04)}
h2{font-size:17px;margin:0 0 2px;display:flex;align-items:center;gap:10px;word-break:break-all}
h3{font-size:15px;margin:0 0 10px}
.path{margin:0 0 8px;color:var(--muted);font-size:12px;word-break:break-all}
.facts{margin:0 0 10px}
.muted{color:var(--muted)} .small{font-size:12px;margin:10px 0 0}
.stats{display:flex;flex-wrap:wrap;gap:12px;margin:0 0 6px}
.stat{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px 16px;min-width:120px}
.stat b{display:block;font-size:22px} .stat span{color:var(--muted);font-size:12px}
.overview{display:grid;grid-template-columns:minmax(0,1fr);gap:0}
table.videos{border-collapse:collapse;width:100%;font-size:13px}
.videos th{text-align:left;font-weight:600;color:var(--muted);border-bottom:2px solid var(--line);padding:6px 8px;
 white-space:nowrap}
.videos td{border-bottom:1px solid var(--line);padding:6px 8px;vertical-align:top}
.videos td.n{text-align:right;font-variant-numeric:tabular-nums}
.videos tr.failed td{background:#fff7f7}
.videos a{color:var(--accent);text-decoration:none;font-weight:500}
.reason{color:#b91c1c;font-size:12px}
.badge{font-size:11px;font-weight:600;text-transform:uppercase;letter-spacing:.4px;border-radius:999px;
 padding:2px 8px;background:#e2e8f0;color:#334155}
.badge.done{background:#dcfce7;color:#166534} .badge.skipped{background:#e0f2fe;color:#075985}
.badge.failed{background:#fee2e2;color:#991b1b}
svg text{font-family:inherit}
.timeline{display:block;margin:4px 0 2px}
.timeline .tick{font-size:11px;fill:#64748b} .timeline .label{font-size:12px;font-weight:600}
.timeline .rejected{font-size:10px;fill:#64748b} .timeline .empty{font-size:13px;fill:#94a3b8}
.chart .bar-label{font-size:13px;fill:#334155} .chart .bar-value{font-size:12px;fill:#64748b}
.legend{font-size:12px;color:var(--muted);margin:2px 0 12px}
.swatch{display:inline-block;width:18px;height:10px;margin:0 4px 0 12px;vertical-align:middle;border-radius:2px}
.swatch.line{height:2px;background:#1f2937;margin-left:0} .swatch.dash{height:0;border-top:2px dashed #94a3b8}
.swatch.micro{background:rgba(228,87,46,.25);border:1px solid rgba(228,87,46,.6)}
.swatch.rejected{background:rgba(154,165,177,.3)}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.event-card{margin:0;width:176px;border:1px solid var(--line);border-top:3px solid var(--c);border-radius:8px;
 padding:10px;background:#fff;text-align:center}
.event-card img,.noimg{width:112px;height:112px;border-radius:6px;display:block;margin:0 auto 6px;background:#0f172a}
.noimg{color:#94a3b8;line-height:112px;font-size:12px}
.event-card figcaption span{display:block}
.event-label{font-weight:700;font-size:14px;text-transform:capitalize}
.conf{font-variant-numeric:tabular-nums;color:var(--ink);font-weight:600}
.moved{font-size:11px;color:var(--ink);white-space:normal}
.when,.probs{font-size:11px;color:var(--muted);white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.when b{color:var(--ink);font-weight:600} .probs{margin-top:4px;white-space:normal}
video.annotated{display:block;width:100%;max-width:960px;margin:12px 0 4px;background:#000;border-radius:6px}
footer{color:var(--muted);font-size:12px;text-align:center;padding:12px}
"""


def render(videos: list[VideoReport], title: str = "microexpr report", subtitle: str = "") -> str:
    """The whole page as a string."""
    labels = sorted({e.get("label") or "micro" for v in videos for e in v.events})
    colours = label_colours(labels or ["micro"])
    counts = Counter(e.get("label") or "micro" for v in videos if v.status != "failed" for e in v.events)
    by_status = Counter(v.status for v in videos)
    duration = sum(float(v.summary.get("duration_s") or 0.0) for v in videos if v.status != "failed")
    generated = time.strftime("%Y-%m-%d %H:%M")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1><p>{_e(subtitle or 'micro-expressions spotted and classified')} · "
        f"generated {generated}</p></header><main>",
    ]
    if len(videos) > 1:
        stats = [
            (len(videos), "videos"),
            (by_status.get("done", 0) + by_status.get("skipped", 0), "processed"),
            (by_status.get("failed", 0), "failed"),
            (sum(counts.values()), "micro-expressions"),
            (f"{duration / 60:.1f} min" if duration >= 120 else f"{duration:.1f} s", "of video"),
        ]
        parts.append(
            '<div class="stats">'
            + "".join(f'<div class="stat"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for v, k in stats)
            + "</div>"
        )
        parts.append(f"<section><h3>Videos</h3>{_videos_table(videos, labels)}</section>")
        parts.append(f"<section><h3>Micro-expressions per label</h3>{label_chart_svg(dict(counts), colours)}</section>")
    for i, video in enumerate(videos):
        parts.append(_video_section(i, video, colours))
    parts.append(
        "<footer>Aligned apex faces are the crops the classifier saw. Signal: robust z-score of facial motion "
        "against the face's own recent rest state.</footer></main></body></html>"
    )
    return "\n".join(parts)


def write_report(path: Path | str, videos: list[VideoReport], title: str = "microexpr report", subtitle: str = ""):
    """Render and write atomically (a temporary file renamed over ``path``). Returns the path."""
    path = Path(path)
    text = render(videos, title, subtitle)
    return atomic_write_text(path, text)


def load_events(path: Path) -> list[dict]:
    """The objects of an events JSONL file (a torn last line, from a killed run, is ignored)."""
    events = []
    if not Path(path).is_file():
        return events
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def report_from_stream(source_name, source, pipeline, recorder, provider: str, video: str = "") -> VideoReport:
    """The report of one ``stream.py`` run, from what its :class:`realtime.process.ReportRecorder` kept;
    ``video`` the annotated video's :func:`video_link`."""
    events = list(recorder.events)
    summary = {
        "frames": recorder.frames,
        "fps": source.fps,
        "duration_s": recorder.last_ms / 1000.0,
        "faces": len(pipeline.face_ids),
        "events": len(events),
        "events_per_label": dict(Counter(e.get("label") or "micro" for e in events)),
        "provider": provider,
    }
    name = Path(str(source_name)).name or str(source_name)
    return VideoReport(
        name, str(source_name), "done", "", summary, events, recorder.signal(), recorder.thumbnails_b64(), video
    )
