"""Authlib's OpenID Connect client as an unchanged third-party relying party of Latchkey.

Run by crates/latchkey-server/tests/oidc_interop_authlib.rs, which starts the real `latchkey`
binary and plays the user's browser. Authlib does every protocol step itself: discovery, the
authorization URL (PKCE S256, nonce, state), the token request with the callback URL (state
checked), ID-token validation (`parse_id_token`: signature against the JWKS, iss, aud, exp,
iat, nonce, at_hash), userinfo, refresh, and the end_session URL (`create_logout_url`). It is
the client of Authlib's framework integrations (`FlaskOAuth2App` minus Flask): the same
`OAuth2Mixin` and `OpenIDMixin`. The test and this script talk in JSON lines:

    python3 rp.py '<config JSON>'   -> {"authorize": URL}
                                    <- {"method": "GET", "url": URL}
                                    -> {"result": {...}}   or   {"error": "..."} (exit 1)

config: issuer, client_id, client_secret, redirect_uri, post_logout_redirect_uri.
"""

import json
import sys
import traceback

from authlib.integrations.base_client import BaseApp, FrameworkIntegration
from authlib.integrations.base_client import OAuth2Mixin, OpenIDMixin
from authlib.integrations.requests_client import OAuth2Session

SCOPE = "openid profile email"


class Framework(FrameworkIntegration):
    """No web framework: the script keeps the authorization state itself."""

    def update_token(self, token, refresh_token=None, access_token=None):
        pass


class App(OAuth2Mixin, OpenIDMixin, BaseApp):
    """Authlib's OpenID Connect client app, as its framework integrations compose it."""

    client_cls = OAuth2Session


def emit(value):
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def flow(config):
    issuer = config["issuer"]
    app = App(
        Framework("latchkey"),
        name="latchkey",
        client_id=config["client_id"],
        client_secret=config["client_secret"],
        server_metadata_url=issuer + "/.well-known/openid-configuration",
        client_kwargs={
            "scope": SCOPE,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
        },
    )
    metadata = app.load_server_metadata()
    # OpenID Connect Discovery §4.3: the issuer in the document is the one asked for.
    if metadata.get("issuer") != issuer:
        raise RuntimeError(f"discovery issuer {metadata.get('issuer')!r} is not {issuer!r}")

    # create_authorization_url makes the PKCE verifier, the nonce and the state.
    auth = app.create_authorization_url(redirect_uri=config["redirect_uri"])
    emit({"authorize": auth["url"]})

    arrival = json.loads(sys.stdin.readline())
    if arrival.get("method") != "GET":
        raise RuntimeError("Authlib's client handles query responses only")

    # fetch_token parses the callback URL and refuses a state other than ours.
    token = app.fetch_access_token(
        redirect_uri=config["redirect_uri"],
        authorization_response=arrival["url"],
        state=auth["state"],
        code_verifier=auth["code_verifier"],
    )
    claims = app.parse_id_token(token, nonce=auth["nonce"])
    if claims is None:
        raise RuntimeError("the token response has no id_token")
    userinfo = app.userinfo(token=token)
    # OpenID Connect Core §5.3.2: "The sub Claim in the UserInfo Response MUST be verified to
    # exactly match the sub Claim in the ID Token".
    if userinfo.get("sub") != claims["sub"]:
        raise RuntimeError("userinfo sub differs from the ID token's")

    refresher = OAuth2Session(
        config["client_id"],
        config["client_secret"],
        token_endpoint_auth_method="client_secret_basic",
    )
    refreshed = refresher.refresh_token(
        metadata["token_endpoint"], refresh_token=token["refresh_token"]
    )
    # A refreshed ID token carries no new nonce (OpenID Connect Core §12.2); everything else
    # (signature, iss, aud, exp, iat, at_hash) is checked as for the first one.
    refreshed_claims = app.parse_id_token(refreshed, nonce=None)

    logout = app.create_logout_url(
        post_logout_redirect_uri=config["post_logout_redirect_uri"],
        id_token_hint=refreshed.get("id_token") or token["id_token"],
    )
    emit(
        {
            "result": {
                "id_token_claims": dict(claims),
                "userinfo": dict(userinfo),
                "refreshed_id_token_claims": dict(refreshed_claims)
                if refreshed_claims is not None
                else None,
                "access_token_changed": refreshed["access_token"] != token["access_token"],
                "logout_url": logout["url"],
                "logout_state": logout["state"],
            }
        }
    )


def main():
    try:
        flow(json.loads(sys.argv[1]))
    except Exception as err:  # noqa: BLE001 - the test shows whatever failed
        emit({"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()})
        sys.exit(1)


if __name__ == "__main__":
    main()
