"""Producer and consumer learn auth's access-token TTL from the variable auth reads, so one
`.env` bounds token lifetimes everywhere (issue 11)."""

from __future__ import annotations

import pytest

from rtm.consumer.settings import ConsumerSettings
from rtm.producer.settings import ProducerSettings


@pytest.mark.parametrize("settings_class", [ProducerSettings, ConsumerSettings])
def test_the_access_token_ttl_is_auths_variable(
    settings_class: type[ProducerSettings] | type[ConsumerSettings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert settings_class().access_token_ttl_seconds == 15 * 60
    monkeypatch.setenv("RTM_AUTH_ACCESS_TOKEN_TTL_SECONDS", "300")
    assert settings_class().access_token_ttl_seconds == 300
    assert settings_class(access_token_ttl_seconds=120).access_token_ttl_seconds == 120


def test_the_jwks_url_is_under_the_auth_url() -> None:
    settings = ProducerSettings(auth_url="https://auth.example/")
    assert settings.jwks_url == "https://auth.example/.well-known/jwks.json"
