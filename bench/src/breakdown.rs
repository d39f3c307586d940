//! Where a message's CPU goes: each step of archive-message's path, timed
//! alone on one thread with the same `shared` code the handler runs, set
//! next to the SDK's own CPU per PutObject (the ceiling client). It tells
//! the part of our CPU per message that is ours to win from the part no
//! archiver built on aws-sdk-s3 can avoid: the SQS event, the gzip and the
//! PutObject itself.

use std::hint::black_box;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use chrono::Utc;
use serde_json::{json, Value};
use stored_messages::destination::Destination;
use stored_messages::records::message::{ArchiveRequest, MessageBody};
use stored_messages::write::{encode, Compression};

use crate::workload::{self, Rng, Shape};
use crate::Error;
use stored_messages_testkit::procstat::thread_cpu;

/// About this much SQS body per shape per round: enough thread CPU per step
/// for the clock's resolution, little enough to keep every stage in memory.
const BYTES_PER_ROUND: usize = 16 * 1024 * 1024;
/// Rounds per step; the fastest is kept, as the least disturbed by the
/// machine's other tenants.
const ROUNDS: usize = 5;

/// CPU-microseconds per message of each step (allocation timed, freeing not).
#[derive(Debug, Clone, Copy, Default)]
pub struct Steps {
    /// The SQS event JSON into records (serde_json, as lambda_runtime does):
    /// each body is unescaped out of the event here.
    pub event: f64,
    /// `ArchiveRequest::parse`: the strict JSON walk and the contract's rules.
    pub validate: f64,
    /// The archived document and its object key.
    pub document: f64,
    /// Level-1 gzip of the document.
    pub gzip: f64,
}

/// Times each step over the shape's batches.
pub fn measure(shape: &Shape, destination: &Destination, seed: u64) -> Result<Steps, Error> {
    let batches = (BYTES_PER_ROUND / (shape.records * shape.body_bytes)).max(1);
    let mut rng = Rng::new(seed);
    let events: Vec<Vec<u8>> = (0..batches)
        .map(|b| {
            let tag = format!("breakdown-{seed}-{b}");
            let bodies =
                workload::bodies(&mut rng, &tag, "tp-rust", shape.records, shape.body_bytes);
            workload::sqs_event(&tag, &bodies).to_vec()
        })
        .collect();
    let messages = (batches * shape.records) as f64;
    let per_message = |cpu: Duration| cpu.as_secs_f64() * 1e6 / messages;

    let mut best = [f64::INFINITY; 4];
    for _ in 0..ROUNDS {
        let (parsed, cpu) = timed(|| {
            events
                .iter()
                .map(|e| serde_json::from_slice::<SqsEvent>(e))
                .collect::<Result<Vec<_>, _>>()
        });
        let parsed = parsed?;
        best[0] = best[0].min(per_message(cpu));
        let bodies: Vec<&str> = parsed
            .iter()
            .flat_map(|e| e.records.iter())
            .filter_map(|r| r.body.as_deref())
            .collect();

        let (requests, cpu) = timed(|| {
            bodies
                .iter()
                .map(|b| ArchiveRequest::parse(b.as_bytes(), None))
                .collect::<Result<Vec<_>, _>>()
        });
        let requests = requests.map_err(|e| e.to_string())?;
        best[1] = best[1].min(per_message(cpu));

        let now = Utc::now();
        let (documents, cpu) = timed(|| {
            requests
                .iter()
                .filter_map(|r| match &r.body {
                    MessageBody::Inline(message) => Some((
                        r.archived_document(message, now),
                        destination.target.message_key(r),
                    )),
                    MessageBody::Staged(_) => None,
                })
                .collect::<Vec<_>>()
        });
        if documents.len() != bodies.len() {
            return Err("every bench message is inline".into());
        }
        best[2] = best[2].min(per_message(cpu));

        let (gzipped, cpu) = timed(|| {
            documents
                .iter()
                .map(|(doc, _)| encode(doc, Compression::Gzip))
                .collect::<Vec<_>>()
        });
        black_box(gzipped);
        best[3] = best[3].min(per_message(cpu));
    }
    Ok(Steps {
        event: best[0],
        validate: best[1],
        document: best[2],
        gzip: best[3],
    })
}

fn timed<T>(work: impl FnOnce() -> T) -> (T, Duration) {
    let before = thread_cpu();
    let out = black_box(work());
    (out, thread_cpu().saturating_sub(before))
}

/// One row: the steps, the SDK's PutObject from the throughput run, and what
/// they bound. `floor` is what any aws-sdk-s3 archiver of this batch spends
/// (event, gzip, PutObject); `best_vs_boto3` the messages per CPU-second
/// ratio such an archiver would reach against this run's boto3 if it did
/// nothing else at all.
pub fn row(steps: &Steps, throughput: &Value) -> Value {
    let get = |k: &str| throughput[k].as_f64().unwrap_or(f64::NAN);
    let put = get("ceiling_client_cpu_us_per_put");
    let ours = get("rust_cpu_us_per_msg");
    let boto3 = get("boto3_cpu_us_per_msg");
    let steps_sum = steps.event + steps.validate + steps.document + steps.gzip;
    let floor = steps.event + steps.gzip + put;
    json!({
        "batch": throughput["batch"],
        "event_us": steps.event,
        "validate_us": steps.validate,
        "document_us": steps.document,
        "gzip_us": steps.gzip,
        "sdk_put_us": put,
        "steps_plus_put_us": steps_sum + put,
        "rust_cpu_us_per_msg": ours,
        "rest_us": ours - steps_sum - put,
        "floor_us": floor,
        "boto3_tenth_us": boto3 / 10.0,
        "best_vs_boto3": boto3 / floor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_what_every_sdk_archiver_pays_and_bounds_the_ratio() {
        let steps = Steps {
            event: 60.0,
            validate: 80.0,
            document: 10.0,
            gzip: 90.0,
        };
        let throughput = json!({
            "batch": "90 x 64 KB",
            "ceiling_client_cpu_us_per_put": 250.0,
            "rust_cpu_us_per_msg": 560.0,
            "boto3_cpu_us_per_msg": 4000.0,
        });
        let r = row(&steps, &throughput);
        assert_eq!(r["batch"], "90 x 64 KB");
        assert_eq!(r["floor_us"], 400.0);
        assert_eq!(r["steps_plus_put_us"], 490.0);
        assert_eq!(r["rest_us"], 70.0);
        assert_eq!(r["boto3_tenth_us"], 400.0);
        assert_eq!(r["best_vs_boto3"], 10.0);
    }
}
