"""The lake storage block: an fsspec URL plus credentials."""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from prefect_aws import AwsCredentials
from pydantic import ConfigDict, Field, SecretStr, field_validator

from edfi.lake import Lake

# fsspec option names that carry a secret, and the block field each belongs in instead
# (storage_options is a plain dict: Prefect shows it in repr, the UI and flow-run parameters)
_SECRET_OPTIONS = {
    "secret": "secret_access_key",
    "key": "access_key_id (and secret_access_key)",
    "token": "session_token",
    "session_token": "session_token",
    "aws_secret_access_key": "secret_access_key",
    "aws_session_token": "session_token",
    "password": "a credentials block (aws_credentials)",
    "passwd": "a credentials block (aws_credentials)",
    "account_key": "a credentials block",
    "sas_token": "a credentials block",
    "client_secret": "a credentials block",
    "connection_string": "a credentials block",
    "credentials": "a credentials block",
    "secret_key": "secret_access_key",
    "access_token": "a credentials block",
}


def _secret_options(options: Any, where: str = "") -> list[tuple[str, str]]:
    """Every (dotted name, right field) of a secret-looking option, nested dicts included."""
    found: list[tuple[str, str]] = []
    if isinstance(options, dict):
        for name, value in options.items():
            dotted = f"{where}{name}"
            field = _SECRET_OPTIONS.get(str(name).lower())
            if field is not None:
                found.append((dotted, field))
            found += _secret_options(value, dotted + ".")
    return found


class LakeStorage(Block):
    """Where the lake lives: ``file:///data/lake``, ``./lake``, ``s3://bucket/prefix`` ...

    S3 credentials come from a prefect-aws ``AwsCredentials`` block or from this
    block's own key fields (else the environment, as boto does); the endpoint URL
    makes any S3-compatible store (MinIO, Ceph, R2) work.
    """

    # a refused value may be a secret: validation errors must not repeat it
    model_config = ConfigDict(hide_input_in_errors=True)

    _block_type_name = "Ed-Fi Lake Storage"
    _block_type_slug = "edfi-lake-storage"
    _logo_url = None
    _description = "Storage for the Ed-Fi lake: an fsspec URL and its credentials."

    url: str = Field(..., description="fsspec URL of the lake root.")
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="Extra fsspec options for the filesystem."
    )
    aws_credentials: AwsCredentials | None = Field(
        None, description="prefect-aws credentials for s3:// lakes."
    )
    access_key_id: str | None = Field(
        None, description="S3 access key id (if no AwsCredentials block)."
    )
    secret_access_key: SecretStr | None = Field(None, description="S3 secret access key.")
    session_token: SecretStr | None = Field(None, description="S3 session token.")
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint URL.")
    region_name: str | None = Field(None, description="S3 region.")

    @field_validator("storage_options")
    @classmethod
    def _no_secrets(cls, value: dict[str, Any]) -> dict[str, Any]:
        found = _secret_options(value)
        if found:
            where = "; ".join(f"{name!r} belongs in {field}" for name, field in found)
            raise ValueError(
                f"storage_options must not hold credentials (they would be shown in the block, "
                f"the UI and flow-run parameters): {where}, a SecretStr field of this block."
            )
        return value

    def options_for(self, location: str | None) -> dict[str, Any]:
        """fsspec options for a file at ``location``: this lake's credentials when the file
        is on the lake's kind of storage (a descriptor map beside the lake), else none."""
        if (
            location
            and "://" in location
            and location.split("://", 1)[0] == self.url.split("://", 1)[0]
        ):
            return self.fsspec_options()
        return {}

    def fsspec_options(self) -> dict[str, Any]:
        """The s3fs options these credentials mean (prefect-aws does not feed s3fs itself)."""
        opts: dict[str, Any] = dict(self.storage_options)
        if not self.url.startswith(("s3://", "s3a://")):
            return opts
        client_kwargs: dict[str, Any] = dict(opts.pop("client_kwargs", {}) or {})
        creds = self.aws_credentials
        if creds is not None:
            if creds.aws_access_key_id:
                opts["key"] = creds.aws_access_key_id
            if creds.aws_secret_access_key:
                opts["secret"] = creds.aws_secret_access_key.get_secret_value()
            if creds.aws_session_token:
                opts["token"] = creds.aws_session_token
            if creds.region_name:
                client_kwargs["region_name"] = creds.region_name
            endpoint = creds.aws_client_parameters.endpoint_url
            if endpoint:
                client_kwargs["endpoint_url"] = endpoint
        if self.access_key_id:
            opts["key"] = self.access_key_id
        if self.secret_access_key:
            opts["secret"] = self.secret_access_key.get_secret_value()
        if self.session_token:
            opts["token"] = self.session_token.get_secret_value()
        if self.endpoint_url:
            client_kwargs["endpoint_url"] = self.endpoint_url
        if self.region_name:
            client_kwargs["region_name"] = self.region_name
        if client_kwargs:
            opts["client_kwargs"] = client_kwargs
        return opts

    def lake(self) -> Lake:
        return Lake(self.url, self.fsspec_options())
