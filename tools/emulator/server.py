"""Local AWS for stored-messages: the pinned moto server, plus the AWS behaviour
our security rests on and moto does not enforce.

We archive into customers' buckets by assuming a role they created, with an
External ID. Our integration tests (and `make demo`) must be able to prove the
refusals, not only the happy path, and moto 5.2.5 (tools/requirements.txt)
lets most of them through. This server runs moto's own WSGI application with
moto's IAM enforcement on from the first request, behind a middleware that adds:

* Trust policies on sts:AssumeRole. moto checks trust only for roles in the
  caller's own account, never cross-account (our normal case), accepts a
  missing ExternalId, evaluates only StringEquals and refuses an account `root`
  principal. Here: Principal (ARN, role, account root or bare account id, "*"),
  StringEquals/StringLike on sts:ExternalId and aws:PrincipalArn, explicit
  Deny; anything else fails closed. Refusals use AWS's error shape.
* STS errors in AWS's shape. moto wraps them as <ErrorResponse><Errors><Error>,
  which aws-sdk-rust cannot parse (the error code comes back empty).
* Session policies: a `Policy` passed to AssumeRole limits that session's S3
  calls, as AWS intersects it with the role's policies (moto ignores it).
* `x-amz-expected-bucket-owner`: refused with 403 when the bucket belongs to
  another account (moto ignores the header).
* Bucket regions: a request signed for another region than the bucket's gets
  400 AuthorizationHeaderMalformed with the right region, as S3 answers.
* Anonymous (unsigned) S3 reads: moto answers 403 with an empty body, or a 500
  (it looks for an Authorization header) exactly when the object is public.
  Here: 403 AccessDenied unless a bucket policy grants Principal "*" the read
  or the ACL is public-read (object ACL for GetObject, bucket ACL for
  ListBucket), honouring the bucket's Block Public Access settings; public
  reads are then served by moto itself. Any other empty S3 403 from moto gets
  an AccessDenied body.

And for the leak audit of a test run (shared/src/leak_audit.rs): with
$STORED_MESSAGES_LEAK_AUDIT set, every session credential issued and every
External ID written to a control bucket is appended to
`$STORED_MESSAGES_LEAK_AUDIT/emulator.<pid>.jsonl`, so the audit can look for
the secrets only the emulator sees.

And for tests, JSON over HTTP on the same port (shapes in `Middleware.internal`):

* a request recorder: `GET /_sm/requests`, `DELETE /_sm/requests`;
* fault injection: `POST /_sm/faults`, `GET /_sm/faults`, `DELETE /_sm/faults`;
* fixtures: `POST /_sm/aws` runs boto3 calls as any account with moto's
  enforcement off for their duration (set-up only).

Enforcement (moto's and ours) applies only while moto's authentication is on;
fixtures turn it off for everyone while they run, so do set-up first.

Usage: server.py [--port N]   (0, the default, picks a free port)
Binds 127.0.0.1 only, prints `READY <port>` once listening, and exits on
SIGTERM/SIGINT or when its stdin reaches end of file: keep stdin open (a pipe)
for as long as you need the server, so it never outlives the process that
started it.
"""

import argparse
import base64
import datetime
import http
import io
import json
import os
import random
import re
import secrets
import signal
import socket
import sys
import threading
import traceback
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ElementTree
from xml.sax.saxutils import escape

# moto reads this once, at import: its IAM enforcement must be on from the very
# first request, so nothing can slip through before a test turns it on.
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"

import boto3  # noqa: E402
import botocore.config  # noqa: E402
from moto import settings as moto_settings  # noqa: E402
from moto.core.authorization import ActionAuthenticatorMixin  # noqa: E402
from moto.iam.access_control import IAMRequestBase  # noqa: E402
from moto.iam.models import get_account_id_from, iam_backends  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.s3.models import s3_backends  # noqa: E402
from moto.sts.models import sts_backends  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

DEFAULT_ACCOUNT = "123456789012"  # moto's own account
PARTITION = "aws"
FIXTURE_ROLE = "moto-fixture-admin"
STS_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"
SIGV4_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")

# Fixture traffic carries this header with a per-process secret, so it is
# neither recorded nor hit by injected faults: it is set-up, not the system
# under test.
FIXTURE_HEADER = "x-sm-fixture"
FIXTURE_TOKEN = secrets.token_hex(16)


# ---------------------------------------------------------------------------
# Two narrow hooks into moto, both keyed on a per-request thread-local flag that
# only the middleware sets (each request is handled start to end on one thread).
# ---------------------------------------------------------------------------

_request_state = threading.local()


def _install_moto_hooks():
    """Let the middleware's decisions stand where moto would overrule them.

    * An anonymous read the middleware granted (public bucket policy or ACL)
      must skip moto's authentication, which wants an Authorization header and
      fails with a 500 without one.
    * An AssumeRole the middleware already checked against the trust policy
      must not be checked again by moto's narrower evaluator (which refuses an
      account-root principal and StringLike, unlike AWS). moto still checks
      the signature and the caller's own identity policy.
    """
    authenticate = ActionAuthenticatorMixin._authenticate_and_authorize_action
    check_trust = IAMRequestBase._check_role_trust_relationship

    def authenticate_unless_public(self, iam_request_cls, resource="*"):
        if getattr(_request_state, "anonymous_granted", False):
            return None
        return authenticate(self, iam_request_cls, resource)

    def trust_unless_checked(self, role_arn):
        if getattr(_request_state, "trust_checked", False):
            return True
        return check_trust(self, role_arn)

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate_unless_public
    IAMRequestBase._check_role_trust_relationship = trust_unless_checked


def moto_auth_on():
    """moto's own test for whether it authenticates the next request."""
    return ActionAuthenticatorMixin.request_count >= moto_settings.INITIAL_NO_AUTH_ACTION_COUNT


# ---------------------------------------------------------------------------
# AWS-shaped answers
# ---------------------------------------------------------------------------

LEAK_AUDIT_DIR = os.environ.get("STORED_MESSAGES_LEAK_AUDIT")
EXTERNAL_ID_FIELD = re.compile(rb'"external_id"\s*:\s*"([A-Za-z0-9]+)"')


def query_error(status, code, message, error_type="Sender"):
    """The awsQuery error shape (STS, IAM) that the AWS SDKs parse."""
    body = (
        f'<ErrorResponse xmlns="{STS_XMLNS}"><Error><Type>{escape(error_type)}</Type>'
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return Answer(status, [("Content-Type", "text/xml")], body.encode())


def s3_error(status, code, message, extra_xml="", headers=()):
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>{extra_xml}"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
    )
    return Answer(status, [("Content-Type", "application/xml"), *headers], body.encode())


def json_answer(value, status=200):
    return Answer(status, [("Content-Type", "application/json")], json.dumps(value, default=str).encode())


class Answer:
    """A complete, buffered HTTP answer (status, header list, body)."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = list(headers)
        self.body = body


class DropConnection(Exception):
    """The answer to a "reset" fault: close the socket, send nothing."""


def xml_text(payload, tag):
    """The first <tag> in an XML document, whatever its namespace."""
    try:
        root = ElementTree.fromstring(payload)
    except ElementTree.ParseError:
        return None
    for element in root.iter():
        if element.tag == tag or element.tag.endswith("}" + tag):
            return element.text or ""
    return None


# ---------------------------------------------------------------------------
# IAM policy evaluation, just as much as we need (everything else fails closed)
# ---------------------------------------------------------------------------

def as_list(value):
    return value if isinstance(value, list) else [value]


def wildcard_match(pattern, value, ignore_case=False):
    """IAM wildcards: `*` any run of characters, `?` exactly one; no others."""
    if not isinstance(pattern, str) or value is None:
        return False
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.fullmatch(regex, value, flags) is not None


def parse_policy(document):
    """A policy document as moto stores it: JSON, sometimes URL-encoded."""
    if isinstance(document, dict):
        return document
    if isinstance(document, bytes):
        document = document.decode()
    for text in (document, urllib.parse.unquote(document or "")):
        try:
            policy = json.loads(text)
        except (TypeError, ValueError):
            continue
        if isinstance(policy, dict):
            return policy
    return None


def statements(policy):
    return [s for s in as_list(policy.get("Statement", [])) if isinstance(s, dict)]


def matches_element(statement, name, value, ignore_case=False, absent=False):
    """Action/NotAction or Resource/NotResource against one value.

    `absent` is the answer when the statement has neither (trust policies have
    no Resource)."""
    if name in statement:
        return any(wildcard_match(p, value, ignore_case) for p in as_list(statement[name]))
    if "Not" + name in statement:
        return not any(wildcard_match(p, value, ignore_case) for p in as_list(statement["Not" + name]))
    return absent


def conditions_hold(conditions, context, unsupported):
    """A statement's Condition block against the request's context.

    Supports StringEquals and StringLike on the keys in `context` (names are
    case-insensitive, values are not). A key whose value is None (a missing
    ExternalId) never satisfies. Anything else is not understood and answers
    `unsupported`: False for an Allow, True for a Deny, so both fail closed.
    """
    if not conditions:
        return True
    if not isinstance(conditions, dict):
        return unsupported
    for operator, tests in conditions.items():
        if operator not in ("StringEquals", "StringLike") or not isinstance(tests, dict):
            if not unsupported:
                return False
            continue
        for key, expected in tests.items():
            if key.lower() not in context:
                if not unsupported:
                    return False
                continue
            actual = context[key.lower()]
            if actual is None:
                return False
            if operator == "StringEquals":
                held = any(actual == str(e) for e in as_list(expected))
            else:
                held = any(wildcard_match(str(e), actual) for e in as_list(expected))
            if not held:
                return False
    return True


def principal_matches(statement, identities):
    """Principal/NotPrincipal against a caller's identities (AWS principals only)."""

    def listed(principal):
        if principal == "*":
            return True
        if isinstance(principal, dict):
            return any(p == "*" or p in identities for p in as_list(principal.get("AWS", [])))
        return False

    if "Principal" in statement:
        return listed(statement["Principal"])
    if "NotPrincipal" in statement:
        return not listed(statement["NotPrincipal"])
    return False


def trust_allows(policy, identities, context):
    """Whether a role's trust policy lets this caller assume it."""
    allowed = False
    for statement in statements(policy):
        effect = statement.get("Effect")
        if not matches_element(statement, "Action", "sts:AssumeRole", ignore_case=True):
            continue
        if not principal_matches(statement, identities):
            continue
        if effect == "Deny" and conditions_hold(statement.get("Condition"), context, unsupported=True):
            return False  # an explicit Deny always wins
        if effect == "Allow" and conditions_hold(statement.get("Condition"), context, unsupported=False):
            allowed = True
    return allowed


def policy_allows(policy, action, resource):
    """An identity-style policy (a session policy) on one S3 action.

    Conditions are not supported: an Allow with one grants nothing and a Deny
    with one applies (fail closed)."""
    return verdict(statements(policy), action, resource) == "Allow"


def verdict(candidates, action, resource):
    """"Deny" if any statement on action and resource denies, else "Allow" if
    one allows without conditions (conditions are not evaluated), else None."""
    allowed = None
    for statement in candidates:
        if not matches_element(statement, "Action", action, ignore_case=True):
            continue
        if not matches_element(statement, "Resource", resource):
            continue
        if statement.get("Effect") == "Deny":
            return "Deny"
        if statement.get("Effect") == "Allow" and not statement.get("Condition"):
            allowed = "Allow"
    return allowed


# ---------------------------------------------------------------------------
# Who is calling, and on what
# ---------------------------------------------------------------------------

class Caller:
    def __init__(self, account, arn, principal_arn, identities):
        self.account = account
        self.arn = arn  # as AWS names it in error messages
        self.principal_arn = principal_arn  # aws:PrincipalArn
        self.identities = identities  # what a trust policy's Principal may name


def find_caller(access_key):
    """The IAM user or assumed-role session that owns an access key, or None."""
    if not access_key:
        return None
    account = get_account_id_from(access_key)
    account_ids = {f"arn:aws:iam::{account}:root", account}
    for user in list(iam_backends[account][PARTITION].users.values()):
        if any(key.access_key_id == access_key for key in user.access_keys):
            return Caller(account, user.arn, user.arn, {user.arn} | account_ids)
    for session in list(sts_backends[account][PARTITION].assumed_roles):
        if session.access_key_id == access_key:
            # A role ARN in a trust policy also trusts the sessions of that role.
            return Caller(account, session.arn, session.role_arn, {session.arn, session.role_arn} | account_ids)
    return None


def find_role(role_arn):
    parts = role_arn.split(":")
    if len(parts) < 6 or parts[2] != "iam":
        return None
    account = parts[4]
    if account not in iam_backends:  # never create an account just by looking
        return None
    try:
        return iam_backends[account][PARTITION].get_role_by_arn(role_arn)
    except Exception:  # moto's NotFoundException
        return None


def find_bucket(name):
    """(owner account, FakeBucket) of an existing bucket, else (None, None)."""
    located = s3_backends.bucket_accounts.get(name) if name else None
    if not located:
        return None, None
    partition, account = located
    return account, s3_backends[account][partition].buckets.get(name)


# Query parameters that select a different S3 operation (not the listing or
# x-id parameters every SDK adds), mapped to IAM actions.
OBJECT_SUBRESOURCES = {
    ("GET", "acl"): "s3:GetObjectAcl",
    ("PUT", "acl"): "s3:PutObjectAcl",
    ("GET", "tagging"): "s3:GetObjectTagging",
    ("PUT", "tagging"): "s3:PutObjectTagging",
    ("DELETE", "tagging"): "s3:DeleteObjectTagging",
    ("GET", "attributes"): "s3:GetObjectAttributes",
    ("GET", "retention"): "s3:GetObjectRetention",
    ("PUT", "retention"): "s3:PutObjectRetention",
    ("GET", "legal-hold"): "s3:GetObjectLegalHold",
    ("PUT", "legal-hold"): "s3:PutObjectLegalHold",
    ("POST", "restore"): "s3:RestoreObject",
    ("GET", "uploadId"): "s3:ListMultipartUploadParts",
    ("DELETE", "uploadId"): "s3:AbortMultipartUpload",
}
OBJECT_ACTIONS = {
    "PUT": "s3:PutObject",  # also UploadPart and CopyObject's write
    "POST": "s3:PutObject",  # multipart create and complete
    "GET": "s3:GetObject",
    "HEAD": "s3:GetObject",
    "DELETE": "s3:DeleteObject",
}
BUCKET_SUBRESOURCES = {
    "acl": "BucketAcl", "policy": "BucketPolicy", "tagging": "BucketTagging", "versioning": "BucketVersioning",
    "cors": "BucketCORS", "website": "BucketWebsite", "logging": "BucketLogging", "notification": "BucketNotification",
    "publicAccessBlock": "BucketPublicAccessBlock", "ownershipControls": "BucketOwnershipControls",
    "object-lock": "BucketObjectLockConfiguration", "lifecycle": "LifecycleConfiguration",
    "encryption": "EncryptionConfiguration", "replication": "ReplicationConfiguration",
}
BUCKET_LISTINGS = {
    "uploads": "s3:ListBucketMultipartUploads",
    "versions": "s3:ListBucketVersions",
    "location": "s3:GetBucketLocation",
    "policyStatus": "s3:GetBucketPolicyStatus",
}


def s3_action(method, bucket, key, query):
    """The IAM action and resource ARN of a path-style S3 request.

    Unknown operations map to `s3:Unknown...`, which only `s3:*` grants."""
    if key is not None:
        resource = f"arn:aws:s3:::{bucket}/{key}"
        for name in query:
            if (method, name) in OBJECT_SUBRESOURCES:
                return OBJECT_SUBRESOURCES[(method, name)], resource
        return OBJECT_ACTIONS.get(method, f"s3:Unknown{method.title()}Object"), resource
    resource = f"arn:aws:s3:::{bucket}"
    if method == "POST" and "delete" in query:
        return "s3:DeleteObject", f"arn:aws:s3:::{bucket}/*"
    for name in query:
        if method == "GET" and name in BUCKET_LISTINGS:
            return BUCKET_LISTINGS[name], resource
        if name in BUCKET_SUBRESOURCES and method in ("GET", "PUT", "DELETE"):
            return f"s3:{method.title()}{BUCKET_SUBRESOURCES[name]}", resource
    return {"GET": "s3:ListBucket", "HEAD": "s3:ListBucket", "PUT": "s3:CreateBucket", "DELETE": "s3:DeleteBucket"}.get(
        method, f"s3:Unknown{method.title()}Bucket"
    ), resource


class Request:
    """What the middleware reads from one request (the body is buffered)."""

    def __init__(self, environ, body):
        self.method = environ["REQUEST_METHOD"]
        # werkzeug has percent-decoded PATH_INFO into WSGI's latin-1 string.
        self.path = environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace")
        self.query = environ.get("QUERY_STRING", "")
        self.body = body
        # Header names as the client spelt them (captured by RequestHandler).
        self.headers = {}
        for name, value in environ.get("sm.raw_headers", []):
            self.headers[name] = f"{self.headers[name]}, {value}" if name in self.headers else value
        self.lower_headers = {name.lower(): value for name, value in self.headers.items()}
        self.query_params = urllib.parse.parse_qs(self.query, keep_blank_values=True)

        # SigV4 scope, from the Authorization header or a presigned URL.
        scope = SIGV4_SCOPE.search(self.lower_headers.get("authorization", ""))
        if scope is None and "X-Amz-Credential" in self.query_params:
            scope = SIGV4_SCOPE.search("Credential=" + self.query_params["X-Amz-Credential"][0])
        self.access_key, self.region, self.service = scope.groups() if scope else (None, None, None)
        self.signed = scope is not None

        # Form-encoded query-protocol calls (STS, IAM): their parameters.
        self.params = {}
        if self.service in ("sts", "iam"):
            self.params = {k: v[0] for k, v in self.query_params.items()}
            if "x-www-form-urlencoded" in self.lower_headers.get("content-type", ""):
                form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
                self.params.update({k: v[0] for k, v in form.items()})

        # Path-style S3: /BUCKET/KEY.
        bucket, _, key = self.path.lstrip("/").partition("/")
        self.bucket = bucket or None
        self.key = key or None
        self.internal = self.path.startswith("/_sm/") or self.path == "/_sm"
        self.moto_api = self.path.startswith("/moto-api")
        # Only S3 is ever called unsigned here (and AssumeRoleWith*, which we
        # never use), so an unsigned request outside moto's API is S3.
        self.s3 = self.service == "s3" or (not self.signed and not self.moto_api and not self.internal)
        self.fixture = self.lower_headers.get(FIXTURE_HEADER) == FIXTURE_TOKEN


# ---------------------------------------------------------------------------
# The middleware
# ---------------------------------------------------------------------------

class Middleware:
    def __init__(self, app):
        self.app = app
        self.endpoint = None  # set once the port is known
        self.lock = threading.Lock()  # recorder, faults, session policies
        self.fixture_lock = threading.Lock()  # one fixture batch at a time
        self.recorded = []
        self.seed = 0
        self.rules = []
        self.fired = []
        self.random = random.Random(0)
        self.session_policies = {}  # access key id -> parsed session policy
        self.fixture_session = None  # fixtures' boto3 session, clients and keys
        self.fixture_clients = {}
        self.fixture_keys = {}

    # ---- WSGI entry --------------------------------------------------------

    def __call__(self, environ, start_response):
        # Buffer the body: the middleware reads STS forms, and moto must still
        # see every byte (it verifies signatures over it).
        stream = environ["wsgi.input"]
        if environ.get("CONTENT_LENGTH"):
            body = stream.read(int(environ["CONTENT_LENGTH"]))
        elif environ.get("wsgi.input_terminated"):
            body = stream.read()  # chunked transfer encoding, already decoded
        else:
            body = b""
        environ["wsgi.input"] = io.BytesIO(body)
        request = Request(environ, body)
        if request.internal:
            return self.respond(start_response, request, self.internal(request))

        # Thread-locals outlive the request on a kept-alive connection.
        _request_state.anonymous_granted = False
        _request_state.trust_checked = False
        record = None if request.fixture else self.record(request)
        try:
            answer = None if request.fixture else self.inject_fault(request)
            if answer is None and moto_auth_on():
                answer = self.enforce(request, environ)
            if answer is None:
                answer = self.forward(request, environ)
            answer = self.after_moto(request, answer)
        except DropConnection:
            # Close both directions now; werkzeug treats a ConnectionError as
            # a dropped client and writes nothing more on this socket.
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
            raise ConnectionResetError("injected connection reset") from None
        finally:
            _request_state.anonymous_granted = False
            _request_state.trust_checked = False
        if record is not None:
            with self.lock:
                record["status"] = answer.status
        return self.respond(start_response, request, answer)

    def respond(self, start_response, request, answer):
        headers = [(k, v) for k, v in answer.headers if k.lower() != "content-length"]
        if request.method == "HEAD":
            # A HEAD answer keeps the length of the body it does not send.
            length = next((v for k, v in answer.headers if k.lower() == "content-length"), str(len(answer.body)))
            headers.append(("Content-Length", length))
            body = b""
        else:
            headers.append(("Content-Length", str(len(answer.body))))
            body = answer.body
        try:
            reason = http.HTTPStatus(answer.status).phrase
        except ValueError:
            reason = "Unknown"
        start_response(f"{answer.status} {reason}", headers)
        return [body]

    def forward(self, request, environ):
        """moto's answer, buffered so that it can be inspected and rewritten."""
        captured = {"written": []}

        def start_response(status, headers, exc_info=None):
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = headers
            return captured["written"].append

        try:
            chunks = self.app(environ, start_response)
            try:
                payload = b"".join(chunks)
            finally:
                if hasattr(chunks, "close"):
                    chunks.close()
        except Exception:  # noqa: BLE001 - a moto bug must still answer like AWS
            # e.g. a presigned URL while auth is on: moto looks for an
            # Authorization header and raises KeyError.
            traceback.print_exc()
            if request.s3:
                return s3_error(500, "InternalError", "The emulator (moto) failed on this request.")
            return query_error(500, "InternalFailure", "The emulator (moto) failed on this request.", "Receiver")
        return Answer(captured["status"], captured["headers"], b"".join(captured["written"]) + payload)

    def after_moto(self, request, answer):
        """Rewrites of moto's answers, and what we learn from them."""
        if request.service == "sts" and answer.status >= 400 and b"<Errors>" in answer.body:
            # moto's STS errors: <ErrorResponse><Errors><Error>, which
            # aws-sdk-rust does not parse. Same code, message and status.
            answer = query_error(
                answer.status,
                xml_text(answer.body, "Code") or "InternalFailure",
                xml_text(answer.body, "Message") or "",
                xml_text(answer.body, "Type") or "Sender",
            )
        if request.s3 and answer.status == 403 and not answer.body.strip() and request.method != "HEAD":
            # moto refuses some S3 requests (bucket-policy Deny, private object
            # read anonymously) with an empty body; S3 says AccessDenied.
            answer = s3_error(403, "AccessDenied", "Access Denied")
        if request.service == "sts" and answer.status == 200:
            for tag in ("SecretAccessKey", "SessionToken"):
                self.audit_secret("credential", xml_text(answer.body, tag))
        if request.s3 and request.method == "PUT" and answer.status == 200 and request.path.endswith("/external-id.json"):
            match = EXTERNAL_ID_FIELD.search(request.body)
            self.audit_secret("external_id", match and match.group(1).decode())
        if (
            request.service == "sts"
            and request.params.get("Action") == "AssumeRole"
            and answer.status == 200
            and request.params.get("Policy")
        ):
            # Remember the session policy for the credentials moto just issued.
            access_key = xml_text(answer.body, "AccessKeyId")
            policy = parse_policy(request.params["Policy"])
            if access_key and policy is not None:
                with self.lock:
                    self.session_policies[access_key] = policy
        return answer

    def audit_secret(self, kind, value):
        """Appends a secret for the leak audit, if one is running."""
        if not value or not LEAK_AUDIT_DIR:
            return
        line = json.dumps({"kind": "secret", "label": kind, "text": value}) + "\n"
        with self.lock:
            os.makedirs(LEAK_AUDIT_DIR, exist_ok=True)
            with open(os.path.join(LEAK_AUDIT_DIR, f"emulator.{os.getpid()}.jsonl"), "a", encoding="utf-8") as audit:
                audit.write(line)

    # ---- recorder ----------------------------------------------------------

    def record(self, request):
        """Appends the request on arrival; its status is filled in when answered
        (and stays null for a dropped connection)."""
        entry = {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": request.headers,
            "service": request.service,
            "region": request.region,
            "access_key_id": request.access_key,
            "params": request.params,
            "status": None,
        }
        with self.lock:
            self.recorded.append(entry)
        return entry

    # ---- fault injection ---------------------------------------------------

    def inject_fault(self, request):
        """The first rule that matches (filters, count left, probability draw)
        fires: an error answer, a delay before going on, or a dropped socket."""
        service = request.service or ("s3" if request.s3 else None)
        with self.lock:
            for index, rule in enumerate(self.rules):
                if rule.get("service") and rule["service"] != service:
                    continue
                if rule.get("method") and rule["method"].upper() != request.method:
                    continue
                if rule.get("path_prefix") and not request.path.startswith(rule["path_prefix"]):
                    continue
                if rule.get("action_param") and rule["action_param"] != request.params.get("Action"):
                    continue  # an STS/IAM operation, e.g. "AssumeRole"
                if rule.get("count") is not None and self.fired[index] >= rule["count"]:
                    continue
                probability = rule.get("probability", 1.0)
                # Draw only for partial probabilities, so that certain rules do
                # not shift the seeded sequence of the uncertain ones.
                if probability < 1.0 and self.random.random() >= probability:
                    continue
                self.fired[index] += 1
                break
            else:
                return None
        if rule["action"] == "delay":
            threading.Event().wait(float(rule.get("seconds", 1.0)))
            return None
        if rule["action"] == "reset":
            raise DropConnection()
        status = int(rule.get("status", 500))
        code = rule.get("code") or http.HTTPStatus(status).phrase.replace(" ", "")
        message = rule.get("message") or "injected fault"
        if request.s3:
            return s3_error(status, code, message)
        return query_error(status, code, message, "Receiver" if status >= 500 else "Sender")

    def faults_state(self):
        return {"seed": self.seed, "rules": self.rules, "fired": list(self.fired)}

    # ---- enforcement -------------------------------------------------------

    def enforce(self, request, environ):
        """Our refusals, or None to let moto answer (and enforce its own)."""
        if request.service == "sts" and request.params.get("Action") == "AssumeRole":
            return self.check_assume_role(request)
        if request.s3 and request.bucket:
            return self.check_s3(request, environ)
        return None

    def check_assume_role(self, request):
        caller = find_caller(request.access_key)
        if caller is None:
            return None  # an unknown key: moto answers InvalidClientTokenId
        role_arn = request.params.get("RoleArn", "")
        denied = query_error(
            403,
            "AccessDenied",
            f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
        )
        role = find_role(role_arn)
        policy = parse_policy(role.assume_role_policy_document) if role is not None else None
        if policy is None:
            return denied
        context = {"sts:externalid": request.params.get("ExternalId"), "aws:principalarn": caller.principal_arn}
        if not trust_allows(policy, caller.identities, context):
            return denied
        if "Policy" in request.params and parse_policy(request.params["Policy"]) is None:
            return query_error(400, "MalformedPolicyDocument", "The session policy is not valid JSON.")
        _request_state.trust_checked = True
        return None

    def check_s3(self, request, environ):
        owner, bucket = find_bucket(request.bucket)
        action, resource = s3_action(request.method, request.bucket, request.key, request.query_params)

        # CreateBucket and GetBucketLocation are answered whatever the signing
        # region, as S3 does: they are how a client learns where a bucket is.
        regionless = request.key is None and (
            (request.method == "PUT" and not request.query)
            or (request.method == "GET" and "location" in request.query_params)
        )
        if request.signed and bucket is not None and request.region != bucket.region_name and not regionless:
            expected = bucket.region_name
            return s3_error(
                400,
                "AuthorizationHeaderMalformed",
                "The authorization header is malformed; "
                f"the region '{request.region}' is wrong; expecting '{expected}'",
                f"<Region>{escape(expected)}</Region>",
                [("x-amz-bucket-region", expected)],
            )

        expected_owner = request.lower_headers.get("x-amz-expected-bucket-owner")
        if expected_owner and owner is not None and expected_owner != owner:
            return s3_error(403, "AccessDenied", "Access Denied")

        if not request.signed:
            return self.check_anonymous(request, environ, bucket, action, resource)

        with self.lock:
            session_policy = self.session_policies.get(request.access_key)
        if session_policy is not None and not policy_allows(session_policy, action, resource):
            return s3_error(403, "AccessDenied", "Access Denied")
        return None

    def check_anonymous(self, request, environ, bucket, action, resource):
        """S3's answer to an unsigned request: only public reads pass."""
        if bucket is None:
            return s3_error(
                404,
                "NoSuchBucket",
                "The specified bucket does not exist",
                f"<BucketName>{escape(request.bucket)}</BucketName>",
            )
        if action not in ("s3:GetObject", "s3:ListBucket") or not self.public(bucket, request.key, action, resource):
            return s3_error(403, "AccessDenied", "Access Denied")
        if action == "s3:GetObject" and request.key not in bucket.keys:
            # S3 tells a missing key from a forbidden one only to those who
            # may list the bucket.
            if not self.public(bucket, None, "s3:ListBucket", f"arn:aws:s3:::{request.bucket}"):
                return s3_error(403, "AccessDenied", "Access Denied")
        # Public: moto serves it, its authentication skipped for this request.
        # moto's own anonymous pre-check asks the bucket policy for
        # "s3:HeadObject", so a HEAD goes in as a GET (the body is not sent).
        _request_state.anonymous_granted = True
        if request.method == "HEAD" and request.key is not None:
            environ["REQUEST_METHOD"] = "GET"
        return None

    @staticmethod
    def public(bucket, key_name, action, resource):
        """Whether everyone may perform `action`, by bucket policy or ACL."""
        block = bucket.public_access_block
        policy = parse_policy(bucket.policy) if bucket.policy else None
        public = [s for s in statements(policy) if principal_matches(s, {"*"})] if policy else []
        found = verdict(public, action, resource)
        if found == "Deny":
            return False
        granted = found == "Allow"
        if granted and not (block and block.restrict_public_buckets):
            return True
        if block and block.ignore_public_acls:
            return False
        if action == "s3:GetObject":
            key = bucket.keys.get(key_name) if key_name is not None else None
            acl = getattr(key, "acl", None)
        else:
            acl = bucket.acl
        return bool(acl is not None and acl.public_read)

    # ---- the harness's own API (/_sm/...) ----------------------------------

    def internal(self, request):
        """
        GET    /_sm/requests  -> [ {method, path, query, headers, service, region,
                                    access_key_id, params, status}, ... ]
        DELETE /_sm/requests  -> {"cleared": n}
        POST   /_sm/faults    {"seed": int, "rules": [rule, ...]}
                              -> {"seed", "rules", "fired": [n per rule]}
        GET    /_sm/faults    -> the same
        DELETE /_sm/faults    -> the same, emptied
        POST   /_sm/aws       {"account", "region", "calls": [{"service", "op", "args"}]}
                              -> {"results": [...]} or 400 {"error", "index"}
        """
        route = (request.method, request.path.rstrip("/"))
        try:
            if route == ("GET", "/_sm/requests"):
                with self.lock:
                    return json_answer(self.recorded)
            if route == ("DELETE", "/_sm/requests"):
                with self.lock:
                    cleared, self.recorded = len(self.recorded), []
                return json_answer({"cleared": cleared})
            if route == ("POST", "/_sm/faults"):
                spec = json.loads(request.body or b"{}")
                rules = validate_rules(spec.get("rules", []))
                with self.lock:
                    self.seed = int(spec.get("seed", 0))
                    self.rules, self.fired = rules, [0] * len(rules)
                    self.random = random.Random(self.seed)
                    return json_answer(self.faults_state())
            if route == ("GET", "/_sm/faults"):
                with self.lock:
                    return json_answer(self.faults_state())
            if route == ("DELETE", "/_sm/faults"):
                with self.lock:
                    self.rules, self.fired = [], []
                    return json_answer(self.faults_state())
            if route == ("POST", "/_sm/aws"):
                return self.fixtures(json.loads(request.body))
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            return json_answer({"error": f"bad request: {err}"}, 400)
        return json_answer({"error": f"no route {request.method} {request.path}"}, 404)

    # ---- fixtures ----------------------------------------------------------

    def fixtures(self, spec):
        account = str(spec.get("account", DEFAULT_ACCOUNT))
        region = spec.get("region", "us-east-1")
        calls = spec.get("calls", [])
        if not isinstance(calls, list):
            raise ValueError("calls must be a list")
        with self.fixture_lock:
            previous = self.set_moto_auth("inf")
            try:
                credentials = self.fixture_credentials(account)
                results = []
                for index, call in enumerate(calls):
                    try:
                        client = self.fixture_client(call["service"], region, credentials)
                        response = getattr(client, call["op"])(**call.get("args", {}))
                    except Exception as err:  # noqa: BLE001 - reported to the caller
                        return json_answer({"error": f"{type(err).__name__}: {err}", "index": index}, 400)
                    response.pop("ResponseMetadata", None)
                    results.append(plain(response))
                return json_answer({"results": results})
            except Exception as err:  # noqa: BLE001 - switching accounts failed
                return json_answer({"error": f"{type(err).__name__}: {err}", "index": None}, 400)
            finally:
                self.set_moto_auth(previous)

    def set_moto_auth(self, value):
        """POST /moto-api/reset-auth; returns the value it replaced."""
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth",
            data=str(value).encode(),
            method="POST",
            # Not form-encoded: moto reads the raw body, which a form would eat.
            headers={"Content-Type": "text/plain", FIXTURE_HEADER: FIXTURE_TOKEN},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]

    def fixture_client(self, service, region, credentials):
        """A cached boto3 client (a new session per call would reload the
        service models each time: a quarter of a second per fixture batch).
        Only used under fixture_lock, so sharing one session is safe."""
        cache_key = (service, region, credentials["aws_access_key_id"])
        client = self.fixture_clients.get(cache_key)
        if client is None:
            if self.fixture_session is None:
                self.fixture_session = boto3.Session()
            client = self.fixture_session.client(
                service,
                region_name=region,
                endpoint_url=self.endpoint,
                config=botocore.config.Config(
                    s3={"addressing_style": "path"},
                    retries={"mode": "standard", "total_max_attempts": 1},
                ),
                **credentials,
            )

            def mark(request, **_):
                request.headers[FIXTURE_HEADER] = FIXTURE_TOKEN

            client.meta.events.register("before-send", mark)
            self.fixture_clients[cache_key] = client
        return client

    def fixture_credentials(self, account):
        """moto's own account takes any key while auth is off. Another account
        is reached by assuming a role in it: with auth off moto grants that
        without the role existing, and the keys it issues act in that account."""
        static = {"aws_access_key_id": "AKIAFIXTUREFIXTURE00", "aws_secret_access_key": "fixture"}
        if account == DEFAULT_ACCOUNT:
            return static
        cached = self.fixture_keys.get(account)
        # After a moto reset the cached key is unknown, and moto would quietly
        # act in its default account instead: check it still maps to `account`.
        if cached and get_account_id_from(cached["aws_access_key_id"]) == account:
            return cached
        sts = self.fixture_client("sts", "us-east-1", static)
        answer = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{FIXTURE_ROLE}", RoleSessionName="fixture")
        self.fixture_keys[account] = {
            "aws_access_key_id": answer["Credentials"]["AccessKeyId"],
            "aws_secret_access_key": answer["Credentials"]["SecretAccessKey"],
            "aws_session_token": answer["Credentials"]["SessionToken"],
        }
        return self.fixture_keys[account]


RULE_FIELDS = {
    # filters (absent or null: any)
    "service", "method", "path_prefix", "action_param",
    # what fires, how often
    "action", "status", "code", "message", "seconds", "probability", "count",
}


def validate_rules(rules):
    """Refuses unknown fields: a misspelt filter would silently widen a rule."""
    if not isinstance(rules, list):
        raise ValueError("rules must be a list")
    for rule in rules:
        if not isinstance(rule, dict) or rule.get("action") not in ("status", "delay", "reset"):
            raise ValueError(f"each rule needs an action of status, delay or reset: {rule!r}")
        unknown = set(rule) - RULE_FIELDS
        if unknown:
            raise ValueError(f"unknown rule fields {sorted(unknown)} in {rule!r}")
    return rules


def plain(value):
    """A boto3 response as JSON: bodies base64-encoded, times ISO 8601."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if hasattr(value, "read"):  # StreamingBody
        return base64.b64encode(value.read()).decode()
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return value


# ---------------------------------------------------------------------------
# Serving
# ---------------------------------------------------------------------------

class RequestHandler(MotoRequestHandler):
    def make_environ(self):
        environ = super().make_environ()
        # WSGI folds header names into HTTP_FOO; the recorder wants them as sent.
        environ["sm.raw_headers"] = list(self.headers.items())
        return environ

    def log_request(self, *args, **kwargs):
        # One line per request would fill an unread stderr pipe and stall the
        # server; errors are still logged.
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default 0: a free one)")
    args = parser.parse_args()

    _install_moto_hooks()
    middleware = Middleware(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", args.port, middleware, threaded=True, request_handler=RequestHandler)
    port = server.server_port
    os.environ["MOTO_PORT"] = str(port)  # moto builds some URLs (queues, ...) from it
    middleware.endpoint = f"http://127.0.0.1:{port}"

    def stop(*_):
        # shutdown() waits for serve_forever(), which runs on the main thread
        # (where signal handlers run too), so it must be called from another.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def stop_at_end_of_stdin():
        # os.read, not sys.stdin: a daemon thread blocked inside a buffered
        # reader makes the interpreter abort at exit (it cannot take the lock).
        while os.read(stdin_fd, 65536):
            pass
        stop()

    stdin_fd = sys.stdin.fileno() if sys.stdin is not None else None
    if stdin_fd is not None:  # None: started without any stdin to watch
        threading.Thread(target=stop_at_end_of_stdin, daemon=True).start()

    print(f"READY {port}", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
