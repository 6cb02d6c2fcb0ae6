"""FastAPI dependency that spends a request's rate-limit budget and reports it in headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from clinicos.platform.http.middleware import add_response_headers
from clinicos.platform.ratelimit import CATEGORIES, RateLimiter, RateLimitStatus


def client_ip(request: Request) -> str:
    """The caller's address as uvicorn saw it (after its proxy-header handling, when trusted)."""
    return request.client.host if request.client is not None else "unknown"


def caller_key(request: Request) -> str:
    """Per user once an auth dependency has put an actor on ``request.state``; else per IP."""
    actor = getattr(request.state, "actor", None)
    user_id = getattr(actor, "user_id", None)
    if user_id:
        return f"user:{user_id}"
    return f"ip:{client_ip(request)}"


def limiter_of(request: Request) -> RateLimiter:
    limiter = getattr(request.app.state.container, "rate_limiter", None)
    if not isinstance(limiter, RateLimiter):
        raise RuntimeError("the container has no rate_limiter; build it in bootstrap")
    return limiter


async def enforce(request: Request, response: Response, category: str, key: str) -> RateLimitStatus:
    """Spend one unit of ``key``'s budget; on success put ``X-RateLimit-*`` on ``response``.

    For routes that compute their own key (sign-in: account + IP). Over budget raises
    ``RateLimited``, which the problem handler renders as 429 with the same headers."""
    status = await limiter_of(request).hit(category, key)
    # Not enforced (limiting off, or the store down and failing open): no budget to report.
    if status.enforced:
        response.headers.update(status.headers())
        # Also on whatever response ends the request (a 401 after a spent sign-in attempt, a
        # 204 the route builds itself): the outer headers middleware adds these.
        add_response_headers(request.scope, status.headers())
    return status


def rate_limit(category: str) -> Callable[[Request, Response], Awaitable[RateLimitStatus]]:
    """A dependency spending ``category`` budget per caller (see ``caller_key``).

    List it AFTER the route's auth dependency (``dependencies=[Depends(auth),
    Depends(rate_limit("read"))]``): FastAPI solves them in order, and only then is
    ``request.state.actor`` set, so the budget is the user's rather than the IP's. The headers
    reach the client on whatever response ends the request (see ``enforce``)."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown rate-limit category {category!r}")

    async def spend_budget(request: Request, response: Response) -> RateLimitStatus:
        return await enforce(request, response, category, caller_key(request))

    spend_budget.__name__ = f"rate_limit_{category}"
    return spend_budget
