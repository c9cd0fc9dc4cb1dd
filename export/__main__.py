"""``python -m export``: a training checkpoint → the ONNX model ``stream.py`` runs, checked for parity.

:func:`main` returns the exit code: 0 exported, 1 parity failed (nothing written), 2 bad input (one
``error: ...`` line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from export.options import (
    DEFAULT_OPSET,
    EXIT_OK,
    EXIT_PARITY_FAILED,
    EXIT_USER_ERROR,
    FP16_PARITY_BOUND,
    FP32_PARITY_BOUND,
    MAX_IMAGE_SIZE,
    MAX_OPSET,
    MIN_IMAGE_SIZE,
    MIN_OPSET,
    ExportOptions,
    ParityError,
)
from realtime.cli.arguments import OneLineErrorParser
from realtime.core.errors import UserInputError

DESCRIPTION = """\
Export a checkpoint written by `python -m training` (any attention variant: none, spatial, channel, dual) to
the ONNX model the real-time recognizer (stream.py) runs: the attention ResNet18 with a softmax appended,
input 'input' (N×3×S×S float32: aligned face crop, channel order and mean/std from the checkpoint) and output
'probabilities' (N×classes float32). The file is checked with onnx.checker and then for parity: real face
photographs that pip packages ship (matplotlib's grace_hopper.jpg; scikit-image's astronaut.png when
installed), aligned with the checkpoint's alignment settings, plus mirrored and brightness-varied copies, go
through the recognizer's own preprocessing and ONNX Runtime (CPU) and through PyTorch."""

EPILOG = f"""\
parity bound: the largest |ONNX Runtime − PyTorch| difference of any class probability on any crop must be
  ≤ {FP32_PARITY_BOUND:g} (fp32) or ≤ {FP16_PARITY_BOUND:g} (--fp16). Otherwise the export fails with exit code 1
  and leaves nothing at the output path (the model is written to a temporary file and renamed on success).

written into the model's metadata_props (what stream.py reads; JSON where structured):
  classes (in output order), input_size, channel_order, mean, std, alignment (face alignment settings,
  output size = input size), training (data set, protocol, description, training configuration, number of
  samples when known), metrics (from the checkpoint), version (of microexpr); and also arch, attention,
  opset, fp16, dynamic_batch, exported_at (UTC), checkpoint, torch/onnx/onnxruntime versions and parity.

report: progress and figures (max difference, top-1 agreement, file size, time) are printed; the same as
  JSON is written beside the model as NAME.onnx.json.

exit codes: 0 exported, 1 parity failed, 2 bad input (missing or foreign checkpoint, unwritable output,
  bad option), with one 'error: ...' line on stderr.

examples:
  python -m export --checkpoint weights/casme2-dual.pt --output weights/casme2-dual.onnx
  python -m export --checkpoint weights/casme2-dual.pt --output weights/casme2-dual-fp16.onnx --fp16
  python -m export --checkpoint weights/ckplus.pt --output weights/ckplus.onnx --dynamic-batch --opset 18
  python stream.py --model weights/casme2-dual.onnx
"""


def get_args_parser() -> argparse.ArgumentParser:
    """The command's arguments (``python -m export --help``)."""
    parser = OneLineErrorParser(
        prog="python -m export",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        metavar="PATH",
        help="a checkpoint written by `python -m training` (e.g. pretrain's --out)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        required=True,
        metavar="weights/NAME.onnx",
        help="the .onnx file to write (folders are created); the JSON report goes to NAME.onnx.json",
    )
    parser.add_argument(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        metavar="N",
        help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default: %(default)s)",
    )
    parser.add_argument(
        "--fp16",
        action="store_true",
        help="half-precision weights and compute (about half the file size); input and output stay float32, "
        f"cast inside the graph; parity bound {FP16_PARITY_BOUND:g} instead of {FP32_PARITY_BOUND:g}",
    )
    parser.add_argument(
        "--dynamic-batch",
        action="store_true",
        help="a dynamic 'batch' axis on input and output (default: batch fixed at 1, what stream.py feeds)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        metavar="S",
        help=f"input side in pixels, {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} (default: the checkpoint's). The network "
        "is fully convolutional with a global pool, so any size runs, but accuracy is only known at the size "
        "it was trained at",
    )
    parser.add_argument(
        "--evaluation",
        type=Path,
        nargs="+",
        metavar="RUN_DIR",
        help="finished LOSO run folders of this checkpoint's configuration (leave-one-subject-out and/or "
        "leave-one-photo-out) whose figures and calibration temperature go into the model's metadata in place "
        "of the checkpoint's own (for a run that finished after the fit)",
    )
    return parser


def one_line(error: BaseException, limit: int = 400) -> str:
    """An error message as one line: its first line (library messages quoted inside can run to many),
    cut at ``limit`` characters."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    text = lines[0].strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, export, print the figures; returns the exit code (see the module docstring)."""
    parser = get_args_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad argument (2, already reported in one line)
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USER_ERROR
    try:
        options = ExportOptions(
            opset=args.opset, fp16=args.fp16, dynamic_batch=args.dynamic_batch, image_size=args.image_size
        )
        from export.onnx_export import export_checkpoint  # imports torch: after the arguments are known good

        try:
            report = export_checkpoint(
                args.checkpoint,
                args.output,
                options,
                log=lambda line: print(line, flush=True),
                evaluations=tuple(args.evaluation or ()),
            )
        except ParityError as exc:
            print(f"error: {one_line(exc)}", file=sys.stderr)
            return EXIT_PARITY_FAILED
    except UserInputError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
    print(
        f"wrote {report.output} ({report.file_size_mb:.1f} MB) in {report.export_seconds:.1f} s; "
        f"max abs diff {report.parity.max_abs_diff:.3g} ≤ {report.parity.bound:g}, "
        f"top-1 agreement {report.parity.top1_agreement:.0%}; report {report.sidecar}"
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
