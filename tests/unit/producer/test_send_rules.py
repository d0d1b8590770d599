"""Pure rules of the send side: bodies, titles, read markers and conversation members."""

from __future__ import annotations

import uuid

import pytest

from rtm.producer.domain.exceptions import ValidationFailed
from rtm.producer.domain.model import ConversationKind, CreateConversation
from rtm.producer.domain.rules import (
    direct_key,
    plan_members,
    validate_body,
    validate_read_seq,
    validate_title,
)
from rtm.shared.contract import MAX_SEQ
from rtm.shared.errors import ErrorCode


def test_body_is_trimmed_and_kept_otherwise_verbatim() -> None:
    """Surrounding whitespace goes; markup and SQL stay exactly as written."""
    assert (
        validate_body("  '; DROP TABLE x; -- <script>  \n", 4096) == "'; DROP TABLE x; -- <script>"
    )


@pytest.mark.parametrize("body", ["", "   ", "\n\t "])
def test_blank_body_is_refused(body: str) -> None:
    """A body that trims to nothing is `validation_failed` on `body`."""
    with pytest.raises(ValidationFailed) as caught:
        validate_body(body, 4096)
    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    assert caught.value.field == "body"


def test_body_length_counts_characters_after_trimming() -> None:
    """4096 characters pass (even multi-byte ones, with padding); 4097 do not."""
    assert validate_body(" " + "é" * 4096 + " ", 4096) == "é" * 4096
    with pytest.raises(ValidationFailed):
        validate_body("a" * 4097, 4096)


@pytest.mark.parametrize("body", ["a\x00b", "\ud800", "ok \udfff"])
def test_nul_and_lone_surrogates_are_refused(body: str) -> None:
    """NUL and lone surrogates are not valid UTF-8 text."""
    with pytest.raises(ValidationFailed) as caught:
        validate_body(body, 4096)
    assert caught.value.field == "body"


def test_title_is_trimmed_and_blank_means_none() -> None:
    assert validate_title("  Weekend  ", 200) == "Weekend"
    assert validate_title("   ", 200) is None
    assert validate_title(None, 200) is None
    with pytest.raises(ValidationFailed):
        validate_title("x" * 201, 200)


@pytest.mark.parametrize("seq", [-1, MAX_SEQ + 1])
def test_read_seq_must_fit_a_bigint(seq: int) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_read_seq(seq)
    assert caught.value.field == "seq"


def test_creator_is_always_a_member_and_members_are_unique() -> None:
    me, peer = uuid.uuid4(), uuid.uuid4()
    command = CreateConversation(me, ConversationKind.GROUP, (peer, peer, me), "t")
    assert plan_members(command, 1000) == tuple(sorted((me, peer), key=str))


@pytest.mark.parametrize("others", [0, 2])
def test_direct_conversation_has_exactly_two_members(others: int) -> None:
    me = uuid.uuid4()
    command = CreateConversation(
        me, ConversationKind.DIRECT, tuple(uuid.uuid4() for _ in range(others)), None
    )
    with pytest.raises(ValidationFailed) as caught:
        plan_members(command, 1000)
    assert caught.value.field == "member_ids"


def test_direct_with_only_yourself_is_refused() -> None:
    me = uuid.uuid4()
    with pytest.raises(ValidationFailed):
        plan_members(CreateConversation(me, ConversationKind.DIRECT, (me,), None), 1000)


def test_group_size_is_capped() -> None:
    command = CreateConversation(
        uuid.uuid4(), ConversationKind.GROUP, tuple(uuid.uuid4() for _ in range(3)), None
    )
    with pytest.raises(ValidationFailed):
        plan_members(command, 3)


def test_direct_key_does_not_depend_on_order() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert direct_key((a, b)) == direct_key((b, a)) == ":".join(sorted((str(a), str(b))))
