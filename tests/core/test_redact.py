"""Masking secrets: a URL's password and credential parameters, and secrets anywhere in free text."""

from __future__ import annotations

import pytest

from thunes.core.redact import redact_text, redact_url


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://bot:s3cret@db:5432/optuna", "postgresql://bot:***@db:5432/optuna"),
    # a password holding '@', '/' or ':' is hidden whole, never half-shown
    ("postgresql://bot:p@ss/w:rd@db/x", "postgresql://bot:***@db/x"),
    ("redis://:only-a-password@cache:6379/0", "redis://:***@cache:6379/0"),
    ("postgresql://db/x?user=bot&password=s3cret&sslmode=require",
     "postgresql://db/x?user=bot&password=***&sslmode=require"),
    ("https://api.example.com/v1?apiKey=K123&symbol=BTC", "https://api.example.com/v1?apiKey=***&symbol=BTC"),
])
def test_redact_url_hides_the_password_and_credential_parameters(url, shown):
    assert redact_url(url) == shown


@pytest.mark.parametrize("url", [
    "sqlite:///data/thunes.sqlite", "postgresql://bot@db:5432/x", "ws://127.0.0.1:8765/ws", "memory", "",
])
def test_a_url_without_credentials_is_unchanged(url):
    assert redact_url(url) == url


def test_redact_text_masks_urls_and_key_values_in_prose_and_dumps():
    text = ("cannot connect to postgresql://bot:PW1@db/x: refused; retry 'postgresql://u:PW2@h/y' "
            "api_key=K1 secret: 'S1' {\"token\": \"T1\"} {'X-MBX-APIKEY': 'K2'} http://h/?password=PW3")
    masked = redact_text(text)
    for secret in ("PW1", "PW2", "PW3", "K1", "S1", "T1", "K2"):
        assert secret not in masked
    assert "postgresql://bot:***@db/x: refused" in masked and "'postgresql://u:***@h/y'" in masked


def test_redact_text_leaves_prose_about_secret_settings_alone():
    """A settings error names the field; the word after the colon is the message, not a value."""
    line = "exchange.api_key: must be printable ASCII; telegram.token: Input should be a valid string"
    assert redact_text(line) == line
