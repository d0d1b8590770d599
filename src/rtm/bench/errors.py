"""The one error `rtm bench` reports to people as a line, without a traceback."""

from __future__ import annotations


class BenchError(RuntimeError):
    """A benchmark could not run as planned (a worker failed, a socket would not open...)."""
