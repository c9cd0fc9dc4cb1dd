"""Training the learned spotter's decision (``python -m training spotter``).

1. Clips: realistic clips (talking, head turns, expressions, blinks, a compressing camera …; see
   :mod:`training.synth.realistic`), nuisance-only realistic clips and lab clips (a still face), all made from
   the *training* photos only (:data:`training.synth.realistic.TUNING_PHOTOS`): the benchmark's held-out faces
   never reach the spotter's training or its threshold.
2. Features: each clip goes the way ``stream.py`` reads a file (realistic clips are written as H.264 and read
   back), through the face stage and :class:`realtime.stages.spotter.learned.LearnedFaceSpotter` without a
   model, which yields the features of every candidate apex: the streaming code itself makes the training data.
3. Labels: a candidate near the apex of a micro-expression (within a quarter of its duration) is ``micro``, one
   near a blink's apex ``blink``; the rest of a micro-expression is left out (neither side); everything
   else — talking, turns, ordinary expressions, the face's own motion — is ``rest``.
4. The decision threshold is chosen by leave-one-photo-out over the training photos: a model trained without
   one photo scores that photo's clips, events are made from the probabilities as the streaming spotter makes
   them, and the threshold with the best F1 (MEGC rule, IoU ≥ 0.5) whose false alarms on the nuisance-only clips
   stay under ``max_false_per_minute`` wins. The model written is then trained on every training photo.

The result is a :class:`realtime.stages.spotter.model.SpotModel` (``weights/spotter.npz``) whose ``facts`` hold the
leave-one-photo-out table, the clip counts and the settings, so the figures travel with the weights.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from realtime.core.errors import UserInputError
from realtime.core.files import atomic_open
from realtime.stages.spotter import SpotterOptions
from realtime.stages.spotter.learned import FEATURE_NAMES, LAG_MS, Candidate, LearnedFaceSpotter, RunDecision
from realtime.stages.spotter.model import CLASSES, SpotModel
from training.metrics import apex_hits, megc_match, spotting_f1, spotting_f1_interval

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
APEX_SHARE = 0.25  # a candidate within this share of the event's duration of the apex is labelled with its kind


@dataclass(frozen=True)
class SpotTrainingSettings:
    """What ``python -m training spotter`` makes and how it trains: clip counts per set (realistic with
    micro-expressions, nuisance-only, lab), their length, the seed, the MLP's hidden sizes, how many MLPs are
    averaged (``members``, each from its own seed), epochs, learning rate and weight decay, and the
    false-alarm budget the threshold must keep (a minute, on realistic and on nuisance-only clips).
    ``threshold``: the model's threshold, set instead of chosen by that rule on these clips (None, the default:
    chosen); for one chosen elsewhere, such as on the development set of ``benchmarks/spotting_replay_bench.py``.
    ``lab_fps``: the frame rates of the lab clips, ``lab_clips`` at each (the spotter's scales are in
    milliseconds, but at 60 fps it sees a candidate every 17 ms and twice the frames per scale, which a model
    that saw 30 fps only has never met)."""

    realistic_clips: int = 100
    quiet_clips: int = 20
    lab_clips: int = 20
    lab_fps: tuple[float, ...] = (30.0,)
    seconds: float = 12.0
    seed: int = 0
    hidden: tuple[int, ...] = (64, 32)
    members: int = 5
    epochs: int = 40
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    max_false_per_minute: float = 1.0
    threshold: float | None = None

    def __post_init__(self) -> None:
        for name in ("realistic_clips", "quiet_clips", "lab_clips"):
            value = getattr(self, name)
            if int(value) != value or not 0 <= value <= 2000:
                raise UserInputError(f"{name.replace('_', ' ')} must be a whole number from 0 to 2000, got {value}")
        if not self.lab_fps or any(not (math.isfinite(fps) and 25.0 <= fps <= 240.0) for fps in self.lab_fps):
            raise UserInputError(f"lab fps must be one or more frame rates from 25 to 240, got {self.lab_fps}")
        if self.realistic_clips + self.lab_clips < 2:
            raise UserInputError("the spotter needs at least 2 clips with micro-expressions to learn from")
        if not (math.isfinite(self.seconds) and 2.0 <= self.seconds <= 120.0):
            raise UserInputError(f"seconds must lie in [2, 120], got {self.seconds}")
        if self.epochs < 1:
            raise UserInputError(f"epochs must be at least 1, got {self.epochs}")
        if not 1 <= self.members <= 50:
            raise UserInputError(f"members must be 1-50, got {self.members}")
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise UserInputError(f"threshold must lie strictly between 0 and 1, got {self.threshold}")


@dataclass(frozen=True)
class ClipFeatures:
    """One clip's candidates: features (N, F), labels (N,: 0 rest, 1 micro, 2 blink, -1 left out), candidate
    frame indices, half-widths (ms) and the next frame's strongest movement as far as seen
    (:attr:`realtime.stages.spotter.learned.Candidate.next_strength`), with the clip's truth, photo, set and
    frame rate."""

    name: str
    clip_set: str
    photo: str
    fps: float
    n_frames: int
    features: np.ndarray
    labels: np.ndarray
    frames: np.ndarray
    halfwidth_ms: np.ndarray
    truth: dict
    next_strength: np.ndarray


def label_candidates(frames: np.ndarray, truth: dict) -> np.ndarray:
    """Labels of candidate frames from a clip's ground truth (see the module's docstring)."""
    labels = np.zeros(len(frames), np.int8)
    for event in truth["events"]:
        kind = event["kind"]
        if kind not in ("micro", "blink"):
            continue
        onset, apex, offset = event["onset_frame"], event["apex_frame"], event["offset_frame"]
        half = max(1, round(APEX_SHARE * (offset - onset)))
        if kind == "micro":
            labels[(frames >= onset) & (frames <= offset) & (labels == 0)] = -1
        labels[np.abs(frames - apex) <= half] = CLASSES.index(kind)
    return labels


def _frames_of(path: Path) -> Iterator:
    from realtime.stages.capture import open_source

    with open_source(str(path)) as source:
        yield from source


@dataclass(frozen=True)
class FaceMotion:
    """One face's cell motion through a clip as the learned spotter measured it: frame indices, times (ms) and
    each frame's (cells × 2) displacements in crop pixels (median removed), with the cells of each face part and
    of each spotter region. That is all the spotter's features and decision read, so a change to them can be
    judged by replaying this (:func:`replay_clip`, seconds) instead of rendering and reading the clip again."""

    face_id: int
    frames: np.ndarray
    times_ms: np.ndarray
    motion: np.ndarray
    part_cells: tuple[np.ndarray, ...]
    region_cells: tuple[np.ndarray, ...]


class RecordingSpotter(LearnedFaceSpotter):
    """The learned spotter, keeping every frame's cell motion it hands to its features."""

    def __init__(self, face_id: int, options: SpotterOptions | None = None) -> None:
        super().__init__(face_id, options)
        self._recorded: list[tuple[int, float, np.ndarray]] = []

    def candidate_from_motion(self, frame_index: int, t_ms: float, motion: np.ndarray) -> Candidate | None:
        self._recorded.append((frame_index, t_ms, motion.copy()))
        return super().candidate_from_motion(frame_index, t_ms, motion)

    def recording(self) -> FaceMotion:
        rows = self._recorded
        return FaceMotion(
            self.face_id,
            np.array([r[0] for r in rows], int),
            np.array([r[1] for r in rows], float),
            np.stack([r[2] for r in rows]) if rows else np.zeros((0, 0, 2)),
            tuple(self._part_cells),
            tuple(self._region_cells),
        )


def clip_features(
    name: str, clip_set: str, photo: str, fps: float, n_frames: int, truth: dict, candidates: Sequence[Candidate]
) -> ClipFeatures:
    """A clip's candidates (their features, frame indices and half-widths), labelled from its truth."""
    frame_indices = np.asarray([c.frame_index for c in candidates], int)
    return ClipFeatures(
        name,
        clip_set,
        photo,
        fps,
        n_frames,
        np.asarray([c.features for c in candidates], np.float32).reshape(-1, len(FEATURE_NAMES)),
        label_candidates(frame_indices, truth),
        frame_indices,
        np.asarray([c.halfwidth_ms for c in candidates], np.float32),
        truth,
        np.asarray([c.next_strength for c in candidates], np.float32),
    )


def run_clip(
    job: tuple[str, object], spotter_class: type[LearnedFaceSpotter], lossless: bool = False
) -> tuple[ClipFeatures, list]:
    """Render one clip, read it as the stream does, and run ``spotter_class`` on its first face: the candidates
    and the spotters (one a face id). A realistic clip is written to a file and read back (H.264, or Motion JPEG
    when compression is left out: lossy too); ``lossless`` hands a clip without compression its rendered frames
    directly, so that a bench can ask what the codec itself costs."""
    from realtime.stages.capture import Frame
    from realtime.stages.faces import FaceTracker
    from training.synth.realistic import RealisticClipSpec, RealisticRenderer, write_realistic_clip
    from training.synth.videos import VideoRenderer

    clip_set, spec = job
    with tempfile.TemporaryDirectory(prefix="spot-train-") as folder:
        renderer = RealisticRenderer(spec) if isinstance(spec, RealisticClipSpec) else VideoRenderer(spec)
        if isinstance(spec, RealisticClipSpec) and not (lossless and "compression" not in spec.nuisances):
            written, _, _ = write_realistic_clip(renderer, Path(folder))
            frames = _frames_of(Path(folder) / written)
        else:  # the rendered frames themselves
            frames = (Frame(i, i * 1000.0 / spec.fps, image) for i, image in enumerate(renderer.frames()))
        truth = renderer.truth()
        tracker = FaceTracker()
        spotters: dict[int, LearnedFaceSpotter] = {}
        candidates: list[Candidate] = []
        for frame in frames:
            found = tracker.process(frame.image, frame.t_ms)
            if not found.faces:
                continue
            face = found.faces[0]
            if face.face_id not in spotters:  # one spotter a face (not a new one built on every frame)
                spotters[face.face_id] = spotter_class(face.face_id, SpotterOptions())
            spotter = spotters[face.face_id]
            spotter.update(frame.index, frame.t_ms, found.gray, face.landmarks)
            if spotter.last_candidate is not None:
                candidates.append(spotter.last_candidate)
    name, photo, fps, n_frames = f"{clip_set}/{spec.name}", spec.photo, float(spec.fps), int(spec.n_frames)
    return clip_features(name, clip_set, photo, fps, n_frames, truth, candidates), list(spotters.values())


def collect_clip(job: tuple[str, object], lossless: bool = False) -> ClipFeatures:
    """Render one clip, read it as the stream does, and collect the learned spotter's candidates."""
    return run_clip(job, LearnedFaceSpotter, lossless)[0]


def record_clip(job: tuple[str, object]) -> tuple[ClipFeatures, tuple[FaceMotion, ...]]:
    """:func:`collect_clip`, and the cell motion of every face it measured (what :func:`replay_clip` reads)."""
    clip, spotters = run_clip(job, RecordingSpotter)
    return clip, tuple(spotter.recording() for spotter in spotters)


def replay_candidates(faces: Sequence[FaceMotion]) -> list[Candidate]:
    """The candidates today's feature code (:meth:`LearnedFaceSpotter.candidate_from_motion`) makes from the
    faces' cell motion, in frame order, as the stream made them: a fresh spotter a face, told which of its
    cells belong to which face part and region."""
    spotters = []
    feed = []
    for number, face in enumerate(faces):
        spotter = LearnedFaceSpotter(face.face_id, SpotterOptions())
        spotter._part_cells, spotter._region_cells = list(face.part_cells), list(face.region_cells)
        spotters.append(spotter)
        feed += [(int(f), float(t), number, i) for i, (f, t) in enumerate(zip(face.frames, face.times_ms, strict=True))]
    out = []
    for frame_index, t_ms, number, i in sorted(feed):
        candidate = spotters[number].candidate_from_motion(frame_index, t_ms, faces[number].motion[i])
        if candidate is not None:
            out.append(candidate)
    return out


def replay_clip(clip: ClipFeatures, faces: Sequence[FaceMotion]) -> ClipFeatures:
    """The clip's candidates made again from its recorded cell motion (:func:`replay_candidates`): equal to
    :func:`collect_clip`'s as long as the features are unchanged, and a change to the features (not to the
    measurement) is judged in seconds."""
    candidates = replay_candidates(faces)
    return clip_features(clip.name, clip.clip_set, clip.photo, clip.fps, clip.n_frames, clip.truth, candidates)


def plan_training_clips(
    settings: SpotTrainingSettings, photos: Sequence[str], without: frozenset[str] = frozenset()
) -> list[tuple[str, object]]:
    """The clips to learn from, all of the given (training) photos. ``without``: nuisances left out of the
    realistic and nuisance-only clips (a development bench's question: what does each one cost?)."""
    from training.synth.faces import load_face_photos
    from training.synth.realistic import RealisticSettings, leaving_out, photo_files, plan_realistic_clips
    from training.synth.videos import VideoSettings, plan_clips

    faces = load_face_photos(photo_files(photos))
    jobs: list[tuple[str, object]] = []
    seed = settings.seed
    if settings.realistic_clips:
        realistic = leaving_out(RealisticSettings(seconds=settings.seconds), without)
        jobs += [("realistic", s) for s in plan_realistic_clips(faces, realistic, seed + 101, settings.realistic_clips)]
    if settings.quiet_clips:
        quiet = leaving_out(RealisticSettings(seconds=settings.seconds, micro=0), without)
        jobs += [("quiet", s) for s in plan_realistic_clips(faces, quiet, seed + 202, settings.quiet_clips)]
    if settings.lab_clips:
        for number, fps in enumerate(settings.lab_fps):  # the first rate's clips are those of a 30 fps-only plan
            lab = VideoSettings(fps=fps, frame_size=(640, 480))
            jobs += [("lab", s) for s in plan_clips(faces, lab, seed + 303 + 1000 * number, settings.lab_clips)]
    return jobs


def _sources(digest, packages) -> None:
    """Feed every module of ``packages`` to ``digest``."""
    for package in packages:
        for path in sorted(Path(package.__file__).parent.glob("*.py")):
            digest.update(path.read_bytes())


def _code_digest() -> str:
    """A digest of the feature names and of the code that makes the candidates (every module of the face stage,
    the spotters, the detection and alignment they call, and the generator that renders the clips): any change
    to them names new cache files, so stale rows are never reused."""
    import realtime.core as core
    import realtime.stages.faces as faces
    import realtime.stages.spotter as spotter
    import training.synth as synth

    digest = hashlib.sha1("|".join(FEATURE_NAMES).encode())
    _sources(digest, (core, faces, spotter, synth))
    return digest.hexdigest()[:8]


MEASUREMENT_METHODS = ("update", "_setup_cells", "_cell_sums", "_cell_motion")  # LearnedFaceSpotter's measuring


def measurement_digest() -> str:
    """A digest of the code that measures the cells' motion (the generator, the face stage and the alignment it
    calls, the spotters' stabilisation in ``realtime/stages/spotter/__init__.py`` and the learned spotter's
    :data:`MEASUREMENT_METHODS`), but not of the features made from the motion: a recorded motion
    (:func:`record_clip`) stays valid through a change of the features and is never reused after a change of the
    measurement."""
    import inspect

    import realtime.core as core
    import realtime.stages.faces as faces
    import realtime.stages.spotter as spotter
    import training.synth as synth

    digest = hashlib.sha1()
    _sources(digest, (core, faces, synth))
    digest.update(Path(spotter.__file__).read_bytes())
    for name in MEASUREMENT_METHODS:
        digest.update(inspect.getsource(getattr(LearnedFaceSpotter, name)).encode())
    return digest.hexdigest()[:8]


def _cache_file(cache: Path, job: tuple[str, object], seconds: float, lossless: bool = False) -> Path:
    """Where one clip's candidates are kept: named by its set, clip, photo, seed, frame rate and length, whether
    its frames were read lossless, and by a digest of the features and of the code that makes them
    (:func:`_code_digest`): a change of either, or of the plan, never reuses stale rows. (The frame rate is in the
    name since stop 35: ``--lab-fps 25 30`` gives its 25 fps clips the names and seeds of a 30 fps-only plan's.)"""
    clip_set, spec = job
    digest = _code_digest()
    photo = Path(spec.photo).stem
    read = "-lossless" if lossless else ""
    return cache / f"{clip_set}-{spec.name}-{photo}-s{spec.seed}-{spec.fps:g}fps-{seconds:g}s{read}-{digest}.npz"


def _clip_arrays(clip: ClipFeatures) -> dict[str, np.ndarray]:
    return {
        "name": np.array(clip.name),
        "clip_set": np.array(clip.clip_set),
        "photo": np.array(clip.photo),
        "fps": np.float64(clip.fps),
        "n_frames": np.int64(clip.n_frames),
        "features": clip.features,
        "labels": clip.labels,
        "frames": clip.frames,
        "halfwidth_ms": clip.halfwidth_ms,
        "truth": np.array(json.dumps(clip.truth)),
        "next_strength": clip.next_strength,
    }


def _clip_from_arrays(data) -> ClipFeatures:
    return ClipFeatures(
        str(data["name"]),
        str(data["clip_set"]),
        str(data["photo"]),
        float(data["fps"]),
        int(data["n_frames"]),
        data["features"],
        data["labels"],
        data["frames"],
        data["halfwidth_ms"],
        json.loads(str(data["truth"])),
        # recordings made before stop 33 lack it: unknown, so the decision waits for the next candidate there
        data["next_strength"] if "next_strength" in data else np.full(len(data["frames"]), np.inf, np.float32),
    )


def save_clip_features(clip: ClipFeatures, path: Path) -> None:
    """One clip's candidates as ``.npz`` (arrays, and the truth as JSON), written atomically."""
    with atomic_open(path, "wb", encoding=None) as handle:
        np.savez(handle, **_clip_arrays(clip))


def load_clip_features(path: Path) -> ClipFeatures:
    """A clip written by :func:`save_clip_features`."""
    with np.load(path, allow_pickle=False) as data:
        return _clip_from_arrays(data)


def save_recording(clip: ClipFeatures, faces: Sequence[FaceMotion], path: Path) -> None:
    """A clip's candidates and its faces' recorded cell motion (:func:`record_clip`) as one ``.npz``."""
    arrays: dict[str, np.ndarray] = {}
    for number, face in enumerate(faces):
        key = f"face{number}_"
        arrays[key + "id"] = np.int64(face.face_id)
        arrays[key + "frames"], arrays[key + "times_ms"], arrays[key + "motion"] = (
            face.frames,
            face.times_ms,
            face.motion,
        )
        for name, groups in (("parts", face.part_cells), ("regions", face.region_cells)):
            arrays[key + name] = np.concatenate([np.asarray(g, int) for g in groups]) if groups else np.zeros(0, int)
            arrays[key + name + "_sizes"] = np.array([len(g) for g in groups], int)
    with atomic_open(path, "wb", encoding=None) as handle:
        np.savez(handle, faces=np.int64(len(faces)), **arrays, **_clip_arrays(clip))


def load_recording(path: Path) -> tuple[ClipFeatures, tuple[FaceMotion, ...]]:
    """A clip written by :func:`save_recording`."""
    with np.load(path, allow_pickle=False) as data:
        faces = []
        for number in range(int(data["faces"])):
            key = f"face{number}_"
            cells = []
            for name in ("parts", "regions"):
                bounds = np.cumsum(data[key + name + "_sizes"])[:-1]
                cells.append(tuple(np.split(data[key + name], bounds)))
            faces.append(
                FaceMotion(
                    int(data[key + "id"]), data[key + "frames"], data[key + "times_ms"], data[key + "motion"], *cells
                )
            )
        return _clip_from_arrays(data), tuple(faces)


def collect(
    jobs: list[tuple[str, object]],
    workers: int = 1,
    progress: bool = True,
    cache: Path | None = None,
    seconds: float = 0.0,
    lossless: bool = False,
) -> list[ClipFeatures]:
    """Every clip's candidates, ``workers`` clips at a time (one process each). With ``cache`` (a folder),
    clips collected before are read back instead of made again (collecting is the slow part of training).
    ``lossless``: see :func:`run_clip`."""
    from tqdm import tqdm

    out: dict[int, ClipFeatures] = {}
    todo = []
    for number, job in enumerate(jobs):
        path = _cache_file(cache, job, seconds, lossless) if cache is not None else None
        if path is not None and path.is_file():
            out[number] = load_clip_features(path)
        else:
            todo.append((number, job, path))
    bar = tqdm(total=len(todo), desc="clips", unit="clip", disable=not progress or not todo)

    def keep(number: int, path: Path | None, result: ClipFeatures) -> None:
        out[number] = result
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_clip_features(result, path)
        bar.update()

    if workers <= 1:
        for number, job, path in todo:
            keep(number, path, collect_clip(job, lossless))
    else:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = pool.map(partial(collect_clip, lossless=lossless), [j for _, j, _ in todo])
            for (number, _, path), result in zip(todo, results, strict=True):
                keep(number, path, result)
    bar.close()
    return [out[number] for number in range(len(jobs))]


# --- the model ----------------------------------------------------------------------------------------------------


def train_model(features: np.ndarray, labels: np.ndarray, settings: SpotTrainingSettings) -> SpotModel:
    """``settings.members`` MLPs (ReLU, softmax over :data:`CLASSES`), each fitted with Adam on the labelled
    candidates from its own seed; the model averages their probabilities."""
    import torch

    keep = labels >= 0
    x = np.asarray(features[keep], np.float32)
    y = np.asarray(labels[keep], np.int64)
    if len(np.unique(y)) < 2 or (y == 1).sum() == 0:
        raise UserInputError("the clips gave no micro-expression candidates to learn from; make more clips")
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-4
    inputs = torch.from_numpy((x - mean) / scale)
    targets = torch.from_numpy(y)
    members = []
    for member in range(settings.members):
        seed = settings.seed + 1000 * member
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        sizes = (x.shape[1], *settings.hidden, len(CLASSES))
        layers: list[torch.nn.Module] = []
        for number, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(torch.nn.Linear(a, b))
            if number < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        net = torch.nn.Sequential(*layers)
        optimiser = torch.optim.Adam(net.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
        for _ in range(settings.epochs):
            order = torch.randperm(len(inputs), generator=generator)
            for start in range(0, len(order), 256):
                batch = order[start : start + 256]
                loss = torch.nn.functional.cross_entropy(net(inputs[batch]), targets[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        linear = [m for m in net if isinstance(m, torch.nn.Linear)]
        members.append(tuple((m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linear))
    return SpotModel(
        feature_names=FEATURE_NAMES,
        mean=mean.astype(np.float32),
        scale=scale.astype(np.float32),
        members=tuple(members),
    )


EMPTY = (np.zeros((0, 2), np.float32), np.zeros(0, np.float32))  # a replayed candidate's cells: not collected


def events_from_probabilities(
    clip: ClipFeatures, probabilities: np.ndarray, threshold: float, options: SpotterOptions | None = None
) -> list[tuple]:
    """(onset, apex, offset, kind, decided) frames from a clip's candidate probabilities, decided by the streaming
    spotter's own :class:`realtime.stages.spotter.learned.RunDecision` (a run at or above the threshold is one
    event, its apex the most probable candidate (among sure ones, the strongest movement), its interval the
    apex ± the half-width of its best scale; a micro-expression whose face does not come back is kind
    ``macro``); a run still open at the clip's end is closed there. ``decided`` is the frame the stream would
    report it on: the deciding candidate's frame plus the candidate's lag (:data:`LAG_MS`, rounded up to whole
    frames as the stream takes the newest frame at least that old: 3 frames at 25 and 30 fps)."""
    frame_ms = 1000.0 / clip.fps
    lag_frames = math.ceil(LAG_MS / frame_ms - 1e-6)
    decision = RunDecision(threshold, options or SpotterOptions())
    decided = []
    for i in range(len(probabilities)):
        frame = int(clip.frames[i])
        p_micro, p_blink = float(probabilities[i, 1]), float(probabilities[i, 2])
        halfwidth_ms, next_strength = float(clip.halfwidth_ms[i]), float(clip.next_strength[i])
        candidate = Candidate(
            frame, frame * frame_ms, clip.features[i], p_micro, p_blink, halfwidth_ms, *EMPTY, next_strength
        )
        decided.append((decision.update(candidate), frame + lag_frames))
    last = int(clip.frames[-1]) + lag_frames if len(clip.frames) else 0
    decided.append((decision.flush(), last))
    events = []
    for run, on_frame in ((d, f) for d, f in decided if d is not None):
        half, apex = max(1, round(run.apex.halfwidth_ms / frame_ms)), run.apex.frame_index
        events.append((max(apex - half, 0), apex, apex + half, run.kind, on_frame))
    return events


def micro_intervals(truth: dict) -> list[tuple[int, int]]:
    """The (onset, offset) frames of a clip's true micro-expressions."""
    return [(e["onset_frame"], e["offset_frame"]) for e in truth["events"] if e["kind"] == "micro"]


def match_micro(events: list[tuple], truth: dict) -> tuple[list[tuple], list[tuple[int, int]], list[tuple[int, int]]]:
    """The micro-expression events, the true (onset, offset) intervals, and the (event, true) index pairs the MEGC
    rule matches (:func:`training.metrics.megc_match`): what :func:`score_events` counts, for those that ask
    which events hit."""
    spotted = [e for e in events if e[3] == "micro"]
    true = micro_intervals(truth)
    return spotted, true, megc_match([(e[0], e[2]) for e in spotted], true)


def score_events(events: list[tuple], truth: dict) -> tuple[int, int, int]:
    """(hits, spots, true micro-expressions) by the MEGC rule (:func:`training.metrics.megc_match`)."""
    spotted, true, matches = match_micro(events, truth)
    return len(matches), len(spotted), len(true)


LATE_MS = 100.0  # the live requirement: an event is reported within 100 ms of its offset frame


def late_hits(events: list[tuple], truth: dict, fps: float) -> int:
    """Hits (:func:`score_events`) reported more than :data:`LATE_MS` after their true offset frame."""
    spotted, true, matches = match_micro(events, truth)
    return sum((spotted[s][4] - true[t][1]) * 1000.0 / fps > LATE_MS for s, t in matches)


def apex_rule_hits(events: list[tuple], truth: dict) -> int:
    """Micro-expression events whose apex lies inside a true one (± 1 frame, :func:`training.metrics.apex_hits`):
    found, whether or not the interval fits."""
    return apex_hits([e[1] for e in events if e[3] == "micro"], micro_intervals(truth))


def threshold_table(
    clips: list[ClipFeatures], probabilities: list[np.ndarray], thresholds: Sequence[float] = THRESHOLDS
) -> list[dict]:
    """P, R, F1 on the clips with micro-expressions and false alarms a minute on the nuisance-only clips, for
    every threshold in ``thresholds`` (:data:`THRESHOLDS`); F1 with its 95 % interval when the clips are drawn again
    (:func:`training.metrics.spotting_f1_interval`: two variants whose intervals overlap much are not told
    apart by these clips)."""
    rows = []
    for threshold in thresholds:
        row: dict = {"threshold": threshold}
        for clip_set in ("realistic", "lab", "quiet"):
            chosen = [(c, p) for c, p in zip(clips, probabilities, strict=True) if c.clip_set == clip_set]
            if not chosen:
                continue
            events = [(events_from_probabilities(c, p, threshold), c.truth) for c, p in chosen]
            scores = [score_events(e, truth) for e, truth in events]
            hits, spots, true = (sum(s[i] for s in scores) for i in range(3))
            found = sum(apex_rule_hits(e, truth) for e, truth in events)
            late = sum(late_hits(e, c.truth, c.fps) for (e, _), (c, _) in zip(events, chosen, strict=True))
            minutes = sum(c.n_frames / c.fps for c, _ in chosen) / 60.0
            precision = hits / spots if spots else 0.0
            recall = hits / true if true else 0.0
            f1 = spotting_f1(hits, spots, true)
            row[clip_set] = {
                "hits": hits,
                "spots": spots,
                "true": true,
                "precision": round(precision, 3),
                "recall": round(recall, 3),
                "f1": round(f1, 3),
                "f1_ci95": [round(v, 3) for v in spotting_f1_interval(scores)] if true else None,
                "apex_rule_hits": found,
                "apex_rule_f1": round(spotting_f1(found, spots, true), 3),
                "false_per_minute": round((spots - hits) / minutes, 2) if minutes else None,
                "late_hits": late,
            }
        rows.append(row)
    return rows


def choose_threshold(table: list[dict], max_false_per_minute: float) -> float:
    """The threshold with the best realistic F1 (lab F1 where there is no realistic set) among those whose
    false alarms a minute stay within the budget, on the realistic clips and on the nuisance-only clips alike
    (the issue's target: F1 with at most one false alarm a minute); all thresholds when none does."""

    def f1(row: dict) -> float:
        return (row.get("realistic") or row.get("lab") or {}).get("f1", 0.0)

    def within(row: dict) -> bool:
        return all(
            row[name]["false_per_minute"] <= max_false_per_minute
            for name in ("realistic", "quiet")
            if row.get(name) is not None and row[name].get("false_per_minute") is not None
        )

    allowed = [row for row in table if within(row)] or table
    return max(allowed, key=lambda row: (f1(row), row["threshold"]))["threshold"]


def leave_one_photo_out(
    clips: list[ClipFeatures], settings: SpotTrainingSettings, scored: list[ClipFeatures] | None = None
) -> list[np.ndarray]:
    """Each scored clip's probabilities from a model trained on the other photos' clips. ``scored``: other
    clips of the same photos to score instead of ``clips`` themselves (``benchmarks/spotting_dev_bench.py``
    scores clips made the way the benchmark makes its set)."""
    photos = sorted({c.photo for c in clips})
    if len(photos) < 2:
        raise UserInputError("leave-one-photo-out needs clips of at least two photos")
    targets = clips if scored is None else scored
    out: list[np.ndarray | None] = [None] * len(targets)
    for photo in photos:
        if not any(clip.photo == photo for clip in targets):
            continue
        train = [c for c in clips if c.photo != photo]
        model = train_model(
            np.concatenate([c.features for c in train]), np.concatenate([c.labels for c in train]), settings
        )
        for i, clip in enumerate(targets):
            if clip.photo == photo:
                out[i] = model.predict(clip.features) if len(clip.features) else np.zeros((0, len(CLASSES)))
    missing = sorted({c.photo for c, p in zip(targets, out, strict=True) if p is None})
    if missing:
        raise UserInputError(f"the clips to score show {', '.join(missing)}, which no training clip shows")
    return [p for p in out if p is not None]


def train_spotter(
    settings: SpotTrainingSettings,
    photos: Sequence[str],
    workers: int = 1,
    progress: bool = True,
    cache: Path | None = None,
) -> tuple[SpotModel, list[dict]]:
    """Make the clips, collect their candidates, choose the threshold by leave-one-photo-out, train on all.
    ``cache``: a folder where each clip's candidates are kept for the next run (see :func:`collect`)."""
    from training.synth.photos import HELD_OUT_PHOTOS

    held = sorted(set(photos) & set(HELD_OUT_PHOTOS))
    if held:
        raise UserInputError(f"{', '.join(held)} are the benchmark's held-out faces: the spotter never trains on them")
    clips = collect(plan_training_clips(settings, photos), workers, progress, cache, settings.seconds)
    table = threshold_table(clips, leave_one_photo_out(clips, settings))
    chosen = choose_threshold(table, settings.max_false_per_minute)
    threshold = chosen if settings.threshold is None else settings.threshold
    model = train_model(
        np.concatenate([c.features for c in clips]), np.concatenate([c.labels for c in clips]), settings
    )
    counts = {s: sum(c.clip_set == s for c in clips) for s in ("realistic", "quiet", "lab")}
    labels = np.concatenate([c.labels for c in clips])
    facts = {
        "trained_by": "python -m training spotter",
        "photos": sorted(set(photos)),
        "clips": counts,
        "candidates": {name: int((labels == i).sum()) for i, name in enumerate(CLASSES)},
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()},
        "leave_one_photo_out": table,
        "threshold": threshold,
        "threshold_by_the_rule_on_these_clips": chosen,
    }
    return SpotModel(model.feature_names, model.mean, model.scale, model.members, threshold, CLASSES, facts), table
