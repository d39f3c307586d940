//! The backfill path measured: the 100,000-record manifest of the
//! backfill's scale test (`stored_messages_testkit::exports::Manifest`)
//! through the release `run-backfill`, one unit per manifest object in a
//! row (the event source mapping at `MaximumConcurrency` 1), against the
//! same s3s-fs and STS stand-in as the archive path. Records per second,
//! CPU per record and peak memory, next to archive-message's figures of
//! the same run.

use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use serde_json::{json, Value};
use stored_messages::arn::AccountId;
use stored_messages::backfill::{Backfill, BackfillId, JobStatus, ManifestPrefix, WorkUnit};
use stored_messages::destination::Destination;
use stored_messages::registry::Registry;
use stored_messages_testkit::exports::Manifest;

use crate::function::{Function, Subject};
use crate::setup::{self, S3Server, CONTROL_BUCKET, STAGING_BUCKET};
use crate::sts::StsStub;
use crate::Error;

/// The manifest into `destination`, measured; the row of the table.
pub async fn run(
    s3: &S3Server,
    sts: &StsStub,
    subject: &Subject,
    destination: &Destination,
) -> Result<Value, Error> {
    let client = s3.client();
    let org = destination.org_id.clone();
    let prefix = format!("{org}/history/");
    let manifest =
        Manifest::hundred_thousand(org.as_str(), destination.project_id.as_str(), &prefix);
    let mut listed = Vec::new();
    let mut manifest_bytes = 0;
    for (key, body) in &manifest.objects {
        manifest_bytes += body.len();
        listed.push(stored_messages::backfill::Listed {
            key: key.clone(),
            size: body.len() as u64,
            etag: None,
        });
        client
            .put_object()
            .bucket(STAGING_BUCKET)
            .key(key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .map_err(|e| format!("stage: {}", aws_sdk_s3::error::DisplayErrorContext(e)))?;
    }
    // The job as the API saves it and the plan unit leaves it.
    let registry = Registry::new(
        client.clone(),
        CONTROL_BUCKET,
        AccountId::parse(crate::sts::BENCH_ACCOUNT).ok_or("bench account")?,
    );
    let mut job = Backfill::new(
        BackfillId::generate()?,
        destination,
        ManifestPrefix::parse(&org, &prefix).map_err(|e| e.to_string())?,
        chrono::Utc::now(),
    );
    job.plan(listed, chrono::Utc::now());
    registry.create_backfill(&job).await?;
    setup::settle();
    let function = Function::launch(subject, s3, sts, "run-backfill").await?;
    let before = function.stats()?;
    let started = Instant::now();
    for file in 0..manifest.objects.len() {
        let unit = WorkUnit::Object {
            org_id: org.clone(),
            backfill_id: job.id.clone(),
            file,
        };
        let event = json!({ "Records": [{
            "messageId": format!("5b2a6f0e-3c1d-4e8a-9f27-{file:012}"),
            "receiptHandle": format!("AQEBbench{file}"),
            "body": serde_json::to_string(&unit)?,
            "attributes": { "ApproximateReceiveCount": "1" },
            "eventSource": "aws:sqs", "awsRegion": "us-east-1",
        }] });
        function
            .invoke_batch(Bytes::from(event.to_string()), 1)
            .await?;
    }
    let wall = started.elapsed();
    let after = function.stats()?;
    drop(function);
    let (done, _) = registry
        .backfill(&org, &job.id)
        .await?
        .ok_or("the job is gone")?;
    let counts = done.counts;
    if done.status != JobStatus::Succeeded
        || counts.records_read != manifest.lines
        || !counts.adds_up()
    {
        return Err(format!(
            "the backfill did not finish cleanly: {:?} {counts:?}",
            done.status
        )
        .into());
    }
    let cpu = after.cpu.saturating_sub(before.cpu);
    let records = counts.records_read as f64;
    Ok(json!({
        "records": counts.records_read,
        "manifest_objects": manifest.objects.len(),
        "manifest_mb": manifest_bytes as f64 / 1_048_576.0,
        "messages": manifest.messages.len(),
        "events": manifest.events.len(),
        "malformed": counts.malformed,
        "records_per_second": records / wall.as_secs_f64().max(1e-9),
        "cpu_us_per_record": cpu.as_secs_f64() * 1e6 / records,
        "wall_s": wall.as_secs_f64(),
        "cpu_s": cpu.as_secs_f64(),
        "peak_rss_mb": after.peak_rss_bytes as f64 / 1_048_576.0,
    }))
}
