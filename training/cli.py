"""Command-line interface of ``python -m training``.

Each subcommand is a ``configure_*`` function (its arguments) and a ``run_*`` function (its work).
:func:`main` reports errors as the project's other commands do (:func:`realtime.cli.arguments.run_reporting_errors`):
bad input, a bad argument included, is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from realtime.cli.arguments import OneLineErrorParser, run_reporting_errors
from realtime.core.align import AlignmentSettings
from realtime.core.errors import UserInputError
from realtime.core.motion import INPUT_KINDS

DATASET_HELP = "casme2 (CASME II), ckplus (CK+) or samm (SAMM)"

EPILOG = """\
examples:
  python -m training synth casme2 --out demo/casme2
  python -m training summary casme2 --root /data/CASME2
  python -m training pretrain ckplus --root /data/CK+ --out weights/ckplus.pt
  python -m training loso casme2 --root /data/CASME2 --pretrained weights/ckplus.pt --out runs/dual-focal
  python -m training fit casme2 --root /data/CASME2 --pretrained weights/ckplus.pt --loso-run runs/dual-focal \
      --out weights/casme2.pt
  python -m export --checkpoint weights/casme2.pt --output weights/casme2.onnx
  python -m training ablation casme2 --root /data/CASME2 --pretrained weights/ckplus.pt --out runs/ablation
"""


def _add_data_arguments(parser: argparse.ArgumentParser, datasets: Sequence[str]) -> None:
    parser.add_argument("dataset", choices=datasets, help=DATASET_HELP)
    parser.add_argument("--root", type=Path, required=True, help="the data set's folder, in its published layout")
    parser.add_argument(
        "--coding",
        type=Path,
        help="the coding sheet (.xlsx or .csv); by default found in --root or its parent (CASME II, SAMM)",
    )
    parser.add_argument("--protocol", help=_protocol_help(datasets))
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="where aligned crops and chosen apexes are cached (default: $MICROEXPR_CACHE or ~/.cache/microexpr)",
    )


def _protocol_help(datasets: Sequence[str]) -> str:
    """The label protocols of each of ``datasets``, its default marked where it has several."""
    from training.datasets import DEFAULT_PROTOCOL, PROTOCOLS

    def listed(dataset: str) -> str:
        protocols = PROTOCOLS[dataset]
        default = DEFAULT_PROTOCOL[dataset] if len(protocols) > 1 else None
        return " | ".join(p + (" (default)" if p == default else "") for p in protocols)

    return "label protocol: " + "; ".join(f"{dataset} {listed(dataset)}" for dataset in datasets)


def _add_training_arguments(parser: argparse.ArgumentParser) -> None:
    from training.config import DEVICES, SELECTIONS, TrainConfig
    from training.losses import LOSSES
    from training.model import ATTENTION_VARIANTS

    defaults = TrainConfig()
    group = parser.add_argument_group("model and training")
    group.add_argument(
        "--attention",
        choices=ATTENTION_VARIANTS,
        default=defaults.attention,
        help="attention inside each residual unit (default: %(default)s, the paper's eq. 5)",
    )
    group.add_argument("--loss", choices=LOSSES, default=defaults.loss, help="focal (default) or cross-entropy")
    group.add_argument("--gamma", type=float, default=defaults.gamma, help="focal loss γ (default: %(default)s)")
    group.add_argument(
        "--alpha",
        default=defaults.alpha,
        help="focal loss α: 'inverse' (inverse class frequency, default), 'none', or one weight per class "
        "separated by commas",
    )
    group.add_argument("--epochs", type=int, default=defaults.epochs, help="epochs per fold (default: %(default)s)")
    group.add_argument("--batch-size", type=int, default=defaults.batch_size, help="(default: %(default)s)")
    group.add_argument("--lr", type=float, default=defaults.lr, help="learning rate (default: %(default)s)")
    group.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="(default: %(default)s)")
    group.add_argument(
        "--image-size",
        type=int,
        default=defaults.image_size,
        help="side of the aligned face crop and the model input in pixels (default: %(default)s, the paper's)",
    )
    group.add_argument("--device", choices=DEVICES, default=defaults.device, help="(default: %(default)s)")
    group.add_argument("--seed", type=int, default=defaults.seed, help="(default: %(default)s)")
    group.add_argument(
        "--selection",
        choices=SELECTIONS,
        default=defaults.selection,
        help="'last': keep the model after the last epoch (default); 'inner-val': choose the epoch on "
        "subjects held out from the training subjects (never the test subject)",
    )
    group.add_argument(
        "--val-subjects",
        type=int,
        default=defaults.val_subjects,
        help="training subjects held out for --selection inner-val (default: %(default)s)",
    )
    group.add_argument(
        "--input",
        dest="input_kind",
        choices=INPUT_KINDS,
        default=defaults.input_kind,
        help="what the network sees: 'apex' the aligned apex frame (default, the paper's), 'onset-apex' the "
        "onset and apex crops and their difference, 'flow' onset-to-apex optical flow and strain with the "
        "head's motion removed (realtime/core/motion.py, the same code the stream runs)",
    )
    group.add_argument(
        "--calibrate",
        action="store_true",
        help="LOSO: hold --val-subjects of each fold's training subjects out and fit a softmax temperature on "
        "them; the report then shows the reliability plot and the expected calibration error before/after",
    )
    group.add_argument("--no-augment", dest="augment", action="store_false", help="no on-device augmentation")
    group.add_argument(
        "--min-flow-gain",
        type=float,
        default=defaults.min_flow_gain,
        help="--input flow: scale each training sample's flow by a random gain in [this, 1], so that smaller "
        "movements than the training clips' get the same names (default: %(default)s; 1: off)",
    )
    group.add_argument(
        "--imagenet",
        type=Path,
        help="a torchvision ResNet18 ImageNet state dict you already have (.pth), to start from",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads for torch (default: one per core). On a machine busy with other work, 1 can be "
        "several times faster than oversubscribed cores",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def _train_config(args: argparse.Namespace):
    from training.config import TrainConfig

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    try:
        return TrainConfig(**values)
    except ValueError as exc:
        raise UserInputError(str(exc)) from None


def _read(args: argparse.Namespace):
    from training.datasets import read_dataset

    apex_cache = (args.cache_dir / "apex") if args.cache_dir else _default_cache().parent / "apex"
    return read_dataset(args.dataset, args.root, coding=args.coding, protocol=args.protocol, apex_cache_dir=apex_cache)


def _default_cache() -> Path:
    from training.preprocess import default_cache_dir

    return default_cache_dir()


def _crops(args: argparse.Namespace, index):
    from training.preprocess import build_crop_set

    settings = AlignmentSettings(output_size=args.image_size)
    cache = (args.cache_dir / "crops") if args.cache_dir else _default_cache()
    crop_set, report = build_crop_set(
        index, settings, cache_dir=cache, progress=args.progress, input_kind=args.input_kind
    )
    fallback = len(report.whole_image_fallback)
    print(
        f"aligned {report.n_images} images of {index.name} ({report.n_cached} from cache"
        + (f", {fallback} without a detected face: whole image used" if fallback else "")
        + ")",
        file=sys.stderr,
    )
    return crop_set, settings


# --- summary ---------------------------------------------------------------------------------------------


def configure_summary(parser: argparse.ArgumentParser) -> None:
    from training.datasets import DATASETS

    _add_data_arguments(parser, DATASETS)


def run_summary(args: argparse.Namespace) -> int:
    print(json.dumps(_read(args).summary(), indent=2))
    return 0


# --- pretrain --------------------------------------------------------------------------------------------


def configure_pretrain(parser: argparse.ArgumentParser) -> None:
    from training.datasets import DATASETS
    from training.pretrain import SPLITS

    _add_data_arguments(parser, DATASETS)
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write, e.g. weights/ckplus.pt")
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="random",
        help="'random': the paper's stratified 8:2 split of images; 'subject': no person on both sides "
        "(the honest alternative: frames of one person on both sides inflate accuracy)",
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="held-out share, evaluated once at the end (default: 0.2)",
    )
    _add_training_arguments(parser)


def run_pretrain(args: argparse.Namespace) -> int:
    from training.pretrain import pretrain

    index = _read(args)
    crop_set, settings = _crops(args, index)
    result = pretrain(
        crop_set,
        _train_config(args),
        split=args.split,
        test_fraction=args.test_fraction,
        out=args.out,
        alignment=settings.to_dict(),
        imagenet=args.imagenet,
        progress=args.progress,
    )
    print(json.dumps(result, indent=2))
    return 0


# --- loso ------------------------------------------------------------------------------------------------


def configure_loso(parser: argparse.ArgumentParser) -> None:
    from training.datasets import DATASETS

    _add_data_arguments(parser, DATASETS)
    parser.add_argument("--out", type=Path, required=True, help="run folder (resumes when it holds the same run)")
    parser.add_argument(
        "--pretrained",
        type=Path,
        help="a checkpoint of this project to transfer from (e.g. weights/ckplus.pt)",
    )
    parser.add_argument(
        "--subjects",
        nargs="+",
        help="run only these folds (subject names as in the summary), e.g. to split work",
    )
    parser.add_argument(
        "--groups",
        type=Path,
        metavar="FILE.json",
        help="leave one GROUP out instead: a JSON object mapping every subject to a group name (e.g. the "
        "subject_photos.json that `synth` writes: generated subjects made from one photograph form a group, "
        "so no face is seen in training and test); the report's subjects are then the groups",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a run folder that holds a different configuration"
    )
    _add_training_arguments(parser)
    _add_ray_arguments(parser)


def read_groups(groups_file: Path, subjects: Sequence[str]) -> dict[str, str]:
    """The subject → group mapping of ``--groups``, checked against the data set's ``subjects``. Every
    subject must have a group: a sample silently left out would change the protocol."""
    try:
        mapping = json.loads(Path(groups_file).read_text())
    except FileNotFoundError:
        raise UserInputError(f"--groups {groups_file}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserInputError(f"--groups {groups_file}: not valid JSON ({exc})") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) and v for v in mapping.values()):
        raise UserInputError(f"--groups {groups_file}: expected a JSON object of subject -> group name")
    missing = sorted(set(subjects) - set(mapping))
    if missing:
        raise UserInputError(f"--groups {groups_file}: no group for subjects {', '.join(missing[:10])}")
    if len({mapping[s] for s in subjects}) < 2:
        raise UserInputError(f"--groups {groups_file}: leaving one group out needs at least two groups")
    return {s: mapping[s] for s in subjects}


def _add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "folds on Ray (in parallel, on this machine or a cluster)",
        "Without --workers and --address the folds run one after the other in this process and Ray is not "
        "used. With them each fold is a Ray task; the results, the report and resuming are the same (a run "
        "may be resumed either way). This machine (the driver) reads --root, aligns the crops (--cache-dir) "
        "and writes --out; the crops and the --pretrained/--imagenet weights reach the workers through Ray's "
        "object store, so the other nodes need this package installed (same versions) but not the data set "
        "or the run folder. Run the command on a cluster node (or with --address ray://HEAD:10001).",
    )
    group.add_argument(
        "--workers",
        type=int,
        help="folds trained at once as Ray tasks (without --address: on a Ray instance started for this run "
        "on this machine); default with --address: one per GPU slot, else one per node",
    )
    group.add_argument(
        "--address",
        help="join a running Ray cluster: 'auto' (one started on this machine with `ray start --head`) or "
        "HEAD:6379 (the head node's address, as `ray start --head` prints it)",
    )
    group.add_argument(
        "--gpus-per-fold",
        type=float,
        help="GPUs a fold task holds where the cluster has GPUs (default 1); a fraction such as 0.5 puts "
        "two small folds on one GPU",
    )
    group.add_argument(
        "--cpus-per-fold",
        type=int,
        help="CPUs a fold task holds, = its torch threads (default: the cluster's CPUs / --workers, at most "
        "one node's)",
    )


def _fold_runner(args: argparse.Namespace):
    """None (in process, Ray never imported) unless --workers or --address asks for Ray."""
    if args.workers is None and args.address is None:
        if args.gpus_per_fold is not None or args.cpus_per_fold is not None:
            raise UserInputError("--gpus-per-fold and --cpus-per-fold need --workers or --address (folds on Ray)")
        return None
    from training.distributed import RayFoldRunner

    return RayFoldRunner(
        workers=args.workers,
        address=args.address,
        gpus_per_fold=args.gpus_per_fold,
        cpus_per_fold=args.cpus_per_fold,
    )


def run_loso_command(args: argparse.Namespace) -> int:
    from training.loso import run_loso

    runner = _fold_runner(args)  # bad Ray arguments are refused before the crops are made
    index = _read(args)
    groups = read_groups(args.groups, index.subjects) if args.groups is not None else None
    crop_set, settings = _crops(args, index)
    if groups is not None:  # folds then hold out a whole group
        crop_set = dataclasses.replace(crop_set, subjects=tuple(groups[s] for s in crop_set.subjects))
        print(f"folds by group ({args.groups}): {', '.join(sorted(set(groups.values())))}", file=sys.stderr)
    report = run_loso(
        crop_set,
        _train_config(args),
        args.out,
        pretrained=args.pretrained,
        imagenet=args.imagenet,
        alignment=settings.to_dict(),
        subjects=args.subjects,
        overwrite=args.overwrite,
        progress=args.progress,
        runner=runner,
        evaluation="leave-one-subject-out" if groups is None else "leave-one-photo-out",
    )
    print(_headline(report, args.out))
    return 0


def _headline(report: dict, out: Path) -> str:
    return (
        f"LOSO {report['n_subjects']} subjects, {report['n_samples']} samples: accuracy {report['accuracy']:.4f}, "
        f"macro F1 {report['f1_macro']:.4f}, UF1 {report['uf1']:.4f}, UAR {report['uar']:.4f} -> {out / 'report.md'}"
    )


# --- fit -------------------------------------------------------------------------------------------------


def configure_fit(parser: argparse.ArgumentParser) -> None:
    from training.datasets import DATASETS

    _add_data_arguments(parser, DATASETS)
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write, e.g. weights/casme2.pt")
    parser.add_argument(
        "--pretrained",
        type=Path,
        help="a checkpoint of this project to transfer from (e.g. weights/ckplus.pt), as in the LOSO run",
    )
    parser.add_argument(
        "--loso-run",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="the LOSO run folder(s) that measured this configuration (a leave-one-subject-out run and/or a "
        "leave-one-photo-out run made with --groups): their figures, and the LOSO run's calibration "
        "temperature, become the model's metrics (exported into the ONNX metadata); configurations must match",
    )
    _add_training_arguments(parser)


def run_fit(args: argparse.Namespace) -> int:
    from training.loso import combined_evaluation
    from training.pretrain import pretrain

    config = _train_config(args)
    index = _read(args)
    evaluation = None
    if args.loso_run is not None:
        evaluation = combined_evaluation(args.loso_run, config.to_dict(), args.dataset, getattr(index, "protocol", ""))
    crop_set, settings = _crops(args, index)
    result = pretrain(
        crop_set,
        config,
        split="random",
        test_fraction=0.0,
        out=args.out,
        alignment=settings.to_dict(),
        imagenet=args.imagenet,
        pretrained=args.pretrained,
        progress=args.progress,
        evaluation=evaluation,
    )
    result["metrics"] = evaluation
    print(json.dumps(result, indent=2))
    if evaluation is None:
        print(
            "note: no --loso-run given, so the checkpoint carries no measured figures; run `python -m training "
            "loso` with the same options first and pass its folder",
            file=sys.stderr,
        )
    return 0


# --- ablation --------------------------------------------------------------------------------------------


def configure_ablation(parser: argparse.ArgumentParser) -> None:
    from training.ablation import INPUT_EVALUATIONS

    _add_data_arguments(parser, ("casme2", "samm"))
    parser.add_argument("--out", type=Path, required=True, help="folder of the six runs and ablation.md")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--pretrained", type=Path, help="CK+ checkpoint for the transfer row (Table 3)")
    source.add_argument(
        "--ckplus-root",
        type=Path,
        help="CK+ folder: pretrain on it first (into OUT/ckplus.pt) for the transfer row",
    )
    group = parser.add_argument_group("classifier inputs")
    group.add_argument(
        "--inputs",
        nargs="+",
        choices=INPUT_KINDS,
        metavar="KIND",
        help="run the input rows instead of the paper's six: each of these inputs (apex onset-apex flow) "
        "from scratch and from CK+-role pretraining on the same input (--ckplus-root: OUT/ckplus-KIND.pt), by "
        "LOSO with temperature calibration and, with --groups, leave-one-photo-out; table in OUT/inputs.md",
    )
    group.add_argument(
        "--groups",
        type=Path,
        metavar="FILE.json",
        help="with --inputs: subject → photo (synth's subject_photos.json) for the leave-one-photo-out runs",
    )
    group.add_argument(
        "--evaluations",
        nargs="+",
        choices=INPUT_EVALUATIONS,
        default=INPUT_EVALUATIONS,
        help="with --inputs: which runs to train (the others are only read when finished)",
    )
    group.add_argument(
        "--ckplus-epochs",
        type=int,
        metavar="N",
        help="with --inputs --ckplus-root: epochs of each CK+-role pretraining (default: --epochs)",
    )
    group.add_argument(
        "--loso-rows",
        choices=("all", "best"),
        default="all",
        help="with --inputs: train the leave-one-subject-out run of every row (default), or only of the row "
        "best by leave-one-photo-out (keeps `make weights` within its CPU budget; the others are read if finished)",
    )
    group.add_argument(
        "--fit-best",
        type=Path,
        metavar="CHECKPOINT.pt",
        help="with --inputs: then train the best row's configuration (by leave-one-photo-out UF1) on every "
        "subject and write it here, carrying its LOSO and leave-one-photo-out figures and calibration",
    )
    group.add_argument(
        "--no-train",
        dest="train",
        action="store_false",
        help="with --inputs: train nothing; tabulate the finished runs",
    )
    _add_training_arguments(parser)


def run_ablation_command(args: argparse.Namespace) -> int:
    from training.ablation import run_ablation

    if args.inputs:
        return _run_input_ablation(args)
    index = _read(args)
    crop_set, settings = _crops(args, index)
    pretrained = args.pretrained
    if args.ckplus_root is not None:
        pretrained = _pretrain_for_ablation(args)
    rows = run_ablation(
        crop_set,
        _train_config(args),
        args.out,
        pretrained=pretrained,
        imagenet=args.imagenet,
        alignment=settings.to_dict(),
        progress=args.progress,
    )
    print(f"{len(rows)} rows -> {args.out / 'ablation.md'}")
    return 0


def _run_input_ablation(args: argparse.Namespace) -> int:
    from training.ablation import best_input_row, run_input_ablation
    from training.pretrain import pretrain

    index = _read(args)
    groups = read_groups(args.groups, index.subjects) if args.groups is not None else None
    data, pretrained, settings = {}, {}, None
    for kind in args.inputs:
        kind_args = argparse.Namespace(**{**vars(args), "input_kind": kind})
        data[kind], settings = _crops(kind_args, index)
        weights = args.out / f"ckplus-{kind}.pt" if args.ckplus_root is not None else args.pretrained
        if args.ckplus_root is not None and not weights.is_file() and args.train:
            ck_args = argparse.Namespace(
                **{**vars(kind_args), "dataset": "ckplus", "root": args.ckplus_root, "coding": None, "protocol": None}
            )
            ck_crops, ck_settings = _crops(ck_args, _read(ck_args))
            ck_config = _train_config(kind_args)
            if args.ckplus_epochs is not None:
                ck_config = dataclasses.replace(ck_config, epochs=args.ckplus_epochs)
            pretrain(
                ck_crops,
                ck_config,
                split="subject",
                test_fraction=0.2,
                out=weights,
                alignment=ck_settings.to_dict(),
                progress=args.progress,
            )
        pretrained[kind] = weights if weights is not None and weights.is_file() else None

    def tabulate(loso_rows):
        return run_input_ablation(
            data,
            _train_config(args),
            args.out,
            pretrained,
            groups,
            args.progress,
            alignment=settings.to_dict() if settings else None,
            train=args.train,
            evaluations=tuple(args.evaluations),
            loso_rows=loso_rows,
        )

    rows = tabulate(None if args.loso_rows == "all" else ())
    best = best_input_row(rows)
    if best is not None and args.loso_rows == "best":
        rows = tabulate({best["name"]})
        best = next(r for r in rows if r["name"] == best["name"])
    if best is not None:
        print(f"best by leave-one-photo-out UF1: {best['name']} ({best['by_photo']['uf1']:.3f})")
    print(f"{len(rows)} rows -> {args.out / 'inputs.md'}")
    if args.fit_best is not None:
        if best is None:
            raise UserInputError("--fit-best: no row has a finished leave-one-photo-out run to choose by")
        _fit_input_row(args, best, data[best["input"]], pretrained, settings)
    return 0


def _fit_input_row(args: argparse.Namespace, best: dict, crop_set, pretrained: dict, settings) -> None:
    """Train the chosen row on every subject (``--fit-best``), with its measured figures."""
    from training.ablation import InputRow, input_row_configs
    from training.loso import combined_evaluation
    from training.pretrain import pretrain

    row = InputRow(best["input"], best["transfer"] == "CK+")
    config = input_row_configs(_train_config(args), row)["by_photo"]
    runs = [Path(best[e]["run_dir"]) for e in ("loso", "by_photo") if best[e]["status"] == "done"]
    evaluation = combined_evaluation(runs, config.to_dict(), crop_set.dataset, crop_set.protocol)
    result = pretrain(
        crop_set,
        config,
        split="random",
        test_fraction=0.0,
        out=args.fit_best,
        alignment=settings.to_dict(),
        pretrained=pretrained.get(row.input_kind) if row.transfer else None,
        progress=args.progress,
        evaluation=evaluation,
    )
    print(f"fitted {row.name} on every subject -> {args.fit_best}: {json.dumps(result.get('train', {}))[:200]}")


def _pretrain_for_ablation(args: argparse.Namespace) -> Path:
    from training.pretrain import pretrain

    out = args.out / "ckplus.pt"
    if out.is_file():
        return out
    ck_args = argparse.Namespace(**{**vars(args), "dataset": "ckplus", "root": args.ckplus_root, "coding": None})
    ck_args.protocol = None
    index = _read(ck_args)
    crop_set, settings = _crops(ck_args, index)
    pretrain(
        crop_set,
        _train_config(args),
        split="random",
        test_fraction=0.2,
        out=out,
        alignment=settings.to_dict(),
        imagenet=args.imagenet,
        progress=args.progress,
    )
    return out


# --- entry point -----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="python -m training",
        description="Train and evaluate the apex-frame micro-expression classifier (Xu, Zheng, Yang 2021): "
        "read CASME II / CK+ / SAMM from their published layouts, pretrain on CK+, run leave-one-subject-out "
        "on CASME II, reproduce the paper's ablation, or generate data in those layouts.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, configure, run, help_text in _COMMANDS:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        configure(sub)
        sub.set_defaults(run=run)
    return parser


def configure_spotter(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Makes realistic, nuisance-only and lab clips of the training photos (never the benchmark's held-out\n"
        "faces), runs each through the face stage and the learned spotter's feature code, trains a small MLP\n"
        "(rest / micro / blink), chooses its threshold by leave-one-photo-out and writes the model with that\n"
        "table inside. Use it with: python stream.py --spotter learned [--spotter-model FILE].\n"
        "example: python -m training spotter --out weights/spotter.npz --workers 2"
    )
    defaults = _spot_defaults()
    parser.add_argument("--out", type=Path, default=Path("weights/spotter.npz"), help="the model file to write")
    add_clip_set_arguments(parser)
    parser.add_argument(
        "--seconds",
        type=float,
        default=defaults.seconds,
        help=f"length of each clip in seconds (default {defaults.seconds:g})",
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help=f"per MLP (default {defaults.epochs})")
    parser.add_argument(
        "--members", type=int, default=defaults.members, help="MLPs averaged, each from its own seed (default 5)"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--max-false-per-minute",
        type=float,
        default=defaults.max_false_per_minute,
        help="when choosing the threshold: the most false alarms a minute, on realistic and on nuisance-only "
        f"clips (default {defaults.max_false_per_minute:g})",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="set the model's threshold instead of choosing it on these clips (the table is still printed and "
        "its own choice kept in the file's facts); make spotter-weights sets the one the development set chooses "
        "(benchmarks/spotting_replay_bench.py --members 5), whose clips are made as the benchmark makes its own",
    )
    parser.add_argument(
        "--photos", default="training", help="training (default) or comma-separated names; held-out faces refused"
    )
    parser.add_argument("--workers", type=int, default=1, help="clips made at once (one process each)")
    parser.add_argument(
        "--cache",
        type=Path,
        help="keep each clip's collected features in this folder and reuse them next time (collecting is the "
        "slow part; the file names carry the plan and a digest of the features and of the code that makes them, so "
        "stale rows are never reused)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def _spot_defaults():
    from training.spotting import SpotTrainingSettings

    return SpotTrainingSettings()


def add_clip_set_arguments(parser: argparse.ArgumentParser, note: str = "") -> None:
    """The flags that say which clips of the training photos the spotter learns from (``--clips``,
    ``--quiet-clips``, ``--lab-clips``, ``--lab-fps``; :func:`clip_set_settings` reads them back). The trainer has
    them, and so does ``benchmarks/spotting_replay_bench.py``, which trains as the trainer would; ``note`` is added
    to each help line there."""
    defaults = _spot_defaults()
    for flag, field, what in (
        ("--clips", "realistic_clips", "realistic clips with micro-expressions"),
        ("--quiet-clips", "quiet_clips", "nuisance-only clips"),
        ("--lab-clips", "lab_clips", "still-face (lab) clips at each of --lab-fps"),
    ):
        default = getattr(defaults, field)
        parser.add_argument(
            flag, type=int, default=default, dest=field, metavar="N", help=f"{what} (default {default}){note}"
        )
    parser.add_argument(
        "--lab-fps",
        type=float,
        nargs="+",
        default=list(defaults.lab_fps),
        metavar="FPS",
        help=f"frame rates of the lab clips (default 30; 30 60 also teaches the model a 60 fps camera){note}",
    )


def clip_set_settings(args: argparse.Namespace) -> dict:
    """The :class:`training.spotting.SpotTrainingSettings` fields of :func:`add_clip_set_arguments`' flags."""
    return {
        "realistic_clips": args.realistic_clips,
        "quiet_clips": args.quiet_clips,
        "lab_clips": args.lab_clips,
        "lab_fps": tuple(args.lab_fps),
    }


def run_spotter(args: argparse.Namespace) -> int:
    from training.spotting import SpotTrainingSettings, train_spotter
    from training.synth.realistic import resolve_photos

    if args.workers < 1:
        raise UserInputError(f"--workers must be at least 1, got {args.workers}")
    settings = SpotTrainingSettings(
        **clip_set_settings(args),
        seconds=args.seconds,
        seed=args.seed,
        epochs=args.epochs,
        members=args.members,
        max_false_per_minute=args.max_false_per_minute,
        threshold=args.threshold,
    )
    model, table = train_spotter(settings, resolve_photos(args.photos), args.workers, args.progress, args.cache)
    print(
        "leave-one-photo-out (training photos): threshold, then P/R/F1 (its 95 % interval over the clips), "
        "false alarms a minute and hits reported over 100 ms after their true offset per set"
    )
    for row in table:
        cells = [
            f"{name} P {v['precision']:.2f} R {v['recall']:.2f} F1 {v['f1']:.2f}"
            + (f" ({v['f1_ci95'][0]:.2f}-{v['f1_ci95'][1]:.2f})" if v.get("f1_ci95") else "")
            + f" FA/min {v['false_per_minute']}"
            + (f" late {v['late_hits']} of {v['hits']}" if v["true"] else "")
            for name, v in row.items()
            if name != "threshold"
        ]
        mark = ""
        if row["threshold"] == model.facts["threshold_by_the_rule_on_these_clips"]:
            mark = " <- chosen" if args.threshold is None else " <- the rule's choice"
        print(f"  {row['threshold']:.2f}  " + " | ".join(cells) + mark)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    how = "set by --threshold" if args.threshold is not None else "chosen"
    print(f"spotting model -> {args.out} (threshold {model.threshold:.2f}, {how})")
    return 0


def _configure_synth(parser: argparse.ArgumentParser) -> None:
    from training.synth.cli import configure_parser

    configure_parser(parser)


def _run_synth(args: argparse.Namespace) -> int:
    from training.synth.cli import main as synth_main

    return synth_main(args)


_COMMANDS = [
    (
        "summary",
        configure_summary,
        run_summary,
        "print JSON: samples, subjects, per-class and per-subject counts, every skipped or repaired sample",
    ),
    (
        "pretrain",
        configure_pretrain,
        run_pretrain,
        "train on a whole data set split 8:2 (the paper's CK+ step)",
    ),
    ("loso", configure_loso, run_loso_command, "leave-one-subject-out training and evaluation, with reports"),
    (
        "fit",
        configure_fit,
        run_fit,
        "train the deployable model on every subject, after LOSO has measured the configuration",
    ),
    ("ablation", configure_ablation, run_ablation_command, "the paper's Tables 1-3 as LOSO runs, one table"),
    (
        "spotter",
        configure_spotter,
        run_spotter,
        "train the learned spotter's decision on generated clips of the training photos",
    ),
    (
        "synth",
        _configure_synth,
        _run_synth,
        "generate micro-expression data in CASME II / CK+ / SAMM layouts",
    ),
]


def _run_command(args: argparse.Namespace) -> int:
    if getattr(args, "threads", None) is not None:
        if args.threads < 1:
            raise UserInputError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    return int(args.run(args) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run_reporting_errors(lambda: _run_command(args))
    except KeyboardInterrupt:
        print(
            "interrupted: finished work is kept on disk; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
