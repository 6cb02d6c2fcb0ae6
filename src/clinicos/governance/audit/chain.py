"""The hash chain itself, as pure functions over plain data: canonical form, hashes, checking."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clinicos.governance.audit.validation import INSTALLATION_CHAIN

GENESIS_HASH = "0" * 64

# Every column except `hash` itself. Adding a column to the chain changes every later hash,
# so a new field needs a versioned canonical form, not an edit of this tuple.
HASHED_FIELDS = (
    "id",
    "organization_id",
    "chain_key",
    "seq",
    "occurred_at",
    "actor_type",
    "actor_id",
    "action",
    "target_type",
    "target_id",
    "purpose",
    "outcome",
    "request_id",
    "prev_hash",
)


def chain_key_for(organization_id: str | None) -> str:
    return organization_id if organization_id is not None else INSTALLATION_CHAIN


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("audit timestamps must be timezone-aware")
        # Fixed shape (UTC, always microseconds) so the same instant always hashes the same.
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def canonical_json(row: Mapping[Any, Any]) -> str:
    """The row's hashed fields as compact JSON with sorted keys."""
    content = {name: _canonical_value(row[name]) for name in HASHED_FIELDS}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def compute_hash(row: Mapping[Any, Any]) -> str:
    """sha256 hex of the previous hash followed by this row's canonical JSON."""
    material = str(row["prev_hash"]) + canonical_json(row)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    """Outcome of verifying one chain.

    ``rows_checked`` counts the rows found intact before the first break (all rows when
    ``ok``). ``first_bad_seq`` is the first sequence number whose row is changed, missing,
    out of place or cut off; ``first_bad_id`` the stored row found there, when there is one.
    """

    ok: bool
    chain_key: str
    rows_checked: int
    first_bad_seq: int | None = None
    first_bad_id: str | None = None
    reason: str | None = None
    # Rows 1..purged_through_seq were purged under the retention policy; the check starts from
    # the anchor the purge left (the last purged row's hash), so the rest still verifies.
    purged_through_seq: int = 0


class ChainChecker:
    """Feed rows in seq order, then the head; stops at the first break."""

    def __init__(
        self, chain_key: str, *, anchor_seq: int = 0, anchor_hash: str = GENESIS_HASH
    ) -> None:
        """``anchor_seq``/``anchor_hash``: where retention left the chain's start (no purge:
        0 and the genesis hash)."""
        self.chain_key = chain_key
        self.rows_checked = 0
        self.report: ChainReport | None = None  # set once the first break is found
        self.anchor_seq = anchor_seq
        self._prev_hash = anchor_hash

    @property
    def broken(self) -> bool:
        return self.report is not None

    def feed(self, row: Mapping[Any, Any]) -> bool:
        """Check one row; False (and ``report`` set) at the first break."""
        if self.report is not None:
            return False
        expected_seq = self.anchor_seq + self.rows_checked + 1
        seq, row_id = int(row["seq"]), str(row["id"])
        if seq != expected_seq:
            # Rows come in seq order, so a larger seq means the expected one is gone.
            return self._break(expected_seq, None, f"row seq {expected_seq} is missing (deleted)")
        if row["prev_hash"] != self._prev_hash:
            return self._break(
                seq, row_id, "prev_hash does not match the previous row (reordered or replaced)"
            )
        if row["chain_key"] != self.chain_key or compute_hash(row) != row["hash"]:
            return self._break(seq, row_id, "content does not match its hash (changed)")
        self._prev_hash = str(row["hash"])
        self.rows_checked += 1
        return True

    def finish(self, head_last_seq: int | None, head_last_hash: str | None) -> ChainReport:
        """Compare the end of the rows with the head, which outlives a cut-off tail."""
        if self.report is not None:
            return self.report
        last_seq = self.anchor_seq + self.rows_checked
        if head_last_seq is None or head_last_hash is None:
            if last_seq:
                self._break(None, None, "chain head is missing")
        elif head_last_seq > last_seq:
            self._break(
                last_seq + 1,
                None,
                f"rows after seq {last_seq} are missing (truncated); "
                f"the head records seq {head_last_seq}",
            )
        elif head_last_seq < last_seq:
            self.rows_beyond_head(head_last_seq)
        elif head_last_hash != self._prev_hash:
            self._break(last_seq or None, None, "the head's hash does not match the last row")
        return self.result()

    def rows_beyond_head(self, head_last_seq: int) -> ChainReport:
        """Rows the head never recorded: written around ``record_audit``, not through it."""
        self._break(head_last_seq + 1, None, "rows exist beyond the chain head")
        return self.result()

    def result(self) -> ChainReport:
        """The first break found so far, or an intact report over the rows fed."""
        return self.report or ChainReport(
            ok=True,
            chain_key=self.chain_key,
            rows_checked=self.rows_checked,
            purged_through_seq=self.anchor_seq,
        )

    def _break(self, seq: int | None, row_id: str | None, reason: str) -> bool:
        if self.report is not None:  # only the first break is reported
            return False
        self.report = ChainReport(
            ok=False,
            chain_key=self.chain_key,
            rows_checked=self.rows_checked,
            first_bad_seq=seq,
            first_bad_id=row_id,
            reason=reason,
            purged_through_seq=self.anchor_seq,
        )
        return False
