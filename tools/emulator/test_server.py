"""The emulator's own promises, proven with boto3 (and raw HTTP where the exact
wire shape matters): whatever it enforces beyond moto must really be enforced,
or the Rust integration tests that lean on it prove nothing.

Run from the repository root:
    .venv/bin/python -m unittest tools/emulator/test_server.py
"""

import http.client
import json
import os
import random
import signal
import subprocess
import sys
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


def start_server():
    """The server as the Rust harness starts it; returns (process, endpoint)."""
    process = subprocess.Popen(
        [sys.executable, SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
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


class EmulatorTest(unittest.TestCase):
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

    @classmethod
    def tearDownClass(cls):
        # Closing stdin is how the server learns its parent is gone.
        cls.process.stdin.close()
        cls.process.stdout.close()
        assert cls.process.wait(timeout=10) == 0

    def tearDown(self):
        self.call("DELETE", "/_sm/faults")

    # ---- helpers -----------------------------------------------------------

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
        # moto's own STS errors (<Errors><Error>) are rewritten the same way.
        unknown = Credentials("AKIAUNKNOWNUNKNOWN00", "secret")
        status, _, payload = self.signed("POST", "/", "sts", "us-east-1", unknown, b"Action=GetCallerIdentity&Version=2011-06-15", form)
        self.assertEqual(status, 403)
        self.assertNotIn(b"<Errors>", payload)
        self.assertEqual(ElementTree.fromstring(payload).find(f"{STS_XMLNS}Error/{STS_XMLNS}Code").text, "InvalidClientTokenId")

    def test_trust_policy_principals_and_conditions(self):
        root = f"arn:aws:iam::{VENDOR_ACCOUNT}:root"
        self.customer_role("sm-like", trust({"AWS": VENDOR_ARN}, {"StringLike": {"sts:ExternalId": "acme-??-*"}}))
        self.customer_role("sm-root", trust({"AWS": [root]}, {"StringEquals": {"sts:ExternalId": XID}}))
        self.customer_role("sm-star", trust("*", {"StringLike": {"aws:PrincipalArn": f"arn:aws:iam::{VENDOR_ACCOUNT}:user/ven*"}}))
        self.customer_role("sm-other-user", trust({"AWS": f"arn:aws:iam::{VENDOR_ACCOUNT}:user/someone-else"}))
        self.customer_role("sm-unsupported", trust({"AWS": VENDOR_ARN}, {"StringNotEquals": {"sts:ExternalId": "x"}}))
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

    # ---- faults -------------------------------------------------------------

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
        self.assertEqual(set(put), {"method", "path", "query", "headers", "service", "region", "access_key_id", "params", "status"})
        # Neither the harness's own API nor fixture traffic is recorded.
        self.assertFalse([r for r in recorded if r["path"].startswith(("/_sm", "/moto-api"))])
        self.assertFalse([r for r in recorded if r["method"] == "GET"])

        cleared = self.call("DELETE", "/_sm/requests")[1]["cleared"]
        self.assertEqual(cleared, len(recorded))
        self.assertEqual(self.requests(), [])

    def test_fixture_errors_name_the_failing_call(self):
        status, answer = self.call("POST", "/_sm/aws", {"account": CUSTOMER, "region": REGION, "calls": [
            {"service": "s3", "op": "head_bucket", "args": {"Bucket": BUCKET}},
            {"service": "s3", "op": "get_object", "args": {"Bucket": BUCKET, "Key": "no/such/key"}},
        ]})
        self.assertEqual((status, answer["index"]), (400, 1))
        self.assertIn("NoSuchKey", answer["error"])
        # Enforcement is back on afterwards: moto refuses an unknown key.
        unknown = self.client("s3", Credentials("AKIAUNKNOWNUNKNOWN00", "secret"), REGION)
        self.assertRefused(lambda: unknown.list_objects_v2(Bucket=BUCKET), "InvalidAccessKeyId", 403)


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
