"""An MCP client signing in at Latchkey: the Python `mcp` SDK's `OAuthClientProvider`, unchanged.

It connects to an MCP server protected by Latchkey and lets the SDK do everything an MCP
client does: take the 401, discover the protected-resource metadata (RFC 9728) and Latchkey's
authorization-server metadata (RFC 8414), register itself (RFC 7591), run the authorization
code flow with PKCE and `resource` (RFC 8707), then `initialize` and call tools.

With `--client-metadata-url URL` the client does not register: the SDK uses the `https` URL of
its client ID metadata document (served by `client_document_host.py`, for example) as its
`client_id` when the authorization server's metadata says
`client_id_metadata_document_supported: true`, and Latchkey fetches the document.

The user's browser is whoever drives this script: the authorization URL the SDK built is
printed as a JSON line `{"authorize": URL}`, and the redirect the browser reached is read back
as a JSON line `{"method": "GET", "url": URL}` on stdin (a person may paste the bare URL from
the browser's address bar instead). The outcome is printed as
`{"result": {...}}`; a failure as `{"error": ..., "trace": ...}` with a non-zero exit.

Usage: python3 mcp_client.py http://127.0.0.1:PORT/mcp [--client-metadata-url URL]
"""

import argparse
import asyncio
import json
import sys
import traceback
from urllib.parse import parse_qs, urlparse

import httpx2 as httpx
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

REDIRECT_URI = "http://localhost:3030/callback"


def emit(value: dict) -> None:
    print(json.dumps(value), flush=True)


class MemoryStorage:
    """The SDK's `TokenStorage`, kept in memory for one run."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def redirect_handler(url: str) -> None:
    emit({"authorize": url})
    print(
        "Open the authorize URL in a browser, sign in and allow; then paste here the URL the"
        f" browser ended at ({REDIRECT_URI}?code=...):",
        file=sys.stderr,
        flush=True,
    )


async def callback_handler() -> AuthorizationCodeResult:
    line = (await asyncio.to_thread(sys.stdin.readline)).strip()
    url = json.loads(line)["url"] if line.startswith("{") else line
    query = parse_qs(urlparse(url).query)
    if "error" in query:
        raise RuntimeError(f"authorization refused: {query}")
    return AuthorizationCodeResult(
        code=query["code"][0],
        state=query.get("state", [None])[0],
        iss=query.get("iss", [None])[0],
    )


def text_of(result) -> str:
    return "".join(getattr(part, "text", "") for part in result.content)


async def main(server_url: str, client_metadata_url: str | None) -> None:
    storage = MemoryStorage()
    oauth = OAuthClientProvider(
        server_url=server_url,
        client_metadata=OAuthClientMetadata(
            client_name="MCP SDK interop client",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        client_metadata_url=client_metadata_url,
    )
    async with httpx.AsyncClient(auth=oauth, timeout=30) as http:
        async with streamable_http_client(server_url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = await session.list_tools()
                added = await session.call_tool("add", {"a": 2, "b": 3})
                who = await session.call_tool("whoami", {})
    context = oauth.context
    emit(
        {
            "result": {
                "tools": sorted(t.name for t in tools.tools),
                "add": text_of(added),
                "add_is_error": bool(added.is_error),
                "whoami": text_of(who),
                "client_id": storage.client.client_id,
                "token_endpoint_auth_method": storage.client.token_endpoint_auth_method,
                "authorization_server": context.auth_server_url,
                "resource": context.get_resource_url(),
                "scope": storage.tokens.scope,
                "access_token": storage.tokens.access_token,
            }
        }
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server_url", help="the MCP server, e.g. http://127.0.0.1:8000/mcp")
    parser.add_argument(
        "--client-metadata-url", help="https URL of this client's metadata document (no registration)"
    )
    args = parser.parse_args()
    try:
        asyncio.run(main(args.server_url, args.client_metadata_url))
    except BaseException as exc:  # noqa: BLE001 - the driver reads every failure
        emit({"error": repr(exc), "trace": traceback.format_exc()})
        sys.exit(1)
