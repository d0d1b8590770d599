"""How many bits of entropy a secret plausibly has: a conservative estimate, for refusing weak
secrets at start-up (`RTM_ENV=prod`).

A secret's strength cannot be read off the secret; what can be seen is how it was *not* made at
random. The estimate is (characters that carry information) x log2(alphabet):

- the alphabet is the one the secret evidently comes from: hex (16), base64/base64url (64) when
  it mixes upper and lower case, else the character classes it uses (lower 26, upper 26, digits
  10, `-_` 2, `+/` 2, other printable ASCII 33, anything else 128);
- a character carries no information when it continues a repeat of something earlier (a run of
  at least `min_run` characters: `aaaa...`, `passwordpassword`) or a sequence (`abcde`,
  `98765`) of at least `min_run` characters. `min_run` is long enough that random secrets almost
  never lose a character to it (hex: 8; others: 5).

So `secrets.token_urlsafe(32)` (43 characters, 258 bits) and `secrets.token_hex(32)` (256 bits)
pass 256 bits; 32 x "a", `password`-like words and short secrets do not. It cannot recognise a
passphrase of dictionary words; generate secrets, don't choose them.
"""

from __future__ import annotations

import math
import string

_HEX = frozenset(string.hexdigits)
_BASE64 = frozenset(string.ascii_letters + string.digits + "-_+/")
_CLASSES: tuple[tuple[frozenset[str], int], ...] = (
    (frozenset(string.ascii_lowercase), 26),
    (frozenset(string.ascii_uppercase), 26),
    (frozenset(string.digits), 10),
    (frozenset("-_"), 2),
    (frozenset("+/"), 2),
    (frozenset(string.punctuation + " ") - frozenset("-_+/"), 33),
)
GENERATE_HINT = "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"


def _alphabet(secret: str) -> int:
    chars = set(secret)
    if chars <= _HEX and not (chars & set("abcdef") and chars & set("ABCDEF")):
        return 16
    if (
        chars <= _BASE64
        and chars & set(string.ascii_lowercase)
        and chars & set(string.ascii_uppercase)
    ):
        return 64
    size = sum(count for members, count in _CLASSES if chars & members)
    return size + (128 if any(not (c.isascii() and c.isprintable()) for c in chars) else 0)


def _informative(secret: str, min_run: int) -> int:
    """Characters not explained by a repeat or a sequence of `min_run` or more."""
    count, i, n = 0, 0, len(secret)
    while i < n:
        skip = max(_repeat_length(secret, i), _sequence_length(secret, i))
        if skip >= min_run:
            count += 1  # the run's first character (or its start) counts once
            i += skip
        else:
            count += 1
            i += 1
    return count


def _repeat_length(secret: str, i: int) -> int:
    """Longest prefix of secret[i:] that also starts at some j < i (overlap allowed)."""
    best = 0
    for j in range(i):
        length = 0
        while i + length < len(secret) and secret[j + length] == secret[i + length]:
            length += 1
        best = max(best, length)
    return best


def _sequence_length(secret: str, i: int) -> int:
    """Length of the run from i whose successive code points differ by one constant step in
    -1, 0 or +1 (`aaaa`, `abcd`, `4321`)."""
    if i + 1 >= len(secret):
        return 1
    step = ord(secret[i + 1]) - ord(secret[i])
    if step not in (-1, 0, 1):
        return 1
    length = 2
    while (
        i + length < len(secret) and ord(secret[i + length]) - ord(secret[i + length - 1]) == step
    ):
        length += 1
    return length


def entropy_bits(secret: str) -> float:
    """A conservative estimate of the bits of entropy in `secret` (see the module docstring)."""
    secret = secret.rstrip("=")[:512]  # base64 padding carries nothing; 512 show enough
    if not secret:
        return 0.0
    alphabet = _alphabet(secret)
    min_run = 8 if alphabet == 16 else 5
    return _informative(secret, min_run) * math.log2(alphabet)
