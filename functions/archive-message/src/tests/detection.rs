//! CONTRACT section 6's immediate detection (issue 15) through the real
//! handler: the batch that first hits a broken destination moves it to
//! `failing` and publishes one event, within that invocation; the health
//! check moves it back and replays what was parked. Both times are measured
//! on the emulator's clock and printed for the README.

use std::time::{Duration, Instant};

use stored_messages::connections::Connections;
use stored_messages::destination::Status;
use stored_messages::health::HealthChecker;
use stored_messages::notify::EventBridgeNotifier;

use super::*;

/// When the emulator received the first request matching `keep`, in seconds.
fn first_at(w: &World, keep: impl Fn(&Value) -> bool) -> f64 {
    w.emulator
        .requests()
        .iter()
        .filter(|r| keep(r))
        .filter_map(|r| r["at"].as_f64())
        .fold(f64::INFINITY, f64::min)
}

fn is_put_events(r: &Value) -> bool {
    header(r, "x-amz-target") == Some("AWSEvents.PutEvents")
}

#[tokio::test]
async fn a_break_is_published_from_the_batch_that_hit_it_and_the_recovery_from_the_health_check() {
    let w = world().await;
    let customer = w.customer(
        "111122223333",
        "eu-west-1",
        "acme-detect",
        "stored-messages-detect",
    );
    let d = w.register(&customer, "p", |_| {}).await;
    let archiver = w.archiver();
    w.emulator.health_events();
    let warm = vec![(
        "warm".to_owned(),
        message("p", "m-warm", "email", 0).to_string(),
    )];
    assert!(failures(&handler::handle(&archiver, sqs_event(&warm)).await.unwrap()).is_empty());

    w.emulator.revoke_put(&customer);
    w.emulator.clear_requests();
    let records: Vec<(String, String)> = (1..=20)
        .map(|i| {
            (
                format!("sqs-{i}"),
                message("p", &format!("m{i}"), "email", i).to_string(),
            )
        })
        .collect();
    let started = Instant::now();
    let response = handler::handle(&archiver, sqs_event(&records))
        .await
        .unwrap();
    let invocation = started.elapsed();
    assert!(failures(&response).is_empty(), "parked, not retried");

    let stored = w.registry.destination(&d.org_id, &d.id).await.unwrap();
    assert_eq!(stored.status, Status::Failing);
    let events = w.emulator.health_events();
    assert_eq!(
        events.len(),
        1,
        "one event for the break, not one per message: {events:?}"
    );
    let detail = &events[0]["detail"];
    assert_eq!(
        (detail["from"].as_str(), detail["to"].as_str()),
        (Some("active"), Some("failing"))
    );
    assert_eq!(detail["code"], "put_object_denied");
    assert_eq!(detail["destination_id"], d.id.as_str());
    assert!(detail["message"].as_str().is_some_and(|m| !m.is_empty()));
    let text = events[0].to_string();
    for secret in [
        w.external_id.expose(),
        w.vendor.secret_access_key.as_str(),
        w.vendor.session_token.as_str(),
    ] {
        assert!(
            !text.contains(secret),
            "no External ID or credential in the event"
        );
    }
    for (_, body) in &records {
        let sent: Value = serde_json::from_str(body).unwrap();
        for personal in [
            &sent["recipient"]["email"],
            &sent["recipient"]["user_id"],
            &sent["message"]["subject"],
        ] {
            assert!(
                !text.contains(personal.as_str().unwrap()),
                "no recipient or body in the event"
            );
        }
    }
    leak_audit::record(Kind::Response, "health event", &text);
    let failed_write = first_at(&w, |r| {
        r["method"] == "PUT"
            && r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/acme-detect/"))
            && r["status"] == 403
    });
    let published = first_at(&w, is_put_events);
    assert_eq!(
        w.emulator
            .requests()
            .iter()
            .filter(|r| is_put_events(r))
            .count(),
        1,
        "published once, from this invocation"
    );
    let detect_ms = (published - failed_write) * 1000.0;
    assert!(detect_ms.is_finite() && detect_ms >= 0.0);
    println!(
        "time to detect: first failed write to the event {detect_ms:.0} ms (the whole 20-message invocation {} ms)",
        invocation.as_millis()
    );

    w.emulator.allow_put(&customer, None);
    w.emulator.clear_requests();
    let checker = HealthChecker::new(
        w.emulator.registry(&w.settings, &w.sdk),
        Connections::new(&w.settings, &w.sdk),
        EventBridgeNotifier::new(&w.sdk, w.settings.event_bus_name.clone()),
        w.settings.health,
    );
    let started = Instant::now();
    let report = checker
        .run(std::time::Instant::now() + Duration::from_secs(120))
        .await
        .unwrap();
    let recovery = started.elapsed();
    assert_eq!(
        (report.transitions, report.replayed, report.parked_remaining),
        (1, 20, 0)
    );
    assert_eq!(
        w.registry
            .destination(&d.org_id, &d.id)
            .await
            .unwrap()
            .status,
        Status::Active
    );
    let events = w.emulator.health_events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0]["detail"]["to"].as_str(),
            &events[0]["detail"]["code"]
        ),
        (Some("active"), &Value::Null)
    );
    let landed = w.emulator.objects(&customer, "email/").len();
    assert_eq!(landed, 21, "the warm message and every parked one");
    let run_started = first_at(&w, |_| true);
    let recovered_ms = (first_at(&w, is_put_events) - run_started) * 1000.0;
    println!(
        "time to detect a recovery (or a break with no traffic): health run start to the event {recovered_ms:.0} ms, plus up to one schedule period (the whole run with 20 replays {} ms)",
        recovery.as_millis()
    );
}
