"""Local AWS for stored-messages: the pinned moto server, plus what AWS enforces
and moto does not.

moto (pinned in tools/requirements.txt) serves S3, STS and IAM with its IAM
enforcement on from the start. In front of it sits a small WSGI middleware that
adds the AWS behaviour our security rests on, so negative paths are proven end
to end rather than only in mocks:

* AssumeRole is checked against the role's trust policy: principal, and
  StringEquals/StringLike on sts:ExternalId (moto accepts a missing ExternalId
  and never checks cross-account trust). Denials answer in AWS's own error
  shape, which aws-sdk-rust parses (moto's shape leaves the code empty).
* A session policy passed to AssumeRole limits that session's S3 calls, as AWS
  intersects it with the role's policies (moto ignores it).
* `x-amz-expected-bucket-owner` is enforced (moto ignores it).
* A request signed for the wrong region is refused with the bucket's region,
  like S3's AuthorizationHeaderMalformed.
* Unsigned GETs are served only where a bucket policy grants Principal "*".

And for tests: a request recorder (`GET/DELETE /_sm/requests`, every request
with its headers and STS/IAM parameters, including refused ones), fault
injection (`POST/GET/DELETE /_sm/faults`) and fixtures (`POST /_sm/aws`: boto3
calls run as any account with enforcement off).

Usage: server.py [--port N]; prints `READY <port>` once listening, and exits
when stdin closes so it never outlives the process that started it.
"""

import argparse
import base64
import datetime
import fnmatch
import io
import json
import os
import random
import re
import signal
import socket
import sys
import threading
import urllib.parse
import uuid

# Enforcement on from the first request; must be set before moto is imported.
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"

import boto3  # noqa: E402
import botocore.config  # noqa: E402
from moto import settings as moto_settings  # noqa: E402
from moto.iam.models import get_account_id_from, iam_backends  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.s3.models import s3_backends  # noqa: E402
from moto.sts.models import sts_backends  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

DEFAULT_ACCOUNT = "123456789012"
CREDENTIAL_RE = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
ACCESS_KEY_RE = re.compile(r"<AccessKeyId>([^<]+)</AccessKeyId>")


def auth_on():
    return moto_settings.INITIAL_NO_AUTH_ACTION_COUNT != float("inf")


def sts_error(status, code, message):
    body = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return status, {"Content-Type": "text/xml"}, body.encode()


def s3_error(status, code, message, extra="", headers=None):
    body = f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message>{extra}<RequestId>{uuid.uuid4()}</RequestId></Error>"
    return status, {"Content-Type": "application/xml", **(headers or {})}, body.encode()


def as_list(value):
    return value if isinstance(value, list) else [value]


def wildcard(pattern, value):
    return fnmatch.fnmatchcase(value, pattern)


class Request:
    """What the middleware needs to know about one request."""

    def __init__(self, environ, body):
        self.environ = environ
        self.method = environ["REQUEST_METHOD"]
        self.path = urllib.parse.unquote(environ.get("PATH_INFO", "/"))
        self.query = environ.get("QUERY_STRING", "")
        self.body = body
        self.headers = {
            key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")
        }
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                self.headers[key.replace("_", "-").lower()] = environ[key]
        auth = self.headers.get("authorization", "")
        query = urllib.parse.parse_qs(self.query)
        match = CREDENTIAL_RE.search(auth) or CREDENTIAL_RE.search("Credential=" + query.get("X-Amz-Credential", [""])[0])
        self.access_key, self.region, self.service = match.groups() if match else (None, None, None)
        self.params = {}
        if self.service in ("sts", "iam") and "x-www-form-urlencoded" in self.headers.get("content-type", ""):
            self.params = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(errors="replace")).items()}
        self.params.update({k: v[0] for k, v in query.items() if k in ("Action", "RoleArn", "ExternalId")})
        segments = self.path.lstrip("/").split("/", 1)
        self.bucket = segments[0] or None
        self.key = segments[1] if len(segments) > 1 and segments[1] else None

    @property
    def s3(self):
        return self.service == "s3" or (self.service is None and self.bucket and not self.path.startswith("/moto-api"))


class Enforcer:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.fixture_lock = threading.Lock()
        self.requests = []
        self.rules = []
        self.fired = []
        self.random = random.Random(0)
        self.session_policies = {}
        self.fixture_credentials = {}
        self.endpoint = None

    # ---- WSGI entry -------------------------------------------------------
    def __call__(self, environ, start_response):
        if environ.get("wsgi.input_terminated") or not environ.get("CONTENT_LENGTH"):
            body = environ["wsgi.input"].read() if environ.get("wsgi.input_terminated") else b""
        else:
            body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        request = Request(environ, body)
        if request.path.startswith("/_sm/"):
            return self.respond(start_response, *self.internal(request))

        answer = self.fault(request)
        if answer == "reset":
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
            self.record(request, 0)
            return []
        if answer is None and auth_on():
            answer = self.enforce(request)
        if answer is None:
            answer = self.forward(request, environ)
        status, headers, payload = answer
        if request.service == "sts" and status >= 400 and b"<Errors>" in payload:
            code = re.search(rb"<Code>([^<]*)</Code>", payload)
            message = re.search(rb"<Message>([^<]*)</Message>", payload)
            status, headers, payload = sts_error(
                status,
                code.group(1).decode() if code else "Unknown",
                message.group(1).decode() if message else "",
            )
        if request.params.get("Action") == "AssumeRole" and status == 200 and request.params.get("Policy"):
            key = ACCESS_KEY_RE.search(payload.decode(errors="replace"))
            if key:
                with self.lock:
                    self.session_policies[key.group(1)] = json.loads(request.params["Policy"])
        self.record(request, status)
        return self.respond(start_response, status, headers, payload)

    def respond(self, start_response, status, headers, payload):
        reason = {200: "OK", 204: "No Content", 400: "Bad Request", 403: "Forbidden", 404: "Not Found"}.get(status, "Status")
        headers = dict(headers)
        headers["Content-Length"] = str(len(payload))
        start_response(f"{status} {reason}", list(headers.items()))
        return [payload]

    def forward(self, request, environ):
        captured = {}

        def start(status, headers, exc_info=None):
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = headers
            return lambda data: None

        payload = b"".join(self.app(environ, start))
        headers = {k: v for k, v in captured["headers"] if k.lower() != "content-length"}
        return captured["status"], headers, payload

    def record(self, request, status):
        with self.lock:
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "query": request.query,
                    "headers": request.headers,
                    "service": request.service,
                    "region": request.region,
                    "access_key_id": request.access_key,
                    "params": request.params,
                    "status": status,
                }
            )

    # ---- faults -----------------------------------------------------------
    def fault(self, request):
        with self.lock:
            for index, rule in enumerate(self.rules):
                if rule.get("service") and rule["service"] != (request.service or ("s3" if request.s3 else None)):
                    continue
                if rule.get("method") and rule["method"] != request.method:
                    continue
                if rule.get("path_prefix") and not request.path.startswith(rule["path_prefix"]):
                    continue
                if rule.get("action_param") and rule["action_param"] != request.params.get("Action"):
                    continue
                if rule.get("count") is not None and self.fired[index] >= rule["count"]:
                    continue
                if self.random.random() >= rule.get("probability", 1.0):
                    continue
                self.fired[index] += 1
                break
            else:
                return None
        if rule["action"] == "delay":
            threading.Event().wait(rule.get("seconds", 1.0))
            return None
        if rule["action"] == "reset":
            return "reset"
        code, message = rule.get("code", "InternalError"), rule.get("message", "injected fault")
        if request.service == "sts":
            return sts_error(rule.get("status", 500), code, message)
        return s3_error(rule.get("status", 500), code, message)

    # ---- enforcement ------------------------------------------------------
    def enforce(self, request):
        if request.service == "sts" and request.params.get("Action") == "AssumeRole":
            return self.enforce_trust(request)
        if request.s3 and request.bucket:
            return self.enforce_s3(request)
        return None

    def caller(self, access_key):
        account = get_account_id_from(access_key)
        for user in iam_backends[account]["aws"].users.values():
            if any(k.access_key_id == access_key for k in user.access_keys):
                return account, [user.arn]
        for role in sts_backends[account]["aws"].assumed_roles:
            if role.access_key_id == access_key:
                return account, [role.arn, role.role_arn]
        return account, []

    def enforce_trust(self, request):
        role_arn = request.params.get("RoleArn", "")
        account, caller_arns = self.caller(request.access_key or "")
        denied = sts_error(
            403,
            "AccessDenied",
            f"User: {caller_arns[0] if caller_arns else 'unknown'} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
        )
        try:
            role_account = role_arn.split(":")[4]
            role = iam_backends[role_account]["aws"].get_role_by_arn(role_arn)
            document = role.assume_role_policy_document
            policy = json.loads(document if document.lstrip().startswith("{") else urllib.parse.unquote(document))
        except Exception:
            return denied
        principals = set(caller_arns) | {f"arn:aws:iam::{account}:root", account}
        context = {"sts:externalid": request.params.get("ExternalId"), "aws:principalarn": caller_arns[0] if caller_arns else None}
        allowed = False
        for statement in as_list(policy.get("Statement", [])):
            if not any(wildcard(a.lower(), "sts:assumerole") for a in as_list(statement.get("Action", []))):
                continue
            principal = statement.get("Principal", {})
            trusted = principal == "*" or any(
                p == "*" or p in principals for p in as_list(principal.get("AWS", [])) if isinstance(principal, dict)
            )
            if not trusted or not self.conditions_hold(statement.get("Condition", {}), context):
                continue
            if statement.get("Effect") == "Deny":
                return denied
            allowed = True
        return None if allowed else denied

    @staticmethod
    def conditions_hold(conditions, context):
        for operator, checks in conditions.items():
            for key, expected in checks.items():
                actual = context.get(key.lower())
                if actual is None:
                    return False
                if operator == "StringEquals":
                    ok = actual in as_list(expected)
                elif operator == "StringLike":
                    ok = any(wildcard(e, actual) for e in as_list(expected))
                else:
                    return False  # unknown operators fail closed
                if not ok:
                    return False
        return True

    def bucket_info(self, name):
        located = s3_backends.bucket_accounts.get(name)
        if not located:
            return None, None
        partition, account = located
        return account, s3_backends[account][partition].buckets.get(name)

    def enforce_s3(self, request):
        owner, bucket = self.bucket_info(request.bucket)
        expected = request.headers.get("x-amz-expected-bucket-owner")
        if expected and owner and expected != owner:
            return s3_error(403, "AccessDenied", "Access Denied")
        if request.access_key is None:
            return self.anonymous(request, owner, bucket)
        if bucket is not None and request.region and request.region != bucket.region_name:
            return s3_error(
                400,
                "AuthorizationHeaderMalformed",
                f"The authorization header is malformed; the region '{request.region}' is wrong; expecting '{bucket.region_name}'",
                f"<Region>{bucket.region_name}</Region>",
                {"x-amz-bucket-region": bucket.region_name},
            )
        with self.lock:
            session_policy = self.session_policies.get(request.access_key)
        if session_policy is not None and not self.allows(session_policy, *self.s3_action(request)):
            return s3_error(403, "AccessDenied", "Access Denied")
        return None

    @staticmethod
    def s3_action(request):
        if request.key is None:
            action = "s3:ListBucket" if request.method == "GET" else f"s3:{request.method.title()}Bucket"
            return action, f"arn:aws:s3:::{request.bucket}"
        action = {"PUT": "s3:PutObject", "GET": "s3:GetObject", "HEAD": "s3:GetObject", "DELETE": "s3:DeleteObject"}.get(
            request.method, "s3:Unknown"
        )
        return action, f"arn:aws:s3:::{request.bucket}/{request.key}"

    @staticmethod
    def allows(policy, action, resource):
        for statement in as_list(policy.get("Statement", [])):
            if statement.get("Effect") != "Allow":
                continue
            actions = as_list(statement.get("Action", []))
            resources = as_list(statement.get("Resource", []))
            if any(wildcard(a, action) for a in actions) and any(wildcard(r, resource) for r in resources):
                return True
        return False

    def anonymous(self, request, owner, bucket):
        if bucket is None:
            return s3_error(404, "NoSuchBucket", "The specified bucket does not exist")
        policy = json.loads(bucket.policy) if bucket.policy else {}
        action, resource = self.s3_action(request)
        public = any(
            statement.get("Effect") == "Allow"
            and statement.get("Principal") in ("*", {"AWS": "*"})
            and any(wildcard(a, action) for a in as_list(statement.get("Action", [])))
            and any(wildcard(r, resource) for r in as_list(statement.get("Resource", [])))
            for statement in as_list(policy.get("Statement", []))
        )
        if not public or action != "s3:GetObject":
            return s3_error(403, "AccessDenied", "Access Denied")
        try:
            key = s3_backends[owner]["aws"].get_object(request.bucket, request.key)
        except Exception:
            key = None
        if key is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        content_type = key.metadata.get("Content-Type", "application/octet-stream") if hasattr(key, "metadata") else "application/octet-stream"
        return 200, {"Content-Type": content_type}, key.value

    # ---- the harness's own API ---------------------------------------------
    def internal(self, request):
        ok = lambda value: (200, {"Content-Type": "application/json"}, json.dumps(value, default=str).encode())  # noqa: E731
        if request.path == "/_sm/requests":
            with self.lock:
                if request.method == "DELETE":
                    self.requests.clear()
                    return ok({"cleared": True})
                return ok(list(self.requests))
        if request.path == "/_sm/faults":
            with self.lock:
                if request.method == "POST":
                    spec = json.loads(request.body or b"{}")
                    self.rules = spec.get("rules", [])
                    self.fired = [0] * len(self.rules)
                    self.random = random.Random(spec.get("seed", 0))
                elif request.method == "DELETE":
                    self.rules, self.fired = [], []
                return ok({"rules": self.rules, "fired": self.fired})
        if request.path == "/_sm/aws" and request.method == "POST":
            spec = json.loads(request.body)
            try:
                return ok({"results": self.fixture(spec)})
            except FixtureError as err:
                return 400, {"Content-Type": "application/json"}, json.dumps({"error": str(err.__cause__), "index": err.index}).encode()
        return 404, {"Content-Type": "application/json"}, b'{"error": "unknown harness route"}'

    def fixture(self, spec):
        account, region = spec.get("account", DEFAULT_ACCOUNT), spec.get("region", "us-east-1")
        with self.fixture_lock:
            previous = moto_settings.INITIAL_NO_AUTH_ACTION_COUNT
            moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
            try:
                session = boto3.Session(region_name=region, **self.account_credentials(account))
                config = botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
                results = []
                for index, call in enumerate(spec.get("calls", [])):
                    client = session.client(call["service"], endpoint_url=self.endpoint, config=config)
                    try:
                        response = getattr(client, call["op"])(**call.get("args", {}))
                    except Exception as err:
                        raise FixtureError(index) from err
                    response.pop("ResponseMetadata", None)
                    results.append(plain(response))
                return results
            finally:
                moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = previous

    def account_credentials(self, account):
        if account == DEFAULT_ACCOUNT:
            return {"aws_access_key_id": "AKIAFIXTURE000000000", "aws_secret_access_key": "fixture"}
        if account not in self.fixture_credentials:
            sts = boto3.client(
                "sts", region_name="us-east-1", endpoint_url=self.endpoint,
                aws_access_key_id="AKIAFIXTURE000000000", aws_secret_access_key="fixture",
            )
            credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/moto-fixture-admin", RoleSessionName="fixture")["Credentials"]
            self.fixture_credentials[account] = {
                "aws_access_key_id": credentials["AccessKeyId"],
                "aws_secret_access_key": credentials["SecretAccessKey"],
                "aws_session_token": credentials["SessionToken"],
            }
        return self.fixture_credentials[account]


class FixtureError(Exception):
    def __init__(self, index):
        super().__init__(index)
        self.index = index


def plain(value):
    """boto3 responses as JSON: bodies as base64, times as ISO 8601."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if hasattr(value, "read"):
        return base64.b64encode(value.read()).decode()
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    enforcer = Enforcer(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", args.port, enforcer, threaded=True, request_handler=MotoRequestHandler)
    port = server.server_port
    os.environ["MOTO_PORT"] = str(port)
    enforcer.endpoint = f"http://127.0.0.1:{port}"

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def watch_stdin():
        sys.stdin.read()
        stop()

    threading.Thread(target=watch_stdin, daemon=True).start()
    print(f"READY {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
