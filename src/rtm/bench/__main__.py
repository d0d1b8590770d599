"""`python -m rtm.bench`: the same as `rtm bench` (see `rtm.bench.cli`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run `rtm bench` with `argv` (default: the command line); returns the exit status."""
    from rtm.bench.cli import main as run

    return run(list(argv) if argv is not None else None)


if __name__ == "__main__":
    sys.exit(main())
