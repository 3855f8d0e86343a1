"""Where the extractors put their CSVs, found on any fsspec storage.

```
users/<YYYY-mm-dd-HH-MM-SS>.csv          sections/<ts>.csv
section=<id>/section-associations/<ts>.csv
section=<id>/assignments/<ts>.csv        section=<id>/assignment=<id>/submissions/<ts>.csv
section=<id>/attendance-events/<ts>.csv  section=<id>/section-activities/<ts>.csv
section=<id>/grades/<ts>.csv             system-activities/date=<YYYY-mm-dd>/<ts>.csv
```

Folder names and keys match case-insensitively (the extractors and people
spell them ``Section=`` or ``Assignment=``); the key values keep their case,
since they are source-system identifiers. One listing of the whole tree finds
every file, which is one request on object stores. Anything else in the tree
(other folders, non-CSV files) is not an extractor file and is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import fsspec

from .udm import BY_NAME, RESOURCES, Resource

_ORDER = {r.name: i for i, r in enumerate(RESOURCES)}


@dataclass(frozen=True, slots=True)
class LmsFile:
    """One extractor file: what it holds, where, and the scope it is a full snapshot of."""

    resource: Resource
    path: str
    """The file's path on its filesystem (what ``ProcessedFiles.FullPath`` records)."""
    relative: str
    """The path below the layout's root, with ``/`` separators."""
    name: str
    """The file name; extractors name files by timestamp, so names sort in time order."""
    section: str | None = None
    assignment: str | None = None
    date: str | None = None

    @property
    def sort_key(self) -> tuple[int, str, str]:
        return (_ORDER[self.resource.name], self.name, self.relative)


def _key(part: str, key: str) -> str | None:
    """The value of a ``key=value`` folder name whose key matches case-insensitively."""
    name, sep, value = part.partition("=")
    if sep and name.strip().lower() == key and value:
        return value
    return None


def classify(relative: str) -> tuple[Resource, dict[str, str]] | None:
    """The resource and folder keys a relative path means, or None when it is not a UDM file."""
    parts = relative.split("/")
    if not parts[-1].lower().endswith(".csv"):
        return None
    folders = [p for p in parts[:-1]]
    low = [p.lower() for p in folders]
    if len(folders) == 1 and low[0] in ("users", "sections"):
        return BY_NAME[low[0]], {}
    if len(folders) == 2 and low[0] == "system-activities":
        day = _key(folders[1], "date")
        return (BY_NAME["system-activities"], {"date": day}) if day else None
    if len(folders) >= 2:
        section = _key(folders[0], "section")
        if section is None:
            return None
        if len(folders) == 2 and low[1] in (
            "section-associations",
            "assignments",
            "attendance-events",
            "section-activities",
            "grades",
        ):
            return BY_NAME[low[1]], {"section": section}
        if len(folders) == 3 and low[2] == "submissions":
            assignment = _key(folders[1], "assignment")
            if assignment:
                return BY_NAME["submissions"], {"section": section, "assignment": assignment}
    return None


def find_files(
    url: str, storage_options: dict[str, Any] | None = None
) -> tuple[fsspec.AbstractFileSystem, list[LmsFile]]:
    """Every extractor file under ``url``, in load order (dependency order, then time)."""
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    root = root.rstrip("/")
    if not fs.exists(root):
        raise FileNotFoundError(f"LMS extract folder not found: {url}")
    files: list[LmsFile] = []
    for path in fs.find(root):
        relative = path[len(root) :].lstrip("/") if path.startswith(root) else path
        found = classify(relative)
        if found is None:
            continue
        resource, keys = found
        files.append(
            LmsFile(
                resource=resource,
                path=path,
                relative=relative,
                name=relative.rsplit("/", 1)[-1],
                section=keys.get("section"),
                assignment=keys.get("assignment"),
                date=keys.get("date"),
            )
        )
    files.sort(key=lambda f: f.sort_key)
    return fs, files
