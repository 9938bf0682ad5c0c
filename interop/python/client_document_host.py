"""Serves one client ID metadata document over HTTPS, as an MCP client's publisher would.

With a client ID metadata document (draft-ietf-oauth-client-id-metadata-document), a client's
`client_id` is the `https` URL of a JSON document describing it; the authorization server
fetches it instead of the client registering. This host serves such a document for
`mcp_client.py --client-metadata-url`: its `client_id` is its own URL, it lists the redirect URI
the client uses, and `Cache-Control: max-age` tells the authorization server how long it may
keep it. Only the standard library is used.

Once listening it prints one JSON line `{"client_id": URL}`; each request is logged on stderr.

Usage:
    python3 client_document_host.py --cert host.pem --key host.key --port 8443 \
        --path /clients/mcp-cli.json --redirect-uri http://localhost:3030/callback
"""

import argparse
import http.server
import json
import ssl
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert", required=True, help="PEM certificate (chain) for 127.0.0.1")
    parser.add_argument("--key", required=True, help="its PEM private key")
    parser.add_argument("--port", type=int, default=8443, help="0 picks a free port")
    parser.add_argument("--path", default="/clients/mcp-cli.json")
    parser.add_argument("--redirect-uri", default="http://localhost:3030/callback")
    parser.add_argument("--client-name", default="MCP CLI (metadata document)")
    parser.add_argument("--max-age", type=int, default=300, help="Cache-Control max-age, seconds")
    args = parser.parse_args()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), None)
    client_id = f"https://127.0.0.1:{server.server_address[1]}{args.path}"
    document = json.dumps(
        {
            "client_id": client_id,
            "client_name": args.client_name,
            "redirect_uris": [args.redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
    ).encode()

    class Document(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path != args.path:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.send_header("Cache-Control", f"max-age={args.max_age}")
            self.end_headers()
            self.wfile.write(document)

    server.RequestHandlerClass = Document
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(args.cert, args.key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    print(json.dumps({"client_id": client_id}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
