//! Real customer setups (issue 13; `../shared/cases/real-setups/`) through
//! the real scheduled handler: health must follow what archive writes would
//! do, and only a failure retrying cannot fix may move a destination.

use super::*;

fn transitions(captured: &LogCapture) -> Vec<Value> {
    captured.events("destination_health_changed")
}

/// B04: a write-once bucket policy. The old probe overwrote without
/// `If-None-Match` and flipped the destination to `failing` while archive
/// writes succeeded; the daily conditional probe passes, twice a day too.
#[tokio::test(flavor = "current_thread")]
async fn a_write_once_bucket_stays_active() {
    let w = world(Duration::from_secs(10)).await;
    let c = w.customer("acme-worm-health", "stored-messages-worm-health");
    w.emulator.bucket_policy(
        &c,
        &json!({ "Version": "2012-10-17", "Statement": [{
            "Sid": "ArchiveIsWriteOnce", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::acme-worm-health/*", "Condition": { "Null": { "s3:if-none-match": "true" } },
        }] }),
    );
    let d = w.register(&c, "p").await;
    let checker = w.checker();
    let (captured, guard) = LogCapture::scoped();
    for _ in 0..2 {
        let summary = handler::handle(&checker, scheduled()).await.unwrap();
        assert_eq!(summary["healthy"], 1, "{summary}");
    }
    drop(guard);
    let stored = w.stored(&d).await;
    assert_eq!(stored.status, Status::Active);
    assert_eq!(stored.health.last_error, None);
    assert!(transitions(&captured).is_empty());
}

/// B08 and contract section 6: throttling on the probe is recorded, never a
/// transition; one `503 SlowDown` is absorbed by the retries within the
/// check; a permanent failure still moves the destination at once.
#[tokio::test(flavor = "current_thread")]
async fn transient_probe_failures_are_recorded_but_never_move_status() {
    let w = world(Duration::from_secs(10)).await;
    let c = w.customer("acme-throttled", "stored-messages-throttled");
    let d = w.register(&c, "p").await;
    let checker = w.checker();
    let (captured, guard) = LogCapture::scoped();

    // One 503 on the probe: retried inside the check, healthy.
    w.emulator.set_faults(json!({ "rules": [{ "service": "s3", "method": "PUT", "path_prefix": "/acme-throttled/_stored-messages/", "action": "status", "status": 503, "code": "SlowDown", "message": "Please reduce your request rate for operations involving AWS KMS.", "count": 1 }] }));
    let summary = handler::handle(&checker, scheduled()).await.unwrap();
    assert_eq!(summary["healthy"], 1, "{summary}");
    let stored = w.stored(&d).await;
    assert_eq!(
        (stored.status, stored.health.last_error),
        (Status::Active, None)
    );

    // Throttled throughout the check: recorded, status kept.
    w.emulator.set_faults(json!({ "rules": [{ "service": "s3", "method": "PUT", "path_prefix": "/acme-throttled/_stored-messages/", "action": "status", "status": 503, "code": "SlowDown" }] }));
    for _ in 0..2 {
        handler::handle(&checker, scheduled()).await.unwrap();
    }
    let stored = w.stored(&d).await;
    assert_eq!(
        stored.status,
        Status::Active,
        "a transient failure never moves status"
    );
    assert_eq!(stored.health.consecutive_failures, 2);
    assert_eq!(
        stored.health.last_error.as_ref().map(|e| e.code.as_str()),
        Some("put_object_failed")
    );

    // A failure retrying cannot fix: failing at once; then a pass: active.
    w.emulator.set_faults(json!({ "rules": [] }));
    w.emulator.revoke_put(&c);
    handler::handle(&checker, scheduled()).await.unwrap();
    assert_eq!(w.stored(&d).await.status, Status::Failing);
    w.emulator.allow_put(&c, None);
    handler::handle(&checker, scheduled()).await.unwrap();
    drop(guard);
    let stored = w.stored(&d).await;
    assert_eq!(
        (stored.status, stored.health.consecutive_failures),
        (Status::Active, 0)
    );
    let moves: Vec<(String, String)> = transitions(&captured)
        .iter()
        .map(|t| {
            (
                t["fields"]["from"].as_str().unwrap().to_owned(),
                t["fields"]["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("active".to_owned(), "failing".to_owned()),
            ("failing".to_owned(), "active".to_owned())
        ],
        "exactly the permanent failure and the recovery"
    );
}
