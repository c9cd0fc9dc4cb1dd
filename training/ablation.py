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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.engine import TrainConfig
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
