//! Real customer setups (issue 13; `../shared/cases/real-setups/`) through
//! the real API handler, against an emulator taught the AWS rule each one
//! depends on (tools/emulator/server.py): S3's KMS call under our session
//! policy, alias ARNs in IAM, bucket-policy conditions, role chaining.

use stored_messages::arn::KmsKeyArn;
use stored_messages_testkit::header;

use super::*;

const ACCOUNT: &str = "111122223333";
const REGION: &str = "eu-west-1";

/// A customer whose role trusts us with the org's External ID and has no
/// permissions yet; each test grants what its setup grants.
fn bare_customer(w: &World, xid: &ExternalId, bucket: &str, role: &str) -> Customer {
    w.emulator.customer(
        &w.vendor,
        &CustomerSpec {
            account: ACCOUNT,
            region: REGION,
            bucket,
            role_name: role,
            external_id: Some(xid),
            folder: None,
            allow_put: false,
        },
    )
}

async fn validate(w: &World, body: Value) -> Answer {
    call(w, event(VALIDATE, Some("acme"), Some(body))).await
}

fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

/// `GET /v1/setup` with a query, as the console sends it.
async fn setup(w: &World, query: &[(&str, &str)]) -> Answer {
    let mut value: Value = serde_json::from_str(SETUP).unwrap();
    value["queryStringParameters"] = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect::<serde_json::Map<String, Value>>()
        .into();
    value["requestContext"]["authorizer"]["jwt"]["claims"]["org_id"] = json!("acme");
    call(
        w,
        LambdaEvent::new(serde_json::from_value(value).unwrap(), Context::default()),
    )
    .await
}

/// B01: the bucket encrypts by default with a customer key the role may
/// use; the destination sends no header. S3 calls KMS with our session, so
/// our session policy must let it (it only allowed s3:PutObject before).
#[tokio::test]
async fn bucket_default_encryption_with_a_customer_key_validates() {
    let w = world().await;
    let xid = external_id(&w, "acme").await;
    let c = bare_customer(&w, &xid, "acme-message-archive", "stored-messages-acme");
    let key = w.emulator.kms_key(&c, None);
    let key_arn = KmsKeyArn::parse(&key).unwrap();
    w.emulator.bucket_default_kms(&c, &key, false);
    // Exactly what GET /v1/setup renders for this bucket and key.
    w.emulator.allow_put_with_key(&c, None, Some(&key_arn));
    let body = json!({
        "project_id": "12345", "role_arn": c.role_arn(), "region": REGION, "bucket": c.bucket,
        "folder_path": "archive/prod", "channels": ["email"], "layout": "by_recipient",
        "compression": "gzip", "encryption": { "mode": "bucket_default" }, "bucket_private_confirmed": true,
    });
    let answer = validate(&w, body.clone()).await;
    assert_eq!(answer.body["valid"], true, "{}", answer.body);
    assert_eq!(check(&answer, "put_object")["status"], "pass");

    // Variant A, the control: the same key named explicitly.
    let explicit = with(
        with(body.clone(), "folder_path", json!("archive/explicit")),
        "encryption",
        json!({ "mode": "kms", "kms_key_arn": key }),
    );
    assert_eq!(validate(&w, explicit).await.body["valid"], true);

    // Variant C: with S3 Bucket Keys the encryption context is the bucket.
    w.emulator.bucket_default_kms(&c, &key, true);
    let bucket_key = with(body.clone(), "folder_path", json!("archive/bucket-key"));
    let answer = validate(&w, bucket_key).await;
    assert_eq!(answer.body["valid"], true, "{}", answer.body);

    // A default key in a central key account of the organisation, shared
    // with the customer's account by its key policy.
    let central = Customer {
        account: "999988887777".to_owned(),
        ..c.clone()
    };
    let shared_key = w.emulator.kms_key(&central, None);
    w.emulator.aws(
        &central.account,
        REGION,
        json!([{ "service": "kms", "op": "put_key_policy", "args": {
            "KeyId": shared_key, "PolicyName": "default", "Policy": json!({
                "Version": "2012-10-17", "Statement": [
                    { "Sid": "Owner", "Effect": "Allow", "Principal": { "AWS": "arn:aws:iam::999988887777:root" }, "Action": "kms:*", "Resource": "*" },
                    { "Sid": "ArchiveAccount", "Effect": "Allow", "Principal": { "AWS": format!("arn:aws:iam::{ACCOUNT}:root") },
                      "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*" },
                ] }).to_string() } }]),
    );
    w.emulator.bucket_default_kms(&c, &shared_key, false);
    w.emulator
        .allow_put_with_key(&c, None, Some(&KmsKeyArn::parse(&shared_key).unwrap()));
    let central_key = with(body.clone(), "folder_path", json!("archive/central-key"));
    let answer = validate(&w, central_key).await;
    assert_eq!(answer.body["valid"], true, "{}", answer.body);

    // A role that really lacks the key still gets kms_denied, addressed to
    // the role's policy (a fresh folder: today's probe must be written).
    w.emulator.allow_put(&c, None);
    let answer = validate(&w, with(body, "folder_path", json!("archive/no-key"))).await;
    assert_eq!(
        failed_code(&answer),
        [("put_object".to_owned(), "kms_denied".to_owned())]
    );
    let remediation = check(&answer, "put_object")["remediation"]
        .as_str()
        .unwrap();
    assert!(
        remediation.contains("kms_policy_statement"),
        "{remediation}"
    );
}

/// B02: the customer names their key by alias and pastes the policy
/// `GET /v1/setup` renders for it. An alias ARN as a `Resource` matches no
/// key, so the policy must grant the keys the alias points at.
#[tokio::test]
async fn a_pasted_setup_policy_for_a_kms_alias_grants_the_key() {
    let w = world().await;
    let xid = external_id(&w, "acme").await;
    let c = bare_customer(&w, &xid, "acme-alias-archive", "stored-messages-alias");
    w.emulator.kms_key(&c, Some("alias/message-archive"));
    let alias = format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/message-archive");
    let answer = setup(
        &w,
        &[
            ("bucket", c.bucket.as_str()),
            ("folder_path", "archive/prod"),
            ("kms_key_arn", alias.as_str()),
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    w.emulator.role_policy(
        &c,
        "stored-messages-write",
        &answer.body["permissions_policy"],
    );

    let body = json!({
        "project_id": "12345", "role_arn": c.role_arn(), "region": REGION, "bucket": c.bucket,
        "folder_path": "archive/prod", "channels": ["email", "sms"],
        "encryption": { "mode": "kms", "kms_key_arn": alias }, "bucket_private_confirmed": true,
    });
    let answer = validate(&w, body).await;
    assert_eq!(answer.body["valid"], true, "{}", answer.body);
}

/// B03: `*` is an IAM wildcard; a folder holding one is refused before any
/// AWS call, on validation and on the setup page.
#[tokio::test]
async fn a_wildcard_folder_is_refused_everywhere() {
    let w = world().await;
    let xid = external_id(&w, "acme").await;
    let c = customer(
        &w,
        Some(&xid),
        "acme-wild",
        "stored-messages-wild",
        REGION,
        true,
    );
    for folder in ["*", "team*", "archive/*"] {
        let answer = validate(&w, with(body_for(&c), "folder_path", json!(folder))).await;
        assert_eq!(
            failed_code(&answer),
            [("folder_path".to_owned(), "folder_path_invalid".to_owned())],
            "{folder}"
        );
        let answer = setup(&w, &[("bucket", "acme-wild"), ("folder_path", folder)]).await;
        assert_eq!(answer.status, 400, "{folder}: {}", answer.body);
    }
    assert!(
        w.emulator.requests().iter().all(|r| r["method"] != "PUT"
            || !r["path"]
                .as_str()
                .unwrap_or_default()
                .starts_with("/acme-wild")),
        "nothing was written for a refused folder"
    );
}

/// B04: a write-once archive bucket denies every PutObject without
/// `If-None-Match`. Archive writes carry it, so the probe must too; and a
/// second validation the same day gets 412, which is a pass.
#[tokio::test]
async fn a_write_once_bucket_policy_accepts_the_probe() {
    let w = world().await;
    let xid = external_id(&w, "acme").await;
    let c = customer(
        &w,
        Some(&xid),
        "acme-write-once",
        "stored-messages-write-once",
        REGION,
        true,
    );
    w.emulator.bucket_policy(
        &c,
        &json!({ "Version": "2012-10-17", "Statement": [
            { "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
              "Resource": ["arn:aws:s3:::acme-write-once", "arn:aws:s3:::acme-write-once/*"],
              "Condition": { "Bool": { "aws:SecureTransport": "false" } } },
            { "Sid": "ArchiveIsWriteOnce", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
              "Resource": "arn:aws:s3:::acme-write-once/archive/prod/*",
              "Condition": { "Null": { "s3:if-none-match": "true" } } },
        ] }),
    );
    let body = with(body_for(&c), "folder_path", json!("archive/prod"));
    let day = utc_day();
    for round in ["first (writes)", "second (412)"] {
        let answer = validate(&w, body.clone()).await;
        assert_eq!(answer.body["valid"], true, "{round}: {}", answer.body);
    }
    let probes: Vec<Value> = w
        .emulator
        .requests_under("/acme-write-once/archive/prod/_stored-messages/connection-test/")
        .into_iter()
        .filter(|r| r["method"] == "PUT")
        .collect();
    assert_eq!(probes.len(), 2);
    assert!(probes
        .iter()
        .all(|r| header(r, "if-none-match") == Some("*")));
    let statuses: Vec<Option<u64>> = probes.iter().map(|r| r["status"].as_u64()).collect();
    // Both on one UTC day: the second probe finds the first (a run across
    // midnight writes two days' probes, both 200).
    let expected = if utc_day() == day {
        [Some(200), Some(412)]
    } else {
        [Some(200), Some(200)]
    };
    assert_eq!(statuses, expected);
}

/// B05: bucket policies that demand an encryption header. The codes were
/// right; the words must send the admin to the bucket policy and the
/// matching `encryption.mode`, not to the role's s3:PutObject grant.
#[tokio::test]
async fn an_encryption_demanding_bucket_policy_is_named_as_the_cause() {
    let w = world().await;
    let xid = external_id(&w, "acme").await;
    let c = bare_customer(&w, &xid, "acme-enforced", "stored-messages-enforced");
    let key = w.emulator.kms_key(&c, None);
    w.emulator
        .allow_put_with_key(&c, None, Some(&KmsKeyArn::parse(&key).unwrap()));
    w.emulator.bucket_policy(
        &c,
        &json!({ "Version": "2012-10-17", "Statement": [
            { "Sid": "DenyIncorrectEncryptionHeader", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
              "Resource": "arn:aws:s3:::acme-enforced/*",
              "Condition": { "StringNotEquals": { "s3:x-amz-server-side-encryption": "aws:kms" } } },
            { "Sid": "DenyUnencryptedObjectUploads", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
              "Resource": "arn:aws:s3:::acme-enforced/*",
              "Condition": { "Null": { "s3:x-amz-server-side-encryption": "true" } } },
        ] }),
    );
    for (folder, encryption, valid) in [
        ("e1", json!({ "mode": "bucket_default" }), false),
        ("e2", json!({ "mode": "aes256" }), false),
        ("e3", json!({ "mode": "kms", "kms_key_arn": key }), true),
    ] {
        let body = with(
            with(body_for(&c), "folder_path", json!(folder)),
            "encryption",
            encryption,
        );
        let answer = validate(&w, body).await;
        assert_eq!(answer.body["valid"], valid, "{folder}: {}", answer.body);
        if !valid {
            assert_eq!(
                failed_code(&answer),
                [("put_object".to_owned(), "put_object_denied".to_owned())]
            );
            let put = check(&answer, "put_object");
            let (message, remediation) = (
                put["message"].as_str().unwrap(),
                put["remediation"].as_str().unwrap(),
            );
            assert!(message.contains("bucket policy"), "{message}");
            assert!(remediation.contains("encryption.mode"), "{remediation}");
            assert!(!remediation.starts_with("Give the role"), "{remediation}");
        }
    }
}

/// B09: our functions run as a role session, so a session above an hour is
/// role chaining beyond AWS's cap. The configuration refuses it at start;
/// had it reached STS, every AssumeRole would fail.
#[tokio::test]
async fn a_session_above_one_hour_is_refused_at_start_and_by_sts() {
    let config = stored_messages::config::Settings::from_lookup(|name| match name {
        "CONTROL_BUCKET" => Some("sm-control".to_owned()),
        "ROLE_SESSION_DURATION_SECONDS" => Some("7200".to_owned()),
        _ => None,
    });
    let err = config
        .expect_err("7200 s must be refused at start")
        .to_string();
    assert!(err.contains("role chaining"), "{err}");

    // What the refusal prevents, shown against the emulator's STS.
    let emulator = Emulator::start();
    let vendor = emulator.vendor();
    let mut settings = emulator.settings(&vendor);
    settings.session_duration = std::time::Duration::from_secs(7200);
    let sdk = emulator.sdk_config(&vendor).await;
    let api = Api::new(
        &settings,
        &sdk,
        stored_messages::arn::AccountId::parse(stored_messages_testkit::VENDOR_ACCOUNT).unwrap(),
    );
    let w = World {
        emulator,
        vendor,
        api,
    };
    let xid = external_id(&w, "acme").await;
    let c = customer(
        &w,
        Some(&xid),
        "acme-chained",
        "stored-messages-chained",
        REGION,
        true,
    );
    let answer = validate(&w, body_for(&c)).await;
    assert_eq!(
        failed_code(&answer),
        [("assume_role".to_owned(), "assume_role_failed".to_owned())]
    );
    assert!(
        check(&answer, "assume_role")["message"]
            .as_str()
            .unwrap()
            .contains("ValidationError"),
        "{}",
        answer.body
    );
}

/// B03, a destination saved under contract v1 with `*` in its folder: never
/// used, so not listed, but still the org's to delete by id (and no other
/// org's).
#[tokio::test]
async fn a_stored_wildcard_folder_destination_can_still_be_deleted() {
    use stored_messages_testkit::{CONTROL_BUCKET, VENDOR_ACCOUNT};
    let w = world().await;
    let xid = external_id(&w, "acme").await;
    let c = customer(
        &w,
        Some(&xid),
        "acme-v1",
        "stored-messages-v1",
        REGION,
        true,
    );
    let d = stored_messages_testkit::destination(&c, "acme", "12345");
    let mut record = serde_json::to_value(&d).unwrap();
    record["folder_path"] = json!("team*");
    let key = format!("destinations/acme/12345/{}.json", d.id);
    w.emulator.aws(
        VENDOR_ACCOUNT,
        "us-east-1",
        json!([{ "service": "s3", "op": "put_object", "args": {
            "Bucket": CONTROL_BUCKET, "Key": key, "Body": record.to_string() } }]),
    );
    let listed = call(&w, event(LIST, Some("acme"), None)).await;
    assert_eq!(listed.body["destinations"], json!([]));
    let path = format!("/v1/destinations/{}", d.id);
    let other = call(
        &w,
        event(&with_path(GET, "DELETE", &path), Some("org-b"), None),
    )
    .await;
    assert_eq!(other.status, 404, "another org cannot reach it");
    let deleted = call(
        &w,
        event(&with_path(GET, "DELETE", &path), Some("acme"), None),
    )
    .await;
    assert_eq!(deleted.status, 204);
    assert!(w
        .emulator
        .keys(VENDOR_ACCOUNT, "us-east-1", CONTROL_BUCKET, &key)
        .is_empty());
    let again = call(
        &w,
        event(&with_path(GET, "DELETE", &path), Some("acme"), None),
    )
    .await;
    assert_eq!(again.status, 404);
}

/// Today's number since the epoch, in UTC days: the probe key's day.
fn utc_day() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}
