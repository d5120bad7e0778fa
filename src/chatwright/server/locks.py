"""In-process serialisation of turns: one asyncio lock per conversation, dropped when nobody holds it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from weakref import WeakValueDictionary


class ConversationLocks:
    """Messages to one conversation wait for each other; different conversations run side by side."""

    def __init__(self) -> None:
        # Holders and waiters keep a lock alive; an idle conversation's lock is garbage-collected.
        self._locks: WeakValueDictionary[str, asyncio.Lock] = WeakValueDictionary()

    @asynccontextmanager
    async def hold(self, conversation_id: str) -> AsyncIterator[None]:
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[conversation_id] = lock
        async with lock:
            yield
