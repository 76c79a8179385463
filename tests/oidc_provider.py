"""A local OpenID Connect provider for the console's sign-in tests, built on Authlib's Flask
authorization server: the authorization code flow with PKCE (S256 required), ID tokens signed
RS256 with a key made per run (joserfc), discovery and JWKS. Its "login page" signs in whichever
user the test chose (``provider.sign_in_as``); everything after that is the real protocol. Served
by werkzeug in a thread on a loopback port."""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, jsonify, request
from joserfc.jwk import KeySet, RSAKey
from werkzeug.serving import make_server


class _Client(ClientMixin):
    def __init__(self, client_id: str, secret: str, redirect_uris: list[str]) -> None:
        self.client_id, self.secret, self.redirect_uris = client_id, secret, redirect_uris

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in {"openid", "email", "profile", "groups"})

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post") if endpoint == "token" else True

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


class _Code(AuthorizationCodeMixin):
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)
        self.auth_time = int(time.time())

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class OidcProvider:
    """``issuer`` is its base URL; register one client with ``add_client`` before signing in."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-1", "use": "sig", "alg": "RS256"}, private=True)
        self.clients: dict[str, _Client] = {}
        self.codes: dict[str, _Code] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.sign_in_as: str | None = None
        self.signing_key: Any = None  # a key of the test's to sign with instead (one the JWKS does not publish)
        self.claimed_issuer: str | None = None  # an issuer to claim instead of its own
        self.tokens_issued = 0
        self.app = self._app()
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.issuer = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def add_client(self, client_id: str, secret: str, redirect_uri: str) -> None:
        self.clients[client_id] = _Client(client_id, secret, [redirect_uri])

    def add_user(self, sub: str, email: str, groups: list[str], teams: list[str] | None = None) -> None:
        self.users[sub] = {"sub": sub, "email": email, "groups": groups, "teams": teams or []}

    def __enter__(self) -> OidcProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()

    def _app(self) -> Flask:
        app = Flask("ocilm-test-oidc")
        provider = self

        class Grant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

            def save_authorization_code(self, code: str, req: Any) -> None:
                data = req.payload.data
                provider.codes[code] = _Code(code=code, client_id=req.client.client_id, redirect_uri=req.payload.redirect_uri,
                                             scope=req.payload.scope, user=req.user, nonce=data.get("nonce"),
                                             code_challenge=data.get("code_challenge"),
                                             code_challenge_method=data.get("code_challenge_method"))  # fmt: skip

            def query_authorization_code(self, code: str, client: Any) -> _Code | None:
                found = provider.codes.get(code)
                return found if found is not None and found.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code: _Code) -> None:
                provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: _Code) -> dict[str, Any]:
                return authorization_code.user

        class IdToken(OpenIDCode):
            def exists_nonce(self, nonce: str, req: Any) -> bool:
                return any(c.nonce == nonce for c in provider.codes.values())

            def resolve_client_private_key(self, client: Any) -> Any:
                return KeySet([provider.signing_key or provider.key])

            def get_client_claims(self, client: Any) -> dict[str, Any]:
                return {"iss": provider.claimed_issuer or provider.issuer, "aud": [client.get_client_id()]}

            def get_encode_header(self, client: Any) -> dict[str, Any]:
                return {"alg": "RS256", "kid": "test-1"}

            def get_client_algorithm(self, client: Any) -> str:
                return "RS256"

            def generate_user_info(self, user: dict[str, Any], scope: str) -> UserInfo:
                return UserInfo(sub=user["sub"], email=user["email"], groups=user["groups"], teams=user["teams"])

        def save_token(token: dict[str, Any], req: Any) -> None:
            provider.tokens_issued += 1

        server = AuthorizationServer(app, query_client=self.clients.get, save_token=save_token)
        server.register_grant(Grant, [IdToken(require_nonce=True), CodeChallenge(required=True)])

        @app.get("/.well-known/openid-configuration")
        def discovery() -> Any:
            return jsonify({"issuer": provider.issuer, "authorization_endpoint": f"{provider.issuer}/authorize",
                            "token_endpoint": f"{provider.issuer}/token", "jwks_uri": f"{provider.issuer}/jwks",
                            "response_types_supported": ["code"], "subject_types_supported": ["public"],
                            "id_token_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"],
                            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"]})  # fmt: skip

        @app.get("/jwks")
        def jwks() -> Any:
            return jsonify({"keys": [provider.key.as_dict(private=False)]})

        @app.get("/authorize")
        def authorize() -> Any:
            user = provider.users.get(provider.sign_in_as or "")
            return server.create_authorization_response(grant_user=user)  # no user: access_denied, back to the client

        @app.post("/token")
        def token() -> Any:
            return server.create_token_response()

        _ = request  # flask's request proxy is what the server reads
        return app
