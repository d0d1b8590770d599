"""Where the SDK keeps what must outlive a process: the outbox and the cursors.

The outbox holds sends not yet acked (resent by the next process); the cursors are the last
`seq` delivered per conversation (resumed from by the next process). Both are scoped by user
id, so one store can serve several accounts. `MemoryStore` survives reconnects only;
`FileStore` keeps everything in one JSON file written atomically.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A send waiting for its ack; `order` keeps resends in the order `send()` was called."""

    client_msg_id: str
    conversation_id: str
    body: str
    order: int


class Store(Protocol):
    """Persistence of outbox and cursors. A `put_outbox` that returns has stored the entry (the
    outbox writes a send only after that); failures raise `OSError`."""

    async def load_outbox(self, user_id: str) -> list[OutboxEntry]:
        """The user's entries, in their order."""
        ...

    async def put_outbox(self, user_id: str, entry: OutboxEntry) -> None: ...

    async def delete_outbox(self, user_id: str, client_msg_id: str) -> None: ...

    async def load_cursors(self, user_id: str) -> dict[str, int]: ...

    async def put_cursors(self, user_id: str, cursors: dict[str, int]) -> None:
        """Store these cursors (others of the user are kept)."""
        ...

    async def delete_cursor(self, user_id: str, conversation_id: str) -> None: ...


class _State:
    """The store's content: {"outbox": {user: {id: entry}}, "cursors": {user: {conv: seq}}}."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        data = data or {}
        self.outbox: dict[str, dict[str, dict[str, Any]]] = data.get("outbox", {})
        self.cursors: dict[str, dict[str, int]] = data.get("cursors", {})

    def to_json(self) -> dict[str, Any]:
        return {"outbox": self.outbox, "cursors": self.cursors}


class MemoryStore:
    """In memory: survives reconnects and `Client.close()`/`connect()`, not a restart."""

    def __init__(self) -> None:
        self._state = _State()

    async def load_outbox(self, user_id: str) -> list[OutboxEntry]:
        entries = [OutboxEntry(**e) for e in self._state.outbox.get(user_id, {}).values()]
        return sorted(entries, key=lambda e: e.order)

    async def put_outbox(self, user_id: str, entry: OutboxEntry) -> None:
        self._state.outbox.setdefault(user_id, {})[entry.client_msg_id] = asdict(entry)

    async def delete_outbox(self, user_id: str, client_msg_id: str) -> None:
        self._state.outbox.get(user_id, {}).pop(client_msg_id, None)

    async def load_cursors(self, user_id: str) -> dict[str, int]:
        return dict(self._state.cursors.get(user_id, {}))

    async def put_cursors(self, user_id: str, cursors: dict[str, int]) -> None:
        self._state.cursors.setdefault(user_id, {}).update(cursors)

    async def delete_cursor(self, user_id: str, conversation_id: str) -> None:
        self._state.cursors.get(user_id, {}).pop(conversation_id, None)


class FileStore(MemoryStore):
    """The outbox and cursors in one JSON file, so a restarted process resends what was not
    acked and resumes where it was.

    Every change rewrites the file: to a temporary name, flushed to disk, then renamed over it
    (`os.replace`), so a crash leaves the old or the new file, never half of one. Changes made
    while a write runs are written together by the next one (a burst of 1,000 sends is a few
    writes, not 1,000), and a change returns only once a write holding it is done. Meant for
    bots and services with modest volumes; one process per file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self._loaded = False
        self._lock = asyncio.Lock()
        self._version = 0
        self._written = 0

    def _load(self) -> None:
        """Read the file once (a missing one is empty); raises OSError or ValueError."""
        if self._loaded:
            return
        try:
            self._state = _State(json.loads(self.path.read_text("utf-8")))
        except FileNotFoundError:
            self._state = _State()
        self._loaded = True

    async def _changed(self) -> None:
        self._version += 1
        mine = self._version
        async with self._lock:
            if self._written >= mine:
                return  # a write that started after this change has it already
            version, text = self._version, json.dumps(self._state.to_json())
            await asyncio.to_thread(self._write, text)
            self._written = version

    def _write(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        with temporary.open("w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)

    async def load_outbox(self, user_id: str) -> list[OutboxEntry]:
        self._load()
        return await super().load_outbox(user_id)

    async def put_outbox(self, user_id: str, entry: OutboxEntry) -> None:
        self._load()
        await super().put_outbox(user_id, entry)
        try:
            await self._changed()
        except OSError:
            # Not kept, so never sent: a later write must not persist it either.
            await super().delete_outbox(user_id, entry.client_msg_id)
            raise

    async def delete_outbox(self, user_id: str, client_msg_id: str) -> None:
        self._load()
        await super().delete_outbox(user_id, client_msg_id)
        await self._changed()

    async def load_cursors(self, user_id: str) -> dict[str, int]:
        self._load()
        return await super().load_cursors(user_id)

    async def put_cursors(self, user_id: str, cursors: dict[str, int]) -> None:
        self._load()
        await super().put_cursors(user_id, cursors)
        await self._changed()

    async def delete_cursor(self, user_id: str, conversation_id: str) -> None:
        self._load()
        await super().delete_cursor(user_id, conversation_id)
        await self._changed()
