"""The README's architecture section stays true: every package is in its table, everything it names exists,
its picture shows every streaming stage, and the tests' folders mirror the packages."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("realtime", "training", "export")


def _section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Architecture\n")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def _table_paths() -> list[str]:
    return re.findall(r"^\| `([^`]+)` \|", _section(), flags=re.MULTILINE)


def _package_folders() -> set[str]:
    return {
        f"{init.parent.relative_to(ROOT).as_posix()}/"
        for name in PACKAGES
        for init in (ROOT / name).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }


def test_every_package_has_a_row_and_every_row_exists():
    rows = _table_paths()
    assert len(rows) == len(set(rows)), "a path is listed twice"
    assert _package_folders() <= set(rows), sorted(_package_folders() - set(rows))
    missing = [row for row in rows if not (ROOT / row).exists()]
    assert not missing, missing


def test_every_file_the_section_names_exists():
    named = set(re.findall(r"`((?:realtime|training|export|tests)/[\w/]+\.py)`", _section()))
    assert named, "the section names files"
    assert not [path for path in sorted(named) if not (ROOT / path).is_file()]


def test_the_picture_shows_every_streaming_stage_in_its_package():
    picture = _section().split("```")[1]
    folder = ROOT / "realtime" / "stages"
    stages = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    stages |= {p.parent.name for p in folder.glob("*/__init__.py")}  # a stage may be a package (the spotter)
    first_line = picture.strip().splitlines()[0]
    assert set(re.findall(r"[a-z]+", first_line)) == stages


def test_the_tests_mirror_the_packages():
    for folder in (ROOT / "tests").rglob("*"):
        if not folder.is_dir() or folder.name == "__pycache__":
            continue
        mirrored = ROOT / folder.relative_to(ROOT / "tests")
        assert (mirrored / "__init__.py").is_file(), f"{folder} mirrors no package"
