"""Failure notification: the repository's automation, created on the Prefect server.

The automation itself (which events, what message) lives in
``deploy/notify-on-failure.yaml`` so that it is reviewed and versioned like the
deployments. What the file cannot hold is the id of the notification block on a
given server; this command saves or finds that block, puts its id into the
action, and replaces any automation of the same name (so running it again after
editing the file updates it)::

    python -m flows.notify --webhook https://hooks.example.org/edfi
    python -m flows.notify --block slack-webhook/ops-channel
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from prefect.automations import Automation
from prefect.blocks.core import Block
from prefect.blocks.notifications import CustomWebhookNotificationBlock, NotificationBlock
from prefect.client.orchestration import get_client

AUTOMATION_FILE = Path(__file__).resolve().parents[1] / "deploy" / "notify-on-failure.yaml"
WEBHOOK_BLOCK = "edfi-flows-failures"


async def notification_block(webhook: str | None, block: str | None) -> UUID:
    """The id of the block the automation notifies: a JSON webhook saved under
    ``edfi-flows-failures``, or an existing block named ``type-slug/name``."""
    if webhook:
        saved = CustomWebhookNotificationBlock(
            name="edfi-flows",
            url=webhook,
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
        )
        return await saved.asave(WEBHOOK_BLOCK, overwrite=True)
    if not block or "/" not in block:
        raise ValueError(
            f"--block takes a saved notification block as type-slug/name (e.g. "
            f"slack-webhook/ops-channel), not {block!r}"
        )
    try:
        found: Block = await Block.aload(block)
    except ValueError as exc:
        raise ValueError(f"No notification block {block!r} on this server ({exc})") from None
    if not isinstance(found, NotificationBlock) or found._block_document_id is None:
        raise ValueError(f"{block!r} is a {type(found).__name__}, not a notification block")
    return found._block_document_id


def definition(path: Path, block_id: UUID) -> dict[str, Any]:
    """The automation of ``path`` with its notifications sent through ``block_id``."""
    doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    for action in doc.get("actions", []):
        if action.get("type") == "send-notification":
            action["block_document_id"] = str(block_id)
    return doc


async def install(
    webhook: str | None = None, block: str | None = None, path: Path = AUTOMATION_FILE
) -> UUID:
    """Create the automation of ``path`` (replacing one of the same name); its id."""
    doc = definition(path, await notification_block(webhook, block))
    automation = Automation.model_validate(doc)
    async with get_client() as client:
        for old in await client.read_automations_by_name(automation.name):
            await client.delete_automation(old.id)
    created = await automation.acreate()
    if created.id is None:  # the server always gives one; this keeps the type honest
        raise RuntimeError("the Prefect server created the automation without an id")
    return created.id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.notify",
        description="Create the failure-notification automation (deploy/notify-on-failure.yaml) "
        "on the Prefect server PREFECT_API_URL names.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--webhook", help="URL that receives a JSON POST {subject, body}")
    where.add_argument(
        "--block", help="an existing notification block, type-slug/name (slack-webhook/ops)"
    )
    parser.add_argument("--file", type=Path, default=AUTOMATION_FILE, help="automation YAML")
    args = parser.parse_args(argv)
    try:
        automation_id = asyncio.run(install(args.webhook, args.block, args.file))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Automation {automation_id} created from {args.file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
