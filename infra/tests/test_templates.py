"""The properties of our templates that protect data, and proof that the
template checks catch real mistakes (run by `make test`)."""

import json
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
INFRA = os.path.dirname(HERE)
sys.path.insert(0, INFRA)

import check_templates  # noqa: E402
from cfnlint.decode import cfn_yaml  # noqa: E402

SAM = os.path.join(INFRA, "template.yaml")
CUSTOMER = os.path.join(INFRA, "customer-role.yaml")


def resources(template, kind):
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def statements(policy_document):
    found = policy_document["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value):
    return value if isinstance(value, list) else [value]


class SamTemplate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = cfn_yaml.load(SAM)
        cls.functions = resources(cls.template, "AWS::Serverless::Function")

    def test_archive_queue_is_protected(self):
        queue = self.template["Resources"]["ArchiveQueue"]["Properties"]
        self.assertGreaterEqual(queue["RedrivePolicy"]["maxReceiveCount"], 5)
        self.assertEqual(queue["RedrivePolicy"]["deadLetterTargetArn"], {"Fn::GetAtt": ["ArchiveDeadLetterQueue", "Arn"]})
        dlq = self.template["Resources"]["ArchiveDeadLetterQueue"]["Properties"]
        self.assertEqual(dlq["MessageRetentionPeriod"], 14 * 24 * 3600)
        timeout = self.functions["ArchiveMessageFunction"]["Properties"]["Timeout"]
        self.assertGreaterEqual(queue["VisibilityTimeout"], 6 * timeout)

    def test_sqs_source_reports_partial_failures_and_is_bounded(self):
        source = self.functions["ArchiveMessageFunction"]["Properties"]["Events"]["Archive"]
        self.assertEqual(source["Type"], "SQS")
        self.assertEqual(source["Properties"]["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        self.assertIn("MaximumConcurrency", source["Properties"]["ScalingConfig"])

    def test_control_bucket_is_private_encrypted_versioned_and_tls_only(self):
        bucket = self.template["Resources"]["ControlBucket"]["Properties"]
        block = bucket["PublicAccessBlockConfiguration"]
        for flag in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
            self.assertIs(block[flag], True, flag)
        self.assertEqual(bucket["VersioningConfiguration"]["Status"], "Enabled")
        self.assertIn("ServerSideEncryptionConfiguration", bucket["BucketEncryption"])
        rules = bucket["LifecycleConfiguration"]["Rules"]
        self.assertTrue(any(r.get("Prefix") == "quarantine/" and "ExpirationInDays" in r for r in rules))
        self.assertFalse(any(r.get("Prefix", "").startswith("parked") for r in rules), "parked messages never expire")
        policy = self.template["Resources"]["ControlBucketPolicy"]["Properties"]["PolicyDocument"]
        tls = [s for s in statements(policy) if s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"]
        self.assertEqual(len(tls), 1)

    def test_assume_role_is_scoped_to_the_prefix_and_no_action_is_a_wildcard(self):
        role = self.template["Resources"]["FunctionsRole"]["Properties"]
        assume = []
        for policy in role["Policies"]:
            for statement in statements(policy["PolicyDocument"]):
                actions = as_list(statement["Action"])
                self.assertNotIn("*", actions)
                self.assertFalse(any(a.endswith(":*") for a in actions), actions)
                if "sts:AssumeRole" in actions:
                    assume += as_list(statement["Resource"])
        self.assertEqual(
            sorted(json.dumps(r, sort_keys=True) for r in assume),
            sorted(json.dumps(r, sort_keys=True) for r in [
                {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/${RoleNamePrefix}*"},
                {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/*/${RoleNamePrefix}*"},
            ]),
        )

    def test_functions_are_rust_on_arm64(self):
        self.assertEqual(set(self.functions), {"ArchiveMessageFunction", "ValidateDestinationFunction", "CheckDestinationsFunction"})
        globals_ = self.template["Globals"]["Function"]
        self.assertEqual((globals_["Runtime"], globals_["Architectures"]), ("provided.al2023", ["arm64"]))
        for function in self.functions.values():
            self.assertEqual(function["Metadata"]["BuildMethod"], "rust-cargolambda")

    def test_api_has_a_jwt_authorizer_and_every_route(self):
        api = self.template["Resources"]["Api"]["Properties"]["Auth"]
        self.assertEqual(api["DefaultAuthorizer"], "OrgJwt")
        self.assertIn("JwtConfiguration", api["Authorizers"]["OrgJwt"])
        events = self.functions["ValidateDestinationFunction"]["Properties"]["Events"].values()
        routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events}
        self.assertEqual(routes, {
            ("GET", "/v1/setup"), ("POST", "/v1/destinations/validate"), ("POST", "/v1/destinations"),
            ("GET", "/v1/destinations"), ("GET", "/v1/destinations/{id}"), ("DELETE", "/v1/destinations/{id}"),
        })


class CustomerTemplate(unittest.TestCase):
    def test_role_is_prefixed_trusts_only_with_the_external_id_and_only_writes(self):
        template = cfn_yaml.load(CUSTOMER)
        role = template["Resources"]["ArchiveRole"]["Properties"]
        self.assertEqual(role["RoleName"], {"Fn::Sub": "${RoleNamePrefix}-${RoleNameSuffix}"})
        (trust,) = statements(role["AssumeRolePolicyDocument"])
        self.assertEqual(trust["Condition"], {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}})
        self.assertTrue(template["Parameters"]["ExternalId"]["NoEcho"])
        actions = set()
        for statement in statements(role["Policies"][0]["PolicyDocument"]):
            statement = statement.get("Fn::If", [None, statement])[1]
            actions |= set(as_list(statement["Action"]))
        self.assertEqual(actions, {"s3:PutObject", "kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"})


class Checks(unittest.TestCase):
    def broken(self, old, new):
        with open(SAM) as source:
            text = source.read()
        self.assertIn(old, text)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=INFRA, delete=False) as out:
            out.write(text.replace(old, new, 1))
        self.addCleanup(os.unlink, out.name)
        return check_templates.check(out.name, CUSTOMER)

    def test_the_real_templates_pass(self):
        self.assertEqual(check_templates.check(SAM, CUSTOMER), [])

    def test_broken_templates_are_caught(self):
        for old, new in [
            ("FunctionResponseTypes: [ReportBatchItemFailures]", "FunctionResponseTypes: [ReportBatchItemFailure]"),
            ("BatchSize: 100\n", "BatchSize: 100000\n"),
            ("!GetAtt ArchiveDeadLetterQueue.QueueName", "!GetAtt ArchiveDeadLetterQueueTypo.QueueName"),
            ("Default: rate(15 minutes)", "Default: rate(1 dayz)"),
        ]:
            with self.subTest(new=new):
                self.assertNotEqual(self.broken(old, new), [], f"{new} was not caught")


if __name__ == "__main__":
    unittest.main()
