"""The emulator's own promises, checked with boto3: what it enforces beyond
moto must really be enforced, or the Rust tests that lean on it prove nothing.

Run: .venv/bin/python -m unittest discover -s tools/emulator -p 'test_*.py'
"""

import json
import os
import subprocess
import sys
import unittest
import urllib.error
import urllib.request

import boto3
import botocore.config
from botocore.exceptions import ClientError

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "server.py")
VENDOR = "arn:aws:iam::123456789012:user/vendor"
XID = "ExternalIdForTheEmulatorTests0123456789"


class EmulatorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.process = subprocess.Popen(
            [sys.executable, SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        line = cls.process.stdout.readline().decode()
        assert line.startswith("READY "), line
        cls.endpoint = f"http://127.0.0.1:{int(line.split()[1])}"
        key = cls.fixture("123456789012", "us-east-1", [
            {"service": "iam", "op": "create_user", "args": {"UserName": "vendor"}},
            {"service": "iam", "op": "put_user_policy", "args": {"UserName": "vendor", "PolicyName": "p", "PolicyDocument": json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "s3:*"], "Resource": "*"}]})}},
            {"service": "iam", "op": "create_access_key", "args": {"UserName": "vendor"}},
        ])[2]["AccessKey"]
        cls.vendor = boto3.Session(
            aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"], region_name="us-east-1"
        )
        cls.customer_role("stored-messages-good", {"StringEquals": {"sts:ExternalId": XID}})
        cls.customer_role("stored-messages-open", None)
        cls.fixture("111122223333", "eu-west-1", [
            {"service": "s3", "op": "create_bucket", "args": {"Bucket": "acme-archive", "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}}},
        ])

    @classmethod
    def tearDownClass(cls):
        cls.process.stdin.close()
        cls.process.wait(timeout=10)

    @classmethod
    def call(cls, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(cls.endpoint + path, data=data, method=method)
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    @classmethod
    def fixture(cls, account, region, calls):
        return cls.call("POST", "/_sm/aws", {"account": account, "region": region, "calls": calls})["results"]

    @classmethod
    def customer_role(cls, name, condition):
        statement = {"Effect": "Allow", "Principal": {"AWS": VENDOR}, "Action": "sts:AssumeRole"}
        if condition:
            statement["Condition"] = condition
        put = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::acme-archive/*"}]}
        cls.fixture("111122223333", "eu-west-1", [
            {"service": "iam", "op": "create_role", "args": {"RoleName": name, "AssumeRolePolicyDocument": json.dumps({"Version": "2012-10-17", "Statement": [statement]})}},
            {"service": "iam", "op": "put_role_policy", "args": {"RoleName": name, "PolicyName": "w", "PolicyDocument": json.dumps(put)}},
        ])

    def assume(self, role, **extra):
        sts = self.vendor.client("sts", endpoint_url=self.endpoint)
        return sts.assume_role(RoleArn=f"arn:aws:iam::111122223333:role/{role}", RoleSessionName="tests", **extra)["Credentials"]

    def s3(self, credentials, region="eu-west-1"):
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=region,
            aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "total_max_attempts": 1}),
        )

    def assertDenied(self, call, code="AccessDenied", status=403):
        with self.assertRaises(ClientError) as caught:
            call()
        self.assertEqual(caught.exception.response["Error"]["Code"], code)
        self.assertEqual(caught.exception.response["ResponseMetadata"]["HTTPStatusCode"], status)
        return caught.exception

    def test_trust_policy_external_id(self):
        self.assertTrue(self.assume("stored-messages-good", ExternalId=XID)["AccessKeyId"])
        self.assertDenied(lambda: self.assume("stored-messages-good", ExternalId="wrong" * 8))
        self.assertDenied(lambda: self.assume("stored-messages-good"))
        self.assertDenied(lambda: self.assume("stored-messages-missing", ExternalId=XID))
        self.assertTrue(self.assume("stored-messages-open")["AccessKeyId"], "no condition: no External ID needed")

    def test_writes_owner_region_session_policy_and_write_once(self):
        s3 = self.s3(self.assume("stored-messages-good", ExternalId=XID))
        s3.put_object(Bucket="acme-archive", Key="a/1.json", Body=b"{}", ExpectedBucketOwner="111122223333")
        self.assertDenied(lambda: s3.put_object(Bucket="acme-archive", Key="a/2.json", Body=b"{}", ExpectedBucketOwner="999999999999"))
        self.assertDenied(lambda: s3.put_object(Bucket="acme-archive", Key="a/1.json", Body=b"{}", IfNoneMatch="*"), "PreconditionFailed", 412)
        # botocore follows the region hint by itself; the recorder shows the refusal.
        self.s3(self.assume("stored-messages-good", ExternalId=XID), "us-east-1").put_object(Bucket="acme-archive", Key="a/3.json", Body=b"{}")
        attempts = [(r["region"], r["status"]) for r in self.call("GET", "/_sm/requests") if r["path"] == "/acme-archive/a/3.json"]
        self.assertEqual(attempts, [("us-east-1", 400), ("eu-west-1", 200)])
        policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::acme-archive/archive/*"}]})
        scoped = self.s3(self.assume("stored-messages-good", ExternalId=XID, Policy=policy))
        scoped.put_object(Bucket="acme-archive", Key="archive/ok.json", Body=b"{}")
        self.assertDenied(lambda: scoped.put_object(Bucket="acme-archive", Key="elsewhere.json", Body=b"{}"))

    def test_anonymous_reads_follow_the_bucket_policy(self):
        self.fixture("111122223333", "eu-west-1", [
            {"service": "s3", "op": "create_bucket", "args": {"Bucket": "acme-public", "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}}},
            {"service": "s3", "op": "put_object", "args": {"Bucket": "acme-public", "Key": "k.json", "Body": "{}"}},
        ])
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(self.endpoint + "/acme-public/k.json")
        self.assertEqual(caught.exception.code, 403)
        public = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::acme-public/*"}]}
        self.fixture("111122223333", "eu-west-1", [{"service": "s3", "op": "put_bucket_policy", "args": {"Bucket": "acme-public", "Policy": json.dumps(public)}}])
        with urllib.request.urlopen(self.endpoint + "/acme-public/k.json") as response:
            self.assertEqual(response.read(), b"{}")

    def test_faults_and_recorder(self):
        self.call("DELETE", "/_sm/requests")
        self.call("POST", "/_sm/faults", {"seed": 1, "rules": [
            {"service": "s3", "method": "PUT", "path_prefix": "/acme-archive/faulty/", "action": "status", "status": 503, "code": "SlowDown", "count": 1},
        ]})
        s3 = self.s3(self.assume("stored-messages-good", ExternalId=XID))
        self.assertDenied(lambda: s3.put_object(Bucket="acme-archive", Key="faulty/1.json", Body=b"{}"), "SlowDown", 503)
        s3.put_object(Bucket="acme-archive", Key="faulty/1.json", Body=b"{}")
        self.assertEqual(self.call("GET", "/_sm/faults")["fired"], [1])
        self.call("DELETE", "/_sm/faults")
        recorded = self.call("GET", "/_sm/requests")
        assume = [r for r in recorded if r["params"].get("Action") == "AssumeRole"]
        self.assertEqual(assume[0]["params"]["ExternalId"], XID)
        statuses = [r["status"] for r in recorded if r["path"] == "/acme-archive/faulty/1.json"]
        self.assertEqual(statuses, [503, 200])


if __name__ == "__main__":
    unittest.main()
