"""One way for a flow to take a block parameter: the block itself or a saved block's name.

Flows accept either so that a deployment can name a saved block while tests
and scripts pass one built in code. Loading goes through Prefect's own
``Block.load``/``aload`` (which finds the block by its type's slug); the only
thing added is a message that says which block was missing and how to fix it.
"""

from __future__ import annotations

from typing import TypeVar, cast

from prefect.blocks.core import Block

from edfi.errors import BlockError

B = TypeVar("B", bound=Block)


def _missing(kind: type[Block], name: str, exc: Exception) -> BlockError:
    title = getattr(kind, "_block_type_name", None) or kind.__name__
    return BlockError(
        f"No saved {title!r} block is named {name!r} ({exc}). Save one under that name "
        f"(prefect block register -m blocks, then create it in the UI or in code), "
        f"or pass the {kind.__name__} block itself."
    )


def _checked(block: Block, kind: type[B], name: str) -> B:
    if not isinstance(block, kind):
        raise BlockError(
            f"The saved block {name!r} is a {type(block).__name__}, not a {kind.__name__}."
        )
    return block


async def aload_block(value: B | str, kind: type[B]) -> B:
    """``value`` if it already is a ``kind`` block, else the saved ``kind`` block of that name."""
    if isinstance(value, kind):
        return value
    name = str(value)
    try:
        block = await kind.aload(name)
    except ValueError as exc:
        raise _missing(kind, name, exc) from None
    return _checked(block, kind, name)


def load_block(value: B | str, kind: type[B]) -> B:
    """The synchronous twin of ``aload_block``, for synchronous flows."""
    if isinstance(value, kind):
        return value
    name = str(value)
    try:
        # Block.load is typed for both worlds; called from sync code it returns the block
        block = cast(Block, kind.load(name))
    except ValueError as exc:
        raise _missing(kind, name, exc) from None
    return _checked(block, kind, name)
