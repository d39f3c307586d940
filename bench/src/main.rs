//! `make bench`: the archive path measured the way it runs in production.
//!
//! Every function under test is a real process (our release binaries, or the
//! boto3 comparator under `bench/`) fed through a local Lambda runtime API;
//! its CPU time and peak memory are read from /proc, as Lambda bills them.
//! S3 is s3s-fs on loopback; STS is a stand-in that counts AssumeRole calls.
//! Absolute figures on a shared 2-core machine are noise: read the ratios,
//! all measured in one run.

mod backfill;
mod breakdown;
mod function;
mod report;
mod setup;
mod sts;
mod workload;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};
use stored_messages::destination::Destination;
use stored_messages::records::message::ArchiveRequest;
use stored_messages::write::{encode, Compression};

use function::{Function, Subject};
use setup::{S3Server, CEILING_BUCKET, STAGING_BUCKET};
use stored_messages_testkit::procstat;
use sts::StsStub;
use workload::{Rng, Shape, SHAPES};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Writes in flight per batch: ARCHIVE_MAX_IN_FLIGHT's default, for all three.
const CONCURRENCY: usize = 64;

struct Paths {
    release: PathBuf,
    s3s_fs: PathBuf,
    python: PathBuf,
    comparator: PathBuf,
    out: PathBuf,
}

fn paths() -> Result<Paths, Error> {
    let mut args = std::env::args().skip(1);
    let mut get = |name: &str| -> Result<PathBuf, Error> {
        match (args.next(), args.next()) {
            (Some(flag), Some(value)) if flag == name => Ok(PathBuf::from(value)),
            _ => Err(format!(
                "usage: bench --release DIR --s3s-fs BIN --python BIN --comparator FILE --out DIR (missing {name})"
            )
            .into()),
        }
    };
    Ok(Paths {
        release: get("--release")?,
        s3s_fs: get("--s3s-fs")?,
        python: get("--python")?,
        comparator: get("--comparator")?,
        out: get("--out")?,
    })
}

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("bench failed: {err}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Error> {
    let paths = paths()?;
    std::fs::create_dir_all(&paths.out)?;
    let s3 = S3Server::start(&paths.s3s_fs, &paths.out.join("s3")).await?;
    let sts = StsStub::start().await?;
    let client = s3.client();

    // One destination per project; the STS runs use up to 100 projects, each
    // its own customer account.
    let mut wanted = vec![
        (
            "tp-rust".to_owned(),
            setup::role(111_111_111_111, "rust"),
            "bench-tp-rust".to_owned(),
        ),
        (
            "tp-boto3".to_owned(),
            setup::role(222_222_222_222, "boto3"),
            "bench-tp-boto3".to_owned(),
        ),
    ];
    for n in STS_FANOUT {
        for i in 0..n {
            wanted.push((
                format!("sts{n}-{i}"),
                setup::role(
                    300_000_000_000 + (n as u64) * 1000 + i as u64,
                    &format!("sts{n}-{i}"),
                ),
                format!("bench-sts{n}-{i}"),
            ));
        }
    }
    let destinations = setup::seed(&client, &wanted).await?;
    let rust_destination = destinations
        .first()
        .ok_or("no destination was seeded")?
        .clone();

    let archive = Subject::Binary(paths.release.join("archive-message"));
    let boto3 = Subject::Python {
        python: paths.python.clone(),
        script: paths.comparator.clone(),
    };
    let mut results = serde_json::Map::new();
    // For profiling one part: BENCH_ONLY=throughput (or sts, message_ref,
    // cold_start; comma-separated). `make bench` runs them all.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |section: &str| only.is_empty() || only.split(',').any(|s| s == section);

    if wanted("throughput") {
        println!("## Throughput: one destination, gzip, SSE-S3, {CONCURRENCY} writes in flight\n");
        let mut rows = Vec::new();
        let mut parts = Vec::new();
        for (i, shape) in SHAPES.iter().enumerate() {
            eprintln!("  throughput {}: ours, ceiling, boto3", shape.name);
            let ours = throughput(
                &s3,
                &sts,
                &archive,
                "tp-rust",
                "bench-tp-rust",
                shape,
                reps(shape, false),
                i,
            )
            .await?;
            let ceiling = tokio::task::block_in_place(|| {
                ceiling(&s3, &rust_destination, shape, reps(shape, false), i)
            })?;
            let theirs = throughput(
                &s3,
                &sts,
                &boto3,
                "tp-boto3",
                "bench-tp-boto3",
                shape,
                reps(shape, true),
                i,
            )
            .await?;
            let row = report::throughput_row(shape, &ours, &ceiling, &theirs);
            eprintln!("  throughput {}: each step alone", shape.name);
            let steps = breakdown::measure(shape, &rust_destination, i as u64 + 2000)?;
            parts.push(breakdown::row(&steps, &row));
            rows.push(row);
        }
        report::throughput_table(&rows);
        results.insert("throughput".into(), Value::Array(rows));
        println!("\n## Where our CPU per message goes: each step alone, and the SDK's PutObject\n");
        report::breakdown_table(&parts);
        results.insert("breakdown".into(), Value::Array(parts));
    }

    // BENCH_BASELINE=DIR (`make bench-baseline`): the same shapes through
    // DIR/archive-message, an earlier build, alternating with ours, so a
    // refactoring's cost is a ratio measured in one run.
    if let (Ok(dir), true) = (std::env::var("BENCH_BASELINE"), wanted("baseline")) {
        println!("\n## Against the baseline build: CPU per message, alternating runs\n");
        let baseline = Subject::Binary(PathBuf::from(dir).join("archive-message"));
        let mut rows = Vec::new();
        for (i, shape) in SHAPES.iter().enumerate() {
            eprintln!("  baseline {}: baseline and ours, alternating", shape.name);
            let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
            let rounds = std::env::var("BENCH_BASELINE_ROUNDS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(BASELINE_ROUNDS);
            for round in 0..rounds {
                for (side, subject) in [&baseline, &archive].into_iter().enumerate() {
                    let seed = 5000 + i * 100 + round * 2 + side;
                    let run = throughput(
                        &s3,
                        &sts,
                        subject,
                        "tp-rust",
                        "bench-tp-rust",
                        shape,
                        reps(shape, false),
                        seed,
                    )
                    .await?;
                    runs[side].push(run);
                }
            }
            rows.push(report::baseline_row(shape, &runs[0], &runs[1]));
        }
        report::baseline_table(&rows);
        results.insert("baseline".into(), Value::Array(rows));
    }

    if wanted("events") {
        println!("\n## Engagement events: {EVENTS_PER_BATCH}-event batches of a realistic mix, batched objects against one object per event\n");
        let mut rows = Vec::new();
        for (label, per_object) in [
            ("batched (CONTRACT 4)", "5000"),
            ("one object per event", "1"),
        ] {
            eprintln!("  events: {label}");
            let run = events_throughput(&s3, &sts, &archive, per_object, 7000).await?;
            rows.push(report::events_row(label, &run));
        }
        report::events_table(&rows);
        results.insert("events".into(), Value::Array(rows));
    }

    if wanted("backfill") {
        println!("\n## Backfill: the 100,000-record manifest through run-backfill, next to the archive path\n");
        eprintln!("  backfill: 100,000 records");
        let runner = Subject::Binary(paths.release.join("run-backfill"));
        let row = backfill::run(&s3, &sts, &runner, &rust_destination).await?;
        report::backfill_table(&row, &results);
        results.insert("backfill".into(), row);
    }

    if wanted("sts") {
        println!("\n## STS calls: 100-message batches over N destinations (each its own project and account)\n");
        let mut rows = Vec::new();
        for n in STS_FANOUT {
            eprintln!("  STS calls: {n} destinations");
            rows.push(sts_calls(&s3, &sts, &archive, n).await?);
        }
        report::sts_table(&rows);
        results.insert("sts".into(), Value::Array(rows));
    }

    if wanted("message_ref") {
        println!("\n## Peak memory with message_ref: 1 MB staged bodies\n");
        let keys = setup::stage(&client, REF_RECORDS, 1024 * 1024).await?;
        let mut rows = Vec::new();
        for (subject, project, bucket) in [
            (&archive, "tp-rust", "bench-tp-rust"),
            (&boto3, "tp-boto3", "bench-tp-boto3"),
        ] {
            rows.push(message_ref_memory(&s3, &sts, subject, project, bucket, &keys).await?);
        }
        report::memory_table(&rows);
        results.insert("message_ref".into(), Value::Array(rows));
    }

    if wanted("cold_start") {
        println!(
        "\n## Cold start: process start to the first `next` request, {COLD_STARTS} starts each\n"
    );
        let mut rows = Vec::new();
        for name in [
            "archive-message",
            "validate-destination",
            "check-destinations",
            "run-backfill",
        ] {
            let binary = paths.release.join(name);
            let size = std::fs::metadata(&binary)?.len();
            rows.push(cold_start(&s3, &sts, &Subject::Binary(binary), name, Some(size)).await?);
        }
        rows.push(cold_start(&s3, &sts, &boto3, "boto3 comparator", None).await?);
        report::cold_start_table(&rows);
        results.insert("cold_start".into(), Value::Array(rows));
    }

    if results.contains_key("throughput") {
        println!("\n## Cost per million messages (prices in the README's cost model)\n");
        let costs = report::cost_table(&results);
        results.insert("cost".into(), costs);
    }

    let file = paths.out.join("results.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&Value::Object(results))?)?;
    s3.remove().await?;
    println!("\nJSON: {}", file.display());
    Ok(())
}

const STS_FANOUT: [usize; 3] = [1, 10, 100];
/// Events per SQS batch in the events section (about 4.5 MB, under
/// Lambda's 6 MB payload), and measured batches per side.
const EVENTS_PER_BATCH: usize = 10_000;
const EVENT_BATCHES: usize = 3;
/// Runs per side and shape in the baseline comparison, unless
/// BENCH_BASELINE_ROUNDS says otherwise.
const BASELINE_ROUNDS: usize = 2;
const REF_RECORDS: usize = 100;
const COLD_STARTS: usize = 15;

/// Measured batches per shape: enough CPU time that /proc's 10 ms ticks
/// stay under 1% of it; fewer for the slower comparator.
fn reps(shape: &Shape, comparator: bool) -> usize {
    match (shape.records, comparator) {
        (10, false) => 1000,
        (10, true) => 100,
        (10_000, false) => 3,
        (10_000, true) => 1,
        (700, false) => 15,
        (700, true) => 2,
        (_, false) => 40,
        (_, true) => 6,
    }
}

/// Figures of one subject on one shape.
struct Run {
    messages: usize,
    wall: Duration,
    cpu: Duration,
    peak_rss: u64,
    event_bytes: usize,
    mean_body_bytes: usize,
}

#[allow(clippy::too_many_arguments)]
async fn throughput(
    s3: &S3Server,
    sts: &StsStub,
    subject: &Subject,
    project: &str,
    bucket: &str,
    shape: &Shape,
    reps: usize,
    seed: usize,
) -> Result<Run, Error> {
    let label = subject.label();
    let mut rng = Rng::new(seed as u64 + 1);
    let warm_tag = format!("{label}-{}-w", seed);
    let warm = workload::sqs_event(
        &warm_tag,
        &workload::bodies(&mut rng, &warm_tag, project, 100, shape.body_bytes),
    );
    let mut body_total = 0;
    let events: Vec<Bytes> = (0..reps)
        .map(|r| {
            let tag = format!("{label}-{seed}-{r}");
            let bodies = workload::bodies(&mut rng, &tag, project, shape.records, shape.body_bytes);
            body_total += bodies.iter().map(String::len).sum::<usize>();
            workload::sqs_event(&tag, &bodies)
        })
        .collect();
    let event_bytes = events.first().map_or(0, Bytes::len);
    let before_objects = s3.count(bucket, ".json.gz");

    setup::settle();
    let function = Function::launch(subject, s3, sts, "archive-message").await?;
    function.invoke_batch(warm, 100).await?;
    let before = function.stats()?;
    let started = Instant::now();
    for event in events {
        function.invoke_batch(event, shape.records).await?;
    }
    let wall = started.elapsed();
    let after = function.stats()?;
    drop(function);

    let messages = reps * shape.records;
    let landed = s3.count(bucket, ".json.gz") - before_objects;
    if landed != messages + 100 {
        return Err(format!(
            "{label} {}: {landed} objects landed, {} expected",
            shape.name,
            messages + 100
        )
        .into());
    }
    Ok(Run {
        messages,
        wall,
        cpu: after.cpu.saturating_sub(before.cpu),
        peak_rss: after.peak_rss_bytes,
        event_bytes,
        mean_body_bytes: body_total / messages.max(1),
    })
}

/// What one side of the events section measured.
pub struct EventsRun {
    pub events: usize,
    pub objects: usize,
    pub cpu: Duration,
    pub wall: Duration,
    pub mean_event_bytes: usize,
}

/// [`EVENT_BATCHES`] batches of engagement events through archive-message
/// with `ARCHIVE_EVENTS_PER_OBJECT=per_object`: CPU, and the objects (each
/// one customer PUT) that landed.
async fn events_throughput(
    s3: &S3Server,
    sts: &StsStub,
    subject: &Subject,
    per_object: &str,
    seed: u64,
) -> Result<EventsRun, Error> {
    let (project, bucket) = ("tp-rust", "bench-tp-rust");
    let mut rng = Rng::new(seed);
    let warm_tag = format!("ev{per_object}-w");
    let warm = workload::sqs_event(
        &warm_tag,
        &workload::engagement_events(&mut rng, &warm_tag, project, 100),
    );
    let mut event_bytes = 0;
    let batches: Vec<Bytes> = (0..EVENT_BATCHES)
        .map(|r| {
            let tag = format!("ev{per_object}-{r}");
            let events = workload::engagement_events(&mut rng, &tag, project, EVENTS_PER_BATCH);
            event_bytes += events.iter().map(String::len).sum::<usize>();
            workload::sqs_event(&tag, &events)
        })
        .collect();
    setup::settle();
    let function = Function::launch_with(
        subject,
        s3,
        sts,
        "archive-message",
        &[("ARCHIVE_EVENTS_PER_OBJECT", per_object)],
    )
    .await?;
    function.invoke_batch(warm, 100).await?;
    let before_objects = s3.count(bucket, ".ndjson.gz");
    let before = function.stats()?;
    let started = Instant::now();
    for batch in batches {
        function.invoke_batch(batch, EVENTS_PER_BATCH).await?;
    }
    let wall = started.elapsed();
    let after = function.stats()?;
    drop(function);
    let events = EVENT_BATCHES * EVENTS_PER_BATCH;
    Ok(EventsRun {
        events,
        objects: s3.count(bucket, ".ndjson.gz") - before_objects,
        cpu: after.cpu.saturating_sub(before.cpu),
        wall,
        mean_event_bytes: event_bytes / events,
    })
}

/// The endpoint's ceiling: only signed PutObject calls of the same keys and
/// gzipped sizes, with the same concurrency, from a warm client. It runs on
/// a current-thread runtime of its own thread, as archive-message does, so
/// its CPU per PUT is the SDK's on the same scheduler as ours.
fn ceiling(
    s3: &S3Server,
    destination: &Destination,
    shape: &Shape,
    reps: usize,
    seed: usize,
) -> Result<Run, Error> {
    let mut rng = Rng::new(seed as u64 + 1000);
    let tag = format!("ceiling-{seed}");
    let bodies = workload::bodies(
        &mut rng,
        &tag,
        "tp-rust",
        reps * shape.records,
        shape.body_bytes,
    );
    let objects: Vec<(String, Bytes)> = bodies
        .iter()
        .map(|body| {
            let request =
                ArchiveRequest::parse(body.as_bytes(), None).map_err(|e| e.to_string())?;
            Ok((
                destination.target.message_key(&request),
                encode(body.as_bytes(), Compression::Gzip).body,
            ))
        })
        .collect::<Result<_, Error>>()?;
    let client = s3.client();
    setup::settle();
    let puts = std::thread::spawn(move || -> Result<(Duration, Duration), Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            // Warm the connection pool as a warm container would be.
            let warm = objects
                .iter()
                .take(CONCURRENCY)
                .map(|(k, b)| (format!("warm/{k}"), b.clone()))
                .collect();
            put_all(&client, warm).await?;
            let cpu_before = procstat::own_cpu();
            let started = Instant::now();
            put_all(&client, objects).await?;
            Ok((
                started.elapsed(),
                procstat::own_cpu().saturating_sub(cpu_before),
            ))
        })
    });
    let (wall, cpu) = puts.join().map_err(|_| "the ceiling thread panicked")??;
    let messages = reps * shape.records;
    let landed = s3.count(CEILING_BUCKET, ".json.gz");
    if landed < messages {
        return Err(format!(
            "ceiling {}: {landed} objects, {messages} expected",
            shape.name
        )
        .into());
    }
    Ok(Run {
        messages,
        wall,
        cpu,
        peak_rss: 0,
        event_bytes: 0,
        mean_body_bytes: 0,
    })
}

async fn put_all(client: &aws_sdk_s3::Client, objects: Vec<(String, Bytes)>) -> Result<(), Error> {
    let mut puts = futures_util::stream::iter(objects.into_iter().map(|(key, body)| async move {
        client
            .put_object()
            .bucket(CEILING_BUCKET)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(e).to_string())
    }))
    .buffer_unordered(CONCURRENCY);
    while let Some(done) = puts.next().await {
        done?;
    }
    Ok(())
}

/// STS calls in the first batch and over 10,000 messages, from a cold
/// container writing to `n` destinations.
async fn sts_calls(
    s3: &S3Server,
    sts: &StsStub,
    subject: &Subject,
    n: usize,
) -> Result<Value, Error> {
    let mut rng = Rng::new(n as u64 + 7);
    let function = Function::launch(subject, s3, sts, "archive-message").await?;
    let before = sts.calls();
    let mut after_first = before;
    const BATCHES: usize = 100;
    for b in 0..BATCHES {
        let tag = format!("sts{n}-{b}");
        let bodies: Vec<String> = (0..100)
            .map(|i| {
                let project = format!("sts{n}-{}", (b * 100 + i) % n);
                workload::archive_request(&mut rng, &project, &format!("{tag}-{i:04}"), 512)
            })
            .collect();
        function
            .invoke_batch(workload::sqs_event(&tag, &bodies), 100)
            .await?;
        if b == 0 {
            after_first = sts.calls();
        }
    }
    drop(function);
    let first = after_first - before;
    let rest = sts.calls() - after_first;
    let landed: usize = (0..n)
        .map(|i| s3.count(&format!("bench-sts{n}-{i}"), ".json.gz"))
        .sum();
    if landed != BATCHES * 100 {
        return Err(format!(
            "STS run with {n} destinations: {landed} objects landed, 10000 expected"
        )
        .into());
    }
    Ok(json!({
        "destinations": n,
        "messages": BATCHES * 100,
        "sts_first_batch": first,
        "sts_other_99_batches": rest,
        "sts_per_10000_messages": first + rest,
        "target_met": first == n as u64 && rest == 0,
    }))
}

async fn message_ref_memory(
    s3: &S3Server,
    sts: &StsStub,
    subject: &Subject,
    project: &str,
    bucket: &str,
    keys: &[String],
) -> Result<Value, Error> {
    let label = subject.label();
    let tag = format!("{label}-ref");
    let bodies: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            workload::referenced_request(project, &format!("{tag}-{i:04}"), STAGING_BUCKET, key)
        })
        .collect();
    let before_objects = s3.count(bucket, ".json.gz");
    let function = Function::launch(subject, s3, sts, "archive-message").await?;
    let started = Instant::now();
    function
        .invoke_batch(workload::sqs_event(&tag, &bodies), keys.len())
        .await?;
    let wall = started.elapsed();
    let stats = function.stats()?;
    drop(function);
    let landed = s3.count(bucket, ".json.gz") - before_objects;
    if landed != keys.len() {
        return Err(format!(
            "{label} message_ref: {landed} objects landed, {} expected",
            keys.len()
        )
        .into());
    }
    Ok(json!({
        "subject": label,
        "records": keys.len(),
        "staged_body_bytes": 1024 * 1024,
        "wall_ms": wall.as_millis() as u64,
        "peak_rss_mb": stats.peak_rss_bytes as f64 / 1_048_576.0,
    }))
}

async fn cold_start(
    s3: &S3Server,
    sts: &StsStub,
    subject: &Subject,
    name: &str,
    size: Option<u64>,
) -> Result<Value, Error> {
    let mut times = Vec::with_capacity(COLD_STARTS);
    let function_name = if size.is_some() {
        name
    } else {
        "archive-message"
    };
    for _ in 0..COLD_STARTS {
        let function = Function::launch(subject, s3, sts, function_name).await?;
        times.push(function.cold_start);
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(json!({
        "function": name,
        "median_ms": ms(times[times.len() / 2]),
        "p90_ms": ms(times[times.len() * 9 / 10]),
        "max_ms": ms(times[times.len() - 1]),
        "stripped_binary_bytes": size,
        "target_met": ms(times[times.len() / 2]) < 50.0,
    }))
}
