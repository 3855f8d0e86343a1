"""A bulk load in its own process (killed mid-way by tests/test_bulk_load.py)."""

from __future__ import annotations

import asyncio
import sys

from pydantic import SecretStr

from edfi.client import Connection, EdFiClient
from edfi.send import Sender, SendOptions, write_connection
from edfi.sendstate import SendState
from edfi.xml.bulk import BulkLoad
from edfi.xml.reader import XmlLoad, list_files
from edfi.xml.spool import XmlSpool


async def main(base_url: str, client_id: str, secret: str, data: str, state: str) -> None:
    conn = write_connection(Connection(base_url, client_id, SecretStr(secret)), 4)
    async with EdFiClient(conn) as client:
        model = await client.load_model()
        sender = Sender(client, model, client.url("dataManagementApi"), SendOptions(4, 4))
        with XmlSpool(XmlLoad(list_files(data), model)) as spool:
            spool.build()
            print("spooled", flush=True)
            loader = BulkLoad(
                model, spool, sender, state=SendState(state, "target"), batch=50, parallelism=2
            )
            await loader.run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
