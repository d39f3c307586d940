//! Real customer setups (issue 13; `../shared/cases/real-setups/`) through
//! the real SQS handler, against an emulator taught the AWS rule each one
//! depends on (tools/emulator/server.py).

use stored_messages::arn::KmsKeyArn;

use super::*;

const ACCOUNT: &str = "111122223333";
const REGION: &str = "eu-west-1";
const ATTACKER: &str = "444455556666";

fn batch(project: &str, ids: &[&str]) -> Vec<(String, String)> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            (
                format!("sqs-{id}"),
                message(project, id, "email", i).to_string(),
            )
        })
        .collect()
}

fn parked(w: &World) -> usize {
    w.emulator
        .keys(VENDOR_ACCOUNT, "us-east-1", CONTROL_BUCKET, "parked/")
        .len()
}

/// B01: every message to a bucket that encrypts by default with a customer
/// key was parked, because our session policy left S3 no KMS grant.
#[tokio::test]
async fn bucket_default_kms_encryption_archives_instead_of_parking() {
    let w = world().await;
    let c = w.customer(
        ACCOUNT,
        REGION,
        "acme-kms-default",
        "stored-messages-kms-default",
    );
    let key = w.emulator.kms_key(&c, None);
    w.emulator.bucket_default_kms(&c, &key, false);
    w.emulator
        .allow_put_with_key(&c, None, Some(&KmsKeyArn::parse(&key).unwrap()));
    w.register(&c, "12345", |d| {
        s3_mut(d).encryption = Encryption::BucketDefault
    })
    .await;
    let response = handler::handle(
        &w.archiver(),
        sqs_event(&batch("12345", &["m1", "m2", "m3"])),
    )
    .await
    .unwrap();
    assert!(failures(&response).is_empty());
    assert_eq!(w.emulator.objects(&c, "").len(), 3);
    assert_eq!(parked(&w), 0, "nothing parked");
}

/// B04: a write-once bucket policy; archive writes carry `If-None-Match: *`
/// and land, a redelivery is a 412 and is acknowledged.
#[tokio::test]
async fn a_write_once_bucket_policy_takes_archive_writes_and_redeliveries() {
    let w = world().await;
    let c = w.customer(ACCOUNT, REGION, "acme-worm", "stored-messages-worm");
    w.emulator.bucket_policy(
        &c,
        &json!({ "Version": "2012-10-17", "Statement": [{
            "Sid": "ArchiveIsWriteOnce", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::acme-worm/*", "Condition": { "Null": { "s3:if-none-match": "true" } },
        }] }),
    );
    w.register(&c, "12345", |_| {}).await;
    let records = batch("12345", &["m1", "m2"]);
    for round in ["first delivery", "redelivery"] {
        let response = handler::handle(&w.archiver(), sqs_event(&records))
            .await
            .unwrap();
        assert!(failures(&response).is_empty(), "{round}");
    }
    assert_eq!(w.emulator.objects(&c, "").len(), 2);
    assert_eq!(parked(&w), 0);
}

/// B11: "Revoke active sessions" on the customer role denies our cached
/// session while a fresh AssumeRole works: renew once, write, park nothing.
#[tokio::test]
async fn revoked_sessions_are_renewed_once_instead_of_parking() {
    let w = world().await;
    let c = w.customer(ACCOUNT, REGION, "acme-revoked", "stored-messages-revoked");
    w.register(&c, "12345", |_| {}).await;
    let archiver = w.archiver();
    let response = handler::handle(&archiver, sqs_event(&batch("12345", &["m1", "m2", "m3"])))
        .await
        .unwrap();
    assert!(failures(&response).is_empty());
    assert_eq!(w.assume_role_calls().len(), 1);

    w.emulator.revoke_sessions(&c.role_arn());
    let ids: Vec<String> = (4..24).map(|i| format!("m{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let response = handler::handle(&archiver, sqs_event(&batch("12345", &ids)))
        .await
        .unwrap();
    assert!(failures(&response).is_empty());
    assert_eq!(parked(&w), 0, "nothing parked for a revoked session");
    assert_eq!(w.emulator.objects(&c, "").len(), 23);
    assert_eq!(
        w.assume_role_calls().len(),
        2,
        "one renewal for twenty denied writes, not one per message"
    );
}

/// B15: a record of one org naming our control data (or another org's
/// staged body) in `message_ref` is malformed: quarantined, never read, and
/// nothing lands in the record's own bucket.
#[tokio::test]
async fn a_message_ref_outside_the_orgs_staging_prefix_is_never_read() {
    let w = world().await;
    let evil = w.customer(ACCOUNT, REGION, "evil-archive", "stored-messages-evil");
    // Registered as its own org, with the External ID of that org.
    let evil_org = OrgId::parse("evil-org").unwrap();
    let evil_xid = w.registry.ensure_external_id(&evil_org).await.unwrap();
    w.emulator.aws(ACCOUNT, REGION, json!([{ "service": "iam", "op": "update_assume_role_policy", "args": {
        "RoleName": evil.role_name,
        "PolicyDocument": stored_messages::credentials::trust_policy(&w.vendor.principal_arn, &evil_xid).to_string(),
    } }]));
    let mut d = stored_messages_testkit::destination(&evil, "evil-org", "666");
    s3_mut(&mut d).compression = Compression::None;
    w.registry.create_destination(&d).await.unwrap();
    w.emulator.aws(VENDOR_ACCOUNT, "us-east-1", json!([{ "service": "s3", "op": "put_object", "args": {
        "Bucket": STAGING_BUCKET, "Key": "acme/staged/secret.json", "Body": "{\"subject\":\"acme only\"}" } }]));

    let reference = |id: &str, bucket: &str, key: &str| {
        json!({ "version": 1, "org_id": "evil-org", "project_id": "666", "message_id": id, "channel": "email",
                "sent_at": "2026-11-22T23:12:28Z", "recipient": { "user_id": "u-1" },
                "message_ref": { "bucket": bucket, "key": key } })
        .to_string()
    };
    let records = vec![
        (
            "sqs-1".to_owned(),
            reference("ref-1", CONTROL_BUCKET, "orgs/acme/external-id.json"),
        ),
        (
            "sqs-2".to_owned(),
            reference(
                "ref-2",
                CONTROL_BUCKET,
                &format!("destinations/{ORG}/12345/{}.json", d.id),
            ),
        ),
        (
            "sqs-3".to_owned(),
            reference("ref-3", STAGING_BUCKET, "acme/staged/secret.json"),
        ),
        (
            "sqs-4".to_owned(),
            reference(
                "ref-4",
                STAGING_BUCKET,
                "evil-org/../acme/staged/secret.json",
            ),
        ),
    ];
    w.emulator.clear_requests();
    let response = handler::handle(&w.archiver(), sqs_event(&records))
        .await
        .unwrap();
    assert!(
        failures(&response).is_empty(),
        "acknowledged: malformed is final"
    );
    assert!(
        w.emulator.objects(&evil, "").is_empty(),
        "nothing archived into the record's bucket"
    );
    let quarantined = w
        .emulator
        .keys(VENDOR_ACCOUNT, "us-east-1", CONTROL_BUCKET, "quarantine/");
    assert_eq!(quarantined.len(), 4);
    let reads: Vec<Value> = w
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "GET" && r["path"].as_str().is_some_and(|p| p.contains("acme")))
        .collect();
    assert!(reads.is_empty(), "never dereferenced: {reads:?}");
}

/// B14 for our own buckets: the control bucket deleted and re-created by
/// another account. Every request of ours asserts our account, so the
/// quarantine write is refused (and the record retried), never delivered.
#[tokio::test]
async fn a_control_bucket_recreated_by_another_account_receives_nothing() {
    let w = world().await;
    let keys = w
        .emulator
        .keys(VENDOR_ACCOUNT, "us-east-1", CONTROL_BUCKET, "");
    let mut calls: Vec<Value> = keys
        .iter()
        .map(|k| json!({ "service": "s3", "op": "delete_object", "args": { "Bucket": CONTROL_BUCKET, "Key": k } }))
        .collect();
    calls.push(
        json!({ "service": "s3", "op": "delete_bucket", "args": { "Bucket": CONTROL_BUCKET } }),
    );
    w.emulator
        .aws(VENDOR_ACCOUNT, "us-east-1", Value::Array(calls));
    w.emulator.aws(ATTACKER, "us-east-1", json!([
        { "service": "s3", "op": "create_bucket", "args": { "Bucket": CONTROL_BUCKET } },
        { "service": "s3", "op": "put_bucket_policy", "args": { "Bucket": CONTROL_BUCKET, "Policy": json!({
            "Version": "2012-10-17", "Statement": [{ "Sid": "TakeTheirData", "Effect": "Allow",
            "Principal": { "AWS": w.vendor.principal_arn }, "Action": "s3:*",
            "Resource": [format!("arn:aws:s3:::{CONTROL_BUCKET}"), format!("arn:aws:s3:::{CONTROL_BUCKET}/*")] }] }).to_string() } },
    ]));
    let records = vec![("sqs-bad".to_owned(), "{\"not\": \"a request\"}".to_owned())];
    let response = handler::handle(&w.archiver(), sqs_event(&records))
        .await
        .unwrap();
    assert_eq!(
        failures(&response),
        ["sqs-bad"],
        "retried, not acknowledged into their bucket"
    );
    assert!(w
        .emulator
        .keys(ATTACKER, "us-east-1", CONTROL_BUCKET, "")
        .is_empty());
    let ours = w.emulator.requests_under(&format!("/{CONTROL_BUCKET}"));
    assert!(!ours.is_empty());
    assert!(ours
        .iter()
        .all(|r| header(r, "x-amz-expected-bucket-owner") == Some(VENDOR_ACCOUNT)));
}

/// B14 for the staging bucket: a staged body read from a re-created bucket
/// is refused; the record is retried and nothing reaches the customer.
#[tokio::test]
async fn a_staging_bucket_recreated_by_another_account_is_never_read() {
    let w = world().await;
    let c = w.customer(ACCOUNT, REGION, "acme-staged", "stored-messages-staged");
    w.register(&c, "12345", |_| {}).await;
    w.emulator.aws(
        VENDOR_ACCOUNT,
        "us-east-1",
        json!([{ "service": "s3", "op": "delete_bucket", "args": { "Bucket": STAGING_BUCKET } }]),
    );
    w.emulator.aws(ATTACKER, "us-east-1", json!([
        { "service": "s3", "op": "create_bucket", "args": { "Bucket": STAGING_BUCKET } },
        { "service": "s3", "op": "put_object", "args": { "Bucket": STAGING_BUCKET, "Key": "acme/m1.json", "Body": "{\"subject\":\"planted\"}" } },
    ]));
    let mut body = message("12345", "m1", "email", 1);
    body.as_object_mut().unwrap().remove("message");
    body["message_ref"] = json!({ "bucket": STAGING_BUCKET, "key": "acme/m1.json" });
    let records = vec![("sqs-1".to_owned(), body.to_string())];
    let response = handler::handle(&w.archiver(), sqs_event(&records))
        .await
        .unwrap();
    assert_eq!(failures(&response), ["sqs-1"]);
    assert!(w.emulator.objects(&c, "").is_empty());
}

/// B03: a destination saved under contract v1 with `*` in its folder would
/// make a session policy covering every folder. It is skipped, with a log
/// line saying why, and receives nothing.
#[tokio::test(flavor = "current_thread")]
async fn a_stored_wildcard_folder_destination_is_skipped_and_reported() {
    let w = world().await;
    let c = w.customer(
        ACCOUNT,
        REGION,
        "acme-v1-folder",
        "stored-messages-v1-folder",
    );
    let d = stored_messages_testkit::destination(&c, ORG, "12345");
    let mut record = serde_json::to_value(&d).unwrap();
    record["folder_path"] = json!("*");
    w.emulator.aws(VENDOR_ACCOUNT, "us-east-1", json!([{ "service": "s3", "op": "put_object", "args": {
        "Bucket": CONTROL_BUCKET, "Key": format!("destinations/{ORG}/12345/{}.json", d.id), "Body": record.to_string() } }]));

    let (captured, guard) = LogCapture::scoped();
    let response = handler::handle(&w.archiver(), sqs_event(&batch("12345", &["m1"])))
        .await
        .unwrap();
    drop(guard);
    assert!(failures(&response).is_empty());
    assert!(w.emulator.objects(&c, "").is_empty(), "never used");
    let skipped = captured.events("destination_skipped");
    assert_eq!(skipped.len(), 1, "{}", captured.text());
    assert!(skipped[0]["fields"]["registry_key"]
        .as_str()
        .unwrap()
        .contains(d.id.as_str()));
}
