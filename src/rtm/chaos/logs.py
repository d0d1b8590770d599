"""The consumers' log lines that explain a failed run, read from `<data_dir>/logs/consumer*.log`
before the run's data is removed (the services log JSON lines):

- `partition_lines`, for a lost message: what each instance did with its partition (took it,
  handed it back, lost its lease, restarted its worker after a `DeliveryGap` or an `expected
  offset` fence), between the supervisor's marks of each process's start and exit;
- `trouble_lines`, for any other violation (a receiver that missed messages): every WARNING and
  ERROR of the consumers, and their starts and exits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

_PARTITION = re.compile(r"\bpartition (\d+)\b")
_MARK = re.compile(r"^--- (\S+) rtm: (started pid \d+|exited with code -?\d+)")


def partition_lines(log_dir: Path, partitions: Sequence[int], limit: int = 400) -> list[str]:
    """`consumer-2 <time> <message>` for every line about one of `partitions`, and every
    start and exit of a consumer process, in time order (the last `limit`)."""
    wanted = set(partitions)
    return _lines(log_dir, lambda _, message: bool(_about(message) & wanted), limit)


def trouble_lines(log_dir: Path, limit: int = 200) -> list[str]:
    """`consumer-2 <time> <level> <message>` for every WARNING or worse, and every start and
    exit of a consumer process, in time order (the last `limit`)."""
    return _lines(
        log_dir, lambda level, _: level.upper() in ("WARNING", "ERROR", "CRITICAL"), limit
    )


def _about(message: str) -> set[int]:
    return {int(n) for n in _PARTITION.findall(message)}


def _lines(log_dir: Path, keep: Callable[[str, str], bool], limit: int) -> list[str]:
    found: list[tuple[str, str]] = []
    for log in sorted(log_dir.glob("consumer*.log")):
        for line in log.read_text(errors="replace").splitlines():
            mark = _MARK.match(line)
            if mark:
                found.append((mark[1], f"{log.stem} {mark[1]} {mark[2]}"))
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict):
                continue
            message = str(entry.get("msg", ""))
            level = str(entry.get("level", ""))
            if keep(level, message):
                stamp = str(entry.get("ts", ""))
                found.append((stamp, f"{log.stem} {stamp} {level} {message}"))
    found.sort()
    return [text for _, text in found[-limit:]]
