"""Errors as the ODS/API 7.2+ reports them: RFC 9457 problem details.

Each constructor below is one problem type of the ODS/API's catalogue, with
its ``type``, ``title`` and ``detail`` as the ODS/API writes them; what is
specific to the request goes to ``errors`` or ``validationErrors``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

PROBLEM_JSON = "application/problem+json"


class ApiError(Exception):
    """An error answered as problem details (``kind``: the ``type`` after ``urn:ed-fi:api:``)."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str,
        *,
        validation_errors: Mapping[str, list[str]] | None = None,
        errors: list[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.validation_errors = dict(validation_errors or {})
        self.errors = list(errors or [])
        self.headers = dict(headers or {})

    def problem(self, correlation_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "detail": self.detail,
            "type": "urn:ed-fi:api:" + self.kind,
            "title": self.title,
            "status": self.status,
            "correlationId": correlation_id or str(uuid.uuid4()),
        }
        if self.validation_errors:
            body["validationErrors"] = self.validation_errors
        if self.errors:
            body["errors"] = self.errors
        return body


def bad_request(detail: str, errors: Mapping[str, list[str]] | None = None) -> ApiError:
    """400: ``data-validation-failed`` with ``validationErrors`` when given, else plain."""
    if errors:
        return data_validation_failed(errors)
    return ApiError(400, "bad-request", "Bad Request", detail)


def data_validation_failed(
    validation_errors: Mapping[str, list[str]] | None = None, errors: list[str] | None = None
) -> ApiError:
    if validation_errors:
        detail = "Data validation failed. See 'validationErrors' for details."
    else:
        detail = "The request data was constructed incorrectly."
    return ApiError(
        400,
        "bad-request:data-validation-failed",
        "Data Validation Failed",
        detail,
        validation_errors=validation_errors,
        errors=errors,
    )


def request_not_processed(*errors: str) -> ApiError:
    """400 ``bad-request``: the body could not be read at all (empty, not JSON, not UTF-8)."""
    return ApiError(
        400,
        "bad-request",
        "Bad Request",
        "The request could not be processed. See 'errors' for details.",
        errors=list(errors),
    )


def parameter_invalid(*errors: str) -> ApiError:
    """400 ``parameter-validation-failed``: a query parameter or route value is invalid."""
    return ApiError(
        400,
        "bad-request:parameter-validation-failed",
        "Parameter Validation Failed",
        "The request construction was invalid.",
        errors=list(errors),
    )


def key_change_not_supported(entity: str) -> ApiError:
    return ApiError(
        400,
        "bad-request:data-validation-failed:key-change-not-supported",
        "Key Change Not Supported",
        f"Identifying values for the {entity} item cannot be changed. "
        "Delete and recreate the item instead.",
    )


def unauthenticated(error: str, *, expired: bool = False) -> ApiError:
    challenge = (
        'Bearer error="invalid_token", error_description="The access token expired"'
        if expired
        else "Bearer"
    )
    return ApiError(
        401,
        "security:authentication",
        "Authentication Failed",
        "The caller could not be authenticated.",
        errors=[error],
        headers={"WWW-Authenticate": challenge},
    )


def server_error(detail: str) -> ApiError:
    """500: the write could not be made durable (its transaction was rolled back)."""
    return ApiError(500, "internal-server-error", "Internal Server Error", detail)


def not_found(detail: str = "The specified item could not be found.") -> ApiError:
    return ApiError(404, "not-found", "Not Found", detail)


def no_such_data(*errors: str) -> ApiError:
    """404 for a route or resource the API does not have (ODS: "data", not "item")."""
    return ApiError(
        404, "not-found", "Not Found", "The specified data could not be found.", errors=list(errors)
    )


def method_not_allowed(error: str) -> ApiError:
    return ApiError(
        405,
        "method-not-allowed",
        "Method Not Allowed",
        "The request construction was invalid.",
        errors=[error],
    )


def snapshot_write() -> ApiError:
    return ApiError(
        405,
        "snapshots:method-not-allowed",
        "Method Not Allowed",
        "Snapshots are read-only: data cannot be modified while reading a snapshot.",
        errors=["Remove the 'Use-Snapshot' header (or set it to false) to write."],
    )


def unresolved_reference(entities: list[str]) -> ApiError:
    names = sorted(set(entities))
    first = names[0]
    return ApiError(
        409,
        "data-conflict:unresolved-reference",
        "Unresolved Reference",
        f"The referenced '{first}' item does not exist.",
        errors=[f"The referenced '{n}' item does not exist." for n in names]
        if len(names) > 1
        else None,
    )


def dependent_item_exists(entity: str) -> ApiError:
    return ApiError(
        409,
        "data-conflict:dependent-item-exists",
        "Dependent Item Exists",
        "The requested action cannot be performed because this item is referenced by an "
        f"existing '{entity}' item.",
    )


def non_unique_identity(entity: str, key: Mapping[str, Any]) -> ApiError:
    names = ", ".join(k[:1].upper() + k[1:] for k in key)
    values = ", ".join(str(v) for v in key.values())
    return ApiError(
        409,
        "data-conflict:non-unique-identity",
        "Identifying Values Are Not Unique",
        "The identifying value(s) of the item are the same as another item that already exists.",
        errors=[
            "A primary key conflict occurred when attempting to create or update a record in "
            f"the '{entity}' table. The duplicate key is ({names}) = ({values})."
        ],
    )


def optimistic_lock_failed() -> ApiError:
    return ApiError(
        412,
        "optimistic-lock-failed",
        "Optimistic Lock Failed",
        "The item has been modified by another user.",
    )
