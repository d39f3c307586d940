"""The comparator: the archive handler a team would otherwise write, in
Python with boto3, doing the same job as archive-message.

Same contract: the project's destinations from the control bucket (cached
60 s), the org's External ID, AssumeRole per destination role (cached until
5 minutes before expiry), gzip level 1, PutObject with ExpectedBucketOwner,
SSE, If-None-Match and the same key layout, the same number of writes in
flight, and an SQS batch response. Run as `python boto3_handler.py`, it is
its own Lambda runtime loop (what awslambdaric does), so the bench drives it
through the same runtime API as our binaries.
"""

import datetime
import gzip
import hashlib
import http.client
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

CONTROL_BUCKET = os.environ["CONTROL_BUCKET"]
MAX_IN_FLIGHT = int(os.environ.get("ARCHIVE_MAX_IN_FLIGHT", "64"))
CONFIG = Config(
    max_pool_connections=MAX_IN_FLIGHT,
    s3={"addressing_style": "path"},
    retries={"mode": "standard"},
)
S3 = boto3.client("s3", config=CONFIG)
STS = boto3.client("sts", config=CONFIG)
POOL = ThreadPoolExecutor(MAX_IN_FLIGHT)
LOCK = threading.Lock()
DESTINATIONS = {}
EXTERNAL_IDS = {}
SESSIONS = {}


def cached(cache, key, ttl, load):
    now = time.monotonic()
    with LOCK:
        hit = cache.get(key)
        if hit and hit[0] > now:
            return hit[1]
    value, lifetime = load()
    with LOCK:
        cache[key] = (now + min(ttl, lifetime), value)
    return value


def destinations(org, project):
    def load():
        prefix = f"destinations/{org}/{project}/"
        listed = S3.list_objects_v2(Bucket=CONTROL_BUCKET, Prefix=prefix)
        found = []
        for item in listed.get("Contents", []):
            body = S3.get_object(Bucket=CONTROL_BUCKET, Key=item["Key"])["Body"].read()
            found.append(json.loads(body))
        return found, 60

    return cached(DESTINATIONS, (org, project), 60, load)


def external_id(org):
    def load():
        body = S3.get_object(Bucket=CONTROL_BUCKET, Key=f"orgs/{org}/external-id.json")["Body"].read()
        return json.loads(body)["external_id"], 60

    return cached(EXTERNAL_IDS, org, 60, load)


def session_client(destination, org):
    def load():
        creds = STS.assume_role(
            RoleArn=destination["role_arn"],
            RoleSessionName=destination["role_session_name"],
            ExternalId=external_id(org),
            DurationSeconds=3600,
        )["Credentials"]
        client = boto3.client(
            "s3",
            config=CONFIG,
            region_name=destination["region"],
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )
        left = (creds["Expiration"] - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        return client, left - 300

    return cached(SESSIONS, destination["role_arn"], 3600, load)


def object_key(destination, request):
    recipient = request["recipient"]
    identity = (recipient.get("email") or "").strip().lower() or recipient["user_id"]
    digest = hashlib.sha256(identity.encode()).hexdigest()
    folder = f"{destination['folder_path']}/" if destination.get("folder_path") else ""
    ext = ".json.gz" if destination["compression"] == "gzip" else ".json"
    campaign = request.get("campaign_id") or "unassociated"
    return f"{folder}{request['channel']}/{request['project_id']}/{digest}/{campaign}/{request['message_id']}{ext}"


def archive(record):
    request = json.loads(record["body"])
    targets = [
        d
        for d in destinations(request["org_id"], request["project_id"])
        if d["status"] != "disabled" and request["channel"] in d["channels"]
    ]
    if not targets:
        return
    if "message_ref" in request:
        ref = request.pop("message_ref")
        request["message"] = json.loads(S3.get_object(Bucket=ref["bucket"], Key=ref["key"])["Body"].read())
    request["archived_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    document = json.dumps(request, separators=(",", ":")).encode()
    for destination in targets:
        extra = {}
        mode = destination["encryption"]["mode"]
        if mode == "aes256":
            extra["ServerSideEncryption"] = "AES256"
        elif mode == "kms":
            extra["ServerSideEncryption"] = "aws:kms"
            extra["SSEKMSKeyId"] = destination["encryption"]["kms_key_arn"]
        gzipped = destination["compression"] == "gzip"
        if gzipped:
            extra["ContentEncoding"] = "gzip"
        try:
            session_client(destination, request["org_id"]).put_object(
                Bucket=destination["bucket"],
                Key=object_key(destination, request),
                Body=gzip.compress(document, compresslevel=1) if gzipped else document,
                ContentType="application/json",
                ExpectedBucketOwner=destination["account_id"],
                IfNoneMatch="*",
                **extra,
            )
        except S3.exceptions.ClientError as err:
            if err.response["Error"]["Code"] != "PreconditionFailed":
                raise


def handler(event, _context):
    records = event["Records"]
    futures = [(r["messageId"], POOL.submit(archive, r)) for r in records]
    failures = []
    for message_id, future in futures:
        try:
            future.result()
        except Exception:  # noqa: BLE001 - a failed record is retried, never the batch
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def main():
    api = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
    base = "/2018-06-01/runtime/invocation"
    while True:
        api.request("GET", f"{base}/next")
        answer = api.getresponse()
        event = answer.read()
        request_id = answer.getheader("Lambda-Runtime-Aws-Request-Id")
        try:
            body, path = json.dumps(handler(json.loads(event), None)), f"{base}/{request_id}/response"
        except Exception as err:  # noqa: BLE001 - reported to the runtime API like awslambdaric
            body, path = json.dumps({"errorType": type(err).__name__}), f"{base}/{request_id}/error"
        api.request("POST", path, body=body.encode())
        api.getresponse().read()


if __name__ == "__main__":
    main()
