"""Earthmover bundles as their authors wrote them: metadata, checks before a run, the run.

A bundle is a folder: ``earthmover.yaml`` (sources, transformations, destinations),
CSV seeds, ``.jsont`` templates, ``lightbeam.yaml`` and metadata in one of two
forms, ``_metadata.yaml`` (current: ``input_files`` as a list with ``env_var``
and ``is_required``) or ``bundle_metadata.{yaml,json}`` (older: ``input_files`` by
variable with ``optional`` and ``required_fields``, ``params.required``). This
module reads either, says before a run everything that would make earthmover
fail late (a missing parameter, a missing input file, an input file without a
required column), and runs earthmover itself (``deps`` when the bundle uses
packages, then ``run``) in a subprocess, surfacing its own error message.
Nothing here re-implements earthmover.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import yaml

from .errors import EdFiError

SET_BY_THE_FLOW = ("OUTPUT_DIR", "STATE_FILE")
"""Parameters the flow gives every run (outputs go to its run folder; it keeps state)."""

_PARAM = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class BundleError(EdFiError):
    """A bundle that cannot run: bad metadata, missing inputs, or earthmover's own error."""


@dataclass(frozen=True, slots=True)
class InputFile:
    """One input file a bundle reads, named by the parameter that points at it."""

    param: str
    required: bool = True
    required_fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Bundle:
    """A bundle folder and what its metadata and ``earthmover.yaml`` declare."""

    path: Path
    name: str
    config_file: str = "earthmover.yaml"
    input_files: tuple[InputFile, ...] = ()
    required_params: tuple[str, ...] = ()
    defaults: Mapping[str, str] = field(default_factory=dict)
    student_id_columns: tuple[str, ...] = ()
    uses_packages: bool = False


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def _load_metadata(path: Path) -> tuple[dict[str, Any], str]:
    """The first metadata file that parses; a broken one is skipped when another form
    parses (the template bundle ships an invalid YAML beside a valid JSON)."""
    broken: list[str] = []
    for name in ("_metadata.yaml", "bundle_metadata.yaml", "bundle_metadata.json"):
        file = path / name
        if not file.exists():
            continue
        text = file.read_text("utf-8")
        try:
            data = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            broken.append(f"{name} is not valid: {' '.join(str(exc).split())}")
            continue
        if isinstance(data, dict):
            return data, name
        broken.append(f"{name} does not hold a mapping")
    if broken:
        raise BundleError(f"The bundle at {path} has no readable metadata: {'; '.join(broken)}.")
    return {}, ""


def _input_files(metadata: Mapping[str, Any]) -> tuple[InputFile, ...]:
    declared = metadata.get("input_files") or []
    if isinstance(declared, list):  # _metadata.yaml
        return tuple(
            InputFile(str(f["env_var"]), required=_truthy(f.get("is_required", True)))
            for f in declared
            if isinstance(f, Mapping) and f.get("env_var")
        )
    if isinstance(declared, Mapping):  # bundle_metadata.{yaml,json}
        return tuple(
            InputFile(
                str(param),
                required=not _truthy((spec or {}).get("optional", False)),
                required_fields=tuple(str(c) for c in (spec or {}).get("required_fields", [])),
            )
            for param, spec in declared.items()
        )
    return ()


def open_bundle(path: str | Path) -> Bundle:
    """Read a bundle folder on local disk (a remote bundle is copied here first)."""
    folder = Path(path)
    if not folder.is_dir():
        raise BundleError(f"No bundle folder at {folder}.")
    metadata, _ = _load_metadata(folder)
    config_file = str(metadata.get("earthmover_config_file") or "earthmover.yaml")
    config_path = folder / config_file
    if not config_path.exists():
        raise BundleError(f"The bundle at {folder} has no {config_file}.")
    text = config_path.read_text("utf-8")
    config = _config_header(text)
    defaults = {str(k): str(v) for k, v in (config.get("parameter_defaults") or {}).items()}
    used = set(_PARAM.findall(text))
    params = metadata.get("params") or {}
    required = set(params.get("required", [])) if isinstance(params, Mapping) else set()
    if isinstance(params, Mapping) and "required" not in params:  # the JSON form
        required |= {
            str(k)
            for k, v in params.items()
            if isinstance(v, Mapping) and str(v.get("optional", "")).lower() == "false"
        }
    required |= {p for p in used if p not in defaults}
    inputs = _input_files(metadata)
    required |= {f.param for f in inputs if f.required}
    candidates = defaults.get("POSSIBLE_STUDENT_ID_COLUMNS", "")
    student_ids = [c.strip() for c in candidates.split(",") if c.strip()] or [
        str(c) for c in metadata.get("student_id_names", [])
    ]
    return Bundle(
        path=folder,
        name=str(metadata.get("display_name") or folder.name),
        config_file=config_file,
        input_files=inputs,
        required_params=tuple(sorted(required - set(SET_BY_THE_FLOW))),
        defaults=defaults,
        student_id_columns=tuple(student_ids),
        uses_packages=bool(re.search(r"^packages:", text, re.MULTILINE)),
    )


def _config_header(text: str) -> dict[str, Any]:
    """The ``config:`` block of an earthmover.yaml (the rest may hold Jinja, not YAML)."""
    match = re.search(r"^config:\n((?:[ \t]+.*\n|\s*\n)+)", text, re.MULTILINE)
    if not match:
        return {}
    try:
        loaded = yaml.safe_load("config:\n" + match.group(1))
    except yaml.YAMLError:
        return {}
    return dict((loaded or {}).get("config") or {})


def header_of(url: str, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """The column names of a CSV file (BOM dropped), read from any fsspec storage."""
    with fsspec.open(url, "rb", **(storage_options or {})) as fh:
        first = fh.readline()
    text = first.decode("utf-8-sig").strip("\r\n")
    return next(csv.reader(io.StringIO(text)), [])


def problems(
    bundle: Bundle,
    params: Mapping[str, str],
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Everything that would make the run fail, each a sentence naming the thing and the fix."""
    found: list[str] = []
    missing = [p for p in bundle.required_params if not str(params.get(p, "")).strip()]
    if missing:
        found.append(
            f"The bundle {bundle.name!r} needs the parameter(s) {', '.join(missing)}; "
            "give them in the flow's parameters."
        )
    for spec in bundle.input_files:
        url = str(params.get(spec.param, "")).strip()
        if not url:
            continue  # already reported above when required
        fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
        if not fs.exists(path):
            found.append(f"The input file {spec.param}={url} does not exist.")
            continue
        if spec.required_fields:
            header = header_of(url, storage_options)
            absent = [c for c in spec.required_fields if c not in header]
            if absent:
                found.append(
                    f"The input file {spec.param}={url} lacks the column(s) "
                    f"{', '.join(absent)} that the bundle requires (it has {_some(header)})."
                )
    return found


def _some(names: Sequence[str], shown: int = 12) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def fetch_bundle(url: str, workdir: Path, storage_options: Mapping[str, Any] | None = None) -> Path:
    """A working copy of the bundle folder (local or any fsspec storage): earthmover
    writes beside the bundle (packages, state), and the original may be read-only."""
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    if not fs.isdir(root):
        raise BundleError(f"No bundle folder at {url}.")
    target = workdir / "bundle"
    fs.get(root.rstrip("/") + "/", str(target), recursive=True)
    return target


@dataclass(frozen=True, slots=True)
class EarthmoverRun:
    """Where a run's outputs went: one JSONL file per destination."""

    output_dir: Path
    files: dict[str, Path]
    results: dict[str, Any]


def _earthmover() -> list[str]:
    return [sys.executable, "-m", "earthmover"]


def _last_error(output: str) -> str:
    errors = [line for line in output.splitlines() if " ERROR " in line or "Error" in line]
    text = errors[-1] if errors else output.strip().splitlines()[-1:] and output.strip()[-500:]
    return re.sub(r"^\S+ \S+ earthmover ERROR\s*", "", str(text)).strip()


def run_earthmover(
    bundle: Bundle,
    params: Mapping[str, str],
    output_dir: Path,
    *,
    timeout: float = 3600,
) -> EarthmoverRun:
    """``earthmover deps`` (when the bundle has packages) and ``earthmover run``, as the
    authors would, in the bundle's folder; the outputs land in ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    results_file = output_dir / "_earthmover_results.json"
    full = {**params, "OUTPUT_DIR": str(output_dir), "STATE_FILE": str(output_dir / "_runs.csv")}
    commands = [["deps"]] if bundle.uses_packages else []
    commands.append(["run", "--results-file", str(results_file)])
    for verb, *extra in commands:
        done = subprocess.run(
            [*_earthmover(), verb, "-c", bundle.config_file, "-p", json.dumps(full), *extra],
            cwd=bundle.path,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise BundleError(
                f"earthmover {verb} failed for the bundle {bundle.name!r}: "
                f"{_last_error(done.stdout + done.stderr)}"
            )
    files = {p.stem: p for p in sorted(output_dir.glob("*.jsonl"))}
    results = json.loads(results_file.read_text("utf-8")) if results_file.exists() else {}
    return EarthmoverRun(output_dir, files, results)


def count_lines(files: Mapping[str, Path]) -> dict[str, int]:
    """Records per output resource (one JSON object per line)."""
    out: dict[str, int] = {}
    for name, path in files.items():
        with path.open("rb") as fh:
            out[name] = sum(1 for line in fh if line.strip())
    return out
