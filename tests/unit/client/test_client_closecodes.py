"""The SDK's reaction to each close code is docs/protocol.md's table, "8. WebSocket close codes"."""

from __future__ import annotations

import pytest

from rtm.client import CloseAction, close_action
from rtm.shared.settings import REPO_ROOT


@pytest.mark.parametrize(
    ("code", "action"),
    [
        (1000, CloseAction.RECONNECT),
        (1001, CloseAction.RECONNECT),
        (1005, CloseAction.RECONNECT),
        (1006, CloseAction.RECONNECT),
        (1011, CloseAction.RECONNECT),
        (1012, CloseAction.RECONNECT),
        (4008, CloseAction.RECONNECT),
        (4013, CloseAction.PAUSE),
        (4505, CloseAction.REFRESH),
        (4500, CloseAction.STOP),
        (1003, CloseAction.STOP),
        (1007, CloseAction.STOP),
        (1008, CloseAction.STOP),
        (1009, CloseAction.STOP),
        (4501, CloseAction.STOP),
        (4502, CloseAction.STOP),
        (4503, CloseAction.STOP),
        (4504, CloseAction.STOP),
        (4999, CloseAction.RECONNECT),
    ],
)
def test_each_close_code_gets_the_documented_action(code: int, action: CloseAction) -> None:
    assert close_action(code) is action


def test_every_code_of_the_protocol_table_is_covered_by_its_reconnect_column() -> None:
    """Read the table itself: "no" rows stop (4500 "no, with the same token" too: issue 14 says
    never after 4500), "yes" rows reconnect (4013 after a pause, 4505 after a refresh)."""
    text = (REPO_ROOT / "docs" / "protocol.md").read_text("utf-8")
    table = text.split("## 8. WebSocket close codes", 1)[1].split("\n\n", 1)[0]
    rows = [line.split("|")[1:4] for line in table.splitlines() if line.startswith("| 1")]
    rows += [line.split("|")[1:4] for line in table.splitlines() if line.startswith("| 4")]
    assert len(rows) >= 14
    for codes, _meaning, column in rows:
        answer = column.strip()
        for code in (int(c) for c in codes.replace("/", " ").split()):
            action = close_action(code)
            if answer.startswith("no"):
                assert action is CloseAction.STOP, code
            elif "refresh" in answer:
                assert action is CloseAction.REFRESH, code
            elif "pause" in answer:
                assert action is CloseAction.PAUSE, code
            else:
                assert action is CloseAction.RECONNECT, code
