"""Read resources through edfi-api-client, as its users do, and print what it saw as JSON.

Runs under ``.venv-peers`` (edfi-api-client's own dependencies), so it imports
nothing from the project. Arguments: base_url client_id client_secret mode
page_size [resource ...]. ``mode`` is ``rows`` (``get_rows``: cursor paging on
7.3+), ``pages`` (``get_pages``: the offset paging it uses before 7.3) or
``deletes`` (``get_rows`` on ``/deletes``). With no resources it reads every
resource and descriptor the server's OpenAPI metadata lists.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

from edfi_api_client import EdFiClient


def read(endpoint: Any, mode: str, page_size: int) -> Iterator[dict[str, Any]]:
    if mode == "pages":
        for page in endpoint.get_pages(page_size=page_size):
            yield from page
    else:
        yield from endpoint.get_rows(page_size=page_size)


def main() -> None:
    base_url, client_id, client_secret, mode, page_size, *wanted = sys.argv[1:]
    client = EdFiClient(base_url, client_id, client_secret)
    client.connect()
    if wanted:
        names = [tuple(w.strip("/").split("/", 1)) for w in wanted]
    else:
        names = [*client.resources, *client.descriptors]
    counts: dict[str, dict[str, Any]] = {}
    for namespace, name in names:
        endpoint = client.resource(name, namespace=namespace, get_deletes=mode == "deletes")
        rows = list(read(endpoint, mode, int(page_size)))
        counts[f"/{namespace}/{name}"] = {
            "total_count": endpoint.get_total_count(),
            "rows": len(rows),
            "ids": sorted({r["id"] for r in rows}),
        }
    print(
        json.dumps(
            {
                "api_mode": client.api_mode,
                "ods_version": client.get_ods_version(),
                "data_model_version": client.get_data_model_version(),
                "newest_change_version": client.get_newest_change_version(),
                "resources": counts,
            }
        )
    )


if __name__ == "__main__":
    main()
