"""`RTM_ENV=prod` refuses unsafe settings at start-up, each error naming the setting to change."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from pydantic import ValidationError

from rtm.auth.settings import AuthSettings
from rtm.consumer.settings import ConsumerSettings
from rtm.producer.settings import ProducerSettings
from rtm.shared.secret_strength import entropy_bits

ORIGINS = "https://chat.example.com"
AUTH_URL = "https://auth.example.com"


def auth(**values: Any) -> AuthSettings:
    base = {"env": "prod", "allowed_origins": ORIGINS, "key_secret": secrets.token_urlsafe(32)}
    return AuthSettings(**(base | values))


@pytest.mark.parametrize(
    "secret",
    [
        "a" * 32,
        "a" * 64,
        "passwordpasswordpasswordpassword",
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "rtm-production-signing-key-secret-for-our-chat",
        "Tr0ub4dor&3Tr0ub4dor&3Tr0ub4dor&3",
    ],
)
def test_a_key_secret_of_low_entropy_is_refused_in_prod(secret: str) -> None:
    with pytest.raises(ValidationError) as refused:
        auth(key_secret=secret)
    message = str(refused.value)
    assert "RTM_AUTH_KEY_SECRET has about" in message
    assert "secrets.token_urlsafe(32)" in message


def test_generated_secrets_are_accepted_in_prod() -> None:
    for _ in range(200):
        auth(key_secret=secrets.token_urlsafe(32))
        auth(key_secret=secrets.token_hex(32))
    assert entropy_bits(secrets.token_urlsafe(32)) >= 256


def test_a_low_entropy_secret_is_still_fine_in_test() -> None:
    assert AuthSettings(env="test", key_secret="a" * 32, argon2_memory_kib=64).env == "test"


@pytest.mark.parametrize("settings", [AuthSettings, ProducerSettings, ConsumerSettings])
def test_any_origin_is_refused_in_prod(settings: type[Any]) -> None:
    values = {"env": "prod", "allowed_origins": "*", "key_secret": secrets.token_urlsafe(32)}
    with pytest.raises(ValidationError, match=r"RTM_ALLOWED_ORIGINS=\* .* is refused"):
        settings(**values, auth_url=AUTH_URL)


@pytest.mark.parametrize("settings", [ProducerSettings, ConsumerSettings])
def test_an_http_auth_url_is_refused_in_prod_unless_allowed(settings: type[Any]) -> None:
    values = {"env": "prod", "allowed_origins": ORIGINS}
    with pytest.raises(ValidationError, match="RTM_ALLOW_HTTP_AUTH_URL=true"):
        settings(**values, auth_url="http://auth:8080")
    assert settings(**values, auth_url="http://auth:8080", allow_http_auth_url=True)
    assert settings(**values, auth_url=AUTH_URL).auth_url == AUTH_URL
    assert settings(env="dev", auth_url="http://auth:8080")  # dev and test: no https needed
    for local in ("http://127.0.0.1:8080", "http://[::1]:8080", "http://localhost:8080"):
        assert settings(**values, auth_url=local)  # `rtm up`: auth on this machine


def test_a_ping_timeout_above_the_ping_interval_is_refused() -> None:
    with pytest.raises(ValidationError, match="RTM_WS_PING_TIMEOUT_S"):
        ConsumerSettings(ws_ping_interval_s=10, ws_ping_timeout_s=11)
