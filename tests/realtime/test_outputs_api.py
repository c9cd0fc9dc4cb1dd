"""The researcher-facing outputs: the per-frame table's schema, landmarks and head pose, the regions an event
names, and the Python API (the same events as the command line, the same one-line errors).

Clips come from the lab generator (:mod:`training.synth.videos`) with known action units and true landmarks.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

import stream
from realtime import Recognizer, UserInputError, to_dataframe
from realtime.core.pose import GENERIC_FACE_3D, PoseEstimator, project
from realtime.schema import EVENT_KEYS, FaceRecord, FrameRecord, frame_header, markdown
from realtime.stages.faces import FaceTracker
from realtime.stages.outputs import FrameCsvWriter
from realtime.stages.spotter import REGIONS
from training.synth.au_clips import au_clip, write_frames

ROOT = Path(__file__).resolve().parents[2]
# an independent copy of what users were promised (the schema must keep these names and this order)
OPENFACE_COLUMNS = ["frame", "timestamp", "time_ms", "face_id", "confidence", "success"]
EXPECTED_EVENT_KEYS = [
    "face",
    "onset_frame",
    "apex_frame",
    "offset_frame",
    "onset_ms",
    "apex_ms",
    "offset_ms",
    "score",
    "label",
    "confidence",
    "probabilities",
    "moved",
]
# action units → the regions they move and the direction (image directions on the face)
ACTIONS = {
    ("1", "2"): ({"brow_left", "brow_right"}, {"up"}),  # inner + outer brow raiser
    ("4",): ({"brow_left", "brow_right"}, {"down"}),  # brow lowerer
    ("15",): ({"mouth_left", "mouth_right"}, {"down"}),  # lip corner depressor
    ("12",): ({"mouth_left", "mouth_right"}, {"up", "outward"}),  # lip corner puller
}


def run_main(capsys, *args) -> tuple[int, str, str]:
    try:
        code = stream.main([str(a) for a in args])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def au_run(tmp_path_factory, tiny_onnx_model):
    """One generated clip (AU1+2, AU4, AU15, AU12 in turn) as a PNG folder, run through stream.py."""
    renderer = au_clip(list(ACTIONS))
    out = tmp_path_factory.mktemp("au")
    folder = write_frames(renderer, out / "frames")
    events, table = out / "events.jsonl", out / "frames.csv"
    code = stream.main(
        [
            "--source",
            str(folder),
            "--fps",
            "30",
            "--model",
            str(tiny_onnx_model),
            "--device",
            "cpu",
            "--no-display",
            "--quiet",
            "--events",
            str(events),
            "--csv",
            str(table),
        ]
    )
    assert code == 0
    return renderer, folder, [json.loads(line) for line in events.read_text().splitlines()], table


@pytest.mark.parametrize("landmarks", [True, False], ids=["landmarks", "no-landmarks"])
def test_the_csv_header_is_the_schema(tmp_path, landmarks):
    writer = FrameCsvWriter(tmp_path / "t.csv", landmarks=landmarks)
    writer.write(FrameRecord(0, 0.0, ()))
    writer.close()
    header, rows = read_csv(tmp_path / "t.csv")
    assert header == list(frame_header(landmarks))
    assert header[:6] == OPENFACE_COLUMNS
    assert {"pose_Rx", "pose_Ry", "pose_Rz", "signal", "threshold", "in_event"} <= set(header)
    assert {f"motion_{name}" for name in REGIONS} <= set(header)
    landmark_columns = [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]
    assert (header[-136:] == landmark_columns) is landmarks
    assert not set(landmark_columns) & set(header[:-136])
    # a frame without a face: success 0, the rest empty
    (row,) = rows
    assert row["success"] == "0" and row["detection"] == "none"
    kept = ("frame", "timestamp", "time_ms", "success", "detection")
    assert all(row[name] == "" for name in header if name not in kept)


def test_the_readme_documents_the_schema():
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index("<!-- schema -->\n") + len("<!-- schema -->\n"), readme.index("<!-- /schema -->")
    assert readme[start:end] == markdown(), "README is stale: paste the output of python -m realtime.schema"


def test_the_events_have_the_schemas_keys(au_run):
    _, _, events, _ = au_run
    assert list(EVENT_KEYS) == EXPECTED_EVENT_KEYS
    assert events
    for event in events:
        assert list(event) == EXPECTED_EVENT_KEYS
        for moved in event["moved"]:
            assert list(moved) == ["region", "share", "direction"]
            assert moved["region"] in REGIONS
        assert sum(m["share"] for m in event["moved"]) <= 1.0 + 1e-6


def test_the_csv_landmarks_are_the_trackers(au_run):
    renderer, folder, _, table = au_run
    _, rows = read_csv(table)
    tracker = FaceTracker()
    images = [cv2.imread(str(folder / f"img{i}.png")) for i in range(1, renderer.spec.n_frames + 1)]
    assert len(rows) == len(images)
    for row, image in zip(rows, images, strict=True):
        (face,) = tracker.process(image).faces
        csv_points = np.array([[float(row[f"x_{i}"]), float(row[f"y_{i}"])] for i in range(68)])
        np.testing.assert_allclose(csv_points, face.landmarks, atol=0.006)  # written with 2 decimals
        assert float(row["timestamp"]) == pytest.approx(float(row["time_ms"]) / 1000.0, abs=1e-3)
        assert 0.0 < float(row["confidence"]) <= 1.0
    # and the tracker's landmarks are where the generator put them (dlib's error: a few % of the IOD)
    truth = renderer.landmarks
    errors = [
        np.abs(np.array([[float(r[f"x_{i}"]), float(r[f"y_{i}"])] for i in range(68)]) - truth[k]).mean()
        for k, r in enumerate(rows)
    ]
    assert float(np.median(errors)) < 0.06 * renderer.face.frame.iod


@pytest.mark.parametrize("codes", list(ACTIONS), ids=["+".join(c) for c in ACTIONS])
def test_an_event_names_the_regions_its_action_units_moved(au_run, codes):
    renderer, _, events, _ = au_run
    (true,) = [e for e in renderer.spec.events if e.label == "+".join(codes)]
    matching = [e for e in events if e["onset_frame"] <= true.apex_frame <= e["offset_frame"]]
    assert len(matching) == 1, events
    moved = matching[0]["moved"]
    regions, directions = ACTIONS[codes]
    top_two = {m["region"] for m in moved[:2]}
    assert top_two == regions, moved
    assert {m["direction"] for m in moved[:2]} <= directions, moved
    assert [m["share"] for m in moved] == sorted((m["share"] for m in moved), reverse=True)


@pytest.fixture(scope="module")
def api_run(au_run, tiny_onnx_model):
    """The same clip through the Python API: ``process()`` and ``frames()``, once each."""
    _, folder, _, _ = au_run
    recognizer = Recognizer(tiny_onnx_model, device="cpu", fps=30)
    return list(recognizer.process(folder)), list(recognizer.frames(folder))


def test_the_api_gives_the_command_lines_events(au_run, api_run):
    _, _, cli_events, _ = au_run
    events, records = api_run
    assert [type(e).__name__ for e in events] == ["MicroExpression"] * len(cli_events)
    assert [e.to_json() for e in events] == cli_events
    assert [e.to_json() for r in records for e in r.events] == cli_events


def test_the_api_frames_are_the_csv_rows(au_run, api_run):
    renderer, _, _, table = au_run
    _, rows = read_csv(table)
    _, records = api_run
    assert [r.frame for r in records] == list(range(renderer.spec.n_frames))
    assert all(isinstance(face, FaceRecord) for r in records for face in r.faces)
    for record, row in zip(records, rows, strict=True):
        (face,) = record.faces
        assert face.signal == pytest.approx(float(row["signal"]), abs=0.006)
        assert face.pose.yaw_rad == pytest.approx(float(row["pose_Ry"]), abs=6e-5)
        for name in REGIONS:
            assert face.region_motion[name] == pytest.approx(float(row[f"motion_{name}"]), abs=6e-4)


def test_to_dataframe_gives_the_schemas_tables(au_run, api_run):
    pd = pytest.importorskip("pandas")
    _, _, cli_events, table = au_run
    events, records = api_run
    frame = to_dataframe(events)
    assert list(frame.columns) == EXPECTED_EVENT_KEYS
    assert frame["apex_frame"].tolist() == [e["apex_frame"] for e in cli_events]
    frames = to_dataframe(records, landmarks=False)
    assert list(frames.columns) == list(frame_header(landmarks=False))
    expected = pd.read_csv(table)
    assert len(frames) == len(expected)
    np.testing.assert_allclose(frames["pose_Rz"], expected["pose_Rz"], atol=6e-5)
    np.testing.assert_allclose(to_dataframe(records)["x_30"], expected["x_30"], atol=0.006)
    with pytest.raises(UserInputError, match=r"events .* or frames"):
        to_dataframe([1, 2])


def test_no_csv_landmarks_leaves_out_the_landmark_columns(tmp_path, capsys, au_run, tiny_onnx_model):
    _, folder, _, wide = au_run
    narrow = tmp_path / "narrow.csv"
    code, _, err = run_main(
        capsys, "--source", folder, "--fps", "30", "--model", tiny_onnx_model, "--no-display", "--quiet",
        "--csv", narrow, "--no-csv-landmarks",
    )  # fmt: skip
    assert code == 0, err
    header, rows = read_csv(narrow)
    assert header == list(frame_header(landmarks=False))
    _, wide_rows = read_csv(wide)
    assert [{k: r[k] for k in header} for r in wide_rows] == rows
    assert narrow.stat().st_size < 0.4 * wide.stat().st_size


@pytest.mark.parametrize(
    "make, cli_args",
    [
        (lambda m: Recognizer(m, device="cpu").process("/nonexistent/clip.mp4"), ["--source", "/nonexistent/clip.mp4"]),
        (lambda m: Recognizer("/nonexistent/m.onnx"), ["--source", "{folder}", "--model", "/nonexistent/m.onnx"]),
        (lambda m: Recognizer(m, device="tpu"), None),
        (lambda m: Recognizer(m, max_faces=0), None),
    ],
    ids=["missing-source", "missing-model", "bad-device", "no-faces"],
)
def test_api_errors_are_the_command_lines_one_line_errors(capsys, tmp_path, tiny_onnx_model, make, cli_args):
    with pytest.raises(UserInputError) as raised:
        result = make(tiny_onnx_model)
        if not isinstance(result, Recognizer):
            list(result)
    message = str(raised.value)
    assert "\n" not in message and message
    if cli_args is not None:
        args = [a.replace("{folder}", str(tmp_path)) for a in cli_args]
        if "--model" not in args:
            args += ["--model", str(tiny_onnx_model)]
        code, _, err = run_main(capsys, *args, "--no-display")
        assert code == 2
        assert err.strip().splitlines()[-1] == f"error: {message}"


# --- head pose --------------------------------------------------------------------------------------------

POSE_ERROR_DEG = 2.5  # the stated accuracy (95th percentile) on projected head turns with 1.5 % IOD landmark noise


def test_head_pose_of_projected_head_turns_with_landmark_noise():
    """The generic face at known angles (±30° yaw, ±20° pitch, ±20° roll), projected through the assumed
    camera, with Gaussian landmark noise of 1.5 % of the IOD (dlib's typical jitter)."""
    rng = np.random.default_rng(0)
    estimator = PoseEstimator()
    errors = []
    for _ in range(200):
        true = np.radians([rng.uniform(-20, 20), rng.uniform(-30, 30), rng.uniform(-20, 20)])
        points = project(*true, (rng.uniform(-2, 2), rng.uniform(-1, 1), rng.uniform(8, 14)), (640, 480))
        iod = np.linalg.norm(points[42:48].mean(0) - points[36:42].mean(0))
        pose = estimator.estimate(points + rng.normal(0.0, 0.015 * iod, points.shape), (640, 480))
        errors.append(np.degrees(np.abs(np.array([pose.pitch_rad, pose.yaw_rad, pose.roll_rad]) - true)))
    errors = np.array(errors)
    assert errors.mean(axis=0).max() < 1.0
    assert np.percentile(errors, 95, axis=0).max() < POSE_ERROR_DEG


def test_head_pose_signs_follow_the_documented_convention():
    size = (640, 480)
    front = project(0.0, 0.0, 0.0, (0, 0, 10), size)
    nose, chin = 30, 8
    assert project(0.0, 0.3, 0.0, (0, 0, 10), size)[nose, 0] < front[nose, 0]  # yaw > 0: nose to image left
    assert project(0.3, 0.0, 0.0, (0, 0, 10), size)[nose, 1] > front[nose, 1]  # pitch > 0: head tips down
    assert project(0.0, 0.0, 0.3, (0, 0, 10), size)[chin, 0] < front[chin, 0]  # roll > 0: clockwise
    assert GENERIC_FACE_3D[30, 2] < GENERIC_FACE_3D[39, 2]  # the nose tip is nearer the camera than the eyes


@pytest.mark.parametrize("roll_deg", [-15.0, -5.0, 5.0, 15.0])
def test_head_roll_of_a_real_face_rotated_by_known_angles(roll_deg):
    """A real face photo (Grace Hopper) rotated in the image plane: pose_Rz changes by the rotation."""
    from training.synth.photos import photo_path

    image = cv2.imread(str(photo_path("grace_hopper")))
    tracker = FaceTracker()
    size = (image.shape[1], image.shape[0])
    estimator = PoseEstimator()
    base = estimator.estimate(tracker.process(image).faces[0].landmarks, size)
    # OpenCV's positive angle turns the picture counter-clockwise: our roll then falls by that much
    centre = (size[0] / 2, size[1] / 2)
    rotated = cv2.warpAffine(image, cv2.getRotationMatrix2D(centre, roll_deg, 1.0), size)
    pose = estimator.estimate(FaceTracker().process(rotated).faces[0].landmarks, size)
    assert math.degrees(pose.roll_rad - base.roll_rad) == pytest.approx(-roll_deg, abs=2.0)


@pytest.mark.parametrize("threads", [1, 2])
def test_the_recognizer_runs_its_classifier_on_the_threads_it_is_given(tiny_onnx_model, threads):
    recognizer = Recognizer(tiny_onnx_model, "cpu", classifier_threads=threads)
    assert recognizer.classifier.session.get_session_options().intra_op_num_threads == threads
