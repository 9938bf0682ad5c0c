"""An MCP server protected by Latchkey: the Python `mcp` SDK's server over streamable HTTP.

Latchkey is its authorization server. The SDK serves the server's OAuth 2.0 Protected
Resource Metadata (RFC 9728) at `/.well-known/oauth-protected-resource/mcp`, naming Latchkey
in `authorization_servers`, and answers a request without a valid token with a 401 whose
`WWW-Authenticate` points there. Tokens are checked by introspection (RFC 7662) at Latchkey,
with a client allowed to introspect (`latchkey client create --introspect`): a token must be
active, carry the `mcp` scope and name this server's URL in its audience (RFC 8707 `aud`).

Usage:
    python3 mcp_server.py --issuer http://127.0.0.1:8080 --port 8000 \
        --client-id ID --client-secret-file FILE   # or LATCHKEY_INTROSPECT_SECRET in the env

The resource identifier is `http://127.0.0.1:PORT/mcp`; register the same value as a
`[[resources]]` entry of Latchkey.
"""

import argparse
import os
import sys

import httpx2 as httpx
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

SCOPE = "mcp"


class LatchkeyIntrospection:
    """A `TokenVerifier` that asks Latchkey's introspection endpoint about each token."""

    def __init__(self, endpoint: str, client_id: str, client_secret: str, resource: str):
        self.endpoint = endpoint
        self.auth = (client_id, client_secret)
        self.resource = resource

    async def verify_token(self, token: str) -> AccessToken | None:
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.post(self.endpoint, data={"token": token}, auth=self.auth)
        if answer.status_code != 200:
            return None
        info = answer.json()
        if not info.get("active"):
            return None
        # RFC 7662 §2.2: `aud` is a string or a list of strings.
        aud = info.get("aud")
        audience = [aud] if isinstance(aud, str) else [a for a in aud or [] if isinstance(a, str)]
        # RFC 8707 / RFC 9068 §4: a token for another resource is not a token for this one.
        if self.resource not in audience:
            return None
        return AccessToken(
            token=token,
            client_id=info.get("client_id", ""),
            scopes=(info.get("scope") or "").split(),
            expires_at=info.get("exp"),
            resource=self.resource,
            subject=info.get("sub"),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issuer", required=True, help="Latchkey's issuer URL")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True, help="a Latchkey client allowed to introspect")
    parser.add_argument("--client-secret-file", help="its secret (else LATCHKEY_INTROSPECT_SECRET)")
    args = parser.parse_args()
    if args.client_secret_file:
        with open(args.client_secret_file) as f:
            secret = f.read().strip()
    else:
        secret = os.environ["LATCHKEY_INTROSPECT_SECRET"]

    issuer = args.issuer.rstrip("/")
    resource = f"http://127.0.0.1:{args.port}/mcp"
    # The endpoint comes from Latchkey's metadata (RFC 8414), not from a guess.
    metadata = httpx.get(f"{issuer}/.well-known/oauth-authorization-server", timeout=10).json()
    if metadata.get("issuer") != issuer:
        sys.exit(f"metadata names issuer {metadata.get('issuer')!r}, not {issuer!r}")
    verifier = LatchkeyIntrospection(
        metadata["introspection_endpoint"], args.client_id, secret, resource
    )

    server = MCPServer(
        "Latchkey-protected MCP server",
        token_verifier=verifier,
        auth=AuthSettings(
            issuer_url=issuer,
            resource_server_url=resource,
            required_scopes=[SCOPE],
            validate_token_resource=True,
        ),
    )

    @server.tool()
    def add(a: int, b: int) -> int:
        """Adds two numbers."""
        return a + b

    @server.tool()
    def whoami() -> str:
        """The user the access token was issued for."""
        token = get_access_token()
        return token.subject if token and token.subject else ""

    app = server.streamable_http_app(streamable_http_path="/mcp")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
