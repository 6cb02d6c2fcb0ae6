"""Console pages: admin — users and roles (create, grant, revoke, unlock, MFA reset, disable),
feature flags, and the clinic's DOAC rule pack. Every change goes through the same identity,
governance and cds services as the JSON API, so it is checked and audited the same way."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from clinicos.cds import RulePackNotActive, active_rule_pack, list_packs, show_pack
from clinicos.console import i18n
from clinicos.console.session import COOKIE_PATH
from clinicos.console.web import Page, page
from clinicos.governance import FLAGS, list_flags, set_flag
from clinicos.identity import (
    AlreadyExists,
    Permission,
    Role,
    create_user,
    disable_user,
    grant_roles,
    list_members,
    require_member,
    reset_mfa,
    revoke_role,
    roles_in,
    unlock_user,
)
from clinicos.kernel.errors import Conflict, FieldError, ValidationFailed
from clinicos.platform.db.uow import SqlUnitOfWork

router = APIRouter(prefix=COOKIE_PATH, include_in_schema=False)
ADMIN = COOKIE_PATH + "/admin"
USERS = ADMIN + "/users"
FLAGS_PAGE = ADMIN + "/flags"
ROLES = [role.value for role in Role]
# Success notices after a redirect (?done=...): a fixed set of words, never data.
USER_NOTICES = {"created", "granted", "revoked", "unlocked", "mfa_reset", "disabled"}
_AT_LEAST = re.compile(r"must be at least (\d+) characters")
_AT_MOST = re.compile(r"must be at most (\d+) characters")

UserRead = Annotated[Page, Depends(page(Permission.user_read))]
UserManage = Annotated[Page, Depends(page(Permission.user_manage))]
FlagRead = Annotated[Page, Depends(page(Permission.flag_read))]
FlagManage = Annotated[Page, Depends(page(Permission.flag_manage))]
OrganizationRead = Annotated[Page, Depends(page(Permission.organization_read))]


async def _posted_roles(p: Page) -> list[str]:
    """The ticked role boxes (several values under one name; ``Page.form`` keeps one)."""
    form = await p.request.form()
    return [value for value in form.getlist("roles") if isinstance(value, str)][: len(ROLES) + 1]


def _password_problem(message: str) -> str:
    if found := _AT_LEAST.fullmatch(message):
        return i18n.gettext("Use at least %(count)s characters.", count=found.group(1))
    if found := _AT_MOST.fullmatch(message):
        return i18n.gettext("Use at most %(count)s characters.", count=found.group(1))
    known = {
        "is on the list of commonly used passwords": i18n.gettext(
            "This password is on the list of commonly used passwords."
        ),
        "must not be the email address": i18n.gettext(
            "The password must not be the email address."
        ),
        "has too few distinct characters": i18n.gettext("Use more different characters."),
    }
    return known.get(message, i18n.gettext("This password does not meet the policy."))


def _field_errors(errors: Sequence[FieldError]) -> dict[str, str]:
    """The services' field errors in the user's language, keyed by form field."""
    shown: dict[str, list[str]] = {}
    for error in errors:
        name = str(error.loc[0]) if error.loc else "form"
        if name == "password":
            text = _password_problem(error.message)
        elif name == "email":
            text = i18n.gettext("Enter a valid email address.")
        elif name == "display_name":
            text = i18n.gettext("Enter a name of 1 to 200 characters.")
        elif name == "roles":
            text = (
                i18n.gettext("Choose at least one role.")
                if error.message == "empty"
                else i18n.gettext("Choose roles from the list.")
            )
        else:
            name, text = "form", i18n.gettext("Check the form and try again.")
        shown.setdefault(name, []).append(text)
    return {name: " ".join(texts) for name, texts in shown.items()}


def _conflict_message(exc: Conflict) -> str:
    messages = {
        "mfa_reset_self": i18n.gettext(
            "You cannot reset your own two-step verification; another administrator must do it."
        ),
        "mfa_not_enabled": i18n.gettext("This user has no two-step verification to reset."),
        "mfa_reset_other_organization": i18n.gettext(
            "This user also works at a clinic you do not administer: an administrator of every "
            "clinic the user belongs to must reset it."
        ),
        "role_not_held": i18n.gettext("The user does not hold this role."),
        "last_role": i18n.gettext(
            "This is the user's only role in this clinic. Disable the user instead."
        ),
        "own_admin_role": i18n.gettext("You cannot remove your own administrator role."),
        "cannot_disable_self": i18n.gettext("You cannot disable your own account."),
    }
    return messages.get(exc.code, i18n.gettext("This change could not be made."))


# -- overview --------------------------------------------------------------------------------


@router.get("/admin")
async def admin_home(p: UserRead) -> Response:
    return p.render("admin/index.html")


# -- users and roles ---------------------------------------------------------------------------


@router.get("/admin/users")
async def users_list(p: UserRead, done: str = "") -> Response:
    c = p.container
    async with c.uow(p.actor.organization_id) as uow:
        members = await list_members(uow, organization_id=p.actor.organization_id)
    return p.render(
        "admin/users.html",
        members=members,
        now=c.clock.now(),
        notice="removed" if done == "removed" else None,
    )


@router.get("/admin/users/new")
async def user_new_form(p: UserManage) -> Response:
    return p.render("admin/user_new.html", form={}, roles_ticked=[], errors={}, roles=ROLES)


@router.post("/admin/users")
async def user_create(p: UserManage) -> Response:
    c = p.container
    form = {
        "email": p.form.get("email", "").strip()[:320],
        "display_name": p.form.get("display_name", "").strip()[:200],
    }
    ticked = await _posted_roles(p)
    password = p.form.get("password", "")[:256]
    errors: dict[str, str] = {}
    status = 422
    if not password:
        errors["password"] = i18n.gettext("Enter an initial password.")
    else:
        try:
            async with c.uow(p.actor.organization_id) as uow:
                user = await create_user(
                    uow=uow,
                    runtime=c.identity,
                    actor=p.actor,
                    organization_id=p.actor.organization_id,
                    email=form["email"],
                    display_name=form["display_name"],
                    roles=ticked,
                    password=password,
                )
                await uow.commit()
        except ValidationFailed as exc:
            errors = _field_errors(exc.errors)
        except AlreadyExists:
            status = 409
            errors["email"] = i18n.gettext("A user with this email address already exists.")
        else:
            return p.redirect(f"{USERS}/{user.id}", done="created")
    return p.render(
        "admin/user_new.html",
        status=status,
        form=form,
        roles_ticked=ticked,
        errors=errors,
        roles=ROLES,
    )


async def _user_page(
    p: Page,
    user_id: str,
    *,
    status: int = 200,
    errors: Mapping[str, str] | None = None,
    notice: str | None = None,
) -> Response:
    c = p.container
    async with c.uow(p.actor.organization_id) as uow:
        user = await require_member(uow, organization_id=p.actor.organization_id, user_id=user_id)
        held = await roles_in(uow, user.id, p.actor.organization_id)
    now = c.clock.now()
    return p.render(
        "admin/user.html",
        status=status,
        user=user,
        held=sorted(held),
        grantable=[r for r in ROLES if r not in held],
        locked=user.locked_until is not None and user.locked_until > now,
        is_self=user.id == p.actor.user_id,
        errors=errors or {},
        notice=notice,
    )


@router.get("/admin/users/{user_id}")
async def user_detail(user_id: str, p: UserRead, done: str = "") -> Response:
    return await _user_page(p, user_id, notice=done if done in USER_NOTICES else None)


Change = Callable[[SqlUnitOfWork], Awaitable[None]]


async def _change_user(p: Page, user_id: str, action: str, change: Change, done: str) -> Response:
    """Run one change in its own unit of work; a refusal re-renders the user's page with the
    reason next to the form that asked for it."""
    c = p.container
    try:
        async with c.uow(p.actor.organization_id) as uow:
            await change(uow)
            await uow.commit()
    except ValidationFailed as exc:
        message = next(iter(_field_errors(exc.errors).values()), exc.detail)
        return await _user_page(p, user_id, status=422, errors={action: message})
    except Conflict as exc:
        return await _user_page(p, user_id, status=409, errors={action: _conflict_message(exc)})
    return p.redirect(f"{USERS}/{user_id}", done=done)


@router.post("/admin/users/{user_id}/roles")
async def user_grant_roles(user_id: str, p: UserManage) -> Response:
    ticked = await _posted_roles(p)

    async def change(uow: SqlUnitOfWork) -> None:
        user = await require_member(uow, organization_id=p.actor.organization_id, user_id=user_id)
        await grant_roles(
            uow=uow,
            actor=p.actor,
            organization_id=p.actor.organization_id,
            email=user.email,
            roles=ticked,
        )

    return await _change_user(p, user_id, "grant", change, "granted")


@router.post("/admin/users/{user_id}/roles/revoke")
async def user_revoke_role(user_id: str, p: UserManage) -> Response:
    role = p.form.get("role", "")[:32]

    async def change(uow: SqlUnitOfWork) -> None:
        await revoke_role(uow=uow, actor=p.actor, user_id=user_id, role=role)

    return await _change_user(p, user_id, "revoke", change, "revoked")


@router.post("/admin/users/{user_id}/unlock")
async def user_unlock(user_id: str, p: UserManage) -> Response:
    async def change(uow: SqlUnitOfWork) -> None:
        user = await require_member(uow, organization_id=p.actor.organization_id, user_id=user_id)
        await unlock_user(uow=uow, actor=p.actor, user=user)

    return await _change_user(p, user_id, "unlock", change, "unlocked")


@router.post("/admin/users/{user_id}/mfa-reset")
async def user_mfa_reset(user_id: str, p: UserManage) -> Response:
    async def change(uow: SqlUnitOfWork) -> None:
        await reset_mfa(uow=uow, actor=p.actor, user_id=user_id)

    return await _change_user(p, user_id, "mfa", change, "mfa_reset")


@router.post("/admin/users/{user_id}/disable")
async def user_disable(user_id: str, p: UserManage) -> Response:
    if user_id == p.actor.user_id:
        message = i18n.gettext("You cannot disable your own account.")
        return await _user_page(p, user_id, status=409, errors={"disable": message})
    if p.form.get("confirm") != "yes":
        message = i18n.gettext("Tick the box to confirm.")
        return await _user_page(p, user_id, status=422, errors={"disable": message})
    c = p.container
    try:
        async with c.uow(p.actor.organization_id) as uow:
            user = await disable_user(uow=uow, actor=p.actor, user_id=user_id)
            still_member = bool(await roles_in(uow, user.id, p.actor.organization_id))
            await uow.commit()
    except Conflict as exc:
        return await _user_page(p, user_id, status=409, errors={"disable": _conflict_message(exc)})
    if not still_member:
        # They also work at another clinic: only their place in this one was removed.
        return p.redirect(USERS, done="removed")
    return p.redirect(f"{USERS}/{user_id}", done="disabled")


# -- feature flags -----------------------------------------------------------------------------


async def _flags_page(
    p: Page, *, status: int = 200, error: str | None = None, changed: str | None = None
) -> Response:
    c = p.container
    flags = await list_flags(uows=c.uow, actor=p.actor)
    # Who changed a flag is stored as a user id; the page names them.
    async with c.uow(p.actor.organization_id) as uow:
        members = await list_members(uow, organization_id=p.actor.organization_id)
    names = {user.id: user.display_name for user, _ in members}
    return p.render(
        "admin/flags.html", status=status, flags=flags, names=names, error=error, changed=changed
    )


@router.get("/admin/flags")
async def flags_list(p: FlagRead, changed: str = "") -> Response:
    return await _flags_page(p, changed=changed if changed in FLAGS else None)


@router.post("/admin/flags")
async def flag_change(p: FlagManage) -> Response:
    key = p.form.get("key", "")[:200]
    state = p.form.get("enabled", "")
    if key not in FLAGS or state not in {"on", "off"}:
        return await _flags_page(
            p, status=422, error=i18n.gettext("Choose a feature flag from the list.")
        )
    await set_flag(uows=p.container.uow, actor=p.actor, key=key, enabled=state == "on")
    return p.redirect(FLAGS_PAGE, changed=key)


# -- rule packs --------------------------------------------------------------------------------


@router.get("/admin/rule-packs")
async def rule_packs(p: OrganizationRead) -> Response:
    c = p.container
    org_id = p.actor.organization_id
    production = c.settings.env.value == "production"
    packs = await list_packs(c.uow, {org_id: p.organization_name})
    active = None
    try:
        async with c.uow(org_id) as uow:
            active = await active_rule_pack(uow, production=production)
    except RulePackNotActive:
        active = None
    # The catalogue entry activated for this clinic (list_packs names who uses each one).
    activated = next((listing for listing in packs if listing.used_by), None)
    base = None
    if active is not None:
        base_version = active.version.split("+", 1)[0]
        base = next(
            (x for x in packs if (x.id, x.version) == (active.id, base_version)),
            None,
        )
    return p.render(
        "admin/rule_packs.html",
        packs=packs,
        active=active,
        base=base,
        activated=activated,
        overlay=active is not None and base is not None and active.version != base.version,
        production=production,
    )


@router.get("/admin/rule-packs/{pack_id}/{version}")
async def rule_pack_detail(pack_id: str, version: str, p: OrganizationRead) -> Response:
    c = p.container
    detail = await show_pack(
        c.uow, pack_id[:64], version[:64], {p.actor.organization_id: p.organization_name}
    )
    return p.render("admin/rule_pack.html", detail=detail)
