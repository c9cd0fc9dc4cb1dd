"""The streaming side never imports torch (start-up time and memory of the live recognizer)."""

import pkgutil
import subprocess
import sys

import pytest


def _realtime_modules() -> list[str]:
    import realtime

    return [m.name for m in pkgutil.walk_packages(realtime.__path__, "realtime.")]


def test_the_check_covers_every_stage_and_both_commands():
    names = set(_realtime_modules())
    stages = {f"realtime.stages.{name}" for name in ("capture", "faces", "spotter", "classify", "render", "outputs")}
    commands = {"realtime.batch.__main__", "realtime.batch.command", "realtime.batch.worker", "realtime.cli.arguments"}
    assert stages | commands | {"realtime.pipeline", "realtime.process", "realtime.core.files"} <= names


@pytest.mark.parametrize("names", [[*_realtime_modules(), "stream"], ["torch"]], ids=["realtime+stream", "torch"])
def test_realtime_and_stream_do_not_import_torch(names):
    """Every module of realtime/ (the batch command and its worker included) and stream.py, imported in a
    fresh interpreter, leave torch out; importing torch itself is caught (the check can fail)."""
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "sys.exit(3 if 'torch' in sys.modules else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    expected = 3 if names == ["torch"] else 0
    assert result.returncode == expected, result.stderr or "importing realtime pulled in torch"
