"""A local stand-in for API Gateway (HTTP API, payload 2.0) in front of a
function served by `cargo lambda watch`: HTTP in, the v2 event with a JWT
authorizer context out to the Lambda Invoke API, the function's answer back.

The authorizer is simulated: every request carries the `org_id` claim given
with --org (API Gateway would take it from a verified JWT). Used by the API
fuzz run (schemathesis); prints `READY <port>` once listening and exits when
stdin closes.

Usage: api_gateway.py --lambda-endpoint http://127.0.0.1:PORT --function NAME --org ORG
"""

import argparse
import base64
import json
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def handler_for(invoke_url, org):
    class Gateway(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def handle_any(self):
            url = urllib.parse.urlsplit(self.path)
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
                    "http": {"method": self.command, "path": url.path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "fuzz"},
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
    args = parser.parse_args()
    invoke_url = f"{args.lambda_endpoint}/2015-03-31/functions/{args.function}/invocations"
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(invoke_url, args.org))

    def stop_on_eof():
        sys.stdin.read()
        server.shutdown()

    threading.Thread(target=stop_on_eof, daemon=True).start()
    print(f"READY {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
