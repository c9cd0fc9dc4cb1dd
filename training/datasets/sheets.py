"""Coding sheets (.xlsx via openpyxl, or .csv) read into rows keyed by normalised column names.

Releases of CASME II and SAMM differ in column spelling (``OnsetFrame`` / ``Onset Frame``), carry extra
unnamed columns, and SAMM puts title rows above the header. So columns are found by NAME, never by
position: every header cell is normalised (lower case, letters and digits only) and the header row is the
first row, among the first :data:`HEADER_SEARCH_ROWS`, that holds every required column.
"""

from __future__ import annotations

import csv
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from realtime.core.errors import UserInputError

HEADER_SEARCH_ROWS = 40
SHEET_SUFFIXES = (".xlsx", ".xlsm", ".csv")


def normalise_column(name: object) -> str:
    """``'Estimated Emotion '`` → ``'estimatedemotion'``; ``'OnsetFrame'`` and ``'Onset Frame'`` agree."""
    if name is None:
        return ""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


@dataclass(frozen=True)
class SheetRow:
    """One data row: its 1-based row number in the sheet (for messages) and its cells by column name."""

    number: int
    values: Mapping[str, object]

    def get(self, column: str) -> object:
        """The cell of a column given by any spelling of its name (``None`` when absent or empty)."""
        return self.values.get(normalise_column(column))


@dataclass(frozen=True)
class SheetTable:
    """A coding sheet after header detection.

    ``columns`` are the header's cells as written (unnamed ones left out); ``header_row`` is 1-based.
    """

    path: Path
    worksheet: str | None
    header_row: int
    columns: tuple[str, ...]
    rows: tuple[SheetRow, ...]

    def where(self, row: SheetRow) -> str:
        """``'CASME2-coding.xlsx row 12'``: how messages name a row."""
        return f"{self.path} row {row.number}"


def _cell_is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _xlsx_worksheets(path: Path) -> Iterator[tuple[str, list[tuple[object, ...]]]]:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, InvalidFileException) as error:
        raise UserInputError(f"cannot read coding sheet {path}: {error}") from None
    try:
        sheets = [(ws.title, [tuple(r) for r in ws.iter_rows(values_only=True)]) for ws in workbook.worksheets]
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as error:
        raise UserInputError(f"cannot read coding sheet {path}: {error}") from None
    finally:
        workbook.close()
    yield from sheets


def _csv_rows(path: Path) -> list[tuple[object, ...]]:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise UserInputError(f"cannot read coding sheet {path}: {error.strerror or error}") from None
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    try:
        return [tuple(cells) for cells in csv.reader(text.splitlines(), dialect)]
    except csv.Error as error:
        raise UserInputError(f"cannot read coding sheet {path}: {error}") from None


def _worksheets(path: Path) -> Iterable[tuple[str | None, list[tuple[object, ...]]]]:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise UserInputError(f"coding sheet not found: {path}")
    if suffix == ".csv":
        return [(None, _csv_rows(path))]
    if suffix in (".xlsx", ".xlsm"):
        return list(_xlsx_worksheets(path))
    if suffix == ".xls":
        raise UserInputError(f"cannot read the old Excel format of {path}; save it as .xlsx or .csv")
    raise UserInputError(f"coding sheet {path} is neither .xlsx nor .csv")


def read_sheet(path: Path, required: Sequence[str], optional: Sequence[str] = ()) -> SheetTable:
    """Read a coding sheet and return the rows below its header, keyed by normalised column name.

    ``required`` are column names in any spelling; the header is the first row (of the first worksheet
    that has one) holding all of them. A missing column raises one :class:`UserInputError` naming the
    file, the missing columns and the columns that were found. Entirely blank rows are dropped; cells of
    unnamed columns are ignored. ``optional`` columns are only used to pick the best header candidate.
    """
    path = Path(path)
    wanted = {normalise_column(c): c for c in required}
    extra = {normalise_column(c) for c in optional}
    best: tuple[int, list[str], set[str]] | None = None  # (score, header cells, names)
    for title, rows in _worksheets(path):
        for index, cells in enumerate(rows[:HEADER_SEARCH_ROWS]):
            names = [normalise_column(c) for c in cells]
            present = set(names)
            if set(wanted) <= present:
                return _table(path, title, index, names, cells, rows)
            score = len(set(wanted) & present) * 2 + len(extra & present)
            if score and (best is None or score > best[0]):
                best = (score, [str(c).strip() for c in cells if not _cell_is_blank(c)], present)
    if best is None:
        raise UserInputError(
            f"coding sheet {path} has no header row with the columns {', '.join(required)} "
            f"(looked at the first {HEADER_SEARCH_ROWS} rows of every worksheet)"
        )
    missing = [original for name, original in wanted.items() if name not in best[2]]
    raise UserInputError(
        f"coding sheet {path} lacks required column(s) {', '.join(missing)}; found: {', '.join(best[1])}"
    )


def _table(
    path: Path,
    title: str | None,
    header_index: int,
    names: list[str],
    header_cells: tuple[object, ...],
    rows: list[tuple[object, ...]],
) -> SheetTable:
    positions: dict[str, int] = {}
    for position, name in enumerate(names):
        if name and name not in positions:  # unnamed columns are ignored; a repeated name keeps the first
            positions[name] = position
    data: list[SheetRow] = []
    for offset, cells in enumerate(rows[header_index + 1 :], start=header_index + 2):
        values = {
            name: (cells[pos] if not _cell_is_blank(cells[pos]) else None) if pos < len(cells) else None
            for name, pos in positions.items()
        }
        if all(v is None for v in values.values()):
            continue
        data.append(SheetRow(offset, values))
    columns = tuple(str(c).strip() for c in header_cells if not _cell_is_blank(c))
    return SheetTable(path, title, header_index + 1, columns, tuple(data))


def parse_int(value: object) -> int | None:
    """A whole number from a cell: ``46``, ``46.0``, ``' 46 '``, ``'046'`` → 46; ``'/'``, blank, text or a
    fractional number → ``None`` (the caller decides whether that is missing or wrong)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = str(value).strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def parse_frame(value: object) -> int | None:
    """A frame number from a cell, or ``None`` when it is missing: blank, ``/``, text or negative (``-1``)."""
    number = parse_int(value)
    return number if number is not None and number >= 0 else None


def cell_text(value: object) -> str:
    """A cell as text with outer spaces removed; whole floats lose their ``.0`` (Excel stores ``1`` so)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def find_coding_sheet(folders: Sequence[Path], pattern: str, what: str, given: Path | None = None) -> Path:
    """The coding sheet to use: ``given`` when set (it must exist), else the one file in the first of
    ``folders`` whose name matches the regex ``pattern`` (case-insensitive) and ends in .xlsx/.csv.

    None found, or several in the same folder, is a :class:`UserInputError` that lists what was searched
    or the candidates, and says to pass ``--coding``. Excel's lock files (``~$…``) are ignored.
    """
    if given is not None:
        given = Path(given).expanduser()
        if not given.is_file():
            raise UserInputError(f"{what} coding sheet not found: {given}")
        return given
    regex = re.compile(pattern, re.IGNORECASE)
    searched: list[str] = []
    for folder in dict.fromkeys(Path(f) for f in folders):
        if not folder.is_dir():
            continue
        searched.append(str(folder))
        candidates = sorted(
            p
            for p in folder.iterdir()
            if p.is_file()
            and p.suffix.lower() in SHEET_SUFFIXES
            and not p.name.startswith(("~$", "."))
            and regex.search(p.name)
        )
        if len(candidates) > 1:
            names = ", ".join(str(p) for p in candidates)
            raise UserInputError(f"several {what} coding sheets found ({names}); choose one with --coding")
        if candidates:
            return candidates[0]
    raise UserInputError(
        f"no {what} coding sheet (.xlsx or .csv) found in {' or '.join(searched) or 'the data folder'}; "
        "pass it with --coding"
    )
