"""An existing ``lightbeam.yaml``, read so that it runs unchanged.

Districts already hold a lightbeam configuration next to their earthmover
project, with credentials as ``${ENV}`` references. Moving to the ``send`` flow
must not mean rewriting it, so this reads the same file with lightbeam's
defaults and interpolation rules (environment variables, plus ``params`` that
lightbeam's ``--params`` would inject), and turns it into the plain values the
core uses: a ``Connection``, the data and state folders, the namespace, the
validation settings.

Two deliberate differences: relative ``data_dir`` / ``state_dir`` are resolved
against the configuration file's folder (a deployment's working directory is not
the person's shell), and the connection's concurrency follows ``pool_size`` only
when the file sets it -- lightbeam's default of 8 is a limit of its own design,
not of the target.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from edfi.client import Connection, EdFiError

DEFAULT_RETRY_STATUSES = (429, 500, 501, 503, 504)
DEFAULT_VALIDATION_METHODS = ("schema", "descriptors", "uniqueness")
_ENV = re.compile(r"\$(\w+|\{[^}]*\})")


class LightbeamConfigError(ValueError):
    """The lightbeam configuration cannot be used; the message names the setting and the fix."""


@dataclass(frozen=True)
class LightbeamConfig:
    """What a ``lightbeam.yaml`` says, in the core's terms."""

    source: str
    base_url: str
    client_id: str
    client_secret: SecretStr
    data_dir: str
    state_dir: str | None
    namespace: str = "ed-fi"
    namespace_overrides: dict[str, list[str]] = field(default_factory=dict)
    school_year: int | None = None
    pool_size: int | None = None
    timeout_seconds: float = 60.0
    num_retries: int = 10
    backoff_factor: float = 1.5
    retry_statuses: tuple[int, ...] = DEFAULT_RETRY_STATUSES
    verify_ssl: bool = True
    validate_methods: tuple[str, ...] = DEFAULT_VALIDATION_METHODS
    references_remote: bool = True
    max_failures: int | None = None

    def connection(self, *, max_concurrency: int | None = None) -> Connection:
        """The connection this file describes (``max_concurrency`` wins over ``pool_size``)."""
        concurrency = max_concurrency or self.pool_size or Connection.max_concurrency
        try:
            return Connection(
                base_url=self.base_url,
                client_id=self.client_id,
                client_secret=self.client_secret,
                verify_tls=self.verify_ssl,
                timeout_seconds=self.timeout_seconds,
                max_retries=self.num_retries,
                backoff_seconds=self.backoff_factor,
                max_concurrency=concurrency,
            )
        except EdFiError as exc:
            raise LightbeamConfigError(f"{self.source}: edfi_api.base_url: {exc}") from exc


def _expand(value: str, env: Mapping[str, str]) -> str:
    """``$VAR`` / ``${VAR}`` from ``env``; unknown names stay as written (as os.path.expandvars)."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1).strip("{}")
        return env.get(name, m.group(0))

    return _ENV.sub(sub, value)


def _interpolate(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return _expand(node, env)
    if isinstance(node, dict):
        return {k: _interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, env) for v in node]
    return node


def _section(raw: Mapping[str, Any], name: str, source: str) -> Mapping[str, Any]:
    value = raw.get(name) or {}
    if not isinstance(value, Mapping):
        raise LightbeamConfigError(f"{source}: `{name}` must be a mapping of settings.")
    return value


def _number(section: Mapping[str, Any], name: str, where: str, default: Any, kind: type) -> Any:
    value = section.get(name, default)
    if value is None:
        return default
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise LightbeamConfigError(f"{where}.{name} must be a number (got {value!r}).") from None


def load_lightbeam_config(
    path: str | os.PathLike[str],
    *,
    params: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> LightbeamConfig:
    """Read ``path`` as lightbeam does: YAML, ``${ENV}`` interpolation, lightbeam's defaults.

    ``params`` are lightbeam's ``--params`` (they win over the environment).
    """
    file = Path(path).expanduser()
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise LightbeamConfigError(
            f"Cannot read the lightbeam configuration {source}: {exc.strerror}."
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LightbeamConfigError(f"{source} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise LightbeamConfigError(
            f"{source} must be a YAML mapping with `edfi_api`, `data_dir`, ... as in lightbeam."
        )
    env = {**(os.environ if environ is None else environ), **(params or {})}
    raw = _interpolate(raw, env)

    api = _section(raw, "edfi_api", source)
    conn = _section(raw, "connection", source)
    validate = _section(raw, "validate", source)
    references = _section(validate, "references", f"{source}: validate")

    base_url = str(api.get("base_url") or "").strip()
    if not base_url:
        raise LightbeamConfigError(f"{source}: edfi_api.base_url is required (the API's root URL).")
    for name in ("client_id", "client_secret"):
        value = api.get(name)
        if value is None or str(value) == "" or _ENV.fullmatch(str(value)):
            raise LightbeamConfigError(
                f"{source}: edfi_api.{name} is empty or names an environment variable that is "
                "not set; set it (or the variable it names) before running."
            )
    where = f"{source}: edfi_api"
    school_year: int | None = None
    if str(api.get("mode", "year_specific")) == "year_specific" and api.get("year") is not None:
        school_year = _number(api, "year", where, None, int)

    base = file.parent

    def folder(value: Any) -> str:
        text_value = os.path.expanduser(str(value))
        if "://" in text_value or os.path.isabs(text_value):
            return text_value
        return str((base / text_value).resolve())

    methods_raw = validate.get("methods", DEFAULT_VALIDATION_METHODS)
    if isinstance(methods_raw, str):
        if methods_raw in ("*", "all"):
            methods: tuple[str, ...] = (*DEFAULT_VALIDATION_METHODS, "references")
        else:
            methods = tuple(m.strip() for m in methods_raw.split(",") if m.strip())
    else:
        methods = tuple(str(m) for m in methods_raw)

    overrides_raw = raw.get("namespace_overrides") or {}
    overrides = {
        str(ns): [str(n) for n in names]
        for ns, names in overrides_raw.items()
        if isinstance(names, list)
    }
    cwhere = f"{source}: connection"
    statuses = conn.get("retry_statuses", DEFAULT_RETRY_STATUSES)
    return LightbeamConfig(
        source=source,
        base_url=base_url,
        client_id=str(api["client_id"]),
        client_secret=SecretStr(str(api["client_secret"])),
        data_dir=folder(raw.get("data_dir") or "./"),
        state_dir=folder(raw["state_dir"]) if raw.get("state_dir") else None,
        namespace=str(raw.get("namespace") or "ed-fi"),
        namespace_overrides=overrides,
        school_year=school_year,
        pool_size=_number(conn, "pool_size", cwhere, None, int),
        timeout_seconds=_number(conn, "timeout", cwhere, 60.0, float),
        num_retries=_number(conn, "num_retries", cwhere, 10, int),
        backoff_factor=_number(conn, "backoff_factor", cwhere, 1.5, float),
        retry_statuses=tuple(int(s) for s in statuses),
        verify_ssl=bool(conn.get("verify_ssl", True)),
        validate_methods=methods,
        references_remote=bool(references.get("remote", True)),
        max_failures=_number(
            references, "max_failures", f"{source}: validate.references", None, int
        ),
    )
