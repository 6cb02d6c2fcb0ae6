"""``clinicos smoke --url URL``: check a running installation end to end over HTTP, one line per
check, then ``N passed, N failed`` (exit 1 when one failed, 2 on bad usage).

A client of the public API only: it imports nothing of the server, so it checks what a caller
sees. Read-only by default, for production: it signs in, reads (an existing patient, KPIs, the
audit chain) and records what every check of its kind records anyway — one CDS evaluation of
invented facts, audit entries of its reads and of its probes' refused sign-ins. ``--write`` also
registers a clearly labelled, inactive smoke-test patient and overrides the evaluation.

Secrets (passwords, TOTP secrets, tokens) and everything a response says about a patient stay in
memory: a line names a status code and a problem ``code``, never a body. The options read
``CLINICOS_SMOKE_*`` variables (typer's ``envvar``) so passwords stay out of the process list;
they are not settings of the server, which is why config.py does not know them."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import httpx
import pyotp
import typer

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
JSON_TYPES = ("application/json", "application/problem+json")
OVERRIDABLE = ("WARN", "BLOCK")
OUTCOMES = ("PASS", "WARN", "BLOCK", "ATTEST")
SQL_PROBES = ("' OR 1=1--", "x' OR '1'='1", "'; DROP TABLE patient; --")
SMOKE_COMMENT = "clinicos smoke test: invented facts, no patient, not a clinical decision"


@dataclass(frozen=True)
class Probe:
    """One place hostile text goes: a body field, a query parameter or the path (``{}``).
    ``rows``: a search, which may answer 200 with no rows; every other probe must be refused."""

    label: str
    permission: str | None  # the account that may send it; None: anyone
    method: str
    path: str
    field: str | None = None
    query: str | None = None
    body: tuple[tuple[str, str], ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    rows: bool = False


SEARCH = "/api/v1/patients/search"
PROBES = (
    Probe("sign-in email", None, "POST", "/api/v1/auth/login", "email", body=(("password", "x"),)),
    Probe("unknown path", None, "GET", "/api/v1/{}"),
    Probe("patient search mrn", "patient:read", "POST", SEARCH, "mrn", rows=True),
    Probe("patient search family", "patient:read", "POST", SEARCH, "family_name", rows=True),
    Probe("patient search name", "patient:read", "POST", SEARCH, "name", rows=True),
    Probe("patient list cursor", "patient:read", "GET", "/api/v1/patients", query="cursor"),
    Probe("patient id", "patient:read", "GET", "/api/v1/patients/{}"),
    Probe("audit filter", "audit:read", "GET", "/api/v1/audit", query="action"),
    Probe(
        "KPI range", "kpi:read", "GET", "/api/v1/kpi", query="from", params=(("to", "2026-01-31"),)
    ),
)


class CheckFailed(Exception):
    """A check's verdict; the message is printed, so it never holds a secret or PHI."""


class CheckSkipped(Exception):
    """The check cannot run here (read-only run, a permission the accounts lack)."""


@dataclass(frozen=True)
class Credentials:
    email: str
    password: str
    mfa_code: str | None = None
    totp_secret: str | None = None


@dataclass
class Session:
    token: str
    permissions: frozenset[str]

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


@dataclass
class SmokeRun:
    """The checks, in order; later ones use what earlier ones found (sessions, ids)."""

    http: httpx.Client
    clinical: Credentials
    oversight: Credentials | None = None
    organization: str | None = None
    write: bool = False
    patient_id: str | None = None
    echo: Callable[[str], None] = typer.echo
    results: list[str] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    login_response: httpx.Response | None = None
    evaluation: dict[str, Any] | None = None

    # -- running -------------------------------------------------------------------------------

    def run(self) -> bool:
        """Every check, one line each, then the totals; True when none failed."""
        self.check("health", self.health)
        self.check("ready", self.ready)
        self.check("sign-in", lambda: self.sign_in(self.clinical))
        if self.oversight is not None:
            oversight = self.oversight
            self.check("sign-in (oversight)", lambda: self.sign_in(oversight))
        self.check("rate-limit headers", self.rate_limit_headers)
        self.check("security headers", self.security_headers)
        self.check("patient read", self.patient_read)
        self.check("cds evaluate", self.cds_evaluate)
        self.check("cds override", self.cds_override)
        self.check("kpi read", self.kpi_read)
        self.check("audit verify", self.audit_verify)
        self.check("sql injection", self.sql_injection)
        self.check("xss", self.xss)
        counts = {s: sum(1 for r in self.results if r == s) for s in (PASS, FAIL, SKIP)}
        summary = f"{counts[PASS]} passed, {counts[FAIL]} failed"
        self.echo(summary + (f", {counts[SKIP]} skipped" if counts[SKIP] else ""))
        return counts[FAIL] == 0

    def check(self, name: str, body: Callable[[], str]) -> None:
        try:
            status, detail = PASS, body()
        except CheckSkipped as exc:
            status, detail = SKIP, str(exc)
        except CheckFailed as exc:
            status, detail = FAIL, str(exc)
        except httpx.HTTPError as exc:  # transport trouble: the exception's class and message
            status, detail = FAIL, f"{type(exc).__name__}: {exc}"
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # unexpected JSON shape
            status, detail = FAIL, f"unexpected response ({type(exc).__name__})"
        self.results.append(status)
        self.echo(f"{status} {name:<20} {detail}")

    # -- helpers -------------------------------------------------------------------------------

    def session_with(self, permission: str) -> Session:
        for session in self.sessions:
            if permission in session.permissions:
                return session
        if not self.sessions:
            raise CheckSkipped("not signed in")
        raise CheckSkipped(
            f"no signed-in account holds {permission} (a clinician for --email, an auditor "
            "for --auditor-email cover every check)"
        )

    def json_of(self, response: httpx.Response, expected: int, what: str) -> Any:
        if response.status_code != expected:
            raise CheckFailed(f"{what}: {why(response)} (expected {expected})")
        if not is_json(response):
            raise CheckFailed(f"{what}: content type {content_type(response)!r}, not JSON")
        return response.json()

    # -- the checks ------------------------------------------------------------------------------

    def health(self) -> str:
        body = self.json_of(self.http.get("/health"), 200, "GET /health")
        if body.get("status") != "ok":
            raise CheckFailed("GET /health: status is not ok")
        return "the process answers"

    def ready(self) -> str:
        response = self.http.get("/ready")
        if response.status_code != 200:
            raise CheckFailed(f"GET /ready: {why(response)}")
        checks = response.json()["checks"]
        if checks["database"]["status"] != "ok":
            raise CheckFailed("the database is not reachable")
        return f"database ok, schema {checks['schema']['status']}"

    def sign_in(self, who: Credentials) -> str:
        body: dict[str, Any] = {"email": who.email, "password": who.password}
        if self.organization:
            body["organization"] = self.organization
        response = self.http.post("/api/v1/auth/login", json=body)
        if self.login_response is None:
            self.login_response = response
        answer = self.json_of(response, 200, "POST /api/v1/auth/login")
        factor = ""
        if answer.get("mfa_required"):
            code = who.mfa_code or totp_now(who.totp_secret)
            mfa = {"mfa_token": answer["mfa_token"], "code": code}
            answer = self.json_of(self.http.post("/api/v1/auth/mfa", json=mfa), 200, "MFA step")
            factor = " with MFA"
        if answer.get("scope"):
            raise CheckFailed(f"the token is limited to {answer['scope']}: enrol MFA first")
        token = answer["access_token"]
        me_response = self.http.get("/api/v1/me", headers={"authorization": f"Bearer {token}"})
        me = self.json_of(me_response, 200, "GET /api/v1/me")
        self.sessions.append(Session(token=token, permissions=frozenset(me["permissions"])))
        roles = ", ".join(me["user"]["roles"])
        return f"signed in{factor} to {answer['organization']} as {roles}"

    def rate_limit_headers(self) -> str:
        if self.login_response is None:
            raise CheckSkipped("no sign-in response")
        checked = {"sign-in": self.login_response}
        if self.sessions:
            me = self.http.get("/api/v1/me", headers=self.sessions[0].headers)
            checked["GET /api/v1/me"] = me
        for what, response in checked.items():
            limit, remaining, reset = (
                response.headers.get(f"x-ratelimit-{part}")
                for part in ("limit", "remaining", "reset")
            )
            if limit is None or remaining is None or reset is None:
                raise CheckFailed(f"{what}: X-RateLimit-Limit/-Remaining/-Reset missing")
            if not (limit.isdigit() and remaining.isdigit() and reset.isdigit()):
                raise CheckFailed(f"{what}: X-RateLimit-* are not whole numbers")
            if int(remaining) > int(limit):
                raise CheckFailed(f"{what}: remaining {remaining} exceeds limit {limit}")
        return "on " + " and ".join(checked)

    def security_headers(self) -> str:
        session = self.session_with("organization:read")
        response = self.http.get("/api/v1/me", headers=session.headers)
        wanted = {
            "x-content-type-options": "nosniff",
            "cache-control": "no-store",
            "x-frame-options": "DENY",
        }
        for name, value in wanted.items():
            if value not in response.headers.get(name, ""):
                raise CheckFailed(f"{name} is not {value!r}")
        if "default-src 'none'" not in response.headers.get("content-security-policy", ""):
            raise CheckFailed("the API's Content-Security-Policy is not default-src 'none'")
        over_tls = self.http.base_url.scheme == "https"
        if over_tls and "max-age=" not in response.headers.get("strict-transport-security", ""):
            raise CheckFailed("served over https without Strict-Transport-Security")
        return "nosniff, no-store, DENY, CSP" + (", HSTS" if over_tls else "")

    def patient_read(self) -> str:
        session = self.session_with("patient:read")
        if self.write:
            patient_id, how = self._register_smoke_patient(session), "registered a smoke patient"
        elif self.patient_id:
            patient_id, how = self.patient_id, "the patient of --patient-id"
        else:
            page = self.json_of(
                self.http.get("/api/v1/patients", params={"limit": 1}, headers=session.headers),
                200,
                "GET /api/v1/patients",
            )
            if not page["items"]:
                raise CheckSkipped("no patient to read: give --patient-id, or --write")
            patient_id, how = page["items"][0]["id"], "the newest patient"
        read = self.json_of(
            self.http.get(
                f"/api/v1/patients/{quote(patient_id, safe='')}", headers=session.headers
            ),
            200,
            "GET /api/v1/patients/{id}",
        )
        if read["id"] != patient_id:
            raise CheckFailed("the read answered another patient")
        # Criteria in the body, never in the URL (they identify a person).
        found = self.json_of(
            self.http.post(
                "/api/v1/patients/search", json={"mrn": read["mrn"]}, headers=session.headers
            ),
            200,
            "POST /api/v1/patients/search",
        )
        if [item["id"] for item in found["items"]] != [patient_id]:
            raise CheckFailed("searching the patient's MRN did not find exactly that patient")
        return f"{how}, read it, found it by MRN search"

    def _register_smoke_patient(self, session: Session) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        body = {
            "mrn": f"SMOKE-{stamp}-{secrets.token_hex(3)}",
            "family_name": "SMOKE-TEST",
            "given_name": "clinicos smoke test (not a person)",
            "sex": "unknown",
            "active": False,
        }
        created = self.json_of(
            self.http.post("/api/v1/patients", json=body, headers=session.headers),
            201,
            "POST /api/v1/patients",
        )
        return str(created["id"])

    def cds_evaluate(self) -> str:
        session = self.session_with("cds:evaluate")
        week_ago = (datetime.now(UTC).date() - timedelta(days=7)).isoformat()
        # Invented facts, no patient: a 78-year-old on rivaroxaban 20 mg daily for atrial
        # fibrillation, normal kidney function — the packaged pack warns (Beers 2023).
        body = {
            "patient": {
                "age_years": 78,
                "sex": "male",
                "weight_kg": 82,
                "weight_measured_at": week_ago,
                "serum_creatinine_mg_dl": 1.0,
                "creatinine_measured_at": week_ago,
                "active_bleeding": False,
                "mechanical_valve": False,
                "pregnant": False,
                "other_medications": [],
            },
            "order": {
                "drug": "rivaroxaban",
                "dose_mg": 20,
                "frequency": "QD",
                "indication": "nvaf",
            },
        }
        response = self.http.post("/api/v1/cds/evaluate", json=body, headers=session.headers)
        evaluation = self.json_of(response, 200, "POST /api/v1/cds/evaluate")
        if evaluation["outcome"] not in OUTCOMES or not evaluation["evaluation_id"]:
            raise CheckFailed("the evaluation has no known outcome or no id")
        self.evaluation = evaluation
        pack = evaluation["rule_pack"]
        reasons = len(evaluation["reasons"])
        counted = f"{reasons} reason" + ("" if reasons == 1 else "s")
        return f"{evaluation['outcome']} ({counted}), rule pack {pack['id']} {pack['version']}"

    def cds_override(self) -> str:
        if not self.write:
            raise CheckSkipped("read-only run (--write overrides the smoke evaluation)")
        session = self.session_with("cds:override")
        if self.evaluation is None:
            raise CheckFailed("no evaluation to override (cds evaluate failed)")
        if self.evaluation["outcome"] not in OVERRIDABLE:
            raise CheckFailed(f"the smoke evaluation is {self.evaluation['outcome']}, not WARN")
        reasons = self.json_of(
            self.http.get("/api/v1/cds/override-reasons", headers=session.headers),
            200,
            "GET /api/v1/cds/override-reasons",
        )
        codes = [reason["code"] for reason in reasons]
        code = next((c for c in codes if c != "other"), "other")
        body = {
            "evaluation_id": self.evaluation["evaluation_id"],
            "reason_code": code,
            "comment": SMOKE_COMMENT,
        }
        created = self.json_of(
            self.http.post("/api/v1/cds/overrides", json=body, headers=session.headers),
            201,
            "POST /api/v1/cds/overrides",
        )
        if created["status"] not in ("approved", "pending_cosign"):
            raise CheckFailed(f"unexpected override status {created['status']!r}")
        again = self.http.post("/api/v1/cds/overrides", json=body, headers=session.headers)
        if again.status_code != 409:
            raise CheckFailed(f"a second override of one evaluation: {why(again)}, not 409")
        return f"{created['status']} ({code}); a second override answered 409"

    def kpi_read(self) -> str:
        session = self.session_with("kpi:read")
        today = datetime.now(UTC).date()
        week = {"from": (today - timedelta(days=6)).isoformat(), "to": today.isoformat()}
        kpi = self.json_of(
            self.http.get("/api/v1/kpi", params=week, headers=session.headers),
            200,
            "GET /api/v1/kpi",
        )
        if not isinstance(kpi["evaluations"], int) or kpi["evaluations"] < 0:
            raise CheckFailed("the KPI report has no evaluation count")
        return f"{kpi['evaluations']} evaluations in the last 7 days"

    def audit_verify(self) -> str:
        session = self.session_with("audit:verify")
        report = self.json_of(
            self.http.get("/api/v1/audit/verify", headers=session.headers),
            200,
            "GET /api/v1/audit/verify",
        )
        if report["ok"] is not True:
            raise CheckFailed(
                f"the chain is broken at seq {report['first_bad_seq']} ({report['reason']})"
            )
        return f"chain intact, {report['rows_checked']} rows checked"

    def sql_injection(self) -> str:
        sent = 0
        for text in SQL_PROBES:
            for probe, response in self.probe_responses(text):
                sent += 1
                if probe.rows:
                    expect_no_rows(response, probe.label)
                else:
                    expect_refused(response, probe.label)
        return f"{sent} probes: refused (4xx) or no rows, never 5xx"

    def xss(self) -> str:
        payload = f"<script>alert('clinicos-smoke-{secrets.token_hex(4)}')</script>"
        checked = [(p.label, r) for p, r in self.probe_responses(payload)]
        console = list(self._console_sign_in_probe(payload))
        for what, response in checked + console:
            if response.status_code >= 500:
                raise CheckFailed(f"{what}: {why(response)}")
            problem = reflection_problem(response, payload)
            if problem:
                raise CheckFailed(f"{what}: {problem}")
        where = "incl. the console's sign-in form" if console else "the console is not served"
        total = len(checked) + len(console)
        return f"{total} probes ({where}): never reflected unescaped, safe content types"

    def probe_responses(self, text: str) -> Iterator[tuple[Probe, httpx.Response]]:
        """``text`` through every probe that a signed-in account (or anyone) may send."""
        for probe in PROBES:
            headers: dict[str, str] = {}
            if probe.permission is not None:
                if not any(probe.permission in s.permissions for s in self.sessions):
                    continue
                headers = self.session_with(probe.permission).headers
            path = probe.path.replace("{}", quote(text, safe=""))
            params = dict(probe.params)
            body = dict(probe.body)
            if probe.query:
                params[probe.query] = text
            if probe.field:
                body[probe.field] = text
            response = self.http.request(
                probe.method, path, params=params, json=body or None, headers=headers
            )
            if response.status_code >= 500:
                raise CheckFailed(f"{probe.label}: {why(response)}")
            yield probe, response

    def _console_sign_in_probe(self, payload: str) -> Iterator[tuple[str, httpx.Response]]:
        """The console's sign-in form shows the email back on failure: the HTML reflection a
        ``<script>`` would exploit. Skipped where the console is not served."""
        form = self.http.get("/console/sign-in")
        if form.status_code == 404:
            return
        yield "console sign-in form", form
        marker = 'name="csrf_token" value="'
        start = form.text.find(marker)
        if start < 0:
            raise CheckFailed("console sign-in form: no csrf_token field")
        token = form.text[start + len(marker) :].split('"', 1)[0]
        data = {"csrf_token": token, "email": payload, "password": secrets.token_urlsafe(12)}
        # The client's cookie jar carries the pre-session cookie the form was issued with.
        answer = self.http.post("/console/sign-in", data=data)
        if "&lt;script&gt;" not in answer.text:
            raise CheckFailed(f"console sign-in: {why(answer)}, the email was not shown escaped")
        yield "console sign-in", answer


def totp_now(secret: str | None) -> str:
    """The current code of ``secret`` (RFC 6238, as the server checks it)."""
    if not secret:
        raise CheckFailed("the account has MFA: give --mfa-code or its TOTP secret")
    try:
        return pyotp.TOTP(secret.replace(" ", "")).now()
    except (ValueError, TypeError):  # binascii.Error is a ValueError; never echo the secret
        raise CheckFailed("the TOTP secret is not base32 of at least 112 bits") from None


# -- response rules ------------------------------------------------------------------------------


def content_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_json(response: httpx.Response) -> bool:
    return content_type(response) in JSON_TYPES


def why(response: httpx.Response) -> str:
    """The status and, for a problem+json answer, its stable code (never the detail)."""
    code = None
    if is_json(response):
        try:
            body = response.json()
        except ValueError:
            body = None
        code = body.get("code") if isinstance(body, dict) else None
    return f"HTTP {response.status_code}" + (f" {code}" if isinstance(code, str) else "")


def expect_refused(response: httpx.Response, what: str) -> None:
    """A probe that must be refused: a 4xx, never a 2xx (it would have matched) nor a 5xx."""
    if not 400 <= response.status_code < 500:
        raise CheckFailed(f"{what}: {why(response)}, expected a 4xx")
    if not is_json(response):
        raise CheckFailed(f"{what}: a 4xx as {content_type(response)!r}, not problem+json")


def expect_no_rows(response: httpx.Response, what: str) -> None:
    """A search probe: refused (4xx), or answered with no rows — never 5xx, never rows."""
    if 400 <= response.status_code < 500:
        expect_refused(response, what)
        return
    if response.status_code != 200 or not is_json(response):
        raise CheckFailed(f"{what}: {why(response)}")
    if response.json()["items"]:
        raise CheckFailed(f"{what}: an injection probe matched rows")


def reflection_problem(response: httpx.Response, payload: str) -> str | None:
    """Why this response is unsafe for ``payload``, or None. A JSON body may carry the text (a
    JSON string is its own escaping, and nosniff stops a browser from reading it as HTML);
    HTML must escape it; any other type is refused."""
    kind = content_type(response)
    if response.headers.get("x-content-type-options", "").lower() != "nosniff":
        return "no X-Content-Type-Options: nosniff"
    if kind in JSON_TYPES:
        return None
    if kind == "text/html":
        return "the payload is reflected unescaped in HTML" if payload in response.text else None
    return f"content type {kind!r} is neither JSON nor HTML"


# -- the command ---------------------------------------------------------------------------------

LOOPBACK_NAMES = frozenset({"localhost"})


def _base_url(url: str, *, allow_http: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _usage("--url must be an http(s) URL such as https://clinic.example.org")
    if parts.scheme == "http" and not allow_http and not _is_loopback(parts.hostname):
        raise _usage(
            f"refusing to send a password over plain http to {parts.hostname}: use https, or "
            "--allow-http inside a trusted network"
        )
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _usage(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def smoke(
    url: Annotated[
        str, typer.Option(help="the installation's base URL, e.g. https://clinic.example.org")
    ],
    email: Annotated[
        str | None,
        typer.Option(envvar="CLINICOS_SMOKE_EMAIL", help="sign-in email of a clinical account"),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            envvar="CLINICOS_SMOKE_PASSWORD",
            help="its password (prefer the variable: options show in the process list)",
            show_default=False,
        ),
    ] = None,
    mfa_code: Annotated[
        str | None, typer.Option(help="a current MFA code, for an account with MFA")
    ] = None,
    totp_secret: Annotated[
        str | None,
        typer.Option(
            envvar="CLINICOS_SMOKE_TOTP_SECRET",
            help="the account's TOTP secret, to compute the MFA code",
            show_default=False,
        ),
    ] = None,
    auditor_email: Annotated[
        str | None,
        typer.Option(
            envvar="CLINICOS_SMOKE_AUDITOR_EMAIL",
            help="a second account with kpi:read and audit:verify (e.g. an auditor)",
        ),
    ] = None,
    auditor_password: Annotated[
        str | None,
        typer.Option(
            envvar="CLINICOS_SMOKE_AUDITOR_PASSWORD",
            help="its password (default: the first account's)",
            show_default=False,
        ),
    ] = None,
    auditor_totp_secret: Annotated[
        str | None,
        typer.Option(
            envvar="CLINICOS_SMOKE_AUDITOR_TOTP_SECRET",
            help="its TOTP secret, if it has MFA",
            show_default=False,
        ),
    ] = None,
    organization: Annotated[
        str | None, typer.Option(help="organization slug, for accounts in several clinics")
    ] = None,
    patient_id: Annotated[
        str | None, typer.Option(help="read this patient (default: the newest one)")
    ] = None,
    write: Annotated[
        bool,
        typer.Option(
            "--write/--read-only",
            help="also register a labelled smoke-test patient and override the evaluation",
        ),
    ] = False,
    allow_http: Annotated[
        bool, typer.Option(help="allow plain http to a host other than loopback")
    ] = False,
    timeout: Annotated[float, typer.Option(min=1, max=120, help="seconds per request")] = 15.0,
) -> None:
    """Check a running installation end to end: health, sign-in, rate-limit and security
    headers, a patient read, a CDS evaluation (and override with --write), KPIs, the audit
    chain, SQL-injection and XSS probes. Exit 1 when a check fails."""
    base = _base_url(url, allow_http=allow_http)
    if not email or not password:
        raise _usage("give --email and the password (CLINICOS_SMOKE_PASSWORD)")
    clinical = Credentials(email, password, mfa_code, totp_secret)
    oversight = None
    if auditor_email:
        oversight = Credentials(
            auditor_email, auditor_password or password, None, auditor_totp_secret
        )
    client = httpx.Client(
        base_url=base,
        timeout=timeout,
        follow_redirects=False,
        headers={"user-agent": "clinicos-smoke"},
    )
    with client:
        run = SmokeRun(
            http=client,
            clinical=clinical,
            oversight=oversight,
            organization=organization,
            write=write,
            patient_id=patient_id,
        )
        ok = run.run()
    if not ok:
        raise typer.Exit(1)
