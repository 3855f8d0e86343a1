"""Prefect tasks of the bulk_load flow: reading the files, and one task per resource."""

from __future__ import annotations

import asyncio

from prefect import task
from prefect.cache_policies import NONE

from edfi.xml.bulk import BulkLoad, ResourceRow
from edfi.xml.spool import SpoolReport, XmlSpool


@task(name="bulk-load-read", cache_policy=NONE)
async def read_xml(spool: XmlSpool) -> SpoolReport:
    """Check (and validate) every file, then regroup its elements by resource on local disk."""
    return await asyncio.to_thread(spool.build)


@task(name="bulk-load-resource", task_run_name="{label}", cache_policy=NONE)
async def load_resource(loader: BulkLoad, path: str, label: str) -> ResourceRow:
    """One resource; requests are retried inside the client and sender, not by Prefect."""
    return await loader.send_resource(path)
