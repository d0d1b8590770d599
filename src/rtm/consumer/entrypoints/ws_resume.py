"""`catch_up_all`: one `resume` frame's catch-up on the consumer's `/v1/ws` (docs/protocol.md,
"6. Consumer").

It lives apart from `rtm.consumer.entrypoints.ws_session` because it is the one long piece of
frame handling that needs none of the session's own state (its limits, timers and tasks): only
the connection's `LiveConnection`, the read service and the user. The session holds the live
messages around it (`begin_resume` ... `end_hold`) and answers its `unavailable`.
"""

from __future__ import annotations

import uuid

import orjson

from rtm.consumer.domain.exceptions import ConversationNotVisible, Unavailable
from rtm.consumer.entrypoints.hub import LiveConnection
from rtm.consumer.entrypoints.schemas import ResumeFrame, resumed_entry, resumed_frame
from rtm.consumer.services import ReadService
from rtm.shared.errors import ErrorCode


async def catch_up_all(
    connection: LiveConnection, reads: ReadService, user_id: uuid.UUID, frame: ResumeFrame
) -> Unavailable | None:
    """Look every named conversation up in one query (membership and head), then catch up
    the visible ones; the others are reported `forbidden` at no further cost. Returns what
    PostgreSQL answered if it could not serve the resume (then no `resumed` was pushed)."""
    report: dict[str, dict[str, object]] = {}
    recovered: list[tuple[uuid.UUID, bool]] = []
    cursors = list(frame.cursors.items())
    try:
        heads = await reads.visible_heads(user_id, list(frame.cursors))
    except Unavailable as exc:
        return _resume_unavailable(connection, exc, cursors)
    for index, (conversation_id, cursor) in enumerate(cursors):
        head = heads.get(conversation_id)
        if head is None:
            report[str(conversation_id)] = resumed_entry(cursor, False, error=ErrorCode.FORBIDDEN)
            continue
        try:
            recovery = await connection.catch_up(conversation_id, cursor, head=head)
        except ConversationNotVisible:
            report[str(conversation_id)] = resumed_entry(cursor, False, error=ErrorCode.FORBIDDEN)
            continue
        except Unavailable as exc:
            return _resume_unavailable(connection, exc, cursors[index:])
        # Complete only if nothing went out live past the cursor before this resume (a
        # connection that did not hold, or whose grace ended): see `missed_before`.
        complete = recovery.recovered and not connection.missed_before(conversation_id, cursor)
        recovered.append((conversation_id, complete))
    # `last_seq`: what the connection has been sent by now, as live messages of the
    # conversations resumed first kept flowing while the later ones were read.
    for conversation_id, done in recovered:
        last = max(connection.last_sent(conversation_id), frame.cursors[conversation_id])
        report[str(conversation_id)] = resumed_entry(last, done)
    connection.push(orjson.dumps(resumed_frame(report)).decode(), "resumed")
    return None


def _resume_unavailable(
    connection: LiveConnection, error: Unavailable, untried: list[tuple[uuid.UUID, int]]
) -> Unavailable:
    """PostgreSQL could not serve the resume: answer `unavailable` at once rather than try
    the other conversations (each would wait as long). The conversations resumed before it
    were sent; for the rest the connection stays at the client's cursor (`keep_from`), so
    their live messages never skip what the client lacks. The client resumes again after
    `retry_after_ms`. Returns `error`, for the session to answer."""
    for conversation_id, cursor in untried:
        connection.keep_from(conversation_id, cursor)
    return error
