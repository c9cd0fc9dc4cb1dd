"""Spot and name facial micro-expressions live from a webcam, a network stream, a video or a frame folder.

Run ``python stream.py --help`` for the options and examples. This module owns the loop and the window;
the work is done by the stages in :mod:`realtime` (capture → face → spot → classify → render/log). It never
imports torch: it starts fast and stays small.
"""

from __future__ import annotations

import os

# Quiet OpenCV's and FFmpeg's own logging before cv2 is imported: a bad file must give one clear line.
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import argparse
import logging
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from realtime.cli.arguments import OneLineErrorParser, positive_float, positive_int, run_reporting_errors

STARTED = time.perf_counter()
ROOT = Path(__file__).resolve().parent
WEIGHTS = ROOT / "weights"
WINDOW = "microexpr"

DESCRIPTION = """\
Spot facial micro-expressions (1/25-1/2 s leaks of a hidden emotion) and name them.

For every face: dlib finds it and fits 68 landmarks, the face is aligned the way the model was trained, a
streaming spotter watches how the cells of the face move for a brief rise and fall (it tells a
micro-expression from blinks, talking, head turns and ordinary expressions by where and how the face moves;
--spotter rules is the still-face spotter for CASME II-like recordings), and the apex frame of each
micro-expression is classified by the ONNX model. Nothing is downloaded.
"""

EPILOG = """\
sources:
  0, 1, ...                a webcam (live: frames are dropped when processing falls behind, and counted)
  video.mp4                a recorded video (every frame is processed, none dropped)
  frames_dir/              a folder of images in name order (img9 < img46 < img100); give its rate with --fps
  rtsp:// http(s):// tcp:// udp://   a network stream (live, like a webcam)

examples:
  python stream.py --source 0                                   # webcam, window with the overlay
  python stream.py --source 0 --spotter rules                   # a still face, as in CASME II recordings
  python stream.py --source clip.mp4 --no-display --events events.jsonl --csv frames.csv
  python stream.py --source CASME2/sub01/EP02_01f/ --fps 200 --output annotated.mp4 --no-display
  python stream.py --source clip.mp4 --no-display --events out/events.jsonl --report   # + out/events.html
  python stream.py --source rtsp://camera.local/stream --device cuda --max-faces 3

outputs:
  --events  one JSON object per micro-expression, written the moment it is spotted:
            {"face": 0, "onset_frame": 120, "apex_frame": 126, "offset_frame": 133, "onset_ms": 4000.0,
             "apex_ms": 4200.0, "offset_ms": 4433.3, "score": 0.97, "label": "happiness", "confidence": 0.71,
             "probabilities": {...}, "moved": [{"region": "mouth_left", "share": 0.35, "direction": "up"}, ...]}
            (frames are 0-based over every decoded frame of the source; score: the spotter's probability,
            0-1, or with --spotter rules the peak robust z-score)
  --csv     one row per frame and face (OpenFace style: frame, timestamp, face_id, confidence, success,
            pose_Rx/Ry/Rz, x_0..x_67, y_0..y_67) with the spotter's view (motion_<region>, signal,
            threshold, in_event), and a row with success 0 for frames with no face
  Python:   from realtime import Recognizer; Recognizer().process("clip.mp4") gives the same events
  --output  the annotated video, H.264 at the source's size and frame rate (.mp4: fragmented MP4, plays in
            browsers and sits in the --report page; .mkv Matroska; .mov; .avi)
  --report  one self-contained HTML page: the spotting signal over time with the events shaded, and the
            aligned apex face of each event with its label (opens offline; beside --events by default)
  At the end one summary line: frames, faces, events, fps, milliseconds per stage, dropped frames.

keys: q or Esc quits (the outputs are closed properly); so do Ctrl-C, SIGTERM and SIGHUP (service managers,
  containers, a closed terminal). After a SIGKILL or a power cut the events file is complete, the CSV holds
  every second but the last, and the video plays up to about a second before it.
Exit codes: 0 done, 2 bad arguments or input.
"""

log = logging.getLogger("microexpr")


def build_parser() -> argparse.ArgumentParser:
    from realtime.core.motion import INPUT_KINDS  # the choices come from the code that owns them
    from realtime.stages.classify import DEVICES
    from realtime.stages.spotter import DEFAULT_SPOTTER, SPOTTER_METHODS

    parser = OneLineErrorParser(
        prog="python stream.py",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source", required=True, help="webcam number, video file, image folder or stream URL")
    parser.add_argument(
        "--model",
        type=Path,
        help="the ONNX classifier (default: the newest .onnx in weights/); its own metadata gives the classes, "
        "input size, normalisation and alignment",
    )
    parser.add_argument(
        "--input",
        dest="input_kind",
        choices=("auto", *INPUT_KINDS),
        default="auto",
        help="the classifier input this run builds: auto (default) whatever the model's metadata asks for; "
        "apex (the apex frame's face), onset-apex (onset and apex faces) or flow (onset-to-apex optical "
        "flow): a model that needs another input is refused",
    )
    parser.add_argument("--output", type=Path, help="write the annotated video here (.mp4, .avi, .mov, .mkv)")
    parser.add_argument("--events", type=Path, help="write the micro-expressions here, one JSON object per line")
    parser.add_argument(
        "--csv",
        type=Path,
        help="write one row per frame and face here (OpenFace-style: landmarks, head pose, the spotter's view)",
    )
    parser.add_argument(
        "--csv-landmarks",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="put the 68 landmarks (x_0 ... y_67) in the --csv table; --no-csv-landmarks for a file about "
        "a seventh of the size (default: on)",
    )
    parser.add_argument(
        "--report",
        nargs="?",
        const=True,
        metavar="FILE.html",
        help="write a self-contained HTML report (signal timeline, events, apex thumbnails) at the end; "
        "without a file name it goes beside --events (events.jsonl → events.html)",
    )
    parser.add_argument("--no-display", action="store_true", help="no window (servers, batch runs)")
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="where the classifier runs: auto = CUDA if it loads, else CPU (one line says why); cuda = CUDA or "
        "stop with the reason; cpu (default: auto)",
    )
    parser.add_argument(
        "--max-faces", type=positive_int, default=1, help="how many faces to follow, largest first (default: 1)"
    )
    parser.add_argument(
        "--fps",
        type=positive_float,
        help="frame rate of an image folder (default 30), or the rate to assume for a video that reports none",
    )
    parser.add_argument(
        "--stall-timeout",
        type=positive_float,
        default=5.0,
        metavar="SECONDS",
        help="a live source that delivers nothing this long counts as gone; the run ends, keeping what was "
        "found (default: 5)",
    )
    parser.add_argument(
        "--spotter",
        choices=SPOTTER_METHODS,
        default=DEFAULT_SPOTTER,
        help=f"how micro-expressions are spotted (default: {DEFAULT_SPOTTER}): learned (per-cell rise-and-fall "
        "motion and a small model trained on generated webcam-like clips, so talking, head turns and ordinary "
        "expressions are not reported; see weights/SPOTTER.md for what it measured) or rules (a rise of motion "
        "above an adaptive threshold, then rules for blinks and expressions: best on a still face, as in "
        "CASME II recordings, and finds almost nothing on real webcam footage)",
    )
    parser.add_argument(
        "--spotter-model",
        type=Path,
        help="the learned spotter's model (default: weights/spotter.npz; train one with python -m training spotter)",
    )
    parser.add_argument(
        "--face-process",
        choices=("auto", "on", "off"),
        default="auto",
        help="run the face stage of a recorded video or image folder in a second process, so that both cores "
        "work on one video (same results; 1.3-1.5x the frames a second on 2 cores): auto (default) when "
        "the machine has 2 or more cores, on, or off. Live sources always run in one process",
    )
    parser.add_argument("--landmarks", action="store_true", help="draw the 68 landmarks in the overlay")
    parser.add_argument(
        "--benchmark", action="store_true", help="print per-stage milliseconds, fps, start-up time and peak memory"
    )
    parser.add_argument("--quiet", action="store_true", help="only errors and the summary line")
    return parser


def _display_available() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def run(args: argparse.Namespace) -> int:
    from realtime.api import Recognizer
    from realtime.cli.arguments import flags_for_options
    from realtime.cli.stopping import StopSignals
    from realtime.process import Outputs, ReportRecorder
    from realtime.stages.capture import check_source, is_recorded
    from realtime.stages.outputs import EventWriter, FrameCsvWriter, VideoWriter, check_writable
    from realtime.stages.render import Renderer, RenderOptions
    from realtime.stages.spotter import SpotterOptions

    # Everything the user gave is checked before any work: the source, the paths to write, the model. A live
    # source is opened last, once the model is loaded, so that no frame waits (or is dropped) meanwhile.
    check_source(args.source)
    report_path = _report_path(args)
    for path, what in (
        (args.output, "the video"),
        (args.events, "events"),
        (args.csv, "the CSV"),
        (report_path, "the report"),
    ):
        if path is not None:
            check_writable(path, what)
    from realtime.stages.classify import default_model

    model_path = args.model if args.model is not None else default_model(WEIGHTS)
    option_flags = {
        "device": "--device",
        "max_faces": "--max-faces",
        "input_kind": "--input",
        "fps": "--fps",
        "stall_s": "--stall-timeout",
    }
    option_flags.update({"method": "--spotter", "model": "--spotter-model"})
    with flags_for_options(option_flags):
        spotter = SpotterOptions(
            method=args.spotter, model=None if args.spotter_model is None else str(args.spotter_model)
        )
        # a recorded source's face stage in a second process keeps one core busy: the classifier then runs on one
        # thread, since a second one only takes time from that process (three sets of paired whole-process runs
        # on 2 cores with a 224 px ResNet18, 20 pairs: 1.01-1.06x faster, 3-5 % less CPU)
        wanted = args.face_process == "on" or (args.face_process == "auto" and (os.cpu_count() or 1) >= 2)
        split = wanted and is_recorded(str(args.source))  # what Recognizer.face_process will start
        recognizer = Recognizer(
            model_path,
            args.device,
            args.max_faces,
            fps=args.fps,
            input_kind=args.input_kind,
            spotter=spotter,
            classifier_threads=1 if split else None,
        )
    classifier = recognizer.classifier
    info = classifier.info
    provider = classifier.provider.replace("ExecutionProvider", "")
    default = "" if args.model is not None else " (default model)"
    log.info(
        "model %s%s: %s, %s input, %d px, trained on %s; running on %s",
        recognizer.model_path,
        default,
        "/".join(info.classes),
        info.input_kind,
        info.input_size,
        info.trained_on(),
        provider,
    )
    # the pipeline too (the landmark model takes half a second to load) is ready before a live source opens;
    # a recorded one may have its face stage in a second process (which loads the landmark model instead)
    face_process = recognizer.face_process(args.source, stall_s=args.stall_timeout) if split else None
    ready_pipeline = recognizer.pipeline(tracker=face_process)
    stop = StopSignals()  # SIGTERM and SIGHUP end the run as Ctrl-C does: between two frames, outputs closed
    with stop:
        try:
            with flags_for_options(option_flags):
                source = recognizer.open(args.source, stall_s=args.stall_timeout)
        except BaseException:
            ready_pipeline.close()
            raise
        outputs = Outputs()
        pipeline = None
        stats = None
        try:
            if not source.fps_given:
                log.info("no --fps given for the image folder: assuming %g frames per second", source.fps)
            mode = "live (frames may be dropped)" if source.live else "recorded (every frame)"
            if face_process is not None:
                mode += ", face stage in a second process"
            log.info("source %s: %s, %g fps", source.description, mode, source.fps)

            if args.events is not None:
                outputs.events = EventWriter(args.events)
            if args.csv is not None:
                outputs.csv = FrameCsvWriter(args.csv, landmarks=args.csv_landmarks)
            if args.output is not None:
                outputs.video = VideoWriter(args.output, source.fps)

            display = not args.no_display
            if display and not _display_available():
                log.info("no display found: running without a window (as with --no-display)")
                display = False
            pipeline = ready_pipeline
            renderer = Renderer(RenderOptions(landmarks=args.landmarks))
            recorder = ReportRecorder() if report_path is not None else None
            stats = _loop(args, recognizer, source, pipeline, renderer, outputs, display, recorder, stop)
            if recorder is not None:
                _write_report(report_path, args, source, pipeline, recorder, provider)
        finally:
            ready_pipeline.close()  # the pipeline (and its face process) whether or not the run started
            outputs.close()
            source.close()
            if not args.no_display:
                _close_windows()
    if stats is not None and stats.interrupted:  # said once everything is on disk
        why = f"stopped by {stats.stopped_by}" if stats.stopped_by else "interrupted"
        log.info("%s: outputs flushed and closed, everything spotted so far is kept", why)
    return 0


def _close_windows() -> None:
    try:
        import cv2

        cv2.destroyAllWindows()
    except Exception:  # no GUI support compiled in: nothing to close
        pass


def _report_path(args) -> Path | None:
    from realtime.core.errors import UserInputError

    if args.report is None:
        return None
    if args.report is not True:
        return Path(args.report)
    if args.events is None:
        raise UserInputError("--report without a file name goes beside --events: give --events or --report FILE.html")
    return args.events.with_suffix(".report.html" if args.events.suffix == ".html" else ".html")


def _write_report(path, args, source, pipeline, recorder, provider) -> None:
    from realtime.cli.report_html import report_from_stream, video_link, write_report

    video = video_link(args.output, path)  # the annotated video plays in the page when a browser can play it
    write_report(path, [report_from_stream(args.source, source, pipeline, recorder, provider, video)])
    log.info("report written to %s", path)


def _loop(args, recognizer, source, pipeline, renderer, outputs, display, recorder=None, stop=None):
    import cv2

    def show(annotated) -> bool:
        cv2.imshow(WINDOW, annotated)
        key = cv2.waitKey(1) & 0xFF
        return not (key in (ord("q"), 27) or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1)

    def on_event(event) -> None:
        if not args.quiet:
            log.info(
                "face %d: %s (%.0f%%) apex frame %d at %.1f ms, %d-%d",
                event.face,
                event.label or "micro-expression",
                100 * event.confidence,
                event.apex_frame,
                event.apex_ms,
                event.onset_frame,
                event.offset_frame,
            )

    stats = recognizer.run(
        source,
        pipeline,
        outputs,
        renderer=renderer,
        show=show if display else None,
        on_event=on_event,
        recorder=recorder,
        stop=stop,
    )
    first_frame_s = None if stats.first_frame_at is None else stats.first_frame_at - STARTED
    _summary(args, source, pipeline, stats.times, stats.elapsed_s, first_frame_s)
    return stats


def _summary(args, source, pipeline, times, elapsed, first_frame_s) -> None:
    frames = times.frames
    fps = frames / elapsed if elapsed > 0 and frames else 0.0
    stages = times.mean()
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(pipeline.rejected.items())) or "none"
    per_stage = ", ".join(f"{name} {ms:.2f}" for name, ms in stages.items())
    if source.ended_because:
        log.info("the source ended early: %s (everything spotted so far is kept)", source.ended_because)
    print(
        f"frames {frames}, faces {len(pipeline.face_ids)}, events {pipeline.events} (rejected: {rejected}), "
        f"{fps:.1f} fps, ms per frame: {per_stage}; dropped {source.dropped}, corrupt {source.corrupt}",
        flush=True,
    )
    if args.benchmark:
        peak_mb = peak_rss_mb()
        latency = pipeline.latencies_ms
        worst = f"{max(latency):.1f}" if latency else "n/a"
        total_ms = sum(stages.values())
        print(
            f"benchmark: {fps:.1f} fps overall ({1000.0 / total_ms if total_ms else 0:.0f} fps of stage time), "
            f"start-up to first frame {first_frame_s or 0:.2f} s, peak RSS {peak_mb:.0f} MB, "
            f"event latency after the offset frame {worst} ms max over {len(latency)} events, "
            f"face detections {pipeline.tracker.detections}, torch loaded: {'torch' in sys.modules}",
            flush=True,
        )


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's /proc VmHWM belongs to the running program; getrusage's
    maxrss survives exec, so under a large parent (a benchmark that imported torch) it would report the
    parent's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)  # notices: one line each, on stderr (stdout has the summary)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    log.propagate = False
    return run_reporting_errors(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
