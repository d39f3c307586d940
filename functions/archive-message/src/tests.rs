//! The real handler, fed SQS event JSON the way Lambda delivers it, against
//! the local AWS emulator (moto plus our enforcement of trust policies,
//! session policies and ExpectedBucketOwner). Asserts what lands in the
//! customer bucket and what we sent.

use std::collections::{BTreeMap, HashSet};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::Utc;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use stored_messages::archive::Archiver;
use stored_messages::arn::KmsKeyArn;
use stored_messages::config::Settings;
use stored_messages::credentials::ExternalId;
use stored_messages::destination::*;
use stored_messages::ids::OrgId;
use stored_messages::registry::Registry;
use stored_messages::s3::{Encryption, FolderPath, Layout};
use stored_messages::write::Compression;
use stored_messages_testkit::leak_audit::{self, Kind, LogCapture};
use stored_messages_testkit::{
    header, s3_mut, Customer, CustomerSpec, Emulator, Vendor, CONTROL_BUCKET, STAGING_BUCKET,
    VENDOR_ACCOUNT,
};

use crate::handler;

struct World {
    emulator: Emulator,
    vendor: Vendor,
    settings: Settings,
    sdk: aws_config::SdkConfig,
    registry: Registry,
    external_id: ExternalId,
}

const ORG: &str = "acme";

async fn world() -> World {
    let emulator = Emulator::start();
    let vendor = emulator.vendor();
    let settings = emulator.settings(&vendor);
    let sdk = emulator.sdk_config(&vendor).await;
    let registry = emulator.registry(&settings, &sdk);
    let external_id = registry
        .ensure_external_id(&OrgId::parse(ORG).unwrap())
        .await
        .unwrap();
    World {
        emulator,
        vendor,
        settings,
        sdk,
        registry,
        external_id,
    }
}

impl World {
    fn customer(&self, account: &str, region: &str, bucket: &str, role: &str) -> Customer {
        self.emulator.customer(
            &self.vendor,
            &CustomerSpec {
                account,
                region,
                bucket,
                role_name: role,
                external_id: Some(&self.external_id),
                folder: None,
                allow_put: true,
            },
        )
    }

    async fn register(
        &self,
        customer: &Customer,
        project: &str,
        shape: impl FnOnce(&mut Destination),
    ) -> Destination {
        let mut destination = stored_messages_testkit::destination(customer, ORG, project);
        shape(&mut destination);
        self.registry
            .create_destination(&destination)
            .await
            .unwrap();
        destination
    }

    fn archiver(&self) -> Archiver {
        stored_messages::archive::Archiver::from_settings(&self.settings, &self.sdk, own())
    }

    fn assume_role_calls(&self) -> Vec<Value> {
        self.emulator
            .requests()
            .into_iter()
            .filter(|r| {
                r["params"]["Action"] == "AssumeRole"
                    && r["access_key_id"] == self.vendor.access_key_id.as_str()
            })
            .collect()
    }

    fn puts_to(&self, bucket: &str) -> Vec<Value> {
        self.emulator
            .requests()
            .into_iter()
            .filter(|r| {
                r["method"] == "PUT"
                    && r["path"]
                        .as_str()
                        .is_some_and(|p| p.starts_with(&format!("/{bucket}/")))
            })
            .collect()
    }
}

/// The SQS event for `records`; each body is recorded for the leak audit.
fn sqs_event(records: &[(String, String)]) -> LambdaEvent<SqsEvent> {
    let records: Vec<Value> = records
        .iter()
        .inspect(|(_, body)| leak_audit::record(Kind::Input, "", body))
        .map(|(id, body)| json!({ "messageId": id, "receiptHandle": "rh", "body": body, "eventSource": "aws:sqs", "awsRegion": "us-east-1" }))
        .collect();
    LambdaEvent::new(
        serde_json::from_value(json!({ "Records": records })).unwrap(),
        Context::default(),
    )
}

fn fixture_event(json_text: &str) -> LambdaEvent<SqsEvent> {
    let event: SqsEvent = serde_json::from_str(json_text).unwrap();
    for body in event.records.iter().filter_map(|r| r.body.as_deref()) {
        leak_audit::record(Kind::Input, "", body);
    }
    LambdaEvent::new(event, Context::default())
}

fn failures(response: &SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

fn message(project: &str, id: &str, channel: &str, i: usize) -> Value {
    json!({
        "version": 1, "org_id": ORG, "project_id": project, "message_id": id, "channel": channel,
        "sent_at": format!("2026-11-22T{:02}:{:02}:{:02}.000Z", i % 24, i % 60, (i / 60) % 60),
        "campaign_id": if i % 3 == 0 { Value::Null } else { json!(format!("c{}", i % 5)) },
        "recipient": { "email": format!("Person{i}@Example.com"), "user_id": format!("u-{i}") },
        "message": { "subject": format!("Hello {i}"), "html_body": format!("<p>Hello person {i}</p>") },
    })
}

fn sha(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

#[tokio::test]
async fn sample_events_land_at_the_contract_keys_with_the_contract_bodies() {
    let w = world().await;
    let customer = w.customer(
        "111122223333",
        "eu-west-1",
        "acme-message-archive",
        "stored-messages-acme",
    );
    w.register(&customer, "12345", |d| {
        s3_mut(d).folder_path = Some(FolderPath::parse("archive/prod").unwrap())
    })
    .await;
    let archiver = w.archiver();

    for fixture in [
        include_str!("../../../events/sqs-email.json"),
        include_str!("../../../events/sqs-sms.json"),
        include_str!("../../../events/sqs-push.json"),
    ] {
        let response = handler::handle(&archiver, fixture_event(fixture))
            .await
            .unwrap();
        assert_eq!(failures(&response), Vec::<String>::new());
    }

    let objects: BTreeMap<String, _> = w
        .emulator
        .objects(&customer, "")
        .into_iter()
        .map(|o| (o.key.clone(), o))
        .collect();
    let expected = [
        format!(
            "archive/prod/email/12345/{}/1234567/9c438a20d26e4e9f8ad4edea23f811cd.json.gz",
            sha("ada@example.com")
        ),
        format!(
            "archive/prod/email/12345/{}/unassociated/1f0e5c2b7a9d4e31b6c8a0f2d4e6b8c0.json.gz",
            sha("grace@example.com")
        ),
        format!(
            "archive/prod/sms/12345/{}/7654321/5b1f7e0c2d3a4b6c8d9e0f1a2b3c4d5e.json.gz",
            sha("u-42")
        ),
        format!(
            "archive/prod/push/12345/{}/2468/a7c9e1b3d5f74a2c9e0b1d3f5a7c9e1b.json.gz",
            sha("u-7")
        ),
    ];
    assert_eq!(objects.keys().cloned().collect::<Vec<_>>(), {
        let mut e = expected.to_vec();
        e.sort();
        e
    });
    let ada = &objects[&expected[0]];
    assert_eq!(ada.content_type.as_deref(), Some("application/json"));
    assert_eq!(ada.content_encoding.as_deref(), Some("gzip"));
    let doc = ada.json();
    let sent: Value = serde_json::from_str(
        serde_json::from_str::<Value>(include_str!("../../../events/sqs-email.json")).unwrap()
            ["Records"][0]["body"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    for field in [
        "version",
        "org_id",
        "project_id",
        "message_id",
        "channel",
        "sent_at",
        "campaign_id",
        "recipient",
        "message",
    ] {
        assert_eq!(doc[field], sent[field], "{field}");
    }
    assert!(chrono::DateTime::parse_from_rfc3339(doc["archived_at"].as_str().unwrap()).is_ok());
    assert!(doc.get("message_ref").is_none());

    // What we sent: every write names the owner and is write-once.
    let puts = w.puts_to("acme-message-archive");
    assert_eq!(puts.len(), 4);
    for put in &puts {
        assert_eq!(
            header(put, "x-amz-expected-bucket-owner"),
            Some("111122223333")
        );
        assert_eq!(header(put, "if-none-match"), Some("*"));
    }
}

#[tokio::test]
async fn a_large_batch_over_three_destinations_lands_whole_with_one_sts_call_each() {
    let w = world().await;
    let by_date = w.customer(
        "111122223333",
        "eu-west-1",
        "acme-dated",
        "stored-messages-dated",
    );
    let kms = w.customer(
        "111122223333",
        "us-west-2",
        "acme-kms",
        "stored-messages-kms",
    );
    let plain = w.customer(
        "444455556666",
        "eu-central-1",
        "acme-plain",
        "stored-messages-plain",
    );
    w.emulator.allow_put(&by_date, Some("exports/messages"));
    // A real key the role may use: the emulator, like S3, resolves it and
    // asks KMS under our session.
    let key_arn = &w.emulator.kms_key(&kms, None);
    w.emulator
        .allow_put_with_key(&kms, None, Some(&KmsKeyArn::parse(key_arn).unwrap()));
    let d1 = w
        .register(&by_date, "p1", |d| {
            s3_mut(d).folder_path = Some(FolderPath::parse("exports/messages").unwrap());
            s3_mut(d).layout = Layout::ByDate;
        })
        .await;
    let d2 = w
        .register(&kms, "p1", |d| {
            s3_mut(d).encryption = Encryption::Kms {
                kms_key_arn: KmsKeyArn::parse(key_arn).unwrap(),
            }
        })
        .await;
    let d3 = w
        .register(&plain, "p2", |d| s3_mut(d).compression = Compression::None)
        .await;
    let archiver = w.archiver();

    let channels = ["email", "sms", "push", "in_app", "web_push", "whatsapp"];
    // Two invocations of 100 records (one AssumeRole per destination must
    // hold across invocations and under a batch's concurrent writes); every
    // channel, both projects and every hour of the day are in each. 600
    // records proved nothing more and took 3 times as long.
    let sent: Vec<Value> = (0..200)
        .map(|i| {
            message(
                if i % 2 == 0 { "p1" } else { "p2" },
                &format!("m{i:04}"),
                channels[i % 6],
                i,
            )
        })
        .collect();
    for batch in sent.chunks(100) {
        let records: Vec<(String, String)> = batch
            .iter()
            .map(|m| {
                (
                    format!("sqs-{}", m["message_id"].as_str().unwrap()),
                    m.to_string(),
                )
            })
            .collect();
        let response = handler::handle(&archiver, sqs_event(&records))
            .await
            .unwrap();
        assert_eq!(failures(&response), Vec::<String>::new());
    }

    assert_eq!(
        w.assume_role_calls().len(),
        3,
        "one AssumeRole per destination for the whole run"
    );

    let p1: Vec<&Value> = sent.iter().filter(|m| m["project_id"] == "p1").collect();
    let p2: Vec<&Value> = sent.iter().filter(|m| m["project_id"] == "p2").collect();
    let dated = w.emulator.objects(&by_date, "");
    let keyed = w.emulator.objects(&kms, "");
    let plain_objects = w.emulator.objects(&plain, "");
    assert_eq!(
        (dated.len(), keyed.len(), plain_objects.len()),
        (p1.len(), p1.len(), p2.len())
    );

    let expected_date_key = |m: &Value| {
        let at = chrono::DateTime::parse_from_rfc3339(m["sent_at"].as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc);
        format!(
            "exports/messages/channel={}/project=p1/{}/{}.json.gz",
            m["channel"].as_str().unwrap(),
            at.format("date=%Y-%m-%d/hour=%H"),
            m["message_id"].as_str().unwrap()
        )
    };
    let expected_recipient_key = |m: &Value, ext: &str| {
        let email = m["recipient"]["email"].as_str().unwrap().to_lowercase();
        let campaign = m["campaign_id"].as_str().unwrap_or("unassociated");
        format!(
            "{}/{}/{}/{campaign}/{}{ext}",
            m["channel"].as_str().unwrap(),
            m["project_id"].as_str().unwrap(),
            sha(&email),
            m["message_id"].as_str().unwrap()
        )
    };
    let check = |objects: &[stored_messages_testkit::StoredObject],
                 expected: Vec<(String, &Value)>,
                 encoding: Option<&str>| {
        let by_key: BTreeMap<&str, _> = objects.iter().map(|o| (o.key.as_str(), o)).collect();
        for (key, sent) in expected {
            let object = by_key
                .get(key.as_str())
                .unwrap_or_else(|| panic!("missing {key}"));
            assert_eq!(object.content_encoding.as_deref(), encoding, "{key}");
            let doc = object.json();
            assert_eq!(doc["message"], sent["message"], "{key}");
            assert_eq!(doc["recipient"], sent["recipient"], "{key}");
            assert_eq!(doc["message_id"], sent["message_id"], "{key}");
        }
    };
    check(
        &dated,
        p1.iter().map(|m| (expected_date_key(m), *m)).collect(),
        Some("gzip"),
    );
    check(
        &keyed,
        p1.iter()
            .map(|m| (expected_recipient_key(m, ".json.gz"), *m))
            .collect(),
        Some("gzip"),
    );
    check(
        &plain_objects,
        p2.iter()
            .map(|m| (expected_recipient_key(m, ".json"), *m))
            .collect(),
        None,
    );

    // What we sent: owner, SSE per destination, and the session policy scope.
    for put in w.puts_to("acme-kms") {
        assert_eq!(
            header(&put, "x-amz-expected-bucket-owner"),
            Some("111122223333")
        );
        assert_eq!(
            header(&put, "x-amz-server-side-encryption"),
            Some("aws:kms")
        );
        assert_eq!(
            header(&put, "x-amz-server-side-encryption-aws-kms-key-id"),
            Some(key_arn.as_str())
        );
    }
    for put in w.puts_to("acme-plain") {
        assert_eq!(
            header(&put, "x-amz-expected-bucket-owner"),
            Some("444455556666")
        );
        assert_eq!(header(&put, "x-amz-server-side-encryption"), None);
    }
    let policies: HashSet<String> = w
        .assume_role_calls()
        .iter()
        .map(|r| {
            assert_eq!(r["params"]["ExternalId"], w.external_id.expose());
            let policy: Value =
                serde_json::from_str(r["params"]["Policy"].as_str().unwrap()).unwrap();
            policy["Statement"][0]["Resource"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        policies,
        HashSet::from([
            "arn:aws:s3:::acme-dated/exports/messages/*".to_owned(),
            "arn:aws:s3:::acme-kms/*".to_owned(),
            "arn:aws:s3:::acme-plain/*".to_owned(),
        ])
    );
    let _ = (d1, d2, d3);
}

#[tokio::test]
async fn a_broken_destination_parks_its_messages_and_a_flaky_one_retries_only_its_own() {
    let w = world().await;
    let healthy = w.customer(
        "111122223333",
        "eu-west-1",
        "acme-healthy",
        "stored-messages-healthy",
    );
    let flaky = w.customer(
        "111122223333",
        "eu-west-1",
        "acme-flaky",
        "stored-messages-flaky",
    );
    let wrong_id = ExternalId::generate().unwrap();
    let denying = w.emulator.customer(
        &w.vendor,
        &CustomerSpec {
            account: "111122223333",
            region: "eu-west-1",
            bucket: "acme-denying",
            role_name: "stored-messages-denying",
            external_id: Some(&wrong_id),
            folder: None,
            allow_put: true,
        },
    );
    w.register(&healthy, "good", |_| {}).await;
    w.register(&flaky, "flaky", |_| {}).await;
    let broken = w.register(&denying, "bad", |_| {}).await;
    // S3 keeps answering 503 for the flaky bucket: retryable, so SQS retries.
    w.emulator.set_faults(json!({ "seed": 1, "rules": [
        { "service": "s3", "method": "PUT", "path_prefix": "/acme-flaky/", "action": "status", "status": 503, "code": "SlowDown", "message": "injected" }
    ] }));
    let archiver = w.archiver();

    let project = |i: usize| ["good", "bad", "flaky", "good"][i % 4];
    let records: Vec<(String, String)> = (0..20)
        .map(|i| {
            (
                format!("sqs-{i}"),
                message(project(i), &format!("m{i}"), "email", i).to_string(),
            )
        })
        .collect();
    let response = handler::handle(&archiver, sqs_event(&records))
        .await
        .unwrap();
    let expected: Vec<String> = (0..20)
        .filter(|i| project(*i) == "flaky")
        .map(|i| format!("sqs-{i}"))
        .collect();
    assert_eq!(
        failures(&response),
        expected,
        "only the transiently failing records are retried"
    );
    assert_eq!(w.emulator.objects(&healthy, "").len(), 10);
    assert_eq!(w.emulator.objects(&denying, "").len(), 0);
    let parked = w.emulator.bucket_objects(
        VENDOR_ACCOUNT,
        "us-east-1",
        CONTROL_BUCKET,
        &format!("parked/{ORG}/{}/", broken.id),
    );
    assert_eq!(
        parked.len(),
        5,
        "the broken destination's messages wait in parked/"
    );
    assert!(parked
        .iter()
        .all(|o| o.key.ends_with(".json.gz") && o.json()["project_id"] == "bad"));
    let denied_calls = w
        .assume_role_calls()
        .into_iter()
        .filter(|r| r["params"]["RoleArn"] == denying.role_arn())
        .count();
    assert_eq!(
        denied_calls, 1,
        "a denial is remembered, not retried per message"
    );
}

#[tokio::test]
async fn a_bucket_owned_by_another_account_is_never_written() {
    let w = world().await;
    // The role lives in 111122223333 but the bucket belongs to 777788889999:
    // ExpectedBucketOwner makes S3 refuse, whatever the role may do.
    let attacker = w.customer(
        "111122223333",
        "eu-west-1",
        "attacker-own-bucket",
        "stored-messages-attacker",
    );
    w.emulator.aws("777788889999", "eu-west-1", json!([{ "service": "s3", "op": "create_bucket", "args": {
        "Bucket": "victim-bucket", "CreateBucketConfiguration": { "LocationConstraint": "eu-west-1" } } }]));
    let policy = stored_messages::s3::policy::permissions_policy(
        stored_messages::arn::Partition::Aws,
        "victim-bucket",
        None,
        None,
    );
    w.emulator.aws("111122223333", "eu-west-1", json!([{ "service": "iam", "op": "put_role_policy", "args": {
        "RoleName": attacker.role_name, "PolicyName": "victim", "PolicyDocument": policy.to_string() } }]));
    let victim = Customer {
        bucket: "victim-bucket".into(),
        ..attacker.clone()
    };
    w.register(&victim, "p", |_| {}).await;

    let records = vec![(
        "sqs-1".to_owned(),
        message("p", "m1", "email", 1).to_string(),
    )];
    let response = handler::handle(&w.archiver(), sqs_event(&records))
        .await
        .unwrap();
    assert!(
        failures(&response).is_empty(),
        "parked, not retried into the DLQ"
    );
    assert!(w
        .emulator
        .bucket_objects("777788889999", "eu-west-1", "victim-bucket", "")
        .is_empty());
    let parked = w
        .emulator
        .bucket_objects(VENDOR_ACCOUNT, "us-east-1", CONTROL_BUCKET, "parked/");
    assert_eq!(
        parked.len(),
        1,
        "held in our bucket, never written to theirs"
    );
    let puts = w.puts_to("victim-bucket");
    assert!(!puts.is_empty());
    assert!(puts.iter().all(
        |p| header(p, "x-amz-expected-bucket-owner") == Some("111122223333") && p["status"] == 403
    ));
}

#[tokio::test]
async fn malformed_bodies_are_quarantined_and_acknowledged() {
    let w = world().await;
    let event_text = include_str!("../../../events/sqs-malformed.json");
    let event: Value = serde_json::from_str(event_text).unwrap();
    let response = handler::handle(&w.archiver(), fixture_event(event_text))
        .await
        .unwrap();
    assert_eq!(failures(&response), Vec::<String>::new());
    let day = Utc::now().format("%Y-%m-%d");
    let quarantined =
        w.emulator
            .bucket_objects(VENDOR_ACCOUNT, "us-east-1", CONTROL_BUCKET, "quarantine/");
    assert_eq!(quarantined.len(), 2);
    for record in event["Records"].as_array().unwrap() {
        let key = format!(
            "quarantine/{day}/{}.json",
            record["messageId"].as_str().unwrap()
        );
        let object = quarantined
            .iter()
            .find(|o| o.key == key)
            .unwrap_or_else(|| panic!("missing {key}"));
        assert_eq!(object.body, record["body"].as_str().unwrap().as_bytes());
    }
}

#[tokio::test]
async fn a_failed_quarantine_write_is_retried_not_lost() {
    let w = world().await;
    w.emulator.set_faults(json!({ "seed": 1, "rules": [
        { "service": "s3", "method": "PUT", "path_prefix": format!("/{CONTROL_BUCKET}/quarantine/"), "action": "status", "status": 500, "code": "InternalError", "message": "injected" }
    ] }));
    let records = vec![("sqs-bad".to_owned(), "not json".to_owned())];
    let response = handler::handle(&w.archiver(), sqs_event(&records))
        .await
        .unwrap();
    assert_eq!(failures(&response), vec!["sqs-bad".to_owned()]);
}

#[tokio::test]
async fn a_duplicate_delivery_succeeds_without_rewriting() {
    let w = world().await;
    let customer = w.customer(
        "111122223333",
        "eu-west-1",
        "acme-dupes",
        "stored-messages-dupes",
    );
    w.register(&customer, "p", |_| {}).await;
    let archiver = w.archiver();
    let records = vec![(
        "sqs-1".to_owned(),
        message("p", "m1", "email", 1).to_string(),
    )];
    assert!(failures(
        &handler::handle(&archiver, sqs_event(&records))
            .await
            .unwrap()
    )
    .is_empty());
    let first = w.emulator.objects(&customer, "");
    assert_eq!(first.len(), 1);
    let first_archived_at = first[0].json()["archived_at"].clone();
    w.emulator.clear_requests();

    assert!(failures(
        &handler::handle(&archiver, sqs_event(&records))
            .await
            .unwrap()
    )
    .is_empty());
    let second = w.emulator.objects(&customer, "");
    assert_eq!(second.len(), 1);
    assert_eq!(
        second[0].json()["archived_at"],
        first_archived_at,
        "the first write stands"
    );
    let puts = w.puts_to("acme-dupes");
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0]["status"], 412);
}

#[tokio::test]
async fn staged_message_refs_are_inlined() {
    let w = world().await;
    let customer = w.customer(
        "111122223333",
        "eu-west-1",
        "acme-refs",
        "stored-messages-refs",
    );
    w.register(&customer, "p", |d| {
        s3_mut(d).compression = Compression::None
    })
    .await;
    let big_html = format!(
        "<html>{}</html>",
        "<p>long newsletter paragraph</p>".repeat(20_000)
    );
    let staged = json!({"subject": "Big", "html_body": big_html}).to_string();
    leak_audit::record(Kind::Input, "staged", &staged);
    w.emulator.aws(
        VENDOR_ACCOUNT,
        "us-east-1",
        json!([{ "service": "s3", "op": "put_object", "args": {
        "Bucket": STAGING_BUCKET, "Key": "acme/staged/m1.json", "Body": staged } }]),
    );
    let mut body = message("p", "m1", "email", 1);
    body.as_object_mut().unwrap().remove("message");
    body["message_ref"] = json!({ "bucket": STAGING_BUCKET, "key": "acme/staged/m1.json" });
    let mut missing = message("p", "m2", "email", 2);
    missing.as_object_mut().unwrap().remove("message");
    missing["message_ref"] = json!({ "bucket": STAGING_BUCKET, "key": "acme/staged/gone.json" });
    let records = vec![
        ("sqs-1".to_owned(), body.to_string()),
        ("sqs-2".to_owned(), missing.to_string()),
    ];
    let response = handler::handle(&w.archiver(), sqs_event(&records))
        .await
        .unwrap();
    assert!(failures(&response).is_empty());
    let objects = w.emulator.objects(&customer, "");
    assert_eq!(objects.len(), 1);
    let doc = objects[0].json();
    assert_eq!(doc["message"]["html_body"], big_html);
    assert!(doc.get("message_ref").is_none());
    let quarantined =
        w.emulator
            .bucket_objects(VENDOR_ACCOUNT, "us-east-1", CONTROL_BUCKET, "quarantine/");
    assert_eq!(
        quarantined.len(),
        1,
        "a reference to nothing is quarantined with its body"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn no_log_line_or_metric_carries_a_recipient_or_a_body() {
    let w = world().await;
    let healthy = w.customer(
        "111122223333",
        "eu-west-1",
        "acme-logs",
        "stored-messages-logs",
    );
    let denying = w.emulator.customer(
        &w.vendor,
        &CustomerSpec {
            account: "111122223333",
            region: "eu-west-1",
            bucket: "acme-logs-denied",
            role_name: "stored-messages-logs-denied",
            external_id: None,
            folder: None,
            allow_put: false,
        },
    );
    w.register(&healthy, "p", |_| {}).await;
    w.register(&denying, "p", |_| {}).await;

    let (captured, _guard) = LogCapture::scoped();

    let secret_email = "Secret.Person@Example.com";
    let secret_body = "TOP-SECRET-BODY-7731";
    let mut records: Vec<(String, String)> = vec![];
    let mut m = message("p", "m1", "email", 1);
    m["recipient"] = json!({ "email": secret_email, "phone": "+15550001111" });
    m["message"] = json!({ "html_body": secret_body });
    records.push(("sqs-1".into(), m.to_string()));
    records.push(("sqs-2".into(), format!("{{\"version\":1,\"recipient\":{{\"email\":\"{secret_email}\"}},\"message\":\"{secret_body}\"")));
    let mut bad_field = message("p", "m3", "fax", 3);
    bad_field["recipient"] = json!({ "email": secret_email });
    records.push(("sqs-3".into(), bad_field.to_string()));
    let archiver = w.archiver();
    let response = handler::handle(&archiver, sqs_event(&records))
        .await
        .unwrap();
    assert!(
        failures(&response).is_empty(),
        "the denied destination's copy is parked"
    );
    drop(_guard);

    let logs = captured.text();
    assert!(
        logs.contains("quarantined"),
        "the capture saw the pipeline's logs:\n{logs}"
    );
    assert!(logs.contains("put_object_denied"), "{logs}");
    for secret in [
        secret_email,
        &secret_email.to_lowercase(),
        secret_body,
        "+15550001111",
        w.external_id.expose(),
    ] {
        assert!(!logs.contains(secret), "{secret} leaked into logs:\n{logs}");
    }
}

#[tokio::test]
async fn the_handler_answers_before_the_deadline_listing_unfinished_records() {
    let w = world().await;
    let slow = w.customer(
        "111122223333",
        "eu-west-1",
        "acme-slow",
        "stored-messages-slow",
    );
    let fast = w.customer(
        "111122223333",
        "eu-west-1",
        "acme-fast",
        "stored-messages-fast",
    );
    w.register(&slow, "slow", |_| {}).await;
    w.register(&fast, "fast", |_| {}).await;
    w.emulator.set_faults(json!({ "seed": 1, "rules": [
        { "service": "s3", "method": "PUT", "path_prefix": "/acme-slow/", "action": "delay", "seconds": 8 }
    ] }));
    let records: Vec<(String, String)> = (0..6)
        .map(|i| {
            let project = if i % 2 == 0 { "slow" } else { "fast" };
            (
                format!("sqs-{i}"),
                message(project, &format!("m{i}"), "email", i).to_string(),
            )
        })
        .collect();
    let mut event = sqs_event(&records);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // Lambda would kill the process 5 s from now; the handler keeps a margin
    // (a quarter of the time left, here 1.25 s) to answer in.
    event.context.deadline = now_ms + 5_000;
    let started = std::time::Instant::now();
    let response = handler::handle(&w.archiver(), event).await.unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed < std::time::Duration::from_millis(4_500),
        "answered in {elapsed:?}"
    );
    assert_eq!(failures(&response), vec!["sqs-0", "sqs-2", "sqs-4"]);
    assert_eq!(
        w.emulator.objects(&fast, "").len(),
        3,
        "finished work is kept"
    );
}

/// The archive queue's redrive policy (infra/template.yaml).
const MAX_RECEIVE_COUNT: u32 = 10;

/// The reliability run of the README: 5,000 messages over 5 destinations
/// through the real handler while S3, STS and the control bucket misbehave,
/// redelivering exactly what each response lists, as SQS would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_injected_faults_nothing_is_lost_or_duplicated() {
    let w = world().await;
    let customers: Vec<Customer> = (0..5)
        .map(|i| {
            w.customer(
                "111122223333",
                "eu-west-1",
                &format!("acme-fault-{i}"),
                &format!("stored-messages-fault-{i}"),
            )
        })
        .collect();
    for c in &customers {
        w.register(c, "p", |_| {}).await;
    }
    w.emulator.clear_requests();
    let rules = json!([
        { "service": "sts", "action_param": "AssumeRole", "action": "status", "status": 400, "code": "Throttling", "message": "Rate exceeded", "count": 2 },
        { "service": "sts", "action_param": "AssumeRole", "action": "status", "status": 500, "code": "InternalFailure", "count": 2 },
        { "service": "s3", "method": "PUT", "path_prefix": "/acme-fault-", "action": "status", "status": 400, "code": "ExpiredToken", "message": "The provided token has expired.", "count": 25 },
        { "service": "s3", "method": "PUT", "path_prefix": "/acme-fault-", "action": "delay", "seconds": 11, "probability": 0.004, "count": 4 },
        { "service": "s3", "method": "PUT", "path_prefix": "/acme-fault-", "action": "reset", "probability": 0.04 },
        { "service": "s3", "method": "PUT", "path_prefix": "/acme-fault-", "action": "status", "status": 500, "code": "InternalError", "probability": 0.06 },
        { "service": "s3", "method": "PUT", "path_prefix": "/acme-fault-", "action": "status", "status": 503, "code": "SlowDown", "probability": 0.1 },
        { "service": "s3", "path_prefix": format!("/{CONTROL_BUCKET}/destinations/"), "action": "status", "status": 503, "code": "SlowDown", "count": 40 },
    ]);
    w.emulator.set_faults(json!({ "seed": 7, "rules": rules }));
    let archiver = w.archiver();

    // make test runs 1,000 messages; the README's figures come from
    // RELIABILITY_MESSAGES=5000 (moto takes a few hundred PUTs a second).
    let total: usize = std::env::var("RELIABILITY_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let sent: Vec<(String, String)> = (0..total)
        .map(|i| {
            (
                format!("sqs-{i:04}"),
                message("p", &format!("m{i:04}"), "email", i).to_string(),
            )
        })
        .collect();
    let mut deliveries: std::collections::HashMap<String, u32> = Default::default();
    let mut queue: Vec<(String, String)> = sent.clone();
    let mut rounds = 0;
    while !queue.is_empty() && rounds < 30 {
        rounds += 1;
        let mut next = Vec::new();
        let round_started = std::time::Instant::now();
        for batch in queue.chunks(100) {
            for (id, _) in batch {
                *deliveries.entry(id.clone()).or_default() += 1;
            }
            let response = handler::handle(&archiver, sqs_event(batch)).await.unwrap();
            let failed = failures(&response);
            let ids: HashSet<&String> = batch.iter().map(|(id, _)| id).collect();
            assert!(
                failed.iter().all(|f| ids.contains(f)),
                "a response named a record outside its batch"
            );
            next.extend(batch.iter().filter(|(id, _)| failed.contains(id)).cloned());
        }
        eprintln!(
            "round {rounds}: {} records in {:?}, {} to retry",
            queue.len(),
            round_started.elapsed(),
            next.len()
        );
        queue = next;
    }
    assert!(
        queue.is_empty(),
        "{} records still failing after {rounds} rounds",
        queue.len()
    );
    let fired = w.emulator.http("GET", "/_sm/faults", "").1;
    w.emulator.set_faults(json!({ "seed": 0, "rules": [] }));

    // Every object exactly once: one key per message per destination, and no
    // key was ever written (200) twice.
    let mut landed = 0;
    let mut samples = Vec::new();
    for c in &customers {
        let keys = w.emulator.keys(&c.account, &c.region, &c.bucket, "email/");
        let unique: HashSet<&String> = keys.iter().collect();
        assert_eq!((keys.len(), unique.len()), (total, total), "{}", c.bucket);
        landed += keys.len();
        // Bodies are checked on a sample: every (total / 20 + 1)th key.
        let sample: Vec<String> = keys.iter().step_by(total / 20 + 1).cloned().collect();
        samples.push((c, sample));
    }
    let mut written: std::collections::HashMap<String, u32> = Default::default();
    for r in w.emulator.requests() {
        if r["method"] == "PUT"
            && r["status"] == 200
            && r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/acme-fault-"))
        {
            *written
                .entry(r["path"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    let duplicates = written.values().filter(|n| **n > 1).count();
    assert_eq!(duplicates, 0);
    // Right bodies: a sample read back from every bucket (only the sampled
    // objects are read: reading all 5 × `total` to keep a twentieth of them
    // cost about a minute).
    for (c, sample) in &samples {
        let objects = w
            .emulator
            .objects_at(&c.account, &c.region, &c.bucket, sample);
        assert_eq!(objects.len(), sample.len(), "{}", c.bucket);
        for o in &objects {
            let doc = o.json();
            let i: usize = doc["message_id"].as_str().unwrap()[1..].parse().unwrap();
            assert_eq!(doc["message"]["subject"], format!("Hello {i}"));
            assert_eq!(doc["recipient"]["email"], format!("Person{i}@Example.com"));
        }
    }
    // Bounded by what matters: no record reaches the queue's maxReceiveCount
    // (infra/template.yaml), so none is dead-lettered. With 20% of writes
    // failing, a few of 5,000 messages need 7 or 8 deliveries (seen in two
    // runs at RELIABILITY_MESSAGES=5000), so a tighter bound would be luck.
    let worst = deliveries.values().max().copied().unwrap_or(0);
    assert!(
        worst < MAX_RECEIVE_COUNT,
        "worst record needed {worst} deliveries"
    );
    eprintln!(
        "RELIABILITY sent={total}x5 landed={landed} duplicates={duplicates} lost={} rounds={rounds} worst_deliveries={worst} faults_fired={fired}",
        total * 5 - landed
    );
}

/// Our account, the owner of the control and staging buckets.
fn own() -> stored_messages::arn::AccountId {
    stored_messages::arn::AccountId::parse(stored_messages_testkit::VENDOR_ACCOUNT).unwrap()
}

mod detection;
mod events;
mod real_setups;
