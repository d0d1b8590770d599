"""What `LocalSystem.kill(..., tree=True)` signals: a process and all its descendants."""

from __future__ import annotations

from pathlib import Path

from rtm.local.process import descendants, tree_states


def fake_proc(root: Path, processes: dict[int, tuple[int, str]]) -> Path:
    """A /proc with `pid: (parent, state)`; names with spaces and parentheses, as real ones."""
    for pid, (parent, state) in processes.items():
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "stat").write_text(f"{pid} (post (gres) x) {state} {parent} 1 1 0\n")
    (root / "self").mkdir()
    return root


def test_descendants_and_their_states_are_read_from_proc(tmp_path: Path) -> None:
    """PostgreSQL's backends are its children, but not in its process group (setsid)."""
    proc = fake_proc(tmp_path, {10: (1, "S"), 11: (10, "T"), 12: (10, "S"), 13: (11, "T"),
                                20: (1, "S")})  # fmt: skip
    assert descendants(10, proc) == [11, 12, 13]
    assert descendants(20, proc) == []
    states = tree_states(10, proc)
    assert (states["T"], states["S"]) == (2, 2)
