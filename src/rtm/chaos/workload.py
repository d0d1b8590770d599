"""What a chaos run sends: who talks in which conversation, and when (pure, seeded).

Everything random in a run comes from one `random.Random(seed)`: the conversations (groups of
4-6 members and direct pairs, every user in at least one when there are seats enough), each
message's conversation and sender, its `client_msg_id`, and the fault schedule. The same seed
therefore replays the same plan against a fresh system; only the system's timing differs.

Messages are spread evenly in time (`index / rate`) and uniformly over conversations, so every
conversation carries about `rate / conversations` messages a second: enough that "a new message
got through in every conversation" marks the end of an outage within a fraction of a second.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from typing import Literal

from rtm.chaos.errors import ChaosError

GROUP_SIZES = (4, 6)

ConversationKind = Literal["group", "direct"]


@dataclass(frozen=True, slots=True)
class PlannedConversation:
    """`members` are user indexes; the first one creates the conversation."""

    kind: ConversationKind
    members: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    """One message the run will send: due `at` seconds after the load starts."""

    index: int
    at: float
    conversation: int
    sender: int
    client_msg_id: uuid.UUID


def plan_conversations(
    rng: random.Random, users: int, conversations: int
) -> list[PlannedConversation]:
    """Half groups (rounded up) of 4-6 members, the rest direct pairs, all pairs distinct.

    Users are seated first one each, into the emptiest conversation with room, so that every
    user sends and receives when there are at least as many seats as users; the remaining seats
    are filled at random.
    """
    if users < 2:
        raise ChaosError("a chaos run needs at least 2 users")
    if conversations < 1:
        raise ChaosError("a chaos run needs at least 1 conversation")
    groups = math.ceil(conversations / 2)
    directs = conversations - groups
    if directs > users * (users - 1) // 2:
        raise ChaosError(f"{users} users make too few distinct pairs for {directs} directs")
    low, high = min(GROUP_SIZES[0], users), min(GROUP_SIZES[1], users)
    sizes = [rng.randint(low, high) for _ in range(groups)] + [2] * directs
    seats: list[list[int]] = [[] for _ in sizes]
    pairs: set[tuple[int, ...]] = set()

    def fits(conversation: int, user: int) -> bool:
        members = seats[conversation]
        if user in members or len(members) >= sizes[conversation]:
            return False
        if conversation >= groups and members:  # completing a direct: the pair must be new
            return tuple(sorted((members[0], user))) not in pairs
        return True

    def seat(conversation: int, user: int) -> None:
        seats[conversation].append(user)
        if conversation >= groups and len(seats[conversation]) == 2:
            pairs.add(tuple(sorted(seats[conversation])))

    everyone = list(range(users))
    rng.shuffle(everyone)
    for user in everyone:
        open_ = [c for c in range(len(sizes)) if fits(c, user)]
        if not open_:
            break
        seat(min(open_, key=lambda c: (len(seats[c]) / sizes[c], rng.random())), user)
    for conversation, size in enumerate(sizes):
        while len(seats[conversation]) < size:
            candidates = [u for u in range(users) if fits(conversation, u)]
            if not candidates:
                raise ChaosError(f"cannot seat conversation {conversation} with {users} users")
            seat(conversation, rng.choice(candidates))
    return [
        PlannedConversation("group" if c < groups else "direct", tuple(members))
        for c, members in enumerate(seats)
    ]


def plan_messages(
    rng: random.Random,
    conversations: list[PlannedConversation],
    rate: float,
    duration: float,
) -> list[PlannedMessage]:
    """`rate * duration` messages, evenly spaced, each to a random conversation from a random
    member of it; `client_msg_id`s come from `rng` too (a replay reuses them, on a new system)."""
    count = round(rate * duration)
    planned = []
    for index in range(count):
        conversation = rng.randrange(len(conversations))
        sender = rng.choice(conversations[conversation].members)
        client_msg_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        planned.append(PlannedMessage(index, index / rate, conversation, sender, client_msg_id))
    return planned
