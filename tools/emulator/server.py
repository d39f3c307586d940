"""Local AWS for stored-messages: the pinned moto server, plus the AWS behaviour
our security rests on and moto does not enforce.

We archive into customers' buckets by assuming a role they created, with an
External ID. Our integration tests (and `make demo`) must be able to prove the
refusals, not only the happy path, and moto 5.2.5 (tools/requirements.txt)
lets most of them through. This server runs moto's own WSGI application with
moto's IAM enforcement on from the first request, behind a middleware that adds:

* Authentication first, as AWS does: every signed request (S3, the awsQuery
  services STS and IAM, the JSON services such as Secrets Manager and
  EventBridge, presigned URLs too) is refused before anything else is
  decided about it (Region, expected bucket owner, policies) when its
  access key belongs to nobody, was deleted or is Inactive (moto ignores a
  key's status), when a session token does not go with the key, or when
  the key's secret does not give its signature (verified with moto's own
  SigV4 code, SignatureCheck; moto checks only after the middleware has
  refused for other reasons). Answers per protocol: S3 403
  InvalidAccessKeyId / 400 InvalidToken / 403 SignatureDoesNotMatch (XML);
  STS and IAM 403 InvalidClientTokenId / SignatureDoesNotMatch (awsQuery
  XML); JSON services 400 UnrecognizedClientException /
  InvalidSignatureException ({"__type", "message"}). See
  Middleware.authenticate.
* The root user: `POST /_sm/root-access-key` makes an access key of an
  account's root user, which moto cannot. Signed with it,
  sts:GetCallerIdentity answers arn:aws:iam::ACCOUNT:root (UserId: the
  account id), every action is allowed by identity (resource policies'
  explicit Denies still apply) and AssumeRole is refused, as on AWS.
* IAM conditions, evaluated as AWS does, by one evaluator (`evaluate`,
  `conditions_hold`) for every policy: trust, session, bucket, identity and
  KMS key policies. moto evaluates only StringEquals on sts:ExternalId and
  ignores every other condition: a conditional Allow grants, a conditional
  Deny applies unconditionally (so a bucket's write-once Deny refused every
  PUT). Operators: String[Not]Equals[IgnoreCase], String[Not]Like, Bool,
  Null, Arn[Not]Equals, Arn[Not]Like, Date* and Numeric*, with the
  ForAnyValue:/ForAllValues: prefixes and the IfExists suffix; keys
  case-insensitive, values case-sensitive unless the operator says otherwise,
  several values OR'ed (NOR'ed when negated), several keys and operators
  AND'ed, and AWS's rules for absent keys (IAM User Guide, "IAM JSON policy
  elements: Condition operators" and "Conditions with multiple context keys
  or values"; details at CONDITION_OPERATORS). Anything not understood fails
  closed: an Allow does not apply, a Deny does.
  moto's own identity- and bucket-policy checks are routed to the same
  evaluator, with the same request context (_install_moto_hooks).
* Trust policies on sts:AssumeRole. moto checks trust only for roles in the
  caller's own account, never cross-account (our normal case), accepts a
  missing ExternalId and refuses an account `root` principal. Here: Principal
  (ARN, role, account root or bare account id, "*"), conditions, explicit
  Deny. Refusals use AWS's error shape.
* AssumeRole's session durations: DurationSeconds outside 900..43200 is a
  400 ValidationError; above the role's MaxSessionDuration, or above an hour
  when the caller is itself a role session (role chaining), too, with STS's
  messages (STS API reference, AssumeRole, DurationSeconds; moto accepts any
  duration).
* STS errors in AWS's shape. moto wraps them as <ErrorResponse><Errors><Error>,
  which aws-sdk-rust cannot parse (the error code comes back empty).
* Session policies: a `Policy` passed to AssumeRole limits what that session
  may do, as AWS intersects it with the role's policies (moto ignores it):
  its S3 calls, its AssumeRole (role chaining), its Secrets Manager and SQS
  calls, and the KMS calls S3 and Secrets Manager make on its behalf (IAM User
  Guide, "Session policies"). Refusals carry AWS's current messages, e.g. `User:
  arn:aws:sts::111122223333:assumed-role/ROLE/SESSION is not authorized to
  perform: s3:PutObject on resource: "arn:aws:s3:::bucket/key" because no
  session policy allows the s3:PutObject action` (or `with an explicit deny
  in a session policy`).
* Bucket policies with conditions on signed S3 requests: the statements
  naming the caller (Principal "*", its user, role or session ARN, its
  account) are evaluated in S3's request context (s3:if-none-match,
  s3:if-match, s3:x-amz-server-side-encryption[-aws-kms-key-id] from the
  headers as sent, absent without them; aws:SecureTransport "true", an
  assumption: we stand in for AWS's HTTPS endpoints; aws:PrincipalArn,
  aws:PrincipalAccount, aws:userid). An explicit Deny answers 403
  AccessDenied `... with an explicit deny in a resource-based policy`; so
  does an explicit Deny in the caller's identity-based policies (`... in an
  identity-based policy`). (S3 User Guide, "Enforce conditional writes on
  Amazon S3 buckets" and "Bucket policy examples using condition keys".)
* SSE-KMS under the caller's identity. moto stores any KMS key id without
  looking. Here a signed PutObject, CopyObject or CreateMultipartUpload that
  S3 would encrypt with SSE-KMS (by header, or by the bucket's default
  encryption) is refused as S3 refuses it: 400 KMS.NotFoundException for a
  key that does not exist (a key id or alias name resolves in the caller's
  account), 400 KMS.DisabledException for a disabled key, and 403
  AccessDenied `User: CALLER is not authorized to perform:
  kms:GenerateDataKey on resource: KEY_ARN because no identity-based policy
  allows ...` (or resource-based, or session, or `with an explicit deny in
  ...`) unless the key policy, the caller's IAM policies and its session
  policy allow kms:GenerateDataKey on the key ARN, in KMS's request context
  (kms:ViaService, kms:CallerAccount, kms:EncryptionContext:aws:s3:arn,
  kms:ResourceAliases). The AWS managed key aws/s3 is made on first use,
  with AWS's key policy. (S3 User Guide, "Using server-side encryption with
  AWS KMS keys (SSE-KMS)"; KMS Developer Guide, "Specifying KMS keys in IAM
  policy statements".) See Middleware.check_sse_kms and kms_refusal.
* Revoked sessions: `POST /_sm/revoke-sessions` does what the IAM console's
  "Revoke active sessions" does (the AWSRevokeOlderSessions inline policy);
  sessions issued before it are refused everything but GetCallerIdentity,
  `... with an explicit deny in an identity-based policy` (IAM User Guide,
  "Revoke IAM role temporary security credentials").
* Secrets Manager authorised by secret ARN: CreateSecret, PutSecretValue,
  GetSecretValue, DeleteSecret, DescribeSecret and UpdateSecret are checked
  against the secret's ARN (with its six-character suffix; for CreateSecret
  the ARN the secret will have), explicit Denies, the identity-based Allow
  and the session policy, refused with 400 AccessDeniedException `User:
  CALLER is not authorized to perform: secretsmanager:GetSecretValue on
  resource: ARN because no identity-based policy allows ...`; moto, which
  checks every non-S3 action against "*", then checks that ARN too. See
  Middleware.check_secretsmanager and secret_resource.
* Secrets Manager's KMS calls under the caller's identity. moto stores any
  KmsKeyId without looking. Here, once the Secrets Manager action is
  authorised, the calls Secrets Manager makes to KMS as the caller are
  decided as for SSE-KMS (kms_refusal: key policy, identity-based policies
  where it delegates to IAM, session policy): kms:GenerateDataKey for a new
  value (CreateSecret, PutSecretValue), kms:GenerateDataKey and kms:Decrypt
  to validate the key CreateSecret names (SecretVersionId
  RequestToValidateKeyAccess), kms:Decrypt for GetSecretValue and for a
  PutSecretValue retried with an existing version's ClientRequestToken; in
  KMS's request context: kms:ViaService `secretsmanager.REGION.amazonaws.com`,
  kms:CallerAccount, kms:EncryptionContext:SecretARN (the secret's ARN;
  moto is made to give a new secret the one it was authorised as) and
  kms:EncryptionContext:SecretVersionId. Without KmsKeyId the key is the
  account's aws/secretsmanager, made on first use with AWS's key policy
  (any principal of the account, through Secrets Manager: no IAM permission
  needed). Refusals, 400 JSON: AccessDeniedException `Access to KMS is not
  allowed`; a key that does not exist, is disabled or pending deletion:
  EncryptionFailure (writes) or DecryptionFailure (reads) `Secrets Manager
  can't encrypt the secret value: KEY_ARN is disabled. (Service: AWSKMS;
  Status Code: 400; Error Code: DisabledException; Request ID: ...)`.
  (Secrets Manager User Guide, "Secret encryption and decryption in AWS
  Secrets Manager"; KMS Developer Guide, "How AWS Secrets Manager uses AWS
  KMS".) See Middleware.check_secret_kms and secret_kms_calls.
* SQS authorised by queue ARN: SendMessage, SendMessageBatch (as
  sqs:SendMessage), ReceiveMessage, DeleteMessage[Batch] (as
  sqs:DeleteMessage), ChangeMessageVisibility[Batch], GetQueueAttributes,
  GetQueueUrl and PurgeQueue are checked against
  arn:aws:sqs:REGION:ACCOUNT:NAME, the account and name from the QueueUrl's
  last two path segments (GetQueueUrl: QueueName and
  QueueOwnerAWSAccountId): explicit Denies in the identity-based policies,
  the queue's policy (its Policy attribute) and the session policy; an
  identity-based Allow or, within the queue's account, a queue-policy Allow
  naming the caller; both for another account's queue, whose backend moto
  then acts on (it would use the caller's account's queue of that name).
  Refused as SQS refuses the JSON protocol: 403, `x-amzn-query-error:
  AccessDenied;Sender`, `{"__type":
  "com.amazon.coral.service#AccessDeniedException", "Message": "User:
  CALLER is not authorized to perform: sqs:sendmessage on resource:
  QUEUE_ARN because no identity-based policy allows the sqs:sendmessage
  action"}` (SQS names the action in lower case), moto's own refusals of
  other SQS actions too; moto's identity check then runs against the queue
  ARN, under IAM's action names (moto asks about sqs:SendMessageBatch). (SQS
  Developer Guide, "Troubleshoot an access denied error in Amazon SQS".) See
  Middleware.check_sqs, sqs_refusal, sqs_queue and sqs_access_denied.
* JSON error shapes: every refusal of a JSON-protocol (X-Amz-Target)
  request is `{"__type": CODE, "message": ...}` with the x-amzn-ErrorType
  header, moto's own XML refusals rewritten (AccessDenied becomes 400
  AccessDeniedException; SQS's is its own, above), SQS's
  x-amzn-query-error header kept (the awsQuery code, e.g.
  AWS.SimpleQueueService.NonExistentQueue, that the SDKs dispatch on), and
  moto's text/html answers say application/x-amz-json-1.1 (json_shaped).
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

And for the leak audit of a test run (testkit/src/leak_audit.rs): with
$STORED_MESSAGES_LEAK_AUDIT set (read at start), every session credential
issued, every IAM user secret access key issued (CreateAccessKey, fixtures'
too), every root user key's secret, every SecretString sent to or answered
by Secrets Manager (and, when it is JSON with a `secret_access_key`, that
value on its own), all labelled "credential", and every External ID written
to a control bucket ("external_id") are appended to
`$STORED_MESSAGES_LEAK_AUDIT/emulator.<pid>.jsonl`, so the audit can look for
the secrets only the emulator sees. Every uncompressed object (up to 1 MiB)
written with a signed PutObject into a bucket of our own account (control,
staging) is appended there too, as a "stored" line labelled bucket/key, so the
audit can prove no credential is ever saved in our buckets.

And for tests, JSON over HTTP on the same port (shapes in `Middleware.internal`):

* a request recorder: `GET /_sm/requests`, `DELETE /_sm/requests`;
* fault injection: `POST /_sm/faults`, `GET /_sm/faults`, `DELETE /_sm/faults`
  (rules filter on service, method, path prefix, STS/IAM `action_param` or
  JSON `target` operation, and answer in the request's protocol);
* fixtures: `POST /_sm/aws` runs boto3 calls as any account with moto's
  enforcement off for their duration (set-up only: IAM, S3, KMS keys and
  aliases, key and bucket policies, bucket encryption, ...);
* session revocation: `POST /_sm/revoke-sessions`;
* root user access keys: `POST /_sm/root-access-key`.

Enforcement (moto's and ours) applies only while moto's authentication is on;
fixtures turn it off for everyone while they run, so do set-up first.

Where AWS's exact behaviour is not documented, the emulator assumes (each one
explained where it is implemented): aws:SecureTransport is "true"; a
multivalued key under an operator without ForAnyValue/ForAllValues matches
when any value does; ForAnyValue:...IfExists on an absent key is false (as
AWS was seen to answer); s3:ObjectCreationOperation is "false" exactly for
CreateMultipartUpload, UploadPart and UploadPartCopy; SSE-KMS by header
without a key id uses aws/s3 even when the bucket's default names a key; a
key ARN in another Region than the bucket's is not found; with S3 Bucket
Keys kms:GenerateDataKey is still checked on every write; a key policy's
Principal "*" does not exempt a grant from the session policy; S3 answers a
session key sent without its token InvalidAccessKeyId (with a wrong token,
InvalidToken); Secrets Manager authorises a secret that does not exist as
the partial ARN of its name; Secrets Manager's KMS refusals name no reason
(AccessDeniedException `Access to KMS is not allowed`, as Secrets Manager
was seen to answer), a missing, disabled or pending-deletion key is
EncryptionFailure or DecryptionFailure carrying KMS's message (the codes
chosen from the API reference's lists; the decrypting message's wording
mirrors the encrypting one's), a key's state is checked before its
policies, a CreateSecret whose name is taken calls KMS for nothing, and
aws/secretsmanager, like aws/s3, is limited by a session policy; SQS
authorises a queue that does not exist as the ARN of its name, in the
Region the request is signed for (the QueueUrl's host is not read), and
its AccessDenied carries no x-amzn-ErrorType header; and
when several reasons to refuse apply, the message names the first of:
explicit Deny (identity-based, resource-based, session), then no
identity-based Allow, no resource-based Allow, no session-policy Allow.

Usage: server.py [--port N]   (0, the default, picks a free port)
Binds 127.0.0.1 only, prints `READY <port>` once listening, and exits on
SIGTERM/SIGINT or when its stdin reaches end of file: keep stdin open (a pipe)
for as long as you need the server, so it never outlives the process that
started it.
"""

import argparse
import base64
import datetime
import hmac
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
import time
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
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from moto import settings as moto_settings  # noqa: E402
from moto.core.authorization import ActionAuthenticatorMixin  # noqa: E402
from moto.iam import access_control as moto_access_control  # noqa: E402
from moto.iam.access_control import IAMPolicy, IAMRequestBase, PermissionResult  # noqa: E402
from moto.iam.models import AccessKey, get_account_id_from, iam_backends  # noqa: E402
from moto.kms.models import KmsBackend, kms_backends  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.s3.models import s3_backends  # noqa: E402
from moto.secretsmanager.models import SecretsManagerBackend, secretsmanager_backends  # noqa: E402
from moto.sqs.models import sqs_backends  # noqa: E402
from moto.sqs.responses import SQSResponse  # noqa: E402
from moto.sts.models import sts_backends  # noqa: E402
from moto.utilities.id_generator import moto_id_manager  # noqa: E402
from werkzeug.datastructures import EnvironHeaders  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

DEFAULT_ACCOUNT = "123456789012"  # moto's own account
PARTITION = "aws"
FIXTURE_ROLE = "moto-fixture-admin"
REVOCATION_POLICY = "AWSRevokeOlderSessions"  # the IAM console's name for it
STS_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"
SIGV4_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")

# Fixture traffic carries this header with a per-process secret, so it is
# neither recorded nor hit by injected faults: it is set-up, not the system
# under test.
FIXTURE_HEADER = "x-sm-fixture"
FIXTURE_TOKEN = secrets.token_hex(16)


# ---------------------------------------------------------------------------
# Narrow hooks into moto, all keyed on per-request thread-local state that only
# the middleware sets (each request is handled start to end on one thread).
# ---------------------------------------------------------------------------

_request_state = threading.local()

REQUEST_STATE_DEFAULTS = {
    "anonymous_granted": False,  # an unsigned read the middleware granted
    "trust_checked": False,  # an AssumeRole whose trust policy the middleware checked
    "policy_view": None,  # PolicyView: who calls, with what context
    "after_authorized": None,  # a check to run once moto has authorised the request
    "resource": None,  # the ARN moto must authorise against instead of "*"
    "resource_granted": False,  # a same-account resource-based policy alone granted it (moto cannot see it)
    "queue_owner": None,  # SQS: the account of the queue a request names, when not the caller's
    "secret_arn": None,  # CreateSecret: the ARN the new secret must get (secret_resource drew its suffix)
    "secret_version_id": None,  # CreateSecret, PutSecretValue without ClientRequestToken: the new version's id
}


def reset_request_state():
    for name, value in REQUEST_STATE_DEFAULTS.items():
        setattr(_request_state, name, value)


class PolicyView:
    """The caller (None: anonymous) and request context under which moto's
    own policy checks of this request are evaluated."""

    def __init__(self, caller, context):
        self.caller = caller
        self.context = context


class Refusal(Exception):
    """Raised from inside moto by an `after_authorized` check: the request is
    answered with `answer`, not by moto. (moto's Flask app runs in debug mode,
    so an exception it does not know reaches Middleware.forward.)"""

    def __init__(self, answer):
        super().__init__(answer.status)
        self.answer = answer


# moto asks bucket policies about these made-up actions for HEAD and POST on
# an object, and identity policies about SQS's batch operations by their own
# names; IAM knows them as these (SQS_ACTIONS).
MOTO_ACTION_NAMES = {
    "s3:HeadObject": "s3:GetObject",
    "s3:PostObject": "s3:PutObject",
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}


def _install_moto_hooks():
    """Let the middleware's decisions stand where moto would overrule them.

    * An anonymous read the middleware granted (public bucket policy or ACL)
      must skip moto's authentication, which wants an Authorization header and
      fails with a 500 without one.
    * An AssumeRole the middleware already checked against the trust policy
      must not be checked again by moto's narrower evaluator (which refuses an
      account-root principal and StringLike, unlike AWS). moto still checks
      the signature and the caller's own identity policy.
    * moto evaluates identity policies (every signed request) and bucket
      policies (object requests) with its own IAMPolicy, which ignores
      Principal and every condition it cannot fill (all but StringEquals on
      sts:ExternalId): a conditional Allow grants and a conditional Deny
      applies unconditionally. So a bucket policy's write-once Deny
      (`Null s3:if-none-match`) refused every PUT, and the inline
      AWSRevokeOlderSessions policy would refuse new sessions too. While the
      middleware has set a PolicyView, IAMPolicy.is_action_permitted answers
      with `evaluate` instead: the same evaluator, the caller's identities and
      the request's context. (Trust policies, which moto evaluates with a
      principal, keep moto's evaluator; the middleware checks them first.)
    * Some checks must run only once moto has authorised the request, as AWS
      makes them after authorising it: the KMS call S3 makes for SSE-KMS, and
      AssumeRole's session-duration limits. The middleware leaves them in
      `after_authorized`; they run right after moto's identity check passes
      and refuse by raising Refusal.
    * Secrets Manager calls KMS with the new secret's ARN and version id in
      the encryption context (Middleware.check_secret_kms), which moto
      draws only when it stores the secret. The middleware draws them
      first: the six characters after the name (secret_resource, which
      authorises CreateSecret against that ARN) and, without a
      ClientRequestToken, the version id; moto's id generation
      (moto_id_manager) and SecretsManagerBackend._from_client_request_token
      then use those.
    * moto's KMS DisableKey, EnableKey, ScheduleKeyDeletion and
      CancelKeyDeletion fail with a KeyError (a 500) for a key ARN, which
      AWS accepts ("Specify the key ID or key ARN of the KMS key"); fixtures
      name keys by ARN, so these take either.
    * moto knows the access keys of IAM users and of assumed-role sessions
      only; an account's root user keys (POST /_sm/root-access-key) are
      unknown to it, so it would refuse them with InvalidAccessKeyId. Its
      key lookup learns them: the root user, whose identity is allowed
      every action (RootKeyView), moto still checking the signature.
    * Within its account, a queue's policy alone can grant an SQS action
      (Middleware.check_sqs); moto evaluates identity-based policies only and
      would refuse. Where the middleware found such a grant
      (`resource_granted`), moto's identity check is skipped; its signature
      check still runs, and so do `after_authorized` checks.
    * moto's SQS acts on the queue of that name in the caller's own account,
      whatever account the QueueUrl names (QueueOwnerAWSAccountId too).
      Once the middleware has authorised a call to another account's queue it
      leaves that account in `queue_owner`, and moto's SQS backend is that
      account's.
    """
    authenticate = ActionAuthenticatorMixin._authenticate_and_authorize_action
    create_access_key = moto_access_control.create_access_key
    check_trust = IAMRequestBase._check_role_trust_relationship
    check_permitted = IAMRequestBase.check_action_permitted
    is_permitted = IAMPolicy.is_action_permitted
    version_from_token = SecretsManagerBackend._from_client_request_token
    sqs_backend = SQSResponse.sqs_backend

    def authenticate_unless_public(self, iam_request_cls, resource="*"):
        if getattr(_request_state, "anonymous_granted", False):
            return None
        return authenticate(self, iam_request_cls, getattr(_request_state, "resource", None) or resource)

    def trust_unless_checked(self, role_arn):
        if getattr(_request_state, "trust_checked", False):
            return True
        return check_trust(self, role_arn)

    def permitted_as_aws_decides(self, action, resource="*", principal=None, incoming_condition_values=None):
        view = getattr(_request_state, "policy_view", None)
        if view is None or principal is not None:
            return is_permitted(self, action, resource, principal, incoming_condition_values)
        found, _ = evaluate(
            statements(self._policy_json), MOTO_ACTION_NAMES.get(action, action), resource, view.context, view.caller
        )
        return {"Deny": PermissionResult.DENIED, "Allow": PermissionResult.PERMITTED}.get(found, PermissionResult.NEUTRAL)

    def check_then_follow_up(self, resource):
        if not getattr(_request_state, "resource_granted", False):
            check_permitted(self, resource)
        follow_up = getattr(_request_state, "after_authorized", None)
        _request_state.after_authorized = None  # once per request
        if follow_up is not None:
            answer = follow_up()
            if answer is not None:
                raise Refusal(answer)

    def create_access_key_knowing_root(account_id, partition, access_key_id, headers):
        key = root_access_key(account_id, partition, access_key_id)
        if key is not None:
            return RootKeyView(key)
        return create_access_key(account_id, partition, access_key_id, headers)

    def drawn_secret_suffix(context):
        drawn = getattr(_request_state, "secret_arn", None)
        identifier = context.get("resource_identifier")
        if not drawn or getattr(identifier, "service", None) != "secretsmanager" or identifier.resource != "secret":
            return None
        prefix = f"arn:{PARTITION}:secretsmanager:{identifier.region}:{identifier.account_id}:secret:{identifier.name}-"
        return drawn[len(prefix):] if drawn.startswith(prefix) else None

    def drawn_version_id(self, client_request_token):
        drawn = getattr(_request_state, "secret_version_id", None)
        if not client_request_token and drawn:
            return drawn
        return version_from_token(self, client_request_token)

    def queue_owners_backend(self):
        owner = getattr(_request_state, "queue_owner", None)
        return sqs_backends[owner][self.region] if owner else sqs_backend.fget(self)

    def by_key_id(method):
        def accepting_arns(self, key_id, *args, **kwargs):
            return method(self, self.get_key_id(key_id), *args, **kwargs)

        return accepting_arns

    for name in ("disable_key", "enable_key", "schedule_key_deletion", "cancel_key_deletion"):
        setattr(KmsBackend, name, by_key_id(getattr(KmsBackend, name)))
    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate_unless_public
    IAMRequestBase._check_role_trust_relationship = trust_unless_checked
    IAMRequestBase.check_action_permitted = check_then_follow_up
    IAMPolicy.is_action_permitted = permitted_as_aws_decides
    moto_access_control.create_access_key = create_access_key_knowing_root
    moto_id_manager.add_id_source(drawn_secret_suffix)
    SecretsManagerBackend._from_client_request_token = drawn_version_id
    SQSResponse.sqs_backend = property(queue_owners_backend)


def moto_auth_on():
    """moto's own test for whether it authenticates the next request."""
    return ActionAuthenticatorMixin.request_count >= moto_settings.INITIAL_NO_AUTH_ACTION_COUNT


# ---------------------------------------------------------------------------
# AWS-shaped answers
# ---------------------------------------------------------------------------

LEAK_AUDIT_DIR = os.environ.get("STORED_MESSAGES_LEAK_AUDIT")
EXTERNAL_ID_FIELD = re.compile(rb'"external_id"\s*:\s*"([A-Za-z0-9]+)"')


def json_error(status, code, message):
    """The JSON-protocol error shape (Secrets Manager, EventBridge, KMS, SQS)
    that the SDKs parse: `__type` and `message` in the body, the code also in
    the x-amzn-ErrorType header (aws-sdk-rust reads either)."""
    body = json.dumps({"__type": code, "message": message}).encode()
    headers = [
        ("Content-Type", "application/x-amz-json-1.1"),
        ("x-amzn-ErrorType", code),
        ("x-amzn-RequestId", str(uuid.uuid4())),
    ]
    return Answer(status, headers, body)


# SQS's refusal of a JSON-protocol call (what aws-sdk-sqs and the pinned
# botocore speak: its service model says protocol "json" 1.0, target prefix
# AmazonSQS, awsQueryCompatible; boto/botocore#3165):
#   403, `x-amzn-query-error: AccessDenied;Sender`, body
#   {"__type": "com.amazon.coral.service#AccessDeniedException", "Message":
#    "User: CALLER is not authorized to perform: sqs:sendmessage on resource:
#    QUEUE_ARN because no identity-based policy allows the sqs:sendmessage
#    action"}
# with the action in lower case (SendMessageBatch's too is sqs:sendmessage).
# How we know:
# * AccessDenied is no error of SQS's model, and moto 5.2.5 has none under
#   moto/sqs (its own identity check answers every service in the awsQuery
#   XML shape, 403 AccessDenied, which json_shaped rewrites). For an
#   awsQueryCompatible service the SDKs take the code from x-amzn-query-error
#   (aws-smithy-json's parse_error_envelope_metadata: "this header overrides
#   any body-derived code"; botocore's JSON parser likewise), so callers see
#   `AccessDenied`, the code SQS's query protocol always answered, with a 403
#   ("Status Code: 403; Error Code: AccessDenied" in SDK reports; the SQS
#   Developer Guide's "Troubleshoot an access denied error in Amazon SQS"
#   quotes "An error occurred (AccessDenied) when calling the SendMessage
#   operation").
# * The 403 under the JSON protocol, the coral __type, the `Message` key and
#   the lower-case action are what AWS was measured to answer by third
#   parties (floci-io/floci's resource-policy design notes, responses R1 and
#   R2; the messages also quoted in aws/serverless-application-model#3633 and
#   microsoft/aspire#3333). The API reference's generic "Common Errors" page
#   lists AccessDeniedException with 400; those measurements contradict it
#   for SQS, and we follow them.
# * Assumption: no x-amzn-ErrorType header (the measured shape names only
#   x-amzn-query-error; the SDKs take the code from that header either way).
SQS_ACCESS_DENIED_STATUS = 403
SQS_ACCESS_DENIED_TYPE = "com.amazon.coral.service#AccessDeniedException"


def sqs_access_denied(message):
    """SQS's AccessDenied answer to a JSON-protocol call (see above)."""
    body = json.dumps({"__type": SQS_ACCESS_DENIED_TYPE, "Message": message}).encode()
    headers = [
        ("Content-Type", "application/x-amz-json-1.0"),
        ("x-amzn-query-error", "AccessDenied;Sender"),
        ("x-amzn-RequestId", str(uuid.uuid4())),
    ]
    return Answer(SQS_ACCESS_DENIED_STATUS, headers, body)


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


# Authentication, before anything else AWS decides about a signed request:
# what each protocol answers for a key it does not know (or one that is
# inactive, which AWS answers alike), a session token that does not go with
# the key, and a signature the key's secret does not give. Codes and messages
# as AWS answers them (S3 API reference, "Error responses": InvalidAccessKeyId,
# InvalidToken, SignatureDoesNotMatch; STS and IAM "Common Errors":
# InvalidClientTokenId 403, SignatureDoesNotMatch; the JSON services' common
# errors, e.g. Secrets Manager API reference "Common Errors":
# UnrecognizedClientException 400, InvalidSignatureException 400).
S3_SIGNATURE_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. Check your key and signing method."
)
SIGNATURE_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
INVALID_TOKEN_MESSAGE = "The security token included in the request is invalid."


def authentication_refusal(request, problem, provided_signature=None):
    """AWS's answer to a signed request it cannot authenticate, in the
    request's protocol. `problem`: "unknown" (no such access key, or an
    inactive one), "token" (a session token that is not the key's, or one
    sent with a long-term key) or "signature"."""
    key = escape(request.access_key or "")
    if request.s3:
        if problem == "signature":
            extra = f"<AWSAccessKeyId>{key}</AWSAccessKeyId><SignatureProvided>{escape(provided_signature or '')}</SignatureProvided>"
            return s3_error(403, "SignatureDoesNotMatch", S3_SIGNATURE_MESSAGE, extra)
        if problem == "token":
            return s3_error(400, "InvalidToken", "The provided token is malformed or otherwise invalid.")
        return s3_error(
            403,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            f"<AWSAccessKeyId>{key}</AWSAccessKeyId>",
        )
    if request.json:
        if problem == "signature":
            return json_error(400, "InvalidSignatureException", SIGNATURE_MESSAGE)
        return json_error(400, "UnrecognizedClientException", INVALID_TOKEN_MESSAGE)
    if problem == "signature":
        return query_error(403, "SignatureDoesNotMatch", SIGNATURE_MESSAGE)
    return query_error(403, "InvalidClientTokenId", INVALID_TOKEN_MESSAGE)


# moto refuses JSON-protocol requests in the awsQuery XML shape; these are
# the codes (and statuses) the JSON services answer for them.
JSON_AUTH_CODES = {
    "AccessDenied": (400, "AccessDeniedException"),
    "InvalidClientTokenId": (400, "UnrecognizedClientException"),
    "SignatureDoesNotMatch": (400, "InvalidSignatureException"),
}
# What a JSON service calls its own 500 (each API reference's errors), the
# default code of an injected 500 for it.
JSON_INTERNAL_ERRORS = {
    "secretsmanager": "InternalServiceError",
    "events": "InternalException",
    "kms": "KMSInternalException",
}


def caller_identity_answer(caller):
    """sts:GetCallerIdentity's answer, for the caller moto cannot describe:
    the root user, Arn arn:aws:iam::ACCOUNT:root and UserId the account id
    (the root user's unique id, IAM User Guide, "IAM identifiers", and the
    aws:userid row of "AWS global condition context keys")."""
    body = (
        f'<GetCallerIdentityResponse xmlns="{STS_XMLNS}"><GetCallerIdentityResult>'
        f"<Arn>{escape(caller.arn)}</Arn><UserId>{escape(caller.user_id)}</UserId>"
        f"<Account>{escape(caller.account)}</Account></GetCallerIdentityResult>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
    )
    return Answer(200, [("Content-Type", "text/xml")], body.encode())


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


def json_shaped(request, answer):
    """moto's answer to a JSON-protocol request as the JSON services give it.

    * moto's own refusals of such requests (its authentication and
      identity-policy checks: AccessDenied, InvalidClientTokenId,
      SignatureDoesNotMatch) come in the awsQuery XML shape with a 403,
      where the service answers `{"__type", "message"}` with a 400
      (JSON_AUTH_CODES).
    * Its JSON errors come with other 4xx statuses (Secrets Manager's
      ResourceNotFoundException with a 404) and without x-amzn-ErrorType;
      these services answer every client error with 400 (their API
      references list each error with "HTTP Status Code: 400") and the
      header.
    * Some services' answers (Secrets Manager's) come as text/html, where
      AWS says application/x-amz-json-1.1 (or the 1.0 the request was sent
      as).
    * SQS (awsQueryCompatible) is the exception: moto's AccessDenied becomes
      SQS's own (sqs_access_denied), and the x-amzn-query-error header of its
      JSON errors is kept: it carries the awsQuery code
      (`AWS.SimpleQueueService.NonExistentQueue;Sender`) that the SDKs
      dispatch on (aws-sdk-rust matches its modelled errors by that code)."""
    if answer.status >= 400 and answer.body.lstrip().startswith(b"<"):
        code = xml_text(answer.body, "Code") or "InternalFailure"
        if request.service == "sqs" and code == "AccessDenied":
            return sqs_access_denied(xml_text(answer.body, "Message") or "")
        status, code = JSON_AUTH_CODES.get(code, (answer.status, code))
        return json_error(status, code, xml_text(answer.body, "Message") or "")
    if 400 <= answer.status < 500:
        try:
            error = json.loads(answer.body)
        except ValueError:
            error = None
        if isinstance(error, dict) and isinstance(error.get("__type"), str):
            message = error.get("message", error.get("Message", ""))
            shaped = json_error(400, error["__type"], message if isinstance(message, str) else str(message))
            shaped.headers += [(k, v) for k, v in answer.headers if k.lower() == "x-amzn-query-error"]
            return shaped
    content_type = next((v for k, v in answer.headers if k.lower() == "content-type"), "")
    if content_type and not content_type.startswith("text/html"):
        return answer
    sent = request.lower_headers.get("content-type", "")
    wanted = sent if sent.startswith("application/x-amz-json-") else "application/x-amz-json-1.1"
    headers = [(k, v) for k, v in answer.headers if k.lower() != "content-type"]
    return Answer(answer.status, [*headers, ("Content-Type", wanted)], answer.body)


# ---------------------------------------------------------------------------
# IAM policy evaluation: one evaluator for every policy the emulator decides
# (trust, session, bucket, identity and key policies), and, through the hooks
# above, for the identity and bucket policies moto decides itself.
# ---------------------------------------------------------------------------

UTC = datetime.timezone.utc


def as_list(value):
    return value if isinstance(value, list) else [value]


def iso_time(moment):
    """UTC, ISO 8601 with microseconds and a `Z`, as the emulator writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def wildcard_match(pattern, value, ignore_case=False):
    """IAM wildcards: `*` any run of characters (`/` and `:` included), `?`
    exactly one; no others."""
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
    if not isinstance(policy, dict):
        return []
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


# -- Condition operators ------------------------------------------------------
#
# AWS: "IAM JSON policy elements: Condition operators"
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html)
# and "Conditions with multiple context keys or values"
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-logic-multiple-context-keys-or-values.html):
#
# * condition key names are case-insensitive; values are compared
#   case-sensitively unless the operator says IgnoreCase (and Bool, whose
#   values are the words true and false);
# * several operators in a block, and several keys under one operator, are
#   AND'ed; several values for one key are OR'ed, and NOR'ed for a negated
#   operator (StringNotEquals, ArnNotLike, ... : true when none matches);
# * "If the key that you specify in a policy condition is not present in the
#   request context, the values do not match and the condition is false. If
#   the policy condition requires that the key is not matched, such as
#   StringNotLike or ArnNotLike, and the right key is not present, the
#   condition is true. This logic applies to all condition operators except
#   ...IfExists and Null check": ...IfExists is true when the key is absent,
#   Null {"key": "true"} is true exactly when it is absent;
# * ForAllValues: true when every value in the request matches, and "also
#   returns true if there are no context keys in the request"; ForAnyValue:
#   true when at least one does, so false when the key is absent or empty
#   ("Single-valued vs. multivalued context keys"). ForAnyValue:...IfExists
#   stays false on an absent key, as AWS answers (re:Post "ForAnyValue:
#   StringEqualsIfExists behaving unexpectedly": a ListQueues without
#   aws:TagKeys was refused);
# * assumption: a multivalued key under an operator without a set prefix
#   (which AWS advises against) matches when any of its values does, and a
#   negated operator holds when none does;
# * ArnEquals and ArnLike are the same test: "Each of the six colon-delimited
#   components of the ARN is checked separately and each can include
#   multi-character match wildcards (*) or single-character match wildcards
#   (?)";
# * Date operators take ISO 8601 or epoch seconds, on both sides.
#
# An operator (or a value) not listed here is not understood and fails
# closed: an Allow statement carrying it does not apply, a Deny one does,
# whatever its other conditions say.

def parse_time(text):
    """ISO 8601 (a date, or a date and time with `Z` or an offset; naive is UTC)
    or epoch seconds, as an aware datetime; None if it is neither."""
    text = text.strip()
    try:
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return datetime.datetime.fromtimestamp(float(text), tz=UTC)
        moment = datetime.datetime.fromisoformat(text)  # Python 3.11 reads `Z` and basic formats too
    except (ValueError, OverflowError, OSError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_number(text):
    try:
        return float(text)
    except ValueError:
        return None


def compared(parse, test):
    """A matcher that parses both sides first; unparseable never matches."""

    def match(actual, expected):
        left, right = parse(actual), parse(expected)
        return left is not None and right is not None and test(left, right)

    return match


def arn_match(actual, pattern):
    actual_parts, pattern_parts = actual.split(":", 5), pattern.split(":", 5)
    if len(actual_parts) != 6 or len(pattern_parts) != 6:
        return False
    return all(wildcard_match(p, a) for p, a in zip(pattern_parts, actual_parts))


def string_equals(actual, expected):
    return actual == expected


def string_equals_ignore_case(actual, expected):
    return actual.casefold() == expected.casefold()


def string_like(actual, expected):
    return wildcard_match(expected, actual)


def bool_equals(actual, expected):
    return actual.lower() == expected.lower()


# operator -> (test of one request value against one policy value, negated)
CONDITION_OPERATORS = {
    "StringEquals": (string_equals, False),
    "StringNotEquals": (string_equals, True),
    "StringEqualsIgnoreCase": (string_equals_ignore_case, False),
    "StringNotEqualsIgnoreCase": (string_equals_ignore_case, True),
    "StringLike": (string_like, False),
    "StringNotLike": (string_like, True),
    "ArnEquals": (arn_match, False),
    "ArnLike": (arn_match, False),
    "ArnNotEquals": (arn_match, True),
    "ArnNotLike": (arn_match, True),
    "Bool": (bool_equals, False),
    "DateEquals": (compared(parse_time, lambda a, e: a == e), False),
    "DateNotEquals": (compared(parse_time, lambda a, e: a == e), True),
    "DateLessThan": (compared(parse_time, lambda a, e: a < e), False),
    "DateLessThanEquals": (compared(parse_time, lambda a, e: a <= e), False),
    "DateGreaterThan": (compared(parse_time, lambda a, e: a > e), False),
    "DateGreaterThanEquals": (compared(parse_time, lambda a, e: a >= e), False),
    "NumericEquals": (compared(parse_number, lambda a, e: a == e), False),
    "NumericNotEquals": (compared(parse_number, lambda a, e: a == e), True),
    "NumericLessThan": (compared(parse_number, lambda a, e: a < e), False),
    "NumericLessThanEquals": (compared(parse_number, lambda a, e: a <= e), False),
    "NumericGreaterThan": (compared(parse_number, lambda a, e: a > e), False),
    "NumericGreaterThanEquals": (compared(parse_number, lambda a, e: a >= e), False),
}


def policy_string(value):
    """A condition value as policies write it: JSON true/false and numbers are
    the same as their strings. None for anything else (not understood)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def request_values(context, key):
    """The request's values for a condition key: None when absent (an empty
    list counts as absent), else a list of strings. Context keys are stored
    lower-cased: names are case-insensitive."""
    value = context.get(key.lower())
    if value is None:
        return None
    values = [policy_string(v) for v in as_list(value) if v is not None]
    return [v for v in values if v is not None] or None


def condition_holds(operator, key, expected, context):
    """One operator on one key: True, False, or None when not understood."""
    set_operator = None
    for prefix in ("ForAnyValue:", "ForAllValues:"):
        if operator.startswith(prefix):
            set_operator, operator = prefix[:-1], operator[len(prefix):]
    if_exists = operator.endswith("IfExists")
    if if_exists:
        operator = operator[: -len("IfExists")]
    wanted = [policy_string(value) for value in as_list(expected)]
    if not wanted or None in wanted:
        return None
    actual = request_values(context, key)

    if operator == "Null":
        if set_operator or if_exists:
            return None
        absent = actual is None
        return any((w.lower() == "true" and absent) or (w.lower() == "false" and not absent) for w in wanted)

    if operator not in CONDITION_OPERATORS:
        return None
    test, negated = CONDITION_OPERATORS[operator]

    def value_holds(value):
        matched = any(test(value, w) for w in wanted)
        return not matched if negated else matched

    if set_operator == "ForAllValues":
        return all(value_holds(v) for v in actual or [])
    if set_operator == "ForAnyValue":
        return any(value_holds(v) for v in actual or [])
    if actual is None:
        return if_exists or negated
    return all(value_holds(v) for v in actual) if negated else any(value_holds(v) for v in actual)


def conditions_hold(conditions, context, effect):
    """A statement's whole Condition block against the request's context.

    Anything not understood (an unknown operator or a malformed block) fails
    closed: the answer is then True for a Deny (it applies) and False for an
    Allow (it grants nothing), whatever the block's other conditions say."""
    if not conditions:
        return True
    fail_closed = effect == "Deny"
    if not isinstance(conditions, dict):
        return fail_closed
    results = []
    for operator, tests in conditions.items():
        if not isinstance(operator, str) or not isinstance(tests, dict) or not tests:
            return fail_closed
        for key, expected in tests.items():
            held = condition_holds(operator, key, expected, context)
            if held is None:
                return fail_closed
            results.append(held)
    return all(results)


# -- Statements, principals and verdicts -------------------------------------

# How a resource-based statement's Principal names a caller, weakest first.
# "account": its account (root ARN or bare id), which delegates to the
# account's identity-based policies; "direct": its user or role ARN, or
# everyone ("*"); "session": the assumed-role session's own ARN, the one grant
# a session policy does not limit.
PRINCIPAL_STRENGTH = {None: 0, "account": 1, "identity": 1, "direct": 2, "session": 3}


def principal_match(statement, caller):
    """How a statement's Principal or NotPrincipal names the caller (see
    PRINCIPAL_STRENGTH), or None. `caller` None is an anonymous request,
    named only by "*". Only AWS principals can name our callers."""

    def named(principal):
        if principal == "*":
            return "direct"
        if not isinstance(principal, dict):
            return None
        best = None
        for entry in as_list(principal.get("AWS", [])):
            if entry == "*":
                kind = "direct"
            elif caller is None:
                continue
            elif entry == caller.arn and caller.is_session:
                kind = "session"
            elif entry in (caller.arn, caller.principal_arn):
                kind = "direct"
            elif entry in (f"arn:{PARTITION}:iam::{caller.account}:root", caller.account):
                kind = "account"
            else:
                continue
            if PRINCIPAL_STRENGTH[kind] > PRINCIPAL_STRENGTH[best]:
                best = kind
        return best

    if "Principal" in statement:
        return named(statement["Principal"])
    if "NotPrincipal" in statement:
        return None if named(statement["NotPrincipal"]) else "direct"
    return None


def evaluate(candidates, action, resource, context, caller=None, resource_based=False):
    """One policy's verdict on one request, as AWS evaluates a policy:
    ("Deny", None) if an applicable statement denies (an explicit deny wins
    whatever else applies), else ("Allow", how) if one allows, where `how` is
    the strongest principal_match among the allowing statements ("identity"
    for a statement without Principal: an identity-based or session policy),
    else (None, None).

    `resource` None skips Resource (trust policies have none). A statement
    with Principal/NotPrincipal applies only to the callers it names; with
    `resource_based`, a statement without one applies to nobody."""
    allowed = None
    for statement in candidates:
        effect = statement.get("Effect")
        if effect not in ("Allow", "Deny"):
            continue
        if not matches_element(statement, "Action", action, ignore_case=True):
            continue
        if resource is not None and not matches_element(statement, "Resource", resource):
            continue
        if "Principal" in statement or "NotPrincipal" in statement:
            how = principal_match(statement, caller)
            if how is None:
                continue
        elif resource_based:
            continue
        else:
            how = "identity"
        if not conditions_hold(statement.get("Condition"), context, effect):
            continue
        if effect == "Deny":
            return "Deny", None
        if PRINCIPAL_STRENGTH[how] > PRINCIPAL_STRENGTH[allowed]:
            allowed = how
    return ("Allow", allowed) if allowed else (None, None)


def denial(caller_arn, action, resource, reason):
    """AWS's current AccessDenied message ("Troubleshoot access denied error
    messages", https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html):
    `reason` is e.g. "with an explicit deny in a resource-based policy" or
    "because no session policy allows the s3:PutObject action"."""
    return f"User: {caller_arn} is not authorized to perform: {action} on resource: {resource} {reason}"


def explicit_deny(kind):
    return f"with an explicit deny in {'an' if kind[0] in 'aeiou' else 'a'} {kind} policy"


def no_allow(kind, action):
    return f"because no {kind} policy allows the {action} action"


# ---------------------------------------------------------------------------
# Who is calling, and on what
# ---------------------------------------------------------------------------

# The root user may do anything in its account: AWS attaches no policy to it
# and evaluates none of its identity (SCPs aside, which are not modelled).
ROOT_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


class Caller:
    """A signed request's IAM user, assumed-role session or root user, with
    the secret (and session token) its signature must be made with."""

    def __init__(self, account, arn, principal_arn, user_id, access_key, user=None, session=None, root=False,
                 secret_key=None, session_token=None):
        self.account = account
        self.arn = arn  # as AWS names it in error messages (the session ARN for a session)
        self.principal_arn = principal_arn  # aws:PrincipalArn: the user, the session's role, or the root ARN
        self.user_id = user_id  # aws:userid
        self.access_key = access_key
        self.user = user  # moto's User, for a user
        self.session = session  # moto's AssumedRole, for a session
        self.is_session = session is not None
        self.is_root = root
        self.secret_key = secret_key
        self.session_token = session_token  # None for long-term keys

    def create_credentials(self):
        """What the caller signs with (IAMRequestBase's access-key interface)."""
        return Credentials(self.access_key, self.secret_key, self.session_token)

    def identity_statements(self):
        """The statements of the caller's identity-based policies, as AWS
        collects them: a user's inline and attached policies and its groups';
        an assumed-role session's role's inline and attached policies; for the
        root user, everything (ROOT_POLICY). (Permissions boundaries are not
        modelled.)"""
        if self.is_root:
            return statements(ROOT_POLICY)
        backend = iam_backends[self.account][PARTITION]
        if self.is_session:
            entities = [find_role(self.principal_arn)]
        else:
            entities = [self.user, *backend.get_groups_for_user(self.user.name)]
        documents = []
        for entity in entities:
            if entity is None:
                continue
            documents += list(entity.policies.values())
            for managed in entity.managed_policies.values():
                documents += [version.document for version in managed.versions if version.is_default]
        return [statement for document in documents for statement in statements(parse_policy(document))]


class RootKeyView:
    """A root key as moto's IAMRequestBase sees an access key: its ARN, its
    credentials (for moto's own signature check) and its policies (every
    action, evaluated through the same hook as any identity policy)."""

    def __init__(self, key):
        self.arn = key.root_arn
        self._key = key

    def create_credentials(self):
        return Credentials(self._key.access_key_id, self._key.secret_access_key)

    def collect_policies(self):
        return [json.dumps(ROOT_POLICY)]


def create_root_access_key(account):
    """A new access key of an account's root user (POST /_sm/root-access-key).

    moto has none (its keys belong to users or to sessions). This one is a
    moto AccessKey of no user, marked with the root ARN, kept in moto's IAM
    backend of the account beside the users' keys, so that
    get_account_id_from maps it to that account and a moto reset forgets it
    like every other key. Shaped like AWS's: AKIA and 16 upper-case letters
    and digits, the account encoded in it as moto encodes it."""
    key = AccessKey(user_name=None, prefix="AKIA", account_id=account)
    key.root_arn = f"arn:{PARTITION}:iam::{account}:root"
    iam_backends[account][PARTITION].access_keys[key.access_key_id] = key
    return key


def root_access_key(account, partition, access_key):
    """The root user's AccessKey of that id in moto's IAM backend, or None."""
    key = iam_backends[account][partition].access_keys.get(access_key)
    return key if getattr(key, "root_arn", None) else None


def find_caller(access_key):
    """The IAM user, assumed-role session or root user that owns an access
    key, or None. An inactive key (iam UpdateAccessKey Status=Inactive) or a
    deleted one is nobody's: AWS answers for it as for a key it never
    issued ("Manage access keys for IAM users": an inactive key "can't be
    used to sign requests")."""
    if not access_key:
        return None
    account = get_account_id_from(access_key)
    backend = iam_backends[account][PARTITION]
    root_key = root_access_key(account, PARTITION, access_key)
    if root_key is not None:
        if root_key.status != "Active":
            return None
        return Caller(account, root_key.root_arn, root_key.root_arn, account, access_key, root=True,
                      secret_key=root_key.secret_access_key)
    for user in list(backend.users.values()):
        for key in list(user.access_keys):
            if key.access_key_id == access_key:
                if key.status != "Active":
                    return None
                return Caller(account, user.arn, user.arn, user.id, access_key, user=user,
                              secret_key=key.secret_access_key)
    for session in list(sts_backends[account][PARTITION].assumed_roles):
        if session.access_key_id == access_key:
            # A role ARN in a policy's Principal also names the sessions of that role.
            return Caller(account, session.arn, session.role_arn, session.user_id, access_key, session=session,
                          secret_key=session.secret_access_key, session_token=session.session_token)
    return None


class SignatureCheck(IAMRequestBase):
    """moto's own SigV4 verification (IAMRequestBase._calculate_signature:
    botocore's signer rebuilds the canonical request from the signed headers,
    the path and query as sent and the body, and signs it with the key's
    secret), run by the middleware before anything else decides, with the
    caller it found: moto's own lookup knows neither root keys nor inactive
    ones, and runs only after the middleware's checks.

    Fed what moto itself is fed (werkzeug's view of the headers, the raw
    path and query from RAW_URI), so that any request moto would accept is
    accepted. A presigned URL (X-Amz-Signature in the query, which moto does
    not read) is checked the same way with botocore's query signer: the
    query without X-Amz-Signature, the headers X-Amz-SignedHeaders names,
    the time X-Amz-Date gives."""

    def __init__(self, request, environ, caller):
        # Not IAMRequestBase.__init__: it looks the key up in moto, which knows
        # neither root keys nor key status.
        raw_uri = (environ.get("RAW_URI") or environ.get("REQUEST_URI") or "/").encode("latin-1", "replace")
        path, _, query = raw_uri.decode("utf-8", "replace").partition("?")
        self.presigned = "X-Amz-Signature" in request.query_params
        if self.presigned:
            query = "&".join(pair for pair in query.split("&") if pair.partition("=")[0] != "X-Amz-Signature")
        self._method = request.method
        self._path = f"{path}?{query}" if query else path
        self._data = {}
        self._body = request.body
        self._headers = EnvironHeaders(environ)
        self._region = request.region
        self._service = request.service
        self._s3 = request.s3
        self._query = request.query_params
        self._access_key = caller

    def provided(self):
        if self.presigned:
            return self._query["X-Amz-Signature"][0]
        return self._get_string_between("Signature=", ",", self._headers.get("Authorization", ""))

    def matches(self):
        """Whether the request's signature is the one the caller's secret gives."""
        try:
            return hmac.compare_digest(self.provided(), self._calculate_signature())
        except (KeyError, IndexError, TypeError, ValueError):  # a required part is missing
            return False

    def _create_aws_request(self):
        if not self.presigned:
            return super()._create_aws_request()
        signed_headers = self._query.get("X-Amz-SignedHeaders", [""])[0].split(";")
        request = AWSRequest(
            method=self._method,
            url=self._path,
            data=self._body or self._data,
            headers=self._create_headers_for_aws_request(signed_headers, self._headers),
        )
        request.context["timestamp"] = self._query["X-Amz-Date"][0]
        return request

    def _create_auth(self, credentials):
        if self.presigned:
            return (S3SigV4QueryAuth if self._s3 else SigV4QueryAuth)(credentials, self._service, self._region)
        return (S3SigV4Auth if self._s3 else SigV4Auth)(credentials, self._service, self._region)

    # IAMRequestBase's refusals: never raised here, the middleware answers.
    def _raise_signature_does_not_match(self):
        raise NotImplementedError

    def _raise_access_denied(self):
        raise NotImplementedError

    def _raise_invalid_access_key(self, reason):
        raise NotImplementedError


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


def check_session_duration(caller, role, seconds):
    """AssumeRole's session-duration limits, once the caller is authorised
    (AssumeRole API reference, DurationSeconds): with role chaining (the
    caller is itself an assumed-role session) at most one hour, "if you assume
    a role using role chaining and provide a DurationSeconds parameter value
    greater than one hour, the operation fails"; otherwise at most the role's
    MaxSessionDuration (default 3600). The messages are those STS answers."""
    if caller.is_session and seconds > 3600:
        return query_error(
            400,
            "ValidationError",
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
        )
    try:
        maximum = int(role.max_session_duration or 3600)
    except (TypeError, ValueError):
        maximum = 3600
    if seconds > maximum:
        return query_error(
            400, "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
        )
    return None


def find_bucket(name):
    """(owner account, FakeBucket) of an existing bucket, else (None, None)."""
    located = s3_backends.bucket_accounts.get(name) if name else None
    if not located:
        return None, None
    partition, account = located
    return account, s3_backends[account][partition].buckets.get(name)


# The Secrets Manager operations authorised against one secret's ARN
# (Middleware.check_secretsmanager).
SECRET_OPERATIONS = {"CreateSecret", "PutSecretValue", "GetSecretValue", "DeleteSecret", "DescribeSecret", "UpdateSecret"}
SECRET_SUFFIX_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# Those of them for which Secrets Manager calls KMS as the caller
# (Middleware.check_secret_kms).
SECRET_KMS_OPERATIONS = {"CreateSecret", "PutSecretValue", "GetSecretValue"}


def secret_resource(operation, parameters, region, account):
    """(the ARN Secrets Manager authorises `operation` against, moto's secret
    or None); (None, None) when the request names no secret.

    An existing secret, named by name or ARN (full or partial, in SecretId),
    is authorised as its full ARN, with the hyphen and six random characters
    Secrets Manager appends to the name ("Permissions reference for AWS
    Secrets Manager": resources). A secret that does not exist is
    authorised as the partial ARN of its name (or as the ARN given), so a
    caller without permission learns nothing (AccessDeniedException) and
    one with permission gets ResourceNotFoundException from moto.

    CreateSecret is authorised against the ARN the new secret will have:
    "Using the '??????' syntax enables you to securely grant permissions to a
    secret that doesn't yet exist ... you can predict all of the parts of the
    ARN except those 6 random characters" (Secrets Manager User Guide,
    "Permissions policy examples"), so a grant on `secret:NAME-??????` or on
    `secret:PREFIX/*` lets a caller create NAME, and one on `secret:NAME`
    alone does not. The six characters are drawn here, and moto is made to
    give the new secret that very ARN (_install_moto_hooks), so that
    Secrets Manager's KMS calls name it too (check_secret_kms). A policy
    naming one exact suffix is as unlikely to match here as there."""
    if operation == "CreateSecret":
        name = parameters.get("Name")
        if not isinstance(name, str) or not name:
            return None, None
        suffix = "".join(random.choice(SECRET_SUFFIX_CHARACTERS) for _ in range(6))
        return f"arn:{PARTITION}:secretsmanager:{region}:{account}:secret:{name}-{suffix}", None
    secret_id = parameters.get("SecretId")
    if not isinstance(secret_id, str) or not secret_id:
        return None, None
    if secret_id.startswith("arn:"):
        parts = secret_id.split(":", 6)
        if len(parts) < 7 or parts[2] != "secretsmanager":
            return secret_id, None
        region, account = parts[3], parts[4]
    secret = None
    if account in secretsmanager_backends and region in secretsmanager_backends[account]:
        secret = secretsmanager_backends[account][region].secrets.get(secret_id)
    if secret is not None:
        return secret.arn, secret
    if secret_id.startswith("arn:"):
        return secret_id, None
    return f"arn:{PARTITION}:secretsmanager:{region}:{account}:secret:{secret_id}", None


# The SQS operations authorised against one queue (Middleware.check_sqs), and
# the IAM action each is authorised as: the Service Authorization Reference
# for Amazon SQS lists these with the resource type `queue`
# (arn:aws:sqs:REGION:ACCOUNT:NAME; SQS Developer Guide, "Amazon SQS API
# permissions: Actions and resource reference"); the batch operations have no
# action of their own ("Amazon SQS batch actions": "You cannot set
# permissions explicitly for SendMessageBatch, DeleteMessageBatch, or
# ChangeMessageVisibilityBatch").
SQS_ACTIONS = {
    "SendMessage": "sqs:SendMessage",
    "SendMessageBatch": "sqs:SendMessage",
    "ReceiveMessage": "sqs:ReceiveMessage",
    "DeleteMessage": "sqs:DeleteMessage",
    "DeleteMessageBatch": "sqs:DeleteMessage",
    "ChangeMessageVisibility": "sqs:ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "GetQueueAttributes": "sqs:GetQueueAttributes",
    "GetQueueUrl": "sqs:GetQueueUrl",
    "PurgeQueue": "sqs:PurgeQueue",
}
ACCOUNT_ID = re.compile(r"\d{12}")


def sqs_queue(operation, parameters, region, caller_account):
    """(the queue ARN SQS authorises `operation` against, the queue's
    account, moto's queue or None), or None when the request names no queue
    (moto answers the validation error).

    A QueueUrl names the queue by its last two path segments, ACCOUNT/NAME,
    whatever its host (moto's `http://127.0.0.1:PORT/ACCOUNT/NAME` or SQS's
    `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`); a bare name, which moto
    accepts too, is a queue of the caller's account. GetQueueUrl names it by
    QueueName and QueueOwnerAWSAccountId (default: the caller's account). The
    Region is the one the request is signed for, as for moto (on AWS, the
    endpoint's). A queue that does not exist is authorised as the ARN of its
    name (assumption, as for secrets: a caller without permission learns
    nothing, AccessDenied; one with permission gets moto's
    QueueDoesNotExist)."""
    if operation == "GetQueueUrl":
        name = parameters.get("QueueName")
        account = parameters.get("QueueOwnerAWSAccountId") or caller_account
    else:
        url = parameters.get("QueueUrl")
        if not isinstance(url, str) or not url:
            return None
        path = urllib.parse.urlsplit(url).path if "://" in url else url
        segments = [segment for segment in path.split("/") if segment]
        name = segments[-1] if segments else None
        account = segments[-2] if len(segments) >= 2 and ACCOUNT_ID.fullmatch(segments[-2]) else caller_account
    if not isinstance(name, str) or not name or not isinstance(account, str) or not ACCOUNT_ID.fullmatch(account):
        return None
    queue = None
    if account in sqs_backends and region in sqs_backends[account]:
        queue = sqs_backends[account][region].queues.get(name)
    return f"arn:{PARTITION}:sqs:{region}:{account}:{name}", account, queue


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


# S3's condition keys that carry a request header of an object write, as sent
# ("Amazon S3 condition key examples",
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html,
# and "Enforce conditional writes on Amazon S3 buckets",
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html).
# A key is absent when its header is not sent: the bucket's default encryption
# does not set s3:x-amz-server-side-encryption, so a `Null ... true` Deny
# refuses a PUT without the header even into a bucket that encrypts by default.
S3_WRITE_CONDITION_HEADERS = {
    "s3:if-none-match": "if-none-match",
    "s3:if-match": "if-match",
    "s3:x-amz-server-side-encryption": "x-amz-server-side-encryption",
    "s3:x-amz-server-side-encryption-aws-kms-key-id": "x-amz-server-side-encryption-aws-kms-key-id",
    "s3:x-amz-acl": "x-amz-acl",
}
# The operations that really create an object. S3 sets s3:ObjectCreationOperation
# for every s3:PutObject request, "false" for the parts of a multipart upload,
# which "don't accept conditional headers" (conditional-writes-enforce above;
# assumption: "true" for the others, as that page's policies imply).
OBJECT_CREATING_OPERATIONS = {"PutObject", "CopyObject", "CompleteMultipartUpload"}


def object_write(request):
    """Which S3 operation authorised as s3:PutObject a request is, or None."""
    if request.key is None:
        return None
    query, copy = request.query_params, "x-amz-copy-source" in request.lower_headers
    if request.method == "PUT":
        if any(("PUT", name) in OBJECT_SUBRESOURCES for name in query):
            return None
        if "uploadId" in query and "partNumber" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        return "CopyObject" if copy else "PutObject"
    if request.method == "POST" and "uploads" in query:
        return "CreateMultipartUpload"
    if request.method == "POST" and "uploadId" in query:
        return "CompleteMultipartUpload"
    return None


def creates_object(request):
    """Whether S3 chooses the new object's encryption on this request (and so
    calls KMS for SSE-KMS): PutObject, CopyObject, CreateMultipartUpload. The
    parts and the completion of a multipart upload use the upload's choice."""
    return object_write(request) in ("PutObject", "CopyObject", "CreateMultipartUpload")


def s3_request_context(request):
    """S3's own condition keys of a request (see S3_WRITE_CONDITION_HEADERS)."""
    headers = request.lower_headers
    context = {}
    operation = object_write(request)
    if operation is not None:
        context.update({key: headers[header] for key, header in S3_WRITE_CONDITION_HEADERS.items() if header in headers})
        context["s3:objectcreationoperation"] = "true" if operation in OBJECT_CREATING_OPERATIONS else "false"
    if request.key is None and request.method == "GET" and not any(q in request.query_params for q in BUCKET_SUBRESOURCES):
        # ListObjects(V2), ListObjectVersions: s3:prefix, s3:delimiter and
        # s3:max-keys as sent (absent when not sent).
        for name in ("prefix", "delimiter", "max-keys"):
            if name in request.query_params:
                context[f"s3:{name}"] = request.query_params[name][0]
    if request.signed:
        context["s3:signatureversion"] = "AWS4-HMAC-SHA256"
        context["s3:authtype"] = "REST-HEADER" if "authorization" in headers else "REST-QUERY-STRING"
    return context


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
        # JSON-protocol calls (Secrets Manager, EventBridge, KMS, SQS) name
        # their operation in X-Amz-Target: "secretsmanager.GetSecretValue".
        self.target = self.lower_headers.get("x-amz-target") if not self.s3 else None
        self.operation = self.target.rpartition(".")[2] if self.target else None
        self.json = self.target is not None
        self.session_token = self.lower_headers.get("x-amz-security-token")
        if self.session_token is None and "X-Amz-Security-Token" in self.query_params:
            self.session_token = self.query_params["X-Amz-Security-Token"][0]


# ---------------------------------------------------------------------------
# SSE-KMS: which key S3 would encrypt a new object with
# ---------------------------------------------------------------------------

_managed_key_lock = threading.Lock()


def effective_encryption(headers, bucket):
    """(KMS key reference or None for the AWS managed key, S3 Bucket Key on)
    when S3 would encrypt a new object with SSE-KMS, else None (SSE-S3, which
    needs no KMS permission).

    The request's x-amz-server-side-encryption wins over the bucket's default
    encryption. "If you specify x-amz-server-side-encryption:aws:kms ... but
    do not provide x-amz-server-side-encryption-aws-kms-key-id, Amazon S3 uses
    the AWS managed key (aws/s3)" (PutObject API reference; assumption: even
    when the bucket's default names a key). Without the header, the bucket's
    default applies: its SSEAlgorithm and KMSMasterKeyID (none: aws/s3). The
    Bucket Key comes from x-amz-server-side-encryption-bucket-key-enabled,
    else from the default's BucketKeyEnabled."""
    rule = bucket.encryption.get("Rule") if isinstance(bucket.encryption, dict) else None
    rule = next(iter(as_list(rule)), None) or {}
    default = rule.get("ApplyServerSideEncryptionByDefault") or {}
    default_kms = str(default.get("SSEAlgorithm", "")).startswith("aws:kms")
    algorithm = headers.get("x-amz-server-side-encryption")
    if algorithm:
        if not algorithm.startswith("aws:kms"):
            return None
        reference = headers.get("x-amz-server-side-encryption-aws-kms-key-id") or None
    elif default_kms:
        reference = default.get("KMSMasterKeyID") or None
    else:
        return None
    bucket_key = headers.get("x-amz-server-side-encryption-bucket-key-enabled")
    if bucket_key is None:
        bucket_key = str(rule.get("BucketKeyEnabled", "")) if default_kms else ""
    return reference, bucket_key.lower() == "true"


def aws_managed_s3_policy(account, region):
    """The key policy AWS gives every account's aws/s3 key: any principal of
    the account may use it through S3, no IAM permission needed."""
    return {
        "Version": "2012-10-17",
        "Id": "auto-s3-2",
        "Statement": [
            {
                "Sid": "Allow access through S3 for all principals in the account that are authorized to use S3",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:CallerAccount": account, "kms:ViaService": f"s3.{region}.amazonaws.com"}},
            },
            {
                "Sid": "Allow direct access to key metadata to the account",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{PARTITION}:iam::{account}:root"},
                "Action": ["kms:Describe*", "kms:Get*", "kms:List*"],
                "Resource": "*",
            },
        ],
    }


def aws_managed_secretsmanager_policy(account, region):
    """The key policy AWS gives every account's aws/secretsmanager key (Secrets
    Manager User Guide, "Secret encryption and decryption in AWS Secrets
    Manager", "Key policy of the AWS managed key (aws/secretsmanager)"): any
    principal of the account may use it through Secrets Manager
    (kms:ViaService, kms:CallerAccount), no IAM permission needed; nobody may
    use it directly."""
    return {
        "Version": "2012-10-17",
        "Id": "auto-secretsmanager-1",
        "Statement": [
            {
                "Sid": "Allow access through AWS Secrets Manager for all principals in the account that are "
                       "authorized to use AWS Secrets Manager",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {
                    "kms:ViaService": f"secretsmanager.{region}.amazonaws.com", "kms:CallerAccount": account}},
            },
            {
                "Sid": "Allow direct access to key metadata to the account",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{PARTITION}:iam::{account}:root"},
                "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"],
                "Resource": "*",
            },
        ],
    }


# The AWS managed keys the emulator knows: alias -> (description, key policy).
AWS_MANAGED_KEYS = {
    "alias/aws/s3": ("Default key that protects my S3 objects when no other key is defined", aws_managed_s3_policy),
    "alias/aws/secretsmanager": (
        "Default key that protects my Secrets Manager data when no other key is defined",
        aws_managed_secretsmanager_policy,
    ),
}


def aws_managed_key(backend, alias):
    """An account's AWS managed key (alias/aws/s3, alias/aws/secretsmanager)
    in moto's KMS backend of one account and region, made on first use as AWS
    does, with AWS's key policy (moto's own default key would allow only the
    account root, making every role need a KMS permission that AWS does not
    ask for)."""
    description, key_policy = AWS_MANAGED_KEYS[alias]
    with _managed_key_lock:
        key = next((k for k in backend.keys.values() if alias in k.aliases), None)
        if key is None:
            key = backend.create_key(None, "ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT", description, None)
            backend.create_alias(key.id, alias)
        if key.key_manager != "AWS":
            key.key_manager = "AWS"
            key.policy = json.dumps(key_policy(backend.account_id, backend.region_name))
        return key


def find_kms_key(reference, requester_account, region, default_alias):
    """(moto's KMS key, None), or (None, (KMS error code, KMS message)), for
    the key a service would call KMS with: a key id, key ARN, alias name
    (alias/x), alias ARN, or None for the AWS managed key `default_alias`.

    A key id or alias name resolves "within the requester's account"
    (ServerSideEncryptionByDefault, KMSMasterKeyID, S3 API reference; the
    KmsKeyId of CreateSecret likewise: "To use a KMS key in a different
    account, use the key ARN or the alias ARN"); an ARN names its account.
    The service calls KMS in its own Region; assumption: a key ARN of
    another Region is not found there. The messages are KMS's."""
    if reference is None:
        reference = default_alias
    if reference.startswith("arn:"):
        parts = reference.split(":", 5)
        if len(parts) != 6 or parts[2] != "kms":
            return None, ("NotFoundException", f"Invalid arn {reference}")
        key_region, account, name = parts[3], parts[4], parts[5]
    else:
        key_region, account = region, requester_account
        name = reference if reference.startswith("alias/") else f"key/{reference}"
    arn = f"arn:{PARTITION}:kms:{key_region}:{account}:{name}"
    if name.startswith("alias/"):
        missing = ("NotFoundException", f"Alias {arn} is not found.")
    else:
        missing = ("NotFoundException", f"Key '{arn}' does not exist")
    if key_region != region or not re.fullmatch(r"\d{12}", account):
        return None, missing
    try:
        backend = kms_backends[account][key_region]
    except KeyError:  # not a Region moto knows
        return None, missing
    if name in AWS_MANAGED_KEYS:
        key = aws_managed_key(backend, name)
    elif name.startswith("alias/"):
        key = next((k for k in list(backend.keys.values()) if name in k.aliases), None)
    elif name.startswith("key/"):
        key = backend.keys.get(name[len("key/"):])
    else:
        key = None
    if key is None:
        return None, missing
    if key.key_state == "PendingDeletion":
        return None, ("KMSInvalidStateException", f"{key.arn} is pending deletion.")
    if not key.enabled or key.key_state != "Enabled":
        return None, ("DisabledException", f"{key.arn} is disabled.")
    return key, None


def resolve_kms_key(reference, requester_account, region):
    """(moto's KMS key, None), or (None, S3's error answer), for a key reference
    in an S3 request or default encryption (find_kms_key; None: aws/s3).
    KMS's errors reach the caller as S3 400s with KMS's code prefixed."""
    key, problem = find_kms_key(reference, requester_account, region, "alias/aws/s3")
    if problem is not None:
        code, message = problem
        return None, s3_error(400, f"KMS.{code}", message)
    return key, None


# ---------------------------------------------------------------------------
# The middleware
# ---------------------------------------------------------------------------

class Middleware:
    def __init__(self, app):
        self.app = app
        self.endpoint = None  # set once the port is known
        self.lock = threading.Lock()  # recorder, faults, session policies and issue times
        self.key_locks = {}  # S3 path -> lock held by a conditional write (see forward)
        self.fixture_lock = threading.Lock()  # one fixture batch at a time
        self.recorded = []
        self.seed = 0
        self.rules = []
        self.fired = []
        self.random = random.Random(0)
        self.session_policies = {}  # access key id -> parsed session policy
        self.session_issued = {}  # access key id -> when AssumeRole issued it (aws:TokenIssueTime)
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
        reset_request_state()
        record = None if request.fixture else self.record(request)
        try:
            answer = None if request.fixture else self.inject_fault(request)
            if answer is None and not request.fixture and moto_auth_on():
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
            reset_request_state()
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
        """moto's answer, buffered so that it can be inspected and rewritten.

        A conditional S3 write (`If-None-Match: *` or `If-Match` on a PUT or a
        CompleteMultipartUpload) runs alone for its key. AWS checks the
        condition and writes atomically, so of concurrent writers exactly one
        succeeds and the others get `412` (S3 User Guide, "How to prevent
        object overwrites with conditional writes"). moto checks, then writes,
        unlocked, so under this threaded server two could both succeed. The
        write-once archive and the backfill claims rest on that atomicity.
        """
        conditional = request.s3 and request.method in ("PUT", "POST") and (
            "if-none-match" in request.lower_headers or "if-match" in request.lower_headers
        )
        if conditional:
            with self.key_lock(request.path):
                return self.forward_unlocked(request, environ)
        return self.forward_unlocked(request, environ)

    def key_lock(self, path):
        with self.lock:
            return self.key_locks.setdefault(path, threading.Lock())

    def forward_unlocked(self, request, environ):
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
        except Refusal as refusal:  # an after_authorized check refused
            return refusal.answer
        except Exception:  # noqa: BLE001 - a moto bug must still answer like AWS
            # e.g. a presigned URL while auth is on: moto looks for an
            # Authorization header and raises KeyError.
            traceback.print_exc()
            if request.s3:
                return s3_error(500, "InternalError", "The emulator (moto) failed on this request.")
            if request.json:
                return json_error(500, "InternalFailure", "The emulator (moto) failed on this request.")
            return query_error(500, "InternalFailure", "The emulator (moto) failed on this request.", "Receiver")
        answer = Answer(captured["status"], captured["headers"], b"".join(captured["written"]) + payload)
        return json_shaped(request, answer) if request.json else answer

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
        if request.service == "iam" and request.params.get("Action") == "CreateAccessKey" and answer.status == 200:
            # Fixture traffic too: a customer's IAM user key made by a test.
            self.audit_secret("credential", xml_text(answer.body, "SecretAccessKey"))
        if request.service == "secretsmanager":
            self.audit_secret_strings(request, answer)
        if request.s3 and request.method == "PUT" and answer.status == 200 and request.path.endswith("/external-id.json"):
            match = EXTERNAL_ID_FIELD.search(request.body)
            self.audit_secret("external_id", match and match.group(1).decode())
        if request.s3 and request.signed and request.method == "PUT" and request.key and answer.status == 200:
            self.audit_stored_object(request)
        if request.service == "sts" and request.params.get("Action") == "AssumeRole" and answer.status == 200:
            # Remember, for the credentials moto just issued, when they were
            # issued (aws:TokenIssueTime, which revocation compares) and their
            # session policy.
            access_key = xml_text(answer.body, "AccessKeyId")
            policy = parse_policy(request.params["Policy"]) if request.params.get("Policy") else None
            if access_key:
                with self.lock:
                    self.session_issued[access_key] = datetime.datetime.now(UTC)
                    if policy is not None:
                        self.session_policies[access_key] = policy
        return answer

    def audit_secret_strings(self, request, answer):
        """The secrets Secrets Manager holds: the SecretString sent by
        CreateSecret and PutSecretValue (whatever the answer: the caller had
        it) and the one GetSecretValue answers; when it is JSON with a
        `secret_access_key` (an access-key destination's credential), that
        field's value on its own too."""
        if request.operation in ("CreateSecret", "PutSecretValue"):
            document = request.body
        elif request.operation == "GetSecretValue" and answer.status == 200:
            document = answer.body
        else:
            return
        try:
            secret_string = json.loads(document or b"{}").get("SecretString")
        except (ValueError, AttributeError):
            return
        if not isinstance(secret_string, str):
            return
        self.audit_secret("credential", secret_string)
        try:
            fields = json.loads(secret_string)
        except ValueError:
            return
        if isinstance(fields, dict) and isinstance(fields.get("secret_access_key"), str):
            self.audit_secret("credential", fields["secret_access_key"])

    def audit_stored_object(self, request):
        """An object written to one of our own buckets (the account of
        DEFAULT_ACCOUNT: control and staging), for the leak audit's `stored`
        lines: no credential may ever be saved there. Compressed bodies are
        left out (parked and quarantined message content, which holds no
        credential by construction) and so are bodies over 1 MiB."""
        if not LEAK_AUDIT_DIR:
            return
        owner, _ = find_bucket(request.bucket)
        encoding = request.lower_headers.get("content-encoding", "")
        if owner != DEFAULT_ACCOUNT or "gzip" in encoding or len(request.body) > 1 << 20:
            return
        line = json.dumps({
            "kind": "stored",
            "label": f"{request.bucket}/{request.key}",
            "text": request.body.decode("utf-8", "replace"),
        }) + "\n"
        with self.lock:
            os.makedirs(LEAK_AUDIT_DIR, exist_ok=True)
            with open(os.path.join(LEAK_AUDIT_DIR, f"emulator.{os.getpid()}.jsonl"), "a", encoding="utf-8") as audit:
                audit.write(line)

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
            # Arrival, seconds since the epoch: how a test times what
            # happened between two requests (e.g. a failed write and the
            # health event it caused) on one clock.
            "at": time.time(),
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
                if rule.get("target") and rule["target"] not in (request.operation, request.target):
                    continue  # a JSON-protocol operation, e.g. "GetSecretValue"
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
        if request.json and not rule.get("code") and status == 500:
            code = JSON_INTERNAL_ERRORS.get(request.service, code)
        message = rule.get("message") or "injected fault"
        if request.s3:
            return s3_error(status, code, message)
        if request.json:
            return json_error(status, code, message)
        return query_error(status, code, message, "Receiver" if status >= 500 else "Sender")

    def faults_state(self):
        return {"seed": self.seed, "rules": self.rules, "fired": list(self.fired)}

    # ---- enforcement -------------------------------------------------------

    def enforce(self, request, environ):
        """Our refusals, or None to let moto answer (and enforce its own).

        A signed request is authenticated first, before anything else is
        decided about it (authenticate). For its caller, moto's own policy
        checks are evaluated in the same request context (see
        _install_moto_hooks)."""
        caller = None
        if request.signed:
            caller, refusal = self.authenticate(request, environ)
            if refusal is not None:
                return refusal
            _request_state.policy_view = PolicyView(caller, self.request_context(request, caller))
        if request.service == "sts" and request.params.get("Action") == "AssumeRole":
            return self.check_assume_role(request, caller)
        if request.s3 and request.bucket:
            return self.check_s3(request, environ, caller)
        if request.service == "sts" and caller is not None:
            return self.check_sts(request, caller)
        if request.service == "events" and caller is not None and request.target == "AWSEvents.PutEvents":
            return self.check_put_events(request, caller)
        if request.service == "secretsmanager" and caller is not None and request.operation in SECRET_OPERATIONS:
            return self.check_secretsmanager(request, caller)
        if request.service == "sqs" and caller is not None and request.operation in SQS_ACTIONS:
            return self.check_sqs(request, caller)
        return None

    def authenticate(self, request, environ):
        """(caller, None) for a signed request AWS would authenticate, else
        (None, its refusal): before the Region, the expected bucket owner or
        any policy, AWS establishes who signed ("Signature Version 4 signing
        process": the service looks the access key up, derives the signing
        key from its secret and compares signatures), and answers a failure
        in the service's protocol (authentication_refusal):

        * an access key nobody owns, a deleted one or an inactive one;
        * a session key without its session token (S3 then does not know the
          key either), a token that is not the session's, or a token sent
          with a long-term key (a user's or the root user's);
        * a signature the key's secret does not give (SignatureCheck).

        moto checks some of this itself, but later, after the middleware has
        already refused for other reasons, and it ignores key status."""
        caller = find_caller(request.access_key)
        if caller is None:
            return None, authentication_refusal(request, "unknown")
        if request.session_token != caller.session_token:
            problem = "unknown" if caller.is_session and request.session_token is None else "token"
            return None, authentication_refusal(request, problem)
        check = SignatureCheck(request, environ, caller)
        if not check.matches():
            return None, authentication_refusal(request, "signature", check.provided())
        return caller, None

    def check_secretsmanager(self, request, caller):
        """Secrets Manager authorises each secret operation against the
        secret's ARN (Service Authorization Reference for AWS Secrets
        Manager: CreateSecret, PutSecretValue, GetSecretValue, DeleteSecret,
        DescribeSecret and UpdateSecret all take the resource type `Secret`,
        arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-SUFFIX). moto checks
        every non-S3 action against "*", where a grant scoped to
        `secret:stored-messages/*` would refuse everything. So: explicit
        Denies in the caller's identity-based policies and in the secret's
        resource policy, an identity-based Allow, the session policy, here
        (secret_resource names the ARN); then moto's identity check runs
        against that ARN instead of "*". Refusals are the JSON
        AccessDeniedException (400) Secrets Manager answers.

        Not modelled: a secret's resource policy granting what the caller's
        identity-based policies do not (its explicit Denies do apply)."""
        try:
            parameters = json.loads(request.body or b"{}")
        except ValueError:
            return None  # moto answers the malformed body
        if not isinstance(parameters, dict):
            return None
        action = f"secretsmanager:{request.operation}"
        arn, secret = secret_resource(request.operation, parameters, request.region, caller.account)
        if arn is None:
            return None  # no name: moto answers the validation error
        context = _request_state.policy_view.context
        found, _ = evaluate(caller.identity_statements(), action, arn, context, caller)
        secret_policy = parse_policy(secret.policy) if secret is not None and getattr(secret, "policy", None) else None
        resource_verdict, _ = evaluate(statements(secret_policy), action, arn, context, caller, resource_based=True)
        reason = (
            (explicit_deny("identity-based") if found == "Deny" else None)
            or (explicit_deny("resource-based") if resource_verdict == "Deny" else None)
            or (no_allow("identity-based", action) if found != "Allow" else None)
            or self.session_refusal(caller, action, arn, context)
        )
        if reason:
            return json_error(400, "AccessDeniedException", denial(caller.arn, action, arn, reason))
        _request_state.resource = arn
        if request.operation in SECRET_KMS_OPERATIONS:
            if request.operation == "CreateSecret":
                _request_state.secret_arn = arn
            if request.operation in ("CreateSecret", "PutSecretValue") and not parameters.get("ClientRequestToken"):
                _request_state.secret_version_id = str(uuid.uuid4())
            _request_state.after_authorized = lambda: self.check_secret_kms(request, caller, parameters, arn, secret)
        return None

    def secret_kms_calls(self, operation, parameters, arn, secret):
        """(key reference or None for aws/secretsmanager, [(KMS action,
        SecretVersionId)]) of the KMS calls Secrets Manager makes for this
        request, or None when it makes none or moto answers an error first
        (no such secret or version, a secret marked deleted, a name taken).

        "Secret encryption and decryption in AWS Secrets Manager" (Secrets
        Manager User Guide; KMS Developer Guide, "How AWS Secrets Manager
        uses AWS KMS"): CreateSecret and PutSecretValue call GenerateDataKey
        for a new secret value (SecretString or SecretBinary); a PutSecretValue
        whose ClientRequestToken names an existing version calls Decrypt to
        compare the values instead ("This action ensures that Secrets Manager
        operations are idempotent"); GetSecretValue calls Decrypt. "When you
        establish or change the KMS key that is associated with secret,
        Secrets Manager calls the GenerateDataKey and Decrypt operations with
        the specified KMS key", SecretVersionId `RequestToValidateKeyAccess`:
        CreateSecret with KmsKeyId. A version's id is the ClientRequestToken
        (else the one check_secretsmanager drew for moto to use).

        Assumption: a CreateSecret whose name is taken is answered
        (ResourceExistsException, or moto's idempotent answer) before any KMS
        call. Not modelled: UpdateSecret (which we do not call with a value
        or a key) and the key of an older version after a key change: every
        version is read with the secret's current KmsKeyId."""
        has_value = parameters.get("SecretString") is not None or parameters.get("SecretBinary") is not None
        if operation == "CreateSecret":
            backend = self.secrets_backend(arn)
            if backend is not None and parameters.get("Name") in backend.secrets:
                return None
            reference = parameters.get("KmsKeyId") or None
            calls = []
            if reference is not None:
                calls += [("kms:GenerateDataKey", "RequestToValidateKeyAccess"), ("kms:Decrypt", "RequestToValidateKeyAccess")]
            if has_value:
                calls.append(("kms:GenerateDataKey", parameters.get("ClientRequestToken") or _request_state.secret_version_id))
            return (reference, calls) if calls else None
        if secret is None or not hasattr(secret, "kms_key_id") or secret.is_deleted():
            return None
        reference = secret.kms_key_id or None
        if operation == "PutSecretValue":
            if not has_value:
                return None
            token = parameters.get("ClientRequestToken")
            if token and token in secret.versions:
                return reference, [("kms:Decrypt", token)]
            return reference, [("kms:GenerateDataKey", token or _request_state.secret_version_id)]
        # GetSecretValue: the version moto will answer, as moto finds it.
        version_id, stage = parameters.get("VersionId"), parameters.get("VersionStage")
        if not version_id:
            stage = stage or "AWSCURRENT"
            version_id = next(
                (vid for vid, version in secret.versions.items() if stage in version.get("version_stages", [])), None
            )
        version = secret.versions.get(version_id) if isinstance(version_id, str) else None
        if version is None or (stage and stage not in version.get("version_stages", [])):
            return None
        return reference, [("kms:Decrypt", version_id)]

    @staticmethod
    def secrets_backend(arn):
        """moto's Secrets Manager backend of a secret ARN's account and
        Region, None when it has none yet (then it holds no secret)."""
        parts = arn.split(":", 6)
        if len(parts) < 7 or parts[4] not in secretsmanager_backends:
            return None
        try:
            return secretsmanager_backends[parts[4]][parts[3]]
        except KeyError:  # not a Region moto knows
            return None

    def check_secret_kms(self, request, caller, parameters, arn, secret):
        """The KMS calls Secrets Manager makes as the caller, once the Secrets
        Manager action itself is authorised (secret_kms_calls): "When Secrets
        Manager uses a KMS key in cryptographic operations, it acts on behalf
        of the user who is creating or changing the secret value", who "must
        have the following permissions ... kms:GenerateDataKey, kms:Decrypt"
        (Secrets Manager User Guide, "Secret encryption and decryption in AWS
        Secrets Manager", "Permissions for the KMS key"). Each is decided as
        for S3's SSE-KMS (kms_refusal: key policy, identity-based policies
        when the key policy delegates to IAM or the key is another account's,
        session policy) in KMS's request context: kms:ViaService
        `secretsmanager.REGION.amazonaws.com`, kms:CallerAccount, and the
        encryption context SecretARN (the secret's ARN) and SecretVersionId
        ("Secrets Manager encryption context"). Without KmsKeyId the key is
        the account's AWS managed aws/secretsmanager, whose key policy lets
        every principal of the account use it through Secrets Manager, no
        IAM permission needed.

        Answers, as Secrets Manager gives them (400, JSON):
        * KMS refuses: AccessDeniedException "Access to KMS is not allowed"
          (what Secrets Manager answers CreateSecret and GetSecretValue then,
          e.g. aws/aws-cdk#7677, external-secrets#838: it does not pass on
          KMS's message);
        * the key does not exist (an id or alias name resolves in the
          secret's account), is disabled or pending deletion: on CreateSecret
          and PutSecretValue EncryptionFailure ("Secrets Manager can't encrypt
          the protected secret text using the provided KMS key. Check that
          the KMS key is available, enabled, and not in an invalid state",
          API reference), on GetSecretValue DecryptionFailure, the message
          carrying KMS's as Secrets Manager was seen to: `Secrets Manager
          can't encrypt the secret value: Key 'ARN' does not exist (Service:
          AWSKMS; Status Code: 400; Error Code: NotFoundException; Request
          ID: ...)`. Assumptions: the codes (the API reference lists
          EncryptionFailure, DecryptionFailure and ResourceNotFoundException
          for CreateSecret; the last is about the secret), the decrypting
          message (`... can't decrypt the secret value: ...`), and that the
          key's state is checked before its policies, as for S3."""
        planned = self.secret_kms_calls(request.operation, parameters, arn, secret)
        if planned is None:
            return None
        reference, calls = planned
        parts = arn.split(":", 6)
        region, account = parts[3], parts[4]
        key, problem = find_kms_key(reference, account, region, "alias/aws/secretsmanager")
        if problem is not None:
            code, message = problem
            kms_error = (f"{message} (Service: AWSKMS; Status Code: 400; Error Code: {code}; "
                         f"Request ID: {uuid.uuid4()})")
            if request.operation == "GetSecretValue":
                return json_error(400, "DecryptionFailure", f"Secrets Manager can't decrypt the secret value: {kms_error}")
            return json_error(400, "EncryptionFailure", f"Secrets Manager can't encrypt the secret value: {kms_error}")
        for action, version_id in calls:
            context = dict(_request_state.policy_view.context)
            context.update({
                # "AWS KMS condition keys", https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html
                "kms:viaservice": f"secretsmanager.{region}.amazonaws.com",
                "kms:calleraccount": caller.account,
                "kms:encryptioncontext:secretarn": arn,
                "kms:encryptioncontextkeys": ["SecretARN", "SecretVersionId"],
                "kms:resourcealiases": sorted(key.aliases),
            })
            if version_id:
                context["kms:encryptioncontext:secretversionid"] = version_id
            if self.kms_refusal(caller, key, action, context):
                return json_error(400, "AccessDeniedException", "Access to KMS is not allowed")
        return None

    def check_put_events(self, request, caller):
        """EventBridge authorises PutEvents against the event bus each entry
        names: the Service Authorization Reference for Amazon EventBridge
        lists PutEvents with the resource type `event-bus`, and an entry
        without EventBusName goes to the account's `default` bus. moto
        checks every non-S3 action against the resource "*", where a grant
        scoped to one bus (what our SAM template gives the functions) would
        refuse every event. So: explicit identity-based Denies and the
        session policy here, per bus; then moto's identity check runs
        against the (first) bus ARN instead of "*"."""
        try:
            entries = json.loads(request.body or b"{}").get("Entries") or []
        except (ValueError, AttributeError):
            return None  # moto answers the malformed body
        context = _request_state.policy_view.context
        buses = []
        for entry in entries:
            bus = (entry.get("EventBusName") if isinstance(entry, dict) else None) or "default"
            arn = bus if bus.startswith("arn:") else f"arn:aws:events:{request.region}:{caller.account}:event-bus/{bus}"
            if arn not in buses:
                buses.append(arn)
        for arn in buses:
            found, _ = evaluate(caller.identity_statements(), "events:PutEvents", arn, context, caller)
            reason = (
                explicit_deny("identity-based") if found == "Deny" else None
            ) or (
                no_allow("identity-based", "events:PutEvents") if found != "Allow" else None
            ) or self.session_refusal(caller, "events:PutEvents", arn, context)
            if reason:
                return json_error(400, "AccessDeniedException", denial(caller.arn, "events:PutEvents", arn, reason))
        if buses:
            _request_state.resource = buses[0]
        return None

    def check_sqs(self, request, caller):
        """SQS authorises each queue operation (SQS_ACTIONS) against the
        queue's ARN, arn:aws:sqs:REGION:ACCOUNT:NAME (sqs_queue). moto checks
        only the caller's identity-based policies, against the ARN of a queue
        of that name in the caller's own account (or "*"), under the batch
        operations' own names, and never the queue's policy. Here, as AWS
        decides (sqs_refusal): explicit Denies in the identity-based policies,
        the queue's policy and the session policy; an Allow from the
        identity-based policies or, for a caller of the queue's own account,
        the queue's policy; both for a caller from another account. Refusals
        are SQS's (sqs_access_denied). Then moto's identity check runs
        against the queue ARN (skipped when the queue's policy alone granted),
        on the queue's account's backend.

        The request context is the global one (request_context): "Amazon
        SQS supports the global condition context keys available in IAM"
        and none of its own. Not modelled: the KMS permissions an SSE-KMS
        queue needs, and the awsQuery protocol (form `Action=SendMessage`,
        which neither aws-sdk-sqs nor the pinned botocore speaks; moto alone
        checks those, against the queue of that name in the caller's
        account)."""
        try:
            parameters = json.loads(request.body or b"{}")
        except ValueError:
            return None  # moto answers the malformed body
        if not isinstance(parameters, dict):
            return None
        located = sqs_queue(request.operation, parameters, request.region, caller.account)
        if located is None:
            return None
        arn, owner, queue = located
        action = SQS_ACTIONS[request.operation]
        context = _request_state.policy_view.context
        queue_policy = parse_policy(queue.policy) if queue is not None and queue.policy else None
        reason, queue_alone = self.sqs_refusal(caller, action, arn, owner, queue_policy, context)
        if reason:
            # SQS names the action in lower case (see sqs_access_denied).
            return sqs_access_denied(denial(caller.arn, action.lower(), arn, reason))
        _request_state.resource = arn
        _request_state.resource_granted = queue_alone
        if owner != caller.account:
            _request_state.queue_owner = owner
        return None

    def sqs_refusal(self, caller, action, arn, owner, queue_policy, context):
        """(why AWS refuses `action` on the queue for this caller, or None;
        whether the queue's policy alone grants it).

        "Troubleshoot an access denied error in Amazon SQS" (SQS Developer
        Guide): "If the IAM principal is from the same account, then either
        the Amazon SQS queue policy or the AWS Identity and Access Management
        (IAM) policy must include permissions to explicitly allow access"; "If
        the principal is a cross-account principal, then both ... must
        explicitly allow access"; an explicit Deny in either wins. As IAM
        evaluates resource-based policies ("Policy evaluation logic"): a queue
        policy naming the caller's account (root ARN or id) delegates to the
        identity-based policies, so only one naming the caller itself (its
        user, role or session ARN, or "*") grants alone; a session policy
        limits every grant but one naming the session's ARN.

        Order of reasons when several apply, as elsewhere here: explicit Deny
        in an identity-based, resource-based, session policy; then no
        identity-based Allow, no resource-based Allow, no session-policy
        Allow. Messages name the action in lower case, as SQS does."""
        spoken = action.lower()
        identity, _ = evaluate(caller.identity_statements(), action, arn, context, caller)
        queue_verdict, named = evaluate(statements(queue_policy), action, arn, context, caller, resource_based=True)
        with self.lock:
            session_policy = self.session_policies.get(caller.access_key)
        session = evaluate(statements(session_policy), action, arn, context, caller)[0] if session_policy else None

        if identity == "Deny":
            return explicit_deny("identity-based"), False
        if queue_verdict == "Deny":
            return explicit_deny("resource-based"), False
        if session == "Deny":
            return explicit_deny("session"), False
        same_account = owner == caller.account
        queue_alone = same_account and queue_verdict == "Allow" and named in ("direct", "session")
        if identity != "Allow" and not queue_alone:
            return no_allow("identity-based", spoken), False
        if not same_account and queue_verdict != "Allow":
            return no_allow("resource-based", spoken), False
        if session_policy is not None and not (queue_alone and named == "session") and session != "Allow":
            return no_allow("session", spoken), False
        return None, queue_alone and identity != "Allow"

    def request_context(self, request, caller):
        """The condition keys AWS would put in this request's context ("AWS
        global condition context keys",
        https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html,
        and each service's keys in the Service Authorization Reference); a
        key absent here is absent from the request. `caller` None: anonymous."""
        now = datetime.datetime.now(UTC)
        context = {
            "aws:currenttime": iso_time(now),
            "aws:epochtime": str(int(now.timestamp())),
            # Assumption: "true". The emulator is plain HTTP on loopback, but it
            # stands in for AWS's HTTPS endpoints, and our clients speak only
            # HTTPS outside emulation; "false" would fire every customer's
            # `Bool aws:SecureTransport false` Deny.
            "aws:securetransport": "true",
        }
        if request.region:
            context["aws:requestedregion"] = request.region
        if caller is not None:
            context["aws:principalarn"] = caller.principal_arn
            context["aws:principalaccount"] = caller.account
            context["aws:userid"] = caller.user_id
            if caller.is_root:
                context["aws:principaltype"] = "Account"
            elif caller.is_session:
                context["aws:principaltype"] = "AssumedRole"
                with self.lock:
                    issued = self.session_issued.get(caller.access_key)
                if issued is not None:
                    context["aws:tokenissuetime"] = iso_time(issued)
            else:
                context["aws:principaltype"] = "User"
                context["aws:username"] = caller.user.name
        if request.s3:
            context.update(s3_request_context(request))
        if request.service == "sts" and request.params.get("Action") == "AssumeRole":
            context["sts:externalid"] = request.params.get("ExternalId")  # None (absent) when not sent
            context["sts:rolesessionname"] = request.params.get("RoleSessionName")
        return context

    def identity_refusal(self, caller, action, resource, context):
        """AWS's reason to refuse `action` for an explicit Deny in the caller's
        identity-based policies (the inline AWSRevokeOlderSessions policy of
        POST /_sm/revoke-sessions among them), or None."""
        found, _ = evaluate(caller.identity_statements(), action, resource, context, caller)
        return explicit_deny("identity-based") if found == "Deny" else None

    def session_refusal(self, caller, action, resource, context):
        """AWS's reason to refuse `action` because of the session policy passed
        to AssumeRole, or None. A session policy limits everything the session
        may do: what it does not allow, the session may not do, whatever the
        role's policies say ("Session policies",
        https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies_session)."""
        with self.lock:
            policy = self.session_policies.get(caller.access_key)
        if policy is None:
            return None
        found, _ = evaluate(statements(policy), action, resource, context, caller)
        if found == "Deny":
            return explicit_deny("session")
        return None if found == "Allow" else no_allow("session", action)

    def check_sts(self, request, caller):
        """STS calls other than AssumeRole: explicit identity-based Denies
        (a revoked session). sts:GetCallerIdentity stays allowed, as on AWS:
        "No permissions are required to perform this operation. If an
        administrator attaches a policy to your identity that explicitly
        denies access to the sts:GetCallerIdentity action, you can still
        perform this operation" (STS API reference, GetCallerIdentity)."""
        name = request.params.get("Action")
        if name == "GetCallerIdentity" and caller.is_root:
            return caller_identity_answer(caller)  # moto would answer its made-up user/moto
        if not name or name == "GetCallerIdentity":
            return None
        action = f"sts:{name}"
        reason = self.identity_refusal(caller, action, "*", _request_state.policy_view.context)
        if reason:
            return query_error(403, "AccessDenied", denial(caller.arn, action, "*", reason))
        return None

    def check_assume_role(self, request, caller):
        """sts:AssumeRole as AWS decides it, in this order: DurationSeconds
        within 900..43200 (parameter validation comes first); explicit Denies
        in the caller's identity-based policies (a revoked session), then in
        its session policy; its session policy allowing sts:AssumeRole; the
        role's trust policy. moto then checks the signature and that the
        caller's identity policy allows sts:AssumeRole, and after that the
        session-duration limits of check_session_duration apply."""
        role_arn = request.params.get("RoleArn", "")
        if caller.is_root:
            # AWS refuses AssumeRole to the root user: it must be called
            # with an IAM user's or a role's credentials (AssumeRole API
            # reference, and "Methods to assume a role"); STS's answer.
            return query_error(403, "AccessDenied", "Roles may not be assumed by root accounts.")
        duration = request.params.get("DurationSeconds")
        if duration is not None and re.fullmatch(r"-?\d+", duration.strip()):
            # STS's parameter validation: "Valid Range: Minimum value of 900.
            # Maximum value of 43200." (AssumeRole API reference).
            seconds = int(duration)
            if not 900 <= seconds <= 43200:
                bound = "greater than or equal to 900" if seconds < 900 else "less than or equal to 43200"
                return query_error(
                    400,
                    "ValidationError",
                    f"1 validation error detected: Value '{seconds}' at 'durationSeconds' "
                    f"failed to satisfy constraint: Member must have value {bound}",
                )
        context = _request_state.policy_view.context
        reason = self.identity_refusal(caller, "sts:AssumeRole", role_arn, context) or self.session_refusal(
            caller, "sts:AssumeRole", role_arn, context
        )
        if reason:
            return query_error(403, "AccessDenied", denial(caller.arn, "sts:AssumeRole", role_arn, reason))

        denied = query_error(
            403,
            "AccessDenied",
            f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
        )
        role = find_role(role_arn)
        policy = parse_policy(role.assume_role_policy_document) if role is not None else None
        if policy is None:
            return denied
        found, _ = evaluate(statements(policy), "sts:AssumeRole", None, context, caller, resource_based=True)
        if found != "Allow":
            return denied
        if "Policy" in request.params and parse_policy(request.params["Policy"]) is None:
            return query_error(400, "MalformedPolicyDocument", "The session policy is not valid JSON.")
        _request_state.trust_checked = True
        if duration is not None and re.fullmatch(r"\d+", duration.strip()):
            _request_state.after_authorized = lambda: check_session_duration(caller, role, int(duration))
        return None

    def check_s3(self, request, environ, caller):
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

        # AWS's policy evaluation: an explicit Deny in any policy wins, then
        # the session policy must allow. Reported in this order: identity-
        # based, resource-based (the bucket policy), session policy. moto then
        # checks the identity-based Allow (evaluated by `evaluate` through the
        # hooks), and after it check_sse_kms runs.
        context = _request_state.policy_view.context
        bucket_policy = parse_policy(bucket.policy) if bucket is not None and bucket.policy else None
        bucket_verdict, _ = evaluate(statements(bucket_policy), action, resource, context, caller, resource_based=True)
        reason = (
            self.identity_refusal(caller, action, resource, context)
            or (explicit_deny("resource-based") if bucket_verdict == "Deny" else None)
            or self.session_refusal(caller, action, resource, context)
        )
        if reason:
            return s3_error(403, "AccessDenied", denial(caller.arn, action, f'"{resource}"', reason))
        if bucket is not None and request.key is not None and creates_object(request):
            _request_state.after_authorized = lambda: self.check_sse_kms(request, caller, bucket)
        return None

    def check_sse_kms(self, request, caller, bucket):
        """The KMS call S3 makes, as the caller, to encrypt a new object with
        SSE-KMS (AWS: "Using server-side encryption with AWS KMS keys
        (SSE-KMS)", https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html:
        "To upload an object encrypted with an AWS KMS key to Amazon S3, you
        need kms:GenerateDataKey permissions on the key"). None when the
        object needs no KMS key or the caller may use it, else S3's answer.

        Assumption: with an S3 Bucket Key, S3 reuses a bucket-level data key
        for a while and need not call KMS for every object; we check every
        write, so that a missing permission shows on the first one, not at
        some later object."""
        encryption = effective_encryption(request.lower_headers, bucket)
        if encryption is None:
            return None
        key_reference, bucket_key = encryption
        key, problem = resolve_kms_key(key_reference, caller.account, bucket.region_name)
        if problem is not None:
            return problem
        object_arn = f"arn:aws:s3:::{bucket.name}/{request.key}"
        context = dict(_request_state.policy_view.context)
        context.update({
            # "AWS KMS condition keys", https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html
            "kms:viaservice": f"s3.{bucket.region_name}.amazonaws.com",
            "kms:calleraccount": caller.account,
            # With S3 Bucket Keys the encryption context is the bucket's ARN
            # ("Reducing the cost of SSE-KMS with Amazon S3 Bucket Keys").
            "kms:encryptioncontext:aws:s3:arn": f"arn:aws:s3:::{bucket.name}" if bucket_key else object_arn,
            "kms:encryptioncontextkeys": ["aws:s3:arn"],
            "kms:resourcealiases": sorted(key.aliases),
        })
        reason = self.kms_refusal(caller, key, "kms:GenerateDataKey", context)
        if reason:
            return s3_error(403, "AccessDenied", denial(caller.arn, "kms:GenerateDataKey", key.arn, reason))
        return None

    def kms_refusal(self, caller, key, action, context):
        """Why AWS refuses `action` on a KMS key for this caller, or None.

        "Determining access to AWS KMS keys"
        (https://docs.aws.amazon.com/kms/latest/developerguide/determining-access.html)
        and "Specifying KMS keys in IAM policy statements"
        (https://docs.aws.amazon.com/kms/latest/developerguide/cmks-in-iam-policies.html):
        the key policy must allow the caller, either by naming its principal
        (role or user ARN, the session ARN, or "*") or by naming its account
        (root ARN or id), which delegates to IAM: then the caller's
        identity-based policies must allow too. A caller from another account
        than the key's always needs both. Resource is matched against the KEY
        ARN (an alias ARN in Resource matches no key). A session policy then
        limits the result, except for a grant that names the session's own ARN
        ("Session policies": such permissions "are not limited by the session
        policy"); a key policy with Principal "*" counts as limited
        (assumption: "*" does not name the session). An explicit Deny in any
        of them wins.

        Order of reasons when several apply (the message names one):
        explicit Deny in an identity-based, then resource-based, then session
        policy; then no identity-based Allow (where one is needed), no
        resource-based Allow, no session-policy Allow."""
        identity, _ = evaluate(caller.identity_statements(), action, key.arn, context, caller)
        key_policy, named = evaluate(
            statements(parse_policy(key.policy)), action, key.arn, context, caller, resource_based=True
        )
        with self.lock:
            session_policy = self.session_policies.get(caller.access_key)
        session = evaluate(statements(session_policy), action, key.arn, context, caller)[0] if session_policy else None

        if identity == "Deny":
            return explicit_deny("identity-based")
        if key_policy == "Deny":
            return explicit_deny("resource-based")
        if session == "Deny":
            return explicit_deny("session")
        key_grants_alone = key_policy == "Allow" and named in ("direct", "session") and key.account_id == caller.account
        if not key_grants_alone and identity != "Allow":
            return no_allow("identity-based", action)
        if key_policy != "Allow":
            return no_allow("resource-based", action)
        if session_policy is not None and named != "session" and session != "Allow":
            return no_allow("session", action)
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
        context = self.request_context(request, None)
        if action not in ("s3:GetObject", "s3:ListBucket") or not self.public(bucket, request.key, action, resource, context):
            return s3_error(403, "AccessDenied", "Access Denied")
        if action == "s3:GetObject" and request.key not in bucket.keys:
            # S3 tells a missing key from a forbidden one only to those who
            # may list the bucket.
            if not self.public(bucket, None, "s3:ListBucket", f"arn:aws:s3:::{request.bucket}", context):
                return s3_error(403, "AccessDenied", "Access Denied")
        # Public: moto serves it, its authentication skipped for this request,
        # and its own anonymous pre-check of the bucket policy evaluated in
        # the same context. It asks the bucket policy for "s3:HeadObject", so a
        # HEAD goes in as a GET (the body is not sent).
        _request_state.anonymous_granted = True
        _request_state.policy_view = PolicyView(None, context)
        if request.method == "HEAD" and request.key is not None:
            environ["REQUEST_METHOD"] = "GET"
        return None

    @staticmethod
    def public(bucket, key_name, action, resource, context):
        """Whether everyone may perform `action`, by bucket policy or ACL."""
        block = bucket.public_access_block
        policy = parse_policy(bucket.policy) if bucket.policy else None
        found, _ = evaluate(statements(policy), action, resource, context, None, resource_based=True)
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
        POST   /_sm/revoke-sessions  {"role_arn": "arn:aws:iam::ACCOUNT:role/NAME"}
                              -> {"role_arn", "revoked_before": "2025-01-31T12:34:56.789012Z"}
                                 or 404 {"error"} for a role that does not exist
        POST   /_sm/root-access-key  {"account": "111122223333"}
                              -> {"access_key_id": "AKIA...", "secret_access_key": "..."}
                                 or 400 {"error"} unless the account is 12 digits

        A fault rule is {"action": "status"|"delay"|"reset", filters...,
        "status", "code", "message", "seconds", "probability", "count"}; the
        filters (service, method, path_prefix, action_param, target) and the
        answers' shapes are described at validate_rules.

        root-access-key makes an access key of the account's root user, which
        moto cannot make (AWS lets only the root user itself create one, in
        the console: "Create access keys for the root user"). A request
        signed with it is the root user: sts:GetCallerIdentity answers Arn
        arn:aws:iam::ACCOUNT:root, Account and UserId ACCOUNT; its identity
        may do anything (no policy limits the root user), resource policies'
        explicit Denies still apply, and sts:AssumeRole is refused ("Roles
        may not be assumed by root accounts."). The key id is shaped like
        AWS's (AKIA and 16 upper-case letters and digits) and maps to the
        account; a moto reset forgets it.

        revoke-sessions is the IAM console's "Revoke active sessions"
        (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_revoke-sessions.html):
        it puts on the role the inline policy AWSRevokeOlderSessions that AWS
        puts, denying every action to sessions whose aws:TokenIssueTime is
        before `revoked_before` (now, to the microsecond; revoking again moves
        it). From then on every signed request of such a session answers 403
        AccessDenied, "User: SESSION_ARN is not authorized to perform: ACTION
        on resource: RESOURCE with an explicit deny in an identity-based
        policy" (S3's shape for S3, with the resource in double quotes; STS's
        awsQuery shape for STS, as for AssumeRole). sts:GetCallerIdentity
        still answers, as on AWS. Sessions issued afterwards work normally.
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
            if route == ("POST", "/_sm/revoke-sessions"):
                return self.revoke_sessions(json.loads(request.body)["role_arn"])
            if route == ("POST", "/_sm/root-access-key"):
                return self.root_access_key(json.loads(request.body)["account"])
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            return json_answer({"error": f"bad request: {err}"}, 400)
        return json_answer({"error": f"no route {request.method} {request.path}"}, 404)

    def root_access_key(self, account):
        """POST /_sm/root-access-key (see `internal`)."""
        if not isinstance(account, str) or not re.fullmatch(r"\d{12}", account):
            return json_answer({"error": f"bad request: an account is 12 digits, not {account!r}"}, 400)
        key = create_root_access_key(account)
        self.audit_secret("credential", key.secret_access_key)
        return json_answer({"access_key_id": key.access_key_id, "secret_access_key": key.secret_access_key})

    def revoke_sessions(self, role_arn):
        """POST /_sm/revoke-sessions (see `internal`)."""
        role = find_role(str(role_arn))
        if role is None:
            return json_answer({"error": f"no role {role_arn}"}, 404)
        revoked_before = iso_time(datetime.datetime.now(UTC))
        # As the IAM console writes it (with microseconds: sessions issued in
        # the same second before and after the revocation must differ).
        revocation = {
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Deny",
                "Action": ["*"],
                "Resource": ["*"],
                "Condition": {"DateLessThan": {"aws:TokenIssueTime": revoked_before}},
            }],
        }
        role.put_policy(REVOCATION_POLICY, json.dumps(revocation))
        return json_answer({"role_arn": role.arn, "revoked_before": revoked_before})

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
    "service", "method", "path_prefix", "action_param", "target",
    # what fires, how often
    "action", "status", "code", "message", "seconds", "probability", "count",
}


def validate_rules(rules):
    """Refuses unknown fields: a misspelt filter would silently widen a rule.

    Filters (all must match; absent or null matches anything): `service`
    (the SigV4 scope's, "s3" for unsigned requests), `method`,
    `path_prefix`, `action_param` (an STS/IAM query operation, e.g.
    "AssumeRole"), `target` (a JSON-protocol operation, the X-Amz-Target
    header's part after the dot, e.g. "GetSecretValue", or the whole
    header). A status fault answers in the request's protocol: S3's XML,
    the JSON services' {"__type", "message"} (a 500 without `code` is the
    service's own internal error, e.g. Secrets Manager's
    InternalServiceError), else STS's awsQuery XML."""
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
