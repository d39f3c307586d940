//! A saved destination's lifecycle (issue 15; CONTRACT sections 5 and 6)
//! through the real API handler: `PATCH` (edit, pause, resume, `If-Match`),
//! `POST .../test`, the health event each transition puts on the bus, and
//! tenant isolation of both routes.

use std::time::Duration;

use stored_messages::archive::{Archiver, InboundRecord};
use stored_messages::connections::Connections;
use stored_messages::destination::{Destination, DestinationId, Status};
use stored_messages::health::{HealthChecker, HealthSettings};
use stored_messages::ids::OrgId;
use stored_messages::notify::EventBridgeNotifier;
use stored_messages::registry::Registry;
use stored_messages_testkit::{CONTROL_BUCKET, VENDOR_ACCOUNT};

use super::*;

const PATCH: &str = include_str!("../../../../events/apigw-patch.json");
const TEST: &str = include_str!("../../../../events/apigw-test.json");

/// A `PATCH` of `path` with `body`, and `If-Match` when given.
pub(super) fn patch(
    org: &str,
    path: &str,
    body: Value,
    if_match: Option<&str>,
) -> LambdaEvent<ApiGatewayV2httpRequest> {
    let mut value: Value = serde_json::from_str(&with_path(PATCH, "PATCH", path)).unwrap();
    let headers = value["headers"].as_object_mut().unwrap();
    match if_match {
        Some(tag) => headers.insert("if-match".into(), json!(tag)),
        None => headers.remove("if-match"),
    };
    event(&value.to_string(), Some(org), Some(body))
}

pub(super) fn test_route(org: &str, path: &str) -> LambdaEvent<ApiGatewayV2httpRequest> {
    event(
        &with_path(TEST, "POST", &format!("{path}/test")),
        Some(org),
        None,
    )
}

pub(super) async fn get(w: &World, org: &str, path: &str) -> Answer {
    call(w, event(&with_path(GET, "GET", path), Some(org), None)).await
}

/// AssumeRole calls made so far: how a test sees whether live checks ran.
fn assume_role_calls(w: &World) -> usize {
    w.emulator
        .requests()
        .iter()
        .filter(|r| r["params"]["Action"] == "AssumeRole")
        .count()
}

struct Saved {
    customer: Customer,
    id: String,
    path: String,
}

/// A healthy destination of `org`, created through the API.
async fn saved(w: &World, org: &str, bucket: &str, role: &str) -> Saved {
    let xid = external_id(w, org).await;
    let customer = customer(w, Some(&xid), bucket, role, "eu-west-1", true);
    let created = call(w, event(CREATE, Some(org), Some(body_for(&customer)))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        created.etag.as_deref().map(|e| e.starts_with('"')),
        Some(true)
    );
    let id = created.body["destination"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Saved {
        customer,
        path: format!("/v1/destinations/{id}"),
        id,
    }
}

/// The functions' other two parts, as their handlers build them.
pub(super) struct Functions {
    pub(super) registry: Registry,
    pub(super) archiver: Archiver,
    pub(super) checker: HealthChecker,
}

pub(super) async fn functions(w: &World) -> Functions {
    let settings = w.emulator.settings(&w.vendor);
    let sdk = w.emulator.sdk_config(&w.vendor).await;
    let parts = || {
        (
            w.emulator.registry(&settings, &sdk),
            Connections::new(&settings, &sdk),
            EventBridgeNotifier::new(&sdk, settings.event_bus_name.clone()),
        )
    };
    let (registry, connections, notifier) = parts();
    let archiver = Archiver::new(registry, connections, notifier, 8, None);
    let (registry, connections, notifier) = parts();
    let checker = HealthChecker::new(registry, connections, notifier, HealthSettings::default());
    Functions {
        registry: w.emulator.registry(&settings, &sdk),
        archiver,
        checker,
    }
}

pub(super) async fn stored(f: &Functions, org: &str, id: &str) -> Destination {
    f.registry
        .destination(
            &OrgId::parse(org).unwrap(),
            &DestinationId::parse(id).unwrap(),
        )
        .await
        .unwrap()
}

pub(super) fn message(org: &str, id: &str) -> String {
    json!({
        "version": 1, "org_id": org, "project_id": "12345", "message_id": id, "channel": "email",
        "sent_at": "2026-11-29T10:00:00Z", "recipient": { "user_id": "u-1" }, "message": { "subject": "Hi" },
    })
    .to_string()
}

#[tokio::test]
async fn patch_edits_pauses_and_resumes_under_the_contracts_rules() {
    let w = world().await;
    let s = saved(&w, "acme", "acme-lifecycle", "stored-messages-lifecycle").await;
    let f = functions(&w).await;
    let read = get(&w, "acme", &s.path).await;
    let first_etag = read.etag.clone().unwrap();

    // A field the connection does not depend on: saved at once, no live check.
    let calls = assume_role_calls(&w);
    let edited = call(
        &w,
        patch(
            "acme",
            &s.path,
            json!({
                "layout": "by_date", "channels": ["email"],
                "record_kinds": ["message", "event"], "event_types": ["open", "click"],
            }),
            Some(&first_etag),
        ),
    )
    .await;
    assert_eq!(edited.status, 200, "{}", edited.body);
    assert_eq!(edited.body["destination"]["layout"], "by_date");
    assert_eq!(
        edited.body["destination"]["record_kinds"],
        json!(["message", "event"])
    );
    assert_eq!(
        edited.body["destination"]["event_types"],
        json!(["open", "click"])
    );
    assert!(edited.body["destination"]["updated_at"].is_string());
    let second_etag = edited.etag.clone().unwrap();
    assert_ne!(
        second_etag, first_etag,
        "a setting changed, so the ETag did"
    );
    assert_eq!(
        assume_role_calls(&w),
        calls,
        "no live check for layout, channels, record kinds or event types"
    );
    let bad = call(
        &w,
        patch("acme", &s.path, json!({ "record_kinds": ["events"] }), None),
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(
        failed_code(&bad),
        vec![("request".to_owned(), "invalid_request".to_owned())]
    );

    // A stale If-Match: 412, nothing saved.
    let stale = call(
        &w,
        patch(
            "acme",
            &s.path,
            json!({ "compression": "none" }),
            Some(&first_etag),
        ),
    )
    .await;
    assert_eq!(
        (stale.status, stale.body["error"]["code"].as_str()),
        (412, Some("precondition_failed"))
    );
    assert_eq!(
        get(&w, "acme", &s.path).await.body["destination"]["compression"],
        "gzip"
    );

    // A connection field the role cannot reach: every check runs, 422, nothing saved.
    w.emulator.aws("111122223333", "eu-west-1", json!([
        { "service": "s3", "op": "create_bucket", "args": { "Bucket": "acme-elsewhere", "CreateBucketConfiguration": { "LocationConstraint": "eu-west-1" } } },
    ]));
    let refused = call(
        &w,
        patch("acme", &s.path, json!({ "bucket": "acme-elsewhere" }), None),
    )
    .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(
        failed_code(&refused),
        vec![("put_object".to_owned(), "put_object_denied".to_owned())]
    );
    let unchanged = get(&w, "acme", &s.path).await;
    assert_eq!(unchanged.body["destination"]["bucket"], "acme-lifecycle");
    assert_eq!(unchanged.etag.as_deref(), Some(second_etag.as_str()));

    // A connection field the role can reach: re-validated (a fresh AssumeRole), saved.
    let calls = assume_role_calls(&w);
    let moved = call(
        &w,
        patch(
            "acme",
            &s.path,
            json!({ "folder_path": "archive/2027" }),
            None,
        ),
    )
    .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(moved.body["destination"]["folder_path"], "archive/2027");
    assert!(
        assume_role_calls(&w) > calls,
        "the connection was checked again"
    );
    assert_eq!(
        w.emulator
            .objects(&s.customer, "archive/2027/_stored-messages/")
            .len(),
        1
    );

    // What a PATCH may not carry: 400, nothing saved.
    for body in [
        json!({ "project_id": "other" }),
        json!({ "status": "failing" }),
        json!({ "id": "dst_x" }),
    ] {
        let answer = call(&w, patch("acme", &s.path, body.clone(), None)).await;
        assert_eq!(
            (answer.status, answer.body["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{body}"
        );
    }

    // Paused: receives nothing, is not health-checked; the ETag says so.
    let paused = call(
        &w,
        patch("acme", &s.path, json!({ "status": "disabled" }), None),
    )
    .await;
    assert_eq!(
        (paused.status, paused.body["destination"]["status"].as_str()),
        (200, Some("disabled"))
    );
    let body = message("acme", "while-paused");
    let report = f
        .archiver
        .archive_batch(
            &[InboundRecord {
                id: "r1",
                body: &body,
            }],
            None,
        )
        .await;
    assert_eq!((report.no_destination, report.objects_written), (1, 0));
    assert_eq!(
        f.checker
            .run(std::time::Instant::now() + Duration::from_secs(60))
            .await
            .unwrap()
            .checked,
        0
    );
    let paused_etag = paused.etag.clone().unwrap();

    // Resuming re-validates: refused while the role cannot write, saved once it can.
    w.emulator.revoke_put(&s.customer);
    let resume = call(
        &w,
        patch(
            "acme",
            &s.path,
            json!({ "status": "active" }),
            Some(&paused_etag),
        ),
    )
    .await;
    assert_eq!(resume.status, 422, "{}", resume.body);
    assert_eq!(stored(&f, "acme", &s.id).await.status, Status::Disabled);
    w.emulator.allow_put(&s.customer, None);
    let resumed = call(
        &w,
        patch(
            "acme",
            &s.path,
            json!({ "status": "active" }),
            Some(&paused_etag),
        ),
    )
    .await;
    assert_eq!(
        (
            resumed.status,
            resumed.body["destination"]["status"].as_str()
        ),
        (200, Some("active"))
    );
    // A fresh container: this one's destination cache still says paused.
    let report = functions(&w)
        .await
        .archiver
        .archive_batch(
            &[InboundRecord {
                id: "r2",
                body: &message("acme", "after-resume"),
            }],
            None,
        )
        .await;
    assert_eq!(report.objects_written, 1);
}

#[tokio::test]
async fn an_edit_racing_health_updates_loses_neither() {
    let w = world().await;
    let s = saved(&w, "acme", "acme-race", "stored-messages-race").await;
    let f = functions(&w).await;
    for (round, layout) in ["by_date", "by_recipient", "by_date"]
        .into_iter()
        .enumerate()
    {
        let before = stored(&f, "acme", &s.id).await.health.last_checked_at;
        let (edited, run) = tokio::join!(
            call(
                &w,
                patch("acme", &s.path, json!({ "layout": layout }), None)
            ),
            f.checker
                .run(std::time::Instant::now() + Duration::from_secs(60)),
        );
        assert_eq!(edited.status, 200, "round {round}: {}", edited.body);
        assert_eq!(run.unwrap().checked, 1);
        let now = stored(&f, "acme", &s.id).await;
        assert_eq!(
            now.s3().unwrap().layout,
            serde_json::from_value(json!(layout)).unwrap(),
            "round {round}: the edit stayed"
        );
        assert!(
            now.health.last_checked_at > before,
            "round {round}: the health update stayed"
        );
    }
}

#[tokio::test]
async fn test_now_records_health_moves_status_and_publishes_each_move_once() {
    let w = world().await;
    let s = saved(&w, "acme", "acme-tested", "stored-messages-tested").await;
    let f = functions(&w).await;
    w.emulator.health_events();

    let healthy = call(&w, test_route("acme", &s.path)).await;
    assert_eq!(healthy.status, 200, "{}", healthy.body);
    assert_eq!(healthy.body["valid"], true);
    assert_eq!(
        healthy.body["checks"].as_array().unwrap().len(),
        5,
        "every live check"
    );
    assert_eq!(healthy.body["destination"]["status"], "active");
    assert!(healthy.etag.is_some());
    let probes = w.emulator.objects(&s.customer, "_stored-messages/");
    assert_eq!(probes.len(), 1, "today's probe, written once");

    w.emulator.revoke_put(&s.customer);
    let broken = call(&w, test_route("acme", &s.path)).await;
    assert_eq!(
        (broken.status, broken.body["valid"].as_bool()),
        (200, Some(false))
    );
    assert_eq!(broken.body["destination"]["status"], "failing");
    assert_eq!(
        broken.body["destination"]["health"]["last_error"]["code"],
        "put_object_denied"
    );
    assert_eq!(
        broken.etag, healthy.etag,
        "health moves leave the ETag alone"
    );
    call(&w, test_route("acme", &s.path)).await;

    w.emulator.allow_put(&s.customer, None);
    let fixed = call(&w, test_route("acme", &s.path)).await;
    assert_eq!(fixed.body["destination"]["status"], "active");
    assert_eq!(
        stored(&f, "acme", &s.id).await.health.consecutive_failures,
        0
    );

    let events = w.emulator.health_events();
    let moves: Vec<(String, String, Value)> = events
        .iter()
        .map(|e| {
            (
                e["detail"]["from"].as_str().unwrap().to_owned(),
                e["detail"]["to"].as_str().unwrap().to_owned(),
                e["detail"]["code"].clone(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        vec![
            (
                "active".to_owned(),
                "failing".to_owned(),
                json!("put_object_denied")
            ),
            ("failing".to_owned(), "active".to_owned(), Value::Null),
        ],
        "one event per move, none for the repeated failure"
    );
    for e in &events {
        assert_eq!(
            (e["source"].as_str(), e["detail-type"].as_str()),
            (Some("stored-messages"), Some("Destination Health Changed"))
        );
        assert_eq!(e["detail"]["destination_id"], s.id.as_str());
        assert_eq!(e["detail"]["org_id"], "acme");
        assert_eq!(e["detail"]["project_id"], "12345");
        leak_audit::record(Kind::Response, "health event", &e.to_string());
    }
}

#[tokio::test]
async fn another_orgs_destination_cannot_be_edited_or_tested() {
    let w = world().await;
    let s = saved(&w, "org-a", "org-a-life", "stored-messages-org-a-life").await;
    let before = get(&w, "org-a", &s.path).await;
    external_id(&w, "org-b").await;
    let calls = assume_role_calls(&w);
    for answer in [
        call(
            &w,
            patch("org-b", &s.path, json!({ "status": "disabled" }), None),
        )
        .await,
        call(
            &w,
            patch(
                "org-b",
                &s.path,
                json!({ "layout": "by_date" }),
                before.etag.as_deref(),
            ),
        )
        .await,
        call(&w, test_route("org-b", &s.path)).await,
    ] {
        assert_eq!(
            (answer.status, answer.body["error"]["code"].as_str()),
            (404, Some("not_found"))
        );
        assert!(answer.etag.is_none());
    }
    assert_eq!(
        assume_role_calls(&w),
        calls,
        "nothing was tried on org A's role"
    );
    let after = get(&w, "org-a", &s.path).await;
    assert_eq!(
        (after.etag, &after.body["destination"]),
        (before.etag, &before.body["destination"])
    );
    let parked = w
        .emulator
        .bucket_objects(VENDOR_ACCOUNT, "us-east-1", CONTROL_BUCKET, "parked/");
    assert!(parked.is_empty());
}
