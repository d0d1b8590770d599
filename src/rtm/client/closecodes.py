"""What a WebSocket close code tells the client to do.

From docs/protocol.md, "8. WebSocket close codes" (the table is the contract; the unit tests
hold this function to it code by code), and issue 14's rule for SDKs: never reconnect after
4500, 4501, 4503 or 4504; refresh, then reconnect, after 4505.

- `RECONNECT` with backoff: 1000, 1001, 1005, 1006 (no close frame: a killed server), 1011,
  1012, 4008 (then `resume`, which the SDK always does), and any code it does not know.
- `PAUSE`: reconnect, but not before `FLOOD_PAUSE_S` (4013 sustained flood).
- `REFRESH`: refresh the access token, then reconnect (4505 token expired).
- `STOP`: never reconnect (1003, 1007, 1008, 1009, 4500, 4501, 4502, 4503, 4504). 4500 (a
  token the server cannot verify, or another user's) is not fixed by a refresh: the table's
  "no, with the same token" holds, since no token is tried again.
"""

from __future__ import annotations

import enum


class CloseAction(enum.StrEnum):
    """What to do after a socket closed with some code."""

    RECONNECT = "reconnect"
    PAUSE = "pause"
    REFRESH = "refresh"
    STOP = "stop"


#: How long to wait after 4013 (a sustained flood) before reconnecting, in seconds.
FLOOD_PAUSE_S = 10.0

#: The close code the SDK reports for a socket that ended without a close frame.
ABNORMAL_CLOSURE = 1006

_STOP = frozenset({1003, 1007, 1008, 1009, 4500, 4501, 4502, 4503, 4504})


def close_action(code: int) -> CloseAction:
    """The action for close `code` (see the module docstring)."""
    if code in _STOP:
        return CloseAction.STOP
    if code == 4505:
        return CloseAction.REFRESH
    if code == 4013:
        return CloseAction.PAUSE
    return CloseAction.RECONNECT
