"""Whose address X-Forwarded-For gives: believed only from a trusted proxy, the rightmost address
that is not one, and never when an entry is not an address."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from voltlib.config import Settings
from voltlib.gateway.proxies import client_address, networks

TRUSTED = networks(["10.0.0.5/32", "192.168.1.0/24"])


def test_only_a_trusted_peer_is_believed() -> None:
    assert client_address("10.0.0.5", ["198.51.100.7"], TRUSTED) == "198.51.100.7"
    assert client_address("10.0.0.6", ["198.51.100.7"], TRUSTED) is None  # anyone else may write it
    assert client_address("10.0.0.5", [], TRUSTED) is None
    assert client_address(None, ["198.51.100.7"], TRUSTED) is None


def test_the_rightmost_untrusted_hop_is_the_client() -> None:
    # the client forged a first entry; the second proxy appended what the first one saw
    assert client_address("10.0.0.5", ["6.6.6.6, 198.51.100.7", "192.168.1.9"], TRUSTED) == "198.51.100.7"
    assert client_address("10.0.0.5", ["192.168.1.9, 192.168.1.10"], TRUSTED) == "192.168.1.9"
    assert client_address("10.0.0.5", ["2001:db8::7"], TRUSTED) == "2001:db8::7"


def test_a_malformed_entry_voids_the_header() -> None:
    assert client_address("10.0.0.5", ["198.51.100.7, not-an-address"], TRUSTED) is None
    assert client_address("10.0.0.5", ["unknown"], TRUSTED) is None


def test_bad_trusted_proxies_are_refused_at_start() -> None:
    with pytest.raises(ValidationError):
        Settings(trusted_proxies=["10.0.0.300/32"])
