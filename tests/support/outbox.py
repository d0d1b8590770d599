"""`FakeOutbox`: a socket's send queue that keeps every frame, for tests of live delivery."""

from __future__ import annotations

import orjson


class FakeOutbox:
    """Stands in for `rtm.shared.ws.Outbox`: never full, keeps the frames in order."""

    overflowed = False

    def __init__(self) -> None:
        self.frames: list[str] = []

    def put(self, frame: str) -> bool:
        self.frames.append(frame)
        return True

    def seqs(self) -> list[int]:
        """The `seq` of every frame (message frames only)."""
        return [orjson.loads(f)["seq"] for f in self.frames]

    def presence(self) -> list[tuple[str, str]]:
        """(user_id, status) of every frame (presence frames only)."""
        return [(f["user_id"], f["status"]) for f in map(orjson.loads, self.frames)]
