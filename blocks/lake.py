"""The lake storage block: an fsspec URL plus credentials."""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from prefect_aws import AwsCredentials
from pydantic import Field, SecretStr

from edfi.lake import Lake


class LakeStorage(Block):
    """Where the lake lives: ``file:///data/lake``, ``./lake``, ``s3://bucket/prefix`` ...

    S3 credentials come from a prefect-aws ``AwsCredentials`` block or from this
    block's own key fields (else the environment, as boto does); the endpoint URL
    makes any S3-compatible store (MinIO, Ceph, R2) work.
    """

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
