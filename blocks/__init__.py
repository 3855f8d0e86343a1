"""Prefect blocks of edfi-flows (``prefect block register -m blocks``)."""

from .edfi import EdFiConnection
from .lake import LakeStorage

__all__ = ["EdFiConnection", "LakeStorage"]
