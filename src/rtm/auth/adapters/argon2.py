"""`PasswordHasher` with argon2id, off the event loop.

argon2 is deliberately slow and memory-hard (~30 ms and 19 MiB per hash at OWASP's minimum), so
every hash and verify runs in a small dedicated thread pool: the event loop keeps answering health
checks while 20 logins hash, and the pool size bounds the memory those hashes take at once.
argon2-cffi releases the GIL while it hashes, so the threads run in parallel.

Unknown users are "verified" against a dummy hash made with the same parameters, so that an
unknown user and a wrong password cost the same time.
"""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError


@dataclass(frozen=True, slots=True)
class Argon2Parameters:
    memory_kib: int
    time_cost: int
    parallelism: int
    hash_len: int = 32
    salt_len: int = 16


class Argon2PasswordHasher:
    """Hashes and verifies passwords on `workers` threads.

    Args:
        params: the argon2id cost; hashes made with other parameters still verify and are
            reported by `needs_rehash`, so raising the cost upgrades users as they log in.
        workers: threads hashing at once (each holds `memory_kib` while it runs).
    """

    def __init__(self, params: Argon2Parameters, *, workers: int = 2) -> None:
        self._hasher = Argon2Hasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            hash_len=params.hash_len,
            salt_len=params.salt_len,
            type=Type.ID,
        )
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; `password_hash=None` checks against the dummy hash (and
        is always False) so that a missing account takes as long as a wrong password."""
        if password_hash is None:
            password_hash = await self._dummy_hash()
            password = password + "\x00not-the-dummy"  # cannot match even by chance
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._verify, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """The hash was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    async def warm_up(self) -> None:
        """Make the dummy hash now, so the first unknown-user login costs what later ones do."""
        await self._dummy_hash()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _dummy_hash(self) -> str:
        if self._dummy is None:  # two concurrent first calls both hash: harmless
            self._dummy = await self.hash(secrets.token_urlsafe(16))
        return self._dummy

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
