"""Pure validation rules of the send side (docs/protocol.md, "4. Conversations", "5. Producer"): no
I/O, no framework."""

from __future__ import annotations

import uuid

from rtm.producer.domain.exceptions import ValidationFailed
from rtm.producer.domain.model import ConversationKind, CreateConversation
from rtm.shared.contract import MAX_SEQ


def check_text(value: str, field: str) -> None:
    """Refuse NUL and lone surrogates: not valid UTF-8, and PostgreSQL would refuse them too."""
    if "\x00" in value:
        raise ValidationFailed(field, f"{field} must not contain NUL")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationFailed(field, f"{field} is not valid UTF-8 (lone surrogate)") from exc


def validate_body(body: str, max_chars: int) -> str:
    """The body to store: trimmed, 1 to `max_chars` characters, no NUL, valid UTF-8."""
    check_text(body, "body")
    trimmed = body.strip()
    if not trimmed:
        raise ValidationFailed("body", "body must not be empty")
    if len(trimmed) > max_chars:
        raise ValidationFailed("body", f"body is longer than {max_chars} characters")
    return trimmed


def validate_title(title: str | None, max_chars: int) -> str | None:
    """A trimmed title of at most `max_chars` characters; blank means no title."""
    if title is None:
        return None
    check_text(title, "title")
    trimmed = title.strip()
    if len(trimmed) > max_chars:
        raise ValidationFailed("title", f"title is longer than {max_chars} characters")
    return trimmed or None


def validate_read_seq(seq: int) -> int:
    if not 0 <= seq <= MAX_SEQ:
        raise ValidationFailed("seq", "seq must be a non-negative 64-bit integer")
    return seq


def plan_members(command: CreateConversation, max_group_members: int) -> tuple[uuid.UUID, ...]:
    """The members of a new conversation, sorted: the creator is always one of them; a direct
    conversation has exactly two."""
    members = sorted({command.creator_id, *command.member_ids}, key=str)
    if command.kind is ConversationKind.DIRECT and len(members) != 2:
        raise ValidationFailed(
            "member_ids", "a direct conversation has exactly one other member than you"
        )
    if len(members) > max_group_members:
        raise ValidationFailed("member_ids", f"a group has at most {max_group_members} members")
    return tuple(members)


def direct_key(members: tuple[uuid.UUID, ...]) -> str:
    """`<smaller user id>:<larger user id>`: what makes a direct conversation unique per pair."""
    first, second = sorted(str(member) for member in members)
    return f"{first}:{second}"
