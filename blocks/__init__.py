"""Prefect blocks of edfi-flows (``prefect block register -m blocks``)."""

from .database import LmsDatabase
from .edfi import EdFiConnection
from .lake import LakeStorage
from .load import aload_block, load_block

__all__ = ["EdFiConnection", "LakeStorage", "LmsDatabase", "aload_block", "load_block"]
