"""Spotting benchmark: F1 (MEGC rule), precision, recall, apex error and false alarms of the streaming spotter,
on the realistic set and on the lab set, with a Moilanen-style baseline beside it in the same run.

Every clip is made on the faces nothing may tune on (``training.synth.photos.HELD_OUT_PHOTOS``: astronaut,
einstein) and goes through the pipeline ``stream.py`` runs (:class:`realtime.pipeline.Pipeline`: face stage,
spotter; no classifier), so this measures whatever spotter is on the branch.

- realistic (``python -m training synth videos --set realistic``): each clip is written as H.264 (or Motion JPEG
  without compression) and read back through :func:`realtime.stages.capture.open_source`, as ``stream.py`` reads a
  file. Groups: ``base`` (the face's own small movements, head sway, blinks, lighting flicker, sensor noise,
  H.264), ``base+X`` for each episodic or camera nuisance X (talking, head turns, expressions, exposure and
  white-balance steps, a hand over the mouth, the face leaving the frame, a small face, a low-resolution
  camera), ``mixed`` (everything, the small face, low resolution, hand and leaving in about one clip in three)
  and ``quiet`` (the mixed nuisances with no micro-expression at all: every spot is a false alarm).
  Micro-expressions during other motion (talking, a turn, an expression, a hand, leaving) are reported apart
  from those in still stretches.
- lab (``python -m training synth videos``, the still-face set as before): distractors on, 30 fps, 640×480,
  rendered frames fed directly (``--lab-fps 30 60 200`` for the rates the bench used before).

A spotted interval is a hit when its IoU with a still unmatched true interval is at least 0.5 (MEGC); P, R
and F1 are pooled over a group's clips (the F1 of all realistic clips and of the lab set with a 95 % interval
from the clips drawn again with replacement: :func:`training.metrics.spotting_f1_interval`); the apex error
is |spotted − true apex| in ms over the hits; false alarms per minute are the spots that hit no
micro-expression, per minute of video; "late ms" is how long after its true offset frame each hit was
reported (median/max, and in brackets how many came more than 100 ms after it: the issue's live
requirement). With several lab rates, each rate gets a row of its own below the pooled lab row (the lab
target is set at 30 fps). A false spot is put down
to what it overlaps: an ordinary expression or blink, a nuisance's span (talking, a turn …), a
micro-expression matched too poorly (IoU < 0.5), or nothing.

The baseline is a plain feature-difference spotter in the style of Moilanen et al. (ICPR 2014): per-frame
landmark alignment, 6×6 blocks, frame t against the mean of frames t−k and t+k, the contrast of the largest
block differences, a fixed threshold (mean + 0.3·(max − mean)) and an interval of ±k frames around each
peak. It is offline (it needs the whole clip); ours streams.

    .venv/bin/python benchmarks/spotting_bench.py [--quick] [--set realistic lab] [--no-baseline]
        [--workers 2] [--json runs/spotting_bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from realtime.core.align import AlignmentSettings, align_face  # noqa: E402
from realtime.pipeline import Pipeline, PipelineOptions  # noqa: E402
from realtime.stages.capture import Frame, open_source  # noqa: E402
from realtime.stages.faces import FaceTracker  # noqa: E402
from realtime.stages.spotter import SPOTTER_METHODS, SpotterOptions  # noqa: E402
from training.metrics import interval_iou, spotting_f1, spotting_f1_interval  # noqa: E402
from training.metrics import megc_match as metrics_megc_match  # noqa: E402
from training.spotting import LATE_MS  # noqa: E402
from training.synth.faces import load_face_photos  # noqa: E402
from training.synth.photos import HELD_OUT_PHOTOS  # noqa: E402
from training.synth.realistic import (  # noqa: E402
    MOTION_NUISANCES,
    NUISANCES,
    TUNING_PHOTOS,
    RealisticClipSpec,
    RealisticRenderer,
    RealisticSettings,
    leaving_out,
    photo_files,
    plan_realistic_clips,
    write_realistic_clip,
)
from training.synth.videos import VideoClipSpec, VideoRenderer, VideoSettings, plan_clips, read_video  # noqa: E402

BASE = frozenset({"face_motion", "sway", "blinks", "lighting", "noise", "compression"})
SINGLES = (
    "talking",
    "head_turns",
    "expressions",
    "exposure",
    "white_balance",
    "occlusion",
    "leave_frame",
    "small_face",
    "low_resolution",
)
CAUSES = ("talking", "head_turns", "expressions", "occlusion", "leave_frame", "exposure", "white_balance")


@dataclass(frozen=True)
class Interval:
    onset_frame: int
    apex_frame: int
    offset_frame: int
    kind: str = "micro"
    decided_frame: int | None = None  # the frame on which a streaming spotter reported it (None: offline)


@dataclass(frozen=True)
class Job:
    """One clip to run: its set (``realistic``/``lab``), group, and plan."""

    clip_set: str
    group: str
    spec: RealisticClipSpec | VideoClipSpec
    baseline: bool
    spotters: tuple[str, ...] = ("rules",)


def iou(a: Interval, b: Interval) -> float:
    """IoU of two frame intervals, both ends included."""
    return interval_iou((a.onset_frame, a.offset_frame), (b.onset_frame, b.offset_frame))


def megc_match(spotted: Iterable[Interval], truth: list[Interval], threshold: float = 0.5) -> list[tuple]:
    """Pairs (spotted index, true index) of hits: each true interval matches at most one spotted one, best
    IoU first (:func:`training.metrics.megc_match`)."""
    return metrics_megc_match(
        [(s.onset_frame, s.offset_frame) for s in spotted], [(t.onset_frame, t.offset_frame) for t in truth], threshold
    )


# --- the two spotters ---------------------------------------------------------------------------------------------


def spot_pipeline(
    frames: Iterator[Frame], method: str = "rules", model: str | None = None
) -> tuple[list[Interval], dict]:
    """Our spotter (``method``: rules or learned; ``model``: the learned spotter's file, default the committed one)
    through the stream's pipeline (face stage + spotter)."""
    pipeline = Pipeline(PipelineOptions(spotter=SpotterOptions(method=method, model=model)))
    found, rejected = [], Counter()
    with_face, ids, n, spent = [], set(), 0, 0.0
    for frame in frames:
        started = time.perf_counter()
        result = pipeline.process(frame)
        spent += time.perf_counter() - started
        n += 1
        with_face.append(bool(result.faces))
        ids |= {face.face_id for face in result.faces}
        found += [
            Interval(e.onset_frame, e.apex_frame, e.offset_frame, decided_frame=e.decided_frame) for e in result.events
        ]
        rejected.update(e.kind for e in result.rejected)
    pipeline.close()
    return found, {
        "rejected": dict(rejected),
        "with_face": with_face,
        "face_ids": len(ids),
        "ms_per_frame": 1000.0 * spent / max(n, 1),
        # the face stage's rare, slow second opinions (about 50 and 60 ms each): how often a clip needs them
        "cnn_checks": pipeline.tracker.cnn_checks,
        "identities": pipeline.tracker.identities,
    }


def _block_features(crop: np.ndarray, blocks: int) -> np.ndarray:
    size = crop.shape[0] // blocks * blocks
    return cv2.resize(crop[:size, :size], (blocks, blocks), interpolation=cv2.INTER_AREA).ravel()


def spot_moilanen(
    images: Iterable[np.ndarray], fps: float, k_ms: float = 125.0, blocks: int = 6, top: int = 12, p: float = 0.3
) -> tuple[list[Interval], dict]:
    """The plain baseline: per-frame alignment, feature difference against the average of t±k, fixed
    threshold, ±k intervals."""
    tracker, settings = FaceTracker(), AlignmentSettings(output_size=120)
    crops = []
    for image in images:
        faces = tracker.process(image)
        if faces.faces:
            crop = align_face(faces.gray, faces.faces[0].landmarks, settings).image.astype(np.float32)
            crops.append(cv2.GaussianBlur(crop, (0, 0), 1.0))
        else:
            crops.append(crops[-1] if crops else np.zeros((120, 120), np.float32))
    k = max(1, round(k_ms * fps / 1000.0))
    n = len(crops)
    if n <= 2 * k:
        return [], {}
    f = np.zeros(n)
    for t in range(k, n - k):
        average = 0.5 * (crops[t - k] + crops[t + k])
        block_diff = np.sort(np.abs(_block_features(crops[t], blocks * 20) - _block_features(average, blocks * 20)))
        f[t] = block_diff[-top:].mean()
    c = np.zeros(n)
    c[k : n - k] = np.maximum(f[k : n - k] - 0.5 * (f[: n - 2 * k] + f[2 * k :]), 0)
    threshold = c.mean() + p * (c.max() - c.mean())
    found, t = [], 0
    while t < n:
        if c[t] > threshold:
            end = t
            while end + 1 < n and c[end + 1] > threshold:
                end += 1
            peak = t + int(np.argmax(c[t : end + 1]))
            found.append(Interval(max(peak - k, 0), peak, min(peak + k, n - 1)))
            t = end + k
        t += 1
    return found, {}


# --- one clip -----------------------------------------------------------------------------------------------------


def timed_frames(images: Iterable[np.ndarray], fps: float) -> Iterator[Frame]:
    """Rendered frames as the stream sees a recorded video: numbered, each at its own time."""
    for index, image in enumerate(images):
        yield Frame(index, index * 1000.0 / fps, image)


def _recorded_frames(path: Path) -> Iterator[Frame]:
    """The frames of a written clip as ``stream.py`` reads them."""
    source = open_source(str(path))
    try:
        while True:
            frame = source.read()
            if frame is None:
                return
            yield frame
    finally:
        source.close()


def _score(found: list[Interval], truth: dict, fps: float) -> dict:
    """Hits, misses, apex errors and false-spot causes of one clip's spots against its truth."""
    micro = [e for e in truth["events"] if e["kind"] == "micro"]
    true = [Interval(e["onset_frame"], e["apex_frame"], e["offset_frame"]) for e in micro]
    hits = megc_match(found, true)
    hit_true = {ti: si for si, ti in hits}
    matches = []
    for ti, event in enumerate(micro):
        si = hit_true.get(ti)
        decided = None if si is None else found[si].decided_frame
        matches.append(
            {
                "apex_frame": event["apex_frame"],
                "during": event.get("during", []),
                "peak_shift_px": event.get("peak_shift_px"),
                "face_width_px": truth.get("face_width_px"),
                "found": si is not None,
                "apex_error_ms": None if si is None else abs(found[si].apex_frame - event["apex_frame"]) * 1000.0 / fps,
                # how long after the true offset frame the stream reported the hit (video time)
                "decided_after_offset_ms": None
                if decided is None
                else (decided - event["offset_frame"]) * 1000.0 / fps,
            }
        )
    others = [e for e in truth["events"] if e["kind"] != "micro"]
    spans = [
        (name, s)
        for name, item in truth.get("nuisances", {}).items()
        if isinstance(item, dict) and name in CAUSES
        for s in item.get("spans", [])
    ]
    matched = {si for si, _ in hits}
    causes: Counter = Counter()
    for si, spot in enumerate(found):
        if si in matched:
            continue
        best, cause = 0.0, "none"
        for event in micro:
            overlap = iou(spot, Interval(event["onset_frame"], event["apex_frame"], event["offset_frame"]))
            if overlap > best:
                best, cause = overlap, "micro (poor IoU)"
        for event in others:
            overlap = iou(spot, Interval(event["onset_frame"], event["apex_frame"], event["offset_frame"]))
            if overlap > best:
                best, cause = overlap, "expression" if event["kind"] == "macro" else event["kind"]
        if cause == "none":
            for name, span in spans:
                if span["start_frame"] <= spot.offset_frame and spot.onset_frame <= span["end_frame"]:
                    cause = name
                    break
        causes[cause] += 1
    return {"matches": matches, "tp": len(hits), "spotted": len(found), "true": len(true), "causes": dict(causes)}


def run_job(job: Job) -> list[dict]:
    """Make one clip, run our spotter (and the baseline) on it, score both."""
    spec = job.spec
    started, started_cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="spotbench-") as folder:
        if isinstance(spec, RealisticClipSpec):
            renderer = RealisticRenderer(spec)
            written, _, _ = write_realistic_clip(renderer, Path(folder))
            truth = renderer.truth()
            path = Path(folder) / written
            make_frames: Callable[[], Iterator[Frame]] = lambda: _recorded_frames(path)  # noqa: E731
            images: Callable[[], Iterable[np.ndarray]] = lambda: read_video(path)  # noqa: E731
            visible = renderer.visible.mean(axis=1) >= 0.5
        else:
            renderer = VideoRenderer(spec)
            truth = renderer.truth()
            make_frames = lambda: timed_frames(renderer.frames(), spec.fps)  # noqa: E731
            images = renderer.frames
            visible = np.ones(spec.n_frames, bool)
        generated_s, generated_cpu_s = time.perf_counter() - started, time.process_time() - started_cpu
        base = {
            "set": job.clip_set,
            "group": job.group,
            "clip": f"{job.group}/{spec.name}",
            "photo": spec.photo,
            "fps": spec.fps,
            "frames": spec.n_frames,
            "minutes": spec.n_frames / spec.fps / 60.0,
            "nuisances": sorted(getattr(spec, "nuisances", ())),
            "generate_s": round(generated_s, 2),
            "generate_cpu_s": round(generated_cpu_s, 2),
            "face_width_px": truth.get("face_width_px"),
        }
        rows = []
        for method in job.spotters:
            found, info = spot_pipeline(make_frames(), method)
            with_face = np.array(info.pop("with_face"), bool)[: len(visible)]
            shown = visible[: len(with_face)]
            info["face_found_share"] = float(with_face[shown].mean()) if shown.any() else None
            rows.append({**base, "method": method, **_score(found, truth, spec.fps), **info})
        if job.baseline:
            found, info = spot_moilanen(images(), spec.fps)
            rows.append({**base, "method": "moilanen", **_score(found, truth, spec.fps), **info})
    return rows


# --- the run --------------------------------------------------------------------------------------------------------


def realistic_groups(
    quick: bool, seconds: float, without: frozenset[str] = frozenset()
) -> list[tuple[str, RealisticSettings, int]]:
    """The realistic set's groups: (name, settings, clips): ``base``, ``base+X`` for each of :data:`SINGLES`,
    ``mixed`` and the nuisance-only ``quiet``. ``benchmarks/spotting_bound_bench.py`` uses the same design.
    ``without``: nuisances left out of every group (the development bench's ``--without``; the benchmark
    itself never leaves any out)."""
    per_single, mixed, quiet = (1, 2, 2) if quick else (2, 6, 6)
    groups = [("base", RealisticSettings(seconds=seconds, nuisances=BASE, sometimes=frozenset()), per_single)]
    for name in SINGLES:
        settings = RealisticSettings(seconds=seconds, nuisances=BASE | {name}, sometimes=frozenset())
        groups.append((f"base+{name}", settings, per_single))
    groups.append(("mixed", RealisticSettings(seconds=seconds), mixed))
    groups.append(("quiet", RealisticSettings(seconds=seconds, micro=0), quiet))
    return [(name, leaving_out(settings, without), count) for name, settings, count in groups]


DEV_PHOTOS = tuple(sorted(TUNING_PHOTOS))
"""The training photos, in the order the development benches plan their clips (each photo's seed follows it)."""
DEV_SEED = 5000
"""Added to a run's seed for the development clips, so that they are never the trainer's own clips."""


def groups_per_photo(
    photos: Sequence[str], quick: bool, seconds: float, seed: int, without: frozenset[str] = frozenset()
) -> list[tuple[str, RealisticClipSpec]]:
    """(group, clip) of every realistic group (:func:`realistic_groups`) for each photo on its own, so that a
    leave-one-photo-out run scores every group on every face (``spotting_bound_bench.py``, ``spotting_dev_bench.py``,
    on the training photos); each photo and group draws from its own seed."""
    out = []
    for number, photo in enumerate(photos):
        faces = load_face_photos(photo_files([photo]))
        for g, (group, settings, count) in enumerate(realistic_groups(quick, seconds, without)):
            out += [(group, s) for s in plan_realistic_clips(faces, settings, seed + 97 * number + 1000 * g, count)]
    return out


def plan_jobs(
    sets: list[str],
    quick: bool,
    seed: int,
    baseline: bool,
    seconds: float,
    lab_fps: tuple[float, ...] = (30.0,),
    spotters: tuple[str, ...] = ("rules",),
) -> list[Job]:
    photos = load_face_photos(photo_files(HELD_OUT_PHOTOS))
    jobs: list[Job] = []
    if "realistic" in sets:
        for number, (group, settings, count) in enumerate(realistic_groups(quick, seconds)):
            turn = number % len(photos)  # every group starts on another face, so one-clip groups cover both
            for spec in plan_realistic_clips(photos[turn:] + photos[:turn], settings, seed + 1000 * number, count):
                jobs.append(Job("realistic", group, spec, baseline, spotters))
    if "lab" in sets:
        count = 2 if quick else 6
        for fps in lab_fps:
            for spec in plan_clips(photos, VideoSettings(fps=fps, frame_size=(640, 480)), seed, count):
                jobs.append(Job("lab", "lab", spec, baseline, spotters))
    return jobs


def summarise(rows: list[dict]) -> dict:
    """Pooled P, R, F1, apex error, false alarms per minute of a list of clip rows."""
    tp = sum(r["tp"] for r in rows)
    spotted = sum(r["spotted"] for r in rows)
    true = sum(r["true"] for r in rows)
    minutes = sum(r["minutes"] for r in rows)
    precision = tp / spotted if spotted else 0.0
    recall = tp / true if true else 0.0
    f1 = spotting_f1(tp, spotted, true)
    apex = [m["apex_error_ms"] for r in rows for m in r["matches"] if m["found"]]
    decided = [m["decided_after_offset_ms"] for r in rows for m in r["matches"]]
    decided = [ms for ms in decided if ms is not None]
    causes: Counter = Counter()
    for r in rows:
        causes.update(r["causes"])
    shares = [r["face_found_share"] for r in rows if r.get("face_found_share") is not None]
    interval = spotting_f1_interval([(r["tp"], r["spotted"], r["true"]) for r in rows]) if true else None
    return {
        "clips": len(rows),
        "true": true,
        "spotted": spotted,
        "tp": tp,
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
        "f1_ci95": [round(v, 3) for v in interval] if interval else None,
        "apex_error_ms": round(float(np.mean(apex)), 1) if apex else None,
        "false_per_minute": round((spotted - tp) / minutes, 2) if minutes else None,
        "decided_after_offset_ms": round(float(np.median(decided)), 1) if decided else None,
        "decided_after_offset_ms_max": round(float(np.max(decided)), 1) if decided else None,
        "late_hits": sum(ms > LATE_MS for ms in decided),
        "false_causes": dict(causes.most_common()),
        "face_found_share": round(float(np.mean(shares)), 3) if shares else None,
        "face_ids_max": max((r.get("face_ids", 0) for r in rows), default=0),
    }


def motion_split(rows: list[dict]) -> dict:
    """Recall and apex error of the micro-expressions in still stretches and during other motion."""
    out = {}
    for name, keep in (("still", lambda m: not m["during"]), ("during motion", lambda m: bool(m["during"]))):
        matches = [m for r in rows for m in r["matches"] if keep(m)]
        found = [m for m in matches if m["found"]]
        out[name] = {
            "true": len(matches),
            "found": len(found),
            "recall": round(len(found) / len(matches), 3) if matches else None,
            "apex_error_ms": round(float(np.mean([m["apex_error_ms"] for m in found])), 1) if found else None,
        }
    for nuisance in MOTION_NUISANCES:
        matches = [m for r in rows for m in r["matches"] if nuisance in m["during"]]
        if matches:
            found = sum(m["found"] for m in matches)
            out[f"during {nuisance}"] = {"true": len(matches), "found": found, "recall": round(found / len(matches), 3)}
    return out


MOVEMENT_BINS_PX = ((0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, float("inf")))
"""Peak landmark shift of a micro-expression in frame pixels: the issue's real-footage test injects 1-3 px."""
LARGE_FACE_PX = 90.0
"""Faces at least this wide (landmark box, frame pixels) count as full-size, as in the real-footage test."""


def movement_split(rows: list[dict]) -> dict:
    """Recall of the micro-expressions in still stretches by their peak shift in frame pixels, and on full-size
    faces with 1 px or more: the conditions of the issue's real-footage test (1-3 px warps on full-size faces,
    the rest of the face comparatively still), so the two figures can be read side by side."""
    still = [m for r in rows for m in r["matches"] if not m["during"] and m.get("peak_shift_px") is not None]
    out = {}
    for low, high in MOVEMENT_BINS_PX:
        chosen = [m for m in still if low <= m["peak_shift_px"] < high]
        name = f"{low:.0f}-{high:.0f} px" if np.isfinite(high) else f">= {low:.0f} px"
        out[name] = {"true": len(chosen), "found": sum(m["found"] for m in chosen)}
    full = [m for m in still if m["peak_shift_px"] >= 1.0 and (m.get("face_width_px") or 0.0) >= LARGE_FACE_PX]
    out[f">= 1 px on faces >= {LARGE_FACE_PX:.0f} px"] = {"true": len(full), "found": sum(m["found"] for m in full)}
    for item in out.values():
        item["recall"] = round(item["found"] / item["true"], 3) if item["true"] else None
    return out


def _line(name: str, s: dict, width: int = 24) -> str:
    apex = "-" if s["apex_error_ms"] is None else f"{s['apex_error_ms']:.0f}"
    faces = "-" if s["face_found_share"] is None else f"{100 * s['face_found_share']:.0f}%"
    fa = "-" if s["false_per_minute"] is None else f"{s['false_per_minute']:.1f}"
    late = "-"
    if s["decided_after_offset_ms"] is not None:
        late = f"{s['decided_after_offset_ms']:.0f}/{s['decided_after_offset_ms_max']:.0f} ({s['late_hits']})"
    return (
        f"  {name:<{width}} {s['clips']:>5} {s['true']:>5} {s['tp']:>4} {s['spotted']:>6}  {s['precision']:.2f}  "
        f"{s['recall']:.2f}  {s['f1']:.2f}  {apex:>6}  {fa:>6}  {faces:>6}  {s['face_ids_max']:>4}  {late:>12}"
    )


def _interval(s: dict) -> str:
    if not s.get("f1_ci95"):
        return "    F1 95 % interval: -"
    low, high = s["f1_ci95"]
    return f"    F1 95 % interval over its {s['clips']} clips (drawn again with replacement): {low:.2f}-{high:.2f}"


HEADER = "  {:<24} clips  true   tp  spots     P     R    F1  apex ms  FA/min  faces   ids  {}".format(
    "group", "late ms (>100)"
)


def report(rows: list[dict], methods: list[str]) -> dict:
    """Print the tables and return the JSON summary."""
    out: dict = {}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        print(f"\n{method}")
        print(HEADER)
        summary: dict = {}
        realistic = [r for r in mine if r["set"] == "realistic"]
        if realistic:
            micro = [r for r in realistic if r["group"] != "quiet"]
            groups = sorted({r["group"] for r in micro}, key=lambda g: (g != "base", g == "mixed", g))
            for group in groups:
                summary[group] = summarise([r for r in micro if r["group"] == group])
                print(_line(group, summary[group]))
            summary["realistic (all with micro)"] = summarise(micro)
            print(_line("realistic, all", summary["realistic (all with micro)"]))
            print(_interval(summary["realistic (all with micro)"]))
            quiet = [r for r in realistic if r["group"] == "quiet"]
            if quiet:
                summary["quiet (nuisance only)"] = summarise(quiet)
                print(_line("nuisance-only clips", summary["quiet (nuisance only)"]))
            by_nuisance = {}
            for nuisance in NUISANCES:
                chosen = [r for r in micro if nuisance in r["nuisances"]]
                if chosen:
                    by_nuisance[nuisance] = summarise(chosen)
            summary["clips with nuisance"] = by_nuisance
            split = motion_split(micro)
            summary["micro still vs during motion"] = split
            print(
                "  micro-expressions: "
                + "; ".join(
                    f"{k} {v['found']}/{v['true']}"
                    + (f" (apex {v['apex_error_ms']:.0f} ms)" if v.get("apex_error_ms") else "")
                    for k, v in split.items()
                )
            )
            movement = movement_split(micro)
            summary["micro still by peak movement"] = movement
            print(
                "  still micro-expressions by peak shift: "
                + "; ".join(f"{k} {v['found']}/{v['true']}" for k, v in movement.items())
            )
            causes = summary["realistic (all with micro)"]["false_causes"]
            quiet_causes = summary.get("quiet (nuisance only)", {}).get("false_causes", {})
            print(f"  false spots on: {causes}; on nuisance-only clips: {quiet_causes}")
        lab = [r for r in mine if r["set"] == "lab"]
        if lab:
            summary["lab"] = summarise(lab)
            print(_line("lab (still face)", summary["lab"]))
            print(_interval(summary["lab"]))
            rates = sorted({r["fps"] for r in lab})
            for fps in rates if len(rates) > 1 else ():  # each rate apart: the lab target is set at 30 fps
                summary[f"lab at {fps:g} fps"] = summarise([r for r in lab if r["fps"] == fps])
                print(_line(f"  at {fps:g} fps", summary[f"lab at {fps:g} fps"]))
                print(_interval(summary[f"lab at {fps:g} fps"]))  # 6 clips a rate: a wide interval
        if method in SPOTTER_METHODS:
            cost = [r["ms_per_frame"] for r in mine if "ms_per_frame" in r]
            if cost:
                summary["pipeline_ms_per_frame"] = round(float(np.mean(cost)), 2)
                print(f"  pipeline (face stage + spotter) {summary['pipeline_ms_per_frame']:.1f} ms per frame (wall)")
            asked = {key: sum(r.get(key, 0) for r in mine) for key in ("cnn_checks", "identities")}
            frames = sum(r["frames"] for r in mine)
            summary.update(asked)
            print(
                f"  face stage: dlib's CNN detector asked {asked['cnn_checks']} times, its face-recognition model "
                f"{asked['identities']} times, in {frames} frames"
            )
        out[method] = summary
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", dest="sets", nargs="+", choices=("realistic", "lab"), default=["realistic", "lab"])
    parser.add_argument("--quick", action="store_true", help="one or two clips per group (about a third of the time)")
    parser.add_argument("--seconds", type=float, default=None, help="realistic clip length (default 12; quick 10)")
    parser.add_argument(
        "--lab-fps", type=float, nargs="+", default=[30.0], help="lab set frame rates (default 30; before: 30 60 200)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the Moilanen-style baseline")
    parser.add_argument(
        "--spotter",
        dest="spotters",
        nargs="+",
        choices=SPOTTER_METHODS,
        default=list(SPOTTER_METHODS),
        help="our spotters to measure, side by side (default: all)",
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "runs" / "spotting_bench.json", help="where the JSON goes")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    seconds = args.seconds or (10.0 if args.quick else 12.0)
    started = time.perf_counter()
    jobs = plan_jobs(
        args.sets, args.quick, args.seed, not args.no_baseline, seconds, tuple(args.lab_fps), tuple(args.spotters)
    )
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        rows = [row for result in pool.map(run_job, jobs) for row in result]
    elapsed = time.perf_counter() - started
    frames = sum(j.spec.n_frames for j in jobs)
    first = args.spotters[0]
    generated = sum(r["generate_s"] for r in rows if r["method"] == first)
    generated_cpu = sum(r["generate_cpu_s"] for r in rows if r["method"] == first)
    print(
        f"spotting bench: {len(jobs)} clips ({frames} frames) on held-out faces {', '.join(HELD_OUT_PHOTOS)}, "
        f"{elapsed:.0f} s with {args.workers} workers; generating took {generated:.0f} s of the workers' time "
        f"({generated_cpu:.0f} s of their CPU, {1000 * generated_cpu / max(frames, 1):.1f} ms per frame, the "
        "H.264 encoder's own process not counted)"
    )
    methods = [*args.spotters] + ([] if args.no_baseline else ["moilanen"])
    summary = report(rows, methods)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "command": "benchmarks/spotting_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "held_out_photos": list(HELD_OUT_PHOTOS),
        "seconds": round(elapsed, 1),
        "summary": summary,
        "clips": rows,
    }
    args.json.write_text(json.dumps(data, indent=1) + "\n")
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
