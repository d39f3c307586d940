//! A sending platform's export of its message store, as a backfill reads
//! it (CONTRACT section 5): NDJSON lines of messages (section 2) and
//! engagement events (section 2b), in time order as an export lists them.
//! Deterministic: line `i` is always the same, so tests can name the keys
//! it lands at.

use std::io::Write;

use serde_json::json;

/// The first `sent_at` of an export: message `i` is sent `i` × 7 s later.
pub const EXPORT_START: &str = "2026-11-01T00:00:00Z";

fn at(seconds: u64) -> String {
    let start = chrono::DateTime::parse_from_rfc3339(EXPORT_START).expect("the export start");
    (start + chrono::Duration::seconds(seconds as i64))
        .to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Message `i` of `org`/`project` on `channel`: id `m-{i:06}`, recipient
/// `person{i}@example.com`.
pub fn message_line(org: &str, project: &str, i: u64, channel: &str) -> String {
    json!({
        "version": 1, "org_id": org, "project_id": project, "message_id": format!("m-{i:06}"),
        "channel": channel, "sent_at": at(i * 7), "campaign_id": format!("c{}", i % 4),
        "recipient": { "email": format!("person{i}@example.com"), "user_id": format!("u-{i}") },
        "message": { "subject": format!("Order {i} shipped"), "html_body": format!("<p>Your order {i} is on its way.</p>") },
    })
    .to_string()
}

/// Engagement event `i`: id `ev-{i:06}` about message `m-{i:06}`, one of
/// `delivery`, `open`, `click` in turn, `i` × 2 s after the export start.
pub fn event_line(org: &str, project: &str, i: u64, channel: &str) -> String {
    let event_type = ["delivery", "open", "click"][(i % 3) as usize];
    json!({
        "version": 1, "kind": "event", "org_id": org, "project_id": project,
        "event_id": format!("ev-{i:06}"), "message_id": format!("m-{i:06}"), "channel": channel,
        "event_type": event_type, "occurred_at": at(i * 2),
        "recipient": { "email": format!("person{i}@example.com") },
        "data": { "user_agent": "Mozilla/5.0", "ip": format!("203.0.113.{}", i % 250) },
    })
    .to_string()
}

/// Lines joined as NDJSON (each ended by a newline).
pub fn ndjson<I: IntoIterator<Item = String>>(lines: I) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

/// `bytes` gzip-compressed, as a `.ndjson.gz` export object.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

/// The 100,000-record manifest of the backfill's scale test and bench:
/// four objects (two gzip, one of 40,000 lines spanning many chunks), a
/// message every 40th line (email and sms) and events in between, and in
/// the last object 20 lines that are malformed, another org's or another
/// project's.
pub struct Manifest {
    /// `(key under the prefix, body as staged)`.
    pub objects: Vec<(String, Vec<u8>)>,
    pub lines: u64,
    /// Lines that are not a valid record of `org`'s `project`.
    pub malformed: u64,
    /// Every valid message's id and event's id: what must land, once each.
    pub messages: std::collections::BTreeSet<String>,
    pub events: std::collections::BTreeSet<String>,
    /// Every 97th line, for the leak audit's recorded inputs.
    pub sample: Vec<String>,
}

impl Manifest {
    pub fn hundred_thousand(org: &str, project: &str, prefix: &str) -> Self {
        let mut m = Manifest {
            objects: Vec::new(),
            lines: 0,
            malformed: 0,
            messages: Default::default(),
            events: Default::default(),
            sample: Vec::new(),
        };
        let mut next = 0u64;
        for (key, count, gzipped) in [
            ("part-0000.ndjson.gz", 30_000u64, true),
            ("part-0001.ndjson", 40_000, false),
            ("part-0002.ndjson.gz", 25_000, true),
            ("part-0003.ndjson", 5_000, false),
        ] {
            let mut lines = Vec::with_capacity(count as usize);
            for n in 0..count {
                let i = next;
                next += 1;
                let line = if key == "part-0003.ndjson" && n % 250 == 0 {
                    m.malformed += 1;
                    match n % 1000 {
                        0 => format!("{{\"version\": 1, \"org_id\": \"{org}\""),
                        250 => message_line("globex-other-org", project, i, "email"),
                        500 => event_line(org, "another-project", i, "email"),
                        _ => "not a record".to_owned(),
                    }
                } else if i % 40 == 0 {
                    m.messages.insert(format!("m-{i:06}"));
                    message_line(org, project, i, if i % 80 == 0 { "email" } else { "sms" })
                } else {
                    m.events.insert(format!("ev-{i:06}"));
                    event_line(org, project, i, "email")
                };
                if i % 97 == 0 {
                    m.sample.push(line.clone());
                }
                lines.push(line);
            }
            m.lines += count;
            let text = ndjson(lines);
            let body = if gzipped { gzip(&text) } else { text };
            m.objects.push((format!("{prefix}{key}"), body));
        }
        m
    }
}
