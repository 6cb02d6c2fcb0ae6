"""The packaged rule packs as files with content hashes, organization overlays in canonical
form, and the in-process cache of parsed packs keyed by (id, version, content, overlay)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from pydantic import ValidationError

from clinicos.cds.engine import OverlayError, PackOverlay, RulePack, apply_overlay, parse_rule_pack
from clinicos.cds.engine.pack import RULES_PACKAGE
from clinicos.kernel.errors import NotFound, ValidationFailed

PackKey = tuple[str, str]


@dataclass(frozen=True)
class PackagedPack:
    """One pack file as shipped: identity, title, exact text and its sha256."""

    id: str
    version: str
    title: str
    text: str
    sha256: str


@dataclass(frozen=True)
class CanonicalOverlay:
    """A validated overlay as plain JSON data, and the sha256 of its canonical text."""

    data: dict[str, Any]
    sha256: str
    base_id: str
    base_version: str


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@cache
def packaged_packs() -> dict[PackKey, PackagedPack]:
    """Every ``*.json`` pack in the rules package, validated, by (id, version)."""
    found: dict[PackKey, PackagedPack] = {}
    for entry in sorted(resources.files(RULES_PACKAGE).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        text = entry.read_text("utf-8")
        pack = parse_rule_pack(text)
        found[(pack.id, pack.version)] = PackagedPack(
            id=pack.id, version=pack.version, title=pack.title, text=text, sha256=sha256_text(text)
        )
    return found


def packaged_pack(pack_id: str, version: str) -> PackagedPack:
    """The packaged file of one pack version, or NotFound naming what exists."""
    packs = packaged_packs()
    found = packs.get((pack_id, version))
    if found is None:
        known = ", ".join(f"{i} {v}" for i, v in sorted(packs)) or "none"
        raise NotFound(f"no packaged rule pack '{pack_id} {version}' (packaged: {known})")
    return found


def canonical_overlay(raw: Mapping[str, Any] | str | bytes) -> CanonicalOverlay:
    """Validate an overlay document (shape only) and put it in canonical form."""
    try:
        data = json.loads(raw) if isinstance(raw, str | bytes) else dict(raw)
        model = PackOverlay.model_validate(data)
    except ValidationError as exc:
        raise overlay_invalid(exc) from None
    except ValueError as exc:
        raise overlay_invalid(exc) from None
    dumped = model.model_dump(mode="json")
    text = json.dumps(dumped, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return CanonicalOverlay(
        data=dumped,
        sha256=sha256_text(text),
        base_id=model.base_id,
        base_version=model.base_version,
    )


def overlay_invalid(exc: Exception) -> ValidationFailed:
    """One line naming the first problem of an overlay."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "overlay"
        message = f"{where}: {first['msg']}"
    else:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ValidationFailed(f"overlay rejected: {message}", code="invalid_overlay")


def effective_version(base_version: str, overlay_sha256: str | None) -> str:
    """What evaluations report: the base version, or ``<base>+local.<hash8>`` with an overlay."""
    if overlay_sha256 is None:
        return base_version
    return f"{base_version}+local.{overlay_sha256[:8]}"


_PARSED: dict[tuple[str, str, str, str | None], RulePack] = {}


def parsed_pack(packaged: PackagedPack, overlay_sha256: str | None) -> RulePack | None:
    """The pack ``build_pack`` already parsed for this content and overlay hash, if any (so a
    caller may skip loading the overlay document)."""
    return _PARSED.get((packaged.id, packaged.version, packaged.sha256, overlay_sha256))


def build_pack(packaged: PackagedPack, overlay: CanonicalOverlay | None = None) -> RulePack:
    """The pack to evaluate with (overlay merged by the engine), parsed once per process."""
    key = (packaged.id, packaged.version, packaged.sha256, overlay.sha256 if overlay else None)
    cached = _PARSED.get(key)
    if cached is not None:
        return cached
    pack = parse_rule_pack(packaged.text)
    if overlay is not None:
        version = effective_version(pack.version, overlay.sha256)
        try:
            model = PackOverlay.model_validate(overlay.data | {"version": version})
            pack = apply_overlay(pack, model)
        except (OverlayError, ValidationError) as exc:
            raise overlay_invalid(exc) from None
    _PARSED[key] = pack
    return pack
