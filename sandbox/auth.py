"""OAuth2 client credentials and client sessions, as the sandbox grants and checks them.

A token belongs to a session; a session holds the snapshots its ``Use-Snapshot``
reads see (one per data set, taken at the session's first snapshot read).
A fresh client credentials grant starts a new session, which sees current
data; a grant that names the client's previous token (the ``Previous-Token``
header, sent when renewing) continues that token's session, so a long pull
keeps one stable view across token renewals.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson

from .problems import unauthenticated

JSON = "application/json"
RENEWAL_HEADER = "previous-token"


@dataclass(slots=True)
class Session:
    """What the tokens of one client session share: the snapshot each data set is read at."""

    snapshots: dict[int, int] = field(default_factory=dict)  # id(store) -> change version


@dataclass(slots=True)
class Token:
    value: str
    expires: float
    tenant: str  # the tenant the token was issued for ("" when none)
    lifetime: float
    session: Session
    scope: str | None = None  # the education organization id asked for, if any
    last_used: float = 0.0


@dataclass(frozen=True, slots=True)
class Grant:
    """A token request's answer: status and JSON (OAuth2 errors are not problem details)."""

    status: int
    body: dict[str, Any]


class Auth:
    """Credentials, tokens and sessions of one sandbox."""

    def __init__(self, client_id: str, client_secret: str, token_lifetime: float):
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime = token_lifetime
        self.tokens: dict[str, Token] = {}

    def grant(
        self,
        raw: bytes,
        headers: Mapping[str, str],
        tenant: str,
        *,
        lifetime: float | None,
        scope_exists: Callable[[str], bool],
    ) -> Grant:
        """A token for a client credentials request (Basic, form or JSON credentials)."""
        fields = _fields(raw, headers.get("content-type", ""))
        if fields is None:
            return _error(400, "invalid_request", "The request body cannot be read.")
        auth = headers.get("authorization", "")
        if auth[:6].lower() == "basic " or auth.lower() == "basic":
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            user, colon, pw = decoded.partition(":")
            if not colon or not user:
                return _error(
                    400, "invalid_request", "The Basic credentials are empty or malformed."
                )
            fields.setdefault("client_id", user)
            fields.setdefault("client_secret", pw)
        if fields.get("grant_type") != "client_credentials":
            return _error(400, "unsupported_grant_type", "Use grant_type=client_credentials.")
        if not (
            secrets.compare_digest(fields.get("client_id", ""), self.client_id)
            and secrets.compare_digest(fields.get("client_secret", ""), self.client_secret)
        ):
            return _error(401, "invalid_client", "Invalid client or Invalid client credentials")
        scope = fields.get("scope", "").strip() or None
        if scope is not None and not scope_exists(scope):
            return _error(
                400,
                "invalid_scope",
                f"The scope '{scope}' is not an education organization of this client.",
            )
        now = time.monotonic()
        life = lifetime or self.token_lifetime
        token = Token(
            secrets.token_hex(16),
            now + life,
            tenant,
            life,
            self._session_for(headers.get(RENEWAL_HEADER, ""), tenant),
            scope,
            now,
        )
        self.tokens[token.value] = token
        body: dict[str, Any] = {
            "access_token": token.value,
            "expires_in": int(life),
            "token_type": "bearer",
        }
        if scope is not None:
            body["scope"] = scope
        return Grant(200, body)

    def _session_for(self, previous: str, tenant: str) -> Session:
        """The renewed token's session, or a new one (a new client session sees current data)."""
        old = self.tokens.get(previous.strip()) if previous else None
        if old is not None and old.tenant == tenant:
            return old.session
        return Session()

    def authorize(self, authorization: str, tenant: str) -> Token:
        """The token of a data request, or the 401 the ODS/API answers."""
        if not authorization:
            raise unauthenticated("Authorization header is missing.")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            raise unauthenticated("Unknown Authorization header scheme.")
        value = value.strip()
        if not value:
            raise unauthenticated("Missing Authorization header bearer token value.")
        token = self.tokens.get(value)
        if token is None or token.tenant != tenant:
            raise unauthenticated("Invalid Authorization header.")
        now = time.monotonic()
        if now >= token.expires:
            raise unauthenticated("Invalid Authorization header.", expired=True)
        token.last_used = now
        return token

    def sessions(self) -> list[Session]:
        seen: dict[int, Session] = {}
        for t in self.tokens.values():
            seen.setdefault(id(t.session), t.session)
        return list(seen.values())


def _fields(raw: bytes, content_type: str) -> dict[str, str] | None:
    if content_type.startswith(JSON):
        try:
            data = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError:
            return None
        return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return {k: v[0] for k, v in parse_qs(text).items()}


def _error(status: int, error: str, description: str) -> Grant:
    return Grant(status, {"error": error, "error_description": description})
