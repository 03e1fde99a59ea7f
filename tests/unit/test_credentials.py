"""Password and token hashing."""

from __future__ import annotations

import pytest

from voltlib.security import credentials as c


def test_password_hash_is_salted_and_verifies() -> None:
    first, second = c.hash_password("sixteen-bytes-ok!"), c.hash_password("sixteen-bytes-ok!")
    assert first != second  # salted
    assert "sixteen" not in first
    assert c.verify_password("sixteen-bytes-ok!", first)
    assert not c.verify_password("sixteen-bytes-ok?", first)
    assert not c.verify_password("anything", "garbage")


@pytest.mark.parametrize("password", ["short", "x" * 41, "é" * 21])  # 5, 41, 42 bytes
def test_password_length_policy_is_in_bytes(password: str) -> None:
    with pytest.raises(c.PasswordPolicyError):
        c.hash_password(password)


async def test_verified_cache_skips_the_slow_hash_only_for_the_same_hash_and_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    stored = c.hash_password("correct-horse-battery")
    cache = c.VerifiedCache()
    assert await cache.verify("correct-horse-battery", stored)
    calls: list[str] = []
    real = c.verify_password
    monkeypatch.setattr(c, "verify_password", lambda p, s: calls.append(p) or real(p, s))
    assert await cache.verify("correct-horse-battery", stored)
    assert calls == []  # remembered
    assert not await cache.verify("wrong-horse-battery!", stored)
    assert not await cache.verify("wrong-horse-battery!", stored)  # failures are never remembered
    assert calls == ["wrong-horse-battery!"] * 2
    other = c.hash_password("correct-horse-battery")  # rotated hash: must check again
    assert await cache.verify("correct-horse-battery", other)
    assert len(calls) == 3


async def test_verified_cache_is_bounded() -> None:
    cache = c.VerifiedCache(capacity=2)
    hashes = [c.hash_password(f"password-number-{n}") for n in range(3)]
    for n, stored in enumerate(hashes):
        assert await cache.verify(f"password-number-{n}", stored)
    assert len(cache._seen) == 2


def test_api_tokens_are_random_and_hashed() -> None:
    token = c.new_api_token()
    assert token.startswith("vlt_") and len(token) > 40
    assert c.new_api_token() != token
    assert c.hash_api_token(token) == c.hash_api_token(token)
    assert token not in c.hash_api_token(token)


def test_generated_charge_point_passwords_meet_the_policy() -> None:
    for _ in range(20):
        c.check_policy(c.new_charge_point_password())
