"""The batch command's reports: ``batch.json`` and ``batch.csv`` (one row per video), ``report.html``, and the
progress shown on the terminal while the videos are processed.

A row is a plain dict: the job's fields (:meth:`realtime.batch.worker.BatchJob.row`) under what came of it:
``status`` (done, skipped, failed, unfinished), ``reason``, and for a video that was processed the numbers
of its ``summary.json``.
"""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path

from realtime.batch.planning import read_json_object
from realtime.batch.worker import SUMMARY_FILE, write_json
from realtime.core.files import atomic_open

BATCH_COLUMNS = (
    "input",
    "status",
    "reason",
    "frames",
    "duration_s",
    "fps",
    "faces",
    "events",
    "events_per_label",
    "wall_s",
    "provider",
    "output",
)


log = logging.getLogger("microexpr.batch")


def table_row(row: dict) -> dict:
    """A row of ``batch.json``/``batch.csv``: the columns of :data:`BATCH_COLUMNS`, blank where they do not apply."""
    per_label = row.get("events_per_label") or {}
    done = row.get("status") in ("done", "skipped")
    return {
        "input": row["input"],
        "status": row["status"],
        "reason": row.get("reason", ""),
        "frames": row.get("frames", ""),
        "duration_s": row.get("duration_s", "") if done else "",
        "fps": row.get("fps", "") if done else "",
        "faces": row.get("faces", "") if done else "",
        "events": row.get("events", "") if done else "",
        "events_per_label": dict(per_label) if done else {},
        "wall_s": row.get("wall_s", ""),
        "provider": row.get("provider", "") if done else "",
        "output": row["folder"] if done else "",
    }


def write_batch_files(out: Path, rows: list[dict], meta: dict) -> list[dict]:
    """``batch.json`` (the rows and how the run went) and ``batch.csv`` (one row per video, one column per
    label), both written atomically. Returns the table rows."""
    table = [table_row(r) for r in sorted(rows, key=lambda r: r["index"])]
    write_json(out / "batch.json", {**meta, "videos": table})
    labels = sorted({label for r in table for label in r["events_per_label"]})
    with atomic_open(out / "batch.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        columns = [c for c in BATCH_COLUMNS if c != "events_per_label"]
        head = columns[: columns.index("events") + 1] + [f"events_{label}" for label in labels]
        writer.writerow(head + columns[columns.index("events") + 1 :])
        for r in table:
            values = [r[c] for c in columns]
            cut = columns.index("events") + 1
            per = [r["events_per_label"].get(label, 0) if r["status"] != "failed" else "" for label in labels]
            writer.writerow(values[:cut] + per + values[cut:])
    return table


def write_batch_report(out: Path, rows: list[dict], subtitle: str) -> Path:
    """``report.html``: every row's video, with the signal, events and apex faces its folder holds."""
    from realtime.cli.report_html import VideoReport, load_events, video_link, write_report
    from realtime.process import VIDEO_FILE

    videos = []
    for row in sorted(rows, key=lambda r: r["index"]):
        folder = Path(row["folder"])
        name = Path(row["input"]).name
        if row["status"] == "failed":
            videos.append(VideoReport(name, row["input"], "failed", row.get("reason", "")))
            continue
        signal = read_json_object(folder / "signal.json") or {}
        thumbnails = signal.pop("thumbnails", {}) if isinstance(signal, dict) else {}
        summary = read_json_object(folder / SUMMARY_FILE) or row
        if row["status"] == "done":  # skipped ones keep the time they took when they were processed
            summary = {**summary, "wall_s": row.get("wall_s", summary.get("wall_s"))}
        events = load_events(folder / "events.jsonl")
        video = video_link(folder / VIDEO_FILE, out / "report.html")
        videos.append(VideoReport(name, row["input"], row["status"], "", summary, events, signal, thumbnails, video))
    return write_report(out / "report.html", videos, "microexpr batch report", subtitle)


class BatchProgress:
    """What the terminal shows while videos are processed: a bar (on a terminal) or one log line per video
    (elsewhere); nothing but errors with ``quiet``. ``settled`` are the rows known before any work (skipped,
    failed already), ``n_jobs`` the videos to process."""

    def __init__(self, settled: list[dict], n_jobs: int, quiet: bool) -> None:
        self.quiet = quiet
        self.n_settled = len(settled)
        self.n_skipped = sum(r["status"] == "skipped" for r in settled)
        self.n_jobs = n_jobs
        self.events = sum(int(r.get("events") or 0) for r in settled if r["status"] == "skipped")
        self.failed = 0
        self.finished = len(settled)
        self._bar = None

    def start(self, workers: int, where: str, provider: str) -> None:
        """The workers are ready: say so and show the bar."""
        from tqdm import tqdm

        if not self.quiet:
            log.info(
                "%d video(s) to do, %d finished already; %d Ray worker(s) on %s, classifier on %s",
                self.n_jobs,
                self.n_skipped,
                workers,
                where,
                provider,
            )
        self._bar = tqdm(
            total=self.n_settled + self.n_jobs,
            initial=self.n_settled,
            unit="video",
            desc="videos",
            disable=self.quiet or not sys.stderr.isatty(),
            file=sys.stderr,
            dynamic_ncols=True,
        )
        self._bar.set_postfix(events=self.events, failed=self.failed)

    def done(self, row: dict) -> None:
        """One video finished (``row`` as it goes in the table)."""
        bar = self._bar
        self.finished += 1
        self.events += int(row.get("events") or 0)
        self.failed += row["status"] == "failed"
        bar.update(1)
        bar.set_postfix(events=self.events, failed=self.failed)
        if bar.disable and not self.quiet:
            what = row.get("reason") if row["status"] == "failed" else f"{row.get('events', 0)} event(s)"
            log.info("[%d/%d] %s: %s, %s", self.finished, bar.total, Path(row["input"]).name, row["status"], what)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
