"""Request budgets per category and caller, on the `limits` library (in memory or shared Redis)."""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import limits
from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from clinicos.config import ConfigurationError, Settings, mask_url
from clinicos.kernel.errors import RateLimited, ServiceUnavailable
from clinicos.platform.observability.logging import get_logger
from clinicos.platform.observability.metrics import RATE_LIMIT_STORE_FAILURES

log = get_logger("clinicos.ratelimit")

CATEGORIES: Final = ("auth", "write", "ai", "read")
DEFAULT_KEY_PREFIX: Final = "clinicos:ratelimit"

# Our policy when the shared store (Redis) cannot be reached:
# - `auth` fails CLOSED (503 problem): sign-in is where credentials are guessed and stuffed, and
#   every attempt costs an argon2 hash, so an unthrottled sign-in endpoint is both a brute-force
#   and a CPU-exhaustion hole. People already signed in keep working.
# - `read`, `write` and `ai` fail OPEN (the request proceeds, unlimited, with a warning logged):
#   those callers are authenticated and attributable in the audit trail, and a Redis outage must
#   not stop clinicians from reading a chart or recording care.
FAIL_CLOSED_CATEGORIES: Final = frozenset({"auth"})

# An unreachable Redis must cost a request milliseconds, not the client's default ten retries.
_REDIS_CONNECT_TIMEOUT_SECONDS: Final = 0.5
_REDIS_COMMAND_TIMEOUT_SECONDS: Final = 1.0
_HASH_HEX_CHARS: Final = 32  # 128 bits: collisions between callers are out of reach


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """One caller's budget right after a hit. ``reset_at`` is epoch seconds when the budget next
    grows; ``retry_after`` is 0 while budget remains. ``enforced`` is False when limiting is off
    or the store was down (failing open): the numbers then describe no real budget."""

    limit: int
    remaining: int
    reset_at: int
    retry_after: int
    enforced: bool = True

    def headers(self) -> dict[str, str]:
        """The ``X-RateLimit-*`` headers a successful response carries."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }


def derive_key_secret(installation_secret: str) -> bytes:
    """The HMAC key for storage keys, derived so it is useless for anything else."""
    return hmac.new(
        installation_secret.encode("utf-8"), b"clinicos/ratelimit-key", hashlib.sha256
    ).digest()


def storage_key(category: str, caller_key: str, *, secret: bytes) -> str:
    """What the store sees for a caller: ``<category>/<truncated HMAC-SHA256>``.

    The caller key may hold an email or an IP; a plain hash of an email is reversed with a list
    of addresses, so it is keyed with the installation secret (shared by every process)."""
    digest = hmac.new(secret, f"{category}\x00{caller_key}".encode(), hashlib.sha256)
    return f"{category}/{digest.hexdigest()[:_HASH_HEX_CHARS]}"


class RateLimiter:
    """Moving-window budgets per category; ``hit`` spends one unit of a caller's budget."""

    def __init__(
        self,
        *,
        items: Mapping[str, RateLimitItem],
        storage: Storage,
        key_secret: bytes,
        enabled: bool = True,
        storage_errors: tuple[type[Exception], ...] = (),
        fail_closed: frozenset[str] = FAIL_CLOSED_CATEGORIES,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        unknown = set(items) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"unknown rate-limit categories: {sorted(unknown)}")
        self.items = dict(items)
        self.storage = storage
        self.enabled = enabled
        self._key_secret = key_secret
        # Only these exceptions mean "the store is down"; anything else is a bug and propagates.
        self._storage_errors = storage_errors
        self._fail_closed = fail_closed
        self._on_close = on_close
        # Moving window: no burst of 2x the budget at a window edge, as a fixed window allows.
        self._strategy = MovingWindowRateLimiter(storage)

    def item_for(self, category: str) -> RateLimitItem:
        try:
            return self.items[category]
        except KeyError:
            raise ValueError(f"unknown rate-limit category {category!r}") from None

    async def hit(self, category: str, key: str) -> RateLimitStatus:
        """Spend one unit of ``key``'s budget in ``category``; raise ``RateLimited`` when none
        is left, ``ServiceUnavailable`` when the store is down and the category fails closed."""
        item = self.item_for(category)
        if not self.enabled:
            return _unenforced(item)
        stored = storage_key(category, key, secret=self._key_secret)
        try:
            allowed = await self._strategy.hit(item, stored)
            stats = await self._strategy.get_window_stats(item, stored)
        except self._storage_errors as exc:
            return self._store_unavailable(category, item, exc)
        now = time.time()
        reset_at = math.ceil(stats.reset_time)
        wait = max(1, math.ceil(stats.reset_time - now))
        if not allowed:
            raise RateLimited(
                f"too many {category} requests; retry in {wait} s",
                limit=item.amount,
                remaining=0,
                reset_at=reset_at,
                retry_after=wait,
            )
        remaining = max(0, stats.remaining)
        return RateLimitStatus(
            limit=item.amount,
            remaining=remaining,
            reset_at=reset_at,
            retry_after=0 if remaining else wait,
        )

    def _store_unavailable(
        self, category: str, item: RateLimitItem, exc: Exception
    ) -> RateLimitStatus:
        # The key and the exception message stay out of the log: the key may be an email, and
        # driver messages may quote arguments.
        closed = category in self._fail_closed
        policy = "fail_closed" if closed else "fail_open"
        # A log line alone cannot be alerted on reliably: failing open means no limit at all,
        # so operators need a counter (labels: the fixed category and policy names only).
        RATE_LIMIT_STORE_FAILURES.labels(category=category, policy=policy).inc()
        log.warning(
            "rate_limit_store_unavailable",
            category=category,
            policy=policy,
            error=type(exc).__name__,
        )
        if closed:
            raise ServiceUnavailable(
                "rate limiting is temporarily unavailable; try again shortly"
            ) from exc
        return _unenforced(item)

    async def aclose(self) -> None:
        """Release the store's connections (Redis); the in-memory store needs nothing."""
        if self._on_close is not None:
            await self._on_close()


def _unenforced(item: RateLimitItem) -> RateLimitStatus:
    return RateLimitStatus(
        limit=item.amount,
        remaining=item.amount,
        reset_at=math.ceil(time.time()),
        retry_after=0,
        enforced=False,
    )


def parse_items(settings: Settings) -> dict[str, RateLimitItem]:
    """Each category's `limits` string, parsed (RateLimitSettings has already checked each is
    exactly one rate, so `config check` and start-up name a bad variable before we get here)."""
    return {c: limits.parse(getattr(settings.rate_limit, c)) for c in CATEGORIES}


def async_redis_uri(url: str) -> str:
    """``redis://``, ``rediss://`` or ``unix://`` as the `limits` async storage URI."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in {"redis", "rediss"}:
        return f"async+{scheme}://{rest}"
    if sep and scheme == "unix":
        return f"async+redis+unix://{rest}"
    raise ConfigurationError(
        [("CLINICOS_REDIS_URL", f"expected redis://, rediss:// or unix://, got {mask_url(url)}")]
    )


def build_rate_limiter(settings: Settings, *, key_prefix: str = DEFAULT_KEY_PREFIX) -> RateLimiter:
    """The limiter for these settings: shared through Redis when ``redis_url`` is set, else
    private to this process. ``key_prefix`` namespaces every Redis key (tests use their own)."""
    items = parse_items(settings)
    key_secret = derive_key_secret(settings.secret_key.get_secret_value())
    if settings.redis_url is None:
        return RateLimiter(
            items=items,
            storage=MemoryStorage(),
            key_secret=key_secret,
            enabled=settings.rate_limit.enabled,
        )
    # Imported here: the Redis client costs ~0.1-0.2 s of start-up, for installations that
    # configure Redis only (cold start is a benchmark target, issue 8).
    from redis.asyncio import ConnectionPool
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError

    url = settings.redis_url.get_secret_value()
    uri = async_redis_uri(url)
    # We own the pool (not `limits`) so the app can close it at shutdown.
    pool_options: dict[str, Any] = {
        "socket_connect_timeout": _REDIS_CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": _REDIS_COMMAND_TIMEOUT_SECONDS,
        "retry": Retry(NoBackoff(), 1),
    }
    pool = ConnectionPool.from_url(url, **pool_options)
    storage_options: dict[str, Any] = {"connection_pool": pool}
    storage = RedisStorage(uri, implementation="redispy", key_prefix=key_prefix, **storage_options)
    return RateLimiter(
        items=items,
        storage=storage,
        key_secret=key_secret,
        enabled=settings.rate_limit.enabled,
        storage_errors=(RedisError, OSError),
        on_close=pool.disconnect,
    )
