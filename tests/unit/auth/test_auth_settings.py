"""AuthSettings: the env names others rely on, and refusals of unsafe production values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rtm.auth.settings import AuthSettings

SECRET = "RBLytSg3fd2Y1MDOBbWLcIyyIQMKe4pJb369DALJ4ns"  # secrets.token_urlsafe(32)
ORIGINS = "https://chat.example.com"  # prod refuses the default, *


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RTM_ENV", "RTM_AUTH_KEY_SECRET", "RTM_AUTH_GRPC_PORT", "RTM_AUTH_HTTP_PORT",
                 "RTM_TOKEN_ISSUER", "RTM_AUTH_ARGON2_MEMORY_KIB"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def test_defaults_match_the_protocol() -> None:
    settings = AuthSettings()
    assert (settings.grpc_port, settings.http_port) == (50051, 8080)
    assert settings.token_issuer == "rtm-auth"
    assert settings.access_token_ttl_seconds == 15 * 60
    assert settings.refresh_token_ttl_seconds == 30 * 24 * 3600


def test_env_names_are_the_ones_the_runner_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTM_AUTH_GRPC_PORT", "6001")
    monkeypatch.setenv("RTM_AUTH_HTTP_PORT", "6002")
    monkeypatch.setenv("RTM_TOKEN_ISSUER", "issuer-x")
    monkeypatch.setenv("RTM_GRPC_PORT", "1")  # not ours: ignored
    settings = AuthSettings()
    assert (settings.grpc_port, settings.http_port, settings.token_issuer) == (
        6001,
        6002,
        "issuer-x",
    )


def test_the_development_key_secret_is_refused_outside_dev() -> None:
    with pytest.raises(ValidationError, match="RTM_AUTH_KEY_SECRET"):
        AuthSettings(env="prod", allowed_origins=ORIGINS)
    with pytest.raises(ValidationError, match="RTM_AUTH_KEY_SECRET"):
        AuthSettings(env="prod", allowed_origins=ORIGINS, key_secret="short")
    assert (
        AuthSettings(
            env="prod", allowed_origins=ORIGINS, key_secret=SECRET
        ).key_secret.get_secret_value()
        == SECRET
    )


def test_weak_argon2_is_refused_except_in_tests() -> None:
    with pytest.raises(ValidationError, match="OWASP"):
        AuthSettings(env="prod", allowed_origins=ORIGINS, key_secret=SECRET, argon2_memory_kib=1024)
    assert AuthSettings(env="test", key_secret=SECRET, argon2_memory_kib=64).argon2_memory_kib == 64


def test_secrets_do_not_show_in_repr() -> None:
    assert SECRET not in repr(AuthSettings(env="prod", allowed_origins=ORIGINS, key_secret=SECRET))
