"""Settings come from flags, then VOLTLIB_* variables, then a TOML file, then defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from voltlib.config import load_settings


def test_precedence_flag_over_env_over_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "voltlib.toml"
    toml.write_text('port = 9001\nheartbeat_interval = 120\nregistration_policy = "pending"\n')
    monkeypatch.delenv("VOLTLIB_CONFIG", raising=False)
    monkeypatch.setenv("VOLTLIB_HEARTBEAT_INTERVAL", "90")
    settings = load_settings(toml, port=9002)
    assert settings.port == 9002  # flag
    assert settings.heartbeat_interval == 90  # environment beats the file
    assert settings.registration_policy == "pending"  # file beats the default
    assert settings.database_url == "sqlite:///voltlib.db"  # default


def test_unknown_or_invalid_settings_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOLTLIB_CONFIG", raising=False)
    bad = tmp_path / "bad.toml"
    bad.write_text("heartbeat_intervall = 120\n")
    with pytest.raises(ValidationError):
        load_settings(bad)
    with pytest.raises(ValidationError):
        load_settings(None, registration_policy="accept-everyone")
