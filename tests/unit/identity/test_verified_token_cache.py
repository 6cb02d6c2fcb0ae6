"""VerifiedTokenCache, pure: a cached signature check never outlives the token, the codec that
checked it, or a clock moved back before the check; the cache stays bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clinicos.identity.tokens import (
    AccessClaims,
    TokenCodec,
    TokenInvalid,
    VerifiedTokenCache,
    new_signing_key,
)

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
TTL = timedelta(minutes=15)


def codec() -> TokenCodec:
    key = new_signing_key("k1")
    return TokenCodec(issuer="clinicos", audience="clinicos-api", keys={"k1": key}, active_kid="k1")


def issue(c: TokenCodec, *, session_id: str = "s1") -> str:
    token, _ = c.issue(
        user_id="u1",
        organization_id="o1",
        roles=("clinician",),
        session_id=session_id,
        now=NOW,
        ttl=TTL,
    )
    return token


class CountingCheck:
    """codec.verify_access, counting how often the signature really is checked."""

    def __init__(self, c: TokenCodec, token: str) -> None:
        self.codec, self.token, self.calls = c, token, 0

    def at(self, now: datetime) -> CountingCheck:
        self.now = now
        return self

    def __call__(self) -> AccessClaims:
        self.calls += 1
        return self.codec.verify_access(self.token, now=self.now)


def test_a_verified_token_is_checked_once_then_served_from_the_cache() -> None:
    c = codec()
    token = issue(c)
    cache = VerifiedTokenCache()
    check = CountingCheck(c, token)

    first = cache.verify(c, token, now=NOW, check=check.at(NOW))
    later = NOW + timedelta(minutes=5)
    second = cache.verify(c, token, now=later, check=check.at(later))

    assert first == second
    assert first.session_id == "s1"
    assert check.calls == 1


def test_an_expired_token_is_refused_even_when_cached() -> None:
    c = codec()
    token = issue(c)
    cache = VerifiedTokenCache()
    check = CountingCheck(c, token)
    cache.verify(c, token, now=NOW, check=check.at(NOW))

    expired = NOW + TTL
    with pytest.raises(TokenInvalid, match="expired"):
        cache.verify(c, token, now=expired, check=check.at(expired))
    assert check.calls == 1  # refused from the cached expiry, and the entry is gone
    assert len(cache) == 0
    with pytest.raises(TokenInvalid, match="expired"):
        cache.verify(c, token, now=expired, check=check.at(expired))


def test_a_reloaded_codec_verifies_again() -> None:
    c = codec()
    token = issue(c)
    cache = VerifiedTokenCache()
    cache.verify(c, token, now=NOW, check=CountingCheck(c, token).at(NOW))

    # The keys were reloaded and the token's key is gone: the cached answer must not count.
    reloaded = codec()
    with pytest.raises(TokenInvalid, match=r"unknown key id|Invalid"):
        cache.verify(reloaded, token, now=NOW, check=lambda: reloaded.verify_access(token, now=NOW))
    assert len(cache) == 0


def test_a_clock_moved_back_before_the_check_verifies_again() -> None:
    c = codec()
    token = issue(c)
    cache = VerifiedTokenCache()
    check = CountingCheck(c, token)
    cache.verify(c, token, now=NOW + timedelta(minutes=1), check=check.at(NOW))

    earlier = NOW - timedelta(minutes=1)  # before the token's nbf
    with pytest.raises(TokenInvalid, match="not yet valid"):
        cache.verify(c, token, now=earlier, check=check.at(earlier))
    assert check.calls == 2


def test_a_refused_token_is_not_cached() -> None:
    c = codec()
    cache = VerifiedTokenCache()
    with pytest.raises(TokenInvalid):
        cache.verify(c, "not.a.token", now=NOW, check=lambda: c.verify_access("x.y.z", now=NOW))
    assert len(cache) == 0


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    c = codec()
    cache = VerifiedTokenCache(max_entries=2)
    tokens = [issue(c, session_id=f"s{i}") for i in range(3)]
    checks = [CountingCheck(c, t).at(NOW) for t in tokens]
    cache.verify(c, tokens[0], now=NOW, check=checks[0])
    cache.verify(c, tokens[1], now=NOW, check=checks[1])
    cache.verify(c, tokens[0], now=NOW, check=checks[0])  # token 0 is now the most recent
    cache.verify(c, tokens[2], now=NOW, check=checks[2])  # evicts token 1

    assert len(cache) == 2
    cache.verify(c, tokens[0], now=NOW, check=checks[0])
    cache.verify(c, tokens[1], now=NOW, check=checks[1])
    assert (checks[0].calls, checks[1].calls) == (1, 2)
    cache.clear()
    assert len(cache) == 0
