"""rtm.client: the Python asyncio SDK for rtm (the counterpart of the TypeScript clients/js).

One `Client` over auth's HTTP front and the producer's and consumer's WebSockets
(docs/protocol.md). The SDK owns reliability, so an application has no retry code:

- `await client.send(conversation_id, body)` returns the ack once the message is stored (the
  SDK sends with `"wait":"stored"`, so `ack.seq` is its position and history holds it). Every
  send is kept in an outbox keyed by `client_msg_id` (in a JSON file with `FileStore`, so a
  restarted process resends it) and written again after every reconnect until acked;
  `not_stored_yet` and other transient errors are retried with the same id.
- Reconnects with exponential backoff and full jitter as the close code allows
  (docs/protocol.md, "8. WebSocket close codes"), rotating through the instances given.
- `async for event in client.events()` yields each conversation's messages exactly once, in
  `seq` order: per-conversation cursors (persisted with the outbox) are given with every
  consumer connection (`?cursors=`); duplicates are dropped, and gaps or `recovered: false`
  filled from history before later messages.
- Tokens are refreshed before expiry, one refresh at a time, and both sockets re-authenticate
  in-band; a silent socket is pinged and replaced.

Example::

    async with Client(auth_url, producer_url, consumer_url) as client:
        await client.login("alice", "a long passphrase")
        await client.connect()
        ack = await client.send(conversation_id, "Hello!")
        async for event in client.events():
            if isinstance(event, MessageEvent):
                print(event.message.body)

Errors: everything the SDK raises is an `RtmError` (its `code` is the protocol's error code or
one of the SDK's: `network`, `closed`, `session_ended`, `store_failed`). See docs/python-sdk.md.
"""

from __future__ import annotations

from rtm.client.backoff import Backoff
from rtm.client.client import Client
from rtm.client.closecodes import CloseAction, close_action
from rtm.client.connection import Timing
from rtm.client.errors import RtmError
from rtm.client.events import (
    AckEvent,
    ConnectionState,
    ConnectionStateEvent,
    ConversationEvent,
    ErrorEvent,
    Event,
    MessageEvent,
    PresenceEvent,
    ReadEvent,
    TokensEvent,
    TypingEvent,
)
from rtm.client.models import Ack, Conversation, Message, MessagePage, ReadState, Tokens, User
from rtm.client.outbox import OutboxOptions
from rtm.client.store import FileStore, MemoryStore, OutboxEntry, Store

__all__ = [
    "Ack",
    "AckEvent",
    "Backoff",
    "Client",
    "CloseAction",
    "ConnectionState",
    "ConnectionStateEvent",
    "Conversation",
    "ConversationEvent",
    "ErrorEvent",
    "Event",
    "FileStore",
    "MemoryStore",
    "Message",
    "MessageEvent",
    "MessagePage",
    "OutboxEntry",
    "OutboxOptions",
    "PresenceEvent",
    "ReadEvent",
    "ReadState",
    "RtmError",
    "Store",
    "Timing",
    "Tokens",
    "TokensEvent",
    "TypingEvent",
    "User",
    "close_action",
]
