"""Ed-Fi JSON files in lightbeam's layout, found on any fsspec storage and read line by line.

People arrive with a folder that earthmover (or another system) wrote for
lightbeam: ``{resource}.jsonl`` (or ``.ndjson`` / ``.json``) per resource, or a
``{resource}/`` folder of such files, optionally under namespace folders
(``ed-fi/``, ``tpdm/``, ...). File names are matched case-insensitively against
the target's model, so ``StudentSchoolAssociations.jsonl`` works as lightbeam's
case variants do. Files are streamed one line at a time -- a district's
attendance file does not fit in memory twice -- and every record keeps its
origin (file and line), because a person fixes a file, not a record id. A line
that is not JSON is reported as such, never raised: one bad line must not hide
the problems of the other 100,000.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import fsspec
import orjson
from fsspec.core import url_to_fs

from edfi.model import ApiModel, Resource

EXTENSIONS = (".jsonl", ".ndjson", ".json")
COMPRESSIONS = ("", ".gz")


class InputError(ValueError):
    """The input folder cannot be read as Ed-Fi JSON files."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record came from: a file and its 1-based line number."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Item:
    """One line of an input file: a record, or the reason it is not one.

    ``raw`` is the line as read (without its newline), kept so that a rejected
    record can be written back exactly as the person sent it.
    """

    origin: Origin
    raw: bytes
    record: dict[str, Any] | None
    error: str | None = None


class Records(Protocol):
    """What validation and sending read: an input folder, or a run's rejects read back."""

    def resources(self) -> list[str]: ...

    def items(self, resource: str) -> Iterator[Item]: ...


@dataclass
class InputSet:
    """What a folder holds: the files of each resource, and the files matching none."""

    root: str
    fs: fsspec.AbstractFileSystem
    files: dict[str, list[str]] = field(default_factory=dict)  # resource path -> file paths
    ignored: list[str] = field(default_factory=list)

    def resources(self) -> list[str]:
        return sorted(self.files)

    def items(self, resource: str) -> Iterator[Item]:
        """Every line of every file of ``resource``, in file order."""
        for path in self.files.get(resource, ()):
            yield from read_lines(self.fs, path)

    def display(self, path: str) -> str:
        """A file as a person names it: a local path, or the full URL on remote storage."""
        return self.fs.unstrip_protocol(path) if _remote(self.fs) else path


def _remote(fs: fsspec.AbstractFileSystem) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol not in ("file", "local")


def _stem(name: str) -> str | None:
    """``students`` for ``students.jsonl`` / ``Students.ndjson.gz``; None for other files."""
    lower = name.lower()
    for comp in COMPRESSIONS:
        for ext in EXTENSIONS:
            suffix = ext + comp
            if lower.endswith(suffix):
                return name[: -len(suffix)]
    return None


class _Names:
    """Resource lookup by file name: case-insensitive, namespace first, then unique anywhere."""

    def __init__(self, model: ApiModel, namespace: str, overrides: Mapping[str, Iterable[str]]):
        self.by_ns: dict[str, dict[str, Resource]] = {}
        anywhere: dict[str, list[Resource]] = {}
        for r in model:
            self.by_ns.setdefault(r.namespace, {})[r.name.lower()] = r
            anywhere.setdefault(r.name.lower(), []).append(r)
        self.anywhere = {k: v[0] for k, v in anywhere.items() if len(v) == 1}
        self.namespace = namespace
        self.overrides = {
            name.lower(): ns for ns, names in overrides.items() for name in names or ()
        }

    def namespaces(self) -> set[str]:
        return set(self.by_ns)

    def resolve(self, name: str, namespace: str | None) -> Resource | None:
        lower = name.lower()
        if namespace is not None:
            return self.by_ns.get(namespace, {}).get(lower)
        ns = self.overrides.get(lower, self.namespace)
        found = self.by_ns.get(ns, {}).get(lower)
        return found if found is not None else self.anywhere.get(lower)


def discover(
    url: str,
    model: ApiModel,
    *,
    namespace: str = "ed-fi",
    namespace_overrides: Mapping[str, Iterable[str]] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> InputSet:
    """Find every resource's files under ``url`` (``./out``, ``s3://bucket/run/42`` ...).

    Raises ``InputError`` when the folder does not exist or holds no file of
    any resource, naming what it looked for.
    """
    fs, root = url_to_fs(url, **dict(storage_options or {}))
    root = root.rstrip("/") or "/"
    if not fs.isdir(root):
        raise InputError(
            f"The input folder {url!r} does not exist or is not a folder; point it at the "
            "folder that holds the {resource}.jsonl files."
        )
    names = _Names(model, namespace, namespace_overrides or {})
    found = InputSet(root=url, fs=fs)
    _scan(fs, root, names, None, found, depth=0)
    for paths in found.files.values():
        paths.sort()
    if not found.files:
        raise InputError(
            f"{url!r} holds no Ed-Fi JSON files: expected {{resource}}.jsonl, .ndjson or .json "
            "(or a {resource}/ folder of them) named after resources of the target, such as "
            "students.jsonl."
        )
    return found


def _scan(
    fs: fsspec.AbstractFileSystem,
    folder: str,
    names: _Names,
    namespace: str | None,
    out: InputSet,
    depth: int,
) -> None:
    for entry in sorted(fs.ls(folder, detail=True), key=lambda e: str(e["name"])):
        path = str(entry["name"]).rstrip("/")
        base = path.rsplit("/", 1)[-1]
        if base.startswith("."):
            continue
        if entry["type"] == "directory":
            resource = names.resolve(base, namespace)
            if resource is not None:
                files = [
                    str(e["name"])
                    for e in fs.ls(path, detail=True)
                    if e["type"] != "directory" and _stem(str(e["name"]).rsplit("/", 1)[-1])
                ]
                if files:
                    out.files.setdefault(resource.path, []).extend(files)
            elif depth == 0 and base in names.namespaces():
                _scan(fs, path, names, base, out, depth + 1)
            continue
        stem = _stem(base)
        if stem is None:
            continue
        resource = names.resolve(stem, namespace)
        if resource is None:
            out.ignored.append(path)
        else:
            out.files.setdefault(resource.path, []).append(path)


def parse_line(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """A record, or why the line is not one (in JSON parser words, without Python's)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} (column {exc.colno})"
    if not isinstance(value, dict):
        return None, f"a record must be a JSON object, not {type(value).__name__}"
    return value, None


def read_lines(
    fs: fsspec.AbstractFileSystem, path: str, *, display: str | None = None
) -> Iterator[Item]:
    """The lines of one file (gzip by extension), blank lines skipped, each with its origin."""
    name = display or (fs.unstrip_protocol(path) if _remote(fs) else path)
    compression = "gzip" if path.lower().endswith(".gz") else None
    with fs.open(path, "rb", compression=compression) as fh:
        for number, line in enumerate(fh, start=1):
            raw = line.rstrip(b"\r\n")
            if raw.startswith(b"\xef\xbb\xbf") and number == 1:
                raw = raw[3:]
            if not raw.strip():
                continue
            record, error = parse_line(raw)
            yield Item(Origin(name, number), raw, record, error)
