"""The Ed-Fi connection block: where an API is and how to log in."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator

from edfi.client import Connection, EdFiError, check_base_url


class EdFiConnection(Block):
    """Credentials and limits for one Ed-Fi ODS/API.

    Endpoint URLs come from the API's discovery document, so only the root is
    configured. The request limits apply to every request any task sends to
    this API in a flow run.
    """

    # a refused value may be a secret: validation errors must not repeat it
    model_config = ConfigDict(hide_input_in_errors=True)

    _block_type_name = "Ed-Fi Connection"
    _block_type_slug = "edfi-connection"
    _logo_url = None
    _description = "An Ed-Fi ODS/API: base URL, client credentials and request limits."

    base_url: str = Field(
        ...,
        description="API root that serves the discovery document, "
        "e.g. https://api.example.org/v7.3/api",
    )
    client_id: str = Field(..., description="OAuth client id (key).")
    client_secret: SecretStr = Field(..., description="OAuth client secret.")
    tenant: str | None = Field(None, description="Tenant route segment, for multi-tenant APIs.")
    school_years: list[int] = Field(
        default_factory=list,
        description="School years of a year-specific API (e.g. [2024, 2025]); empty when the "
        "API is not year-specific.",
    )
    verify_tls: bool = Field(True, description="Verify the server's TLS certificate.")
    page_size: int = Field(500, ge=1, le=500, description="Records per page (ODS max 500).")
    max_concurrency: int = Field(
        8, ge=1, le=64, description="Most requests in flight to this API at once."
    )
    requests_per_second: float | None = Field(
        None, gt=0, description="Optional cap on requests per second to this API."
    )
    timeout_seconds: float = Field(60.0, gt=0, description="Per-request timeout.")
    max_retries: int = Field(8, ge=0, le=20, description="Retries of a failed request.")
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Other origins (scheme://host[:port]) the API's discovery document may "
        "name for OAuth, metadata or data, for deployments split over several hosts. By "
        "default only the base URL's own scheme and host receive credentials.",
    )
    allow_insecure_http: bool = Field(
        False,
        description="Allow plain http to a host other than this machine (credentials and "
        "tokens then cross the network unencrypted).",
    )
    max_response_mb: float = Field(
        256,
        gt=0,
        description="Largest response body accepted, in MB: a bigger one fails its resource "
        "instead of exhausting memory.",
    )

    @field_validator("base_url")
    @classmethod
    def _no_userinfo(cls, value: str) -> str:
        try:
            check_base_url(value)
        except EdFiError as exc:
            raise ValueError(str(exc)) from None
        return value

    def connection(self) -> Connection:
        """The plain-value connection the Prefect-free core uses."""
        return Connection(
            base_url=self.base_url,
            client_id=self.client_id,
            client_secret=self.client_secret,
            tenant=self.tenant,
            verify_tls=self.verify_tls,
            page_size=self.page_size,
            max_concurrency=self.max_concurrency,
            requests_per_second=self.requests_per_second,
            timeout_seconds=self.timeout_seconds,
            max_retries=self.max_retries,
            allowed_origins=tuple(self.allowed_origins),
            allow_insecure_http=self.allow_insecure_http,
            max_response_bytes=int(self.max_response_mb * 1024 * 1024),
        )
