//! The exact AWS requests of a backfill, asserted against the real SDK
//! client types with aws-smithy-mocks: our account as the owner of every
//! staging and control-bucket request, the checkpoint as an S3 `Range`,
//! the job replaced only under `If-Match` (and read again when another
//! writer won), and units sent ten per `SendMessageBatch` with a refused
//! entry sent again.

use std::sync::{Arc, Mutex};

use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
use aws_smithy_mocks::{mock, RuleMode};
use chrono::Utc;
use stored_messages::arn::{AccountId, RoleArn};
use stored_messages::backfill::{Backfill, BackfillId, ManifestPrefix, WorkQueue, WorkUnit};
use stored_messages::destination::*;
use stored_messages::ids::{Channel, OrgId, ProjectId};
use stored_messages::registry::Registry;
use stored_messages::s3::*;
use stored_messages::write::Compression;

const OURS: &str = "123456789012";

fn destination() -> Destination {
    let role_arn = RoleArn::parse("arn:aws:iam::111122223333:role/stored-messages-acme").unwrap();
    Destination {
        id: DestinationId::generate().unwrap(),
        org_id: OrgId::parse("acme").unwrap(),
        project_id: ProjectId::parse("p1").unwrap(),
        account_id: role_arn.account().clone(),
        auth: Auth::Role {
            role_arn,
            role_session_name: SessionName::default(),
        },
        channels: Channel::ALL.to_vec(),
        record_kinds: messages_only(),
        event_types: None,
        created_at: Utc::now(),
        updated_at: None,
        status: Status::Active,
        health: Health::default(),
        target: Target::S3(S3Target {
            region: Region::parse("eu-west-1").unwrap(),
            bucket: BucketName::parse("acme-archive").unwrap(),
            folder_path: None,
            layout: Layout::ByRecipient,
            compression: Compression::Gzip,
            encryption: Encryption::BucketDefault,
            bucket_private_confirmed: true,
        }),
    }
}

fn job() -> Backfill {
    let org = OrgId::parse("acme").unwrap();
    let mut job = Backfill::new(
        BackfillId::parse("bf_bbbbbbbbbbbbbbbbbbbbbbbbbb").unwrap(),
        &destination(),
        ManifestPrefix::parse(&org, "acme/exports/").unwrap(),
        Utc::now(),
    );
    job.plan(
        vec![stored_messages::backfill::Listed {
            key: "acme/exports/part-0.ndjson".into(),
            size: 10,
            etag: Some("\"e\"".into()),
        }],
        Utc::now(),
    );
    job
}

type Seen<T> = Arc<Mutex<Vec<T>>>;

#[tokio::test]
async fn the_job_is_replaced_only_if_unchanged_and_read_again_when_another_writer_won() {
    let stored = serde_json::to_vec(&job()).unwrap();
    let etags = Arc::new(Mutex::new(0u32));
    let get = {
        let etags = Arc::clone(&etags);
        mock!(aws_sdk_s3::Client::get_object)
            .match_requests(|r| {
                r.key() == Some("backfills/acme/bf_bbbbbbbbbbbbbbbbbbbbbbbbbb.json")
                    && r.expected_bucket_owner() == Some(OURS)
            })
            .sequence()
            .output(move || {
                let mut n = etags.lock().unwrap();
                *n += 1;
                GetObjectOutput::builder()
                    .e_tag(format!("\"v{n}\""))
                    .body(ByteStream::from(stored.clone()))
                    .build()
            })
            .repeatedly()
            .build()
    };
    let conditions: Seen<Option<String>> = Seen::default();
    let seen = Arc::clone(&conditions);
    // The first conditional write loses to another writer; the second wins.
    let put = mock!(aws_sdk_s3::Client::put_object)
        .match_requests(move |r| {
            seen.lock().unwrap().push(r.if_match().map(String::from));
            r.expected_bucket_owner() == Some(OURS)
        })
        .sequence()
        .http_status(
            412,
            Some("<Error><Code>PreconditionFailed</Code></Error>".to_owned()),
        )
        .output(|| PutObjectOutput::builder().build())
        .build();
    let s3 = aws_smithy_mocks::mock_client!(aws_sdk_s3, RuleMode::MatchAny, &[&get, &put]);
    let registry = Registry::new(s3, "sm-control", AccountId::parse(OURS).unwrap());
    let org = OrgId::parse("acme").unwrap();
    let id = BackfillId::parse("bf_bbbbbbbbbbbbbbbbbbbbbbbbbb").unwrap();
    let (saved, outcome) = registry
        .update_backfill(&org, &id, |job| job.cancel(Utc::now()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome, Ok(()));
    assert_eq!(saved.status.as_str(), "cancelled");
    assert_eq!(
        *conditions.lock().unwrap(),
        vec![Some("\"v1\"".to_owned()), Some("\"v2\"".to_owned())],
        "each write conditioned on the version it read"
    );
}

#[tokio::test]
async fn manifests_are_listed_and_read_from_the_checkpoint_as_ours() {
    type Read = (Option<String>, Option<String>, Option<String>);
    let ranges: Seen<Read> = Seen::default();
    let seen = Arc::clone(&ranges);
    let get = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(move |r| {
            seen.lock().unwrap().push((
                r.range().map(String::from),
                r.if_match().map(String::from),
                r.expected_bucket_owner().map(String::from),
            ));
            r.bucket() == Some("sm-staging") && r.key() == Some("acme/exports/part-0.ndjson")
        })
        .then_output(|| {
            GetObjectOutput::builder()
                .body(ByteStream::from_static(b"{}\n"))
                .build()
        });
    let list = mock!(aws_sdk_s3::Client::list_objects_v2)
        .match_requests(|r| {
            r.bucket() == Some("sm-staging")
                && r.prefix() == Some("acme/exports/")
                && r.expected_bucket_owner() == Some(OURS)
        })
        .then_output(|| {
            let object = |key: &str| {
                aws_sdk_s3::types::Object::builder()
                    .key(key)
                    .size(7)
                    .e_tag("\"v1\"")
                    .build()
            };
            ListObjectsV2Output::builder()
                .contents(object("acme/exports/_SUCCESS"))
                .contents(object("acme/exports/part-0.ndjson"))
                .contents(object("acme/exports/part-1.ndjson.gz"))
                .build()
        });
    let s3 = aws_smithy_mocks::mock_client!(aws_sdk_s3, RuleMode::MatchAny, &[&get, &list]);
    let registry = Registry::new(s3, "sm-control", AccountId::parse(OURS).unwrap());
    let staging = BucketName::parse("sm-staging").unwrap();
    let prefix = ManifestPrefix::parse(&OrgId::parse("acme").unwrap(), "acme/exports/").unwrap();
    let listed = registry.list_manifest(&staging, &prefix).await.unwrap();
    let keys: Vec<(&str, Option<&str>)> = listed
        .iter()
        .map(|l| (l.key.as_str(), l.etag.as_deref()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("acme/exports/part-0.ndjson", Some("\"v1\"")),
            ("acme/exports/part-1.ndjson.gz", Some("\"v1\""))
        ]
    );
    registry
        .open_manifest(&staging, "acme/exports/part-0.ndjson", 0, None)
        .await
        .unwrap();
    registry
        .open_manifest(&staging, "acme/exports/part-0.ndjson", 4096, Some("\"v1\""))
        .await
        .unwrap();
    assert_eq!(
        *ranges.lock().unwrap(),
        vec![
            (None, None, Some(OURS.to_owned())),
            (
                Some("bytes=4096-".to_owned()),
                Some("\"v1\"".to_owned()),
                Some(OURS.to_owned())
            )
        ]
    );
}

#[tokio::test]
async fn units_go_ten_per_batch_and_a_refused_entry_is_sent_again() {
    const URL: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/stored-messages-backfill";
    let batches: Seen<Vec<String>> = Seen::default();
    let seen = Arc::clone(&batches);
    let record = move |r: &aws_sdk_sqs::operation::send_message_batch::SendMessageBatchInput| {
        seen.lock().unwrap().push(
            r.entries()
                .iter()
                .map(|e| e.message_body().to_owned())
                .collect(),
        );
        r.queue_url() == Some(URL)
    };
    let accepted = |ids: &[&str]| {
        let mut out = SendMessageBatchOutput::builder().set_failed(Some(Vec::new()));
        for id in ids {
            out = out.successful(
                SendMessageBatchResultEntry::builder()
                    .id(*id)
                    .message_id("m")
                    .md5_of_message_body("x")
                    .build()
                    .unwrap(),
            );
        }
        out
    };
    let all_ids: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let first_ids = all_ids.clone();
    let first = mock!(aws_sdk_sqs::Client::send_message_batch)
        .match_requests(record.clone())
        .then_output(move || {
            // Entry 3 is refused (throttled) once.
            let ids: Vec<&str> = first_ids
                .iter()
                .map(String::as_str)
                .filter(|i| *i != "3")
                .collect();
            accepted(&ids)
                .failed(
                    BatchResultErrorEntry::builder()
                        .id("3")
                        .sender_fault(false)
                        .code("ThrottlingException")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
        });
    let again = mock!(aws_sdk_sqs::Client::send_message_batch)
        .match_requests(record.clone())
        .then_output(move || accepted(&["3"]).build().unwrap());
    let rest = mock!(aws_sdk_sqs::Client::send_message_batch)
        .match_requests(record)
        .then_output(move || accepted(&["0", "1"]).build().unwrap());
    let sqs =
        aws_smithy_mocks::mock_client!(aws_sdk_sqs, RuleMode::Sequential, &[&first, &again, &rest]);
    let queue = WorkQueue::new(sqs, URL.to_owned());
    let units: Vec<WorkUnit> = (0..12)
        .map(|file| WorkUnit::Object {
            org_id: OrgId::parse("acme").unwrap(),
            backfill_id: BackfillId::parse("bf_bbbbbbbbbbbbbbbbbbbbbbbbbb").unwrap(),
            file,
        })
        .collect();
    queue.send_all(&units).await.unwrap();
    let sent = batches.lock().unwrap().clone();
    assert_eq!(
        sent.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![10, 1, 2]
    );
    assert_eq!(
        sent[1][0],
        serde_json::to_string(&units[3]).unwrap(),
        "the refused entry, again"
    );
}
