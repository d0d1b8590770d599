"""Input rules of auth: usernames normalise and validate, passwords count bytes."""

from __future__ import annotations

import pytest

from rtm.auth.domain.exceptions import InvalidInput
from rtm.auth.domain.model import (
    login_username,
    normalise_username,
    search_prefix,
    validate_display_name,
    validate_password,
    validate_username,
)


def test_uppercase_and_fullwidth_names_collide() -> None:
    """`ADMIN`, `admin` and fullwidth `admin` are one username."""
    fullwidth = "\uff41\uff44\uff4d\uff49\uff4e"
    assert normalise_username("ADMIN") == normalise_username(fullwidth) == "admin"
    assert validate_username(fullwidth) == "admin"


@pytest.mark.parametrize("name", ["abc", "a_b.c-d", "x" * 32, "Alice_99", "\uff21\uff22\uff23"])
def test_valid_usernames_are_normalised(name: str) -> None:
    result = validate_username(name)
    assert result == normalise_username(name)


@pytest.mark.parametrize(
    "name", ["ab", "x" * 33, "has space", "émile", "a/b", "", "a\x00bc", "x" * 300, "名前です"]
)
def test_invalid_usernames_name_the_field(name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_username(name)
    assert caught.value.field == "username"


@pytest.mark.parametrize("password", ["12345678", "é" * 4, "x" * 1024, "ü" * 512])
def test_passwords_of_8_to_1024_bytes_pass(password: str) -> None:
    validate_password(password)


@pytest.mark.parametrize("password", ["1234567", "é" * 3, "x" * 1025, "ü" * 513, "ab\ud800cdefgh"])
def test_passwords_outside_8_to_1024_bytes_or_not_utf8_fail(password: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_password(password)
    assert caught.value.field == "password"


def test_display_name_defaults_trims_and_refuses_control_characters() -> None:
    assert validate_display_name(None, "alice") == "alice"
    assert validate_display_name("  Alice A.  ", "alice") == "Alice A."
    for bad in ["", "   ", "x" * 65, "bad\x07bell", "rtl\u202eoverride"]:
        with pytest.raises(InvalidInput):
            validate_display_name(bad, "alice")


def test_login_name_is_none_when_no_account_can_have_it() -> None:
    assert login_username("ALICE") == "alice"
    assert login_username("no spaces allowed") is None
    with pytest.raises(InvalidInput):
        login_username("x" * 257)


def test_search_prefix_normalises_and_rejects_empty() -> None:
    assert search_prefix(" AL ") == "al"
    assert search_prefix("a b") is None
    with pytest.raises(InvalidInput) as caught:
        search_prefix("  ")
    assert caught.value.field == "q"
