"""Speed of the streaming recognizer against a naive peer, on a generated 640×480 clip, CPU only.

Measured in one run, on the same frames:

- decoding alone (the ceiling);
- the pipeline as ``stream.py`` runs it on a recorded video: capture → face (HOG every 15th frame on a
  320 px copy, landmark tracking in between) → streaming spotter → ONNX classifier on each apex;
- a naive peer: dlib HOG on every full 640×480 frame + 68 landmarks + the same alignment + the attention
  ResNet18 in torch eager mode on every frame (224 px) — what a straightforward implementation does;
- live mode: the clip served at 60 fps in real time through the live capture (thread + bounded queue):
  dropped frames, and the wall-clock latency from the frame that shows an event's offset to the event;
- ``stream.py`` itself in a fresh process: start-up time to the first frame, peak RSS, and that torch
  is never imported.

    .venv/bin/python benchmarks/stream_bench.py [--seconds 10] [--naive-frames 60] [--spotter rules|learned]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from export.untrained import make_tiny_model  # noqa: E402
from realtime.pipeline import Pipeline, PipelineOptions, StageTimes  # noqa: E402
from realtime.stages.capture import CaptureOptions, LiveSource, open_source  # noqa: E402
from realtime.stages.classify import Classifier, ClassifierOptions  # noqa: E402
from realtime.stages.spotter import SPOTTER_METHODS, SpotterOptions  # noqa: E402
from training.synth.scripted import ClipSpec, blink, macro, micro, write  # noqa: E402


def bench_clip(seconds: float, fps: float) -> ClipSpec:
    """A 640×480 clip with micro-expressions every ~2 s and the distractors of the spotting benchmark."""
    motions, t, actions = [], 1500.0, ["smile", "brow_raise", "lip_corner_depressor", "brow_lower"]
    while t < seconds * 1000.0 - 1500.0:
        motions.append(micro(actions[len(motions) % len(actions)], t, 300.0, 2.0))
        motions.append(blink(t + 800.0, 200.0))
        t += 2000.0
    if seconds >= 8:
        motions.append(macro("smile", t - 1000.0 if t > 3000 else 1000.0, 900.0, 7.0))
    return ClipSpec(
        fps=fps,
        duration_ms=seconds * 1000.0,
        size=(640, 480),
        face_width_px=180.0,
        motions=tuple(motions),
        drift_px=3.0,
        drift_deg=1.0,
        light_ramp=15.0,
        noise_sigma=2.0,
    )


def decode_fps(path: Path) -> float:
    capture = cv2.VideoCapture(str(path))
    start, n = time.perf_counter(), 0
    while capture.read()[0]:
        n += 1
    capture.release()
    return n / (time.perf_counter() - start)


def pipeline_fps(
    path: Path, classifier: Classifier, spotter: str = "rules"
) -> tuple[float, dict[str, float], Pipeline, list[float]]:
    source = open_source(str(path), CaptureOptions(live=False, read_ahead=16))  # what stream.py opens
    options = PipelineOptions(spotter=SpotterOptions(method=spotter))
    pipeline, times, decided_after_ms = Pipeline(options, classifier=classifier), StageTimes(), []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        frame = source.read()
        if frame is None:
            break
        result = pipeline.process(frame)
        times.add(dict(result.stage_ms, capture=1000.0 * (time.perf_counter() - t0) - sum(result.stage_ms.values())))
        times.frames += 1
        decided_after_ms += [event.decided_ms - event.offset_ms for event in result.events]
    elapsed = time.perf_counter() - start
    source.close()
    return times.frames / elapsed, times.mean(), pipeline, decided_after_ms


def naive_fps(path: Path, frames: int) -> float:
    """dlib HOG on every full frame + landmarks + alignment + ResNet18 (torch, eager) on every frame."""
    import torch

    from realtime.core.align import AlignmentSettings, align_face
    from realtime.core.landmarks import FaceLandmarker
    from training.model import attention_resnet18

    landmarker = FaceLandmarker(detect_width=0)  # full resolution, every frame
    model = attention_resnet18(num_classes=5, attention="dual").eval()
    settings = AlignmentSettings(output_size=224)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    capture = cv2.VideoCapture(str(path))
    done, start = 0, time.perf_counter()
    with torch.inference_mode():
        while done < frames:
            ok, image = capture.read()
            if not ok:
                break
            boxes = landmarker.detect(image)
            if boxes:
                points = landmarker.landmarks(image, boxes[0])
                crop = align_face(image, points, settings).image[..., ::-1].copy()
                tensor = (torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255.0 - mean) / std
                torch.softmax(model(tensor), dim=1)
            done += 1
    capture.release()
    return done / (time.perf_counter() - start)


class PacedCapture:
    """Serves a video's frames in real time at ``fps`` (a camera stand-in): ``read()`` waits for the next
    frame's due time, as a camera driver does."""

    def __init__(self, path: Path, fps: float) -> None:
        self._capture = cv2.VideoCapture(str(path))
        self._period = 1.0 / fps
        self._next: float | None = None

    def read(self):
        ok, image = self._capture.read()
        now = time.perf_counter()
        self._next = now if self._next is None else self._next + self._period
        if self._next > now:
            time.sleep(self._next - now)
        return ok, image

    def release(self) -> None:
        self._capture.release()


def live_run(path: Path, classifier: Classifier, fps: float, spotter: str = "rules") -> dict:
    source = LiveSource(PacedCapture(path, fps), "paced clip", queue_size=8, stall_s=2.0, fps=fps)
    pipeline = Pipeline(PipelineOptions(spotter=SpotterOptions(method=spotter)), classifier=classifier)
    busy, frames, events = 0.0, 0, 0
    start = time.perf_counter()
    while (frame := source.read()) is not None:
        t0 = time.perf_counter()
        result = pipeline.process(frame)
        busy += time.perf_counter() - t0
        frames += 1
        events += len(result.events)
    elapsed = time.perf_counter() - start
    source.close()
    return {
        "frames": frames,
        "received": source.received,
        "dropped": source.dropped,
        "events": events,
        "busy": busy / elapsed,
        "latency_ms": pipeline.latencies_ms,
    }


def stream_process(path: Path, model: Path, spotter: str = "rules") -> str:
    result = subprocess.run(
        [
            *(sys.executable, str(ROOT / "stream.py"), "--source", str(path), "--model", str(model)),
            *("--no-display", "--benchmark", "--quiet", "--spotter", spotter),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    return (result.stdout + result.stderr).strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the generated clip (default 10)")
    parser.add_argument("--naive-frames", type=int, default=60, help="frames the naive peer runs (default 60)")
    parser.add_argument("--live-fps", type=float, default=60.0, help="rate of the live run (default 60)")
    parser.add_argument(
        "--spotter", choices=SPOTTER_METHODS, default="rules", help="the spotter the pipeline runs (default rules)"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model = make_tiny_model(folder / "resnet18-224.onnx", input_size=224)
        recorded = write(bench_clip(args.seconds, 30.0), folder / "clip30.mp4")
        live_clip = write(bench_clip(min(args.seconds, 8.0), args.live_fps), folder / "clip60.mp4")
        classifier = Classifier(ClassifierOptions(model, "cpu"))

        decoded = decode_fps(recorded)
        ours, stages, pipeline, decided_after_ms = pipeline_fps(recorded, classifier, args.spotter)
        naive = naive_fps(recorded, args.naive_frames)
        print(
            f"640×480, {args.seconds:g} s at 30 fps (mp4v), CPU only, {cv2.getNumberOfCPUs()} cores, "
            f"{args.spotter} spotter"
        )
        print(f"  decoding alone      {decoded:8.1f} fps")
        print(
            f"  pipeline            {ours:8.1f} fps   ms/frame: "
            + ", ".join(f"{k} {v:.2f}" for k, v in stages.items() if k not in ("render", "output"))
            + f"; HOG ran on {pipeline.tracker.detections} frames; {pipeline.events} events"
        )
        peer = "HOG full frame + landmarks + align + ResNet18 eager, every frame"
        print(f"  naive peer          {naive:8.1f} fps   ({peer})")
        print(f"  ratio               {ours / naive:8.1f}×")
        if decided_after_ms:
            print(
                f"  events decided {np.mean(decided_after_ms):.0f} ms (max {max(decided_after_ms):.0f} ms) of video "
                "after their offset frame"
            )

        live = live_run(live_clip, classifier, args.live_fps, args.spotter)
        worst = max(live["latency_ms"]) if live["latency_ms"] else float("nan")
        print(
            f"live at {args.live_fps:g} fps: {live['frames']} of {live['received']} frames processed, "
            f"{live['dropped']} dropped, {live['events']} events, busy {live['busy']:.0%} of the time; "
            f"each event out {np.mean(live['latency_ms']) if live['latency_ms'] else 0:.1f} ms (max {worst:.1f} ms) of "
            "wall-clock time after the frame that decided it arrived"
        )
        text = stream_process(recorded, model, args.spotter)
        line = next((x for x in text.splitlines() if x.startswith("benchmark:")), text[-300:])
        match = re.search(r"start-up to first frame ([\d.]+) s, peak RSS (\d+) MB.*torch loaded: (\w+)", line)
        if match:
            startup_s, rss_mb, torch_loaded = match.groups()
            print(f"stream.py: start-up {startup_s} s to the first frame, peak RSS {rss_mb} MB, torch: {torch_loaded}")
        else:
            print("stream.py:", line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
