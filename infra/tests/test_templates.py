"""The properties of our templates that protect data, and proof that the
template checks reject real mistakes.

    .venv/bin/python -m unittest discover -s infra/tests

The templates are read with cfn-lint's CloudFormation YAML loader, so the
short forms (!Ref, !GetAtt, !Sub, !If) arrive as their JSON forms
({"Ref": ...}, {"Fn::GetAtt": [...]}, ...).
"""

import json
import re
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
INFRA = os.path.dirname(HERE)
ROOT = os.path.dirname(INFRA)
sys.path.insert(0, INFRA)

import check_templates  # noqa: E402
import package  # noqa: E402
import yaml  # noqa: E402

SAM = os.path.join(INFRA, "template.yaml")
CUSTOMER = os.path.join(INFRA, "customer-role.yaml")
OPENAPI = os.path.join(INFRA, "openapi.yaml")

PREFIX_PATTERNS = [
    {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/${RoleNamePrefix}*"},
    {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/*/${RoleNamePrefix}*"},
]
CONTRACT_ROUTES = {
    ("GET", "/v1/setup"),
    ("POST", "/v1/destinations/validate"),
    ("POST", "/v1/destinations"),
    ("GET", "/v1/destinations"),
    ("GET", "/v1/destinations/{id}"),
    ("DELETE", "/v1/destinations/{id}"),
    ("PATCH", "/v1/destinations/{id}"),
    ("POST", "/v1/destinations/{id}/test"),
    ("PUT", "/v1/destinations/{id}/credentials"),
    ("POST", "/v1/destinations/{id}/backfills"),
    ("GET", "/v1/destinations/{id}/backfills"),
    ("GET", "/v1/backfills/{id}"),
    ("POST", "/v1/backfills/{id}/cancel"),
}
# What each function may do in the control bucket, by key prefix
# (CONTRACT section 7): the least the code needs.
CONTROL_BUCKET_ACCESS = {
    "ArchiveMessageFunction": {
        "s3:GetObject": {"orgs", "destinations"},
        "s3:PutObject": {"quarantine", "parked", "destinations"},
    },
    "ValidateDestinationFunction": {
        "s3:GetObject": {"orgs", "destinations", "backfills"},
        "s3:PutObject": {"orgs", "destinations", "backfills"},
        "s3:DeleteObject": {"destinations"},
    },
    "CheckDestinationsFunction": {
        "s3:GetObject": {"orgs", "destinations", "parked"},
        "s3:PutObject": {"destinations"},
        "s3:DeleteObject": {"parked"},
    },
    "RunBackfillFunction": {
        "s3:GetObject": {"orgs", "destinations", "backfills"},
        "s3:PutObject": {"quarantine", "parked", "destinations", "backfills"},
    },
}


def control(prefix):
    return {"Fn::Sub": "${ControlBucket.Arn}/" + prefix + "/*"}


BACKFILL_QUEUE = {"Fn::GetAtt": ["BackfillQueue", "Arn"]}
STAGING_OBJECTS = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${StagingBucketName}/*"}
STAGING_BUCKET = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${StagingBucketName}"}
SECRETS = {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${CredentialsSecretPrefix}*"}
CREDENTIALS_KEY = {"Fn::GetAtt": ["CredentialsKey", "Arn"]}
# Everything run-backfill's own policy grants, as (action, resource): what
# archive-message's policy grants (it archives through the same code), then
# the manifests, the job records and its own queue. Nothing else.
RUN_BACKFILL_GRANTS = [
    ("s3:GetObject", control("orgs")),
    ("s3:GetObject", control("destinations")),
    ("s3:PutObject", control("destinations")),
    ("s3:PutObject", control("quarantine")),
    ("s3:PutObject", control("parked")),
    ("s3:GetObject", control("backfills")),
    ("s3:PutObject", control("backfills")),
    ("s3:GetObject", STAGING_OBJECTS),
    ("s3:ListBucket", STAGING_BUCKET),
    ("secretsmanager:GetSecretValue", SECRETS),
    ("kms:Decrypt", CREDENTIALS_KEY),
    ("sqs:SendMessage", BACKFILL_QUEUE),
    ("sqs:ChangeMessageVisibility", BACKFILL_QUEUE),
]
# What reaches the backfill queue, by who: the functions' own code (each
# statement conditioned on its function) and Lambda's poller (unconditioned,
# in the role).
BACKFILL_QUEUE_ACCESS = {
    "RunBackfillFunction": {"sqs:SendMessage", "sqs:ChangeMessageVisibility"},
    "ValidateDestinationFunction": {"sqs:SendMessage"},
    "poller": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"},
}


def read(path):
    with open(path, encoding="utf-8") as source:
        return source.read()


def as_list(value):
    return value if isinstance(value, list) else [value]


def resources(template, kind):
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def unwrap_if(statement):
    """The statement inside `!If [cond, statement, !Ref AWS::NoValue]`, or
    None for a NoValue branch."""
    if isinstance(statement, dict) and "Fn::If" in statement:
        _, then, otherwise = statement["Fn::If"]
        assert otherwise == {"Ref": "AWS::NoValue"}, statement
        return then
    return statement


def statements(document):
    return [s for s in (unwrap_if(s) for s in as_list(document["Statement"])) if s is not None]


def canonical(value):
    return json.dumps(value, sort_keys=True)


def function_condition(function):
    """The lambda:SourceFunctionArn condition every per-function statement
    carries: the function, or any of its versions and aliases."""
    return {"ArnLike": {"lambda:SourceFunctionArn": [
        {"Fn::GetAtt": [function, "Arn"]}, {"Fn::Sub": "${" + function + ".Arn}:*"},
    ]}}


def statement_function(statement):
    """The function a statement is conditioned on, or None."""
    condition = statement.get("Condition", {}).get("ArnLike", {}).get("lambda:SourceFunctionArn", [])
    functions = {c["Fn::GetAtt"][0] for c in as_list(condition) if isinstance(c, dict) and "Fn::GetAtt" in c}
    return functions.pop() if len(functions) == 1 else None


def run_backfill_grant_problems(template):
    """What is wrong with run-backfill's grants: a statement of its policy not
    conditioned on the function, anything granted beyond or short of
    RUN_BACKFILL_GRANTS, or an SQS grant on the backfill queue beyond
    BACKFILL_QUEUE_ACCESS anywhere. Empty when they are right."""
    problems = []
    policy = template["Resources"]["RunBackfillPolicy"]
    if policy.get("Condition") != "HasStagingBucket":
        problems.append("RunBackfillPolicy exists without the function (Condition HasStagingBucket)")
    granted = set()
    for statement in statements(policy["Properties"]["PolicyDocument"]):
        sid = statement.get("Sid", "?")
        if statement["Effect"] != "Allow" or "NotAction" in statement or "NotResource" in statement:
            problems.append(f"{sid}: only plain Allow statements")
            continue
        condition = statement.get("Condition", {})
        if condition.get("ArnLike") != function_condition("RunBackfillFunction")["ArnLike"]:
            problems.append(f"{sid}: not conditioned on RunBackfillFunction")
        for action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                granted.add((action, canonical(resource)))
    expected = {(action, canonical(resource)) for action, resource in RUN_BACKFILL_GRANTS}
    problems += [f"granted beyond the need: {a} on {r}" for a, r in sorted(granted - expected)]
    problems += [f"missing: {a} on {r}" for a, r in sorted(expected - granted)]
    on_queue = {}
    for where, kind, document in policy_documents(template):
        if kind != "identity":
            continue
        for statement in statements(document):
            actions = [a for a in as_list(statement["Action"]) if a.lower().startswith("sqs:") or a == "*"]
            resources = [canonical(r) for r in as_list(statement["Resource"])]
            if not actions or not ({canonical(BACKFILL_QUEUE), canonical("*")} & set(resources)):
                continue
            who = statement_function(statement) or ("poller" if "Condition" not in statement else where)
            on_queue.setdefault(who, set()).update(actions)
            if resources != [canonical(BACKFILL_QUEUE)]:
                problems.append(f"{where} {statement.get('Sid', '?')}: backfill-queue grant also on {resources}")
    if on_queue != BACKFILL_QUEUE_ACCESS:
        problems.append(f"backfill queue access {on_queue} is not {BACKFILL_QUEUE_ACCESS}")
    return problems


def policy_documents(template):
    """Every policy document in a template, as (where, kind, document);
    kind is "trust", "identity" or "resource"."""
    found = []
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        kind = resource["Type"]
        if kind == "AWS::IAM::Role":
            found.append((name, "trust", properties["AssumeRolePolicyDocument"]))
            # A policy may exist only under a condition (!If ... NoValue).
            for policy in filter(None, map(unwrap_if, properties.get("Policies", []))):
                found.append((f"{name}/{policy['PolicyName']}", "identity", policy["PolicyDocument"]))
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            found.append((name, "identity", properties["PolicyDocument"]))
        elif kind in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
            found.append((name, "resource", properties["PolicyDocument"]))
    return found


class SamTemplate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = check_templates.load(read(SAM), SAM)
        cls.resources = cls.template["Resources"]
        cls.functions = resources(cls.template, "AWS::Serverless::Function")

    def function_props(self, name):
        return self.functions[name]["Properties"]

    def sqs_sources(self):
        return [
            (name, event["Properties"])
            for name, function in self.functions.items()
            for event in function["Properties"].get("Events", {}).values()
            if event["Type"] == "SQS"
        ]

    # --- the archive queue --------------------------------------------------

    def test_the_archive_queue_has_a_dead_letter_queue_after_at_least_5_receives(self):
        queue = self.resources["ArchiveQueue"]["Properties"]
        redrive = queue["RedrivePolicy"]
        self.assertEqual(redrive["deadLetterTargetArn"], {"Fn::GetAtt": ["ArchiveDeadLetterQueue", "Arn"]})
        self.assertGreaterEqual(redrive["maxReceiveCount"], 5)
        dlq = self.resources["ArchiveDeadLetterQueue"]
        self.assertEqual(dlq["Type"], "AWS::SQS::Queue")
        self.assertEqual(dlq["Properties"]["MessageRetentionPeriod"], 14 * 24 * 3600)
        # A standard queue's message keeps its first-send age in the DLQ: the
        # DLQ must keep messages longer than the source does.
        self.assertLess(queue["MessageRetentionPeriod"], dlq["Properties"]["MessageRetentionPeriod"])

    def test_visibility_timeout_is_at_least_six_times_the_consumer_timeout(self):
        consumers = {source["Queue"]["Fn::GetAtt"][0]: name for name, source in self.sqs_sources()}
        self.assertEqual(consumers, {"ArchiveQueue": "ArchiveMessageFunction", "BackfillQueue": "RunBackfillFunction"})
        for queue, function in consumers.items():
            timeout = self.function_props(function)["Timeout"]
            self.assertGreaterEqual(self.resources[queue]["Properties"]["VisibilityTimeout"], 6 * timeout, queue)

    def test_the_sqs_sources_report_batch_item_failures_and_are_bounded(self):
        sources = self.sqs_sources()
        self.assertEqual(len(sources), 2)
        for name, source in sources:
            self.assertEqual(source["FunctionResponseTypes"], ["ReportBatchItemFailures"], name)
            self.assertIn("MaximumConcurrency", source["ScalingConfig"], name)
            self.assertLessEqual(source["BatchSize"], 10000, name)
            if source["BatchSize"] > 10:
                # Batches above 10 need a batching window (Lambda's rule for SQS).
                self.assertGreater(source["MaximumBatchingWindowInSeconds"], 0, name)

    # --- backfills -----------------------------------------------------------

    def test_backfills_exist_only_with_a_staging_bucket(self):
        for name in ("RunBackfillFunction", "RunBackfillPolicy", "RunBackfillLogGroup", "BackfillQueue",
                     "BackfillDeadLetterQueue", "BackfillQueuePolicy", "BackfillDeadLetterQueueNotEmptyAlarm",
                     "BackfillOldestUnitAgeAlarm", "RunBackfillErrorsAlarm"):
            self.assertEqual(self.resources[name].get("Condition"), "HasStagingBucket", name)
        self.assertEqual(self.template["Conditions"]["HasStagingBucket"],
                         {"Fn::Not": [{"Fn::Equals": [{"Ref": "StagingBucketName"}, ""]}]})
        # The API gets the queue only when it exists; unset, it refuses backfills.
        env = self.function_props("ValidateDestinationFunction")["Environment"]["Variables"]
        self.assertEqual(env["BACKFILL_QUEUE_URL"],
                         {"Fn::If": ["HasStagingBucket", {"Ref": "BackfillQueue"}, {"Ref": "AWS::NoValue"}]})
        self.assertEqual(env["STAGING_BUCKET"],
                         {"Fn::If": ["HasStagingBucket", {"Ref": "StagingBucketName"}, {"Ref": "AWS::NoValue"}]})

    def test_run_backfill_is_triggered_one_unit_at_a_time_by_the_backfill_queue(self):
        props = self.function_props("RunBackfillFunction")
        self.assertEqual((props["Timeout"], props["MemorySize"]), (900, 256))
        (event,) = props["Events"].values()
        self.assertEqual(event["Type"], "SQS")
        source = event["Properties"]
        self.assertEqual(source["Queue"], BACKFILL_QUEUE)
        self.assertEqual(source["BatchSize"], 1)
        self.assertEqual(source["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        self.assertEqual(source["ScalingConfig"], {"MaximumConcurrency": {"Ref": "BackfillMaxConcurrency"}})
        parameter = self.template["Parameters"]["BackfillMaxConcurrency"]
        self.assertEqual((parameter["Default"], parameter["MinValue"], parameter["MaxValue"]), (5, 2, 100))
        env = props["Environment"]["Variables"]
        self.assertEqual(env["STAGING_BUCKET"], {"Ref": "StagingBucketName"})
        self.assertEqual(env["BACKFILL_QUEUE_URL"], {"Ref": "BackfillQueue"})
        self.assertEqual(env["ARCHIVE_MAX_IN_FLIGHT"], {"Ref": "ArchiveMaxInFlight"})

    def test_the_backfill_queue_redrives_after_backfill_max_receives(self):
        queue = self.resources["BackfillQueue"]["Properties"]
        redrive = queue["RedrivePolicy"]
        self.assertEqual(redrive["deadLetterTargetArn"], {"Fn::GetAtt": ["BackfillDeadLetterQueue", "Arn"]})
        # The function fails the job on the last receive: it must know which one is.
        env = self.function_props("RunBackfillFunction")["Environment"]["Variables"]
        self.assertEqual(redrive["maxReceiveCount"], env["BACKFILL_MAX_RECEIVES"])
        self.assertEqual(redrive["maxReceiveCount"], {"Ref": "BackfillMaxReceives"})
        self.assertEqual(self.template["Parameters"]["BackfillMaxReceives"]["Default"], 5)
        self.assertEqual(queue["MessageRetentionPeriod"], 4 * 24 * 3600)
        dlq = self.resources["BackfillDeadLetterQueue"]["Properties"]
        self.assertEqual(dlq["MessageRetentionPeriod"], 14 * 24 * 3600)
        for name in ("BackfillQueue", "BackfillDeadLetterQueue"):
            self.assertIs(self.resources[name]["Properties"]["SqsManagedSseEnabled"], True, name)

    def test_the_backfill_queues_only_accept_tls(self):
        policy = self.resources["BackfillQueuePolicy"]["Properties"]
        self.assertEqual(policy["Queues"], [{"Ref": "BackfillQueue"}, {"Ref": "BackfillDeadLetterQueue"}])
        (deny,) = statements(policy["PolicyDocument"])
        self.assertEqual((deny["Effect"], deny["Principal"], deny["Action"]), ("Deny", "*", "sqs:*"))
        self.assertEqual(deny["Resource"], [BACKFILL_QUEUE, {"Fn::GetAtt": ["BackfillDeadLetterQueue", "Arn"]}])
        self.assertEqual(deny["Condition"], {"Bool": {"aws:SecureTransport": "false"}})

    def test_run_backfill_is_granted_exactly_what_it_needs(self):
        self.assertEqual(run_backfill_grant_problems(self.template), [])

    def test_only_archive_and_backfill_code_reads_the_staging_bucket(self):
        granted = {}
        for where, kind, document in policy_documents(self.template):
            if kind != "identity":
                continue
            for statement in statements(document):
                staging = [r for r in as_list(statement["Resource"]) if r in (STAGING_OBJECTS, STAGING_BUCKET)]
                if not staging:
                    continue
                function = statement_function(statement)
                self.assertEqual(statement["Condition"], function_condition(function), where)
                granted.setdefault(function, set()).update(
                    (a, canonical(r)) for a in as_list(statement["Action"]) for r in staging)
        read_and_list = {("s3:GetObject", canonical(STAGING_OBJECTS)), ("s3:ListBucket", canonical(STAGING_BUCKET))}
        self.assertEqual(granted, {"ArchiveMessageFunction": read_and_list, "RunBackfillFunction": read_and_list})

    def test_the_backfill_queue_is_polled_through_the_role(self):
        # Lambda checks the role can poll when it creates the event source
        # mapping: the grant is in the role itself, like the archive queue's.
        policies = self.resources["CustomerAccessRole"]["Properties"]["Policies"]
        (conditional,) = [p for p in policies if "Fn::If" in p]
        self.assertEqual(conditional["Fn::If"][0], "HasStagingBucket")
        (statement,) = statements(unwrap_if(conditional)["PolicyDocument"])
        self.assertEqual(set(statement["Action"]), BACKFILL_QUEUE_ACCESS["poller"])
        self.assertEqual(statement["Resource"], BACKFILL_QUEUE)
        self.assertNotIn("Condition", statement)

    def test_the_api_reads_and_writes_jobs_and_queues_their_first_unit(self):
        document = self.resources["ValidateDestinationPolicy"]["Properties"]["PolicyDocument"]
        backfill_statements = [
            s for s in statements(document)
            if control("backfills") in as_list(s["Resource"]) or BACKFILL_QUEUE in as_list(s["Resource"])
        ]
        granted = set()
        for statement in backfill_statements:
            self.assertEqual(statement["Condition"], function_condition("ValidateDestinationFunction"), statement["Sid"])
            granted |= {(a, canonical(r)) for a in as_list(statement["Action"]) for r in as_list(statement["Resource"])}
        self.assertEqual(granted, {
            ("s3:GetObject", canonical(control("backfills"))),
            ("s3:PutObject", canonical(control("backfills"))),
            ("sqs:SendMessage", canonical(BACKFILL_QUEUE)),
        })
        # The queue grant exists only with the queue.
        (queue_grant,) = [s for s in as_list(document["Statement"])
                          if "Fn::If" in s and unwrap_if(s)["Resource"] == BACKFILL_QUEUE]
        self.assertEqual(queue_grant["Fn::If"][0], "HasStagingBucket")
        # Jobs are listed under backfills/{org}/ like destinations under
        # destinations/{org}/: by the role's one ListBucket on the control bucket.
        listing = [
            s for _, kind, doc in policy_documents(self.template) if kind == "identity"
            for s in statements(doc) if "s3:ListBucket" in as_list(s["Action"])
            and s["Resource"] == {"Fn::GetAtt": ["ControlBucket", "Arn"]}
        ]
        self.assertEqual(len(listing), 1)
        self.assertNotIn("Condition", listing[0])

    def test_a_backfill_grant_widened_to_every_sqs_action_or_resource_is_rejected(self):
        def broken(old, new):
            source = read(SAM)
            self.assertIn(old, source)
            return run_backfill_grant_problems(check_templates.load(source.replace(old, new, 1), SAM))

        every_action = broken("              - sqs:SendMessage\n              - sqs:ChangeMessageVisibility\n",
                              "              - sqs:*\n")
        self.assertTrue(any("sqs:*" in p for p in every_action), every_action)
        every_resource = broken("              - sqs:ChangeMessageVisibility\n            Resource: !GetAtt BackfillQueue.Arn\n",
                                '              - sqs:ChangeMessageVisibility\n            Resource: "*"\n')
        self.assertTrue(any('"*"' in p for p in every_resource), every_resource)
        every_bucket_key = broken('            Resource: !Sub "${ControlBucket.Arn}/backfills/*"\n'
                                  "            Condition:\n              ArnLike:\n"
                                  "                lambda:SourceFunctionArn: [!GetAtt RunBackfillFunction.Arn",
                                  '            Resource: !Sub "${ControlBucket.Arn}/*"\n'
                                  "            Condition:\n              ArnLike:\n"
                                  "                lambda:SourceFunctionArn: [!GetAtt RunBackfillFunction.Arn")
        self.assertTrue(any("ControlBucket.Arn}/*" in p for p in every_bucket_key), every_bucket_key)
        unconditioned = broken('                lambda:SourceFunctionArn: [!GetAtt RunBackfillFunction.Arn, !Sub "${RunBackfillFunction.Arn}:*"]\n',
                               '                lambda:SourceFunctionArn: [!GetAtt ArchiveMessageFunction.Arn, !Sub "${ArchiveMessageFunction.Arn}:*"]\n')
        self.assertTrue(any("not conditioned on RunBackfillFunction" in p for p in unconditioned), unconditioned)

    # --- the control bucket ------------------------------------------------

    def test_the_control_bucket_blocks_all_public_access(self):
        block = self.resources["ControlBucket"]["Properties"]["PublicAccessBlockConfiguration"]
        self.assertEqual(
            block,
            {"BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        )

    def test_the_control_bucket_is_encrypted_versioned_and_kept(self):
        bucket = self.resources["ControlBucket"]
        encryption = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        self.assertIn(encryption[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"], ("AES256", "aws:kms"))
        self.assertEqual(bucket["Properties"]["VersioningConfiguration"], {"Status": "Enabled"})
        # It holds every org's External ID.
        self.assertEqual((bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]), ("Retain", "Retain"))

    def test_the_control_bucket_only_accepts_tls(self):
        (policy,) = resources(self.template, "AWS::S3::BucketPolicy").values()
        self.assertEqual(policy["Properties"]["Bucket"], {"Ref": "ControlBucket"})
        tls = [
            s for s in statements(policy["Properties"]["PolicyDocument"])
            if s["Effect"] == "Deny"
            and s["Principal"] in ("*", {"AWS": "*"})
            and as_list(s["Action"]) in (["s3:*"], ["*"])
            and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        self.assertEqual(len(tls), 1)
        self.assertEqual(
            sorted(json.dumps(r, sort_keys=True) for r in as_list(tls[0]["Resource"])),
            sorted(json.dumps(r, sort_keys=True) for r in [
                {"Fn::GetAtt": ["ControlBucket", "Arn"]}, {"Fn::Sub": "${ControlBucket.Arn}/*"},
            ]),
        )

    def test_quarantine_expires_and_parked_messages_never_do(self):
        rules = self.resources["ControlBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        quarantine = [r for r in rules if r.get("Prefix") == "quarantine/" and r["Status"] == "Enabled"]
        self.assertEqual(len(quarantine), 1)
        self.assertIn("ExpirationInDays", quarantine[0])
        for rule in rules:
            prefix = rule.get("Prefix", rule.get("Filter", {}).get("Prefix", ""))
            covers_parked = "parked/".startswith(prefix) or prefix.startswith("parked")
            if covers_parked:
                self.assertFalse({"ExpirationInDays", "ExpirationDate"} & set(rule), f"rule {rule['Id']} expires parked/")
                self.assertNotIn("Transitions", rule)

    # --- identity ------------------------------------------------------------

    def test_every_assume_role_grant_is_scoped_to_the_role_name_prefix(self):
        grants = [
            (where, s) for where, kind, document in policy_documents(self.template) if kind == "identity"
            for s in statements(document)
            if s["Effect"] == "Allow" and any(a.lower().startswith("sts:assumerole") for a in as_list(s["Action"]))
        ]
        self.assertTrue(grants)
        for where, statement in grants:
            self.assertEqual(as_list(statement["Action"]), ["sts:AssumeRole"], where)
            self.assertEqual(
                sorted(json.dumps(r, sort_keys=True) for r in as_list(statement["Resource"])),
                sorted(json.dumps(r, sort_keys=True) for r in PREFIX_PATTERNS),
                where,
            )

    def test_no_policy_has_a_wildcard_action(self):
        for where, kind, document in policy_documents(self.template):
            for statement in statements(document):
                actions = as_list(statement.get("Action", []))
                self.assertNotIn("*", actions, where)
                if statement["Effect"] == "Allow":
                    self.assertNotIn("NotAction", statement, where)
                    wildcards = [a for a in actions if "*" in a]
                    self.assertEqual(wildcards, [], where)
                else:
                    # The only Deny statements are the TLS guards, which must
                    # cover every action of their service.
                    self.assertEqual(statement.get("Condition"), {"Bool": {"aws:SecureTransport": "false"}}, where)

    def test_each_function_reaches_only_its_control_bucket_prefixes(self):
        role = self.resources["CustomerAccessRole"]
        granted = {name: {} for name in CONTROL_BUCKET_ACCESS}
        for where, kind, document in policy_documents(self.template):
            if kind != "identity":
                continue
            for statement in statements(document):
                objects = [r for r in as_list(statement["Resource"])
                           if isinstance(r, dict) and "Fn::Sub" in r and r["Fn::Sub"].startswith("${ControlBucket.Arn}/")]
                if not objects:
                    continue
                # Every grant on control-bucket objects belongs to one function.
                condition = statement["Condition"]["ArnLike"]["lambda:SourceFunctionArn"]
                (function,) = {c["Fn::GetAtt"][0] for c in condition if "Fn::GetAtt" in c}
                self.assertEqual(
                    condition,
                    [{"Fn::GetAtt": [function, "Arn"]}, {"Fn::Sub": "${" + function + ".Arn}:*"}],
                    where,
                )
                for resource in objects:
                    path = resource["Fn::Sub"][len("${ControlBucket.Arn}/"):]
                    prefix, rest = path.split("/", 1)
                    self.assertEqual(rest, "*", where)
                    for action in as_list(statement["Action"]):
                        granted[function].setdefault(action, set()).add(prefix)
        self.assertEqual(granted, CONTROL_BUCKET_ACCESS)
        # Those per-function policies are attached to the one execution role.
        for policy in resources(self.template, "AWS::IAM::Policy").values():
            self.assertEqual(policy["Properties"]["Roles"], [{"Ref": "CustomerAccessRole"}])
        self.assertEqual((role["DeletionPolicy"], role["UpdateReplacePolicy"]), ("Retain", "Retain"))

    def test_customers_trust_the_execution_role_of_every_function(self):
        role_arn = {"Fn::GetAtt": ["CustomerAccessRole", "Arn"]}
        for name in self.functions:
            self.assertEqual(self.function_props(name)["Role"], role_arn, name)
        env = self.template["Globals"]["Function"]["Environment"]["Variables"]
        self.assertEqual(env["VENDOR_PRINCIPAL_ARN"], role_arn)
        self.assertEqual(env["CONTROL_BUCKET"], {"Ref": "ControlBucket"})
        self.assertEqual(env["ROLE_NAME_PREFIX"], {"Ref": "RoleNamePrefix"})
        self.assertEqual(self.template["Outputs"]["CustomerTrustPrincipalArn"]["Value"], role_arn)
        trust = statements(self.resources["CustomerAccessRole"]["Properties"]["AssumeRolePolicyDocument"])
        self.assertEqual([s["Principal"] for s in trust], [{"Service": "lambda.amazonaws.com"}])

    # --- functions, API, schedule, alarms -----------------------------------

    def test_functions_are_the_workspace_binaries_on_arm64(self):
        globals_ = self.template["Globals"]["Function"]
        self.assertEqual((globals_["Runtime"], globals_["Architectures"]), ("provided.al2023", ["arm64"]))
        binaries = set()
        for name, function in self.functions.items():
            binary = function["Metadata"]["BuildProperties"]["Binary"]
            binaries.add(binary)
            self.assertEqual(function["Metadata"]["BuildMethod"], "rust-cargolambda", name)
            self.assertEqual(function["Properties"]["CodeUri"], f"../functions/{binary}", name)
            self.assertTrue(os.path.isfile(os.path.join(ROOT, "functions", binary, "Cargo.toml")), binary)
            self.assertEqual(function["Properties"]["LoggingConfig"]["LogFormat"], "JSON", name)
        self.assertEqual(binaries, {"archive-message", "validate-destination", "check-destinations", "run-backfill"})

    def test_the_api_declares_the_openapi_routes_behind_the_jwt_authorizer(self):
        (api_name, api), = resources(self.template, "AWS::Serverless::HttpApi").items()
        auth = api["Properties"]["Auth"]
        jwt = auth["Authorizers"][auth["DefaultAuthorizer"]]["JwtConfiguration"]
        self.assertEqual(jwt, {"issuer": {"Ref": "JwtIssuer"}, "audience": {"Ref": "JwtAudience"}})
        routes = set()
        for function in self.functions.values():
            for event in function["Properties"].get("Events", {}).values():
                if event["Type"] == "HttpApi":
                    properties = event["Properties"]
                    self.assertEqual(properties["ApiId"], {"Ref": api_name})
                    self.assertNotIn("Auth", properties, "every route uses the default JWT authorizer")
                    routes.add((properties["Method"], properties["Path"]))
        openapi = yaml.safe_load(read(OPENAPI))
        documented = {(method.upper(), path) for path, item in openapi["paths"].items()
                      for method in item if method in ("get", "post", "put", "patch", "delete")}
        self.assertEqual(routes, CONTRACT_ROUTES)
        self.assertEqual(documented, CONTRACT_ROUTES)

    def test_health_checks_run_on_the_schedule_parameter(self):
        parameter = self.template["Parameters"]["HealthCheckSchedule"]
        self.assertEqual(parameter["Default"], "rate(15 minutes)")
        events = self.function_props("CheckDestinationsFunction")["Events"].values()
        self.assertEqual([e["Properties"]["Schedule"] for e in events if e["Type"] == "Schedule"],
                         [{"Ref": "HealthCheckSchedule"}])

    def test_alarms_watch_the_dlq_the_backlog_failing_destinations_and_errors(self):
        watched = set()
        for alarm in resources(self.template, "AWS::CloudWatch::Alarm").values():
            p = alarm["Properties"]
            dimensions = {d["Name"]: d["Value"] for d in p.get("Dimensions", [])}
            target = json.dumps(dimensions.get("QueueName") or dimensions.get("FunctionName") or dimensions.get("Function"))
            watched.add((p["Namespace"], p["MetricName"], target))
        expected = {
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible", json.dumps({"Fn::GetAtt": ["ArchiveDeadLetterQueue", "QueueName"]})),
            ("AWS/SQS", "ApproximateAgeOfOldestMessage", json.dumps({"Fn::GetAtt": ["ArchiveQueue", "QueueName"]})),
            ("StoredMessages", "DestinationsFailing", json.dumps("check-destinations")),
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible", json.dumps({"Fn::GetAtt": ["BackfillDeadLetterQueue", "QueueName"]})),
            ("AWS/SQS", "ApproximateAgeOfOldestMessage", json.dumps({"Fn::GetAtt": ["BackfillQueue", "QueueName"]})),
        } | {("AWS/Lambda", "Errors", json.dumps({"Ref": name})) for name in self.functions}
        self.assertLessEqual(expected, watched)

    def test_every_log_group_has_a_retention_and_every_function_its_log_group(self):
        groups = resources(self.template, "AWS::Logs::LogGroup")
        for name, group in groups.items():
            self.assertIn("RetentionInDays", group["Properties"], name)
        for name in self.functions:
            self.assertIn(self.function_props(name)["LoggingConfig"]["LogGroup"]["Ref"], groups)

    def test_health_events_go_to_our_bus_and_only_there(self):
        env = self.template["Globals"]["Function"]["Environment"]["Variables"]
        self.assertEqual(env["EVENT_BUS_NAME"], {"Ref": "HealthEventBus"})
        grants = [
            statement
            for _, kind, document in policy_documents(self.template)
            if kind == "identity"
            for statement in statements(document)
            if "events:PutEvents" in as_list(statement["Action"])
        ]
        self.assertEqual([g["Resource"] for g in grants], [{"Fn::GetAtt": ["HealthEventBus", "Arn"]}])
        rule = self.resources["HealthEventsRule"]["Properties"]
        self.assertEqual(rule["EventBusName"], {"Ref": "HealthEventBus"})
        self.assertEqual(rule["EventPattern"], {"source": ["stored-messages"], "detail-type": ["Destination Health Changed"]})
        (queue_grant,) = statements(self.resources["HealthEventsQueuePolicy"]["Properties"]["PolicyDocument"])
        self.assertEqual(queue_grant["Condition"], {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["HealthEventsRule", "Arn"]}}})

    def test_access_key_secrets_are_reached_under_the_prefix_only_and_managed_by_the_api_only(self):
        env = self.template["Globals"]["Function"]["Environment"]["Variables"]
        self.assertEqual(env["CREDENTIALS_SECRET_PREFIX"], {"Ref": "CredentialsSecretPrefix"})
        self.assertEqual(env["CREDENTIALS_KMS_KEY_ID"], {"Fn::GetAtt": ["CredentialsKey", "Arn"]})
        prefix = {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${CredentialsSecretPrefix}*"}
        granted = {}
        for where, kind, document in policy_documents(self.template):
            if kind != "identity":
                continue
            for statement in statements(document):
                actions = [a for a in as_list(statement["Action"]) if a.startswith("secretsmanager:")]
                if not actions:
                    continue
                self.assertEqual(as_list(statement["Resource"]), [prefix], where)
                condition = statement["Condition"]["ArnLike"]["lambda:SourceFunctionArn"]
                (function,) = {c["Fn::GetAtt"][0] for c in condition if "Fn::GetAtt" in c}
                granted.setdefault(function, set()).update(actions)
        self.assertEqual(granted, {
            "ArchiveMessageFunction": {"secretsmanager:GetSecretValue"},
            "CheckDestinationsFunction": {"secretsmanager:GetSecretValue"},
            "RunBackfillFunction": {"secretsmanager:GetSecretValue"},
            "ValidateDestinationFunction": {
                "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue",
                "secretsmanager:GetSecretValue", "secretsmanager:DeleteSecret",
            },
        })
        # Our key is used only through Secrets Manager.
        key = self.resources["CredentialsKey"]["Properties"]
        self.assertTrue(key["EnableKeyRotation"])
        for statement in statements(key["KeyPolicy"]):
            uses = {"kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt"} & set(as_list(statement["Action"]))
            if uses:
                self.assertEqual(
                    statement["Condition"]["StringEquals"]["kms:ViaService"],
                    {"Fn::Sub": "secretsmanager.${AWS::Region}.${AWS::URLSuffix}"},
                )

    def test_outputs(self):
        outputs = self.template["Outputs"]
        self.assertLessEqual({"ApiUrl", "ArchiveQueueUrl", "CustomerTrustPrincipalArn", "BackfillQueueUrl"}, set(outputs))
        self.assertEqual(outputs["BackfillQueueUrl"]["Value"], {"Ref": "BackfillQueue"})
        self.assertEqual(outputs["BackfillQueueUrl"]["Condition"], "HasStagingBucket")

    def test_every_suppression_gives_its_reason(self):
        for name, resource in self.resources.items():
            metadata = resource.get("Metadata", {})
            for skip in metadata.get("checkov", {}).get("skip", []):
                self.assertRegex(skip["id"], r"^CKV_AWS_\d+$", name)
                self.assertGreaterEqual(len(skip.get("comment", "")), 30, f"{name} {skip['id']}: say why")
            self.assertNotIn("cfn-lint", metadata, f"{name}: a cfn-lint suppression needs a reason here")


class Checks(unittest.TestCase):
    """check_templates rejects what plain cfn-lint on the SAM source accepts."""

    @classmethod
    def setUpClass(cls):
        cls.source = read(SAM)

    def broken(self, old, new):
        self.assertIn(old, self.source)
        return check_templates.check_sam(self.source.replace(old, new, 1), "broken-template.yaml")

    def test_the_real_templates_pass(self):
        self.assertEqual(check_templates.check_sam(self.source), [])
        self.assertEqual(check_templates.check_customer(read(CUSTOMER)), [])

    def test_a_misspelt_report_batch_item_failures_is_rejected(self):
        found = self.broken("- ReportBatchItemFailures", "- ReportBatchItemFailure")
        self.assertTrue(any("FunctionResponseTypes" in p for p in found), found)

    def test_a_batch_size_of_100000_is_rejected(self):
        found = self.broken("BatchSize: 100\n", "BatchSize: 100000\n")
        self.assertTrue(any("BatchSize" in p for p in found), found)

    def test_a_missing_getatt_target_is_rejected(self):
        found = self.broken("!GetAtt ArchiveDeadLetterQueue.QueueName", "!GetAtt ArchiveDeadLetterQueu.QueueName")
        self.assertTrue(any("ArchiveDeadLetterQueu'" in p for p in found), found)

    def test_a_bad_rate_expression_is_rejected_inline_and_as_a_default(self):
        inline = self.broken("Schedule: !Ref HealthCheckSchedule", "Schedule: rate(1 dayz)")
        self.assertTrue(any("ScheduleExpression" in p for p in inline), inline)
        default = self.broken("Default: rate(15 minutes)", "Default: rate(1 dayz)")
        self.assertTrue(any("HealthCheckSchedule" in p for p in default), default)

    def test_a_timeout_longer_than_the_visibility_timeout_is_rejected(self):
        found = self.broken("Timeout: 60\n", "Timeout: 900\n")
        self.assertTrue(any("VisibilityTimeout" in p for p in found), found)

    def test_a_template_that_does_not_translate_is_rejected(self):
        found = self.broken("Type: SQS\n", "Type: SQSQueue\n")
        self.assertTrue(any("SAM translation failed" in p for p in found), found)

    def test_a_broken_customer_template_is_rejected(self):
        text = read(CUSTOMER)
        self.assertIn('"Action": "s3:PutObject"', text)
        found = check_templates.check_customer(text.replace('"Action": "s3:PutObject"', '"Actions": "s3:PutObject"', 1))
        self.assertNotEqual(found, [])

    @unittest.skipUnless(check_templates.checkov_executable(), "checkov is not installed (make infra-tools)")
    def test_checkov_rejects_a_public_bucket_and_an_unreasoned_gap(self):
        with tempfile.TemporaryDirectory() as scratch:
            path = os.path.join(scratch, "template.yaml")
            with open(path, "w", encoding="utf-8") as out:
                out.write(self.source.replace("BlockPublicAcls: true", "BlockPublicAcls: false", 1)
                          .replace("          - id: CKV_AWS_18\n", "          - id: CKV_AWS_0\n", 1))
            found = check_templates.checkov([path])
        self.assertTrue(any("CKV_AWS_53" in p for p in found), found)
        self.assertTrue(any("CKV_AWS_18" in p for p in found), found)


class Package(unittest.TestCase):
    """`make deploy` deploys the zips `make build` made."""

    def test_code_uris_point_at_the_built_zips(self):
        with tempfile.TemporaryDirectory() as scratch:
            for binary in ("archive-message", "validate-destination", "check-destinations", "run-backfill"):
                with open(os.path.join(scratch, f"{binary}.zip"), "wb") as out:
                    out.write(b"PK")
            out_path = os.path.join(scratch, "template.json")
            package.package(out_path)
            with open(out_path, encoding="utf-8") as written:
                template = json.load(written)
        code = {name: r["Properties"]["CodeUri"] for name, r in template["Resources"].items()
                if r["Type"] == "AWS::Serverless::Function"}
        self.assertEqual(code, {
            "ArchiveMessageFunction": "archive-message.zip",
            "ValidateDestinationFunction": "validate-destination.zip",
            "CheckDestinationsFunction": "check-destinations.zip",
            "RunBackfillFunction": "run-backfill.zip",
        })
        self.assertEqual(template["Transform"], "AWS::Serverless-2016-10-31")

    def test_a_missing_zip_stops_the_deploy(self):
        with tempfile.TemporaryDirectory() as scratch:
            with self.assertRaises(SystemExit):
                package.package(os.path.join(scratch, "template.json"))


class CustomerTemplate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = check_templates.load(read(CUSTOMER), CUSTOMER)
        cls.role = cls.template["Resources"]["ArchiveRole"]
        cls.properties = cls.role["Properties"]

    def test_parameters(self):
        parameters = self.template["Parameters"]
        self.assertLessEqual(
            {"BucketName", "FolderPath", "KmsKeyArn", "ExternalId", "VendorPrincipalArn", "RoleNamePrefix", "RoleNameSuffix"},
            set(parameters),
        )
        self.assertIs(parameters["ExternalId"]["NoEcho"], True)
        self.assertEqual(parameters["FolderPath"]["Default"], "")
        self.assertEqual(parameters["KmsKeyArn"]["Default"], "")
        self.assertEqual(parameters["RoleNamePrefix"]["Default"], "stored-messages")
        self.assertEqual(self.template["Outputs"]["RoleArn"]["Value"], {"Fn::GetAtt": ["ArchiveRole", "Arn"]})

    def test_the_role_name_starts_with_the_prefix(self):
        self.assertEqual(self.role["Type"], "AWS::IAM::Role")
        self.assertTrue(self.properties["RoleName"]["Fn::Sub"].startswith("${RoleNamePrefix}"))

    def test_only_our_principal_with_the_external_id_may_assume_it(self):
        (trust,) = statements(self.properties["AssumeRolePolicyDocument"])
        self.assertEqual(trust["Sid"], "StoredMessagesAssumeRole")
        self.assertEqual(trust["Effect"], "Allow")
        self.assertEqual(trust["Principal"], {"AWS": {"Ref": "VendorPrincipalArn"}})
        self.assertEqual(trust["Action"], "sts:AssumeRole")
        self.assertEqual(trust["Condition"], {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}})

    def test_it_may_only_write_objects_and_use_the_given_key(self):
        (policy,) = self.properties["Policies"]
        by_sid = {s["Sid"]: s for s in statements(policy["PolicyDocument"])}
        self.assertEqual(set(by_sid), {"StoredMessagesWriteArchive", "StoredMessagesEncryptArchive"})
        write = by_sid["StoredMessagesWriteArchive"]
        self.assertEqual(as_list(write["Action"]), ["s3:PutObject"])
        self.assertEqual(write["Resource"], {"Fn::If": [
            "HasFolder",
            {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}/${FolderPath}/*"},
            {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}/*"},
        ]})
        kms = by_sid["StoredMessagesEncryptArchive"]
        # What S3 calls under the role for SSE-KMS writes; never kms:Encrypt.
        self.assertEqual(sorted(as_list(kms["Action"])), ["kms:Decrypt", "kms:GenerateDataKey"])
        self.assertEqual(kms["Resource"], {"Ref": "KmsKeyArn"})
        # The KMS statement exists only with a key.
        (conditional,) = [s for s in as_list(policy["PolicyDocument"]["Statement"]) if "Fn::If" in s]
        self.assertEqual(conditional["Fn::If"][0], "HasKmsKey")
        self.assertEqual(self.template["Conditions"]["HasKmsKey"],
                         {"Fn::Not": [{"Fn::Equals": [{"Ref": "KmsKeyArn"}, ""]}]})

    def test_only_key_arns_and_wildcard_free_folders_are_accepted(self):
        # IAM matches KMS keys by key ARN only, and reads '*' in a folder as a
        # wildcard (contract v1.1, section 3); the Rust property test covers
        # the rendering, this the parameters' own patterns.
        parameters = self.template["Parameters"]
        key = re.compile(parameters["KmsKeyArn"]["AllowedPattern"])
        folder = re.compile(parameters["FolderPath"]["AllowedPattern"])
        self.assertTrue(key.fullmatch("arn:aws:kms:eu-west-1:111122223333:key/1f2e3d4c-0000-4000-8000-00000000b01a"))
        self.assertFalse(key.fullmatch("arn:aws:kms:eu-west-1:111122223333:alias/message-archive"))
        for bad in ("*", "team*", "archive/*"):
            self.assertFalse(folder.fullmatch(bad), bad)
        self.assertTrue(folder.fullmatch("archive/prod"))

    def test_sessions_we_ask_for_fit_the_role(self):
        # validate-destination and archive-message ask for
        # ROLE_SESSION_DURATION_SECONDS; AssumeRole fails above the role's maximum.
        sam = check_templates.load(read(SAM), SAM)
        self.assertLessEqual(sam["Parameters"]["RoleSessionDurationSeconds"]["MaxValue"],
                             self.properties["MaxSessionDuration"])


if __name__ == "__main__":
    unittest.main()
