"""Prefect tasks of the bulk_load flow: reading the files, and one task per resource."""

from __future__ import annotations

import asyncio

from prefect import task
from prefect.cache_policies import NONE

from edfi.xml.bulk import BulkLoad, ResourceRow
from edfi.xml.reader import CheckReport
from edfi.xml.spool import XmlSpool


@task(name="bulk-load-check", cache_policy=NONE)
async def check_xml(spool: XmlSpool) -> CheckReport:
    """Parse (and validate) every file and index its ``id`` s: the first pass. The second,
    regrouping the elements by resource, runs beside the sending (``BulkLoadRun.send``)."""
    return await asyncio.to_thread(spool.check)


@task(name="bulk-load-resource", task_run_name="{label}", cache_policy=NONE)
async def load_resource(loader: BulkLoad, path: str, label: str) -> ResourceRow:
    """One resource; requests are retried inside the client and sender, not by Prefect."""
    return await loader.send_resource(path)
