//! The exact AWS requests we send, asserted against the real SDK client types
//! with aws-smithy-mocks: ExternalId and the session policy on AssumeRole;
//! ExpectedBucketOwner, SSE and If-None-Match on PutObject; and the cache's
//! promises (single flight, denial memory, refresh, expired-token retry);
//! and a backfill's requests (owner, `Range`, `If-Match`, SQS batches).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_sts::operation::assume_role::AssumeRoleOutput;
use aws_sdk_sts::types::Credentials as StsCredentials;
use aws_smithy_mocks::{mock, MockResponseInterceptor, Rule, RuleMode};
use aws_smithy_runtime_api::http::{Response as HttpResponse, StatusCode};
use aws_smithy_types::body::SdkBody;
use chrono::Utc;
use stored_messages::arn::{KmsKeyArn, RoleArn};
use stored_messages::credentials::access_key::{AccessKeyId, MaskedKeyId, SecretAccessKey};
use stored_messages::credentials::{AccessKeyPair, ExternalId, Identities};
use stored_messages::destination::*;
use stored_messages::failure::FailureCode;
use stored_messages::ids::{Channel, OrgId, ProjectId};
use stored_messages::s3::put::{put, PutTarget};
use stored_messages::s3::*;
use stored_messages::secrets::{SecretName, SecretStore};
use stored_messages::store::ControlStore;
use stored_messages::write::{encode, Compression, Written};

use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
use stored_messages::arn::AccountId;
use stored_messages::backfill::{Backfill, BackfillId, ManifestPrefix, WorkQueue, WorkUnit};
use stored_messages::registry::Registry;

const ROLE: &str = "arn:aws:iam::111122223333:role/stored-messages-acme";

fn destination(encryption: Encryption, folder: Option<&str>) -> Destination {
    let role_arn = RoleArn::parse(ROLE).unwrap();
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
        record_kinds: stored_messages::destination::messages_only(),
        event_types: None,
        created_at: Utc::now(),
        updated_at: None,
        status: Status::Active,
        health: Health::default(),
        target: Target::S3(S3Target {
            region: Region::parse("eu-west-1").unwrap(),
            bucket: BucketName::parse("acme-archive").unwrap(),
            folder_path: folder.map(|f| FolderPath::parse(f).unwrap()),
            layout: Layout::ByRecipient,
            compression: Compression::Gzip,
            encryption,
            bucket_private_confirmed: true,
        }),
    }
}

fn sts_ok(expires_in: Duration) -> impl Fn() -> AssumeRoleOutput + Send + Sync + 'static {
    move || sts_output("ASIAEXAMPLE", expires_in)
}

/// An AssumeRole answer with the given access key id.
fn sts_output(access_key_id: &str, expires_in: Duration) -> AssumeRoleOutput {
    let expiry = SystemTime::now() + expires_in;
    AssumeRoleOutput::builder()
        .credentials(
            StsCredentials::builder()
                .access_key_id(access_key_id)
                .secret_access_key("secret")
                .session_token("token")
                .expiration(aws_smithy_types::DateTime::from(expiry))
                .build()
                .unwrap(),
        )
        .build()
}

fn s3_error(status: u16, code: &str, extra: &str) -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(status).unwrap(),
        SdkBody::from(format!(
            "<Error><Code>{code}</Code><Message>m</Message>{extra}</Error>"
        )),
    )
}

fn sessions(sts_rules: &[&Rule], s3_rules: &[&Rule]) -> Identities {
    sessions_with_secrets(sts_rules, s3_rules, &[])
}

fn secret_store(rules: &[&Rule]) -> SecretStore {
    let client = aws_smithy_mocks::mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, rules);
    SecretStore::new(client, Some(OUR_KEY.to_owned()))
}

const OUR_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/ours";

fn sessions_with_secrets(
    sts_rules: &[&Rule],
    s3_rules: &[&Rule],
    secret_rules: &[&Rule],
) -> Identities {
    let sts = aws_smithy_mocks::mock_client!(aws_sdk_sts, RuleMode::MatchAny, sts_rules);
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    for rule in s3_rules {
        interceptor = interceptor.with_rule(rule);
    }
    let s3_config = aws_sdk_s3::Config::builder()
        .with_test_defaults_v2()
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .interceptor(interceptor);
    Identities::new(
        sts,
        s3_config,
        secret_store(secret_rules),
        "stored-messages/".to_owned(),
        Duration::from_secs(3600),
    )
}

fn external_id() -> ExternalId {
    ExternalId::parse("ExternalIdForTestsOnly0123456789abcdef").unwrap()
}

fn target<'a>(d: &'a Destination, key: &'a str) -> PutTarget<'a> {
    let s3 = d.s3().unwrap();
    PutTarget {
        bucket: &s3.bucket,
        key,
        owner: d.expected_owner(),
        encryption: &s3.encryption,
        write_once: true,
    }
}

type Seen<T> = Arc<Mutex<Vec<T>>>;
type AssumeFields = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i32>,
);

#[tokio::test]
async fn assume_role_and_put_object_carry_every_protective_field() {
    let kms = KmsKeyArn::parse("arn:aws:kms:eu-west-1:111122223333:key/abcd-1234").unwrap();
    let d = destination(Encryption::Kms { kms_key_arn: kms }, Some("archive/prod"));

    let seen_sts: Seen<AssumeFields> = Seen::default();
    let seen = Arc::clone(&seen_sts);
    let assume = mock!(aws_sdk_sts::Client::assume_role)
        .match_requests(move |r| {
            seen.lock().unwrap().push((
                r.role_arn().map(String::from),
                r.external_id().map(String::from),
                r.role_session_name().map(String::from),
                r.policy().map(String::from),
                r.duration_seconds(),
            ));
            true
        })
        .then_output(sts_ok(Duration::from_secs(3600)));

    type PutFields = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let seen_put: Seen<PutFields> = Seen::default();
    let seen = Arc::clone(&seen_put);
    let put_rule = mock!(aws_sdk_s3::Client::put_object)
        .match_requests(move |r| {
            seen.lock().unwrap().push((
                r.bucket().map(String::from),
                r.key().map(String::from),
                r.expected_bucket_owner().map(String::from),
                r.if_none_match().map(String::from),
                r.server_side_encryption().map(|s| s.as_str().to_owned()),
                r.ssekms_key_id().map(String::from),
                r.content_type().map(String::from),
                r.content_encoding().map(String::from),
            ));
            true
        })
        .then_output(|| PutObjectOutput::builder().build());

    let sessions = sessions(&[&assume], &[&put_rule]);
    let session = sessions.for_destination(&d, &external_id());
    let body = encode(br#"{"a":1}"#, Compression::Gzip);
    let written = put(&session, target(&d, "archive/prod/email/k.json.gz"), &body)
        .await
        .unwrap();
    assert_eq!(written, Written::Created);

    let sts = seen_sts.lock().unwrap();
    assert_eq!(sts.len(), 1);
    let (role, xid, session_name, policy, duration) = sts[0].clone();
    assert_eq!(role.as_deref(), Some(ROLE));
    assert_eq!(xid.as_deref(), Some(external_id().expose()));
    assert_eq!(session_name.as_deref(), Some("stored-messages"));
    assert_eq!(duration, Some(3600));
    let policy: serde_json::Value = serde_json::from_str(&policy.unwrap()).unwrap();
    assert_eq!(policy["Statement"][0]["Action"], "s3:PutObject");
    assert_eq!(
        policy["Statement"][0]["Resource"],
        "arn:aws:s3:::acme-archive/archive/prod/*"
    );
    assert_eq!(
        policy["Statement"][1]["Resource"],
        "arn:aws:kms:eu-west-1:111122223333:key/abcd-1234"
    );

    let puts = seen_put.lock().unwrap();
    assert_eq!(
        puts[0],
        (
            Some("acme-archive".into()),
            Some("archive/prod/email/k.json.gz".into()),
            Some("111122223333".into()),
            Some("*".into()),
            Some("aws:kms".into()),
            Some("arn:aws:kms:eu-west-1:111122223333:key/abcd-1234".into()),
            Some("application/json".into()),
            Some("gzip".into()),
        )
    );
}

#[tokio::test]
async fn aes256_and_bucket_default_encryption_headers() {
    let seen_sse: Seen<(Option<String>, Option<String>)> = Seen::default();
    let seen = Arc::clone(&seen_sse);
    let put_rule = mock!(aws_sdk_s3::Client::put_object)
        .match_requests(move |r| {
            seen.lock().unwrap().push((
                r.server_side_encryption().map(|s| s.as_str().to_owned()),
                r.content_encoding().map(String::from),
            ));
            true
        })
        .then_output(|| PutObjectOutput::builder().build());
    let assume =
        mock!(aws_sdk_sts::Client::assume_role).then_output(sts_ok(Duration::from_secs(3600)));
    let sessions = sessions(&[&assume], &[&put_rule]);
    for (encryption, compression) in [
        (Encryption::Aes256, Compression::None),
        (Encryption::BucketDefault, Compression::None),
    ] {
        let d = destination(encryption, None);
        let session = sessions.for_destination(&d, &external_id());
        put(&session, target(&d, "k.json"), &encode(b"{}", compression))
            .await
            .unwrap();
    }
    assert_eq!(
        *seen_sse.lock().unwrap(),
        vec![(Some("AES256".into()), None), (None, None)]
    );
}

#[tokio::test]
async fn concurrent_first_use_makes_one_sts_call_and_one_client() {
    let assume =
        mock!(aws_sdk_sts::Client::assume_role).then_output(sts_ok(Duration::from_secs(3600)));
    let put_rule =
        mock!(aws_sdk_s3::Client::put_object).then_output(|| PutObjectOutput::builder().build());
    let sessions = sessions(&[&assume], &[&put_rule]);
    let d = destination(Encryption::BucketDefault, None);
    let body = encode(b"{}", Compression::Gzip);
    let writes = (0..64).map(|i| {
        let session = sessions.for_destination(&d, &external_id());
        let body = body.clone();
        let d = d.clone();
        async move {
            let key = format!("k{i}");
            put(&session, target(&d, &key), &body).await
        }
    });
    let results = futures_util::future::join_all(writes).await;
    assert!(results.iter().all(|r| r == &Ok(Written::Created)));
    assert_eq!(assume.num_calls(), 1);
    assert_eq!(sessions.fetches(), 1);
    assert_eq!(put_rule.num_calls(), 64);
    assert!(Arc::ptr_eq(
        &sessions.for_destination(&d, &external_id()),
        &sessions.for_destination(&d, &external_id())
    ));
}

#[tokio::test]
async fn a_destination_with_another_scope_gets_its_own_session() {
    let assume =
        mock!(aws_sdk_sts::Client::assume_role).then_output(sts_ok(Duration::from_secs(3600)));
    let put_rule =
        mock!(aws_sdk_s3::Client::put_object).then_output(|| PutObjectOutput::builder().build());
    let sessions = sessions(&[&assume], &[&put_rule]);
    let a = destination(Encryption::BucketDefault, Some("a"));
    let b = destination(Encryption::BucketDefault, Some("b"));
    for d in [&a, &b, &a, &b] {
        put(
            &sessions.for_destination(d, &external_id()),
            target(d, "k"),
            &encode(b"{}", Compression::None),
        )
        .await
        .unwrap();
    }
    assert_eq!(assume.num_calls(), 2);
}

#[tokio::test]
async fn a_denied_assume_role_is_remembered() {
    let assume = mock!(aws_sdk_sts::Client::assume_role).then_http_response(|| {
        HttpResponse::new(
            StatusCode::try_from(403).unwrap(),
            SdkBody::from(
                "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>",
            ),
        )
    });
    let put_rule =
        mock!(aws_sdk_s3::Client::put_object).then_output(|| PutObjectOutput::builder().build());
    let sessions = sessions(&[&assume], &[&put_rule]);
    let d = destination(Encryption::BucketDefault, None);
    for _ in 0..10 {
        let err = put(
            &sessions.for_destination(&d, &external_id()),
            target(&d, "k"),
            &encode(b"{}", Compression::None),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, FailureCode::AssumeRoleDenied);
        assert!(!err.retryable);
    }
    assert_eq!(assume.num_calls(), 1);
    assert_eq!(put_rule.num_calls(), 0);
}

#[tokio::test]
async fn stale_credentials_are_refreshed_and_short_lived_ones_reused() {
    let put_rule =
        mock!(aws_sdk_s3::Client::put_object).then_output(|| PutObjectOutput::builder().build());
    let d = destination(Encryption::BucketDefault, None);

    // Already expired when they arrive: replaced on the next use, then kept.
    let stale_then_fresh = mock!(aws_sdk_sts::Client::assume_role)
        .sequence()
        .output(sts_ok(Duration::ZERO))
        .output(sts_ok(Duration::from_secs(3600)))
        .build();
    let sessions_a = sessions(&[&stale_then_fresh], &[&put_rule]);
    for _ in 0..3 {
        put(
            &sessions_a.for_destination(&d, &external_id()),
            target(&d, "k"),
            &encode(b"{}", Compression::None),
        )
        .await
        .unwrap();
    }
    assert_eq!(stale_then_fresh.num_calls(), 2);

    // Shorter-lived than the refresh margin: used for half their life, not re-fetched per call.
    let short =
        mock!(aws_sdk_sts::Client::assume_role).then_output(sts_ok(Duration::from_secs(120)));
    let sessions_b = sessions(&[&short], &[&put_rule]);
    for _ in 0..3 {
        put(
            &sessions_b.for_destination(&d, &external_id()),
            target(&d, "k"),
            &encode(b"{}", Compression::None),
        )
        .await
        .unwrap();
    }
    assert_eq!(short.num_calls(), 1);
}

#[tokio::test]
async fn expired_token_is_refreshed_and_retried_once() {
    let assume =
        mock!(aws_sdk_sts::Client::assume_role).then_output(sts_ok(Duration::from_secs(3600)));
    let put_rule = mock!(aws_sdk_s3::Client::put_object)
        .sequence()
        .http_response(|| s3_error(400, "ExpiredToken", ""))
        .output(|| PutObjectOutput::builder().build())
        .build();
    let sessions = sessions(&[&assume], &[&put_rule]);
    let d = destination(Encryption::BucketDefault, None);
    let written = put(
        &sessions.for_destination(&d, &external_id()),
        target(&d, "k"),
        &encode(b"{}", Compression::None),
    )
    .await;
    assert_eq!(written, Ok(Written::Created));
    assert_eq!(assume.num_calls(), 2);
    assert_eq!(put_rule.num_calls(), 2);
}

#[tokio::test]
async fn s3_answers_are_classified() {
    let assume =
        mock!(aws_sdk_sts::Client::assume_role).then_output(sts_ok(Duration::from_secs(3600)));
    let d = destination(Encryption::BucketDefault, None);
    for (status, code, extra, expect) in [
        (412, "PreconditionFailed", "", Ok(Written::AlreadyPresent)),
        (
            404,
            "NoSuchBucket",
            "",
            Err((FailureCode::BucketNotFound, false, None)),
        ),
        (
            403,
            "AccessDenied",
            "",
            Err((FailureCode::PutObjectDenied, false, None)),
        ),
        (
            400,
            "AuthorizationHeaderMalformed",
            "<Region>us-west-2</Region>",
            Err((
                FailureCode::BucketWrongRegion,
                false,
                Some("us-west-2".to_owned()),
            )),
        ),
    ] {
        let put_rule = mock!(aws_sdk_s3::Client::put_object)
            .then_http_response(move || s3_error(status, code, extra));
        let sessions = sessions(&[&assume], &[&put_rule]);
        let got = put(
            &sessions.for_destination(&d, &external_id()),
            target(&d, "k"),
            &encode(b"{}", Compression::None),
        )
        .await
        .map_err(|e| (e.code, e.retryable, e.bucket_region));
        assert_eq!(got, expect, "{code}");
    }
}

/// Real-setups B11: a denied write with cached credentials assumes the role
/// afresh and retries once, but only once per session per minute, never per
/// message.
#[tokio::test]
async fn a_denied_write_renews_the_session_once_per_minute() {
    let keys = Arc::new(Mutex::new(0u32));
    let issued = Arc::clone(&keys);
    let assume = mock!(aws_sdk_sts::Client::assume_role).then_output(move || {
        let mut n = issued.lock().unwrap();
        *n += 1;
        sts_output(&format!("ASIASESSION{n}"), Duration::from_secs(3600))
    });
    // The first session is revoked; every later one may write.
    let put_rule = mock!(aws_sdk_s3::Client::put_object)
        .then_http_response(|| s3_error(403, "AccessDenied", ""));
    let denied = sessions(&[&assume], &[&put_rule]);
    let d = destination(Encryption::BucketDefault, None);
    let session = denied.for_destination(&d, &external_id());
    let body = encode(b"{}", Compression::None);

    // Denied with the first session, renewed, denied again: reported.
    let got = put(&session, target(&d, "a"), &body).await;
    assert_eq!(got.map_err(|e| e.code), Err(FailureCode::PutObjectDenied));
    assert_eq!((assume.num_calls(), put_rule.num_calls()), (2, 2));
    // Ten more denied writes within the minute: no more AssumeRole.
    for key in 0..10 {
        let got = put(&session, target(&d, &key.to_string()), &body).await;
        assert!(got.is_err());
    }
    assert_eq!(assume.num_calls(), 2, "renewed at most once per minute");
    assert_eq!(put_rule.num_calls(), 12, "one write each, no retry");

    // Revoked sessions: the cached session is denied, a fresh one writes;
    // the write succeeds at the cost of one AssumeRole.
    let revoked = mock!(aws_sdk_s3::Client::put_object)
        .sequence()
        .http_response(|| s3_error(403, "AccessDenied", ""))
        .output(|| PutObjectOutput::builder().build())
        .repeatedly()
        .build();
    let renewed = sessions(&[&assume], &[&revoked]);
    let session = renewed.for_destination(&d, &external_id());
    assert_eq!(
        put(&session, target(&d, "b"), &body).await,
        Ok(Written::Created)
    );
    assert_eq!(
        put(&session, target(&d, "c"), &body).await,
        Ok(Written::Created)
    );
    assert_eq!(assume.num_calls(), 4, "one first session, one renewal");
    assert_eq!(revoked.num_calls(), 3);
}

/// CONTRACT section 7, last line (real-setups B14): every request to our own
/// buckets asserts that we own them, so a bucket of ours re-created by
/// another account is refused instead of receiving customer data.
#[tokio::test]
async fn every_request_to_our_own_buckets_asserts_our_account() {
    use aws_sdk_s3::operation::get_object::GetObjectOutput;
    use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
    use stored_messages::arn::AccountId;
    use stored_messages::records::message::{ArchiveRequest, MessageBody};
    use stored_messages::registry::Registry;

    let owners: Seen<(&'static str, Option<String>)> = Seen::default();
    // Records which operation asserted which owner; always matches.
    let seen = |operation: &'static str| {
        let owners = Arc::clone(&owners);
        move |owner: Option<&str>| {
            owners
                .lock()
                .unwrap()
                .push((operation, owner.map(String::from)));
            true
        }
    };
    let (put, get, list, delete) = (seen("put"), seen("get"), seen("list"), seen("delete"));
    let put_rule = mock!(aws_sdk_s3::Client::put_object)
        .match_requests(move |r| put(r.expected_bucket_owner()))
        .then_output(|| PutObjectOutput::builder().build());
    let get_rule = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(move |r| get(r.expected_bucket_owner()))
        .then_output(|| {
            GetObjectOutput::builder()
                .body(aws_sdk_s3::primitives::ByteStream::from_static(
                    br#"{"subject":"x"}"#,
                ))
                .build()
        });
    let list_rule = mock!(aws_sdk_s3::Client::list_objects_v2)
        .match_requests(move |r| list(r.expected_bucket_owner()))
        .then_output(|| ListObjectsV2Output::builder().build());
    let delete_rule = mock!(aws_sdk_s3::Client::delete_object)
        .match_requests(move |r| delete(r.expected_bucket_owner()))
        .then_output(|| {
            aws_sdk_s3::operation::delete_object::DeleteObjectOutput::builder().build()
        });
    let s3 = aws_smithy_mocks::mock_client!(
        aws_sdk_s3,
        RuleMode::MatchAny,
        &[&put_rule, &get_rule, &list_rule, &delete_rule]
    );
    let registry = Registry::new(s3, "sm-control", AccountId::parse("123456789012").unwrap());

    registry
        .quarantine("quarantine/2026-11-29/x.json", "{}")
        .await
        .unwrap();
    // The canned body is no External ID record: only the request matters here.
    let _ = registry.external_id(&OrgId::parse("acme").unwrap()).await;
    registry.all_destinations().await.unwrap();
    let staging = BucketName::parse("sm-staging").unwrap();
    let body = serde_json::json!({
        "version": 1, "org_id": "acme", "project_id": "p1", "message_id": "m1", "channel": "email",
        "sent_at": "2026-11-22T23:12:28Z", "recipient": { "user_id": "u-1" },
        "message_ref": { "bucket": "sm-staging", "key": "acme/m1.json" },
    });
    let request = ArchiveRequest::parse(body.to_string().as_bytes(), Some(&staging)).unwrap();
    let MessageBody::Staged(staged) = &request.body else {
        panic!("a staged body")
    };
    registry.read_staged(staged).await.unwrap();

    let parked = destination(Encryption::BucketDefault, None);
    registry
        .park(&parked, "k.json.gz", &encode(b"{}", Compression::Gzip))
        .await
        .unwrap();
    // A health update: the conditional (If-Match) replacement.
    registry
        .replace_destination(&parked, "\"etag\"")
        .await
        .unwrap();
    registry.delete_destination(&parked).await.unwrap();

    let seen = owners.lock().unwrap().clone();
    let kinds: Vec<&str> = seen.iter().map(|(kind, _)| *kind).collect();
    assert_eq!(kinds, ["put", "get", "list", "get", "put", "put", "delete"]);
    assert!(
        seen.iter()
            .all(|(_, owner)| owner.as_deref() == Some("123456789012")),
        "{seen:?}"
    );
}

const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn secret_value() -> aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput {
    aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput::builder()
        .secret_string(
            serde_json::json!({ "access_key_id": KEY_ID, "secret_access_key": SECRET }).to_string(),
        )
        .build()
}

#[tokio::test]
async fn an_access_key_destination_reads_its_secret_version_once_and_writes_to_the_key_account() {
    let mut d = destination(Encryption::Aes256, None);
    d.account_id = stored_messages::arn::AccountId::parse("444455556666").unwrap();
    d.auth = Auth::AccessKey(StoredAccessKey {
        access_key_id: MaskedKeyId::parse("AKIA************MPLE").unwrap(),
        credentials_updated_at: Utc::now(),
        secret_version_id: Some("version-2".into()),
    });
    let seen_reads: Seen<(Option<String>, Option<String>, Option<String>)> = Seen::default();
    let seen = Arc::clone(&seen_reads);
    let read = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
        .match_requests(move |r| {
            seen.lock().unwrap().push((
                r.secret_id().map(String::from),
                r.version_id().map(String::from),
                r.version_stage().map(String::from),
            ));
            true
        })
        .then_output(secret_value);
    let assume =
        mock!(aws_sdk_sts::Client::assume_role).then_output(sts_ok(Duration::from_secs(3600)));
    let seen_owner: Seen<Option<String>> = Seen::default();
    let seen = Arc::clone(&seen_owner);
    let put_rule = mock!(aws_sdk_s3::Client::put_object)
        .match_requests(move |r| {
            seen.lock()
                .unwrap()
                .push(r.expected_bucket_owner().map(String::from));
            true
        })
        .then_output(|| PutObjectOutput::builder().build());
    let identities = sessions_with_secrets(&[&assume], &[&put_rule], &[&read]);
    let body = encode(br#"{"a":1}"#, Compression::Gzip);
    for n in 0..3 {
        let identity = identities.for_destination(&d, &external_id());
        let key = format!("email/k{n}.json.gz");
        assert_eq!(
            put(&identity, target(&d, &key), &body).await.unwrap(),
            Written::Created
        );
    }
    let reads = seen_reads.lock().unwrap().clone();
    assert_eq!(
        reads,
        [(
            Some(format!("stored-messages/acme/{}", d.id)),
            Some("version-2".into()),
            None
        )],
        "one read of the version the registry names, for every write"
    );
    assert_eq!(assume.num_calls(), 0, "no role to assume");
    assert!(seen_owner
        .lock()
        .unwrap()
        .iter()
        .all(|o| o.as_deref() == Some("444455556666")));
    assert_eq!(identities.fetches(), 1);
}

#[tokio::test]
async fn secrets_are_created_under_our_key_replaced_by_version_and_deleted_at_once() {
    let name = SecretName::of(
        "stored-messages/",
        &OrgId::parse("acme").unwrap(),
        &DestinationId::parse("dst_abcdefghijklmnopqrstuvwxyz").unwrap(),
    );
    let pair = AccessKeyPair {
        id: AccessKeyId::parse(KEY_ID).unwrap(),
        secret: SecretAccessKey::parse(SECRET).unwrap(),
    };
    type Created = (Option<String>, Option<String>, Option<serde_json::Value>);
    let seen_create: Seen<Created> = Seen::default();
    let seen = Arc::clone(&seen_create);
    let create = mock!(aws_sdk_secretsmanager::Client::create_secret)
        .match_requests(move |r| {
            seen.lock().unwrap().push((
                r.name().map(String::from),
                r.kms_key_id().map(String::from),
                r.secret_string().map(|s| serde_json::from_str(s).unwrap()),
            ));
            true
        })
        .then_output(|| {
            aws_sdk_secretsmanager::operation::create_secret::CreateSecretOutput::builder()
                .version_id("v1")
                .build()
        });
    let store = secret_store(&[&create]);
    assert_eq!(store.store(&name, &pair).await.unwrap(), "v1");
    assert_eq!(
        seen_create.lock().unwrap()[0],
        (
            Some("stored-messages/acme/dst_abcdefghijklmnopqrstuvwxyz".into()),
            Some(OUR_KEY.into()),
            Some(serde_json::json!({ "access_key_id": KEY_ID, "secret_access_key": SECRET })),
        )
    );

    // It exists already (keys, then a role, then keys again): a new version.
    let exists = mock!(aws_sdk_secretsmanager::Client::create_secret).then_error(|| {
        aws_sdk_secretsmanager::operation::create_secret::CreateSecretError::ResourceExistsException(
            aws_sdk_secretsmanager::types::error::ResourceExistsException::builder().build(),
        )
    });
    let put_value = mock!(aws_sdk_secretsmanager::Client::put_secret_value)
        .match_requests(|r| {
            r.secret_id() == Some("stored-messages/acme/dst_abcdefghijklmnopqrstuvwxyz")
        })
        .then_output(|| {
            aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueOutput::builder()
                .version_id("v2")
                .build()
        });
    let store = secret_store(&[&exists, &put_value]);
    assert_eq!(store.store(&name, &pair).await.unwrap(), "v2");

    // Just deleted (a destination switched to a role and back): Secrets
    // Manager refuses the name for a few seconds; we wait and retry.
    let scheduled = mock!(aws_sdk_secretsmanager::Client::create_secret)
        .sequence()
        .error(|| {
            aws_sdk_secretsmanager::operation::create_secret::CreateSecretError::InvalidRequestException(
                aws_sdk_secretsmanager::types::error::InvalidRequestException::builder()
                    .message("You can't create this secret because a secret with this name is already scheduled for deletion.")
                    .build(),
            )
        })
        .output(|| {
            aws_sdk_secretsmanager::operation::create_secret::CreateSecretOutput::builder()
                .version_id("v3")
                .build()
        })
        .build();
    assert_eq!(
        secret_store(&[&scheduled])
            .store(&name, &pair)
            .await
            .unwrap(),
        "v3"
    );
    assert_eq!(scheduled.num_calls(), 2);

    // A secret that is gone is not retried forever: the destination parks.
    let missing = mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_error(|| {
        aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError::ResourceNotFoundException(
            aws_sdk_secretsmanager::types::error::ResourceNotFoundException::builder()
                .meta(
                    aws_smithy_types::error::ErrorMetadata::builder()
                        .code("ResourceNotFoundException")
                        .build(),
                )
                .build(),
        )
    });

    let err = secret_store(&[&missing])
        .read(&name, "v1")
        .await
        .unwrap_err();
    assert!(err.gone);
    let err = stored_messages::credentials::CredentialsError::from(err);
    assert!(!err.is_retryable());
    assert_eq!(
        stored_messages::write::WriteError::from(err).code,
        FailureCode::AccessKeyInvalid
    );

    let delete = mock!(aws_sdk_secretsmanager::Client::delete_secret)
        .match_requests(|r| {
            r.secret_id() == Some("stored-messages/acme/dst_abcdefghijklmnopqrstuvwxyz")
                && r.force_delete_without_recovery() == Some(true)
                && r.recovery_window_in_days().is_none()
        })
        .then_output(|| {
            aws_sdk_secretsmanager::operation::delete_secret::DeleteSecretOutput::builder().build()
        });
    let gone = mock!(aws_sdk_secretsmanager::Client::delete_secret).then_error(|| {
        aws_sdk_secretsmanager::operation::delete_secret::DeleteSecretError::ResourceNotFoundException(
            aws_sdk_secretsmanager::types::error::ResourceNotFoundException::builder().build(),
        )
    });
    secret_store(&[&delete]).delete(&name).await.unwrap();
    assert_eq!(delete.num_calls(), 1);
    secret_store(&[&gone])
        .delete(&name)
        .await
        .expect("already gone is deleted");
}

// ---- backfills: our account as the owner of every staging and control
// request, the checkpoint as an S3 `Range` of the listed version, the job
// replaced only under `If-Match` (read again when another writer won), and
// units sent ten per `SendMessageBatch`, a refused entry sent again.

const OURS: &str = "123456789012";

fn job() -> Backfill {
    let org = OrgId::parse("acme").unwrap();
    let mut job = Backfill::new(
        BackfillId::parse("bf_bbbbbbbbbbbbbbbbbbbbbbbbbb").unwrap(),
        &destination(Encryption::BucketDefault, None),
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

/// The claim registry over mocks: the claim object names the job
/// `job()`, whose record says `status`; what each claim write carried.
async fn claim_with_holder(
    ended: bool,
) -> (
    Option<BackfillId>,
    Vec<(Option<String>, Option<String>, Option<String>)>,
) {
    let mut holder = job();
    if ended {
        holder.cancel(Utc::now()).unwrap();
    }
    let claims_key = format!("backfills/acme/claims/{}.json", holder.destination_id);
    let held =
        serde_json::json!({ "backfill_id": holder.id, "claimed_at": "2026-11-01T00:00:00Z" })
            .to_string();
    let claim = {
        let key = claims_key.clone();
        mock!(aws_sdk_s3::Client::get_object)
            .match_requests(move |r| {
                r.key() == Some(key.as_str()) && r.expected_bucket_owner() == Some(OURS)
            })
            .then_output(move || {
                GetObjectOutput::builder()
                    .e_tag("\"c1\"")
                    .body(ByteStream::from(held.clone().into_bytes()))
                    .build()
            })
    };
    let record = serde_json::to_vec(&holder).unwrap();
    let job_record = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|r| {
            r.key() == Some("backfills/acme/bf_bbbbbbbbbbbbbbbbbbbbbbbbbb.json")
                && r.expected_bucket_owner() == Some(OURS)
        })
        .then_output(move || {
            GetObjectOutput::builder()
                .e_tag("\"j1\"")
                .body(ByteStream::from(record.clone()))
                .build()
        });
    let writes: Seen<(Option<String>, Option<String>, Option<String>)> = Seen::default();
    let seen = Arc::clone(&writes);
    // The claim exists: If-None-Match fails; the replacement wins.
    let put = mock!(aws_sdk_s3::Client::put_object)
        .match_requests(move |r| {
            seen.lock().unwrap().push((
                r.if_none_match().map(String::from),
                r.if_match().map(String::from),
                r.expected_bucket_owner().map(String::from),
            ));
            r.key() == Some(claims_key.as_str())
        })
        .sequence()
        .http_status(
            412,
            Some("<Error><Code>PreconditionFailed</Code></Error>".to_owned()),
        )
        .output(|| PutObjectOutput::builder().build())
        .build();
    let s3 = aws_smithy_mocks::mock_client!(
        aws_sdk_s3,
        RuleMode::MatchAny,
        &[&claim, &job_record, &put]
    );
    let registry = Registry::new(s3, "sm-control", AccountId::parse(OURS).unwrap());
    let mine = stored_messages::backfill::Claim {
        backfill_id: BackfillId::parse("bf_cccccccccccccccccccccccccc").unwrap(),
        claimed_at: Utc::now(),
    };
    let org = OrgId::parse("acme").unwrap();
    let outcome = registry
        .claim_destination(&org, &holder.destination_id, &mine)
        .await
        .unwrap();
    let writes = writes.lock().unwrap().clone();
    (outcome, writes)
}

#[tokio::test]
async fn a_claim_is_created_if_none_match_and_replaces_only_an_ended_jobs_claim_if_match() {
    let ours = Some(OURS.to_owned());
    // Held by a queued job: one create attempt, refused, and no replacement.
    let (outcome, writes) = claim_with_holder(false).await;
    assert_eq!(
        outcome.map(|id| id.to_string()),
        Some("bf_bbbbbbbbbbbbbbbbbbbbbbbbbb".to_owned())
    );
    assert_eq!(writes, vec![(Some("*".to_owned()), None, ours.clone())]);
    // Held by a cancelled job: replaced under the version read.
    let (outcome, writes) = claim_with_holder(true).await;
    assert_eq!(outcome, None);
    assert_eq!(
        writes,
        vec![
            (Some("*".to_owned()), None, ours.clone()),
            (None, Some("\"c1\"".to_owned()), ours)
        ]
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
