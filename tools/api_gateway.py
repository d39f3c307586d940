"""A local stand-in for API Gateway (HTTP API, payload 2.0) in front of a
function served by `cargo lambda watch`: HTTP in, the v2 event with a JWT
authorizer context out to the Lambda Invoke API, the function's answer back.

The authorizer is simulated: every request carries the `org_id` claim given
with --org (API Gateway would take it from a verified JWT). Used by the API
fuzz run (schemathesis) and, with --console, by `make console` and the
console's browser tests; prints `READY <port>` once listening and exits when
stdin closes.

With --console DIR the stand-in is also the console's host, on one origin
(no CORS): the built page from DIR, a bearer token the authorizer demands on
`/v1/` (a random one per start; `401` without it, as API Gateway's JWT
authorizer answers), the host session at `/local/session` that hands the
page its token and configuration (what a vendor's own host page would do
after its login), and the customer's CloudFormation template at
`/templates/customer-role.yaml`.

Usage: api_gateway.py --lambda-endpoint http://127.0.0.1:PORT --function NAME --org ORG
                      [--console DIR --customer-template FILE [--template-url URL]]
"""

import argparse
import base64
import hmac
import json
import mimetypes
import pathlib
import secrets
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


# What the console's pages may do: scripts, styles and API calls of this
# origin only; no framing, no inline script, no referrer to AWS's console.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class Console:
    """The console's host: its built files, the token and the session."""

    def __init__(self, root, template, template_url, org):
        self.root = pathlib.Path(root).resolve()
        self.template = pathlib.Path(template).resolve()
        self.template_url = template_url
        self.org = org
        self.token = secrets.token_urlsafe(32)
        self.port = None

    def our_host(self, headers):
        """Whether the request names this server: a page on another name that
        resolves to 127.0.0.1 (DNS rebinding) must not read the session."""
        return headers.get("Host") in (f"127.0.0.1:{self.port}", f"localhost:{self.port}")

    def authorized(self, headers):
        given = headers.get("Authorization") or ""
        return hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode())

    def file(self, path):
        """The built file `path` names, or None: nothing outside the build."""
        if path == "/templates/customer-role.yaml":
            return self.template
        relative = path.lstrip("/") or "index.html"
        try:
            candidate = (self.root / relative).resolve()
            if candidate.is_relative_to(self.root) and candidate.is_file():
                return candidate
        except (OSError, ValueError):
            pass  # a NUL byte or a name too long: no such file
        return None


def handler_for(invoke_url, org, console=None):
    class Gateway(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def serve_console(self, url):
            if url.path == "/local/session" and self.command == "GET":
                session = {"token": console.token, "org_id": console.org, "customer_template_url": console.template_url}
                self.reply(200, {"Content-Type": "application/json", **PAGE_HEADERS}, json.dumps(session).encode())
                return
            found = console.file(url.path) if self.command in ("GET", "HEAD") else None
            if found is None:
                self.reply(404, {"Content-Type": "text/plain", **PAGE_HEADERS}, b"Not Found")
                return
            kind = "text/yaml" if found.suffix == ".yaml" else mimetypes.guess_type(found.name)[0]
            self.reply(200, {"Content-Type": kind or "application/octet-stream", **PAGE_HEADERS}, found.read_bytes())

        def handle_any(self):
            url = urllib.parse.urlsplit(self.path)
            if console is not None and not console.our_host(self.headers):
                self.reply(403, {"Content-Type": "text/plain"}, b"Forbidden")
                return
            if console is not None and not url.path.startswith("/v1/"):
                self.serve_console(url)
                return
            if console is not None and not console.authorized(self.headers):
                # API Gateway's JWT authorizer answers this before any function runs.
                self.reply(401, {"Content-Type": "application/json"}, b'{"message":"Unauthorized"}')
                return
            if any(ord(c) < 32 or ord(c) == 127 for _, v in self.headers.items() for c in v):
                # API Gateway refuses control characters in headers before any function runs.
                self.send_error(400, "Bad Request")
                return
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body, encoded = raw.decode("utf-8"), False
            except UnicodeDecodeError:
                body, encoded = base64.b64encode(raw).decode(), True
            query = {}
            for key, value in urllib.parse.parse_qsl(url.query, keep_blank_values=True):
                # API Gateway joins repeated parameters with commas.
                query[key] = f"{query[key]},{value}" if key in query else value
            event = {
                "version": "2.0",
                "routeKey": "$default",
                "rawPath": url.path,
                "rawQueryString": url.query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "queryStringParameters": query or None,
                "requestContext": {
                    "http": {"method": self.command, "path": url.path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": self.headers.get("User-Agent", "")},
                    "stage": "$default",
                    "requestId": "local",
                    "routeKey": "$default",
                    "authorizer": {"jwt": {"claims": {"org_id": org}, "scopes": None}},
                },
                "body": body if raw else None,
                "isBase64Encoded": encoded,
            }
            request = urllib.request.Request(invoke_url, data=json.dumps(event).encode(), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    answer = json.loads(response.read())
            except (urllib.error.URLError, ValueError):
                answer = None
            if not isinstance(answer, dict) or "statusCode" not in answer:
                # What API Gateway answers when the function itself failed.
                self.reply(500, {"Content-Type": "application/json"}, b'{"message":"Internal Server Error"}')
                return
            payload = answer.get("body") or ""
            data = base64.b64decode(payload) if answer.get("isBase64Encoded") else payload.encode()
            self.reply(int(answer["statusCode"]), answer.get("headers") or {}, data)

        def reply(self, status, headers, data):
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def __getattr__(self, name):
            # Every method reaches the function, which answers 405 where it must.
            if name.startswith("do_"):
                return self.handle_any
            raise AttributeError(name)

        def send_error(self, code, message=None, explain=None):
            # Requests HTTP itself refuses get API Gateway's JSON answer, not HTML.
            self.close_connection = True
            body = {"error": {"code": "invalid_request", "message": message or "Bad Request"}}
            self.reply(code, {"Content-Type": "application/json"}, json.dumps(body).encode())

    return Gateway


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lambda-endpoint", required=True)
    parser.add_argument("--function", required=True)
    parser.add_argument("--org", required=True)
    parser.add_argument("--console", help="the console's build (console/dist) to host")
    parser.add_argument("--customer-template", help="infra/customer-role.yaml, served for the quick-create link")
    parser.add_argument("--template-url", help="the quick-create link's template URL (default: the one served here)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    invoke_url = f"{args.lambda_endpoint}/2015-03-31/functions/{args.function}/invocations"
    console = None
    if args.console:
        console = Console(args.console, args.customer_template, args.template_url, args.org)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(invoke_url, args.org, console))
    if console is not None:
        console.port = server.server_port
    if console is not None and not console.template_url:
        console.template_url = f"http://127.0.0.1:{server.server_port}/templates/customer-role.yaml"

    def stop_on_eof():
        sys.stdin.read()
        server.shutdown()

    threading.Thread(target=stop_on_eof, daemon=True).start()
    print(f"READY {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
