"""The consumers' log lines that explain a lost message: what each instance did with its
partition (took it, handed it back, lost its lease, restarted its worker after a `DeliveryGap`
or an `expected offset` fence), between the supervisor's marks of each process's start and
exit. Read from `<data_dir>/logs/consumer*.log` after a run; the services log JSON lines.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

_PARTITION = re.compile(r"\bpartition (\d+)\b")
_MARK = re.compile(r"^--- (\S+) rtm: (started pid \d+|exited with code -?\d+)")


def partition_lines(log_dir: Path, partitions: Sequence[int], limit: int = 400) -> list[str]:
    """`consumer-2 <time> <message>` for every line about one of `partitions`, and every
    start and exit of a consumer process, in time order (the last `limit`)."""
    wanted = set(partitions)
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
            about = {int(n) for n in _PARTITION.findall(message)}
            if about & wanted:
                stamp = str(entry.get("ts", ""))
                found.append((stamp, f"{log.stem} {stamp} {entry.get('level', '')} {message}"))
    found.sort()
    return [text for _, text in found[-limit:]]
