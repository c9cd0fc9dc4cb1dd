"""``python -m training synth casme2|ckplus|samm|videos --out DIR``: write a generated data set in a published
layout, or spotting videos with ground truth (:mod:`training.synth.videos`).

:func:`configure_parser` adds the arguments to the subcommand's parser and :func:`main` runs it; bad input
(a photo that does not exist or shows no face, a bad ``--size``, a non-empty output) raises
:class:`realtime.core.errors.UserInputError`, which ``python -m training`` prints on one line with exit code 2.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from realtime.core.errors import UserInputError
from training.synth.faces import parse_frame_size
from training.synth.layouts import WRITERS, SynthManifest
from training.synth.photos import HELD_OUT_PHOTOS, PHOTO_NAMES
from training.synth.realistic import (
    NUISANCES,
    SOMETIMES,
    RealisticSettings,
    parse_any_frame_size,
    parse_nuisances,
    photo_files,
    resolve_photos,
    write_realistic_videos,
)
from training.synth.videos import FORMATS, VideoIndex, write_videos

DESCRIPTION = """\
Generate a small micro-expression data set from real face photos, written in the exact published layout
of CASME II, CK+ or SAMM (folders, frame names, coding sheet or Emotion files, and, unless --no-quirks, the
real releases' quirks). Each clip shows an emotion's facial action units (CASME II coding criteria)
rising from the onset to the apex and falling to the offset; subjects are made from the photos by
mirroring, placement, tone and a mild identity morph. Point the dataset readers (python -m training
summary ... --root DIR) at the result; DIR/synth_manifest.json lists every clip, its true apex, what a
reader must repair or skip, and the per-class counts it must find. The same arguments always write the
same bytes.

amplitude: 1 is a realistic micro-expression (landmarks move 1-8 % of the inter-ocular distance at the
apex); use 3-5 for clearly separable classes. CK+ sequences are posed macro expressions, about 3 times
larger again.

videos: long clips for spotting (--clips, --fps, --seconds, --format): a still start, then micro-expressions
among distractors (blinks, a macro expression, slow head drift and roll, a lighting drift, sensor noise), with
DIR/clipNN.json beside each clip (per event: kind micro|macro|blink, label, AUs, onset/apex/offset as 0-based
frames and ms) and DIR/videos.json listing them.

videos --set realistic: a person in front of a webcam instead of a still face: the face's own small
movements, head sway, talking, quick turns and nods in depth (yaw/pitch up to 15 degrees, with parallax),
smiles/laughs/frowns, blinks, light flicker, auto-exposure and white-balance steps, motion blur, sensor
noise, H.264 at webcam bitrates (needs the ffmpeg program), and in some clips a low-resolution camera, a small
face (40-80 px), a hand over the mouth or the face leaving the frame. Micro-expressions come mostly while the
face is otherwise still, some during other motion (flagged "during" in the truth). Each nuisance can be
switched (--nuisances, --without); DIR/clipNN.json records each one's time spans and the true head pose of
every frame, DIR/clipNN_landmarks.npz the true landmarks. Faces: --photos (default: tuning, i.e. every
photo but the benchmark's held-out astronaut and einstein; --micro 0 makes nuisance-only clips)."""

EPILOG = """\
examples:
  python -m training synth casme2 --out demo/casme2
  python -m training synth casme2 --out demo/casme2-small --size 320x240 --subjects 4 --seed 7
  python -m training synth casme2 --out demo/cropped --cropped
  python -m training synth ckplus --out demo/ckplus --faces me.jpg friend.png
  python -m training synth samm --out demo/samm --size 2040x1088 --no-quirks
  python -m training synth videos --out demo/videos --clips 3 --seconds 3 --size 320x240
  python -m training synth videos --out demo/videos200 --fps 200 --faces me.jpg --format frames
  python -m training synth videos --set realistic --out demo/webcam --clips 5 --seconds 12
  python -m training synth videos --set realistic --out demo/talk --nuisances talking,head_turns,compression
  python -m training synth videos --set realistic --out demo/quiet --micro 0 --photos lenna,takeo
  python -m training summary casme2 --root demo/casme2
"""

DEFAULT_SIZES = {"casme2": "640x480", "ckplus": "640x490", "samm": "640x480", "videos": "640x480"}
DEFAULT_SUBJECTS = {"casme2": 4, "ckplus": 4, "samm": 3}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``synth`` arguments to ``parser`` (and its description and examples)."""
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "layout", choices=(*WRITERS, "videos"), help="the data set layout to write, or videos for spotting"
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="output folder (created if needed; must not already hold this layout)",
    )
    parser.add_argument(
        "--faces",
        type=Path,
        nargs="+",
        metavar="IMG",
        help="face photos to make subjects from (default: the Grace Hopper and astronaut photos that "
        "matplotlib and scikit-image ship)",
    )
    parser.add_argument(
        "--photos",
        nargs="+",
        metavar="NAME",
        help="face photos by name instead of --faces (space- or comma-separated): any of "
        f"{', '.join(PHOTO_NAMES)}, or a group: all (seven identities after `make venv`), held-out "
        f"({' and '.join(HELD_OUT_PHOTOS)}), training or tuning (all but the held-out ones; what the default "
        "weights and the spotter learn from) (default: videos --set realistic: tuning; otherwise the Grace Hopper "
        "and astronaut photos)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default: %(default)s)")
    parser.add_argument("--subjects", type=int, metavar="N", help="number of subjects (default: 4; SAMM: 3)")
    parser.add_argument(
        "--per-class",
        type=int,
        metavar="N",
        default=None,
        help="clips (CK+: sequences) per class and subject (default: CASME II 2, CK+ 1, SAMM 1)",
    )
    parser.add_argument(
        "--frames", type=int, metavar="N", help="frames per clip (default: 9; CK+: 6 per neutral-to-peak sequence)"
    )
    parser.add_argument(
        "--amplitude",
        type=float,
        metavar="X",
        default=1.0,
        help="movement scale; 1 = realistic micro-expression (default: %(default)s)",
    )
    parser.add_argument(
        "--size", metavar="WxH", help="frame size WIDTHxHEIGHT (default: 640x480; CK+ 640x490; real SAMM is 2040x1088)"
    )
    parser.add_argument(
        "--no-quirks",
        dest="quirks",
        action="store_false",
        help="CASME II, SAMM: a clean coding sheet (no '/' or -1 apex, no stray spaces, no missing frames or folders)",
    )
    parser.add_argument("--cropped", action="store_true", help="CASME II only: write the Cropped release's layout")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace this layout's folders and sheet if an earlier synth run wrote them into --out",
    )
    group = parser.add_argument_group("videos")
    group.add_argument("--clips", type=int, metavar="N", help="number of clips (default: 3)")
    group.add_argument("--fps", type=float, metavar="F", help="frame rate (default: 30; CASME II is 200)")
    group.add_argument(
        "--seconds",
        type=float,
        metavar="S",
        help="clip length; events that do not fit are left out "
        "(default: as long as 3 micro-expressions and the distractors need, about 6-10 s)",
    )
    group.add_argument("--micro", type=int, metavar="N", help="micro-expressions per clip (default: 3)")
    group.add_argument(
        "--no-distractors",
        dest="distractors",
        action="store_false",
        help="micro-expressions only: no blinks, macro expression, head drift or lighting drift",
    )
    group.add_argument(
        "--noise", type=float, metavar="SIGMA", help="lab set: sensor noise in grey levels (default: 1-2.5)"
    )
    group.add_argument(
        "--set",
        dest="video_set",
        choices=("lab", "realistic"),
        help="lab: a still face as in CASME II (default); realistic: a webcam user who talks, moves and is compressed",
    )
    group.add_argument(
        "--nuisances",
        metavar="LIST",
        help="realistic: the nuisances to use, comma-separated, or all (default) or none: "
        + ", ".join(NUISANCES)
        + "; given explicitly, each appears in every clip",
    )
    group.add_argument("--without", metavar="LIST", help="realistic: nuisances to leave out, comma-separated")
    group.add_argument(
        "--format",
        dest="video_format",
        choices=FORMATS,
        help="mp4 (mp4v; MJPG .avi where OpenCV cannot write .mp4), avi (MJPG) or frames (img1.jpg ...) (default: mp4)",
    )


def main(args: argparse.Namespace) -> int:
    """Write the data set the arguments describe and print a one-line summary; returns the exit code."""
    layout = args.layout
    if layout == "videos" and args.video_set == "realistic":
        return _realistic(args, parse_any_frame_size(args.size or DEFAULT_SIZES[layout]))
    size = parse_frame_size(args.size or DEFAULT_SIZES[layout])
    if layout == "videos":
        return _videos(args, size)
    if args.photos:
        if args.faces:
            raise UserInputError("give face photos either as files (--faces) or by name (--photos), not both")
        args.faces = photo_files(resolve_photos(args.photos))
    _refuse(
        args,
        ("clips", "fps", "seconds", "micro", "noise", "video_format", "video_set", "nuisances", "without"),
        "applies to videos only",
    )
    if not args.distractors:
        raise UserInputError("--no-distractors applies to videos only")
    if args.cropped and layout != "casme2":
        raise UserInputError("--cropped applies to casme2 only")
    options: dict[str, object] = {
        "seed": args.seed,
        "n_subjects": args.subjects if args.subjects is not None else DEFAULT_SUBJECTS[layout],
        "frame_size": size,
        "amplitude": args.amplitude,
        "photos": args.faces,
        "overwrite": args.force,
    }
    if layout == "ckplus":
        if args.per_class is not None:
            options["sequences_per_class"] = args.per_class
        if args.frames is not None:
            options["frames_per_sequence"] = args.frames
    else:
        options["quirks"] = args.quirks
        if args.per_class is not None:
            options["samples_per_class"] = args.per_class
        if args.frames is not None:
            options["frames_per_clip"] = args.frames
        if layout == "casme2":
            options["cropped"] = args.cropped
    started = time.perf_counter()
    manifest = WRITERS[layout](args.out, **options)
    print(summary_line(manifest, time.perf_counter() - started))
    return 0


def _refuse(args: argparse.Namespace, names: tuple[str, ...], reason: str) -> None:
    """A ``UserInputError`` (``--option`` + ``reason``) for the first of ``names`` that was given."""
    for name in names:
        if getattr(args, name, None) is not None:
            option = "--format" if name == "video_format" else f"--{name.replace('_', '-')}"
            raise UserInputError(f"{option} {reason}")


def _videos(args: argparse.Namespace, size: tuple[int, int]) -> int:
    """The ``videos`` mode: write the clips and print a one-line summary."""
    _refuse(args, ("subjects", "per_class", "frames"), "does not apply to videos (use --clips, --fps, --seconds)")
    if args.cropped:
        raise UserInputError("--cropped applies to casme2 only")
    if not args.quirks:
        raise UserInputError("--no-quirks applies to the data set layouts only")
    if args.faces and args.photos:
        raise UserInputError("give face photos either as files (--faces) or by name (--photos), not both")
    _refuse(args, ("nuisances", "without"), "applies to --set realistic only")
    if args.micro == 0:
        raise UserInputError("--micro 0 (nuisance-only clips) applies to --set realistic only")
    photos = photo_files(resolve_photos(args.photos)) if args.photos else args.faces
    started = time.perf_counter()
    index = write_videos(
        args.out,
        seed=args.seed,
        n_clips=3 if args.clips is None else args.clips,
        fps=30.0 if args.fps is None else args.fps,
        frame_size=size,
        seconds=args.seconds,
        micro=3 if args.micro is None else args.micro,
        amplitude=args.amplitude,
        distractors=args.distractors,
        noise_sigma=args.noise,
        photos=photos,
        fmt=args.video_format or "mp4",
        overwrite=args.force,
    )
    print(videos_line(index, time.perf_counter() - started))
    return 0


def _realistic(args: argparse.Namespace, size: tuple[int, int]) -> int:
    """``videos --set realistic``: write the clips and print a one-line summary."""
    _refuse(args, ("subjects", "per_class", "frames"), "does not apply to videos (use --clips, --fps, --seconds)")
    if args.faces and args.photos:
        raise UserInputError("give face photos either as files (--faces) or by name (--photos), not both")
    if args.cropped or not args.quirks:
        raise UserInputError("--cropped and --no-quirks apply to the data set layouts only")
    _refuse(args, ("noise",), "applies to the lab set only (the realistic set draws its own)")
    if not args.distractors:
        raise UserInputError("--no-distractors applies to the lab set; use --without or --nuisances none")
    if args.video_format == "avi":
        raise UserInputError("the realistic set is written as mp4 (H.264) or frames, not avi")
    nuisances = parse_nuisances(args.nuisances) if args.nuisances is not None else frozenset(NUISANCES)
    nuisances -= parse_nuisances(args.without) if args.without else frozenset()
    settings = RealisticSettings(
        fps=30.0 if args.fps is None else args.fps,
        frame_size=size,
        seconds=args.seconds,
        micro=3 if args.micro is None else args.micro,
        amplitude=args.amplitude,
        nuisances=nuisances,
        sometimes=frozenset(SOMETIMES) if args.nuisances is None else frozenset(),
    )
    photos = list(args.faces) if args.faces else photo_files(resolve_photos(args.photos or "tuning"))
    started = time.perf_counter()
    index = write_realistic_videos(
        args.out,
        photos=photos,
        settings=settings,
        seed=args.seed,
        n_clips=3 if args.clips is None else args.clips,
        fmt=args.video_format or "mp4",
        overwrite=args.force,
    )
    print(videos_line(index, time.perf_counter() - started))
    return 0


def videos_line(index: VideoIndex, seconds: float) -> str:
    """``wrote videos: 3 clips (270 frames, 320x240 at 30 fps, mp4v .mp4; events: 3 micro, 2 blink) to DIR in
    1.5 s; index: DIR/videos.json`` (and the fallback note, if any)."""
    counts: dict[str, int] = {}
    for clip in index.clips:
        for kind, count in clip["counts"].items():
            counts[kind] = counts.get(kind, 0) + count
    width, height = index.settings["size"]
    frames = sum(c["frame_count"] for c in index.clips)
    kind = "jpg frames" if index.container == "frames" else f"{index.fourcc} .{index.container}"
    if index.settings.get("set") == "realistic":
        kind = f"realistic, {kind}"
    events = ", ".join(f"{counts[k]} {k}" for k in sorted(counts))
    note = f" ({index.note})" if index.note else ""
    return (
        f"wrote videos: {len(index.clips)} clips ({frames} frames, {width}x{height} at {index.settings['fps']:g} "
        f"fps, {kind}; events: {events}) to {index.out} in {seconds:.1f} s; index: {index.path}{note}"
    )


def summary_line(manifest: SynthManifest, seconds: float) -> str:
    """``wrote casme2: 45 clips (402 frames, 4 subjects, 320x240) to DIR in 1.4 s; 2 to repair, 1 to skip``."""
    samples = manifest.samples
    n_frames = sum(len(s.frames) for s in samples)
    subjects = len({s.subject for s in samples})
    width, height = manifest.settings["frame_size"]  # type: ignore[misc]
    unit = "sequences" if manifest.dataset == "ckplus" else "clips"
    written = sum(1 for s in samples if s.frames)
    notes = []
    for kind, text in (("repaired", "to repair"), ("skipped", "to skip"), ("unlabelled", "unlabelled")):
        count = sum(1 for s in samples if s.expected == kind)
        if count:
            notes.append(f"{count} {text}")
    tail = f"; {', '.join(notes)}" if notes else ""
    return (
        f"wrote {manifest.dataset}: {written} {unit} ({n_frames} frames, {subjects} subjects, {width}x{height}) "
        f"to {manifest.out} in {seconds:.1f} s{tail}; manifest: {manifest.path}"
    )
