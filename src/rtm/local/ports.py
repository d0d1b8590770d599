"""Which ports the runner will use, decided before anything starts.

Every port is checked up front, so busy ones fail in milliseconds with one message naming each
port and the setting that moves it, instead of after initdb with a service's bind error buried in
its log. `0` asks for any free port (tests use it everywhere).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rtm.local.errors import BusyPort, PortBusyError, RunnerError
from rtm.local.process import free_port, port_is_free


@dataclass(frozen=True, slots=True)
class PortClaim:
    """One port someone needs on `host`: `key` names it in the result, `setting` moves it."""

    key: str
    owner: str
    port: int
    setting: str
    host: str = "127.0.0.1"


def resolve_ports(
    claims: Iterable[PortClaim],
    *,
    is_free: Callable[[int, str], bool] = port_is_free,
    pick_free: Callable[[str], int] = free_port,
) -> dict[str, int]:
    """Map each claim's key to a concrete port.

    Raises:
        PortBusyError: fixed ports are in use by other programs (it lists every one).
        RunnerError: two claims ask for the same fixed port.
    """
    claims = list(claims)
    taken: dict[int, PortClaim] = {}
    busy: list[BusyPort] = []
    for claim in claims:
        if claim.port == 0:
            continue
        if claim.port in taken:
            other = taken[claim.port]
            raise RunnerError(
                f"port {claim.port} is configured twice: for {other.owner} ({other.setting}) "
                f"and for {claim.owner} ({claim.setting}); give one of them another port"
            )
        taken[claim.port] = claim
        if not is_free(claim.port, claim.host):
            busy.append(BusyPort(claim.port, claim.host, claim.owner, claim.setting))
    if busy:  # all of them at once: fixing one per run would take as many runs as busy ports
        raise PortBusyError(busy)
    resolved: dict[str, int] = {}
    for claim in claims:
        port = claim.port
        while port == 0 or (claim.port == 0 and port in taken):
            port = pick_free(claim.host)
        if claim.port == 0:
            taken[port] = claim
        resolved[claim.key] = port
    return resolved
