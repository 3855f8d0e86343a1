"""``edfi-flows``: run a flow from the command line, before (or without) a Prefect server.

Each subcommand is one flow, and its options are generated from the flow's own
parameter schema (names, types, defaults and the descriptions of its
docstring), so the command line cannot drift from what a deployment takes.
Block parameters get two spellings: a saved block's name, or the plain values
a block would hold::

    edfi-flows extract --base-url https://api.example.org/v7.3/api --lake ./lake
    edfi-flows extract --connection district-api --lake district-lake

Credentials never go on the command line (it shows in ``ps`` and shell
history): with ``--base-url`` they come from ``EDFI_CLIENT_ID`` and
``EDFI_CLIENT_SECRET`` (for a parameter other than ``connection``, e.g.
publish's ``target``: ``EDFI_TARGET_CLIENT_ID`` and ``EDFI_TARGET_CLIENT_SECRET``).
A lake is a URL or folder (S3 credentials from the usual ``AWS_*`` variables)
or a saved block's name.

The flow runs in this process with Prefect's temporary local server, or
against the server that ``PREFECT_API_URL`` names. The command prints the
flow's summary table and exits 0 when the run completed, 1 when it failed, 2
for a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from edfi import errors
from edfi.vocabulary import ResourceStatus, RunStatus

# Importing ``flows`` set the temporary server's defaults; the CLI also keeps
# Prefect's own start-up and shutdown chatter off the terminal.
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")

FLOWS: dict[str, tuple[str, str]] = {
    "extract": ("flows.extract", "extract"),
    "gold": ("flows.gold", "gold"),
    "publish": ("flows.publish", "publish"),
    "send": ("flows.send", "send"),
    "bulk-load": ("flows.bulk_load", "bulk_load"),
    "bundle": ("flows.bundle", "bundle"),
    "lms": ("flows.lms", "lms"),
}
"""Subcommand -> (module, flow). A flow whose module is not there yet is left out."""

OK_RUNS = {s.value for s in RunStatus} - {RunStatus.FAILED, RunStatus.RUNNING}


class UsageError(Exception):
    """A command line that cannot become flow parameters."""


EXPLAINED: tuple[type[BaseException], ...] = tuple(
    obj
    for obj in vars(errors).values()
    if isinstance(obj, type) and issubclass(obj, Exception) and obj.__module__ == errors.__name__
)
"""The project's own errors: their message names the problem and the fix."""


class _MessageOnly(logging.Filter):
    """Drop the traceback Prefect logs with a failed run when the error is one of ours.

    The message already says what went wrong and what to do; a stack of engine
    frames under it only buries that on a terminal. Anything else keeps its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], EXPLAINED):
            record.exc_info = None
            record.exc_text = None
        return True


def available_flows() -> dict[str, Any]:
    """The flows of this install, by subcommand name."""
    found: dict[str, Any] = {}
    for command, (module, name) in FLOWS.items():
        try:
            found[command] = getattr(importlib.import_module(module), name)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return found


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table: numbers right-aligned, everything else left."""
    widths = {c: max([len(c), *(len(_cell(r.get(c))) for r in rows)]) for c in columns}
    out = ["  ".join(c.ljust(widths[c]) for c in columns)]
    out.append("  ".join("-" * widths[c] for c in columns))
    for r in rows:
        cells = []
        for c in columns:
            value = r.get(c)
            text = _cell(value)
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            cells.append(text.rjust(widths[c]) if numeric else text.ljust(widths[c]))
        out.append("  ".join(cells))
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


# -- options from a flow's parameter schema ---------------------------------------------


def _block_slug(spec: Mapping[str, Any], definitions: Mapping[str, Any]) -> str | None:
    for option in spec.get("anyOf", [spec]):
        ref = option.get("$ref", "")
        if ref.startswith("#/definitions/"):
            slug = definitions.get(ref.rsplit("/", 1)[1], {}).get("block_type_slug")
            if slug:
                return str(slug)
    return None


def _kinds(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [o for o in spec.get("anyOf", [spec]) if o.get("type") not in (None, "null")]


def _help(spec: Mapping[str, Any]) -> str:
    text = " ".join(str(spec.get("description", "")).replace("``", "`").split())
    default = spec.get("default")
    if default not in (None, [], {}, ""):
        text += f" (default: {json.dumps(default)})"
    return text.replace("%", "%%")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_options(parser: argparse.ArgumentParser, flow_fn: Any) -> dict[str, str]:
    """Options for every parameter; returns parameter -> how it is given ("block:<slug>", …)."""
    schema = flow_fn.parameters.model_dump()
    definitions = schema.get("definitions", {})
    required = set(schema.get("required", []))
    how: dict[str, str] = {}
    for name, spec in sorted(schema["properties"].items(), key=lambda kv: kv[1]["position"]):
        slug = _block_slug(spec, definitions)
        if slug == "edfi-connection":
            url_flag = "--base-url" if name == "connection" else f"{_flag(name)}-url"
            env = "EDFI" if name == "connection" else f"EDFI_{name.upper()}"
            group = parser.add_argument_group(
                name,
                f"{_help(spec)} Give a saved block's name, or the API's URL with the "
                f"credentials in {env}_CLIENT_ID and {env}_CLIENT_SECRET.",
            )
            group.add_argument(_flag(name), dest=name, metavar="BLOCK")
            group.add_argument(url_flag, dest=f"{name}__url", metavar="URL")
            how[name] = f"connection:{env}"
            continue
        if slug == "edfi-lake-storage":
            parser.add_argument(
                _flag(name),
                dest=name,
                metavar="URL|BLOCK",
                required=name in required,
                help=f"{_help(spec)} A folder or storage URL (./lake, s3://bucket/prefix), "
                "or a saved block's name.",
            )
            how[name] = "lake"
            continue
        kinds = _kinds(spec)
        types = {k.get("type") for k in kinds}
        if types == {"boolean"}:
            parser.add_argument(
                _flag(name), dest=name, action=argparse.BooleanOptionalAction, help=_help(spec)
            )
            how[name] = "boolean"
        elif "array" in types:
            item = next(k for k in kinds if k.get("type") == "array").get("items", {})
            parser.add_argument(
                _flag(name),
                dest=name,
                action="append",
                metavar="VALUE[,VALUE]",
                help=_help(spec) + " Repeat the option or separate values with commas.",
            )
            how[name] = "list:" + str(item.get("type", "string"))
        elif "object" in types:
            parser.add_argument(_flag(name), dest=name, metavar="JSON", help=_help(spec))
            how[name] = "json"
        else:
            kind = str(next(iter(types), None) or "string")
            choices = next((k["enum"] for k in kinds if "enum" in k), None)
            parser.add_argument(
                _flag(name),
                dest=name,
                choices=choices,
                required=name in required,
                metavar=None if choices else kind.upper(),
                help=_help(spec),
            )
            how[name] = str(kind)
    return how


def _scalar(kind: str, text: str, name: str) -> Any:
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        raise UsageError(f"{_flag(name)} takes a {kind}, not {text!r}.") from None
    return text


def _connection(name: str, env: str, block: str | None, url: str | None) -> Any:
    if block and url:
        raise UsageError(f"Give either {_flag(name)} or its URL option, not both.")
    if block:
        return block
    if not url:
        return None
    from pydantic import SecretStr

    from blocks import EdFiConnection

    missing = [v for v in (f"{env}_CLIENT_ID", f"{env}_CLIENT_SECRET") if not os.environ.get(v)]
    if missing:
        raise UsageError(
            f"{' and '.join(missing)} must be set: the API's credentials come from the "
            "environment, never from the command line."
        )
    return EdFiConnection(
        base_url=url,
        client_id=os.environ[f"{env}_CLIENT_ID"],
        client_secret=SecretStr(os.environ[f"{env}_CLIENT_SECRET"]),
    )


def _lake(value: str) -> Any:
    if "/" in value or "\\" in value or value.startswith("."):
        from blocks import LakeStorage

        return LakeStorage(url=value)
    return value


def parameters(args: argparse.Namespace, how: Mapping[str, str]) -> dict[str, Any]:
    """The flow's keyword arguments from parsed options (unset options keep the flow's default)."""
    values = vars(args)
    params: dict[str, Any] = {}
    for name, kind in how.items():
        if kind.startswith("connection:"):
            value = _connection(name, kind.split(":", 1)[1], values[name], values[f"{name}__url"])
        else:
            value = values.get(name)
        if value is None:
            continue
        if kind.startswith("list:"):
            item_kind = kind.split(":", 1)[1]
            items = [part.strip() for chunk in value for part in chunk.split(",")]
            value = [_scalar(item_kind, part, name) for part in items if part]
        elif kind == "json":
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise UsageError(f"{_flag(name)} takes JSON: {exc}") from None
        elif kind == "lake":
            value = _lake(value)
        elif kind in ("integer", "number"):
            value = _scalar(kind, value, name)
        params[name] = value
    return params


def _missing_required(flow_fn: Any, params: Mapping[str, Any]) -> list[str]:
    signature = inspect.signature(flow_fn.fn)
    return [
        name
        for name, p in signature.parameters.items()
        if p.default is inspect.Parameter.empty and name not in params
    ]


# -- running and reporting --------------------------------------------------------------


def _rows(summary: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The summary's per-unit rows: failures first, then the largest, descriptors last."""
    rows = summary.get("resources") or summary.get("views") or []
    if not rows:
        return [], []
    columns = [c for c in rows[0] if c not in ("errors", "message", "files")]
    size = next((c for c in ("records", "rows", "read", "written") if c in columns), None)

    def order(r: Mapping[str, Any]) -> tuple[int, int, float]:
        failed = str(r.get("status", "")) in (ResourceStatus.FAILED, ResourceStatus.BLOCKED)
        descriptor = str(r.get("resource", "")).endswith("Descriptors")
        return (0 if failed else 1, int(descriptor), -float(r.get(size) or 0) if size else 0.0)

    return sorted(rows, key=order), columns


def report(command: str, summary: Any, out: Any = sys.stdout) -> int:
    """Print the summary; the exit code its status means."""
    if not isinstance(summary, Mapping):
        print(summary, file=out)
        return 0
    rows, columns = _rows(summary)
    if rows:
        print(table(rows, columns), file=out)
    status = str(summary.get("status", "completed"))
    parts = [f"{command}: {status}"]
    for key in ("records", "rows", "requests"):
        if isinstance(summary.get(key), int):
            parts.append(f"{summary[key]:,} {key}")
    if isinstance(summary.get("seconds"), int | float):
        parts.append(f"{summary['seconds']:.1f} s")
    print(", ".join(parts), file=out)
    return 0 if status in OK_RUNS else 1


@contextmanager
def progress_bar(show: bool | None, title: str) -> Iterator[None]:
    """A terminal progress bar fed by the flow's progress (see ``flows.progress``).

    Shown when stderr is a terminal, or always with ``--progress``; a flow that
    reports no progress shows none.
    """
    if show is False or (show is None and not sys.stderr.isatty()):
        yield
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    from flows.progress import RunProgress, listening

    bars: dict[str, TaskID] = {}
    tty = sys.stderr.isatty()
    console = Console(
        stderr=True, force_terminal=True if show else None, width=None if tty else 120
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[records]:,} records"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
        console=console,
        transient=False,
    ) as bar:

        def update(run: RunProgress) -> None:
            if run.key not in bars:
                bars[run.key] = bar.add_task(title, total=run.total, records=0, last="")
            bar.update(bars[run.key], completed=run.done, records=run.records, last=run.last)

        with listening(update):
            yield


def run(flow_fn: Callable[..., Any], params: Mapping[str, Any]) -> Any:
    result = flow_fn(**params)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def build_parser(flows: Mapping[str, Any]) -> tuple[argparse.ArgumentParser, dict[str, Any]]:
    parser = argparse.ArgumentParser(
        prog="edfi-flows",
        description="Run an edfi-flows flow from the command line (Prefect's temporary local "
        "server, or the server PREFECT_API_URL names).",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="only warnings and errors from the flow's log"
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr (default: when stderr is a terminal)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="FLOW")
    how: dict[str, Any] = {}
    for command, flow_fn in flows.items():
        description = (inspect.getdoc(flow_fn.fn) or "").split("\n\n", 1)[0]
        p = sub.add_parser(command, help=description, description=description)
        how[command] = _add_options(p, flow_fn)
    return parser, how


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-q" in argv or "--quiet" in argv:  # before Prefect is imported and reads its settings
        os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    flows = available_flows()
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).addFilter(_MessageOnly())
    parser, how = build_parser(flows)
    args = parser.parse_args(argv)
    flow_fn = flows[args.command]
    try:
        params = parameters(args, how[args.command])
        missing = _missing_required(flow_fn, params)
        if missing:
            raise UsageError("missing " + ", ".join(_flag(m) for m in missing))
    except UsageError as exc:
        parser.error(f"{args.command}: {exc}")
    try:
        with progress_bar(args.progress, args.command):
            summary = run(flow_fn, params)
    except KeyboardInterrupt:
        print(f"edfi-flows {args.command}: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        print(f"edfi-flows {args.command} failed: {exc}", file=sys.stderr)
        sys.exit(1)
    sys.exit(report(args.command, summary))


if __name__ == "__main__":
    main()
