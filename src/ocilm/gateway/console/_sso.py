"""Signing in to the console with an OpenID Connect provider (``general_settings.ui_sso``).

Authlib does the protocol: issuer discovery, the authorization code flow with PKCE (S256), and
the ID token's checks (signature against the provider's published keys, issuer, audience,
expiry, nonce). The session is a cookie signed by itsdangerous (Starlette's SessionMiddleware):
HttpOnly, SameSite=Lax, Secure unless configured otherwise, lasting ``session_hours``. A change
made with the session needs its CSRF token in ``x-csrf-token`` (the console sends it; a forged
cross-site form cannot read it). ``admin_groups`` (from the ``groups_claim``) make an
administrator; ``team_claim`` names the teams whose keys and spend a non-administrator may read.
The master key is still accepted everywhere."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

log = logging.getLogger("ocilm.gateway")
SESSION_KEY = "ocilm"
_FIELDS = frozenset({"issuer", "client_id", "client_secret", "scopes", "admin_groups", "groups_claim", "team_claim", "redirect_url",
                     "session_hours", "cookie_secure"})  # fmt: skip


@dataclass(frozen=True)
class SsoSettings:
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    admin_groups: frozenset[str] = frozenset()
    groups_claim: str = "groups"
    team_claim: str | None = None
    redirect_url: str | None = None  # the gateway's public /ui/sso/callback, when it sits behind a proxy
    session_hours: float = 8.0
    cookie_secure: bool = True


def sso_settings(raw: Any, problems: list[str]) -> SsoSettings | None:
    """``general_settings.ui_sso``, each problem naming its field (never a value)."""
    if raw is None:
        return None
    place = "general_settings.ui_sso"
    if not isinstance(raw, dict):
        problems.append(f"{place}: expected a mapping with issuer, client_id and client_secret")
        return None
    before = len(problems)
    for key in raw:
        if key not in _FIELDS:
            problems.append(f"{place}.{key}: unknown; expected one of {', '.join(sorted(_FIELDS))}")
    for key in ("issuer", "client_id", "client_secret"):
        if not isinstance(raw.get(key), str) or not raw.get(key):
            problems.append(f"{place}.{key}: required, a string")
    issuer = raw.get("issuer")
    if isinstance(issuer, str) and not issuer.startswith(("https://", "http://")):
        problems.append(f"{place}.issuer: expected the provider's https:// URL (its /.well-known/openid-configuration is read)")
    for key in ("scopes", "admin_groups"):
        value = raw.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) and v for v in value)):
            problems.append(f"{place}.{key}: expected a list of names")
    if not raw.get("admin_groups"):
        problems.append(f"{place}.admin_groups: required: the groups whose members administer the gateway")
    for key in ("groups_claim", "team_claim", "redirect_url"):
        if raw.get(key) is not None and not (isinstance(raw[key], str) and raw[key]):
            problems.append(f"{place}.{key}: expected a string")
    hours = raw.get("session_hours", 8.0)
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= 168:
        problems.append(f"{place}.session_hours: expected hours, more than 0 and at most 168")
    if not isinstance(raw.get("cookie_secure", True), bool):
        problems.append(f"{place}.cookie_secure: expected true or false")
    if len(problems) > before:
        return None
    scopes = tuple(dict.fromkeys(["openid", *(raw.get("scopes") or ["email", "profile"])]))
    return SsoSettings(issuer=raw["issuer"].rstrip("/"), client_id=raw["client_id"], client_secret=raw["client_secret"], scopes=scopes,
                       admin_groups=frozenset(raw["admin_groups"]), groups_claim=raw.get("groups_claim") or "groups",
                       team_claim=raw.get("team_claim"), redirect_url=raw.get("redirect_url"), session_hours=float(hours),
                       cookie_secure=raw.get("cookie_secure", True))  # fmt: skip


def session_secret(master_key: str) -> str:
    """The cookie-signing secret, the same on every replica, never the master key itself."""
    return hmac.new(master_key.encode(), b"ocilm console session", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SsoUser:
    subject: str
    name: str
    admin: bool
    teams: tuple[str, ...]
    csrf: str


class Sso:
    """The provider's client and the console's sessions."""

    def __init__(self, settings: SsoSettings) -> None:
        from authlib.integrations.starlette_client import OAuth

        self.settings = settings
        self.oauth = OAuth()
        self.client = self.oauth.register(
            name="ocilm", client_id=settings.client_id, client_secret=settings.client_secret,
            server_metadata_url=f"{settings.issuer}/.well-known/openid-configuration",
            client_kwargs={"scope": " ".join(settings.scopes), "code_challenge_method": "S256"},
        )  # fmt: skip

    def user(self, request: Request) -> SsoUser | None:
        """The signed-in user of this request's session, or None (absent or expired)."""
        found = request.scope.get("session", {}).get(SESSION_KEY) if "session" in request.scope else None
        if not isinstance(found, dict) or float(found.get("until", 0)) <= time.time():
            return None
        return SsoUser(found["sub"], found["name"], bool(found["admin"]), tuple(found["teams"]), found["csrf"])

    def csrf_ok(self, request: Request, user: SsoUser) -> bool:
        return hmac.compare_digest(request.headers.get("x-csrf-token", "").encode(), user.csrf.encode())

    def routes(self) -> list[Route]:
        settings = self.settings

        async def login(request: Request) -> Response:
            redirect = settings.redirect_url or str(request.url_for("ocilm_sso_callback"))
            return await self.client.authorize_redirect(request, redirect)

        async def callback(request: Request) -> Response:
            try:
                token = await self.client.authorize_access_token(request)
            except Exception as exc:  # any failed check (state, code, signature, issuer, audience, nonce, expiry): no session
                request.session.pop(SESSION_KEY, None)
                reason = str(getattr(exc, "error", None) or type(exc).__name__)
                log.warning("console sign-in refused: %s", reason)
                return RedirectResponse(f"/ui/?sso_error={quote(reason[:64])}", status_code=303)
            claims = dict(token.get("userinfo") or {})
            groups = claims.get(settings.groups_claim) or []
            groups = [str(g) for g in groups] if isinstance(groups, list) else [str(groups)]
            teams = claims.get(settings.team_claim) if settings.team_claim else None
            teams = [str(t) for t in teams] if isinstance(teams, list) else [str(teams)] if teams else []
            request.session[SESSION_KEY] = {
                "sub": str(claims.get("sub")), "name": str(claims.get("email") or claims.get("preferred_username") or claims.get("sub")),
                "admin": bool(settings.admin_groups & set(groups)), "teams": teams, "csrf": secrets.token_urlsafe(24),
                "until": time.time() + settings.session_hours * 3600,
            }  # fmt: skip
            return RedirectResponse("/ui/", status_code=303)

        async def session(request: Request) -> Response:
            user = self.user(request)
            if user is None:
                return JSONResponse({"sso": True, "signed_in": False})
            return JSONResponse({"sso": True, "signed_in": True, "user": user.name, "admin": user.admin, "teams": list(user.teams),
                                 "csrf": user.csrf}, headers={"cache-control": "no-store"})  # fmt: skip

        async def logout(request: Request) -> Response:
            user = self.user(request)
            if user is not None and not self.csrf_ok(request, user):
                return JSONResponse({"error": {"message": "x-csrf-token: missing or wrong", "type": "permission_error", "param": None,
                                               "code": "csrf"}}, status_code=403)  # fmt: skip
            request.session.pop(SESSION_KEY, None)
            return JSONResponse({"signed_in": False})

        return [Route("/ui/sso/login", login, methods=["GET"]), Route("/ui/sso/callback", callback, methods=["GET"], name="ocilm_sso_callback"),
                Route("/ui/session", session, methods=["GET"]), Route("/ui/sso/logout", logout, methods=["POST"])]  # fmt: skip


async def no_sso_session(request: Request) -> Response:
    return JSONResponse({"sso": False, "signed_in": False})
