"""What the uWSGI backend and its in-process stand-ins share: a cache2 line's limits.

The line (:class:`~flask_uwsgicache.cache2.Cache2Options`) gives the store's limits in
cache2's own terms (items, blocks, block size, key size, ``bitmap``, ``purge_lru``);
this class turns them into the contract's (:class:`~.base.Backend`) and words the
errors that name them.
"""

from __future__ import annotations

from typing import Any

from ..cache2 import Cache2Options
from .base import Backend


class Cache2Store(Backend):
    """A backend whose limits are those of one cache2 line."""

    options: Cache2Options

    def use_options(self, options: Cache2Options) -> None:
        """Take the limits of ``options`` (called by the constructor)."""
        self.options = options
        self.cache_name = options.name
        self.max_key_size = options.keysize
        self.max_value_size = options.max_value_size
        self.max_items = options.usable_items

    def describe(self) -> dict[str, Any]:
        options = self.options
        return {
            **super().describe(),
            "blocksize": options.blocksize,
            "blocks": options.blocks,
            "bitmap": options.bitmap,
            "purge_lru": options.purge_lru,
        }

    def too_large_hint(self) -> str:
        options = self.options
        where = (
            f"blocksize*blocks={options.blocksize}*{options.blocks}"
            if options.bitmap
            else f"blocksize={options.blocksize} (without bitmap one value must fit one "
            f"block)"
        )
        return f" ({where}). Store smaller values or raise blocksize in the cache2 line."

    def full_message(self, key: bytes, entry: bytes) -> str:
        """The message for a refused write to this store when it is full."""
        options = self.options
        detail = (
            f"{options.usable_items} usable items (items={options.items}, slot 0 is "
            f"reserved)"
        )
        if options.bitmap:
            detail += f", {options.blocks} blocks of {options.blocksize} bytes"
        return (
            f"cache {options.name!r} is full: no room for key {key[:80]!r} "
            f"({len(entry)} bytes) in {detail}. Raise items in the cache2 line, use "
            f"shorter timeouts, or add purge_lru=1 to evict the least recently used "
            f"entry."
        )
