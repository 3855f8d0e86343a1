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
import pyarrow as pa
import yaml

from .crosswalk import XWALK_COLUMN, CrosswalkResult, KeptRates, crosswalk_file, slug
from .errors import EdFiError
from .lake import Lake

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


def dedupe_jsonl(data: bytes) -> tuple[bytes, int]:
    """Identical lines once (a bundle may emit one objective assessment per student row)."""
    seen: set[bytes] = set()
    kept: list[bytes] = []
    lines = [line for line in data.splitlines() if line.strip()]
    for line in lines:
        if line not in seen:
            seen.add(line)
            kept.append(line)
    return b"\n".join(kept) + (b"\n" if kept else b""), len(lines) - len(kept)


# -- one run of a bundle, on the lake -----------------------------------------------------
@dataclass(frozen=True, slots=True)
class Staged:
    """A bundle fetched into a working folder with its parameters, checked, not yet run."""

    label: str
    source: str
    spec: Bundle
    params: dict[str, str]
    workdir: Path
    problems: tuple[str, ...]


def stage(
    label: str,
    source: str,
    params: Mapping[str, Any],
    workdir: Path,
    storage_options: Mapping[str, Any] | None = None,
    input_options: Mapping[str, Any] | None = None,
) -> Staged:
    """Fetch the bundle into ``workdir`` and check its parameters and input files.

    Nothing is run or written to the lake, so a flow can stage every run, report every
    problem of every run at once, and only then start any of them. ``storage_options``
    open the bundle, ``input_options`` its input files.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    given = {k: str(v) for k, v in params.items()}
    try:
        spec = open_bundle(fetch_bundle(source, workdir, storage_options))
    except BundleError as exc:
        return Staged(label, source, Bundle(Path(source), source), given, workdir, (str(exc),))
    found = problems(spec, given, storage_options=input_options)
    return Staged(label, source, spec, given, workdir, tuple(found))


@dataclass(frozen=True, slots=True)
class CrosswalkOptions:
    """The crosswalk's settings for a run (the package's parameters, by other names)."""

    roster: pa.Table
    kept: KeptRates | None
    candidates: tuple[str, ...] = ()
    required: float = 0.5
    force: bool = False


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What one run made, and where on the lake it lies."""

    label: str
    bundle: str
    folder: str  # lake path of the run's folder
    output: str  # lake path of the JSONL folder (the send's input)
    counts: dict[str, int]
    duplicates: int
    crosswalk: CrosswalkResult | None
    unmatched_file: str | None

    @property
    def below_threshold(self) -> bool:
        return self.crosswalk is not None and self.crosswalk.chosen is None

    def summary(self, lake: Lake) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "bundle": self.bundle,
            "run_folder": lake.uri(self.folder),
            "earthmover": self.counts,
            "duplicates_collapsed": self.duplicates,
        }
        if self.crosswalk is not None:
            x = self.crosswalk
            out["crosswalk"] = {
                "chosen": x.chosen.as_row() if x.chosen else None,
                "rates": [r.as_row() for r in x.rates],
                "reused": x.reused,
                "matched_rows": x.matched,
                "unmatched_rows": x.unmatched,
                "unmatched_file": lake.uri(self.unmatched_file or ""),
            }
        return out

    def no_match_message(self, required: float) -> str:
        assert self.crosswalk is not None
        best = self.crosswalk.best()
        return (
            f"{self.label}: no student-ID column reaches the required match rate "
            f"{required:.0%}: the best is {best.source_column!r} as {best.edfi_column} at "
            f"{best.rate:.1%}; nothing student-level was sent."
        )


def execute(
    staged: Staged,
    lake: Lake,
    folder: str,
    crosswalk: CrosswalkOptions | None,
    storage_options: Mapping[str, Any] | None = None,
    *,
    timeout: float = 3600,
) -> RunOutcome:
    """Run a staged bundle: bring its inputs here, crosswalk ``INPUT_FILE``, run earthmover,
    and write everything to ``folder`` on the lake (``input_xwalked.csv``,
    ``unmatched.csv``, ``match_rates.json``, ``output/<resource>.jsonl`` with identical
    records collapsed, ``earthmover_results.json``)."""
    if staged.problems:
        raise BundleError(" ".join(staged.problems))
    spec, params, work = staged.spec, dict(staged.params), staged.workdir
    for item in spec.input_files:  # earthmover reads local files
        if params.get(item.param):
            local = work / "inputs" / f"{item.param}{Path(params[item.param]).suffix}"
            local.parent.mkdir(exist_ok=True)
            with fsspec.open(params[item.param], "rb", **(storage_options or {})) as src:
                local.write_bytes(src.read())
            params[item.param] = str(local)

    result: CrosswalkResult | None = None
    unmatched_file: str | None = None
    candidates = list(crosswalk.candidates or spec.student_id_columns) if crosswalk else []
    if crosswalk is not None and candidates and params.get("INPUT_FILE"):
        source = Path(params["INPUT_FILE"])
        result, xwalked, unmatched = crosswalk_file(
            source.read_bytes(),
            crosswalk.roster,
            candidates,
            required=crosswalk.required,
            kept=crosswalk.kept,
            force=crosswalk.force,
        )
        local = source.with_name(f"xwalked{source.suffix or '.csv'}")
        local.write_bytes(xwalked)
        unmatched_file = lake.within(folder, "unmatched.csv")
        lake.write_bytes(unmatched_file, unmatched)
        lake.write_bytes(lake.within(folder, "input_xwalked.csv"), xwalked)
        lake.write_json(lake.within(folder, "match_rates.json"), result.rows())
        params["INPUT_FILE"] = str(local)
        params["STUDENT_ID_NAME"] = XWALK_COLUMN

    made = run_earthmover(spec, params, work / "output", timeout=timeout)
    output = lake.within(folder, "output")
    duplicates = 0
    for name, path in made.files.items():
        data, dropped = dedupe_jsonl(path.read_bytes())
        duplicates += dropped
        lake.write_bytes(lake.within(output, f"{name}.jsonl"), data)
    lake.write_json(lake.within(folder, "earthmover_results.json"), made.results)
    return RunOutcome(
        label=staged.label,
        bundle=spec.name,
        folder=folder,
        output=output,
        counts=count_lines(made.files),
        duplicates=duplicates,
        crosswalk=result,
        unmatched_file=unmatched_file,
    )


def run_folder(run_id: str, index: int, label: str) -> str:
    """A run's folder, relative to the lake root: ``bundle/runs/<run id>/<n>-<label>``."""
    return f"bundle/runs/{run_id}/{index:02d}-{slug(label)[:60]}"
