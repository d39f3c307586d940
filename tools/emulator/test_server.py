"""The emulator's own promises, proven with boto3 (and raw HTTP where the exact
wire shape matters): whatever it enforces beyond moto must really be enforced,
or the Rust integration tests that lean on it prove nothing.

Run from the repository root:
    .venv/bin/python -m unittest tools/emulator/test_server.py
"""

import concurrent.futures
import http.client
import importlib.util
import json
import os
import random
import signal
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import xml.etree.ElementTree as ElementTree

import boto3
import botocore.config
from botocore import UNSIGNED
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, HTTPClientError

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "server.py")

VENDOR_ACCOUNT = "123456789012"
VENDOR_ARN = f"arn:aws:iam::{VENDOR_ACCOUNT}:user/vendor"
CUSTOMER = "111122223333"
BUCKET = "acme-archive"
REGION = "eu-west-1"
ROLE = "stored-messages-acme"
XID = "ExternalIdForTheEmulatorTests0123456789"
STS_XMLNS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
NO_RETRIES = {"mode": "standard", "total_max_attempts": 1}
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
WHO_AM_I = b"Action=GetCallerIdentity&Version=2011-06-15"
UNKNOWN_KEY = Credentials("AKIAUNKNOWNUNKNOWN00", "secret")
INVALID_TOKEN = "The security token included in the request is invalid."
SIGNATURE_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
# The functions' own role and the secrets it may manage (the SAM template's grant).
FUNCTIONS_ROLE = "stored-messages-functions"
SECRETS = f"arn:aws:secretsmanager:*:{VENDOR_ACCOUNT}:secret:stored-messages/*"
# Secrets Manager calls KMS as its caller; this is its kms:ViaService (in us-east-1, where the tests keep secrets).
THROUGH_SECRETS_MANAGER = {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}
# ... and the SAM template's grant of our key to the functions: through Secrets Manager only.
SECRETS_KEY_USE = {"Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                   "Resource": f"arn:aws:kms:us-east-1:{VENDOR_ACCOUNT}:key/*", "Condition": THROUGH_SECRETS_MANAGER}
NO_KMS = "Access to KMS is not allowed"


def start_server(env=None):
    """The server as the Rust harness starts it; returns (process, endpoint)."""
    process = subprocess.Popen(
        [sys.executable, SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=None if env is None else {**os.environ, **env},
    )
    line = process.stdout.readline().decode()
    if not line.startswith("READY "):
        process.kill()
        raise RuntimeError(f"the emulator did not start: {line!r}")
    return process, f"http://127.0.0.1:{int(line.split()[1])}"


def trust(principal, condition=None, action="sts:AssumeRole", effect="Allow"):
    statement = {"Effect": effect, "Principal": principal, "Action": action}
    if condition:
        statement["Condition"] = condition
    return statement


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


class Harness:
    """Talking to a running emulator: `host` and `endpoint` set by the test
    class; plain HTTP, SigV4-signed raw requests, fixtures, boto3 clients."""

    @classmethod
    def raw(cls, method, path, body=b"", headers=None):
        """One plain HTTP exchange: (status, headers, body)."""
        connection = http.client.HTTPConnection(cls.host, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    @classmethod
    def signed(cls, method, path, service, region, credentials, body=b"", headers=None):
        """A SigV4-signed raw request, for asserting exact wire answers."""
        request = AWSRequest(method=method, url=cls.endpoint + path, data=body, headers=dict(headers or {}))
        (S3SigV4Auth if service == "s3" else SigV4Auth)(credentials, service, region).add_auth(request)
        prepared = request.prepare()
        return cls.raw(method, path, prepared.body or b"", dict(prepared.headers))

    @classmethod
    def call(cls, method, path, body=None):
        status, _, payload = cls.raw(method, path, json.dumps(body).encode() if body is not None else b"")
        return status, json.loads(payload)

    @classmethod
    def fixture(cls, account, region, calls):
        status, answer = cls.call("POST", "/_sm/aws", {"account": account, "region": region, "calls": calls})
        assert status == 200, answer
        return answer["results"]

    @classmethod
    def customer_role(cls, name, *statements, account=CUSTOMER, permissions=None):
        permissions = permissions or policy({"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"})
        cls.fixture(account, REGION, [
            {"service": "iam", "op": "create_role", "args": {"RoleName": name, "AssumeRolePolicyDocument": policy(*statements)}},
            {"service": "iam", "op": "put_role_policy", "args": {"RoleName": name, "PolicyName": "write", "PolicyDocument": permissions}},
        ])

    @classmethod
    def bucket(cls, name, account=CUSTOMER, region=REGION):
        cls.fixture(account, region, [
            {"service": "s3", "op": "create_bucket", "args": {"Bucket": name, "CreateBucketConfiguration": {"LocationConstraint": region}}},
        ])

    @classmethod
    def kms_key(cls, account=CUSTOMER, region=REGION, key_policy=None, alias=None):
        """A KMS key made by fixture (moto's default key policy: the account
        root may do kms:*); its KeyMetadata."""
        args = {"Description": "emulator test key"}
        if key_policy is not None:
            args["Policy"] = key_policy
        metadata = cls.fixture(account, region, [{"service": "kms", "op": "create_key", "args": args}])[0]["KeyMetadata"]
        if alias:
            cls.fixture(account, region, [
                {"service": "kms", "op": "create_alias", "args": {"AliasName": alias, "TargetKeyId": metadata["KeyId"]}},
            ])
        return metadata

    def session_arn(self, role, account=CUSTOMER):
        return f"arn:aws:sts::{account}:assumed-role/{role}/tests"

    def client(self, service, credentials, region="us-east-1", **config):
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id=credentials.access_key,
            aws_secret_access_key=credentials.secret_key,
            aws_session_token=credentials.token,
            config=botocore.config.Config(s3={"addressing_style": "path"}, retries=NO_RETRIES, **config),
        )

    def assume(self, role, account=CUSTOMER, caller=None, **extra):
        sts = self.client("sts", caller or self.vendor_key)
        answer = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="tests", **extra)["Credentials"]
        return Credentials(answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"])

    def s3(self, credentials, region=REGION):
        return self.client("s3", credentials, region)

    def assertRefused(self, call, code="AccessDenied", status=403):
        with self.assertRaises(ClientError) as caught:
            call()
        error = caught.exception.response
        self.assertEqual((error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]), (code, status))
        return error

    def requests(self, **match):
        status, recorded = self.call("GET", "/_sm/requests")
        self.assertEqual(status, 200)
        return [r for r in recorded if all(r[k] == v for k, v in match.items())]

    @staticmethod
    def header(record, name):
        return next((v for k, v in record["headers"].items() if k.lower() == name), None)

    @classmethod
    def user_key(cls, name, *statements, account=VENDOR_ACCOUNT):
        """A new IAM user (with an inline policy of `statements`, if any) and
        an access key of it."""
        calls = [{"service": "iam", "op": "create_user", "args": {"UserName": name}}]
        if statements:
            calls.append({"service": "iam", "op": "put_user_policy", "args": {
                "UserName": name, "PolicyName": "inline", "PolicyDocument": policy(*statements)}})
        calls.append({"service": "iam", "op": "create_access_key", "args": {"UserName": name}})
        key = cls.fixture(account, "us-east-1", calls)[-1]["AccessKey"]
        return Credentials(key["AccessKeyId"], key["SecretAccessKey"])

    def root_key(self, account=CUSTOMER):
        status, answer = self.call("POST", "/_sm/root-access-key", {"account": account})
        self.assertEqual(status, 200, answer)
        return Credentials(answer["access_key_id"], answer["secret_access_key"])

    def json_call(self, service, target, credentials, body, region="us-east-1"):
        """A signed raw JSON-protocol request: (status, headers, parsed body)."""
        headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
        status, answer_headers, payload = self.signed("POST", "/", service, region, credentials, json.dumps(body).encode(), headers)
        return status, answer_headers, json.loads(payload)

    def assertJsonError(self, answer, status, code, message=None):
        """A JSON-protocol refusal as aws-sdk-rust parses it: `__type` and
        `message` in the body, the code in x-amzn-ErrorType too."""
        got_status, headers, body = answer
        self.assertEqual((got_status, body["__type"]), (status, code), body)
        self.assertEqual(headers["x-amzn-ErrorType"], code)
        self.assertTrue(headers["Content-Type"].startswith("application/x-amz-json-1."))
        if message is not None:
            self.assertEqual(body["message"], message)
        return body

    def assertQueryError(self, answer, status, code, message=None):
        got_status, _, payload = answer
        root = ElementTree.fromstring(payload)
        self.assertEqual(root.tag, f"{STS_XMLNS}ErrorResponse", payload)
        error = root.find(f"{STS_XMLNS}Error")
        self.assertEqual((got_status, error.findtext(f"{STS_XMLNS}Code")), (status, code), payload)
        if message is not None:
            self.assertEqual(error.findtext(f"{STS_XMLNS}Message"), message)

    def assertS3Error(self, answer, status, code):
        got_status, _, payload = answer
        error = ElementTree.fromstring(payload)
        self.assertEqual((got_status, error.findtext("Code")), (status, code), payload)
        return error


class EmulatorTest(Harness, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.process, cls.endpoint = start_server()
        cls.host = urllib.parse.urlsplit(cls.endpoint).netloc
        results = cls.fixture(VENDOR_ACCOUNT, "us-east-1", [
            {"service": "iam", "op": "create_user", "args": {"UserName": "vendor"}},
            {"service": "iam", "op": "put_user_policy", "args": {"UserName": "vendor", "PolicyName": "vendor", "PolicyDocument": policy(
                {"Effect": "Allow", "Action": ["sts:AssumeRole", "s3:*"], "Resource": "*"})}},
            {"service": "iam", "op": "create_access_key", "args": {"UserName": "vendor"}},
        ])
        key = results[2]["AccessKey"]
        cls.vendor_key = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
        cls.fixture(CUSTOMER, REGION, [
            {"service": "s3", "op": "create_bucket", "args": {"Bucket": BUCKET, "CreateBucketConfiguration": {"LocationConstraint": REGION}}},
        ])
        cls.customer_role(ROLE, trust({"AWS": VENDOR_ARN}, {"StringEquals": {"sts:ExternalId": XID}}))
        cls.customer_role("stored-messages-open", trust({"AWS": VENDOR_ARN}))
        # Our functions' own role, in our account: Secrets Manager under
        # stored-messages/ only, and the KMS use Secrets Manager makes for it.
        cls.customer_role(FUNCTIONS_ROLE, trust({"AWS": VENDOR_ARN}), account=VENDOR_ACCOUNT, permissions=policy(
            {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": SECRETS}, SECRETS_KEY_USE))

    @classmethod
    def tearDownClass(cls):
        # Closing stdin is how the server learns its parent is gone.
        cls.process.stdin.close()
        cls.process.stdout.close()
        assert cls.process.wait(timeout=10) == 0

    def tearDown(self):
        self.call("DELETE", "/_sm/faults")

    # ---- AssumeRole trust policies -----------------------------------------

    def test_external_id_must_match_the_trust_policy(self):
        self.assertTrue(self.assume(ROLE, ExternalId=XID).access_key.startswith("ASIA"))
        error = self.assertRefused(lambda: self.assume(ROLE, ExternalId="WrongExternalIdWrongExternalId"))
        self.assertEqual(
            error["Error"]["Message"],
            f"User: {VENDOR_ARN} is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::{CUSTOMER}:role/{ROLE}",
        )
        self.assertRefused(lambda: self.assume(ROLE))  # a missing ExternalId never satisfies
        self.assertTrue(self.assume("stored-messages-open").access_key, "no condition: no External ID needed")
        self.assertTrue(self.assume("stored-messages-open", ExternalId=XID).access_key)
        self.assertRefused(lambda: self.assume("stored-messages-no-such-role", ExternalId=XID))

    def test_denial_uses_aws_sts_error_shape(self):
        body = urllib.parse.urlencode({
            "Action": "AssumeRole", "Version": "2011-06-15", "RoleSessionName": "raw",
            "RoleArn": f"arn:aws:iam::{CUSTOMER}:role/{ROLE}", "ExternalId": "nope-nope-nope",
        }).encode()
        form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        status, _, payload = self.signed("POST", "/", "sts", "us-east-1", self.vendor_key, body, form)
        self.assertEqual(status, 403)
        root = ElementTree.fromstring(payload)
        self.assertEqual(root.tag, f"{STS_XMLNS}ErrorResponse")
        self.assertEqual(root.find(f"{STS_XMLNS}Error/{STS_XMLNS}Type").text, "Sender")
        self.assertEqual(root.find(f"{STS_XMLNS}Error/{STS_XMLNS}Code").text, "AccessDenied")
        self.assertTrue(root.find(f"{STS_XMLNS}RequestId").text)
        # So is the refusal of an unknown key (answered before moto, whose own
        # STS errors, <Errors><Error>, would be rewritten the same way).
        status, _, payload = self.signed("POST", "/", "sts", "us-east-1", UNKNOWN_KEY, WHO_AM_I, form)
        self.assertEqual(status, 403)
        self.assertNotIn(b"<Errors>", payload)
        self.assertEqual(ElementTree.fromstring(payload).find(f"{STS_XMLNS}Error/{STS_XMLNS}Code").text, "InvalidClientTokenId")

    def test_trust_policy_principals_and_conditions(self):
        root = f"arn:aws:iam::{VENDOR_ACCOUNT}:root"
        self.customer_role("sm-like", trust({"AWS": VENDOR_ARN}, {"StringLike": {"sts:ExternalId": "acme-??-*"}}))
        self.customer_role("sm-root", trust({"AWS": [root]}, {"StringEquals": {"sts:ExternalId": XID}}))
        self.customer_role("sm-star", trust("*", {"StringLike": {"aws:PrincipalArn": f"arn:aws:iam::{VENDOR_ACCOUNT}:user/ven*"}}))
        self.customer_role("sm-other-user", trust({"AWS": f"arn:aws:iam::{VENDOR_ACCOUNT}:user/someone-else"}))
        self.customer_role("sm-unsupported", trust({"AWS": VENDOR_ARN}, {"StringFuzzyEquals": {"sts:ExternalId": "x"}}))
        self.customer_role("sm-other-action", trust({"AWS": VENDOR_ARN}, action="sts:TagSession"))
        blocked = {"StringEquals": {"sts:ExternalId": "blocked-blocked"}}
        self.customer_role("sm-deny", trust({"AWS": VENDOR_ARN}), trust({"AWS": "*"}, blocked, effect="Deny"))

        self.assertTrue(self.assume("sm-like", ExternalId="acme-42-anything").access_key)
        self.assertRefused(lambda: self.assume("sm-like", ExternalId="acme-4-anything"))
        self.assertTrue(self.assume("sm-root", ExternalId=XID).access_key)
        self.assertRefused(lambda: self.assume("sm-root", ExternalId="WrongExternalIdWrongExternalId"))
        self.assertTrue(self.assume("sm-star").access_key)
        self.assertRefused(lambda: self.assume("sm-other-user"))
        self.assertRefused(lambda: self.assume("sm-unsupported", ExternalId="y-y-y"))  # unknown operators fail closed
        self.assertRefused(lambda: self.assume("sm-other-action"))
        self.assertTrue(self.assume("sm-deny", ExternalId="allowed-allowed").access_key)
        self.assertRefused(lambda: self.assume("sm-deny", ExternalId="blocked-blocked"))  # an explicit Deny wins

    def test_same_account_role_trusting_the_account(self):
        # moto alone refuses an account principal; AWS (and the emulator) allow it.
        self.customer_role("sm-own-account", trust({"AWS": VENDOR_ACCOUNT}), account=VENDOR_ACCOUNT)
        self.assertTrue(self.assume("sm-own-account", account=VENDOR_ACCOUNT).access_key)

    def test_assumed_role_callers_are_matched_by_role_arn(self):
        hop_arn = f"arn:aws:iam::{CUSTOMER}:role/sm-hop"
        may_assume = policy({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"})
        self.customer_role("sm-hop", trust({"AWS": VENDOR_ARN}), permissions=may_assume)
        self.customer_role("sm-chained", trust({"AWS": hop_arn}))
        self.customer_role("sm-not-chained", trust({"AWS": VENDOR_ARN}))
        hop = self.assume("sm-hop")
        self.assertTrue(self.assume("sm-chained", caller=hop).access_key)
        error = self.assertRefused(lambda: self.assume("sm-not-chained", caller=hop))
        self.assertIn(f"User: arn:aws:sts::{CUSTOMER}:assumed-role/sm-hop/tests is not authorized", error["Error"]["Message"])

    # ---- S3 -----------------------------------------------------------------

    def test_archive_write_with_owner_check_and_write_once(self):
        s3 = self.s3(self.assume(ROLE, ExternalId=XID))
        answer = s3.put_object(Bucket=BUCKET, Key="once/1.json", Body=b"{}", ExpectedBucketOwner=CUSTOMER, IfNoneMatch="*")
        self.assertEqual(answer["ResponseMetadata"]["HTTPStatusCode"], 200)
        self.assertRefused(lambda: s3.put_object(Bucket=BUCKET, Key="once/2.json", Body=b"{}", ExpectedBucketOwner="999999999999"))
        self.assertRefused(lambda: s3.put_object(Bucket=BUCKET, Key="once/1.json", Body=b"{}", IfNoneMatch="*"), "PreconditionFailed", 412)
        # The role may only write (moto enforces identity policies itself).
        self.assertRefused(lambda: s3.get_object(Bucket=BUCKET, Key="once/1.json"))

    def test_concurrent_conditional_writes_let_exactly_one_through(self):
        # AWS: of concurrent If-None-Match: * writes to one key, one succeeds
        # and the others get 412 (the check and the write are atomic); the
        # same for If-Match over one ETag. Sixteen writers race each time.
        # The server's per-key lock makes this hold by construction; moto's
        # own unlocked check-then-write window is so short that 3 runs with
        # the lock removed also passed, so this guards the rule (a condition
        # ignored gives 16 × 200) rather than proving the lock.
        s3 = self.s3(self.assume(ROLE, ExternalId=XID))
        key = "race/claim.json"

        def race(**condition):
            barrier = threading.Barrier(16)

            def write(i):
                barrier.wait()
                try:
                    s3.put_object(Bucket=BUCKET, Key=key, Body=f'{{"writer":{i}}}'.encode(), **condition)
                    return 200
                except ClientError as error:
                    return error.response["ResponseMetadata"]["HTTPStatusCode"]

            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                return sorted(pool.map(write, range(16)))

        self.assertEqual(race(IfNoneMatch="*"), [200] + [412] * 15)
        etag = self.fixture(CUSTOMER, REGION, [{"service": "s3", "op": "head_object", "args": {"Bucket": BUCKET, "Key": key}}])[0]["ETag"]
        self.assertEqual(race(IfMatch=etag), [200] + [412] * 15)

    def test_get_object_if_match_refuses_a_replaced_object(self):
        # AWS's GetObject API reference: with If-Match, S3 returns the object
        # only if its ETag is the one given, else 412 Precondition Failed.
        # run-backfill pins each export object to the ETag it listed, so a
        # re-export at the same key fails the job instead of being read from
        # an offset into other text (moto checks it; this keeps it so).
        reads = policy({"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": f"arn:aws:s3:::{BUCKET}/*"})
        self.customer_role("sm-export-reader", trust({"AWS": VENDOR_ARN}), permissions=reads)
        s3 = self.s3(self.assume("sm-export-reader"))
        first = s3.put_object(Bucket=BUCKET, Key="exports/part-0.ndjson", Body=b'{"a":1}\n{"a":2}\n')["ETag"]
        pinned = s3.get_object(Bucket=BUCKET, Key="exports/part-0.ndjson", IfMatch=first, Range="bytes=8-")
        self.assertEqual(pinned["Body"].read(), b'{"a":2}\n')
        second = s3.put_object(Bucket=BUCKET, Key="exports/part-0.ndjson", Body=b'{"b":1}\n{"b":2}\n')["ETag"]
        self.assertNotEqual(first, second)
        self.assertRefused(lambda: s3.get_object(Bucket=BUCKET, Key="exports/part-0.ndjson", IfMatch=first, Range="bytes=8-"),
                           "PreconditionFailed", 412)
        self.assertEqual(s3.get_object(Bucket=BUCKET, Key="exports/part-0.ndjson", IfMatch=second)["Body"].read(), b'{"b":1}\n{"b":2}\n')

    def test_session_policy_narrows_the_role(self):
        scope = policy({"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/archive/*"})
        s3 = self.s3(self.assume(ROLE, ExternalId=XID, Policy=scope))
        s3.put_object(Bucket=BUCKET, Key="archive/ok.json", Body=b"{}")
        self.assertRefused(lambda: s3.put_object(Bucket=BUCKET, Key="elsewhere/no.json", Body=b"{}"))
        # Without a session policy the same role writes anywhere in the bucket.
        self.s3(self.assume(ROLE, ExternalId=XID)).put_object(Bucket=BUCKET, Key="elsewhere/yes.json", Body=b"{}")
        # A session policy cannot grant what the role lacks.
        wide = policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
        self.assertRefused(lambda: self.s3(self.assume(ROLE, ExternalId=XID, Policy=wide)).get_object(Bucket=BUCKET, Key="archive/ok.json"))

    def test_wrong_region_is_refused_with_the_bucket_region(self):
        credentials = self.assume(ROLE, ExternalId=XID)
        status, headers, payload = self.signed("PUT", f"/{BUCKET}/region/1.json", "s3", "us-east-1", credentials, b"{}")
        self.assertEqual(status, 400)
        self.assertEqual(headers["x-amz-bucket-region"], REGION)
        error = ElementTree.fromstring(payload)
        self.assertEqual(error.findtext("Code"), "AuthorizationHeaderMalformed")
        self.assertEqual(error.findtext("Region"), REGION)
        self.assertEqual(
            error.findtext("Message"),
            f"The authorization header is malformed; the region 'us-east-1' is wrong; expecting '{REGION}'",
        )
        status, _, _ = self.signed("PUT", f"/{BUCKET}/region/1.json", "s3", REGION, credentials, b"{}")
        self.assertEqual(status, 200)
        # A bucket that does not exist is moto's to answer.
        status, _, payload = self.signed("GET", "/acme-no-such-bucket/k", "s3", "us-east-1", self.vendor_key)
        self.assertEqual((status, ElementTree.fromstring(payload).findtext("Code")), (404, "NoSuchBucket"))
        # boto3 follows the hint by itself: the recorder shows both attempts.
        self.call("DELETE", "/_sm/requests")
        self.s3(credentials, "us-east-1").put_object(Bucket=BUCKET, Key="region/2.json", Body=b"{}")
        attempts = [(r["region"], r["status"]) for r in self.requests(path=f"/{BUCKET}/region/2.json")]
        self.assertEqual(attempts, [("us-east-1", 400), (REGION, 200)])

    def test_unsigned_reads_follow_bucket_policy_acl_and_public_access_block(self):
        bucket = "acme-public"
        self.fixture(CUSTOMER, REGION, [
            {"service": "s3", "op": "create_bucket", "args": {"Bucket": bucket, "CreateBucketConfiguration": {"LocationConstraint": REGION}}},
            {"service": "s3", "op": "put_object", "args": {"Bucket": bucket, "Key": "k.json", "Body": "{\"a\": 1}", "ContentType": "application/json"}},
            {"service": "s3", "op": "put_object", "args": {"Bucket": BUCKET, "Key": "private.json", "Body": "{}"}},
            {"service": "s3", "op": "put_object", "args": {"Bucket": BUCKET, "Key": "acl-public.json", "Body": "{}", "ACL": "public-read"}},
        ])
        status, _, payload = self.raw("GET", f"/{bucket}/k.json")
        self.assertEqual((status, ElementTree.fromstring(payload).findtext("Code")), (403, "AccessDenied"))
        self.assertEqual(self.raw("HEAD", f"/{bucket}/k.json")[0], 403)
        self.assertEqual(self.raw("PUT", f"/{bucket}/new.json", b"{}")[0], 403)

        public = policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"})
        self.fixture(CUSTOMER, REGION, [{"service": "s3", "op": "put_bucket_policy", "args": {"Bucket": bucket, "Policy": public}}])
        status, headers, payload = self.raw("GET", f"/{bucket}/k.json")
        self.assertEqual((status, payload, headers["Content-Type"]), (200, b'{"a": 1}', "application/json"))
        status, headers, payload = self.raw("HEAD", f"/{bucket}/k.json")
        self.assertEqual((status, headers["Content-Length"], payload), (200, "8", b""))
        # As the Rust not_public probe asks: an SDK client without credentials.
        unsigned = botocore.config.Config(signature_version=UNSIGNED, s3={"addressing_style": "path"}, retries=NO_RETRIES)
        anonymous = boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, config=unsigned)
        self.assertEqual(anonymous.get_object(Bucket=bucket, Key="k.json")["Body"].read(), b'{"a": 1}')
        self.assertRefused(lambda: anonymous.get_object(Bucket=BUCKET, Key="private.json"))
        # GetObject alone does not reveal which keys exist; listing stays closed.
        self.assertEqual(self.raw("GET", f"/{bucket}/missing.json")[0], 403)
        self.assertEqual(self.raw("GET", f"/{bucket}?list-type=2")[0], 403)
        self.assertEqual(self.raw("PUT", f"/{bucket}/new.json", b"{}")[0], 403)
        # An object ACL can make one object public.
        self.assertEqual(self.raw("GET", f"/{BUCKET}/acl-public.json")[:3:2], (200, b"{}"))
        # Block Public Access overrides both.
        self.fixture(CUSTOMER, REGION, [
            {"service": "s3", "op": "put_public_access_block", "args": {"Bucket": bucket, "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}}},
        ])
        self.assertEqual(self.raw("GET", f"/{bucket}/k.json")[0], 403)
        # A bucket that does not exist.
        status, _, payload = self.raw("GET", "/acme-nowhere/k.json")
        self.assertEqual((status, ElementTree.fromstring(payload).findtext("Code")), (404, "NoSuchBucket"))

    # ---- IAM conditions (rule: one evaluator, AWS's semantics) --------------

    def test_condition_operators_in_trust_policies(self):
        # The same evaluator decides trust, session, bucket, identity and key
        # policies; trust policies are the quickest to probe end to end.
        vendor = {"AWS": VENDOR_ARN}
        self.customer_role("sm-cond-not-equals", trust(vendor, {"StringNotEquals": {"sts:ExternalId": ["blocked-1", "blocked-2"]}}))
        self.customer_role("sm-cond-ignore-case", trust(vendor, {"StringEqualsIgnoreCase": {"STS:EXTERNALID": "MiXeD-CaSe-Id"}}))
        self.customer_role("sm-cond-arn", trust("*", {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/ven*"}}))
        self.customer_role("sm-cond-null", trust(vendor, {"Null": {"sts:ExternalId": "false"}}))
        self.customer_role("sm-cond-if-exists", trust(vendor, {"StringEqualsIfExists": {"sts:ExternalId": XID}}))
        self.customer_role("sm-cond-past", trust(vendor, {"DateLessThan": {"aws:CurrentTime": "2000-01-01T00:00:00Z"}}))
        self.customer_role("sm-cond-epoch", trust(vendor, {"DateGreaterThan": {"aws:CurrentTime": "946684800"}, "Bool": {"aws:SecureTransport": True}}))
        self.customer_role("sm-cond-any-missing", trust(vendor, {"ForAnyValue:StringLike": {"aws:TagKeys": "*"}}))
        self.customer_role("sm-cond-all-missing", trust(vendor, {"ForAllValues:StringEquals": {"aws:TagKeys": "x"}}))
        self.customer_role("sm-cond-and-or", trust(vendor, {"StringEquals": {"sts:ExternalId": ["first-value", "second-value"], "aws:PrincipalAccount": VENDOR_ACCOUNT}}))
        self.customer_role("sm-cond-deny-unknown", trust(vendor), trust("*", {"NumericFuzzy": {"aws:EpochTime": "1"}}, effect="Deny"))

        self.assertTrue(self.assume("sm-cond-not-equals", ExternalId="anything-else").access_key)
        self.assertRefused(lambda: self.assume("sm-cond-not-equals", ExternalId="blocked-2"))  # NOR of the values
        self.assertTrue(self.assume("sm-cond-not-equals").access_key)  # negated operator, absent key: true
        self.assertTrue(self.assume("sm-cond-ignore-case", ExternalId="mixed-case-id").access_key)
        self.assertTrue(self.assume("sm-cond-arn").access_key)
        self.assertRefused(lambda: self.assume("sm-cond-null"))
        self.assertTrue(self.assume("sm-cond-null", ExternalId="some-external-id").access_key)
        self.assertTrue(self.assume("sm-cond-if-exists").access_key)
        self.assertTrue(self.assume("sm-cond-if-exists", ExternalId=XID).access_key)
        self.assertRefused(lambda: self.assume("sm-cond-if-exists", ExternalId="WrongExternalIdWrongExternalId"))
        self.assertRefused(lambda: self.assume("sm-cond-past"))
        self.assertTrue(self.assume("sm-cond-epoch").access_key)
        self.assertRefused(lambda: self.assume("sm-cond-any-missing"))
        self.assertTrue(self.assume("sm-cond-all-missing").access_key)
        self.assertTrue(self.assume("sm-cond-and-or", ExternalId="second-value").access_key)
        self.assertRefused(lambda: self.assume("sm-cond-and-or", ExternalId="third-value"))
        self.assertRefused(lambda: self.assume("sm-cond-deny-unknown"))  # a Deny not understood applies

    def test_identity_policy_conditions_are_evaluated_not_ignored(self):
        # moto alone applies a conditional Deny unconditionally and a
        # conditional Allow unconditionally; the hook makes it evaluate them.
        bucket = f"arn:aws:s3:::{BUCKET}"
        permissions = policy(
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"{bucket}/*",
             "Condition": {"StringEquals": {"s3:x-amz-server-side-encryption": "AES256"}}},
            {"Effect": "Deny", "Action": "s3:PutObject", "Resource": f"{bucket}/*",
             "Condition": {"StringLike": {"s3:x-amz-server-side-encryption": "aws:kms*"}}},
        )
        self.customer_role("sm-cond-identity", trust({"AWS": VENDOR_ARN}), permissions=permissions)
        s3 = self.s3(self.assume("sm-cond-identity"))
        s3.put_object(Bucket=BUCKET, Key="identity/1.json", Body=b"{}", ServerSideEncryption="AES256")
        self.assertRefused(lambda: s3.put_object(Bucket=BUCKET, Key="identity/2.json", Body=b"{}"))
        error = self.assertRefused(lambda: s3.put_object(Bucket=BUCKET, Key="identity/3.json", Body=b"{}", ServerSideEncryption="aws:kms"))
        self.assertEqual(
            error["Error"]["Message"],
            f'User: {self.session_arn("sm-cond-identity")} is not authorized to perform: s3:PutObject on resource: '
            f'"{bucket}/identity/3.json" with an explicit deny in an identity-based policy',
        )

    # ---- session policies with conditions ------------------------------------

    def test_session_policy_conditions_and_messages(self):
        bucket = f"arn:aws:s3:::{BUCKET}"
        scope = policy(
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"{bucket}/*",
             "Condition": {"StringEquals": {"s3:x-amz-server-side-encryption": "AES256"}}},
            {"Effect": "Deny", "Action": "s3:*", "Resource": f"{bucket}/secret/*",
             "Condition": {"Bool": {"aws:SecureTransport": "true"}}},
        )
        s3 = self.s3(self.assume(ROLE, ExternalId=XID, Policy=scope))
        s3.put_object(Bucket=BUCKET, Key="scoped/1.json", Body=b"{}", ServerSideEncryption="AES256")
        caller = self.session_arn(ROLE)
        error = self.assertRefused(lambda: s3.put_object(Bucket=BUCKET, Key="scoped/2.json", Body=b"{}"))
        self.assertEqual(
            error["Error"]["Message"],
            f'User: {caller} is not authorized to perform: s3:PutObject on resource: "{bucket}/scoped/2.json" '
            "because no session policy allows the s3:PutObject action",
        )
        error = self.assertRefused(
            lambda: s3.put_object(Bucket=BUCKET, Key="secret/1.json", Body=b"{}", ServerSideEncryption="AES256")
        )
        self.assertEqual(
            error["Error"]["Message"],
            f'User: {caller} is not authorized to perform: s3:PutObject on resource: "{bucket}/secret/1.json" '
            "with an explicit deny in a session policy",
        )

    # ---- SSE-KMS under the caller's identity ---------------------------------

    def test_sse_kms_needs_kms_permission_on_the_key(self):
        bucket = "acme-kms-keys"
        self.bucket(bucket)
        key = self.kms_key(alias="alias/sm-archive")
        alias_arn = f"arn:aws:kms:{REGION}:{CUSTOMER}:alias/sm-archive"
        put = {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
        use_key = {"Effect": "Allow", "Action": "kms:GenerateDataKey", "Resource": key["Arn"]}
        self.customer_role("sm-kms-none", trust({"AWS": VENDOR_ARN}), permissions=policy(put))
        self.customer_role("sm-kms-key", trust({"AWS": VENDOR_ARN}), permissions=policy(put, use_key))
        self.customer_role("sm-kms-alias-arn", trust({"AWS": VENDOR_ARN}), permissions=policy(put, dict(use_key, Resource=alias_arn)))
        self.customer_role("sm-kms-scoped", trust({"AWS": VENDOR_ARN}), permissions=policy(put, {
            "Effect": "Allow", "Action": "kms:GenerateDataKey*", "Resource": "*", "Condition": {
                "StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com", "kms:CallerAccount": CUSTOMER},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{bucket}/archive/*"},
                "ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/sm-archive"},
            }}))

        def put_with(s3, name, **encryption):
            return lambda: s3.put_object(Bucket=bucket, Key=name, Body=b"{}", **encryption)

        kms = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key["Arn"]}
        none = self.s3(self.assume("sm-kms-none"))
        error = self.assertRefused(put_with(none, "archive/1.json", **kms))
        self.assertEqual(
            error["Error"]["Message"],
            f"User: {self.session_arn('sm-kms-none')} is not authorized to perform: kms:GenerateDataKey on resource: "
            f"{key['Arn']} because no identity-based policy allows the kms:GenerateDataKey action",
        )
        self.assertRefused(lambda: none.create_multipart_upload(Bucket=bucket, Key="archive/big.json", **kms))
        put_with(none, "archive/sse-s3.json", ServerSideEncryption="AES256")()  # SSE-S3: no KMS
        put_with(none, "archive/default.json")()

        with_key = self.s3(self.assume("sm-kms-key"))
        for reference in (key["Arn"], key["KeyId"], "alias/sm-archive", alias_arn):
            answer = put_with(with_key, "archive/2.json", ServerSideEncryption="aws:kms", SSEKMSKeyId=reference)()
            self.assertEqual(answer["ResponseMetadata"]["HTTPStatusCode"], 200, reference)
        self.assertTrue(with_key.create_multipart_upload(Bucket=bucket, Key="archive/big.json", **kms)["UploadId"])

        # An alias ARN in an IAM policy's Resource matches no key.
        self.assertRefused(put_with(self.s3(self.assume("sm-kms-alias-arn")), "archive/3.json", **kms))

        scoped = self.s3(self.assume("sm-kms-scoped"))
        put_with(scoped, "archive/4.json", **kms)()
        self.assertRefused(put_with(scoped, "elsewhere/4.json", **kms))

    def test_sse_kms_key_policy_accounts_and_key_states(self):
        bucket = "acme-kms-policy"
        self.bucket(bucket)
        other = "444455556666"
        named_arn = f"arn:aws:iam::{CUSTOMER}:role/sm-kms-named"
        put = {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
        self.customer_role("sm-kms-named", trust({"AWS": VENDOR_ARN}), permissions=policy(put))
        # Named directly in the key policy: no IAM permission needed in the same account.
        named = self.kms_key(key_policy=policy(
            {"Effect": "Allow", "Principal": {"AWS": named_arn}, "Action": "kms:GenerateDataKey", "Resource": "*"}))
        guarded = self.kms_key(key_policy=policy(
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{CUSTOMER}:root"}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Deny", "Principal": "*", "Action": "kms:GenerateDataKey*", "Resource": "*",
             "Condition": {"StringLike": {"kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{bucket}/denied/*"}}}))
        shared = self.kms_key(other, key_policy=policy(
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{other}:root"}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": CUSTOMER}, "Action": "kms:GenerateDataKey", "Resource": "*"}))
        unshared = self.kms_key(other)
        disabled = self.kms_key()
        self.fixture(CUSTOMER, REGION, [{"service": "kms", "op": "disable_key", "args": {"KeyId": disabled["Arn"]}}])
        may_use = [guarded["Arn"], shared["Arn"], unshared["Arn"], disabled["Arn"]]
        self.customer_role("sm-kms-user", trust({"AWS": VENDOR_ARN}), permissions=policy(
            put, {"Effect": "Allow", "Action": "kms:GenerateDataKey", "Resource": may_use}))

        def put_with(s3, name, key_id):
            return lambda: s3.put_object(Bucket=bucket, Key=name, Body=b"{}", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id)

        only_named = self.s3(self.assume("sm-kms-named"))
        put_with(only_named, "ok/1.json", named["Arn"])()
        user = self.s3(self.assume("sm-kms-user"))
        self.assertRefused(put_with(user, "ok/1.json", named["Arn"]))  # neither names it nor delegates to IAM
        put_with(user, "ok/2.json", guarded["Arn"])()
        error = self.assertRefused(put_with(user, "denied/2.json", guarded["Arn"]))
        self.assertTrue(error["Error"]["Message"].endswith(f"on resource: {guarded['Arn']} with an explicit deny in a resource-based policy"))

        # Another account's key: its key policy and the caller's IAM policy must both allow.
        put_with(user, "ok/3.json", shared["Arn"])()
        error = self.assertRefused(put_with(only_named, "ok/3.json", shared["Arn"]))
        self.assertTrue(error["Error"]["Message"].endswith("because no identity-based policy allows the kms:GenerateDataKey action"))
        error = self.assertRefused(put_with(user, "ok/4.json", unshared["Arn"]))
        self.assertTrue(error["Error"]["Message"].endswith("because no resource-based policy allows the kms:GenerateDataKey action"))
        # A key id alone resolves in the caller's account, where this one does not exist.
        error = self.assertRefused(put_with(user, "ok/5.json", shared["KeyId"]), "KMS.NotFoundException", 400)
        self.assertEqual(error["Error"]["Message"], f"Key 'arn:aws:kms:{REGION}:{CUSTOMER}:key/{shared['KeyId']}' does not exist")
        self.assertRefused(put_with(user, "ok/6.json", "alias/sm-no-such-alias"), "KMS.NotFoundException", 400)
        error = self.assertRefused(put_with(user, "ok/7.json", disabled["Arn"]), "KMS.DisabledException", 400)
        self.assertEqual(error["Error"]["Message"], f"{disabled['Arn']} is disabled.")

    def test_sse_kms_bucket_default_aws_managed_key_and_session_policy(self):
        keyed, managed = "acme-kms-default", "acme-kms-managed"
        self.bucket(keyed)
        self.bucket(managed)
        key = self.kms_key()
        self.fixture(CUSTOMER, REGION, [
            {"service": "s3", "op": "put_bucket_encryption", "args": {"Bucket": keyed, "ServerSideEncryptionConfiguration": {"Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["Arn"]}, "BucketKeyEnabled": True}]}}},
            {"service": "s3", "op": "put_bucket_encryption", "args": {"Bucket": managed, "ServerSideEncryptionConfiguration": {"Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]}}},
        ])
        put = {"Effect": "Allow", "Action": "s3:PutObject", "Resource": ["arn:aws:s3:::acme-kms-*/*"]}
        # With an S3 Bucket Key the encryption context is the bucket's ARN.
        self.customer_role("sm-kms-bucket-key", trust({"AWS": VENDOR_ARN}), permissions=policy(put, {
            "Effect": "Allow", "Action": "kms:GenerateDataKey", "Resource": key["Arn"],
            "Condition": {"StringEquals": {"kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{keyed}"}}}))
        self.customer_role("sm-kms-s3-only", trust({"AWS": VENDOR_ARN}), permissions=policy(put))

        self.s3(self.assume("sm-kms-bucket-key")).put_object(Bucket=keyed, Key="a/1.json", Body=b"{}")
        s3_only = self.s3(self.assume("sm-kms-s3-only"))
        self.assertRefused(lambda: s3_only.put_object(Bucket=keyed, Key="a/1.json", Body=b"{}"))
        # The AWS managed key aws/s3 lets every principal of its account use it through S3.
        s3_only.put_object(Bucket=managed, Key="a/1.json", Body=b"{}")
        s3_only.put_object(Bucket=managed, Key="a/2.json", Body=b"{}", ServerSideEncryption="aws:kms")
        # ... but a session policy limits that too.
        limited = self.s3(self.assume("sm-kms-s3-only", Policy=policy(put)))
        error = self.assertRefused(lambda: limited.put_object(Bucket=managed, Key="a/3.json", Body=b"{}"))
        self.assertRegex(
            error["Error"]["Message"],
            rf"^User: {self.session_arn('sm-kms-s3-only')} is not authorized to perform: kms:GenerateDataKey on resource: "
            rf"arn:aws:kms:{REGION}:{CUSTOMER}:key/[0-9a-f-]+ because no session policy allows the kms:GenerateDataKey action$",
        )
        use_kms = {"Effect": "Allow", "Action": "kms:GenerateDataKey", "Resource": f"arn:aws:kms:{REGION}:{CUSTOMER}:key/*"}
        self.s3(self.assume("sm-kms-s3-only", Policy=policy(put, use_kms))).put_object(Bucket=managed, Key="a/3.json", Body=b"{}")
        limited.put_object(Bucket=managed, Key="a/4.json", Body=b"{}", ServerSideEncryption="AES256")

    # ---- bucket policies with conditions ----------------------------------------

    def test_bucket_policy_write_once(self):
        bucket = "acme-write-once"
        self.bucket(bucket)
        self.fixture(CUSTOMER, REGION, [{"service": "s3", "op": "put_bucket_policy", "args": {"Bucket": bucket, "Policy": policy(
            {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/archive/*",
             "Condition": {"Null": {"s3:if-none-match": "true"}}})}}])
        self.customer_role("sm-write-once", trust({"AWS": VENDOR_ARN}), permissions=policy(
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}))
        s3 = self.s3(self.assume("sm-write-once"))
        error = self.assertRefused(lambda: s3.put_object(Bucket=bucket, Key="archive/1.json", Body=b"{}"))
        self.assertEqual(
            error["Error"]["Message"],
            f'User: {self.session_arn("sm-write-once")} is not authorized to perform: s3:PutObject on resource: '
            f'"arn:aws:s3:::{bucket}/archive/1.json" with an explicit deny in a resource-based policy',
        )
        answer = s3.put_object(Bucket=bucket, Key="archive/1.json", Body=b"{}", IfNoneMatch="*")
        self.assertEqual(answer["ResponseMetadata"]["HTTPStatusCode"], 200)
        self.assertRefused(lambda: s3.put_object(Bucket=bucket, Key="archive/1.json", Body=b"{}", IfNoneMatch="*"), "PreconditionFailed", 412)
        s3.put_object(Bucket=bucket, Key="elsewhere/1.json", Body=b"{}")  # outside the Deny's Resource
        # As AWS warns, CreateMultipartUpload cannot send If-None-Match, so
        # this policy also refuses multipart uploads under archive/.
        self.assertRefused(lambda: s3.create_multipart_upload(Bucket=bucket, Key="archive/big.json"))

    def test_bucket_policy_encryption_headers_and_secure_transport(self):
        bucket = "acme-enc-policy"
        self.bucket(bucket)
        objects = f"arn:aws:s3:::{bucket}/*"
        self.fixture(CUSTOMER, REGION, [{"service": "s3", "op": "put_bucket_policy", "args": {"Bucket": bucket, "Policy": policy(
            {"Sid": "DenyIncorrectEncryptionHeader", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": objects,
             "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}},
            {"Sid": "DenyUnencryptedObjectUploads", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": objects,
             "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}}},
            {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": [f"arn:aws:s3:::{bucket}", objects], "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        )}}])
        self.customer_role("sm-enc-policy", trust({"AWS": VENDOR_ARN}), permissions=policy(
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": objects}))
        s3 = self.s3(self.assume("sm-enc-policy"))
        for encryption in ({}, {"ServerSideEncryption": "AES256"}):
            error = self.assertRefused(lambda: s3.put_object(Bucket=bucket, Key="k.json", Body=b"{}", **encryption))
            self.assertTrue(error["Error"]["Message"].endswith("with an explicit deny in a resource-based policy"), encryption)
        # aws:kms without a key id: the AWS managed key, usable through S3 by the account.
        s3.put_object(Bucket=bucket, Key="k.json", Body=b"{}", ServerSideEncryption="aws:kms")

    # ---- revoked sessions -----------------------------------------------------

    def test_revoked_sessions_are_refused(self):
        role_arn = f"arn:aws:iam::{CUSTOMER}:role/sm-revoke"
        self.customer_role("sm-revoke", trust({"AWS": VENDOR_ARN}), permissions=policy(
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"},
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}))
        self.customer_role("sm-revoke-next", trust({"AWS": role_arn}))
        old = self.assume("sm-revoke")
        self.s3(old).put_object(Bucket=BUCKET, Key="revoked/1.json", Body=b"{}")

        status, answer = self.call("POST", "/_sm/revoke-sessions", {"role_arn": role_arn})
        self.assertEqual((status, answer["role_arn"]), (200, role_arn))
        self.assertRegex(answer["revoked_before"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

        error = self.assertRefused(lambda: self.s3(old).put_object(Bucket=BUCKET, Key="revoked/1.json", Body=b"{}"))
        self.assertEqual(
            error["Error"]["Message"],
            f'User: {self.session_arn("sm-revoke")} is not authorized to perform: s3:PutObject on resource: '
            f'"arn:aws:s3:::{BUCKET}/revoked/1.json" with an explicit deny in an identity-based policy',
        )
        error = self.assertRefused(lambda: self.assume("sm-revoke-next", caller=old))
        self.assertEqual(
            error["Error"]["Message"],
            f"User: {self.session_arn('sm-revoke')} is not authorized to perform: sts:AssumeRole on resource: "
            f"arn:aws:iam::{CUSTOMER}:role/sm-revoke-next with an explicit deny in an identity-based policy",
        )
        # As on AWS, GetCallerIdentity ignores even an explicit Deny.
        self.assertEqual(self.client("sts", old).get_caller_identity()["Arn"], self.session_arn("sm-revoke"))

        new = self.assume("sm-revoke")
        self.s3(new).put_object(Bucket=BUCKET, Key="revoked/2.json", Body=b"{}")
        self.assertTrue(self.assume("sm-revoke-next", caller=new).access_key)
        # The revocation is the inline policy AWS's console attaches.
        document = self.fixture(CUSTOMER, REGION, [
            {"service": "iam", "op": "get_role_policy", "args": {"RoleName": "sm-revoke", "PolicyName": "AWSRevokeOlderSessions"}},
        ])[0]["PolicyDocument"]
        self.assertEqual(document["Statement"][0]["Condition"], {"DateLessThan": {"aws:TokenIssueTime": answer["revoked_before"]}})
        self.assertEqual(self.call("POST", "/_sm/revoke-sessions", {"role_arn": f"arn:aws:iam::{CUSTOMER}:role/sm-none"})[0], 404)

    # ---- session durations --------------------------------------------------------

    def test_session_duration_limits(self):
        hop_arn = f"arn:aws:iam::{CUSTOMER}:role/sm-duration-hop"
        self.customer_role("sm-duration-hop", trust({"AWS": VENDOR_ARN}), permissions=policy(
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}))
        self.fixture(CUSTOMER, REGION, [
            {"service": "iam", "op": "create_role", "args": {"RoleName": "sm-duration-long", "MaxSessionDuration": 43200,
                                                            "AssumeRolePolicyDocument": policy(trust({"AWS": [VENDOR_ARN, hop_arn]}))}},
        ])
        self.assertTrue(self.assume("sm-duration-long", DurationSeconds=7200).access_key)
        hop = self.assume("sm-duration-hop")
        error = self.assertRefused(lambda: self.assume("sm-duration-long", caller=hop, DurationSeconds=3601), "ValidationError", 400)
        self.assertEqual(
            error["Error"]["Message"],
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
        )
        self.assertTrue(self.assume("sm-duration-long", caller=hop, DurationSeconds=3600).access_key)
        error = self.assertRefused(lambda: self.assume("stored-messages-open", DurationSeconds=3601), "ValidationError", 400)
        self.assertEqual(error["Error"]["Message"], "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
        # Outside 900..43200 (boto3 checks this itself, so raw): STS's validation error.
        form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        for seconds, bound in ((899, "greater than or equal to 900"), (43201, "less than or equal to 43200")):
            body = urllib.parse.urlencode({
                "Action": "AssumeRole", "Version": "2011-06-15", "RoleSessionName": "raw",
                "RoleArn": f"arn:aws:iam::{CUSTOMER}:role/sm-duration-long", "DurationSeconds": seconds,
            }).encode()
            status, _, payload = self.signed("POST", "/", "sts", "us-east-1", self.vendor_key, body, form)
            error = ElementTree.fromstring(payload).find(f"{STS_XMLNS}Error")
            self.assertEqual((status, error.findtext(f"{STS_XMLNS}Code"), error.findtext(f"{STS_XMLNS}Type")), (400, "ValidationError", "Sender"))
            self.assertEqual(
                error.findtext(f"{STS_XMLNS}Message"),
                f"1 validation error detected: Value '{seconds}' at 'durationSeconds' failed to satisfy constraint: Member must have value {bound}",
            )

    # ---- faults -------------------------------------------------------------

    def test_put_events_is_authorised_against_the_event_bus(self):
        """PutEvents is checked against each entry's bus ARN (the `default`
        bus when none is named), not "*": a grant scoped to one bus publishes
        there and nowhere else; a rule delivers what it matches to SQS."""
        bus_arn = f"arn:aws:events:us-east-1:{VENDOR_ACCOUNT}:event-bus/health"
        results = self.fixture(VENDOR_ACCOUNT, "us-east-1", [
            {"service": "events", "op": "create_event_bus", "args": {"Name": "health"}},
            {"service": "events", "op": "create_event_bus", "args": {"Name": "other"}},
            {"service": "sqs", "op": "create_queue", "args": {"QueueName": "health-events"}},
            {"service": "iam", "op": "create_user", "args": {"UserName": "publisher"}},
            {"service": "iam", "op": "put_user_policy", "args": {"UserName": "publisher", "PolicyName": "publish", "PolicyDocument": policy(
                {"Effect": "Allow", "Action": "events:PutEvents", "Resource": bus_arn})}},
            {"service": "iam", "op": "create_access_key", "args": {"UserName": "publisher"}},
            {"service": "events", "op": "put_rule", "args": {
                "Name": "health-to-queue", "EventBusName": "health",
                "EventPattern": json.dumps({"source": ["stored-messages"]})}},
            {"service": "events", "op": "put_targets", "args": {
                "Rule": "health-to-queue", "EventBusName": "health",
                "Targets": [{"Id": "queue", "Arn": f"arn:aws:sqs:us-east-1:{VENDOR_ACCOUNT}:health-events"}]}},
        ])
        queue_url = results[2]["QueueUrl"]
        key = results[5]["AccessKey"]
        events = self.client("events", Credentials(key["AccessKeyId"], key["SecretAccessKey"]))
        entry = {"Source": "stored-messages", "DetailType": "Destination Health Changed", "Detail": json.dumps({"to": "failing"})}

        answer = events.put_events(Entries=[{**entry, "EventBusName": "health"}])
        self.assertEqual(answer["FailedEntryCount"], 0)
        self.assertEqual(events.put_events(Entries=[{**entry, "EventBusName": bus_arn}])["FailedEntryCount"], 0)
        received = self.fixture(VENDOR_ACCOUNT, "us-east-1", [
            {"service": "sqs", "op": "receive_message", "args": {"QueueUrl": queue_url, "MaxNumberOfMessages": 10}},
        ])[0]["Messages"]
        self.assertEqual(len(received), 2)
        envelope = json.loads(received[0]["Body"])
        self.assertEqual((envelope["source"], envelope["detail-type"]), ("stored-messages", "Destination Health Changed"))
        self.assertEqual(envelope["detail"], {"to": "failing"})

        for elsewhere in ({"EventBusName": "other"}, {}):
            error = self.assertRefused(lambda: events.put_events(Entries=[{**entry, **elsewhere}]), "AccessDeniedException", 400)
            self.assertIn("events:PutEvents", error["Error"]["Message"])

    def test_status_faults_are_aws_shaped_and_counted(self):
        credentials = self.assume(ROLE, ExternalId=XID)
        s3 = self.s3(credentials)
        status, state = self.call("POST", "/_sm/faults", {"seed": 1, "rules": [
            {"service": "s3", "method": "PUT", "path_prefix": f"/{BUCKET}/faulty/", "action": "status",
             "status": 503, "code": "SlowDown", "message": "Please reduce your request rate.", "count": 2},
            {"service": "sts", "action_param": "AssumeRole", "action": "status", "status": 400, "code": "Throttling",
             "message": "Rate exceeded", "count": 1},
        ]})
        self.assertEqual((status, state["fired"]), (200, [0, 0]))
        error = self.assertRefused(lambda: s3.put_object(Bucket=BUCKET, Key="faulty/1.json", Body=b"{}"), "SlowDown", 503)
        self.assertEqual(error["Error"]["Message"], "Please reduce your request rate.")
        self.assertRefused(lambda: s3.put_object(Bucket=BUCKET, Key="faulty/1.json", Body=b"{}"), "SlowDown", 503)
        s3.put_object(Bucket=BUCKET, Key="faulty/1.json", Body=b"{}")  # count exhausted
        s3.put_object(Bucket=BUCKET, Key="elsewhere/1.json", Body=b"{}")  # prefix does not match
        self.client("sts", self.vendor_key).get_caller_identity()  # not AssumeRole: not matched
        self.assertRefused(lambda: self.assume(ROLE, ExternalId=XID), "Throttling", 400)
        self.assume(ROLE, ExternalId=XID)
        self.assertEqual(self.call("GET", "/_sm/faults")[1]["fired"], [2, 1])
        self.assertEqual(self.call("DELETE", "/_sm/faults")[1], {"seed": 1, "rules": [], "fired": []})

    def test_probability_is_seeded(self):
        s3 = self.s3(self.assume(ROLE, ExternalId=XID))
        self.call("POST", "/_sm/faults", {"seed": 7, "rules": [
            {"path_prefix": f"/{BUCKET}/maybe/", "action": "status", "status": 500, "code": "InternalError", "probability": 0.5},
        ]})
        draws = random.Random(7)
        expected = [draws.random() < 0.5 for _ in range(12)]
        failed = []
        for i in range(12):
            try:
                s3.put_object(Bucket=BUCKET, Key=f"maybe/{i}.json", Body=b"{}")
                failed.append(False)
            except ClientError as err:
                self.assertEqual(err.response["Error"]["Code"], "InternalError")
                failed.append(True)
        self.assertEqual(failed, expected)
        self.assertIn(True, failed)
        self.assertIn(False, failed)

    def test_delay_then_answer(self):
        s3 = self.s3(self.assume(ROLE, ExternalId=XID))
        self.call("POST", "/_sm/faults", {"seed": 1, "rules": [
            {"service": "s3", "path_prefix": f"/{BUCKET}/slow/", "action": "delay", "seconds": 0.6},
        ]})
        started = time.monotonic()
        s3.put_object(Bucket=BUCKET, Key="slow/1.json", Body=b"{}")
        self.assertGreaterEqual(time.monotonic() - started, 0.6)
        s3.put_object(Bucket=BUCKET, Key="fast/1.json", Body=b"{}")  # not matched: not delayed
        self.assertEqual(self.call("GET", "/_sm/faults")[1]["fired"], [1])

    def test_reset_drops_the_connection(self):
        s3 = self.s3(self.assume(ROLE, ExternalId=XID))
        self.call("DELETE", "/_sm/requests")
        self.call("POST", "/_sm/faults", {"seed": 1, "rules": [
            {"service": "s3", "method": "PUT", "path_prefix": f"/{BUCKET}/reset/", "action": "reset", "count": 1},
        ]})
        with self.assertRaises(HTTPClientError):  # botocore's ConnectionClosedError
            s3.put_object(Bucket=BUCKET, Key="reset/1.json", Body=b"{}")
        s3.put_object(Bucket=BUCKET, Key="reset/1.json", Body=b"{}")
        self.assertEqual([r["status"] for r in self.requests(path=f"/{BUCKET}/reset/1.json")], [None, 200])

    def test_bad_fault_rules_are_refused(self):
        for rule in ({"action": "explode"}, {"action": "reset", "path_prefx": "/typo/"}):
            status, answer = self.call("POST", "/_sm/faults", {"rules": [rule]})
            self.assertEqual(status, 400)
            self.assertIn("error", answer)

    # ---- authentication, before anything else ---------------------------------

    def refused_everywhere(self, credentials, s3, sts, json_code):
        """One credential's answers from S3, STS and two JSON services, each
        to a request that would be refused for another reason too (S3: signed
        for the wrong Region, with another expected bucket owner): `s3` and
        `sts` are (status, code). Returns S3's error element."""
        owner = {"x-amz-expected-bucket-owner": "999999999999"}
        error = self.assertS3Error(self.signed("PUT", f"/{BUCKET}/auth/1.json", "s3", "us-east-1", credentials, b"{}", owner), *s3)
        self.assertQueryError(self.signed("POST", "/", "sts", "us-east-1", credentials, WHO_AM_I, FORM), *sts)
        self.assertJsonError(self.json_call("secretsmanager", "secretsmanager.GetSecretValue", credentials, {"SecretId": "x"}), 400, json_code)
        entry = {"Source": "stored-messages", "DetailType": "t", "Detail": "{}", "EventBusName": "elsewhere"}
        self.assertJsonError(self.json_call("events", "AWSEvents.PutEvents", credentials, {"Entries": [entry]}), 400, json_code)
        return error

    def test_unknown_deleted_and_inactive_keys_are_refused_first(self):
        """AWS authenticates before it looks at anything else: S3 403
        InvalidAccessKeyId, STS 403 InvalidClientTokenId, JSON services 400
        UnrecognizedClientException. An Inactive key is answered as an unknown
        one (moto alone accepts it); so is a deleted one."""
        key = self.user_key("sm-auth-user", {"Effect": "Allow", "Action": "*", "Resource": "*"})
        deleted = self.fixture(VENDOR_ACCOUNT, "us-east-1", [
            {"service": "iam", "op": "create_access_key", "args": {"UserName": "sm-auth-user"}}])[0]["AccessKey"]
        deleted = Credentials(deleted["AccessKeyId"], deleted["SecretAccessKey"])
        self.fixture(VENDOR_ACCOUNT, "us-east-1", [
            {"service": "iam", "op": "delete_access_key", "args": {"UserName": "sm-auth-user", "AccessKeyId": deleted.access_key}}])

        # The active key gets past authentication, to the Region check.
        self.assertS3Error(self.signed("PUT", f"/{BUCKET}/auth/1.json", "s3", "us-east-1", key, b"{}"), 400, "AuthorizationHeaderMalformed")
        self.assertEqual(self.client("sts", key).get_caller_identity()["Arn"], f"arn:aws:iam::{VENDOR_ACCOUNT}:user/sm-auth-user")

        def set_status(status):
            self.fixture(VENDOR_ACCOUNT, "us-east-1", [{"service": "iam", "op": "update_access_key", "args": {
                "UserName": "sm-auth-user", "AccessKeyId": key.access_key, "Status": status}}])

        set_status("Inactive")
        try:
            for credentials in (UNKNOWN_KEY, deleted, key):
                with self.subTest(key=credentials.access_key):
                    error = self.refused_everywhere(
                        credentials, (403, "InvalidAccessKeyId"), (403, "InvalidClientTokenId"), "UnrecognizedClientException")
                    self.assertEqual(error.findtext("Message"), "The AWS Access Key Id you provided does not exist in our records.")
                    self.assertEqual(error.findtext("AWSAccessKeyId"), credentials.access_key)
            self.assertQueryError(self.signed("POST", "/", "sts", "us-east-1", key, WHO_AM_I, FORM), 403, "InvalidClientTokenId", INVALID_TOKEN)
            body = self.assertJsonError(self.json_call("secretsmanager", "secretsmanager.GetSecretValue", key, {"SecretId": "x"}),
                                        400, "UnrecognizedClientException", INVALID_TOKEN)
            self.assertEqual(set(body), {"__type", "message"})
            # As the SDKs see it.
            self.assertRefused(lambda: self.client("secretsmanager", key).get_secret_value(SecretId="x"), "UnrecognizedClientException", 400)
            self.assertRefused(lambda: self.s3(key).put_object(Bucket=BUCKET, Key="auth/2.json", Body=b"{}"), "InvalidAccessKeyId", 403)
        finally:
            set_status("Active")
        self.assertEqual(self.client("sts", key).get_caller_identity()["Account"], VENDOR_ACCOUNT)

    def test_a_wrong_signature_is_refused_before_any_policy(self):
        """A known key signed with another secret: S3 403
        SignatureDoesNotMatch, STS 403 SignatureDoesNotMatch, JSON services 400
        InvalidSignatureException, before the Region, owner or policy checks.
        Session tokens must go with their keys."""
        wrong = Credentials(self.vendor_key.access_key, "not-the-secret-not-the-secret")
        error = self.refused_everywhere(wrong, (403, "SignatureDoesNotMatch"), (403, "SignatureDoesNotMatch"), "InvalidSignatureException")
        self.assertEqual(error.findtext("AWSAccessKeyId"), wrong.access_key)
        self.assertEqual(
            error.findtext("Message"),
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        )
        self.assertQueryError(self.signed("POST", "/", "sts", "us-east-1", wrong, WHO_AM_I, FORM), 403, "SignatureDoesNotMatch", SIGNATURE_MESSAGE)
        self.assertJsonError(self.json_call("secretsmanager", "secretsmanager.GetSecretValue", wrong, {"SecretId": "x"}),
                             400, "InvalidSignatureException", SIGNATURE_MESSAGE)
        self.assertRefused(lambda: self.client("secretsmanager", wrong).get_secret_value(SecretId="x"), "InvalidSignatureException", 400)

        session = self.assume(ROLE, ExternalId=XID)
        self.s3(session).put_object(Bucket=BUCKET, Key="auth/session.json", Body=b"{}")  # sessions still work
        self.refused_everywhere(Credentials(session.access_key, "wrong", session.token),
                                (403, "SignatureDoesNotMatch"), (403, "SignatureDoesNotMatch"), "InvalidSignatureException")
        # A session key with another session's token, or without its own.
        other = self.assume(ROLE, ExternalId=XID)
        self.refused_everywhere(Credentials(session.access_key, session.secret_key, other.token),
                                (400, "InvalidToken"), (403, "InvalidClientTokenId"), "UnrecognizedClientException")
        self.refused_everywhere(Credentials(session.access_key, session.secret_key),
                                (403, "InvalidAccessKeyId"), (403, "InvalidClientTokenId"), "UnrecognizedClientException")
        # A long-term key with a session token.
        self.refused_everywhere(Credentials(self.vendor_key.access_key, self.vendor_key.secret_key, session.token),
                                (400, "InvalidToken"), (403, "InvalidClientTokenId"), "UnrecognizedClientException")

        # The signature covers the body: one changed after signing is refused.
        request = AWSRequest(method="POST", url=self.endpoint + "/", data=b'{"SecretId": "a"}', headers={
            "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.GetSecretValue"})
        SigV4Auth(self.vendor_key, "secretsmanager", "us-east-1").add_auth(request)
        status, headers, payload = self.raw("POST", "/", b'{"SecretId": "b"}', dict(request.prepare().headers))
        self.assertJsonError((status, headers, json.loads(payload)), 400, "InvalidSignatureException")

        # Presigned URLs (SigV4 in the query) are checked the same way.
        def presigned(credentials):
            url = self.client("s3", credentials, REGION, signature_version="s3v4").generate_presigned_url(
                "get_object", Params={"Bucket": BUCKET, "Key": "auth/session.json"})
            parts = urllib.parse.urlsplit(url)
            return self.raw("GET", f"{parts.path}?{parts.query}")

        self.assertS3Error(presigned(wrong), 403, "SignatureDoesNotMatch")
        self.assertS3Error(presigned(UNKNOWN_KEY), 403, "InvalidAccessKeyId")

    def test_root_user_access_keys(self):
        root = self.root_key()
        self.assertRegex(root.access_key, r"^AKIA[A-Z0-9]{16}$")
        self.assertTrue(root.secret_key)
        # AWS answers the account id as the root user's UserId.
        identity = self.client("sts", root).get_caller_identity()
        self.assertEqual((identity["Arn"], identity["Account"], identity["UserId"]), (f"arn:aws:iam::{CUSTOMER}:root", CUSTOMER, CUSTOMER))
        vendor_root = self.root_key(VENDOR_ACCOUNT)
        self.assertEqual(self.client("sts", vendor_root).get_caller_identity()["Arn"], f"arn:aws:iam::{VENDOR_ACCOUNT}:root")
        self.assertNotEqual(vendor_root.access_key, root.access_key)

        # Every action by identity in its own account, no policy needed ...
        s3 = self.s3(root)
        s3.put_object(Bucket=BUCKET, Key="root/1.json", Body=b"{}", ExpectedBucketOwner=CUSTOMER)
        self.assertEqual(s3.get_object(Bucket=BUCKET, Key="root/1.json")["Body"].read(), b"{}")
        # ... but a bucket policy's explicit Deny applies to the root user too.
        bucket = "acme-root-deny"
        self.bucket(bucket)
        self.fixture(CUSTOMER, REGION, [{"service": "s3", "op": "put_bucket_policy", "args": {"Bucket": bucket, "Policy": policy(
            {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/locked/*"})}}])
        s3.put_object(Bucket=bucket, Key="open/1.json", Body=b"{}")
        error = self.assertRefused(lambda: s3.put_object(Bucket=bucket, Key="locked/1.json", Body=b"{}"))
        self.assertEqual(
            error["Error"]["Message"],
            f'User: arn:aws:iam::{CUSTOMER}:root is not authorized to perform: s3:PutObject on resource: '
            f'"arn:aws:s3:::{bucket}/locked/1.json" with an explicit deny in a resource-based policy',
        )
        # Roles are not for the root user.
        error = self.assertRefused(lambda: self.assume("stored-messages-open", caller=root))
        self.assertEqual(error["Error"]["Message"], "Roles may not be assumed by root accounts.")
        # Only its secret signs for it.
        wrong = Credentials(root.access_key, "not-the-root-secret")
        self.assertQueryError(self.signed("POST", "/", "sts", "us-east-1", wrong, WHO_AM_I, FORM), 403, "SignatureDoesNotMatch")
        for body in ({"account": "1234"}, {"account": 111122223333}, {}):
            self.assertEqual(self.call("POST", "/_sm/root-access-key", body)[0], 400, body)

    def test_an_iam_user_needs_no_permission_to_learn_who_it_is(self):
        # A customer's IAM user, as an access-key destination hands it over.
        bare = self.user_key("archiver", account=CUSTOMER)
        identity = self.client("sts", bare).get_caller_identity()
        self.assertEqual((identity["Arn"], identity["Account"]), (f"arn:aws:iam::{CUSTOMER}:user/archiver", CUSTOMER))
        self.assertRefused(lambda: self.s3(bare).put_object(Bucket=BUCKET, Key="user/1.json", Body=b"{}"))
        # Not even an explicit Deny of everything keeps it from asking.
        denied = self.user_key("archiver-denied", {"Effect": "Deny", "Action": "*", "Resource": "*"}, account=CUSTOMER)
        self.assertEqual(self.client("sts", denied).get_caller_identity()["Arn"], f"arn:aws:iam::{CUSTOMER}:user/archiver-denied")
        # Granted, it writes into its account's bucket with its own keys.
        writer = self.user_key("archiver-writer", {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"},
                               account=CUSTOMER)
        self.s3(writer).put_object(Bucket=BUCKET, Key="user/1.json", Body=b"{}", ExpectedBucketOwner=CUSTOMER, IfNoneMatch="*")

    # ---- Secrets Manager ----------------------------------------------------------

    def functions_secrets(self, **assume):
        return self.client("secretsmanager", self.assume(FUNCTIONS_ROLE, account=VENDOR_ACCOUNT, **assume))

    def test_secrets_manager_round_trip_of_a_destination_secret(self):
        """What moto 5.2.5 does as AWS does, for the calls the functions make:
        CreateSecret with KmsKeyId, PutSecretValue (AWSCURRENT moves, the old
        version becomes AWSPREVIOUS), GetSecretValue by VersionId, DeleteSecret
        without recovery (gone at once: ResourceNotFoundException, 400 JSON)."""
        key = self.kms_key(VENDOR_ACCOUNT, "us-east-1")
        sm = self.functions_secrets()
        name = "stored-messages/org_a/dst_x"
        first = json.dumps({"access_key_id": "AKIAEXAMPLEEXAMPLE01", "secret_access_key": "first/secret+value"})
        second = json.dumps({"access_key_id": "AKIAEXAMPLEEXAMPLE02", "secret_access_key": "second/secret+value"})
        created = sm.create_secret(Name=name, SecretString=first, KmsKeyId=key["Arn"])
        self.assertRegex(created["ARN"], rf"^arn:aws:secretsmanager:us-east-1:{VENDOR_ACCOUNT}:secret:{re.escape(name)}-[A-Za-z0-9]{{6}}$")
        self.assertEqual(created["Name"], name)
        self.assertEqual(sm.describe_secret(SecretId=name)["KmsKeyId"], key["Arn"])

        put = sm.put_secret_value(SecretId=created["ARN"], SecretString=second)
        self.assertEqual((put["ARN"], put["VersionStages"]), (created["ARN"], ["AWSCURRENT"]))
        self.assertNotEqual(put["VersionId"], created["VersionId"])
        current = sm.get_secret_value(SecretId=name)
        self.assertEqual((current["SecretString"], current["VersionId"], current["VersionStages"]), (second, put["VersionId"], ["AWSCURRENT"]))
        previous = sm.get_secret_value(SecretId=created["ARN"], VersionId=created["VersionId"])
        self.assertEqual((previous["SecretString"], previous["VersionStages"]), (first, ["AWSPREVIOUS"]))
        self.assertEqual(sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["VersionId"], created["VersionId"])
        self.assertEqual(sm.describe_secret(SecretId=name)["VersionIdsToStages"],
                         {created["VersionId"]: ["AWSPREVIOUS"], put["VersionId"]: ["AWSCURRENT"]})

        deleted = sm.delete_secret(SecretId=created["ARN"], ForceDeleteWithoutRecovery=True)
        self.assertEqual((deleted["ARN"], deleted["Name"]), (created["ARN"], name))
        self.assertRefused(lambda: sm.get_secret_value(SecretId=name), "ResourceNotFoundException", 400)
        session = self.assume(FUNCTIONS_ROLE, account=VENDOR_ACCOUNT)
        self.assertJsonError(self.json_call("secretsmanager", "secretsmanager.GetSecretValue", session, {"SecretId": name}),
                             400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
        self.assertJsonError(self.json_call("secretsmanager", "secretsmanager.GetSecretValue", session,
                                            {"SecretId": created["ARN"], "VersionId": created["VersionId"]}),
                             400, "ResourceNotFoundException")
        # The name is free again at once.
        self.assertNotEqual(sm.create_secret(Name=name, SecretString=second)["ARN"], created["ARN"])
        sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)

    def test_secrets_manager_is_authorised_by_secret_arn(self):
        """Our role may use secretsmanager:* on secret:stored-messages/* only:
        moto alone checks "*" and would refuse it everything; here each call
        is authorised against the secret's ARN, refusals are 400
        AccessDeniedException in the JSON shape."""
        outside = self.fixture(VENDOR_ACCOUNT, "us-east-1", [
            {"service": "secretsmanager", "op": "create_secret", "args": {"Name": "other/existing", "SecretString": "not ours"}},
        ])[0]["ARN"]
        sm = self.functions_secrets()
        caller = self.session_arn(FUNCTIONS_ROLE, VENDOR_ACCOUNT)
        name = "stored-messages/org_a/dst_auth"
        arn = sm.create_secret(Name=name, SecretString="v1")["ARN"]
        sm.put_secret_value(SecretId=name, SecretString="v2")
        self.assertEqual(sm.get_secret_value(SecretId=arn)["SecretString"], "v2")
        self.assertEqual(sm.describe_secret(SecretId=name)["ARN"], arn)
        sm.update_secret(SecretId=name, Description="an access-key destination")

        error = self.assertRefused(lambda: sm.create_secret(Name="other/x", SecretString="x"), "AccessDeniedException", 400)
        self.assertRegex(
            error["Error"]["Message"],
            rf"^User: {re.escape(caller)} is not authorized to perform: secretsmanager:CreateSecret on resource: "
            rf"arn:aws:secretsmanager:us-east-1:{VENDOR_ACCOUNT}:secret:other/x-[A-Za-z0-9]{{6}} "
            r"because no identity-based policy allows the secretsmanager:CreateSecret action$",
        )
        for secret_id in ("other/existing", outside):
            error = self.assertRefused(lambda: sm.get_secret_value(SecretId=secret_id), "AccessDeniedException", 400)
            self.assertEqual(
                error["Error"]["Message"],
                f"User: {caller} is not authorized to perform: secretsmanager:GetSecretValue on resource: {outside} "
                "because no identity-based policy allows the secretsmanager:GetSecretValue action",
            )
        # On the wire, as aws-sdk-rust parses it.
        session = self.assume(FUNCTIONS_ROLE, account=VENDOR_ACCOUNT)
        body = self.assertJsonError(self.json_call("secretsmanager", "secretsmanager.GetSecretValue", session, {"SecretId": "other/existing"}),
                                    400, "AccessDeniedException")
        self.assertEqual(set(body), {"__type", "message"})
        for operation, parameters in (("PutSecretValue", {"SecretId": "other/existing", "SecretString": "x"}),
                                      ("DeleteSecret", {"SecretId": "other/existing", "ForceDeleteWithoutRecovery": True})):
            self.assertJsonError(self.json_call("secretsmanager", f"secretsmanager.{operation}", session, parameters), 400, "AccessDeniedException")
        # A secret that does not exist: ResourceNotFound only for those who may know.
        self.assertRefused(lambda: sm.get_secret_value(SecretId="stored-messages/none"), "ResourceNotFoundException", 400)
        self.assertRefused(lambda: sm.get_secret_value(SecretId="other/none"), "AccessDeniedException", 400)
        # Operations not authorised per secret stay moto's, against "*", and
        # its refusal comes in the JSON shape too.
        error = self.assertRefused(lambda: sm.list_secrets(), "AccessDeniedException", 400)
        self.assertTrue(error["Error"]["Message"].startswith(f"User: {caller} is not authorized to perform: secretsmanager:ListSecrets"))

        # A session policy narrows the role; an explicit Deny wins. (It must
        # allow the KMS use Secrets Manager makes as the session too, even of
        # aws/secretsmanager: test_secrets_manager_aws_managed_key_and_key_states.)
        narrowed = self.functions_secrets(Policy=policy({"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": SECRETS},
                                                        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}))
        self.assertEqual(narrowed.get_secret_value(SecretId=name)["SecretString"], "v2")
        error = self.assertRefused(lambda: narrowed.put_secret_value(SecretId=name, SecretString="v3"), "AccessDeniedException", 400)
        self.assertTrue(error["Error"]["Message"].endswith(
            f"on resource: {arn} because no session policy allows the secretsmanager:PutSecretValue action"))
        self.customer_role("sm-secrets-deny", trust({"AWS": VENDOR_ARN}), account=VENDOR_ACCOUNT, permissions=policy(
            {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": SECRETS},
            {"Effect": "Deny", "Action": "secretsmanager:GetSecretValue", "Resource": f"arn:aws:secretsmanager:*:*:secret:{name}-??????"}))
        denied = self.client("secretsmanager", self.assume("sm-secrets-deny", account=VENDOR_ACCOUNT))
        error = self.assertRefused(lambda: denied.get_secret_value(SecretId=name), "AccessDeniedException", 400)
        self.assertTrue(error["Error"]["Message"].endswith(f"on resource: {arn} with an explicit deny in an identity-based policy"))
        denied.describe_secret(SecretId=name)
        # A secret's resource policy can deny too.
        self.fixture(VENDOR_ACCOUNT, "us-east-1", [{"service": "secretsmanager", "op": "put_resource_policy", "args": {
            "SecretId": name, "ResourcePolicy": policy(
                {"Effect": "Deny", "Principal": "*", "Action": "secretsmanager:DeleteSecret", "Resource": "*"})}}])
        error = self.assertRefused(lambda: sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True), "AccessDeniedException", 400)
        self.assertTrue(error["Error"]["Message"].endswith("with an explicit deny in a resource-based policy"))

    # ---- Secrets Manager's KMS calls, as the caller ---------------------------

    def secrets_role(self, name, *statements, key_use=None):
        """A role of our account that may use secretsmanager:* on our secrets
        (and `statements`), with `key_use` (KMS statements, if any) as a
        separate inline policy; a Secrets Manager client of one session."""
        self.customer_role(name, trust({"AWS": VENDOR_ARN}), account=VENDOR_ACCOUNT, permissions=policy(
            {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": SECRETS}, *statements))
        if key_use:
            self.grant_kms(name, *key_use)
        return self.client("secretsmanager", self.assume(name, account=VENDOR_ACCOUNT))

    def grant_kms(self, role, *statements):
        """Replaces the role's inline `kms` policy (none: deletes it)."""
        if statements:
            call = {"op": "put_role_policy", "args": {"RoleName": role, "PolicyName": "kms", "PolicyDocument": policy(*statements)}}
        else:
            call = {"op": "delete_role_policy", "args": {"RoleName": role, "PolicyName": "kms"}}
        self.fixture(VENDOR_ACCOUNT, "us-east-1", [{"service": "iam", **call}])

    def test_secrets_manager_uses_kms_as_the_caller(self):
        """CreateSecret with a customer managed key whose key policy
        delegates to IAM (moto's default: the account root may do kms:*):
        Secrets Manager calls kms:GenerateDataKey and kms:Decrypt as the
        caller, with kms:ViaService secretsmanager.REGION.amazonaws.com, so
        the caller's IAM policies must allow them, in that context."""
        key = self.kms_key(VENDOR_ACCOUNT, "us-east-1")
        role = "sm-secrets-kms"
        sm = self.secrets_role(role)
        name = "stored-messages/kms/delegated"
        refused = self.assertRefused(lambda: sm.create_secret(Name=name, SecretString="v1", KmsKeyId=key["Arn"]),
                                     "AccessDeniedException", 400)
        self.assertEqual(refused["Error"]["Message"], NO_KMS)
        session = self.assume(role, account=VENDOR_ACCOUNT)
        body = self.assertJsonError(self.json_call("secretsmanager", "secretsmanager.CreateSecret", session, {
            "Name": name, "SecretString": "v1", "KmsKeyId": key["KeyId"]}), 400, "AccessDeniedException", NO_KMS)
        self.assertEqual(set(body), {"__type", "message"})
        self.assertRefused(lambda: sm.describe_secret(SecretId=name), "ResourceNotFoundException", 400)  # nothing created

        # The grant's context must be Secrets Manager's: not S3's.
        use_key = {"Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": key["Arn"]}
        self.grant_kms(role, dict(use_key, Condition={"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}))
        self.assertRefused(lambda: sm.create_secret(Name=name, SecretString="v1", KmsKeyId=key["Arn"]), "AccessDeniedException", 400)
        self.assertRefused(lambda: sm.describe_secret(SecretId=name), "ResourceNotFoundException", 400)

        # Through Secrets Manager: create, put and get work.
        self.grant_kms(role, dict(use_key, Condition=THROUGH_SECRETS_MANAGER))
        created = sm.create_secret(Name=name, SecretString="v1", KmsKeyId=key["Arn"])
        sm.put_secret_value(SecretId=name, SecretString="v2")
        self.assertEqual(sm.get_secret_value(SecretId=name, VersionId=created["VersionId"])["SecretString"], "v1")
        self.assertEqual(sm.get_secret_value(SecretId=created["ARN"])["SecretString"], "v2")

        # ... and for this secret only (its ARN in the encryption context).
        self.grant_kms(role, dict(use_key, Condition={
            **THROUGH_SECRETS_MANAGER,
            "StringLike": {"kms:EncryptionContext:SecretARN": f"arn:aws:secretsmanager:us-east-1:{VENDOR_ACCOUNT}:secret:{name}-??????"}}))
        put = sm.put_secret_value(SecretId=name, SecretString="v3")
        self.assertEqual(sm.get_secret_value(SecretId=name)["SecretString"], "v3")
        self.assertRefused(lambda: sm.create_secret(Name=f"{name}-other", SecretString="v1", KmsKeyId=key["Arn"]),
                           "AccessDeniedException", 400)

        # The encryption context names the secret's very ARN (the one
        # CreateSecret answered) and the version: SecretVersionId is the
        # ClientRequestToken, RequestToValidateKeyAccess for the check of a
        # new key.
        self.grant_kms(role, dict(use_key, Condition={"StringEquals": {
            **THROUGH_SECRETS_MANAGER["StringEquals"],
            "kms:EncryptionContext:SecretARN": created["ARN"],
            "kms:EncryptionContext:SecretVersionId": put["VersionId"]}}))
        self.assertEqual(sm.get_secret_value(SecretId=name)["SecretString"], "v3")
        self.assertRefused(lambda: sm.get_secret_value(SecretId=name, VersionId=created["VersionId"]), "AccessDeniedException", 400)
        token = "0123456789abcdef0123456789abcdef"
        self.grant_kms(role, dict(use_key, Condition={"StringEquals": {
            **THROUGH_SECRETS_MANAGER["StringEquals"],
            "kms:EncryptionContext:SecretVersionId": [token, "RequestToValidateKeyAccess"]}}))
        self.assertEqual(sm.create_secret(Name=f"{name}-token", SecretString="t", KmsKeyId=key["Arn"],
                                          ClientRequestToken=token)["VersionId"], token)
        self.assertRefused(lambda: sm.create_secret(Name=f"{name}-other", SecretString="t", KmsKeyId=key["Arn"]),
                           "AccessDeniedException", 400)

    def test_secrets_manager_kms_key_policy_naming_the_role(self):
        """A key policy that names the role itself (no delegation to IAM)
        grants without any identity-based KMS permission; a role it does not
        name is refused even with one."""
        named, other = "sm-secrets-kms-named", "sm-secrets-kms-unnamed"
        key = self.kms_key(VENDOR_ACCOUNT, "us-east-1", key_policy=policy({
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{VENDOR_ACCOUNT}:role/{named}"},
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*", "Condition": THROUGH_SECRETS_MANAGER}))
        sm = self.secrets_role(named)
        name = "stored-messages/kms/named"
        sm.create_secret(Name=name, SecretString="v1", KmsKeyId=key["KeyId"])
        sm.put_secret_value(SecretId=name, SecretString="v2")
        self.assertEqual(sm.get_secret_value(SecretId=name)["SecretString"], "v2")
        unnamed = self.secrets_role(other, key_use=[SECRETS_KEY_USE])
        self.assertRefused(lambda: unnamed.get_secret_value(SecretId=name), "AccessDeniedException", 400)
        self.assertRefused(lambda: unnamed.create_secret(Name=f"{name}-2", SecretString="v1", KmsKeyId=key["Arn"]),
                           "AccessDeniedException", 400)

    def test_secrets_manager_reads_need_kms_decrypt(self):
        """GetSecretValue decrypts as the caller: a role that lost kms:Decrypt
        cannot read what it wrote; kms:GenerateDataKey still lets it write a
        new version, but not retry one (the idempotent retry decrypts the
        stored value to compare), nor create a secret naming the key (whose
        use Secrets Manager validates with both calls)."""
        key = self.kms_key(VENDOR_ACCOUNT, "us-east-1")
        role = "sm-secrets-kms-revoked"
        sm = self.secrets_role(role, key_use=[SECRETS_KEY_USE])
        name = "stored-messages/kms/revoked"
        created = sm.create_secret(Name=name, SecretString="v1", KmsKeyId=key["Arn"])
        self.assertEqual(sm.get_secret_value(SecretId=name, VersionId=created["VersionId"])["SecretString"], "v1")

        self.grant_kms(role, dict(SECRETS_KEY_USE, Action="kms:GenerateDataKey"))
        for version in ({}, {"VersionId": created["VersionId"]}, {"VersionStage": "AWSCURRENT"}):
            error = self.assertRefused(lambda: sm.get_secret_value(SecretId=name, **version), "AccessDeniedException", 400)
            self.assertEqual(error["Error"]["Message"], NO_KMS)
        session = self.assume(role, account=VENDOR_ACCOUNT)
        self.assertJsonError(self.json_call("secretsmanager", "secretsmanager.GetSecretValue", session, {
            "SecretId": created["ARN"], "VersionId": created["VersionId"]}), 400, "AccessDeniedException", NO_KMS)
        token = "fedcba9876543210fedcba9876543210"
        self.assertEqual(sm.put_secret_value(SecretId=name, SecretString="v2", ClientRequestToken=token)["VersionId"], token)
        self.assertRefused(lambda: sm.put_secret_value(SecretId=name, SecretString="v2", ClientRequestToken=token),
                           "AccessDeniedException", 400)
        sm.describe_secret(SecretId=name)  # no KMS call
        # Naming a key, CreateSecret checks that the caller may decrypt with it too.
        self.assertRefused(lambda: sm.create_secret(Name=f"{name}-2", SecretString="v1", KmsKeyId=key["Arn"]),
                           "AccessDeniedException", 400)
        # Secrets Manager's own answers come first: no such version.
        self.assertRefused(lambda: sm.get_secret_value(SecretId=name, VersionId="0" * 32), "ResourceNotFoundException", 400)

        self.grant_kms(role)
        self.assertRefused(lambda: sm.put_secret_value(SecretId=name, SecretString="v3"), "AccessDeniedException", 400)
        self.grant_kms(role, SECRETS_KEY_USE)
        self.assertEqual(sm.get_secret_value(SecretId=name, VersionId=token)["SecretString"], "v2")

    def test_secrets_manager_aws_managed_key_and_key_states(self):
        """Without KmsKeyId the secret is encrypted with aws/secretsmanager,
        whose key policy lets the account's principals use it through Secrets
        Manager: no KMS permission needed (but a session policy limits it,
        as for aws/s3). A disabled key: EncryptionFailure on writes,
        DecryptionFailure on reads; a key that does not exist:
        EncryptionFailure."""
        role = "sm-secrets-no-kms"
        sm = self.secrets_role(role)
        name = "stored-messages/kms/managed"
        sm.create_secret(Name=name, SecretString="v1")
        sm.put_secret_value(SecretId=name, SecretString="v2")
        self.assertEqual(sm.get_secret_value(SecretId=name)["SecretString"], "v2")
        managed = self.fixture(VENDOR_ACCOUNT, "us-east-1", [
            {"service": "kms", "op": "describe_key", "args": {"KeyId": "alias/aws/secretsmanager"}}])[0]["KeyMetadata"]
        self.assertEqual(managed["KeyManager"], "AWS")
        limited = self.client("secretsmanager", self.assume(role, account=VENDOR_ACCOUNT, Policy=policy(
            {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": SECRETS})))
        self.assertRefused(lambda: limited.get_secret_value(SecretId=name), "AccessDeniedException", 400)
        limited.describe_secret(SecretId=name)

        # Key states, for a caller the key's policies would allow.
        user = self.secrets_role("sm-secrets-kms-states", key_use=[SECRETS_KEY_USE])
        disabled = self.kms_key(VENDOR_ACCOUNT, "us-east-1")
        self.fixture(VENDOR_ACCOUNT, "us-east-1", [{"service": "kms", "op": "disable_key", "args": {"KeyId": disabled["Arn"]}}])
        error = self.assertRefused(lambda: user.create_secret(Name=f"{name}-disabled", SecretString="v1", KmsKeyId=disabled["Arn"]),
                                   "EncryptionFailure", 400)
        self.assertRegex(error["Error"]["Message"], rf"^Secrets Manager can't encrypt the secret value: {re.escape(disabled['Arn'])} is disabled\. "
                         r"\(Service: AWSKMS; Status Code: 400; Error Code: DisabledException; Request ID: [0-9a-f-]{36}\)$")
        self.assertRefused(lambda: user.describe_secret(SecretId=f"{name}-disabled"), "ResourceNotFoundException", 400)

        key = self.kms_key(VENDOR_ACCOUNT, "us-east-1")
        user.create_secret(Name=f"{name}-later", SecretString="v1", KmsKeyId=key["Arn"])
        self.fixture(VENDOR_ACCOUNT, "us-east-1", [{"service": "kms", "op": "disable_key", "args": {"KeyId": key["Arn"]}}])
        error = self.assertRefused(lambda: user.get_secret_value(SecretId=f"{name}-later"), "DecryptionFailure", 400)
        self.assertTrue(error["Error"]["Message"].startswith(f"Secrets Manager can't decrypt the secret value: {key['Arn']} is disabled. "))
        self.assertRefused(lambda: user.put_secret_value(SecretId=f"{name}-later", SecretString="v2"), "EncryptionFailure", 400)
        self.fixture(VENDOR_ACCOUNT, "us-east-1", [{"service": "kms", "op": "enable_key", "args": {"KeyId": key["Arn"]}}])
        self.assertEqual(user.get_secret_value(SecretId=f"{name}-later")["SecretString"], "v1")

        # A key that does not exist (an alias name resolves in the secret's account).
        session = self.assume("sm-secrets-kms-states", account=VENDOR_ACCOUNT)
        body = self.assertJsonError(self.json_call("secretsmanager", "secretsmanager.CreateSecret", session, {
            "Name": f"{name}-missing", "SecretString": "v1", "KmsKeyId": "alias/sm-no-such-key"}), 400, "EncryptionFailure")
        self.assertTrue(body["message"].startswith(
            f"Secrets Manager can't encrypt the secret value: Alias arn:aws:kms:us-east-1:{VENDOR_ACCOUNT}:alias/sm-no-such-key is not found. "
            "(Service: AWSKMS; Status Code: 400; Error Code: NotFoundException; "), body)
        error = self.assertRefused(lambda: user.create_secret(Name=f"{name}-missing", SecretString="v1",
                                                              KmsKeyId="0000aaaa-00aa-00aa-00aa-000000aaaaaa"), "EncryptionFailure", 400)
        self.assertIn(f"Key 'arn:aws:kms:us-east-1:{VENDOR_ACCOUNT}:key/0000aaaa-00aa-00aa-00aa-000000aaaaaa' does not exist",
                      error["Error"]["Message"])

    def test_json_faults_and_moto_refusals_are_json(self):
        sm = self.functions_secrets()
        name = "stored-messages/faults/x"
        sm.create_secret(Name=name, SecretString="v1")
        status, state = self.call("POST", "/_sm/faults", {"seed": 1, "rules": [
            {"service": "secretsmanager", "target": "GetSecretValue", "action": "status", "status": 500, "count": 1},
            {"target": "secretsmanager.PutSecretValue", "action": "status", "status": 400, "code": "ThrottlingException",
             "message": "Rate exceeded", "count": 1},
        ]})
        self.assertEqual(status, 200, state)
        session = self.assume(FUNCTIONS_ROLE, account=VENDOR_ACCOUNT)
        self.assertJsonError(self.json_call("secretsmanager", "secretsmanager.GetSecretValue", session, {"SecretId": name}),
                             500, "InternalServiceError", "injected fault")
        self.assertEqual(sm.get_secret_value(SecretId=name)["SecretString"], "v1")  # count exhausted
        sm.describe_secret(SecretId=name)  # another operation: not matched
        error = self.assertRefused(lambda: sm.put_secret_value(SecretId=name, SecretString="v2"), "ThrottlingException", 400)
        self.assertEqual(error["Error"]["Message"], "Rate exceeded")
        sm.put_secret_value(SecretId=name, SecretString="v2")
        self.assertEqual(self.call("GET", "/_sm/faults")[1]["fired"], [1, 1])
        self.assertEqual(self.call("POST", "/_sm/faults", {"rules": [{"action": "status", "targets": "GetSecretValue"}]})[0], 400)

        # moto's own refusal of a JSON-protocol call (its identity check)
        # comes as awsQuery XML with a 403; EventBridge answers JSON, 400.
        bare = self.user_key("sm-no-permissions")
        body = self.assertJsonError(self.json_call("events", "AWSEvents.ListEventBuses", bare, {}), 400, "AccessDeniedException")
        self.assertTrue(body["message"].startswith(f"User: arn:aws:iam::{VENDOR_ACCOUNT}:user/sm-no-permissions is not authorized"))
        self.assertRefused(lambda: self.client("events", bare).list_event_buses(), "AccessDeniedException", 400)
        # Successful answers say they are JSON.
        status, headers, _ = self.json_call("secretsmanager", "secretsmanager.DescribeSecret", session, {"SecretId": name})
        self.assertEqual((status, headers["Content-Type"]), (200, "application/x-amz-json-1.1"))

    # ---- SQS -----------------------------------------------------------------

    def sqs_queues(self, *names, account=VENDOR_ACCOUNT, attributes=None):
        """New queues in us-east-1, made by fixture; their URLs as moto gives
        them (http://127.0.0.1:PORT/ACCOUNT/NAME)."""
        args = {"Attributes": attributes} if attributes else {}
        return [answer["QueueUrl"] for answer in self.fixture(account, "us-east-1", [
            {"service": "sqs", "op": "create_queue", "args": {"QueueName": name, **args}} for name in names])]

    def sqs_role(self, name, *statements, **assume):
        """A role of our account whose identity-based policy is `statements`
        (the functions' execution role, as the backfill feature grants it);
        an SQS client of one session of it."""
        self.customer_role(name, trust({"AWS": VENDOR_ARN}), account=VENDOR_ACCOUNT, permissions=policy(*statements))
        return self.client("sqs", self.assume(name, account=VENDOR_ACCOUNT, **assume))

    @staticmethod
    def queue_arn(name, account=VENDOR_ACCOUNT):
        return f"arn:aws:sqs:us-east-1:{account}:{name}"

    def assertSqsDenied(self, call, caller, resource, reason, action="sqs:sendmessage"):
        """SQS's refusal as botocore parses it: the code from
        x-amzn-query-error (AccessDenied), 403, AWS's message with the action
        in lower case."""
        error = self.assertRefused(call, "AccessDenied", 403)
        self.assertEqual(error["Error"]["Message"],
                         f"User: {caller} is not authorized to perform: {action} on resource: {resource} {reason}")
        return error

    def test_sqs_is_authorised_against_the_queue(self):
        """A grant of sqs:SendMessage on exactly one queue: SendMessage and
        SendMessageBatch (authorised as sqs:SendMessage) reach it, by moto's
        QueueUrl or SQS's https form; every other queue, and every other
        action, is refused, as SQS answers the JSON protocol."""
        self.assertEqual(self.client("sqs", self.vendor_key).meta.service_model.protocol, "json")
        url_a, url_b = self.sqs_queues("sm-backfill-a", "sm-backfill-b")
        arn_a, arn_b = self.queue_arn("sm-backfill-a"), self.queue_arn("sm-backfill-b")
        sqs = self.sqs_role("sqs-backfill-sender", {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": arn_a})
        caller = self.session_arn("sqs-backfill-sender", VENDOR_ACCOUNT)

        sqs.send_message(QueueUrl=url_a, MessageBody="one")
        batch = sqs.send_message_batch(QueueUrl=url_a, Entries=[{"Id": "2", "MessageBody": "two"}, {"Id": "3", "MessageBody": "three"}])
        self.assertEqual(([entry["Id"] for entry in batch["Successful"]], batch.get("Failed", [])), (["2", "3"], []))
        sqs.send_message(QueueUrl=f"https://sqs.us-east-1.amazonaws.com/{VENDOR_ACCOUNT}/sm-backfill-a", MessageBody="four")
        received = self.fixture(VENDOR_ACCOUNT, "us-east-1", [
            {"service": "sqs", "op": "receive_message", "args": {"QueueUrl": url_a, "MaxNumberOfMessages": 10}}])[0]["Messages"]
        self.assertEqual(sorted(message["Body"] for message in received), ["four", "one", "three", "two"])

        no_grant = "because no identity-based policy allows the sqs:sendmessage action"
        self.assertSqsDenied(lambda: sqs.send_message(QueueUrl=url_b, MessageBody="x"), caller, arn_b, no_grant)
        self.assertSqsDenied(lambda: sqs.send_message_batch(QueueUrl=url_b, Entries=[{"Id": "1", "MessageBody": "x"}]),
                             caller, arn_b, no_grant)
        # A queue that does not exist is refused as the ARN of its name.
        self.assertSqsDenied(lambda: sqs.send_message(QueueUrl=f"{url_a}-missing", MessageBody="x"), caller, f"{arn_a}-missing", no_grant)
        # Other actions on the granted queue are not granted.
        self.assertSqsDenied(lambda: sqs.receive_message(QueueUrl=url_a), caller, arn_a,
                             "because no identity-based policy allows the sqs:receivemessage action", "sqs:receivemessage")
        self.assertSqsDenied(lambda: sqs.get_queue_url(QueueName="sm-backfill-a"), caller, arn_a,
                             "because no identity-based policy allows the sqs:getqueueurl action", "sqs:getqueueurl")
        # moto's own refusal of an action not authorised per queue is SQS's too.
        error = self.assertRefused(lambda: sqs.list_queues(), "AccessDenied", 403)
        self.assertTrue(error["Error"]["Message"].startswith(f"User: {caller} is not authorized to perform: sqs:ListQueues"))

        # On the wire, as aws-sdk-sqs sends and parses it.
        session = self.assume("sqs-backfill-sender", account=VENDOR_ACCOUNT)
        headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.SendMessage"}
        status, answer_headers, payload = self.signed(
            "POST", "/", "sqs", "us-east-1", session, json.dumps({"QueueUrl": url_b, "MessageBody": "x"}).encode(), headers)
        self.assertEqual((status, answer_headers["x-amzn-query-error"]), (403, "AccessDenied;Sender"))
        self.assertEqual(answer_headers["Content-Type"], "application/x-amz-json-1.0")
        self.assertEqual(json.loads(payload), {
            "__type": "com.amazon.coral.service#AccessDeniedException",
            "Message": f"User: {caller} is not authorized to perform: sqs:sendmessage on resource: {arn_b} {no_grant}",
        })
        status, _, payload = self.signed(
            "POST", "/", "sqs", "us-east-1", session, json.dumps({"QueueUrl": url_a, "MessageBody": "x"}).encode(), headers)
        self.assertEqual(status, 200, payload)
        self.assertIn("MessageId", json.loads(payload))

    def test_sqs_explicit_identity_deny_refuses(self):
        url_a, url_b = self.sqs_queues("sm-deny-a", "sm-deny-b")
        sqs = self.sqs_role("sqs-denied-sender",
                            {"Effect": "Allow", "Action": "sqs:*", "Resource": f"arn:aws:sqs:*:{VENDOR_ACCOUNT}:sm-deny-*"},
                            {"Effect": "Deny", "Action": "sqs:SendMessage", "Resource": self.queue_arn("sm-deny-a")})
        caller = self.session_arn("sqs-denied-sender", VENDOR_ACCOUNT)
        denied = "with an explicit deny in an identity-based policy"
        self.assertSqsDenied(lambda: sqs.send_message(QueueUrl=url_a, MessageBody="x"), caller, self.queue_arn("sm-deny-a"), denied)
        self.assertSqsDenied(lambda: sqs.send_message_batch(QueueUrl=url_a, Entries=[{"Id": "1", "MessageBody": "x"}]),
                             caller, self.queue_arn("sm-deny-a"), denied)
        # The Deny names one action on one queue: the rest of the grant stands.
        sqs.get_queue_attributes(QueueUrl=url_a, AttributeNames=["QueueArn"])
        sqs.send_message(QueueUrl=url_b, MessageBody="x")
        # A queue the grant covers that does not exist: moto's QueueDoesNotExist,
        # with the awsQuery code (x-amzn-query-error) the SDKs dispatch on.
        error = self.assertRefused(lambda: sqs.send_message(QueueUrl=f"{url_b}-missing", MessageBody="x"),
                                   "AWS.SimpleQueueService.NonExistentQueue", 400)
        self.assertEqual(error["ResponseMetadata"]["HTTPHeaders"]["x-amzn-query-error"], "AWS.SimpleQueueService.NonExistentQueue;Sender")

    def test_sqs_session_policy_limits_the_session(self):
        url, = self.sqs_queues("sm-session-queue")
        arn = self.queue_arn("sm-session-queue")
        grant = {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn}
        reader = policy({"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": "*"})
        sqs = self.sqs_role("sqs-session-sender", grant, Policy=reader)
        self.assertSqsDenied(lambda: sqs.send_message(QueueUrl=url, MessageBody="x"),
                             self.session_arn("sqs-session-sender", VENDOR_ACCOUNT), arn,
                             "because no session policy allows the sqs:sendmessage action")
        # A session policy that allows it limits nothing; one that denies wins.
        self.client("sqs", self.assume("sqs-session-sender", account=VENDOR_ACCOUNT, Policy=policy(grant))).send_message(
            QueueUrl=url, MessageBody="x")
        denying = policy({"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}, {"Effect": "Deny", "Action": "sqs:SendMessage", "Resource": arn})
        narrowed = self.client("sqs", self.assume("sqs-session-sender", account=VENDOR_ACCOUNT, Policy=denying))
        self.assertSqsDenied(lambda: narrowed.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "x"}]),
                             self.session_arn("sqs-session-sender", VENDOR_ACCOUNT), arn, "with an explicit deny in a session policy")

    def test_sqs_queue_policy_denies_and_grants_within_the_account(self):
        """The queue's policy: its explicit Deny wins over the identity-based
        Allow; within the account, its Allow naming the caller grants alone
        (one naming the account only delegates to IAM)."""
        role_arn = f"arn:aws:iam::{VENDOR_ACCOUNT}:role/sqs-policy-sender"
        deny = policy({"Effect": "Deny", "Principal": {"AWS": role_arn}, "Action": "sqs:SendMessage", "Resource": "*"})
        allow_role = policy({"Effect": "Allow", "Principal": {"AWS": role_arn}, "Action": "sqs:SendMessage",
                             "Resource": self.queue_arn("sm-policy-granting")})
        allow_account = policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{VENDOR_ACCOUNT}:root"},
                                "Action": "sqs:SendMessage", "Resource": self.queue_arn("sm-policy-account")})
        denying, = self.sqs_queues("sm-policy-denying", attributes={"Policy": deny})
        granting, = self.sqs_queues("sm-policy-granting", attributes={"Policy": allow_role})
        account_only, = self.sqs_queues("sm-policy-account", attributes={"Policy": allow_account})
        caller = self.session_arn("sqs-policy-sender", VENDOR_ACCOUNT)
        sqs = self.sqs_role("sqs-policy-sender", {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": self.queue_arn("sm-policy-denying")})
        for call in (lambda: sqs.send_message(QueueUrl=denying, MessageBody="x"),
                     lambda: sqs.send_message_batch(QueueUrl=denying, Entries=[{"Id": "1", "MessageBody": "x"}])):
            self.assertSqsDenied(call, caller, self.queue_arn("sm-policy-denying"), "with an explicit deny in a resource-based policy")
        sqs.send_message(QueueUrl=granting, MessageBody="granted by the queue policy")
        sqs.send_message_batch(QueueUrl=granting, Entries=[{"Id": "1", "MessageBody": "and in a batch"}])
        self.assertSqsDenied(lambda: sqs.send_message(QueueUrl=account_only, MessageBody="x"), caller,
                             self.queue_arn("sm-policy-account"), "because no identity-based policy allows the sqs:sendmessage action")
        # The queue policy grants SendMessage only.
        self.assertSqsDenied(lambda: sqs.receive_message(QueueUrl=granting), caller, self.queue_arn("sm-policy-granting"),
                             "because no identity-based policy allows the sqs:receivemessage action", "sqs:receivemessage")

    def test_sqs_cross_account_queue_needs_its_policy(self):
        """A QueueUrl of another account is authorised against that
        account's queue: a grant in our account reaches it only once the
        queue's policy allows us too, and then the message lands there, not
        in our queue of the same name."""
        theirs, = self.sqs_queues("sm-shared-queue", account=CUSTOMER)
        ours, = self.sqs_queues("sm-shared-queue")
        their_arn = self.queue_arn("sm-shared-queue", CUSTOMER)
        sqs = self.sqs_role("sqs-cross-sender", {"Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:GetQueueUrl"],
                                                 "Resource": "arn:aws:sqs:*:*:sm-shared-queue"})
        caller = self.session_arn("sqs-cross-sender", VENDOR_ACCOUNT)
        self.assertSqsDenied(lambda: sqs.send_message(QueueUrl=theirs, MessageBody="x"), caller, their_arn,
                             "because no resource-based policy allows the sqs:sendmessage action")
        self.assertSqsDenied(lambda: sqs.get_queue_url(QueueName="sm-shared-queue", QueueOwnerAWSAccountId=CUSTOMER), caller,
                             their_arn, "because no resource-based policy allows the sqs:getqueueurl action", "sqs:getqueueurl")
        self.assertEqual(sqs.get_queue_url(QueueName="sm-shared-queue")["QueueUrl"], ours)

        self.fixture(CUSTOMER, "us-east-1", [{"service": "sqs", "op": "set_queue_attributes", "args": {
            "QueueUrl": theirs, "Attributes": {"Policy": policy({
                "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{VENDOR_ACCOUNT}:role/sqs-cross-sender"},
                "Action": ["sqs:SendMessage", "sqs:GetQueueUrl"], "Resource": their_arn})}}}])
        self.assertEqual(sqs.get_queue_url(QueueName="sm-shared-queue", QueueOwnerAWSAccountId=CUSTOMER)["QueueUrl"], theirs)
        sqs.send_message(QueueUrl=theirs, MessageBody="to the customer")
        sqs.send_message(QueueUrl=f"https://sqs.us-east-1.amazonaws.com/{CUSTOMER}/sm-shared-queue", MessageBody="again")
        def bodies(account, url):
            answer = self.fixture(account, "us-east-1", [
                {"service": "sqs", "op": "receive_message", "args": {"QueueUrl": url, "MaxNumberOfMessages": 10}}])[0]
            return sorted(message["Body"] for message in answer.get("Messages", []))

        self.assertEqual(bodies(CUSTOMER, theirs), ["again", "to the customer"])
        self.assertEqual(bodies(VENDOR_ACCOUNT, ours), [])
        # A role without the identity-based grant is still refused.
        other = self.sqs_role("sqs-cross-other", {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": self.queue_arn("sm-shared-queue")})
        self.assertSqsDenied(lambda: other.send_message(QueueUrl=theirs, MessageBody="x"), self.session_arn("sqs-cross-other", VENDOR_ACCOUNT),
                             their_arn, "because no identity-based policy allows the sqs:sendmessage action")

    def test_sqs_fixture_calls_are_unaffected(self):
        """Test set-up through /_sm/aws makes, reads and deletes messages
        whatever the policies (a queue policy denying everyone included)."""
        deny_all = policy({"Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": "*"})
        url = self.fixture(VENDOR_ACCOUNT, "us-east-1", [
            {"service": "sqs", "op": "create_queue", "args": {"QueueName": "sm-fixture-queue"}}])[0]["QueueUrl"]
        self.assertEqual(url, self.fixture(VENDOR_ACCOUNT, "us-east-1", [
            {"service": "sqs", "op": "get_queue_url", "args": {"QueueName": "sm-fixture-queue"}}])[0]["QueueUrl"])
        sqs = self.sqs_role("sqs-fixture-sender", {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": self.queue_arn("sm-fixture-queue")})
        sqs.send_message(QueueUrl=url, MessageBody="from the role")
        results = self.fixture(VENDOR_ACCOUNT, "us-east-1", [
            {"service": "sqs", "op": "set_queue_attributes", "args": {"QueueUrl": url, "Attributes": {"Policy": deny_all}}},
            {"service": "sqs", "op": "send_message", "args": {"QueueUrl": url, "MessageBody": "from a fixture"}},
            {"service": "sqs", "op": "receive_message", "args": {"QueueUrl": url, "MaxNumberOfMessages": 10}},
        ])
        received = results[2]["Messages"]
        self.assertEqual(sorted(message["Body"] for message in received), ["from a fixture", "from the role"])
        self.fixture(VENDOR_ACCOUNT, "us-east-1", [
            {"service": "sqs", "op": "delete_message", "args": {"QueueUrl": url, "ReceiptHandle": message["ReceiptHandle"]}}
            for message in received])
        attributes = self.fixture(VENDOR_ACCOUNT, "us-east-1", [{"service": "sqs", "op": "get_queue_attributes", "args": {
            "QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]}}])[0]["Attributes"]
        self.assertEqual(attributes, {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"})
        # ... while the role, now denied by the queue policy, is refused.
        self.assertSqsDenied(lambda: sqs.send_message(QueueUrl=url, MessageBody="x"), self.session_arn("sqs-fixture-sender", VENDOR_ACCOUNT),
                             self.queue_arn("sm-fixture-queue"), "with an explicit deny in a resource-based policy")

    # ---- recorder and fixtures ----------------------------------------------

    def test_recorder_shows_parameters_and_headers(self):
        self.call("DELETE", "/_sm/requests")
        scope = policy({"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"})
        credentials = self.assume(ROLE, ExternalId=XID, Policy=scope, DurationSeconds=900)
        self.s3(credentials).put_object(Bucket=BUCKET, Key="recorded/1.json", Body=b"{}", ExpectedBucketOwner=CUSTOMER)
        self.assertRefused(lambda: self.assume(ROLE, ExternalId="WrongExternalIdWrongExternalId"))
        self.fixture(CUSTOMER, REGION, [{"service": "s3", "op": "list_objects_v2", "args": {"Bucket": BUCKET}}])

        recorded = self.requests()
        assumes = [r for r in recorded if r["params"].get("Action") == "AssumeRole"]
        self.assertEqual([r["status"] for r in assumes], [200, 403])
        first = assumes[0]
        self.assertEqual(first["params"]["ExternalId"], XID)
        self.assertEqual(first["params"]["RoleArn"], f"arn:aws:iam::{CUSTOMER}:role/{ROLE}")
        self.assertEqual(first["params"]["RoleSessionName"], "tests")
        self.assertEqual(first["params"]["DurationSeconds"], "900")
        self.assertEqual(json.loads(first["params"]["Policy"]), json.loads(scope))
        self.assertEqual((first["service"], first["region"], first["access_key_id"]), ("sts", "us-east-1", self.vendor_key.access_key))
        self.assertEqual((first["method"], first["path"]), ("POST", "/"))
        put = [r for r in recorded if r["method"] == "PUT"][0]
        self.assertEqual((put["path"], put["service"], put["region"], put["status"]), (f"/{BUCKET}/recorded/1.json", "s3", REGION, 200))
        self.assertEqual(put["access_key_id"], credentials.access_key)
        self.assertEqual(self.header(put, "x-amz-expected-bucket-owner"), CUSTOMER)
        self.assertTrue(self.header(put, "authorization").startswith("AWS4-HMAC-SHA256 Credential="))
        self.assertEqual(put["params"], {})
        self.assertEqual(set(put), {"method", "path", "query", "headers", "service", "region", "access_key_id", "params", "status", "at"})
        # Arrival times on the emulator's clock, in order: how a test times
        # the span between two requests (issue 15's time to detect).
        self.assertLessEqual(first["at"], put["at"])
        self.assertLess(abs(put["at"] - time.time()), 60)
        # Neither the harness's own API nor fixture traffic is recorded.
        self.assertFalse([r for r in recorded if r["path"].startswith(("/_sm", "/moto-api"))])
        self.assertFalse([r for r in recorded if r["method"] == "GET"])

        cleared = self.call("DELETE", "/_sm/requests")[1]["cleared"]
        self.assertEqual(cleared, len(recorded))
        self.assertEqual(self.requests(), [])

    def test_fixtures_manage_kms_keys_and_bucket_settings(self):
        # Set-up the KMS and bucket-policy tests rely on, in a customer account.
        bucket = "acme-fixture-settings"
        key = self.fixture(CUSTOMER, REGION, [{"service": "kms", "op": "create_key", "args": {"Description": "fixture"}}])[0]["KeyMetadata"]
        self.assertTrue(key["Arn"].startswith(f"arn:aws:kms:{REGION}:{CUSTOMER}:key/"))
        key_policy = policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{CUSTOMER}:root"}, "Action": "kms:*", "Resource": "*"})
        encryption = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["Arn"]},
                                 "BucketKeyEnabled": True}]}
        bucket_policy = policy({"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::{bucket}/*"})
        results = self.fixture(CUSTOMER, REGION, [
            {"service": "kms", "op": "create_alias", "args": {"AliasName": "alias/sm-fixture", "TargetKeyId": key["KeyId"]}},
            {"service": "kms", "op": "put_key_policy", "args": {"KeyId": key["KeyId"], "PolicyName": "default", "Policy": key_policy}},
            {"service": "kms", "op": "disable_key", "args": {"KeyId": key["Arn"]}},  # by ARN, as AWS takes it
            {"service": "kms", "op": "describe_key", "args": {"KeyId": "alias/sm-fixture"}},
            {"service": "kms", "op": "get_key_policy", "args": {"KeyId": key["KeyId"], "PolicyName": "default"}},
            {"service": "s3", "op": "create_bucket", "args": {"Bucket": bucket, "CreateBucketConfiguration": {"LocationConstraint": REGION}}},
            {"service": "s3", "op": "put_bucket_encryption", "args": {"Bucket": bucket, "ServerSideEncryptionConfiguration": encryption}},
            {"service": "s3", "op": "put_bucket_policy", "args": {"Bucket": bucket, "Policy": bucket_policy}},
            {"service": "s3", "op": "get_bucket_encryption", "args": {"Bucket": bucket}},
            {"service": "s3", "op": "get_bucket_policy", "args": {"Bucket": bucket}},
        ])
        self.assertEqual((results[3]["KeyMetadata"]["KeyId"], results[3]["KeyMetadata"]["KeyState"]), (key["KeyId"], "Disabled"))
        self.assertEqual(json.loads(results[4]["Policy"]), json.loads(key_policy))
        self.assertEqual(results[8]["ServerSideEncryptionConfiguration"], encryption)
        self.assertEqual(json.loads(results[9]["Policy"]), json.loads(bucket_policy))
        # None of it was recorded as traffic of the system under test.
        self.assertFalse([r for r in self.requests() if r["service"] == "kms" or bucket in r["path"]])

    def test_fixture_errors_name_the_failing_call(self):
        status, answer = self.call("POST", "/_sm/aws", {"account": CUSTOMER, "region": REGION, "calls": [
            {"service": "s3", "op": "head_bucket", "args": {"Bucket": BUCKET}},
            {"service": "s3", "op": "get_object", "args": {"Bucket": BUCKET, "Key": "no/such/key"}},
        ]})
        self.assertEqual((status, answer["index"]), (400, 1))
        self.assertIn("NoSuchKey", answer["error"])
        # Enforcement is back on afterwards: an unknown key is refused.
        unknown = self.client("s3", UNKNOWN_KEY, REGION)
        self.assertRefused(lambda: unknown.list_objects_v2(Bucket=BUCKET), "InvalidAccessKeyId", 403)


class ConditionEvaluatorTest(unittest.TestCase):
    """The Condition evaluator case by case against AWS's documented
    semantics ("IAM JSON policy elements: Condition operators", "Conditions
    with multiple context keys or values", "Single-valued vs. multivalued
    context keys"), on the server module itself: every policy the emulator
    decides goes through it."""

    @classmethod
    def setUpClass(cls):
        spec = importlib.util.spec_from_file_location("emulator_server", SERVER)
        cls.server = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cls.server)

    def holds(self, operator, key, expected, context):
        return self.server.condition_holds(operator, key, expected, context)

    def test_operators(self):
        cases = [
            # operator, key, policy values, request context, expected
            ("StringEquals", "sts:ExternalId", "abc", {"sts:externalid": "abc"}, True),
            ("StringEquals", "STS:EXTERNALID", "abc", {"sts:externalid": "abc"}, True),  # key names: any case
            ("StringEquals", "sts:ExternalId", "ABC", {"sts:externalid": "abc"}, False),  # values: case-sensitive
            ("StringEquals", "sts:ExternalId", ["x", "abc"], {"sts:externalid": "abc"}, True),  # values OR'ed
            ("StringEquals", "sts:ExternalId", "abc", {}, False),  # absent: no match
            ("StringNotEquals", "sts:ExternalId", ["x", "abc"], {"sts:externalid": "abc"}, False),  # NOR
            ("StringNotEquals", "sts:ExternalId", ["x", "y"], {"sts:externalid": "abc"}, True),
            ("StringNotEquals", "sts:ExternalId", "x", {}, True),  # negated, absent: true
            ("StringEqualsIgnoreCase", "k", "AbC", {"k": "aBc"}, True),
            ("StringNotEqualsIgnoreCase", "k", "AbC", {"k": "aBc"}, False),
            ("StringLike", "k", "arn:aws:s3:::b/*", {"k": "arn:aws:s3:::b/x/y.json"}, True),  # * crosses /
            ("StringLike", "k", "a?c", {"k": "abc"}, True),
            ("StringLike", "k", "a?c", {"k": "abbc"}, False),
            ("StringNotLike", "k", "a*", {}, True),
            ("StringNotLike", "k", "a*", {"k": "abc"}, False),
            ("Bool", "aws:SecureTransport", "false", {"aws:securetransport": "true"}, False),
            ("Bool", "aws:SecureTransport", True, {"aws:securetransport": "true"}, True),  # JSON true
            ("Bool", "aws:SecureTransport", "true", {}, False),
            ("Null", "s3:if-none-match", "true", {}, True),
            ("Null", "s3:if-none-match", "true", {"s3:if-none-match": "*"}, False),
            ("Null", "s3:if-none-match", "false", {"s3:if-none-match": "*"}, True),
            ("Null", "aws:TagKeys", "true", {"aws:tagkeys": []}, True),  # an empty list is absent
            ("ArnLike", "aws:PrincipalArn", "arn:aws:iam::*:role/x*", {"aws:principalarn": "arn:aws:iam::111122223333:role/xyz"}, True),
            ("ArnEquals", "aws:PrincipalArn", "arn:aws:iam::*:role/x*", {"aws:principalarn": "arn:aws:iam::111122223333:role/xyz"}, True),
            ("ArnLike", "aws:PrincipalArn", "arn:aws:iam::*:role/x*", {"aws:principalarn": "arn:aws:iam::111122223333:user/xyz"}, False),
            ("ArnLike", "aws:PrincipalArn", "arn:aws:*", {"aws:principalarn": "not-an-arn"}, False),
            ("ArnNotLike", "aws:PrincipalArn", "arn:aws:iam::*:role/x*", {}, True),
            ("ArnNotEquals", "aws:PrincipalArn", "arn:aws:iam::*:role/x*", {"aws:principalarn": "arn:aws:iam::1:role/xyz"}, False),
            ("DateLessThan", "aws:TokenIssueTime", "2024-01-01T00:00:00Z", {"aws:tokenissuetime": "2023-12-31T23:59:59.999999Z"}, True),
            ("DateLessThan", "aws:TokenIssueTime", "2024-01-01T00:00:00Z", {"aws:tokenissuetime": "2024-01-01T00:00:00Z"}, False),
            ("DateLessThan", "aws:CurrentTime", "1704067200", {"aws:currenttime": "2023-12-31T00:00:00Z"}, True),  # epoch
            ("DateGreaterThan", "aws:CurrentTime", "2024-01-01", {"aws:currenttime": "2024-01-02T00:00:00Z"}, True),
            ("DateGreaterThan", "aws:CurrentTime", "2024-01-01", {}, False),
            ("NumericLessThan", "s3:max-keys", "10", {"s3:max-keys": "9"}, True),
            ("StringEqualsIfExists", "k", "a", {}, True),
            ("StringEqualsIfExists", "k", "a", {"k": "b"}, False),
            ("StringNotEqualsIfExists", "k", "a", {"k": "a"}, False),
            ("ForAnyValue:StringEquals", "aws:TagKeys", ["a", "b"], {"aws:tagkeys": ["c", "b"]}, True),
            ("ForAnyValue:StringEquals", "aws:TagKeys", ["a", "b"], {"aws:tagkeys": ["c", "d"]}, False),
            ("ForAnyValue:StringEquals", "aws:TagKeys", "a", {}, False),  # absent: false
            ("ForAnyValue:StringEqualsIfExists", "aws:TagKeys", "a", {}, False),  # still false
            ("ForAllValues:StringEquals", "aws:TagKeys", ["a", "b"], {"aws:tagkeys": ["a", "b"]}, True),
            ("ForAllValues:StringEquals", "aws:TagKeys", ["a", "b"], {"aws:tagkeys": ["a", "c"]}, False),
            ("ForAllValues:StringEquals", "aws:TagKeys", "a", {}, True),  # absent: true
            ("ForAllValues:StringEquals", "aws:TagKeys", "a", {"aws:tagkeys": []}, True),  # empty: true
            # The IAM guide's table for ForAllValues:StringNotLike "key1*".
            ("ForAllValues:StringNotLike", "aws:TagKeys", "key1*", {"aws:tagkeys": ["key1:legal"]}, False),
            ("ForAllValues:StringNotLike", "aws:TagKeys", "key1*", {"aws:tagkeys": ["key2:audit"]}, True),
            ("ForAllValues:StringNotLike", "aws:TagKeys", "key1*", {}, True),
            # A multivalued key without a set operator (assumption): any value / none.
            ("StringEquals", "kms:ResourceAliases", "alias/a", {"kms:resourcealiases": ["alias/b", "alias/a"]}, True),
            ("StringNotEquals", "kms:ResourceAliases", "alias/a", {"kms:resourcealiases": ["alias/b", "alias/a"]}, False),
            # Not understood: None, which fails closed.
            ("StringFuzzyEquals", "k", "a", {"k": "a"}, None),
            ("ForAnyValue:Null", "k", "true", {}, None),
            ("IpAddress", "aws:SourceIp", "10.0.0.0/8", {}, None),
            ("StringEquals", "k", {"nested": "object"}, {"k": "a"}, None),
        ]
        for operator, key, expected, context, result in cases:
            with self.subTest(operator=operator, key=key, expected=expected, context=context):
                self.assertIs(self.holds(operator, key, expected, context), result)

    def test_blocks_and_failing_closed(self):
        conditions_hold = self.server.conditions_hold
        context = {"a": "1", "b": "2"}
        both = {"StringEquals": {"a": "1", "b": "2"}}
        self.assertTrue(conditions_hold(both, context, "Allow"))  # keys AND'ed
        self.assertFalse(conditions_hold({"StringEquals": {"a": "1", "b": "3"}}, context, "Allow"))
        self.assertFalse(conditions_hold({"StringEquals": {"a": "1"}, "Null": {"b": "true"}}, context, "Allow"))  # operators AND'ed
        unknown = {"StringEquals": {"a": "9"}, "Fuzzy": {"b": "2"}}
        self.assertFalse(conditions_hold(unknown, context, "Allow"))  # an Allow not understood grants nothing
        self.assertTrue(conditions_hold(unknown, context, "Deny"))  # a Deny not understood applies
        self.assertTrue(conditions_hold({}, context, "Allow"))

    def test_statements_principals_and_wildcards(self):
        evaluate = self.server.evaluate
        caller = self.server.Caller("111122223333", "arn:aws:sts::111122223333:assumed-role/r/s",
                                    "arn:aws:iam::111122223333:role/r", "AROA:s", "ASIA", session=object())
        allow = {"Effect": "Allow", "Action": "s3:Put*", "Resource": "arn:aws:s3:::b/*"}
        self.assertEqual(evaluate([allow], "s3:putobject", "arn:aws:s3:::b/x/y", {}, caller), ("Allow", "identity"))
        self.assertEqual(evaluate([allow], "s3:GetObject", "arn:aws:s3:::b/x", {}, caller), (None, None))
        named = [dict(allow, Principal={"AWS": p}) for p in ("111122223333", "arn:aws:iam::111122223333:role/r", caller.arn)]
        kinds = [evaluate([s], "s3:PutObject", "arn:aws:s3:::b/k", {}, caller, resource_based=True)[1] for s in named]
        self.assertEqual(kinds, ["account", "direct", "session"])
        self.assertEqual(evaluate([allow], "s3:PutObject", "arn:aws:s3:::b/k", {}, caller, resource_based=True), (None, None))
        deny = {"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*", "Condition": {"Null": {"s3:if-none-match": "true"}}}
        self.assertEqual(evaluate([named[1], deny], "s3:PutObject", "arn:aws:s3:::b/k", {}, caller)[0], "Deny")
        self.assertEqual(evaluate([named[1], deny], "s3:PutObject", "arn:aws:s3:::b/k", {"s3:if-none-match": "*"}, caller)[0], "Allow")


class SecretIdentityTest(unittest.TestCase):
    """Secrets Manager's KMS calls name a new secret's ARN and version
    (SecretARN, SecretVersionId), which moto draws only when it stores the
    secret. The middleware draws them first (secret_resource, which
    authorises CreateSecret against that ARN, and the version id when no
    ClientRequestToken is sent) and moto is made to use them
    (_install_moto_hooks): checked here on the server module and moto in
    this process, as the server's request thread sees them."""

    def test_new_secrets_get_the_arn_and_version_the_middleware_drew(self):
        spec = importlib.util.spec_from_file_location("emulator_server_hooks", SERVER)
        server = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(server)
        server._install_moto_hooks()
        account, region = "210987654321", "us-east-1"
        backend = server.secretsmanager_backends[account][region]

        def create(name, token=None, drawn_version=None):
            arn, _ = server.secret_resource("CreateSecret", {"Name": name}, region, account)
            server._request_state.secret_arn = arn
            server._request_state.secret_version_id = drawn_version
            try:
                return arn, json.loads(backend.create_secret(name, "v1", None, None, None, None, token, [], False))
            finally:
                server.reset_request_state()

        drawn_version = "11111111-2222-4333-8444-555555555555"
        arn, answer = create("stored-messages/drawn", drawn_version=drawn_version)
        self.assertRegex(arn, rf"^arn:aws:secretsmanager:{region}:{account}:secret:stored-messages/drawn-[A-Za-z0-9]{{6}}$")
        self.assertEqual((answer["ARN"], answer["VersionId"]), (arn, drawn_version))
        # A ClientRequestToken is the version's id, whatever was drawn.
        token = "0123456789abcdef0123456789abcdef"
        self.assertEqual(create("stored-messages/token", token, drawn_version)[1]["VersionId"], token)
        # Nothing drawn (fixtures, unauthenticated moto): moto's own.
        fresh = json.loads(backend.create_secret("stored-messages/moto", "v1", None, None, None, None, None, [], False))
        self.assertNotEqual(fresh["VersionId"], drawn_version)
        self.assertRegex(fresh["ARN"], r":secret:stored-messages/moto-[A-Za-z]{6}$")


class LeakAuditTest(Harness, unittest.TestCase):
    """With $STORED_MESSAGES_LEAK_AUDIT set (read when the server starts),
    the secrets only the emulator sees are appended for the audit
    (testkit/src/leak_audit.rs reads `emulator.<pid>.jsonl`)."""

    @classmethod
    def setUpClass(cls):
        cls.audit = tempfile.TemporaryDirectory()
        cls.process, cls.endpoint = start_server({"STORED_MESSAGES_LEAK_AUDIT": cls.audit.name})
        cls.host = urllib.parse.urlsplit(cls.endpoint).netloc

    @classmethod
    def tearDownClass(cls):
        cls.process.stdin.close()
        cls.process.stdout.close()
        cls.process.wait(timeout=10)
        cls.audit.cleanup()

    def audited(self):
        """{text: label} of the secrets written so far."""
        with open(os.path.join(self.audit.name, f"emulator.{self.process.pid}.jsonl"), encoding="utf-8") as lines:
            entries = [json.loads(line) for line in lines]
        self.assertLessEqual({entry["kind"] for entry in entries}, {"secret", "stored"})
        return {entry["text"]: entry["label"] for entry in entries if entry["kind"] == "secret"}

    def stored(self):
        """{label: text} of the objects of our own buckets written so far."""
        with open(os.path.join(self.audit.name, f"emulator.{self.process.pid}.jsonl"), encoding="utf-8") as lines:
            entries = [json.loads(line) for line in lines]
        return {entry["label"]: entry["text"] for entry in entries if entry["kind"] == "stored"}

    def test_objects_written_to_our_own_buckets_are_audited(self):
        self.fixture(VENDOR_ACCOUNT, "us-east-1", [{"service": "s3", "op": "create_bucket", "args": {"Bucket": "audit-control"}}])
        self.fixture(CUSTOMER, "us-east-1", [{"service": "s3", "op": "create_bucket", "args": {"Bucket": "audit-customer"}}])
        ours = self.user_key("audit-writer", {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"})
        theirs = self.user_key("audit-customer-writer", {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}, account=CUSTOMER)
        self.client("s3", ours).put_object(Bucket="audit-control", Key="destinations/a.json", Body=b'{"auth":{"mode":"access_key"}}')
        self.client("s3", ours).put_object(Bucket="audit-control", Key="parked/a.json.gz", Body=b"\x1f\x8b...", ContentEncoding="gzip")
        self.client("s3", theirs).put_object(Bucket="audit-customer", Key="email/a.json", Body=b'{"message":{}}')
        stored = self.stored()
        self.assertIn('{"auth":{"mode":"access_key"}}', stored.get("audit-control/destinations/a.json", ""))
        self.assertNotIn("audit-control/parked/a.json.gz", stored)
        self.assertNotIn("audit-customer/email/a.json", stored, "a customer's bucket is theirs, not ours")

    def test_access_keys_and_secret_strings_are_audited(self):
        # An IAM user's key made by a fixture (CreateAccessKey's answer).
        user = self.user_key("auditor", {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"})
        root = self.root_key()
        sm = self.client("secretsmanager", user)
        destination = json.dumps({"access_key_id": "AKIAAUDITAUDITAUDIT0", "secret_access_key": "customer/secret+key+audited"})
        sm.create_secret(Name="stored-messages/audit/x", SecretString=destination)
        sm.put_secret_value(SecretId="stored-messages/audit/x", SecretString="a plain secret string, audited")
        answer = sm.get_secret_value(SecretId="stored-messages/audit/x", VersionStage="AWSPREVIOUS")
        self.assertEqual(answer["SecretString"], destination)
        # Fixture traffic goes through the same audit.
        self.fixture(VENDOR_ACCOUNT, "us-east-1", [{"service": "secretsmanager", "op": "create_secret", "args": {
            "Name": "stored-messages/audit/fixture", "SecretString": json.dumps({"secret_access_key": "made/by+a+fixture"})}}])

        audited = self.audited()
        for secret in (user.secret_key, root.secret_key, destination, "customer/secret+key+audited",
                       "a plain secret string, audited", "made/by+a+fixture"):
            self.assertEqual(audited.get(secret), "credential", secret)
        self.assertNotIn("AKIAAUDITAUDITAUDIT0", audited)  # a key id is no secret


class LifecycleTest(unittest.TestCase):
    def test_sigterm_stops_the_server(self):
        process, _ = start_server()
        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.wait(timeout=10), 0)
        process.stdin.close()
        process.stdout.close()

    def test_fixtures_keep_their_account_across_a_moto_reset(self):
        process, endpoint = start_server()
        host = urllib.parse.urlsplit(endpoint).netloc
        try:
            def post(path, body, content_type="application/json"):
                connection = http.client.HTTPConnection(host, timeout=30)
                connection.request("POST", path, body=body, headers={"Content-Type": content_type})
                response = connection.getresponse()
                payload = response.read()
                connection.close()
                return response.status, payload

            whoami = json.dumps({"account": CUSTOMER, "calls": [{"service": "sts", "op": "get_caller_identity"}]})
            for _ in range(2):
                status, payload = post("/_sm/aws", whoami)
                self.assertEqual((status, json.loads(payload)["results"][0]["Account"]), (200, CUSTOMER))
                self.assertEqual(post("/moto-api/reset", b"", "text/plain")[0], 200)
        finally:
            process.stdin.close()
            process.stdout.close()
            process.wait(timeout=10)


if __name__ == "__main__":
    unittest.main()
