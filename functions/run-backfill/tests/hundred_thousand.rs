//! The proof of scale: a 100,000-record manifest (gzip and plain
//! objects, one many chunks long, malformed lines, records of another org
//! and project) backfilled by the real `run-backfill` binary, run as Lambda
//! runs it (its own process, fed through a local runtime API), against the
//! local AWS emulator. Every valid record lands exactly once, the counts
//! add up to the manifest's lines, and the worker's peak resident memory
//! (VmHWM, read from /proc when the job is done) stays under 128 MB.
//!
//! Its own test binary: the process measured is the function's alone.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stored_messages::backfill::{Backfill, BackfillId, ManifestPrefix, WorkQueue, WorkUnit};
use stored_messages::ids::{Channel, OrgId, RecordKind};
use stored_messages::s3::Layout;
use stored_messages_testkit::exports::Manifest;
use stored_messages_testkit::leak_audit::{self, Kind};
use stored_messages_testkit::runtime_api::{Answer, RuntimeApi};
use stored_messages_testkit::{
    destination, procstat, s3_mut, CustomerSpec, Emulator, CONTROL_BUCKET, EVENT_BUS, HOME_REGION,
    SECRET_PREFIX, STAGING_BUCKET,
};

const ORG: &str = "acme";
const PROJECT: &str = "p1";
const PREFIX: &str = "acme/history/";
const LIMIT_BYTES: u64 = 128 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_records_land_once_and_the_worker_stays_under_128_mb() {
    let emulator = Emulator::start();
    let vendor = emulator.vendor();
    let settings = emulator.settings(&vendor);
    let sdk = emulator.sdk_config(&vendor).await;
    let registry = emulator.registry(&settings, &sdk);
    let org = OrgId::parse(ORG).unwrap();
    let external_id = registry.ensure_external_id(&org).await.unwrap();
    let customer = emulator.customer(
        &vendor,
        &CustomerSpec {
            account: "111122223333",
            region: "eu-west-1",
            bucket: "acme-history",
            role_name: "stored-messages-acme",
            external_id: Some(&external_id),
            folder: None,
            allow_put: true,
        },
    );
    let mut target = destination(&customer, ORG, PROJECT);
    target.channels = vec![Channel::Email, Channel::Sms];
    target.record_kinds = RecordKind::ALL.to_vec();
    s3_mut(&mut target).layout = Layout::ByDate;
    registry.create_destination(&target).await.unwrap();

    let manifest = Manifest::hundred_thousand(ORG, PROJECT, PREFIX);
    for line in &manifest.sample {
        leak_audit::record(Kind::Input, "", line);
    }
    assert_eq!(manifest.lines, 100_000);
    let chunk_bytes = stored_messages::backfill::CHUNK_BYTES;
    assert!(
        manifest.objects[1].1.len() > 2 * chunk_bytes,
        "one object spans several chunks"
    );
    for (key, body) in &manifest.objects {
        emulator.stage(&vendor, key, body.clone()).await;
    }
    // The job as the API saves it, and its plan unit on the queue.
    let job = Backfill::new(
        BackfillId::generate().unwrap(),
        &target,
        ManifestPrefix::parse(&org, PREFIX).unwrap(),
        chrono::Utc::now(),
    );
    registry.create_backfill(&job).await.unwrap();
    let queue: WorkQueue = settings.backfill_queue(&sdk).unwrap();
    queue
        .send_all(&[WorkUnit::Plan {
            org_id: org.clone(),
            backfill_id: job.id.clone(),
        }])
        .await
        .unwrap();

    // The function, as Lambda runs it: its own process and runtime API.
    let api = RuntimeApi::start().await.unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_run-backfill"))
        .env_clear()
        .envs([
            ("AWS_LAMBDA_RUNTIME_API", api.addr.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", "run-backfill".to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "test".to_owned()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                "/aws/lambda/run-backfill".to_owned(),
            ),
            ("AWS_REGION", HOME_REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", vendor.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", vendor.secret_access_key.clone()),
            ("AWS_SESSION_TOKEN", vendor.session_token.clone()),
            ("AWS_CONFIG_FILE", "/dev/null".to_owned()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AWS_ENDPOINT_URL", emulator.endpoint()),
            ("STORED_MESSAGES_ALLOW_ENDPOINT_OVERRIDE", "1".to_owned()),
            ("CONTROL_BUCKET", CONTROL_BUCKET.to_owned()),
            ("STAGING_BUCKET", STAGING_BUCKET.to_owned()),
            ("EVENT_BUS_NAME", EVENT_BUS.to_owned()),
            ("CREDENTIALS_SECRET_PREFIX", SECRET_PREFIX.to_owned()),
            ("CREDENTIALS_KMS_KEY_ID", vendor.secrets_key_arn.clone()),
            ("BACKFILL_QUEUE_URL", emulator.backfill_queue_url()),
            ("RUST_LOG", "info".to_owned()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start run-backfill");
    let pid = child.id();
    // Every line the function logs goes to the leak audit.
    let stdout = child.stdout.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut lines = 0u64;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            leak_audit::record(Kind::Log, "", &line);
            lines += 1;
        }
        lines
    });

    // The event source mapping: one unit per invocation until none is left.
    let started = Instant::now();
    let mut invocations = 0;
    loop {
        let units = emulator.receive_backfill_units(900);
        if units.is_empty() {
            break;
        }
        for unit in units {
            let event = json!({ "Records": [unit] }).to_string();
            let answer = api
                .invoke(event.into(), Duration::from_secs(600))
                .await
                .unwrap();
            let Answer::Response(body) = answer else {
                panic!("the function failed: {answer:?}");
            };
            let response: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                response["batchItemFailures"],
                json!([]),
                "a unit was retried"
            );
            emulator.delete_backfill_unit(unit["receiptHandle"].as_str().unwrap());
            invocations += 1;
        }
    }
    let elapsed = started.elapsed();
    let stats = procstat::read(pid).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let log_lines = logs.join().unwrap();

    let (job, _) = registry.backfill(&org, &job.id).await.unwrap().unwrap();
    let counts = job.counts;
    let valid = (manifest.messages.len() + manifest.events.len()) as u64;
    assert_eq!(job.status.as_str(), "succeeded", "{:?}", job.error);
    assert_eq!(counts.files_total, 4);
    assert_eq!(counts.files_done, 4);
    assert_eq!(counts.records_read, 100_000);
    assert_eq!(counts.malformed, manifest.malformed);
    assert_eq!(counts.objects_written, valid);
    assert_eq!(
        (counts.already_present, counts.failed, counts.skipped),
        (0, 0, 0)
    );
    assert!(counts.adds_up());

    // Exactly once: every message object by its key, every event line in
    // the events objects, no id twice and none missing.
    let keys = emulator.keys(&customer.account, &customer.region, &customer.bucket, "");
    let messages: BTreeSet<String> = keys
        .iter()
        .filter(|k| k.starts_with("channel="))
        .map(|k| {
            k.rsplit('/')
                .next()
                .unwrap()
                .trim_end_matches(".json.gz")
                .to_owned()
        })
        .collect();
    let message_objects = keys.iter().filter(|k| k.starts_with("channel=")).count();
    assert_eq!(
        message_objects,
        manifest.messages.len(),
        "one object per message"
    );
    assert_eq!(messages, manifest.messages);
    let mut events = Vec::with_capacity(manifest.events.len());
    for object in emulator.objects(&customer, "events/") {
        for line in object.lines() {
            events.push(line["event_id"].as_str().unwrap().to_owned());
        }
    }
    let distinct: BTreeSet<String> = events.iter().cloned().collect();
    assert_eq!(events.len(), distinct.len(), "an event landed twice");
    assert_eq!(distinct, manifest.events);

    let peak_mib = stats.peak_rss_bytes as f64 / (1024.0 * 1024.0);
    eprintln!(
        "run-backfill (debug build): 100,000 records in {invocations} invocations, {:.1} s wall, \
         {:.2} s CPU, peak RSS {peak_mib:.1} MiB; {} events objects, {} message objects; {log_lines} log lines",
        elapsed.as_secs_f64(),
        stats.cpu.as_secs_f64(),
        keys.len() - message_objects,
        message_objects,
    );
    assert!(
        stats.peak_rss_bytes < LIMIT_BYTES,
        "peak RSS {peak_mib:.1} MiB is over 128 MB"
    );
}
