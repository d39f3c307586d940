//! The tables `make bench` prints, and the cost model built on them.

use serde_json::{json, Map, Value};

use crate::workload::Shape;
use crate::Run;

fn per_second(run: &Run) -> f64 {
    run.messages as f64 / run.wall.as_secs_f64().max(1e-9)
}

fn cpu_us(run: &Run) -> f64 {
    run.cpu.as_secs_f64() * 1e6 / run.messages.max(1) as f64
}

pub fn throughput_row(shape: &Shape, ours: &Run, ceiling: &Run, theirs: &Run) -> Value {
    let (ours_rate, ceiling_rate, theirs_rate) =
        (per_second(ours), per_second(ceiling), per_second(theirs));
    let (ours_cpu, theirs_cpu) = (cpu_us(ours), cpu_us(theirs));
    json!({
        "batch": shape.name,
        "records": shape.records,
        "event_mb": ours.event_bytes as f64 / 1_048_576.0,
        "mean_body_bytes": ours.mean_body_bytes,
        "ceiling_client_cpu_us_per_put": cpu_us(ceiling),
        "rust_messages": ours.messages,
        "rust_msgs_per_s": ours_rate,
        "rust_cpu_us_per_msg": ours_cpu,
        "rust_peak_rss_mb": ours.peak_rss as f64 / 1_048_576.0,
        "ceiling_puts_per_s": ceiling_rate,
        "fraction_of_ceiling": ours_rate / ceiling_rate,
        "boto3_messages": theirs.messages,
        "boto3_msgs_per_s": theirs_rate,
        "boto3_cpu_us_per_msg": theirs_cpu,
        "boto3_peak_rss_mb": theirs.peak_rss as f64 / 1_048_576.0,
        "speedup_msgs_per_s": ours_rate / theirs_rate,
        "msgs_per_cpu_second_ratio": theirs_cpu / ours_cpu.max(1e-9),
    })
}

fn f(row: &Value, key: &str) -> f64 {
    row[key].as_f64().unwrap_or(f64::NAN)
}

pub fn throughput_table(rows: &[Value]) {
    println!("| batch | mean body B | event MB | ours msg/s | ours CPU µs/msg | ours peak RSS MB | ceiling PUT/s | ceiling client CPU µs/PUT | ours / ceiling | boto3 msg/s | boto3 CPU µs/msg | boto3 peak RSS MB | speed-up | msgs per CPU-s vs boto3 |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {:.2} | {:.0} | {:.1} | {:.1} | {:.0} | {:.1} | {:.2} | {:.0} | {:.0} | {:.1} | {:.1}x | {:.1}x |",
            r["batch"].as_str().unwrap_or("?"),
            r["mean_body_bytes"],
            f(r, "event_mb"),
            f(r, "rust_msgs_per_s"),
            f(r, "rust_cpu_us_per_msg"),
            f(r, "rust_peak_rss_mb"),
            f(r, "ceiling_puts_per_s"),
            f(r, "ceiling_client_cpu_us_per_put"),
            f(r, "fraction_of_ceiling"),
            f(r, "boto3_msgs_per_s"),
            f(r, "boto3_cpu_us_per_msg"),
            f(r, "boto3_peak_rss_mb"),
            f(r, "speedup_msgs_per_s"),
            f(r, "msgs_per_cpu_second_ratio"),
        );
    }
}

/// The rows of [`crate::breakdown::row`] (where floor and best are defined).
pub fn breakdown_table(rows: &[Value]) {
    println!("| batch | SQS event µs | validate µs | document + key µs | gzip µs | SDK PutObject µs | sum µs | ours measured µs | rest µs | floor (event + gzip + PUT) µs | boto3 / 10 µs | best vs boto3 per CPU-s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1}x |",
            r["batch"].as_str().unwrap_or("?"),
            f(r, "event_us"),
            f(r, "validate_us"),
            f(r, "document_us"),
            f(r, "gzip_us"),
            f(r, "sdk_put_us"),
            f(r, "steps_plus_put_us"),
            f(r, "rust_cpu_us_per_msg"),
            f(r, "rest_us"),
            f(r, "floor_us"),
            f(r, "boto3_tenth_us"),
            f(r, "best_vs_boto3"),
        );
    }
}

pub fn sts_table(rows: &[Value]) {
    println!("| destinations | messages | STS calls, first batch | STS calls, next 99 batches | per 10,000 messages | one per destination |");
    println!("|---:|---:|---:|---:|---:|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r["destinations"],
            r["messages"],
            r["sts_first_batch"],
            r["sts_other_99_batches"],
            r["sts_per_10000_messages"],
            if r["target_met"] == true { "yes" } else { "NO" }
        );
    }
}

pub fn memory_table(rows: &[Value]) {
    println!("| function | records | staged body | wall ms | peak RSS MB |");
    println!("|---|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | 1 MB | {} | {:.1} |",
            r["subject"].as_str().unwrap_or("?"),
            r["records"],
            r["wall_ms"],
            f(r, "peak_rss_mb")
        );
    }
}

pub fn cold_start_table(rows: &[Value]) {
    println!("| function | median ms | p90 ms | max ms | stripped binary |");
    println!("|---|---:|---:|---:|---:|");
    for r in rows {
        let size = r["stripped_binary_bytes"]
            .as_u64()
            .map_or("-".to_owned(), |b| {
                format!("{:.1} MB", b as f64 / 1_048_576.0)
            });
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {} |",
            r["function"].as_str().unwrap_or("?"),
            f(r, "median_ms"),
            f(r, "p90_ms"),
            f(r, "max_ms"),
            size
        );
    }
}

/// Prices (us-east-1, on-demand): Lambda arm64 per GB-second and per
/// request, S3 Standard per PUT, Firehose Direct PUT per GB ingested, which
/// bills each record rounded up to 5 KB.
const LAMBDA_ARM_GB_SECOND: f64 = 0.000_013_333_4;
const LAMBDA_REQUEST: f64 = 0.000_000_2;
const S3_PUT: f64 = 0.005 / 1000.0;
const FIREHOSE_GB: f64 = 0.029;
/// Lambda allots one vCPU at 1,769 MB and CPU in proportion below it, so a
/// CPU-bound second costs 1,769/1,024 GB-seconds at any memory size up to it.
const GB_SECONDS_PER_CPU_SECOND: f64 = 1769.0 / 1024.0;
/// Records per invocation the template configures (BatchSize).
const BATCH: f64 = 100.0;

pub fn cost_table(results: &Map<String, Value>) -> Value {
    let rows = results["throughput"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    println!("| batch | ours Lambda $/M msgs | boto3 Lambda $/M msgs | customer S3 PUT $/M msgs | Firehose ingest $/M msgs |");
    println!("|---|---:|---:|---:|---:|");
    let mut out = Vec::new();
    for r in &rows {
        let lambda = |cpu_us: f64| {
            cpu_us * 1e-6 * GB_SECONDS_PER_CPU_SECOND * LAMBDA_ARM_GB_SECOND * 1e6
                + LAMBDA_REQUEST * 1e6 / BATCH
        };
        let ours = lambda(f(r, "rust_cpu_us_per_msg"));
        let theirs = lambda(f(r, "boto3_cpu_us_per_msg"));
        let s3 = S3_PUT * 1e6;
        let body_bytes: f64 = match r["records"].as_u64() {
            Some(10_000) => 512.0,
            Some(90) => 65536.0,
            _ => 8192.0,
        };
        let firehose = (body_bytes / 5120.0).ceil() * 5120.0 / 1_073_741_824.0 * FIREHOSE_GB * 1e6;
        println!(
            "| {} | ${:.2} | ${:.2} | ${:.2} | ${:.2} |",
            r["batch"].as_str().unwrap_or("?"),
            ours,
            theirs,
            s3,
            firehose
        );
        out.push(json!({"batch": r["batch"], "rust_lambda_usd_per_million": ours, "boto3_lambda_usd_per_million": theirs,
            "customer_s3_put_usd_per_million": s3, "firehose_ingest_usd_per_million": firehose}));
    }
    Value::Array(out)
}

/// One shape of the baseline comparison: CPU per message of each run of the
/// baseline build and of ours, and the ratio of their totals.
pub fn baseline_row(shape: &Shape, baseline: &[Run], ours: &[Run]) -> Value {
    let total = |runs: &[Run]| {
        let cpu: f64 = runs.iter().map(|r| r.cpu.as_secs_f64()).sum();
        let messages: usize = runs.iter().map(|r| r.messages).sum();
        cpu * 1e6 / messages.max(1) as f64
    };
    let (before, after) = (total(baseline), total(ours));
    json!({
        "batch": shape.name,
        "baseline_cpu_us_per_msg_runs": baseline.iter().map(cpu_us).collect::<Vec<_>>(),
        "ours_cpu_us_per_msg_runs": ours.iter().map(cpu_us).collect::<Vec<_>>(),
        "baseline_cpu_us_per_msg": before,
        "ours_cpu_us_per_msg": after,
        "ours_over_baseline": after / before.max(1e-9),
    })
}

pub fn baseline_table(rows: &[Value]) {
    println!("| batch | baseline CPU µs/msg (runs) | ours CPU µs/msg (runs) | ours / baseline |");
    println!("|---|---:|---:|---:|");
    let runs = |r: &Value, key: &str| {
        r[key]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|x| format!("{:.1}", x.as_f64().unwrap_or(f64::NAN)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    for r in rows {
        println!(
            "| {} | {:.1} ({}) | {:.1} ({}) | {:.3} |",
            r["batch"].as_str().unwrap_or("?"),
            f(r, "baseline_cpu_us_per_msg"),
            runs(r, "baseline_cpu_us_per_msg_runs"),
            f(r, "ours_cpu_us_per_msg"),
            runs(r, "ours_cpu_us_per_msg_runs"),
            f(r, "ours_over_baseline"),
        );
    }
}

/// S3 Standard's PUT price in us-east-1, per 1,000 requests (the README's
/// cost model): what the customer pays for our writes into their bucket.
const S3_PUT_PER_THOUSAND_USD: f64 = 0.005;

pub fn events_row(label: &str, run: &crate::EventsRun) -> Value {
    let per_million = run.objects as f64 * 1e6 / run.events as f64;
    json!({
        "writing": label,
        "events": run.events,
        "mean_event_bytes": run.mean_event_bytes,
        "objects": run.objects,
        "cpu_us_per_event": run.cpu.as_secs_f64() * 1e6 / run.events as f64,
        "events_per_second": run.events as f64 / run.wall.as_secs_f64(),
        "customer_puts_per_million_events": per_million,
        "customer_put_cost_per_million_events_usd": per_million / 1000.0 * S3_PUT_PER_THOUSAND_USD,
    })
}

pub fn events_table(rows: &[Value]) {
    println!("| writing | events | mean event | objects (PUTs) | CPU µs/event | events/s | customer PUTs per 1M events | customer PUT cost per 1M events |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} B | {} | {:.1} | {:.0} | {:.0} | ${:.4} |",
            r["writing"].as_str().unwrap_or_default(),
            r["events"],
            r["mean_event_bytes"],
            r["objects"],
            r["cpu_us_per_event"].as_f64().unwrap_or_default(),
            r["events_per_second"].as_f64().unwrap_or_default(),
            r["customer_puts_per_million_events"]
                .as_f64()
                .unwrap_or_default(),
            r["customer_put_cost_per_million_events_usd"]
                .as_f64()
                .unwrap_or_default(),
        );
    }
    if let [batched, single] = rows {
        let ratio = |field: &str| {
            single[field].as_f64().unwrap_or_default()
                / batched[field]
                    .as_f64()
                    .unwrap_or(1.0)
                    .max(f64::MIN_POSITIVE)
        };
        println!(
            "\nOne object per event costs {:.1}x the CPU per event and {:.0}x the customer's PUT requests of batched writing (one run).",
            ratio("cpu_us_per_event"),
            ratio("customer_puts_per_million_events")
        );
    }
}

/// The backfill row beside archive-message's own figures of the same run:
/// events batched (the backfill writes events the same way) and messages of
/// each throughput shape.
pub fn backfill_table(row: &Value, results: &Map<String, Value>) {
    println!("| path | records | records/s | CPU µs/record | peak RSS MB |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| run-backfill: {} objects ({:.1} MB, gzip and plain), {} messages + {} events + {} malformed lines | {} | {:.0} | {:.1} | {:.1} |",
        row["manifest_objects"],
        f(row, "manifest_mb"),
        row["messages"],
        row["events"],
        row["malformed"],
        row["records"],
        f(row, "records_per_second"),
        f(row, "cpu_us_per_record"),
        f(row, "peak_rss_mb"),
    );
    let events = results
        .get("events")
        .and_then(Value::as_array)
        .and_then(|rows| rows.first());
    if let Some(events) = events {
        println!(
            "| archive-message: engagement events, batched | {} | {:.0} | {:.1} | – |",
            events["events"],
            f(events, "events_per_second"),
            f(events, "cpu_us_per_event"),
        );
    }
    for shape in results
        .get("throughput")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        println!(
            "| archive-message: messages, {} batches | {} | {:.0} | {:.1} | {:.1} |",
            shape["batch"].as_str().unwrap_or("?"),
            shape["rust_messages"],
            f(shape, "rust_msgs_per_s"),
            f(shape, "rust_cpu_us_per_msg"),
            f(shape, "rust_peak_rss_mb"),
        );
    }
}
