"""Errors of `rtm chaos`, one root::

    ChaosError          a run could not be set up or carried out (not a verdict on the system)
    └── LoginFailed     auth did not log a user in (retried by the clients; fatal at setup)
    MalformedFrame      a server sent what the protocol does not allow: a finding, recorded by
                        the client that read it, which then reconnects

A violation found by the checker is not an exception: it is the run's result.
"""

from __future__ import annotations


class ChaosError(Exception):
    """The run could not be set up or carried out; the message is meant for people."""


class LoginFailed(ChaosError):
    """Auth refused or did not answer a login."""


class MalformedFrame(Exception):
    """A frame that is not a JSON object with the fields its type has (a corrupted frame)."""
