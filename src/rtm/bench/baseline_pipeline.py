"""The `pipeline` baseline: a bare pipeline with rtm's guarantees, the ceiling of this machine.

One process does what rtm's producer and consumer do between them, with nothing else: no auth,
no validation beyond parsing, no membership, no partitions, no presence. A sender's frame on
`/s/<room>` is published to JetStream (a file stream on the run's nats-server, so the run's
`sync_interval` applies) with `Nats-Msg-Id`, and the sender is acked
(`{"type":"ack","client_msg_id":...}`) once the PubAck arrives. A pull consumer fetches in
batches; each batch is stored in one PostgreSQL transaction (a scratch table of the run's
PostgreSQL with a dense per-room `seq`), then fanned out to the room's receivers (`/r/<room>`)
as frames carrying what rtm's `message` frame carries, then acked to JetStream (AckAll: the batch
is stored, so everything up to its last message may go).

So an acked message is in the stream (never lost); a stored one is delivered after its commit;
`(room, seq)` is the table's key and `(room, client_msg_id)` is unique, so storing a message
twice fails loudly instead of silently; and one ordered consumer keeps each room's order. What
is left is the work any system with these guarantees must do: the comparison `rooms` vs
`pipeline rooms` shows what rtm's own layers cost on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import signal
import traceback
import uuid
from collections import defaultdict
from multiprocessing.connection import Connection
from typing import Any

import orjson
import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from rtm.bench.model import Failed

_TEXT = WSMsgType.TEXT
BATCH = 512
FETCH_TIMEOUT_S = 1.0

_CREATE = """
CREATE TABLE {table} (
    room text NOT NULL,
    seq bigint NOT NULL,
    message_id uuid NOT NULL,
    sender_id text NOT NULL,
    client_msg_id text NOT NULL,
    body text NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room, seq),
    UNIQUE (room, client_msg_id)
)
"""
_INSERT = """
INSERT INTO {table} (room, seq, message_id, sender_id, client_msg_id, body)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::text[], $5::text[], $6::text[])
RETURNING to_char(sent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
"""


class Pipeline:
    """The process's state: the rooms' receivers and seqs, NATS and PostgreSQL handles."""

    def __init__(self, js: Any, db: Any, tag: str) -> None:
        self.js = js
        self.db = db
        self.subject = f"rtm_pipe_{tag}"
        self.stream = f"RTM_PIPE_{tag.upper()}"
        self.table = f"bench_pipeline_{tag}"
        self.receivers: dict[str, list[WSTransport]] = defaultdict(list)
        self.seq: dict[str, int] = defaultdict(int)
        self.senders = itertools.count(1)
        self.outbox: asyncio.Queue[tuple[_Sender, WSTransport, bytes]] = asyncio.Queue()
        self.failure: str | None = None

    async def setup(self) -> Any:
        from nats.js.api import AckPolicy, ConsumerConfig

        await self.js.add_stream(name=self.stream, subjects=[f"{self.subject}.>"], storage="file")
        await self.db.execute(_CREATE.format(table=self.table))
        return await self.js.pull_subscribe(
            f"{self.subject}.>",
            durable="pipeline",
            stream=self.stream,
            config=ConsumerConfig(ack_policy=AckPolicy.ALL, max_ack_pending=-1),
        )

    async def teardown(self) -> None:
        from rtm.shared.connect import NATS_FAILURES
        from rtm.shared.postgres import POSTGRES_FAILURES

        with contextlib.suppress(*NATS_FAILURES):  # scratch, nothing more
            await self.js.delete_stream(self.stream)
        with contextlib.suppress(*POSTGRES_FAILURES):
            await self.db.execute(f"DROP TABLE IF EXISTS {self.table}")

    def publish(self, sender: _Sender, transport: WSTransport, payload: bytes) -> None:
        """Queue a send frame for `publishing`, which keeps the order frames arrived in."""
        self.outbox.put_nowait((sender, transport, payload))

    async def publishing(self) -> None:
        """Publish queued sends one after another (concurrent `publish_async` calls could pass
        each other while waiting for its in-flight limit); ack each to its sender once
        JetStream has it."""
        while True:
            sender, transport, payload = await self.outbox.get()
            send = orjson.loads(payload)
            client_msg_id = str(send["client_msg_id"])
            record = orjson.dumps({"s": sender.id, "c": client_msg_id, "b": send["body"]})
            future = await self.js.publish_async(
                f"{self.subject}.{sender.room}",
                record,
                headers={"Nats-Msg-Id": f"{sender.id}:{client_msg_id}"},
            )

            def acked(
                ack: asyncio.Future[Any],
                transport: WSTransport = transport,
                ref: str = client_msg_id,
            ) -> None:
                if ack.cancelled() or ack.exception() is not None:
                    answer = {"type": "error", "ref": ref, "code": "unavailable"}
                else:
                    answer = {"type": "ack", "client_msg_id": ref}
                transport.send(_TEXT, orjson.dumps(answer))

            future.add_done_callback(acked)

    async def consume(self, subscription: Any) -> None:
        """Fetch → store (one transaction) → fan out → AckAll, batch after batch, in order."""
        prefix = len(self.subject) + 1
        insert = await self.db.prepare(_INSERT.format(table=self.table))
        while True:
            try:
                messages = await subscription.fetch(BATCH, timeout=FETCH_TIMEOUT_S)
            except TimeoutError:  # nats.errors.TimeoutError, or asyncio's from deeper down
                continue
            if not messages:  # only status messages came back (a pull request expired)
                continue
            rooms, seqs, ids, senders, client_ids, bodies = [], [], [], [], [], []
            for message in messages:
                room = message.subject[prefix:]
                record = orjson.loads(message.data)
                self.seq[room] += 1
                rooms.append(room)
                seqs.append(self.seq[room])
                ids.append(uuid.uuid4())
                senders.append(record["s"])
                client_ids.append(record["c"])
                bodies.append(record["b"])
            # A failed store ends the pipeline (and the run, with its traceback): nothing here
            # retries, so its seqs stay dense.
            async with self.db.transaction():
                stamps = await insert.fetch(rooms, seqs, ids, senders, client_ids, bodies)
            for i, room in enumerate(rooms):
                frame = orjson.dumps(
                    {
                        "type": "message",
                        "message_id": str(ids[i]),
                        "conversation_id": room,
                        "seq": seqs[i],
                        "sender_id": senders[i],
                        "body": bodies[i],
                        "client_msg_id": client_ids[i],
                        "sent_at": stamps[i][0],
                    }
                )
                for receiver in self.receivers.get(room, ()):
                    receiver.send(_TEXT, frame)
            await messages[-1].ack()


class _Sender(WSListener):
    def __init__(self, pipeline: Pipeline, room: str) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.room = room
        self.id = f"s{next(pipeline.senders)}"

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is _TEXT:
            self.pipeline.publish(self, transport, frame.get_payload_as_bytes())


class _Receiver(WSListener):
    def __init__(self, pipeline: Pipeline, room: str) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.room = room

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.pipeline.receivers[self.room].append(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        with contextlib.suppress(ValueError):
            self.pipeline.receivers[self.room].remove(transport)


def pipeline_main(conn: Connection, nats_url: str, database_url: str) -> None:
    """Serve on a free loopback port (sent back over `conn`) until told to stop, then answer
    "stopped", or `Failed` with the traceback when the pipeline failed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def main() -> None:
        import asyncpg
        import nats

        tag = secrets.token_hex(4)
        nc = await nats.connect(nats_url, name="rtm-bench-pipeline", allow_reconnect=False)
        db = await asyncpg.connect(database_url, timeout=10)
        pipeline = Pipeline(nc.jetstream(), db, tag)
        tasks: list[asyncio.Task[None]] = []
        try:
            subscription = await pipeline.setup()
            tasks += [
                asyncio.create_task(pipeline.consume(subscription)),
                asyncio.create_task(pipeline.publishing()),
            ]

            def factory(request: WSUpgradeRequest) -> WSListener | None:
                parts = request.path.strip(b"/").split(b"/")
                if len(parts) != 2 or parts[0] not in (b"r", b"s"):
                    return None
                room = parts[1].decode()
                if parts[0] == b"s":
                    return _Sender(pipeline, room)
                return _Receiver(pipeline, room)

            server = await ws_create_server(factory, "127.0.0.1", 0, max_frame_size=1 << 20)
            conn.send(int(server.sockets[0].getsockname()[1]))
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)
            server.close()
            for task in tasks:  # a task that failed: its error is the run's
                if task.done():
                    task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await pipeline.teardown()
            await nc.close()
            await db.close()

    try:
        uvloop.run(main())
        conn.send("stopped")
    except Exception:  # last line of defence: the traceback goes to the parent's report
        with contextlib.suppress(OSError):
            conn.send(Failed(0, traceback.format_exc()))
    finally:
        conn.close()
