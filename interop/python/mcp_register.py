"""Dynamic client registration as the Python `mcp` SDK does it, against a running Latchkey.

The request is built by the SDK's own `create_client_registration_request` from its
`OAuthClientMetadata` (defaults and the authentication methods its OAuth flow uses), and the
answer is parsed and judged by the SDK's `handle_registration_response` and
`check_registration_usable`: what an MCP client does before it starts the authorization code
flow. Prints one JSON line per registration; any SDK error fails the script.

Usage: python3 mcp_register.py http://127.0.0.1:PORT
"""

import asyncio
import json
import sys

import httpx2 as httpx
from mcp.client.auth.oauth2 import check_registration_usable
from mcp.client.auth.utils import (
    create_client_registration_request,
    handle_registration_response,
)
from mcp.shared.auth import OAuthClientMetadata, OAuthMetadata


async def main(base: str) -> None:
    async with httpx.AsyncClient() as http:
        discovery = await http.get(base + "/.well-known/oauth-authorization-server")
        metadata = OAuthMetadata.model_validate(discovery.json())
        for method in [None, "none", "client_secret_post", "client_secret_basic"]:
            fields = {
                "redirect_uris": ["http://localhost:3030/callback"],
                "client_name": "MCP SDK client",
            }
            if method is not None:
                fields["token_endpoint_auth_method"] = method
            client_metadata = OAuthClientMetadata(**fields)
            request = create_client_registration_request(metadata, client_metadata, base)
            response = await http.send(request)
            info = await handle_registration_response(response)
            check_registration_usable(info)
            print(
                json.dumps(
                    {
                        "asked": method,
                        "client_id": info.client_id,
                        "method": info.token_endpoint_auth_method,
                        "has_secret": info.client_secret is not None,
                        "sent": json.loads(request.content),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
