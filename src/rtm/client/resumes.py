"""The resumes of one consumer socket: where the cursors go, and what to write as the server
answers (no I/O). Mirrors the `resumePlan` of clients/js/src/protocol.ts, with two additions.

The cursors go in the URL when they fit (`?cursors=`, the server resumes them before any live
message), else in `resume` frames after `ready` (`?resume=1`). The server handles a socket's
frames in order and answers each resume once: `resumed`, an `unavailable` error (PostgreSQL
down: the same resume again when it says), or `validation_failed` naming `cursors` (or
`resume`) when it refuses them. So one resume is asked at a time (the URL's, or one frame) and
every answer is that one's:

- `unavailable`: the same resume is written again after `retry_after_ms`, once (the caller runs
  one retry at a time), never the other resumes with it;
- refused in the URL: the same cursors are written as `resume` frames (the server holds live
  messages for them, as for `?resume=1`);
- a refused frame: a server whose `RTM_MAX_RESUME_CONVERSATIONS` is lower than the SDK's; it is
  written again in halves, and the smaller size is kept for the next connections (each refusal
  counts as a protocol error towards 4501, so the size is learned, not tried again).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rtm.client.protocol import MAX_RESUME_CONVERSATIONS, Frame, consumer_url, resume_frames


def refuses_resume(frame: Mapping[str, Any]) -> bool:
    """Whether a consumer error frame refuses the cursors of the URL or of a `resume` frame."""
    field = str(frame.get("field") or "")
    return frame.get("code") == "validation_failed" and (
        field in ("cursors", "resume") or field.startswith("cursors.")
    )


class Resumes:
    """The resume asked of the server (one at a time), those still to ask, and how many
    conversations the server takes in one."""

    def __init__(self) -> None:
        #: Most conversations in one resume (URL or frame); lowered when the server refuses.
        self.limit = MAX_RESUME_CONVERSATIONS
        self._queue: list[Frame] = []
        self._asked: Frame | None = None
        self._in_url = False
        self._stalled = False

    @property
    def asking(self) -> bool:
        """A resume is asked and not answered yet."""
        return self._asked is not None

    def url(self, ws_url: str, cursors: Mapping[str, int]) -> str:
        """The URL of a new consumer socket, with these cursors or `?resume=1`."""
        url, frames = consumer_url(ws_url, cursors, self.limit)
        self._in_url = not frames
        self._asked = {"type": "resume", "cursors": dict(cursors)} if self._in_url else None
        self._queue = frames
        self._stalled = False
        return url

    def opened(self) -> list[Frame]:
        """The socket said `ready`: the frame to write (none when the URL has the cursors)."""
        return self._next()

    def resumed(self) -> list[Frame]:
        """The asked resume is done: the next frame to write."""
        self._asked = None
        self._in_url = self._stalled = False
        return self._next()

    def unavailable(self) -> bool:
        """The asked resume could not be done now: True when a retry is to be scheduled (not
        when one is pending already, or nothing was asked)."""
        if self._asked is None or self._stalled:
            return False
        self._in_url = False
        self._stalled = True
        return True

    def retry(self) -> list[Frame]:
        """The resume to write again after an `unavailable`."""
        if self._asked is None or not self._stalled:
            return []
        self._stalled = False
        return [self._asked]

    def refused(self, error: Mapping[str, Any]) -> tuple[bool, list[Frame]]:
        """A `validation_failed` error frame: whether it was the asked resume's refusal that
        the SDK handles, and the frames to write now."""
        if self._asked is None or not refuses_resume(error):
            return False, []
        cursors: dict[str, int] = self._asked["cursors"]
        self._asked = None
        if self._in_url:
            self._in_url = False
        elif len(cursors) > 1:
            self.limit = min(self.limit, len(cursors) // 2)
        else:
            return False, self._next()  # one cursor refused: nothing smaller to try
        self._queue = resume_frames(cursors, self.limit) + self._queue
        return True, self._next()

    def down(self) -> None:
        """The socket closed: nothing is asked any more (the next URL starts again)."""
        self._queue = []
        self._asked = None
        self._in_url = self._stalled = False

    def _next(self) -> list[Frame]:
        if self._asked is not None or not self._queue:
            return []
        self._asked = self._queue.pop(0)
        return [self._asked]
