"""The CDS Hooks 2.0 wire contract: service requests (order-sign, order-select) and feedback.

Validated by the routes into these models; a body that does not fit is a 400 per the CDS Hooks
specification (not FastAPI's 422), naming the field. Unknown members are allowed where the
specification allows extensions; sizes are bounded where the caller controls them.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from clinicos.kernel.errors import BadRequest

ORDER_SIGN = "order-sign"
ORDER_SELECT = "order-select"
MAX_FEEDBACK_ENTRIES = 50
MAX_COMMENT_CHARS = 1000
MAX_SELECTIONS = 50
# A FHIR resource inside a hook request nests a dozen levels at most; the cards echo the draft
# order back (a suggestion's resource), and a response nested past the serializer's recursion
# limit would fail only after the evaluation was committed.
MAX_NESTING = 64
T = TypeVar("T", bound=BaseModel)


class OrderContext(BaseModel):
    """``context`` of order-sign and order-select (CDS Hooks hook definitions, v2)."""

    model_config = ConfigDict(extra="allow")

    userId: str = Field(min_length=1, max_length=200)
    patientId: str = Field(min_length=1, max_length=200)
    encounterId: str | None = Field(default=None, max_length=200)
    draftOrders: dict[str, Any]
    selections: list[str] | None = Field(default=None, max_length=MAX_SELECTIONS)


class HookRequest(BaseModel):
    """The body of ``POST /cds-services/{id}``."""

    model_config = ConfigDict(extra="allow")

    hook: Literal["order-sign", "order-select"]
    hookInstance: str = Field(min_length=1, max_length=100)
    fhirServer: str | None = Field(default=None, max_length=2000)
    fhirAuthorization: dict[str, Any] | None = None
    context: OrderContext
    prefetch: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _selections_for_order_select(self) -> HookRequest:
        if self.hook == ORDER_SELECT and self.context.selections is None:
            raise ValueError("context.selections is required for order-select")
        return self


class Coding(BaseModel):
    """A FHIR Coding (an override reason)."""

    model_config = ConfigDict(extra="allow")

    system: str | None = Field(default=None, max_length=500)
    code: str = Field(min_length=1, max_length=64)
    display: str | None = Field(default=None, max_length=500)


class OverrideReasonBody(BaseModel):
    """CDS Hooks 2.0 ``overrideReason``: ``{"reason": Coding, "userComment": str}``."""

    model_config = ConfigDict(extra="allow")

    reason: Coding | None = None
    userComment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)


class FeedbackEntry(BaseModel):
    """One feedback item. ``overrideReason`` is the 2.0 shape, or the older flat Coding
    (``{"code": …, "system": …}``) that some clients still send; both become
    :class:`OverrideReasonBody`."""

    model_config = ConfigDict(extra="allow")

    card: str = Field(min_length=1, max_length=100)
    outcome: Literal["accepted", "overridden"]
    overrideReason: OverrideReasonBody | None = None
    acceptedSuggestions: list[dict[str, Any]] | None = Field(default=None, max_length=20)
    outcomeTimestamp: AwareDatetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _flat_override_reason(cls, data: Any) -> Any:
        if isinstance(data, dict):
            reason = data.get("overrideReason")
            if isinstance(reason, dict) and "code" in reason and "reason" not in reason:
                data = {**data, "overrideReason": {"reason": reason}}
        return data

    @property
    def card_id(self) -> str:
        """The card's uuid (a ``urn:uuid:`` prefix, which some clients add, removed)."""
        return self.card.removeprefix("urn:uuid:")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    feedback: list[FeedbackEntry] = Field(min_length=1, max_length=MAX_FEEDBACK_ENTRIES)


def _unusable(value: Any, limit: int) -> str | None:
    """What makes a JSON body unusable although it parsed: objects and arrays nested more
    than ``limit`` levels, or text that is not Unicode (JSON's ``"\\ud800"``, a lone
    surrogate, which no response can carry back). Iterative: deep input cannot recurse."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "text must be Unicode (a lone surrogate is not)"
            continue
        if isinstance(item, dict):
            children: list[Any] = [*item.keys(), *item.values()]
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return f"objects and arrays may nest at most {limit} levels deep"
        stack.extend((child, depth + 1) for child in children)
    return None


def parse_body(model: type[T], body: Any, *, what: str) -> T:
    """``model`` from a JSON body, or the 400 the CDS Hooks specification asks for, naming
    every offending field (never its value: prefetch holds PHI). A body the cards could not
    echo back (a draft order is returned in suggestions) is refused here, before anything is
    evaluated and stored."""
    problem = _unusable(body, MAX_NESTING)
    if problem is not None:
        raise BadRequest(
            f"malformed {what}: body",
            code="malformed_cds_hooks_request",
            data={"errors": [{"field": "body", "message": problem, "type": "value_error"}]},
        )
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(str(p) for p in ("body", *e["loc"])),
                "message": e["msg"],
                "type": e["type"],
            }
            for e in exc.errors(include_input=False, include_url=False)
        ][:20]
        names = ", ".join(sorted({e["field"] for e in errors}))
        raise BadRequest(
            f"malformed {what}: {names}",
            code="malformed_cds_hooks_request",
            data={"errors": errors},
        ) from None
