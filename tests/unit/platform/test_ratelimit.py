"""Rate limiter: budgets, 429 headers, PHI-safe storage keys and the store-down policy.

Memory storage throughout; the store-down cases point Redis at a closed port (127.0.0.1:1), so
nothing here needs a Redis server.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator

import pytest
from httpx import ASGITransport, AsyncClient
from limits.aio.storage import MemoryStorage, RedisStorage
from pydantic import ValidationError
from starlette.requests import Request
from structlog.testing import capture_logs

from clinicos.config import ConfigurationError, Environment, RateLimitSettings, Settings
from clinicos.kernel.errors import RateLimited, ServiceUnavailable
from clinicos.platform.http.problems import domain_error_response
from clinicos.platform.http.ratelimit import rate_limit
from clinicos.platform.ratelimit import (
    RateLimiter,
    async_redis_uri,
    build_rate_limiter,
    derive_key_secret,
    storage_key,
)
from tests.support.ratelimit_app import TEST_USER_HEADER, build_app

CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"
EMAIL = "ana.quispe@example.org"


def make_settings(*, redis_url: str | None = None, **rate_limit: object) -> Settings:
    return Settings(
        env=Environment.test,
        redis_url=redis_url,  # pydantic coerces it to SecretStr
        rate_limit=RateLimitSettings(**rate_limit),
        _env_file=None,
    )


@pytest.fixture
async def unreachable_limiter() -> AsyncIterator[RateLimiter]:
    limiter = build_rate_limiter(make_settings(redis_url=CLOSED_PORT_REDIS))
    try:
        yield limiter
    finally:
        await limiter.aclose()


def app_client(limiter: RateLimiter) -> AsyncClient:
    return AsyncClient(transport=ASGITransport(app=build_app(limiter)), base_url="http://test")


# --- the limiter ---------------------------------------------------------------------------------


async def test_hit_when_budget_exhausted_raises_rate_limited_with_budget() -> None:
    limiter = build_rate_limiter(make_settings(read="3/minute"))
    before = time.time()

    remaining = [(await limiter.hit("read", "user:1")).remaining for _ in range(3)]
    with pytest.raises(RateLimited) as caught:
        await limiter.hit("read", "user:1")

    assert remaining == [2, 1, 0]
    exc = caught.value
    assert (exc.limit, exc.remaining) == (3, 0)
    assert 1 <= exc.retry_after <= 60
    # The oldest hit leaves the 60 s window first: that is when one unit comes back.
    assert math.floor(before) + 60 <= exc.reset_at <= math.ceil(time.time()) + 60


async def test_hit_when_budget_remains_reports_limit_and_reset() -> None:
    limiter = build_rate_limiter(make_settings(write="2/minute"))

    first = await limiter.hit("write", "user:1")
    last = await limiter.hit("write", "user:1")

    assert (first.limit, first.remaining, first.retry_after, first.enforced) == (2, 1, 0, True)
    assert first.reset_at >= time.time() + 59
    assert (last.remaining, last.enforced) == (0, True)
    assert 1 <= last.retry_after <= 60  # none left: says how long until the next unit
    assert first.headers() == {
        "X-RateLimit-Limit": "2",
        "X-RateLimit-Remaining": "1",
        "X-RateLimit-Reset": str(first.reset_at),
    }


async def test_hit_separate_keys_and_categories_have_independent_budgets() -> None:
    limiter = build_rate_limiter(make_settings(read="1/minute", write="1/minute"))
    await limiter.hit("read", "user:1")

    other_user = await limiter.hit("read", "user:2")
    other_category = await limiter.hit("write", "user:1")
    with pytest.raises(RateLimited):
        await limiter.hit("read", "user:1")

    assert (other_user.remaining, other_category.remaining) == (0, 0)


async def test_hit_when_disabled_never_limits() -> None:
    limiter = build_rate_limiter(make_settings(enabled=False, auth="1/minute"))

    statuses = [await limiter.hit("auth", "someone") for _ in range(10)]

    assert {(s.limit, s.remaining, s.enforced) for s in statuses} == {(1, 1, False)}


async def test_hit_unknown_category_raises_value_error() -> None:
    limiter = build_rate_limiter(make_settings())

    with pytest.raises(ValueError, match="unknown rate-limit category"):
        await limiter.hit("admin", "user:1")


def test_rate_limit_dependency_unknown_category_raises_at_declaration() -> None:
    with pytest.raises(ValueError, match="unknown rate-limit category"):
        rate_limit("reads")


async def test_storage_key_for_email_does_not_hold_the_email() -> None:
    limiter = build_rate_limiter(make_settings())
    await limiter.hit("auth", f"{EMAIL}|203.0.113.7")

    storage = limiter.storage
    assert isinstance(storage, MemoryStorage)
    stored = list(storage.events)
    assert len(stored) == 1
    for fragment in (EMAIL, "ana.quispe", "example.org", "203.0.113.7"):
        assert fragment not in stored[0]


def test_storage_key_is_keyed_by_installation_secret_and_category() -> None:
    one, other = derive_key_secret("secret-one"), derive_key_secret("secret-two")

    key = storage_key("auth", EMAIL, secret=one)

    assert key == storage_key("auth", EMAIL, secret=one)  # every process finds the same budget
    assert key.startswith("auth/") and len(key) == len("auth/") + 32
    # Keyed: a list of addresses hashed without the secret does not find the caller.
    assert key != storage_key("auth", EMAIL, secret=other)
    assert key.split("/")[1] != storage_key("read", EMAIL, secret=one).split("/")[1]


def test_settings_when_limit_string_invalid_name_the_variable() -> None:
    # Refused when settings load, so `config check` and every command name the variable.
    with pytest.raises(ValidationError) as caught:
        make_settings(ai="ten per fortnight", read="5/minute;100/day")

    fields = sorted(tuple(error["loc"]) for error in caught.value.errors())
    assert fields == [("ai",), ("read",)]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:pw@cache:6379/2", "async+redis://:pw@cache:6379/2"),
        ("rediss://cache:6380/0", "async+rediss://cache:6380/0"),
        ("unix:///run/redis.sock?db=1", "async+redis+unix:///run/redis.sock?db=1"),
    ],
)
def test_async_redis_uri_known_schemes_map_to_limits_async_storage(url: str, expected: str) -> None:
    assert async_redis_uri(url) == expected


def test_async_redis_uri_unknown_scheme_refused_without_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        async_redis_uri("memcached://user:hunter2@cache:11211")

    assert "hunter2" not in str(caught.value)
    assert caught.value.problems[0][0] == "CLINICOS_REDIS_URL"


async def test_build_with_redis_url_uses_shared_redis_storage(
    unreachable_limiter: RateLimiter,
) -> None:
    assert isinstance(unreachable_limiter.storage, RedisStorage)


# --- store unreachable: our policy -----------------------------------------------------------


async def test_hit_when_store_unreachable_auth_fails_closed(
    unreachable_limiter: RateLimiter,
) -> None:
    with capture_logs() as logs, pytest.raises(ServiceUnavailable):
        await unreachable_limiter.hit("auth", f"{EMAIL}|203.0.113.7")

    assert [(e["event"], e["policy"]) for e in logs] == [
        ("rate_limit_store_unavailable", "fail_closed")
    ]


@pytest.mark.parametrize("category", ["read", "write", "ai"])
async def test_hit_when_store_unreachable_fails_open_and_warns_without_key(
    unreachable_limiter: RateLimiter, category: str
) -> None:
    with capture_logs() as logs:
        status = await unreachable_limiter.hit(category, f"user:{EMAIL}")

    assert status.enforced is False
    assert status.remaining == status.limit
    assert len(logs) == 1
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["category"] == category
    assert logs[0]["policy"] == "fail_open"
    assert EMAIL not in repr(logs)


# --- over HTTP -------------------------------------------------------------------------------


async def test_route_when_budget_spent_answers_429_problem_with_headers() -> None:
    async with app_client(build_rate_limiter(make_settings(read="2/minute"))) as http:
        answers = [await http.get("/limited") for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
    assert {a.headers["X-RateLimit-Limit"] for a in answers} == {"2"}
    limited = answers[2]
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert int(limited.headers["X-RateLimit-Reset"]) >= time.time()


async def test_route_with_actor_limits_per_user_not_per_ip() -> None:
    async with app_client(build_rate_limiter(make_settings(read="1/minute"))) as http:
        first = await http.get("/limited", headers={TEST_USER_HEADER: "user-a"})
        other_user = await http.get("/limited", headers={TEST_USER_HEADER: "user-b"})
        anonymous = await http.get("/limited")
        again = await http.get("/limited", headers={TEST_USER_HEADER: "user-a"})

    assert [first.status_code, other_user.status_code, anonymous.status_code] == [200, 200, 200]
    assert again.status_code == 429


async def test_enforce_with_own_key_limits_sign_in_per_account() -> None:
    async with app_client(build_rate_limiter(make_settings(auth="2/minute"))) as http:
        same = [await http.post("/sign-in", params={"account": EMAIL}) for _ in range(3)]
        other = await http.post("/sign-in", params={"account": "someone@example.org"})

    assert [a.status_code for a in same] == [200, 200, 429]
    assert same[0].headers["X-RateLimit-Remaining"] == "1"
    assert other.status_code == 200


async def test_route_when_disabled_sends_no_budget_headers() -> None:
    async with app_client(build_rate_limiter(make_settings(enabled=False))) as http:
        answer = await http.get("/limited")

    assert answer.status_code == 200
    assert "X-RateLimit-Remaining" not in answer.headers


async def test_routes_when_store_unreachable_sign_in_503_and_reads_proceed(
    unreachable_limiter: RateLimiter,
) -> None:
    async with app_client(unreachable_limiter) as http:
        sign_in = await http.post("/sign-in", params={"account": EMAIL})
        read = await http.get("/limited")

    assert sign_in.status_code == 503
    assert sign_in.headers["content-type"] == "application/problem+json"
    assert sign_in.json()["code"] == "service_unavailable"
    assert "Retry-After" in sign_in.headers
    assert read.status_code == 200
    assert "X-RateLimit-Remaining" not in read.headers


def test_rate_limited_raised_legacy_way_renders_retry_after_without_limit() -> None:
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": []})

    answer = domain_error_response(request, RateLimited("slow down", retry_after=7))

    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "7"
    assert answer.headers["X-RateLimit-Remaining"] == "0"
    assert abs(int(answer.headers["X-RateLimit-Reset"]) - (time.time() + 7)) <= 2
    assert "X-RateLimit-Limit" not in answer.headers  # the legacy raiser did not know it
