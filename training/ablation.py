"""The paper's ablation (Xu, Zheng, Yang 2021, Tables 1-3) as six LOSO runs and one table.

1. ResNet18 + cross-entropy              (Table 1)
2. ResNet18 + focal loss                 (Table 1)
3. ResNet18 + spatial attention + focal  (Table 2)
4. ResNet18 + channel attention + focal  (Table 2)
5. ResNet18 + dual attention + focal     (Table 2)
6. row 5 + CK+ transfer                  (Table 3, the paper's method)

Every row shares the base configuration except attention and loss (and row 6's starting weights); each
row is a :func:`training.loso.run_loso` run in ``out_dir/<name>/``, so an interrupted ablation resumes
where it stopped. Row 6 needs CK+ weights: without them it is reported as not run, never filled in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.config import TrainConfig
from training.loso import run_loso
from training.report import write_ablation_table, write_json_atomic

if TYPE_CHECKING:  # annotations only: importing preprocess pulls in the alignment stack (dlib)
    from training.preprocess import CropSet

NOT_RUN_WITHOUT_CKPLUS = "not run: pass --pretrained or --ckplus-root"


@dataclass(frozen=True)
class AblationRow:
    """One configuration of the ablation and what the paper reports for it (CASME II, 5 classes, LOSO)."""

    row: int
    name: str
    model: str
    attention: str
    loss: str
    transfer: bool
    paper_accuracy: float  # percent
    paper_f1: float | None  # only the final method's F1 is given in the paper


ROWS: tuple[AblationRow, ...] = (
    AblationRow(1, "1-resnet18-ce", "ResNet18", "none", "ce", False, 37.34, None),
    AblationRow(2, "2-resnet18-focal", "ResNet18", "none", "focal", False, 38.55, None),
    AblationRow(3, "3-spatial-focal", "ResNet18 + spatial attention", "spatial", "focal", False, 42.57, None),
    AblationRow(4, "4-channel-focal", "ResNet18 + channel attention", "channel", "focal", False, 40.96, None),
    AblationRow(5, "5-dual-focal", "ResNet18 + dual attention", "dual", "focal", False, 43.37, None),
    AblationRow(6, "6-dual-focal-ckplus", "ResNet18 + dual attention", "dual", "focal", True, 44.97, 0.3784),
)


def row_config(base: TrainConfig, row: AblationRow) -> TrainConfig:
    """``base`` with this row's attention and loss."""
    return dataclasses.replace(base, attention=row.attention, loss=row.loss)


def run_ablation(
    data: CropSet,
    base_config: TrainConfig,
    out_dir: Path,
    pretrained: Path | None,
    progress: bool = True,
    *,
    imagenet: Path | None = None,
    alignment: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Run the six rows (resumable) and write ``out_dir/ablation.md`` and ``out_dir/ablation.json``.

    ``imagenet`` weights, when given, start every row alike (so rows differ only in what the paper
    varies); ``pretrained`` (CK+) starts row 6 only. Returns one dict per row: the configuration, our
    accuracy / macro F1 / UF1 / UAR (None when not run), the paper's numbers and the row's status.
    """
    out_dir = Path(out_dir)
    results: list[dict[str, Any]] = []
    for row in ROWS:
        entry: dict[str, Any] = {
            "row": row.row,
            "name": row.name,
            "model": row.model,
            "attention": row.attention,
            "loss": "cross-entropy" if row.loss == "ce" else "focal",
            "transfer": "CK+" if row.transfer else "no",
            "paper_accuracy": row.paper_accuracy,
            "paper_f1": row.paper_f1,
            "accuracy": None,
            "f1_macro": None,
            "uf1": None,
            "uar": None,
            "run_dir": str(out_dir / row.name),
        }
        if row.transfer and pretrained is None:
            entry["status"] = NOT_RUN_WITHOUT_CKPLUS
            results.append(entry)
            continue
        report = run_loso(
            data,
            row_config(base_config, row),
            out_dir / row.name,
            pretrained=pretrained if row.transfer else None,
            progress=progress,
            imagenet=imagenet,
            alignment=alignment,
            overwrite=overwrite,
        )
        entry.update({key: report[key] for key in ("accuracy", "f1_macro", "uf1", "uar", "n_samples", "n_subjects")})
        entry["status"] = "done"
        results.append(entry)

    preamble = (
        f"# Ablation on {data.dataset or 'the data'} {data.protocol}".rstrip()
        + "\n\nLeave-one-subject-out, pooled over all folds. Ours: this project's runs (folders beside this "
        "file); paper: Xu, Zheng, Yang 2021, Tables 1-3 (CASME II, 5 classes). The paper gives F1 for its "
        "final method only. Macro F1 = UF1 here (per-class F1 from pooled counts, averaged over classes)."
    )
    write_ablation_table(results, out_dir / "ablation.md", preamble=preamble)
    write_json_atomic(out_dir / "ablation.json", {"base_config": base_config.to_dict(), "rows": results})
    return results


# --- the classifier-input rows (issue 11) ------------------------------------------------------------------------

INPUT_EVALUATIONS = ("loso", "by_photo")  # the two runs of each input row: by subject, by photo
CALIBRATION_VAL_SUBJECTS = 1  # inner validation subjects per LOSO fold for the temperature
INPUT_PAPER = {  # the paper's figures for its own input (apex), by CK+ transfer; CASME II, 5 classes, LOSO
    ("apex", False): (43.37, None),
    ("apex", True): (44.97, 0.3784),
}


@dataclass(frozen=True)
class InputRow:
    """One classifier input (:data:`realtime.core.motion.INPUT_KINDS`) with or without CK+-role pretraining."""

    input_kind: str
    transfer: bool

    @property
    def name(self) -> str:
        return f"{self.input_kind}-{'ckplus' if self.transfer else 'scratch'}"


def input_rows(kinds: tuple[str, ...]) -> tuple[InputRow, ...]:
    return tuple(InputRow(kind, transfer) for kind in kinds for transfer in (False, True))


def input_row_configs(base: TrainConfig, row: InputRow) -> dict[str, TrainConfig]:
    """The row's two runs: leave-one-subject-out with temperature calibration on one inner validation subject,
    and leave-one-photo-out (no calibration: holding a photo out of the few training photos costs too much)."""
    by_subject = dataclasses.replace(
        base, input_kind=row.input_kind, calibrate=True, val_subjects=CALIBRATION_VAL_SUBJECTS
    )
    return {"loso": by_subject, "by_photo": dataclasses.replace(base, input_kind=row.input_kind, calibrate=False)}


def _report_of_finished_folds(
    data: CropSet,
    config: TrainConfig,
    run_dir: Path,
    pretrained: Path | None,
    alignment: Mapping[str, Any] | None,
    evaluation: str,
) -> dict[str, Any] | None:
    """The report over the folds the run folder already holds (training nothing; the report says which folds
    are missing), or None when it holds none."""
    folds = {path.stem for path in (run_dir / "folds").glob("*.json")}
    finished = [s for s in sorted(set(data.subjects)) if s in folds]
    if not finished:
        return None
    return run_loso(
        data,
        config,
        run_dir,
        pretrained=pretrained,
        progress=False,
        subjects=finished,
        alignment=alignment,
        evaluation=evaluation,
    )


def run_input_ablation(
    data: Mapping[str, CropSet],
    base_config: TrainConfig,
    out_dir: Path,
    pretrained: Mapping[str, Path | None],
    groups: Mapping[str, str] | None,
    progress: bool = True,
    *,
    alignment: Mapping[str, Any] | None = None,
    train: bool = True,
    evaluations: tuple[str, ...] = INPUT_EVALUATIONS,
    loso_rows: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Every input kind in ``data`` (kind → its CropSet), from scratch and from ``pretrained[kind]`` (CK+),
    by leave-one-subject-out (``out_dir/<kind>-<init>/``) and, with ``groups`` (subject → photo), by
    leave-one-photo-out (``out_dir/<kind>-<init>-by-photo/``); resumable. With ``train`` off, only finished
    runs are read and the others are reported as not run; ``loso_rows`` (row names) limits which rows train
    their leave-one-subject-out run (None: all). Writes ``out_dir/inputs.md`` and ``inputs.json``."""
    out_dir = Path(out_dir)
    results: list[dict[str, Any]] = []
    for row in input_rows(tuple(data)):
        paper_accuracy, paper_f1 = INPUT_PAPER.get((row.input_kind, row.transfer), (None, None))
        entry: dict[str, Any] = {
            "name": row.name,
            "input": row.input_kind,
            "transfer": "CK+" if row.transfer else "no",
            "paper_accuracy": paper_accuracy,
            "paper_f1": paper_f1,
        }
        weights = pretrained.get(row.input_kind) if row.transfer else None
        for evaluation, config in input_row_configs(base_config, row).items():
            run_dir = out_dir / (row.name + ("-by-photo" if evaluation == "by_photo" else ""))
            report = None
            if row.transfer and weights is None:
                status = f"not run: no CK+-role checkpoint for {row.input_kind}"
            elif evaluation == "by_photo" and groups is None:
                status = "not run: no --groups (subject → photo)"
            elif evaluation not in evaluations and not train:
                status = "not run"
            else:
                crops = data[row.input_kind]
                if evaluation == "by_photo":
                    crops = dataclasses.replace(crops, subjects=tuple(groups[s] for s in crops.subjects))
                wanted = evaluation == "by_photo" or loso_rows is None or row.name in loso_rows
                evaluation_name = "leave-one-photo-out" if evaluation == "by_photo" else "leave-one-subject-out"
                if train and evaluation in evaluations and wanted:
                    report = run_loso(
                        crops,
                        config,
                        run_dir,
                        pretrained=weights,
                        progress=progress,
                        alignment=alignment,
                        evaluation=evaluation_name,
                    )
                else:
                    report = _report_of_finished_folds(crops, config, run_dir, weights, alignment, evaluation_name)
                if report is None:
                    status = "not run (no finished fold)"
                elif report.get("complete", True):
                    status = "done"
                else:
                    status = f"partial: {report['n_subjects']} of {len(set(crops.subjects))} folds"
            entry[evaluation] = {
                "status": status,
                "run_dir": str(run_dir),
                **{k: (report or {}).get(k) for k in ("accuracy", "uf1", "uar", "n_samples", "n_subjects")},
                "recall": {c["class"]: c["recall"] for c in (report or {}).get("per_class", [])},
                "calibration": {
                    k: ((report or {}).get("calibration") or {}).get(k)
                    for k in ("temperature", "ece_before", "ece_after")
                },
            }
        results.append(entry)
    preamble = (
        f"# Classifier inputs on {next(iter(data.values())).dataset} (generated data)\n\n"
        "Each input (realtime/core/motion.py) trained from scratch and from CK+-role pretraining on the same input "
        "kind. LOSO: leave-one-subject-out (subjects made from the same photo sit on both sides), with a "
        "softmax temperature fitted per fold on one inner validation subject (ECE before → after). "
        "By photo: leave-one-photo-out, a face never seen in training: the honest figure. Paper: Xu, Zheng, "
        "Yang 2021 on real CASME II (apex input only), for orientation, not comparison."
    )
    from training.report import write_text_atomic

    write_text_atomic(out_dir / "inputs.md", preamble + "\n\n" + format_input_table(results))
    write_json_atomic(out_dir / "inputs.json", {"base_config": base_config.to_dict(), "rows": results})
    return results


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def format_input_table(rows: list[dict[str, Any]]) -> str:
    """The input rows as one markdown table; a run that did not finish shows its status, never a number."""
    header = (
        "| input | CK+ transfer | LOSO acc % | LOSO UF1 | ECE before → after | by-photo acc % | by-photo UF1 "
        "| by-photo lowest class recall | paper acc % | paper F1 |"
    )
    lines = [header, "|" + "|".join(" --- " for _ in range(header.count("|") - 1)) + "|"]
    for row in rows:
        cells = [row["input"], row["transfer"]]
        for evaluation in INPUT_EVALUATIONS:
            run = row[evaluation]
            if run["status"] != "done" and not run["status"].startswith("partial"):
                cells += [run["status"], "—", "—"]
                continue
            partial = "" if run["status"] == "done" else f" ({run['status']})"
            cells += [_pct(run["accuracy"]) + partial, _num(run["uf1"])]
            if evaluation == "loso":
                calibration = run["calibration"]
                cells.append(f"{_num(calibration['ece_before'])} → {_num(calibration['ece_after'])}")
            else:
                worst = min(run["recall"].items(), key=lambda item: item[1]) if run["recall"] else None
                cells.append(f"{worst[0]} {worst[1]:.2f}" if worst else "—")
        paper_accuracy, paper_f1 = row["paper_accuracy"], row["paper_f1"]
        cells += ["—" if paper_accuracy is None else f"{paper_accuracy:.2f}", _num(paper_f1, 4)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def best_input_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row with the highest leave-one-photo-out UF1 (ties: accuracy), among finished ones (a partial run,
    over the folds it finished, when no run finished: the table says so)."""
    done = [r for r in rows if r["by_photo"]["status"] == "done" or r["by_photo"]["status"].startswith("partial")]
    return max(done, key=lambda r: (r["by_photo"]["uf1"], r["by_photo"]["accuracy"]), default=None)
