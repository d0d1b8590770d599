"""`python -m rtm.chaos`: the same as `rtm chaos` (see `rtm.chaos.cli`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run `rtm chaos` with `argv` (default: the command line); returns the exit status."""
    from rtm.chaos.cli import main as run

    return run(list(argv) if argv is not None else None)


if __name__ == "__main__":
    sys.exit(main())
