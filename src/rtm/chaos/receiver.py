"""The receiving client of a chaos run: one user on one consumer instance, resuming.

On every connection (made with `?resume=1`: it says it will resume, so the consumer holds live
messages until it has) it waits for `ready`, sends `resume` with the last seq it saw of each of
its conversations (0 at first), and records every `message` event of that connection, per
conversation, in arrival order. When the connection drops (the instance was killed or stopped,
a close 1012, 4008, 4505…) it reconnects to the same instance, which may take a few seconds to
come back, and resumes from its cursors again. It never judges what it was sent: the checker
does, from the logs kept here (`rtm.chaos.checker.ConnectionLog`).

`Deliveries` is shared by all receivers of a run: when each message was first delivered
anywhere (what recovery times are measured from) and which `message_id` came under each
(conversation, seq), so the checker can compare them with the stored rows without every
receiver keeping every id.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
import websockets

from rtm.chaos.checker import ConnectionLog, ReceiverLog, Sighting
from rtm.chaos.clients import (
    CONNECT_ERRORS,
    OPEN_TIMEOUT_S,
    Backoff,
    Credentials,
    RunClock,
    close_code,
    parse_frame,
    require,
)
from rtm.chaos.errors import MalformedFrame

MESSAGE_FIELDS = ("conversation_id", "seq", "message_id", "client_msg_id")

READY_TIMEOUT_S = 10.0


class Deliveries:
    """What every receiver of the run was sent, by message rather than by connection."""

    def __init__(self) -> None:
        self.first_at: dict[str, float] = {}  # client_msg_id → run time of first delivery
        self._ids: dict[tuple[str, int], str] = {}  # (conversation, seq) → first message_id
        self._others: set[tuple[str, int, str]] = set()  # any other message_id under a slot

    def saw(
        self, conversation: str, seq: int, message_id: str, client_msg_id: str, at: float
    ) -> None:
        self.first_at.setdefault(client_msg_id, at)
        known = self._ids.setdefault((conversation, seq), message_id)
        if known != message_id:
            self._others.add((conversation, seq, message_id))

    def sightings(self) -> list[Sighting]:
        """Each distinct (conversation, seq, message_id) delivered, for the checker."""
        seen = [(c, s, m) for (c, s), m in self._ids.items()] + sorted(self._others)
        return [Sighting(uuid.UUID(c), s, uuid.UUID(m)) for c, s, m in seen]


@dataclass(slots=True)
class _Connection:
    number: int
    opened_at: float
    cursors: dict[str, int]
    seqs: dict[str, array[int]] = field(default_factory=dict)
    not_recovered: list[str] = field(default_factory=list)


class ResumingReceiver:
    """One user's receiving client on one consumer instance; `run` until cancelled."""

    def __init__(
        self,
        name: str,
        credentials: Credentials,
        url: str,
        conversations: Sequence[str],
        clock: RunClock,
        deliveries: Deliveries,
    ) -> None:
        self.name = name
        self.credentials = credentials
        # `?resume=1`: hold live messages for the resume (docs/protocol.md, "6. Consumer"), so
        # the checker can expect every connection to start at its cursors.
        self.url = url + ("&" if "?" in url else "?") + "resume=1"
        self.conversations = list(conversations)
        self.clock = clock
        self.deliveries = deliveries
        self.cursor = dict.fromkeys(self.conversations, 0)
        self.connections: list[_Connection] = []
        self.close_codes: Counter[int] = Counter()
        self.drops: list[float] = []  # run times at which an established connection ended
        self.resumed: list[float] = []  # run times of each `resumed`
        self.received = 0
        self.malformed: list[str] = []  # frames that broke the protocol (then: reconnect)
        self._backoff = Backoff(random.Random())  # noqa: S311 - jitter, not a secret

    @property
    def ready(self) -> bool:
        """Its first `resume` has been answered: live messages flow."""
        return bool(self.resumed)

    async def run(self) -> None:
        while True:
            established = False
            try:
                headers = await self.credentials.headers()
                async with websockets.connect(
                    self.url,
                    additional_headers=headers,
                    open_timeout=OPEN_TIMEOUT_S,
                    max_size=2**24,
                ) as ws:
                    await self._await_ready(ws)
                    established = True
                    await self._session(ws)
            except MalformedFrame as exc:
                self.malformed.append(str(exc))
            except CONNECT_ERRORS as exc:
                code = close_code(exc)
                if code is not None:
                    self.close_codes[code] += 1
            if established:
                self.drops.append(self.clock.now())
            await self._backoff.wait()

    async def _await_ready(self, ws: websockets.ClientConnection) -> None:
        """Skip what comes before `ready` (`auth_ok`); raises TimeoutError if it never does."""
        async with asyncio.timeout(READY_TIMEOUT_S):
            while True:
                if parse_frame(await ws.recv(decode=False))["type"] == "ready":
                    return

    async def _session(self, ws: websockets.ClientConnection) -> None:
        connection = _Connection(len(self.connections) + 1, self.clock.now(), dict(self.cursor))
        self.connections.append(connection)
        await ws.send(orjson.dumps({"type": "resume", "cursors": self.cursor}), text=True)
        while True:
            frame = parse_frame(await ws.recv(decode=False))
            kind = frame["type"]
            if kind == "message":
                self._message(connection, require(frame, MESSAGE_FIELDS))
            elif kind == "resumed":
                # Only a connection that could resume counts as working: one dropped right
                # after `ready` (the instance not serving yet) keeps the reconnects paced.
                self._backoff.reset()
                self.resumed.append(self.clock.now())
                for conversation, report in frame.get("conversations", {}).items():
                    if not report.get("recovered", True):
                        connection.not_recovered.append(conversation)

    def _message(self, connection: _Connection, frame: dict[str, object]) -> None:
        conversation, seq = str(frame["conversation_id"]), frame["seq"]
        if not isinstance(seq, int):
            raise MalformedFrame(f"message frame with seq {seq!r}")
        seqs = connection.seqs.get(conversation)
        if seqs is None:
            seqs = connection.seqs[conversation] = array("q")
        seqs.append(seq)
        self.received += 1
        if conversation in self.cursor:  # a foreign conversation is the checker's to report
            self.cursor[conversation] = max(self.cursor[conversation], seq)
        self.deliveries.saw(
            conversation,
            seq,
            str(frame["message_id"]),
            str(frame["client_msg_id"]),
            self.clock.now(),
        )

    def log(self) -> ReceiverLog:
        """Everything it was sent, as the checker reads it."""
        return ReceiverLog(
            self.name,
            [uuid.UUID(c) for c in self.conversations],
            [
                ConnectionLog(
                    c.number,
                    {uuid.UUID(k): v for k, v in c.cursors.items()},
                    {uuid.UUID(k): list(v) for k, v in c.seqs.items()},
                    [uuid.UUID(k) for k in c.not_recovered],
                    c.opened_at,
                )
                for c in self.connections
            ],
        )
