"""`Client`: sign in, `connect()`, then `send()` and iterate `events()`.

The client owns reliability (outbox, reconnects, resume, gap filling, token refresh), so the
application has no retry code of its own. Mirrors clients/js/src/client.ts.

`Client` is put together from one mixin per concern over the shared state of
`rtm.client.base.ClientBase`:

- `rtm.client.signin`: register, sign in, tokens and their refresh;
- `rtm.client.rest`: history, conversations, members and users over HTTP;
- `rtm.client.sending`: `send` (the outbox), typing and read markers on the producer socket;
- `rtm.client.receiving`: `events()`, cursors, and the consumer socket's frames and resumes.

What is here is what needs them all: `connect()` (this user's outbox and receiver, both
sockets wired to the mixins' callbacks) and `close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from rtm.client.connection import Connection
from rtm.client.errors import RtmError
from rtm.client.events import (
    AckEvent,
    ConnectionState,
    ConnectionStateEvent,
    MessageEvent,
    SocketName,
)
from rtm.client.http import request_json
from rtm.client.outbox import Outbox
from rtm.client.protocol import websocket_url
from rtm.client.receiver import Receiver
from rtm.client.receiving import ReceivingMixin
from rtm.client.rest import RestMixin
from rtm.client.sending import SendingMixin
from rtm.client.signin import SignInMixin


class Client(SignInMixin, RestMixin, SendingMixin, ReceivingMixin):
    """The rtm client over auth's HTTP front and the producer's and consumer's sockets.

    Args:
        auth_url: auth's HTTP base, e.g. `http://127.0.0.1:8080`.
        producer_url: the producer's HTTP base (its socket is `<base>/v1/ws`), or several
            instances' (reconnects rotate through them).
        consumer_url: the consumer's, likewise.
        store: outbox and cursors (`MemoryStore` by default; `FileStore(path)` to survive a
            restart of the process).
        http: an `httpx.AsyncClient` to use (the client makes and closes its own otherwise).
        backoff: reconnect delays (full jitter, 0.25 s doubling up to 5 s).
        timing: ping interval, pong and handshake timeouts.
        outbox: window and pacing of sends.
    """

    # -- the sockets -----------------------------------------------------------------------

    async def connect(self) -> None:
        """Load this user's outbox and cursors from the store and open both sockets; returns
        once both are usable.

        After a socket failed for good (a close code that forbids reconnecting, or the end of
        the session), signing in again and calling `connect()` again opens new sockets.

        Raises:
            RtmError: `closed` when a socket is refused for good (e.g. 4504 too many
                connections); the other keeps trying until `close()` or the next `connect()`.
        """
        session = self._require_session()
        if self._producer is not None:
            if ConnectionState.FAILED not in self.states.values():
                return
            await self._close_sockets()
        user_id = session.user_id
        if self._state_user != user_id:
            # Outbox and cursors belong to one user; the same user connecting again keeps them
            # (and the futures of the sends still waiting for their ack).
            if self._outbox is not None:
                await self._outbox.stop()
            if self._receiver is not None:
                await self._receiver.stop()
            self._state_user = user_id
            self._outbox = Outbox(
                self._store,
                user_id,
                self._write_producer_send,
                lambda ack, entry: self._emit(AckEvent(ack, entry.conversation_id, entry.body)),
                self._outbox_options,
            )
            self._receiver = Receiver(
                self._store,
                user_id,
                lambda c, after, limit: self.history(c, after_seq=after, limit=limit),
                lambda message: self._emit(MessageEvent(message)),
            )
        outbox, receiver = self._outbox, self._receiver
        assert outbox is not None
        assert receiver is not None
        await outbox.restore()
        await receiver.restore()
        receiver.start()
        outbox.start()
        opened: dict[str, asyncio.Future[None]] = {
            name: asyncio.get_running_loop().create_future() for name in ("producer", "consumer")
        }

        def on_state(socket: SocketName) -> Any:
            def changed(state: ConnectionState, code: int | None, reason: str | None) -> None:
                waiting = opened[socket]
                if state is ConnectionState.OPEN and not waiting.done():
                    waiting.set_result(None)
                elif state is ConnectionState.FAILED and not waiting.done():
                    waiting.set_exception(
                        RtmError("closed", f"{socket} socket closed {code or ''} {reason or ''}")
                    )
                self._emit(ConnectionStateEvent(socket, state, code, reason))

            return changed

        common: dict[str, Any] = {
            "token": lambda: self._require_session().fresh(),
            "refresh": lambda: self._require_session().refresh(),
            "backoff": self._backoff,
            "timing": self._timing,
        }
        self._producer = Connection(
            "producer",
            [websocket_url(u) for u in self._producer_urls],
            ready_type="auth_ok",
            on_frame=self._on_producer_frame,
            on_open=self._on_producer_open,
            on_down=self._on_producer_down,
            on_state=on_state("producer"),
            **common,
        )
        self._consumer = Connection(
            "consumer",
            [websocket_url(u) for u in self._consumer_urls],
            ready_type="ready",
            on_frame=self._on_consumer_frame,
            on_open=self._on_consumer_open,
            on_down=self._on_consumer_down,
            on_state=on_state("consumer"),
            prepare_url=self._consumer_url,
            **common,
        )
        self._producer.start()
        self._consumer.start()
        try:
            await asyncio.gather(*opened.values())
        finally:
            for future in opened.values():
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved: both may fail, one is raised

    @property
    def states(self) -> dict[SocketName, ConnectionState]:
        return {
            "producer": self._producer.state if self._producer else ConnectionState.IDLE,
            "consumer": self._consumer.state if self._consumer else ConnectionState.IDLE,
        }

    # -- ending ----------------------------------------------------------------------------

    async def logout(self) -> None:
        """End the session on the server (its sockets close 4503), then close."""
        session = self._session
        if session is not None and session.tokens.refresh_token:
            await request_json(
                self._http,
                "POST",
                f"{self._auth_url}/v1/auth/logout",
                body={"refresh_token": session.tokens.refresh_token},
            )
        await self.close()

    async def close(self) -> None:
        """Close both sockets and stop every task; `events()` ends. The client is done: unacked
        sends stay in the store and a new client over the same store resends them (with a
        `FileStore`, in another process too); cursors are written."""
        await self._close_sockets()
        for task in list(self._background):
            task.cancel()
        self._closed = True
        if self._outbox is not None:
            await self._outbox.stop()
            self._outbox.fail_waiting(
                RtmError("closed", "the client was closed; kept in the store")
            )
        if self._receiver is not None:
            await self._receiver.stop()
        self._reads.fail_all(RtmError("closed", "the client was closed"))
        if self._session is not None:
            self._session.close()
        if self._own_http:
            with contextlib.suppress(RuntimeError):
                await self._http.aclose()
        self._events.put_nowait(None)

    async def _close_sockets(self) -> None:
        for connection in (self._producer, self._consumer):
            if connection is not None:
                await connection.close()
        self._producer = self._consumer = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
