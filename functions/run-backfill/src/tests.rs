//! Backfills end to end against the local AWS emulator: started through the
//! real API (`stored_messages::api::Api`, what validate-destination runs),
//! then every unit on the backfill queue handed to the real handler the
//! way the SQS event source mapping does (one record per invocation,
//! deleted unless listed in `batchItemFailures`). Asserts what lands in
//! the customer bucket, the job's counts and what was read.

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use stored_messages::api::{Api, ApiRequest};
use stored_messages::archive::Archiver;
use stored_messages::arn::AccountId;
use stored_messages::backfill::{Backfiller, WorkQueue};
use stored_messages::config::Settings;
use stored_messages::destination::Destination;
use stored_messages::ids::{Channel, OrgId, RecordKind};
use stored_messages::registry::Registry;
use stored_messages::s3::Layout;
use stored_messages_testkit::exports::{event_line, gzip, message_line, ndjson};
use stored_messages_testkit::leak_audit::{self, Kind};
use stored_messages_testkit::{
    destination, header, s3_mut, Customer, CustomerSpec, Emulator, Vendor, CONTROL_BUCKET,
    STAGING_BUCKET, VENDOR_ACCOUNT,
};

use crate::handler;

const ORG: &str = "acme";
const PROJECT: &str = "p1";
const PREFIX: &str = "acme/exports/2026-11/";

struct World {
    emulator: Emulator,
    _vendor: Vendor,
    settings: Settings,
    registry: Registry,
    api: Api,
    backfiller: Backfiller,
    queue: WorkQueue,
    customer: Customer,
    destination: Destination,
}

fn own() -> AccountId {
    AccountId::parse(VENDOR_ACCOUNT).unwrap()
}

/// The emulator, our identity, one customer bucket and its destination
/// (messages and events, email and sms, `by_date`), and chunks of
/// `chunk_lines`.
async fn world(chunk_lines: usize) -> World {
    let emulator = Emulator::start();
    let vendor = emulator.vendor();
    let mut settings = emulator.settings(&vendor);
    settings.backfill.chunk_lines = chunk_lines;
    let sdk = emulator.sdk_config(&vendor).await;
    let registry = emulator.registry(&settings, &sdk);
    let external_id = registry
        .ensure_external_id(&OrgId::parse(ORG).unwrap())
        .await
        .unwrap();
    let customer = emulator.customer(
        &vendor,
        &CustomerSpec {
            account: "111122223333",
            region: "eu-west-1",
            bucket: "acme-archive",
            role_name: "stored-messages-acme",
            external_id: Some(&external_id),
            folder: None,
            allow_put: true,
        },
    );
    let mut destination = destination(&customer, ORG, PROJECT);
    destination.channels = vec![Channel::Email, Channel::Sms];
    destination.record_kinds = RecordKind::ALL.to_vec();
    s3_mut(&mut destination).layout = Layout::ByDate;
    registry.create_destination(&destination).await.unwrap();
    let queue = settings.backfill_queue(&sdk).unwrap();
    let backfiller = Backfiller::new(
        Archiver::from_settings(&settings, &sdk, own()),
        registry.clone(),
        queue.clone(),
        settings.staging_bucket.clone().unwrap(),
        settings.backfill.chunk_bounds(),
    );
    let api = Api::new(&settings, &sdk, own());
    World {
        emulator,
        _vendor: vendor,
        settings,
        registry,
        api,
        backfiller,
        queue,
        customer,
        destination,
    }
}

impl World {
    /// One API call as `org`; the answer's status and body.
    async fn call(&self, org: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let claim = Value::from(org);
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let response = self
            .api
            .handle(ApiRequest {
                method,
                path,
                query: Vec::new(),
                body: bytes.as_bytes(),
                content_type: Some("application/json"),
                org_claim: Some(&claim),
                if_match: None,
            })
            .await;
        let body = response.body.unwrap_or(Value::Null);
        leak_audit::record(Kind::Response, path, &body.to_string());
        (response.status, body)
    }

    /// Starts a backfill of `prefix` into the destination: its id.
    async fn start(&self, prefix: &str) -> String {
        let path = format!("/v1/destinations/{}/backfills", self.destination.id);
        let (status, body) = self
            .call(
                ORG,
                "POST",
                &path,
                Some(json!({ "manifest_prefix": prefix })),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["backfill"]["status"], "queued");
        body["backfill"]["id"].as_str().unwrap().to_owned()
    }

    async fn job(&self, id: &str) -> Value {
        let (status, body) = self
            .call(ORG, "GET", &format!("/v1/backfills/{id}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body["backfill"].clone()
    }

    /// Stages an export object, its lines recorded for the leak audit.
    async fn stage(&self, key: &str, lines: &[String], gzipped: bool) {
        for line in lines {
            leak_audit::record(Kind::Input, "", line);
        }
        let text = ndjson(lines.iter().cloned());
        let body = if gzipped { gzip(&text) } else { text };
        self.emulator.stage(&self._vendor, key, body).await;
    }

    /// One invocation with one unit, as the event source mapping makes it
    /// (`deadline_ms`: the context's deadline, 0 for none); the unit is
    /// deleted unless the function listed it for retry. Whether it was.
    async fn invoke(&self, record: &Value, deadline_ms: u64) -> bool {
        let event: SqsEvent = serde_json::from_value(json!({ "Records": [record] })).unwrap();
        let mut context = Context::default();
        context.deadline = deadline_ms;
        let response = handler::handle(
            &self.backfiller,
            &self.queue,
            self.settings.backfill.max_receives,
            LambdaEvent::new(event, context),
        )
        .await
        .unwrap();
        let retried = !response.batch_item_failures.is_empty();
        if !retried {
            self.emulator
                .delete_backfill_unit(record["receiptHandle"].as_str().unwrap());
        }
        retried
    }

    /// Runs units until the queue is empty; how many invocations it took.
    async fn drain(&self) -> usize {
        let mut invocations = 0;
        loop {
            let units = self.emulator.receive_backfill_units(600);
            if units.is_empty() {
                return invocations;
            }
            for unit in &units {
                invocations += 1;
                assert!(!self.invoke(unit, 0).await, "a unit was retried: {unit}");
            }
        }
    }

    /// The customer's objects, key → decoded body.
    fn landed(&self) -> BTreeMap<String, Vec<u8>> {
        self.emulator
            .objects(&self.customer, "")
            .into_iter()
            .filter(|o| !o.key.contains("_stored-messages/"))
            .map(|o| (o.key.clone(), o.decoded()))
            .collect()
    }
}

/// Message ids and event ids in the customer's objects, each as often as
/// it appears.
fn archived_ids(landed: &BTreeMap<String, Vec<u8>>) -> (Vec<String>, Vec<String>) {
    let (mut messages, mut events) = (Vec::new(), Vec::new());
    for (key, body) in landed {
        if key.starts_with("events/") {
            for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let event: Value = serde_json::from_slice(line).unwrap();
                events.push(event["event_id"].as_str().unwrap().to_owned());
            }
        } else {
            let message: Value = serde_json::from_slice(body).unwrap();
            messages.push(message["message_id"].as_str().unwrap().to_owned());
        }
    }
    messages.sort();
    events.sort();
    (messages, events)
}

fn count(job: &Value, name: &str) -> u64 {
    job["counts"][name].as_u64().unwrap()
}

fn adds_up(job: &Value) -> bool {
    count(job, "records_read")
        == [
            "objects_written",
            "already_present",
            "malformed",
            "failed",
            "skipped",
        ]
        .iter()
        .map(|n| count(job, n))
        .sum::<u64>()
}

#[tokio::test]
async fn a_backfill_lands_each_record_once_and_a_second_run_counts_already_present() {
    let w = world(stored_messages::backfill::CHUNK_LINES).await;
    // Plain messages with three broken lines and two blank ones.
    let mut part0: Vec<String> = (0..200)
        .map(|i| message_line(ORG, PROJECT, i, "email"))
        .collect();
    part0.insert(50, "{\"version\": 1,".to_owned());
    part0.insert(120, "not json".to_owned());
    part0.insert(180, "{}".to_owned());
    part0.insert(10, String::new());
    part0.insert(90, "   ".to_owned());
    w.stage(&format!("{PREFIX}part-0000.ndjson"), &part0, false)
        .await;
    // Gzip events, and records of another org and another project.
    let mut part1: Vec<String> = (0..300)
        .map(|i| event_line(ORG, PROJECT, i, "email"))
        .collect();
    part1.push(message_line("globex", PROJECT, 900, "email"));
    part1.push(event_line("globex", PROJECT, 901, "email"));
    part1.push(message_line(ORG, "other-project", 902, "email"));
    part1.push(event_line(ORG, "other-project", 903, "email"));
    w.stage(&format!("{PREFIX}part-0001.ndjson.gz"), &part1, true)
        .await;
    // Push messages the destination does not take, and sms it does.
    let part2: Vec<String> = (1000..1020)
        .map(|i| message_line(ORG, PROJECT, i, "push"))
        .chain((1020..1025).map(|i| message_line(ORG, PROJECT, i, "sms")))
        .collect();
    w.stage(&format!("{PREFIX}part-0002.ndjson"), &part2, false)
        .await;
    // Not part of the manifest: another name, another folder, another org.
    w.stage(&format!("{PREFIX}_SUCCESS"), &["{}".to_owned()], false)
        .await;
    w.stage(
        "acme/exports/2026-10/part-0000.ndjson",
        &[message_line(ORG, PROJECT, 5000, "email")],
        false,
    )
    .await;
    w.stage(
        "globex/exports/2026-11/part-0000.ndjson",
        &[message_line("globex", PROJECT, 6000, "email")],
        false,
    )
    .await;

    let id = w.start(PREFIX).await;
    w.emulator.clear_requests();
    let invocations = w.drain().await;
    assert_eq!(invocations, 4, "one plan unit, one unit per object");
    let job = w.job(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["error"], Value::Null);
    let expected = json!({
        "files_total": 3, "files_done": 3, "records_read": 532, "objects_written": 505,
        "already_present": 0, "malformed": 7, "failed": 0, "skipped": 20,
    });
    assert_eq!(job["counts"], expected);
    assert!(adds_up(&job));

    // Every valid record exactly once; nothing of another org, project or channel.
    let landed = w.landed();
    let (messages, events) = archived_ids(&landed);
    let expected_messages: Vec<String> = (0..200)
        .chain(1020..1025)
        .map(|i| format!("m-{i:06}"))
        .collect();
    assert_eq!(messages, expected_messages);
    let expected_events: Vec<String> = (0..300).map(|i| format!("ev-{i:06}")).collect();
    assert_eq!(events, expected_events);
    // The manifest was read from our staging bucket only, with our account
    // as its owner: one listing of the prefix and its three objects.
    let staging: Vec<Value> = w
        .emulator
        .requests()
        .into_iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with(&format!("/{STAGING_BUCKET}")))
        })
        .collect();
    assert!(!staging.is_empty());
    for request in &staging {
        assert_eq!(
            stored_messages_testkit::header(request, "x-amz-expected-bucket-owner"),
            Some(VENDOR_ACCOUNT),
            "{request}"
        );
        let path = request["path"].as_str().unwrap();
        let listing = path.trim_end_matches('/') == format!("/{STAGING_BUCKET}");
        let read = path.starts_with(&format!("/{STAGING_BUCKET}/{PREFIX}part-000"));
        assert!(listing || read, "{request}");
        if listing {
            assert!(
                request["query"].to_string().contains("2026-11"),
                "{request}"
            );
        }
    }
    // The malformed lines and the other tenants' records are quarantined by name.
    let quarantined = w
        .emulator
        .keys(VENDOR_ACCOUNT, "us-east-1", CONTROL_BUCKET, "quarantine/")
        .into_iter()
        .filter(|k| k.contains(&id))
        .count();
    assert_eq!(quarantined, 7);

    // Again: nothing is written twice, and the counts say so.
    let again = w.start(PREFIX).await;
    w.drain().await;
    let job = w.job(&again).await;
    assert_eq!(job["status"], "succeeded");
    assert_eq!(
        (
            count(&job, "objects_written"),
            count(&job, "already_present")
        ),
        (0, 505)
    );
    assert!(adds_up(&job));
    assert_eq!(w.landed().len(), landed.len());
    let (status, list) = w
        .call(
            ORG,
            "GET",
            &format!("/v1/destinations/{}/backfills", w.destination.id),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["backfills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str(), again.as_str()]);
}

/// 200 messages in chunks of 50; message 120 (the third chunk) is held by
/// the emulator for `seconds` before it is written.
async fn slow_world(seconds: f64) -> World {
    let w = world(50).await;
    let lines: Vec<String> = (0..200)
        .map(|i| message_line(ORG, PROJECT, i, "email"))
        .collect();
    w.stage(&format!("{PREFIX}part-0000.ndjson"), &lines, false)
        .await;
    w.emulator.set_faults(json!({ "seed": 1, "rules": [{
        "action": "delay", "seconds": seconds, "method": "PUT",
        "path_prefix": format!("/{}/channel=email/project={PROJECT}/date=2026-11-01/hour=00/m-000120", w.customer.bucket),
    }] }));
    w
}

/// The plan unit run; the object unit received, not run.
async fn planned(w: &World, id: &str) -> Value {
    let plan = w.emulator.receive_backfill_units(600);
    assert_eq!(plan.len(), 1);
    assert!(!w.invoke(&plan[0], 0).await);
    assert_eq!(w.job(id).await["status"], "running");
    let units = w.emulator.receive_backfill_units(600);
    assert_eq!(units.len(), 1);
    units[0].clone()
}

#[tokio::test]
async fn a_unit_stopped_at_its_deadline_goes_on_from_its_checkpoint_and_rewrites_nothing() {
    let w = slow_world(8.0).await;
    let id = w.start(PREFIX).await;
    let unit = planned(&w, &id).await;
    w.emulator.clear_requests();
    // Six seconds to live: the third chunk's held write outlasts it.
    let deadline = chrono::Utc::now().timestamp_millis() as u64 + 6_000;
    assert!(!w.invoke(&unit, deadline).await, "sent again, not retried");
    let job = w.job(&id).await;
    assert_eq!(job["status"], "running");
    assert_eq!(
        count(&job, "records_read"),
        100,
        "two chunks committed: {job}"
    );
    assert!(adds_up(&job));

    w.emulator.set_faults(json!({ "seed": 1, "rules": [] }));
    let invocations = w.drain().await;
    assert_eq!(invocations, 1, "the continuation");
    let job = w.job(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(count(&job, "records_read"), 200);
    assert_eq!(
        count(&job, "objects_written") + count(&job, "already_present"),
        200
    );
    // The third chunk was read again: what had landed was a 412, not a rewrite.
    assert!(count(&job, "already_present") >= 1, "{job}");
    let mut created: BTreeMap<String, usize> = BTreeMap::new();
    for put in w
        .emulator
        .requests_under(&format!("/{}/", w.customer.bucket))
    {
        if put["method"] == "PUT" && put["status"] == 200 {
            *created
                .entry(put["path"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    assert!(
        created.values().all(|n| *n == 1),
        "an object was written twice"
    );
    let (messages, _) = archived_ids(&w.landed());
    assert_eq!(messages.len(), 200);
}

#[tokio::test]
async fn an_export_replaced_mid_job_fails_it_rather_than_be_read_from_the_checkpoint() {
    let w = slow_world(8.0).await;
    let key = format!("{PREFIX}part-0000.ndjson");
    let id = w.start(PREFIX).await;
    let unit = planned(&w, &id).await;
    // Two chunks committed, then the deadline: the checkpoint is an offset
    // into this version of the object.
    let deadline = chrono::Utc::now().timestamp_millis() as u64 + 6_000;
    assert!(!w.invoke(&unit, deadline).await, "sent again, not retried");
    assert_eq!(count(&w.job(&id).await, "records_read"), 100);
    w.emulator.set_faults(json!({ "seed": 1, "rules": [] }));

    // The platform exports the month again meanwhile: other lines at the
    // same key, where the checkpoint's offset means nothing.
    let replaced: Vec<String> = (500..700)
        .map(|i| message_line(ORG, PROJECT, i, "email"))
        .collect();
    w.stage(&key, &replaced, false).await;
    w.emulator.clear_requests();
    w.drain().await;

    let job = w.job(&id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "manifest_object_missing");
    assert_eq!(
        count(&job, "records_read"),
        100,
        "nothing read after the replacement"
    );
    assert!(adds_up(&job));
    // The continuation asked for the listed version and S3 refused it.
    let reads: Vec<Value> = w
        .emulator
        .requests_under(&format!("/{STAGING_BUCKET}/{key}"))
        .into_iter()
        .filter(|r| r["method"] == "GET")
        .collect();
    assert!(!reads.is_empty());
    for read in &reads {
        assert_eq!(read["status"], 412, "{read}");
        assert!(header(read, "if-match").is_some(), "{read}");
    }
    let (messages, _) = archived_ids(&w.landed());
    assert!(
        messages.iter().all(|m| m.as_str() < "m-000200"),
        "a line of the new export was archived"
    );
}

#[tokio::test]
async fn concurrent_starts_queue_one_job_and_an_ended_job_frees_the_destination() {
    let w = world(50).await;
    let lines: Vec<String> = (0..20)
        .map(|i| message_line(ORG, PROJECT, i, "email"))
        .collect();
    w.stage(&format!("{PREFIX}part-0000.ndjson"), &lines, false)
        .await;
    let path = format!("/v1/destinations/{}/backfills", w.destination.id);
    let body = || Some(json!({ "manifest_prefix": PREFIX }));
    // Four starts at once: when each read the org's jobs first, all four
    // found none and queued four jobs over one history.
    let answers = tokio::join!(
        w.call(ORG, "POST", &path, body()),
        w.call(ORG, "POST", &path, body()),
        w.call(ORG, "POST", &path, body()),
        w.call(ORG, "POST", &path, body()),
    );
    let answers = [answers.0, answers.1, answers.2, answers.3];
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        3,
        "{statuses:?}"
    );
    let (_, listed) = w.call(ORG, "GET", &path, None).await;
    assert_eq!(listed["backfills"].as_array().unwrap().len(), 1, "{listed}");
    let first = answers
        .iter()
        .find(|(status, _)| *status == 202)
        .map(|(_, body)| body["backfill"]["id"].as_str().unwrap().to_owned())
        .unwrap();
    assert_eq!(w.drain().await, 2, "one plan unit and its object's unit");
    assert_eq!(w.job(&first).await["status"], "succeeded");

    // The job has ended: the next start replaces its claim.
    let again = w.start(PREFIX).await;
    assert_ne!(again, first);
    w.drain().await;
    let job = w.job(&again).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(count(&job, "already_present"), 20);
}

#[tokio::test]
async fn cancel_stops_the_job_between_chunks_and_keeps_what_was_written() {
    let w = slow_world(5.0).await;
    let id = w.start(PREFIX).await;
    let unit = planned(&w, &id).await;
    let path = format!("/v1/backfills/{id}/cancel");
    // The cancel lands while the unit works: it stops at its next chunk.
    let (stopped, (status, body)) =
        tokio::join!(w.invoke(&unit, 0), w.call(ORG, "POST", &path, None));
    assert!(!stopped);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["backfill"]["status"], "cancelled");
    let job = w.job(&id).await;
    assert_eq!(job["status"], "cancelled");
    let read = count(&job, "records_read");
    assert!(
        read < 200 && read % 50 == 0,
        "stopped at a chunk boundary: {job}"
    );
    assert!(adds_up(&job));
    assert_eq!(w.landed().len() as u64, count(&job, "objects_written"));
    // Cancelled stays cancelled; a unit delivered again does nothing.
    assert_eq!(w.call(ORG, "POST", &path, None).await.0, 200);
    assert_eq!(w.drain().await, 0);
    let before = w.landed().len();
    w.queue
        .send_all(&[stored_messages::backfill::WorkUnit::Object {
            org_id: OrgId::parse(ORG).unwrap(),
            backfill_id: stored_messages::backfill::BackfillId::parse(&id).unwrap(),
            file: 0,
        }])
        .await
        .unwrap();
    assert_eq!(w.drain().await, 1);
    assert_eq!(w.landed().len(), before);
}

#[tokio::test]
async fn another_org_can_neither_read_an_export_nor_see_or_cancel_a_job() {
    let w = world(stored_messages::backfill::CHUNK_LINES).await;
    w.stage(
        "globex/exports/part-0000.ndjson",
        &[message_line("globex", PROJECT, 1, "email")],
        false,
    )
    .await;
    let start = format!("/v1/destinations/{}/backfills", w.destination.id);
    w.emulator.clear_requests();
    // acme names globex's export: 400 before anything is read or queued.
    for prefix in [
        "globex/exports/",
        "globex/",
        "acme-2/x/",
        "/acme/",
        "acme/../globex/",
    ] {
        let (status, body) = w
            .call(
                ORG,
                "POST",
                &start,
                Some(json!({ "manifest_prefix": prefix })),
            )
            .await;
        assert_eq!(status, 400, "{prefix}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request");
    }
    assert!(w
        .emulator
        .requests_under(&format!("/{STAGING_BUCKET}/"))
        .is_empty());
    assert!(
        w.emulator.receive_backfill_units(0).is_empty(),
        "nothing queued"
    );

    // globex, with acme's destination and job ids: 404, and acme's jobs are never read.
    let id = w.start(PREFIX).await;
    w.emulator.clear_requests();
    for (method, path, body) in [
        (
            "POST",
            start.clone(),
            Some(json!({ "manifest_prefix": "globex/exports/" })),
        ),
        ("GET", start.clone(), None),
        ("GET", format!("/v1/backfills/{id}"), None),
        ("POST", format!("/v1/backfills/{id}/cancel"), None),
    ] {
        let (status, answer) = w.call("globex", method, &path, body).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
    }
    let reads = w
        .emulator
        .requests_under(&format!("/{CONTROL_BUCKET}/backfills/{ORG}/"));
    assert!(reads.is_empty(), "acme's jobs were read: {reads:?}");
    assert!(w
        .emulator
        .requests_under(&format!("/{STAGING_BUCKET}/"))
        .is_empty());
    // A unit naming another org's job (never sent by us) reads that org's
    // path only, finds nothing and writes nothing.
    assert_eq!(w.job(&id).await["status"], "queued");
    assert_eq!(
        w.call(ORG, "GET", "/v1/backfills/bf_notanid", None).await.0,
        404
    );
    // One backfill per destination at a time.
    let (status, body) = w
        .call(
            ORG,
            "POST",
            &start,
            Some(json!({ "manifest_prefix": PREFIX })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
}

#[tokio::test]
async fn a_destination_that_breaks_mid_way_parks_and_fails_the_job_with_its_code() {
    let w = world(50).await;
    let lines: Vec<String> = (0..120)
        .map(|i| message_line(ORG, PROJECT, i, "email"))
        .collect();
    w.stage(&format!("{PREFIX}part-0000.ndjson"), &lines, false)
        .await;
    let empty = "acme/exports/empty/";
    let id = w.start(PREFIX).await;
    w.emulator.revoke_put(&w.customer);
    w.drain().await;
    let job = w.job(&id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "put_object_denied");
    assert_eq!(
        count(&job, "records_read"),
        50,
        "stopped after the first chunk"
    );
    assert_eq!(count(&job, "failed"), 50);
    assert!(adds_up(&job));
    let parked = w.emulator.keys(
        VENDOR_ACCOUNT,
        "us-east-1",
        CONTROL_BUCKET,
        &format!("parked/{ORG}/{}/", w.destination.id),
    );
    assert_eq!(parked.len(), 50, "held for the health check's replay");
    let destination = w
        .registry
        .destination(&OrgId::parse(ORG).unwrap(), &w.destination.id)
        .await
        .unwrap();
    assert_eq!(
        destination.status,
        stored_messages::destination::Status::Failing
    );
    // An empty manifest fails at once, with its code.
    let id = w.start(empty).await;
    w.drain().await;
    assert_eq!(w.job(&id).await["error"]["code"], "manifest_empty");
}

#[test]
fn the_sample_units_are_what_the_function_reads() {
    let event: SqsEvent =
        serde_json::from_str(include_str!("../../../events/sqs-backfill-units.json")).unwrap();
    let units: Vec<stored_messages::backfill::WorkUnit> = event
        .records
        .iter()
        .map(|r| serde_json::from_str(r.body.as_deref().unwrap()).unwrap())
        .collect();
    assert!(matches!(
        units[0],
        stored_messages::backfill::WorkUnit::Plan { .. }
    ));
    assert!(matches!(
        units[1],
        stored_messages::backfill::WorkUnit::Object { file: 0, .. }
    ));
}
