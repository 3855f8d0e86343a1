"""One extractor CSV into typed rows, or one clear error naming file, line and column.

The whole file is checked before anything is staged, so a bad file changes
nothing. Files may start with a UTF-8 byte-order mark (Excel and some
extractors write one). Dates come in the formats the extractors and
spreadsheets produce (ISO with or without ``T``, zone or fraction; US
``m/d/Y`` with or without a time); a value with a zone is stored in UTC.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import fsspec

from .errors import LmsFileError
from .layout import LmsFile
from .udm import Column, Resource

_US_FORMATS = (
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y",
)


@dataclass(slots=True)
class ParsedFile:
    """A file's rows, typed and keyed by UDM column name, with what the exceptions file needs."""

    file: LmsFile
    header: list[str]
    raw: list[list[str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def source_systems(self) -> set[str]:
        return {r["SourceSystem"] for r in self.rows}


@lru_cache(maxsize=65536)
def parse_datetime(text: str) -> datetime | None:
    """A timestamp in any of the accepted formats, naive UTC; None when it is not one."""
    value = text.strip()
    parsed: datetime | None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
        for fmt in _US_FORMATS:
            try:
                parsed = datetime.strptime(value, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def parse_date(text: str) -> date | None:
    parsed = parse_datetime(text)
    return parsed.date() if parsed is not None else None


_INT = re.compile(r"^[+-]?\d+(\.0*)?$")


def parse_int(text: str) -> int | None:
    value = text.strip()
    if not _INT.match(value):
        return None
    return int(value.split(".", 1)[0])


def parse_list(text: str) -> list[str]:
    """``['online_text_entry', 'online_upload']`` (the extractors' repr of a list) or ``a, b``."""
    value = text.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    items = [v.strip().strip("'\"").strip() for v in value.split(",")]
    seen: dict[str, None] = {}
    for item in items:
        if item:
            seen.setdefault(item, None)
    return list(seen)


_PARSERS: dict[str, tuple[Callable[[str], Any], str]] = {
    "datetime": (parse_datetime, "is not a date and time (use YYYY-mm-dd HH:MM:SS)"),
    "date": (parse_date, "is not a date (use YYYY-mm-dd)"),
    "int": (parse_int, "is not a whole number"),
}


def _convert(col: Column, text: str, path: str, line: int) -> Any:
    if col.kind == "list":
        return parse_list(text)
    if text == "" or (col.kind != "str" and not text.strip()):
        if not col.nullable:
            raise LmsFileError(path, "a value is required", column=col.name, row=line)
        return None
    if col.kind == "str":
        if len(text) > col.length:
            if col.truncate:
                return text[: col.length]
            raise LmsFileError(
                path,
                f"value is {len(text)} characters long, more than the {col.length} allowed",
                column=col.name,
                row=line,
            )
        return text
    parse, problem = _PARSERS[col.kind]
    value = parse(text)
    if value is None:
        raise LmsFileError(path, f"{text!r} {problem}", column=col.name, row=line)
    return value


def read_text(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The file's text, without a UTF-8 byte-order mark."""
    data = fs.cat_file(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LmsFileError(path, f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def parse_text(file: LmsFile, text: str) -> ParsedFile:
    """Check and type every row of one file (raises on the first problem)."""
    resource: Resource = file.resource
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise LmsFileError(file.path, "the file is empty (a header row is required)")
    names = [h.strip() for h in header]
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    missing = [c.name for c in resource.columns if c.name not in index and not c.optional]
    if missing:
        raise LmsFileError(
            file.path,
            f"required column{'s' if len(missing) > 1 else ''} missing from the header: "
            f"{', '.join(missing)} (a {resource.name} file needs "
            f"{', '.join(c.name for c in resource.columns if not c.optional)})",
            column=missing[0],
        )
    wanted = [(c, index.get(c.name)) for c in resource.columns]
    parsed = ParsedFile(file=file, header=header)
    seen: dict[tuple[str, str], int] = {}
    width = len(header)
    try:
        for raw in reader:
            _row(parsed, resource, wanted, seen, width, raw, int(reader.line_num))
    except csv.Error as exc:
        raise LmsFileError(
            file.path, f"is not valid CSV ({exc})", row=int(reader.line_num)
        ) from exc
    return parsed


def _row(
    parsed: ParsedFile,
    resource: Resource,
    wanted: list[tuple[Column, int | None]],
    seen: dict[tuple[str, str], int],
    width: int,
    raw: list[str],
    line: int,
) -> None:
    path = parsed.file.path
    if not raw or (len(raw) == 1 and not raw[0].strip()):
        return
    if len(raw) < width:
        raw = raw + [""] * (width - len(raw))
    row: dict[str, Any] = {}
    for col, at in wanted:
        row[col.name] = _convert(col, raw[at] if at is not None else "", path, line)
    key = (row["SourceSystemIdentifier"], row["SourceSystem"])
    first = seen.setdefault(key, line)
    if first != line:
        raise LmsFileError(
            path,
            f"SourceSystemIdentifier {key[0]!r} of {key[1]!r} appears again "
            f"(first on line {first}); a snapshot holds each record once",
            column="SourceSystemIdentifier",
            row=line,
        )
    parsed.raw.append(raw)
    parsed.lines.append(line)
    parsed.rows.append(row)


def read_file(fs: fsspec.AbstractFileSystem, file: LmsFile) -> ParsedFile:
    """Read and check one extractor file."""
    return parse_text(file, read_text(fs, file.path))
