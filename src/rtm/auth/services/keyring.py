"""The in-memory view of the signing keys one auth process signs and verifies with.

See `rtm.auth.domain.keys` for the lifecycle. `KeyRing` answers from memory (no database round
trip per token); `reload`, `ensure`, `rotate` and `maintain` talk to the `KeyStore` port, and the
composition root calls `maintain` from a background loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from rtm.auth.domain.exceptions import Unavailable
from rtm.auth.domain.keys import KeyCipher, KeyDecryptionError, SigningKey, new_stored_key, open_key
from rtm.auth.domain.ports import KeyStore

logger = logging.getLogger(__name__)


class KeyRing:
    """Signing keys of this process.

    Args:
        store: where keys are shared between processes.
        cipher: decrypts private keys.
        clock: the current time.
        access_ttl: lifetime of access tokens (old keys stay published this long, plus leeway).
        leeway: verifier clock skew tolerance, added to the retirement delay.
        publish_lead: how long a rotated-in key is published before it signs.
        rotation_interval: sign with a new key this often (None: only on demand).
    """

    def __init__(
        self,
        store: KeyStore,
        cipher: KeyCipher,
        clock: Callable[[], datetime],
        *,
        access_ttl: timedelta,
        leeway: timedelta,
        publish_lead: timedelta,
        rotation_interval: timedelta | None,
    ) -> None:
        self._store = store
        self._cipher = cipher
        self._clock = clock
        self._access_ttl = access_ttl
        self._leeway = leeway
        self._publish_lead = publish_lead
        self._rotation_interval = rotation_interval
        self._keys: dict[str, SigningKey] = {}
        self._loaded = False

    @property
    def loaded(self) -> bool:
        """Readiness: keys were read from the store at least once and one of them signs."""
        return self._loaded and any(key.signs_at(self._clock()) for key in self._keys.values())

    def signing_key(self) -> SigningKey:
        """The newest active key. `Unavailable` before the first load."""
        now = self._clock()
        active = [key for key in self._keys.values() if key.signs_at(now)]
        if not active:
            raise Unavailable("no signing key loaded yet")
        return max(active, key=lambda key: (key.activates_at, key.created_at))

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        """The public key published under `kid`, or None (a dict lookup, never a query)."""
        key = self._keys.get(kid)
        if key is None or key.retired_at(self._clock()):
            return None
        return key.public_key

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """Every key not retired, the one signing now first, then newest first."""
        now = self._clock()
        live = [key for key in self._keys.values() if not key.retired_at(now)]
        live.sort(key=lambda key: (key.signs_at(now), key.activates_at), reverse=True)
        return {"keys": [dict(key.jwk) for key in live]}

    async def reload(self) -> None:
        """Re-read the keys (others processes may have rotated)."""
        keys: dict[str, SigningKey] = {}
        for stored in await self._store.load(now=self._clock()):
            try:
                keys[stored.kid] = open_key(self._cipher, stored)
            except KeyDecryptionError:
                logger.error("signing key %s is unusable (wrong RTM_AUTH_KEY_SECRET?)", stored.kid)
        self._keys = keys
        self._loaded = True

    async def ensure(self) -> None:
        """Load the keys, creating the very first one if there is none (race-safe)."""
        await self.reload()
        if not any(key.signs_at(self._clock()) for key in self._keys.values()):
            now = self._clock()
            key = new_stored_key(self._cipher, now=now, activates_at=now)
            if await self._store.add_first(key, now=now):
                logger.info("created signing key %s", key.kid)
            await self.reload()

    async def rotate(self, *, lead: timedelta | None = None, force: bool = True) -> str | None:
        """Store a new key that signs after `lead` (default: the publish lead) and schedule the
        others' retirement; returns its kid. With `force=False` it is skipped (None) unless
        rotation is due."""
        now = self._clock()
        activates_at = now + (self._publish_lead if lead is None else lead)
        due_before: datetime | None = None
        if not force:
            if self._rotation_interval is None:
                return None
            due_before = now - self._rotation_interval
        key = new_stored_key(self._cipher, now=now, activates_at=activates_at)
        rotated = await self._store.rotate(
            key,
            retire_old_after=activates_at + self._access_ttl + self._leeway,
            unless_newer_than=due_before,
        )
        if rotated:
            logger.info("rotated signing keys: %s signs from %s", key.kid, activates_at)
        await self.reload()
        return key.kid if rotated else None

    async def maintain(self) -> None:
        """One pass of the background loop: rotate when due, then pick up others' changes."""
        if self._rotation_interval is not None and self._due():
            await self.rotate(force=False)
        else:
            await self.reload()

    def _due(self) -> bool:
        if not self._keys or self._rotation_interval is None:
            return False
        newest = max(key.created_at for key in self._keys.values())
        return self._clock() - newest >= self._rotation_interval
