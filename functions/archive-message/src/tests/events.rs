//! Engagement events (CONTRACT sections 2b and 4) through the real handler
//! against the emulator: which objects each destination gets, what they
//! hold, and what a whole or partial redelivery writes. The expected keys
//! are computed here from the contract's text, not by the library's own
//! grouping, so a wrong rule in one cannot hide in the other.

use std::collections::{BTreeMap, BTreeSet};

use stored_messages::ids::{EventType, RecordKind};
use stored_messages::records::event::STANDARD_EVENT_TYPES;
use stored_messages_testkit::StoredObject;

use super::*;

/// One event of the suite: every standard (channel, type) pair in turn,
/// over three UTC hours, some written with a non-UTC offset.
fn engagement_event(project: &str, i: usize) -> Value {
    let pairs: Vec<(&str, &str)> = STANDARD_EVENT_TYPES
        .iter()
        .flat_map(|(channel, types)| types.iter().map(|t| (channel.as_str(), *t)))
        .collect();
    let (channel, event_type) = pairs[i % pairs.len()];
    let (hour, minute, second) = (20 + (i / 7) % 3, i % 60, (i / 60) % 60);
    // Every 7th: the same instant written at -02:00.
    let occurred_at = if i % 7 == 0 {
        format!(
            "2026-11-22T{:02}:{minute:02}:{second:02}.250-02:00",
            hour - 2
        )
    } else {
        format!("2026-11-22T{hour:02}:{minute:02}:{second:02}.250Z")
    };
    let mut event = json!({
        "version": 1, "kind": "event", "org_id": ORG, "project_id": project,
        "event_id": format!("ev-{i:05}"), "channel": channel, "event_type": event_type,
        "occurred_at": occurred_at,
        "recipient": { "email": format!("Person{i}@Example.com"), "user_id": format!("u-{i}") },
        "data": { "url": format!("https://example.com/offer/{i}"), "user_agent": "Mozilla/5.0" },
        "platform_trace": i,
    });
    if !matches!(event_type, "inbound" | "reply") {
        event["message_id"] = json!(format!("m-{i:05}"));
    }
    if i % 4 != 0 {
        event["campaign_id"] = json!(format!("c{}", i % 5));
    }
    event
}

/// The UTC date and hour of an RFC 3339 `occurred_at`.
fn utc_hour(occurred_at: &str) -> (String, String) {
    let at = chrono::DateTime::parse_from_rfc3339(occurred_at)
        .unwrap_or_else(|e| panic!("{occurred_at}: {e}"))
        .with_timezone(&Utc);
    (
        at.format("%Y-%m-%d").to_string(),
        at.format("%H").to_string(),
    )
}

/// What CONTRACT section 4 says one destination holds after `batches`:
/// key → the event ids of that object, in order.
fn expected_objects(
    batches: &[Vec<Value>],
    destination: &Destination,
) -> BTreeMap<String, Vec<String>> {
    let s3 = destination.s3().unwrap();
    let folder = s3
        .folder_path
        .as_ref()
        .map(|f| format!("{f}/"))
        .unwrap_or_default();
    let ext = match s3.compression {
        Compression::Gzip => ".ndjson.gz",
        Compression::None => ".ndjson",
    };
    let mut objects = BTreeMap::new();
    for batch in batches {
        let mut partitions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for record in batch.iter().filter(|r| r["kind"] == "event") {
            let takes = destination.record_kinds.contains(&RecordKind::Event)
                && destination
                    .channels
                    .iter()
                    .any(|c| c.as_str() == record["channel"])
                && destination.event_types.as_ref().is_none_or(|kept| {
                    kept.iter()
                        .any(|t| t.as_str() == record["event_type"].as_str().unwrap())
                });
            if !takes {
                continue;
            }
            let (date, hour) = utc_hour(record["occurred_at"].as_str().unwrap());
            let prefix = format!(
                "{folder}events/channel={}/project={}/event_type={}/date={date}/hour={hour}/",
                record["channel"].as_str().unwrap(),
                record["project_id"].as_str().unwrap(),
                record["event_type"].as_str().unwrap(),
            );
            partitions
                .entry(prefix)
                .or_default()
                .insert(record["event_id"].as_str().unwrap().to_owned());
        }
        for (prefix, ids) in partitions {
            let ids: Vec<String> = ids.into_iter().collect();
            let batch_id = hex::encode(&Sha256::digest(ids.join("\n").as_bytes())[..16]);
            objects.insert(format!("{prefix}{batch_id}{ext}"), ids);
        }
    }
    objects
}

/// An events object's lines, gunzipped when stored compressed.
fn lines(object: &StoredObject) -> Vec<Value> {
    assert_eq!(
        object.content_type.as_deref(),
        Some("application/x-ndjson"),
        "{}",
        object.key
    );
    let gzip = object.content_encoding.as_deref() == Some("gzip");
    let ext = if gzip { ".ndjson.gz" } else { ".ndjson" };
    assert!(object.key.ends_with(ext), "{}", object.key);
    assert!(
        object.decoded().ends_with(b"\n"),
        "{}: every line ends",
        object.key
    );
    object.lines()
}

fn records_of(batch: &[Value]) -> Vec<(String, String)> {
    batch
        .iter()
        .map(|r| {
            let id = r["event_id"].as_str().or(r["message_id"].as_str()).unwrap();
            (format!("sqs-{id}"), r.to_string())
        })
        .collect()
}

/// The three destinations of the suite, all of project `p1`.
struct Three {
    filtered: (Customer, Destination),
    messages_only: (Customer, Destination),
    uncompressed: (Customer, Destination),
}

async fn three(w: &World) -> Three {
    let filtered = w.customer(
        "111122223333",
        "eu-west-1",
        "acme-events-filtered",
        "stored-messages-filtered",
    );
    let messages_only = w.customer(
        "111122223333",
        "eu-west-1",
        "acme-messages-only",
        "stored-messages-messages",
    );
    let uncompressed = w.customer(
        "444455556666",
        "us-east-2",
        "acme-events-plain",
        "stored-messages-plain",
    );
    let d_filtered = w
        .register(&filtered, "p1", |d| {
            d.record_kinds = RecordKind::ALL.to_vec();
            d.event_types = Some(
                ["delivery", "open", "click", "bounce"]
                    .iter()
                    .map(|t| EventType::parse(t).unwrap())
                    .collect(),
            );
            s3_mut(d).layout = Layout::ByDate;
        })
        .await;
    let d_messages = w.register(&messages_only, "p1", |_| {}).await;
    let d_plain = w
        .register(&uncompressed, "p1", |d| {
            d.record_kinds = vec![RecordKind::Event];
            s3_mut(d).folder_path = Some(FolderPath::parse("archive/events").unwrap());
            s3_mut(d).compression = Compression::None;
        })
        .await;
    Three {
        filtered: (filtered, d_filtered),
        messages_only: (messages_only, d_messages),
        uncompressed: (uncompressed, d_plain),
    }
}

#[tokio::test]
async fn five_thousand_events_land_in_exactly_the_contracts_objects_and_a_redelivery_writes_nothing(
) {
    let w = world().await;
    let three = three(&w).await;
    let archiver = w.archiver();

    // 5,000 events and 50 messages, interleaved, in two SQS batches (a
    // batching window fills them up to 10,000). The messages prove that a
    // mixed batch is routed by kind; each costs a write per destination
    // taking messages, and again on the redelivery, so 50 do it (500 were
    // 60% of this test's time).
    const MESSAGES: usize = 50;
    let mut records: Vec<Value> = Vec::new();
    for i in 0..5_000 {
        records.push(engagement_event("p1", i));
        if i % (5_000 / MESSAGES) == 0 {
            records.push(message("p1", &format!("m{i:05}"), "email", i));
        }
    }
    // A repeated event_id in one batch is written once.
    records.insert(3, engagement_event("p1", 1));
    let batches: Vec<Vec<Value>> = records
        .chunks(records.len().div_ceil(2))
        .map(<[Value]>::to_vec)
        .collect();
    assert_eq!(batches.len(), 2);
    for batch in &batches {
        let response = handler::handle(&archiver, sqs_event(&records_of(batch)))
            .await
            .unwrap();
        assert_eq!(failures(&response), Vec::<String>::new());
    }

    let sent: BTreeMap<String, &Value> = records
        .iter()
        .filter(|r| r["kind"] == "event")
        .map(|r| (r["event_id"].as_str().unwrap().to_owned(), r))
        .collect();
    assert_eq!(sent.len(), 5_000);
    for (customer, destination) in [&three.filtered, &three.uncompressed] {
        let expected = expected_objects(&batches, destination);
        let folder = destination.s3().unwrap().folder_path.as_ref();
        let prefix = format!(
            "{}events/",
            folder.map(|f| format!("{f}/")).unwrap_or_default()
        );
        let events = w.emulator.objects(customer, &prefix);
        let all_keys = w
            .emulator
            .keys(&customer.account, &customer.region, &customer.bucket, "");
        let found: BTreeMap<String, Vec<String>> = events
            .iter()
            .map(|o| {
                let lines = lines(o);
                for line in &lines {
                    // Each line is the record as sent plus archived_at.
                    let mut record = line.clone();
                    let archived_at = record.as_object_mut().unwrap().remove("archived_at");
                    assert!(
                        archived_at.is_some_and(|a| a.as_str().is_some_and(|a| a.ends_with('Z')))
                    );
                    assert_eq!(
                        &&record,
                        sent.get(record["event_id"].as_str().unwrap()).unwrap()
                    );
                }
                let ids = lines
                    .iter()
                    .map(|l| l["event_id"].as_str().unwrap().to_owned())
                    .collect();
                (o.key.clone(), ids)
            })
            .collect();
        assert_eq!(found, expected, "{}", customer.bucket);
        let messages = all_keys.len() - events.len();
        let wants_messages = destination.record_kinds.contains(&RecordKind::Message);
        assert_eq!(
            messages,
            if wants_messages { MESSAGES } else { 0 },
            "{}",
            customer.bucket
        );
    }
    // Every event of a kept type reached the filtered destination once.
    let kept = |e: &&&Value| {
        ["delivery", "open", "click", "bounce"].contains(&e["event_type"].as_str().unwrap())
    };
    let expected_filtered: usize = sent.values().filter(kept).count();
    let filtered_lines: usize = expected_objects(&batches, &three.filtered.1)
        .values()
        .map(Vec::len)
        .sum();
    assert_eq!(filtered_lines, expected_filtered);
    let c = &three.messages_only.0;
    let messages_only = w.emulator.keys(&c.account, &c.region, &c.bucket, "");
    assert_eq!(messages_only.len(), MESSAGES);
    assert!(messages_only.iter().all(|k| !k.contains("events/")));

    // Redelivering every whole batch: every write is a 412, nothing new.
    w.emulator.clear_requests();
    for batch in &batches {
        let response = handler::handle(&archiver, sqs_event(&records_of(batch)))
            .await
            .unwrap();
        assert_eq!(failures(&response), Vec::<String>::new());
    }
    let buckets = [
        &three.filtered.0,
        &three.messages_only.0,
        &three.uncompressed.0,
    ];
    let puts: Vec<Value> = buckets.iter().flat_map(|c| w.puts_to(&c.bucket)).collect();
    assert!(!puts.is_empty());
    assert!(
        puts.iter().all(|p| p["status"] == 412),
        "{:?}",
        puts.iter().find(|p| p["status"] != 412)
    );
    assert!(puts.iter().all(|p| header(p, "if-none-match") == Some("*")));
    let objects_after: usize = buckets
        .iter()
        .map(|c| w.emulator.keys(&c.account, &c.region, &c.bucket, "").len())
        .sum();
    let events_objects: usize = [&three.filtered.1, &three.uncompressed.1]
        .iter()
        .map(|d| expected_objects(&batches, d).len())
        .sum();
    assert_eq!(objects_after, events_objects + MESSAGES + MESSAGES);
    println!(
        "events: {} records in {} batches → {events_objects} events objects over 2 destinations; redelivery: {} PUTs, all 412",
        records.len(),
        batches.len(),
        puts.len()
    );
}

#[tokio::test]
async fn after_a_partial_redelivery_every_event_exists_and_the_duplicates_are_exactly_the_retried_ones(
) {
    let w = world().await;
    let three = three(&w).await;
    let archiver = w.archiver();
    let (plain, filtered) = (&three.uncompressed, &three.filtered);

    // Email opens of one hour: one object per destination that takes them.
    let opens: Vec<Value> = (0..60)
        .map(|i| {
            let mut e = engagement_event("p1", 0);
            e["event_id"] = json!(format!("open-{i:03}"));
            e["event_type"] = json!("open");
            e["occurred_at"] = json!(format!("2026-11-22T21:{i:02}:00Z"));
            e
        })
        .collect();
    // And clicks of the same hour, a second object.
    let clicks: Vec<Value> = (0..40)
        .map(|i| {
            let mut e = engagement_event("p1", 0);
            e["event_id"] = json!(format!("click-{i:03}"));
            e["event_type"] = json!("click");
            e["occurred_at"] = json!(format!("2026-11-22T21:{i:02}:30Z"));
            e
        })
        .collect();
    // The uncompressed destination's opens object fails (a 503 every time,
    // through the SDK's retries); its clicks object and the filtered
    // destination's objects land.
    let failing_prefix = format!(
        "/{}/archive/events/events/channel=email/project=p1/event_type=open/",
        plain.0.bucket
    );
    w.emulator.set_faults(json!({ "rules": [
        { "service": "s3", "method": "PUT", "path_prefix": failing_prefix, "action": "status", "status": 503, "code": "SlowDown" }
    ] }));
    let first: Vec<Value> = opens.iter().chain(&clicks).cloned().collect();
    let response = handler::handle(&archiver, sqs_event(&records_of(&first)))
        .await
        .unwrap();
    let retried: BTreeSet<String> = failures(&response).into_iter().collect();
    let open_ids: BTreeSet<String> = opens
        .iter()
        .map(|e| format!("sqs-{}", e["event_id"].as_str().unwrap()))
        .collect();
    assert_eq!(retried, open_ids, "exactly the failed object's records");

    // SQS redelivers them with new events of the same hour: another set, so
    // another object, at both destinations.
    w.emulator.set_faults(json!({ "rules": [] }));
    let fresh: Vec<Value> = (60..70)
        .map(|i| {
            let mut e = opens[0].clone();
            e["event_id"] = json!(format!("open-{i:03}"));
            e
        })
        .collect();
    let second: Vec<Value> = opens.iter().chain(&fresh).cloned().collect();
    let response = handler::handle(&archiver, sqs_event(&records_of(&second)))
        .await
        .unwrap();
    assert_eq!(failures(&response), Vec::<String>::new());

    let every: BTreeSet<String> = first
        .iter()
        .chain(&fresh)
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    let retried_ids: BTreeSet<String> = opens
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    for ((customer, _), duplicates) in [(plain, BTreeSet::new()), (filtered, retried_ids.clone())] {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for object in w.emulator.objects(customer, "") {
            for line in lines(&object) {
                *seen
                    .entry(line["event_id"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
        let present: BTreeSet<String> = seen.keys().cloned().collect();
        assert_eq!(
            present, every,
            "{}: every event at least once",
            customer.bucket
        );
        let twice: BTreeSet<String> = seen
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(twice, duplicates, "{}", customer.bucket);
        assert!(seen.values().all(|n| *n <= 2));
    }
}

/// One Athena statement of `GET /v1/setup`, read the way Athena reads it:
/// where the table is, how its partitions are projected, its columns.
struct Table {
    location: String,
    template: String,
    properties: BTreeMap<String, String>,
    partitions: Vec<String>,
    columns: Vec<String>,
}

/// The Hive string literal at the start of `text` (after its opening
/// quote), backslash escapes read as Hive reads them, and the rest after
/// its closing quote.
fn sql_literal(text: &str) -> (String, &str) {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next().expect("an escaped character").1),
            '\'' => return (out, &text[i + 1..]),
            c => out.push(c),
        }
    }
    panic!("an unterminated string literal")
}

fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

impl Table {
    fn parse(ddl: &str) -> Self {
        let (_, rest) = ddl.split_once("\nLOCATION '").expect("a LOCATION");
        let (location, rest) = sql_literal(rest);
        let mut properties = BTreeMap::new();
        let mut rest = rest.split_once("TBLPROPERTIES (").expect("properties").1;
        while let Some((_, after)) = rest.split_once('\'') {
            let (key, after) = sql_literal(after);
            let after = after.strip_prefix("='").expect("key='value'");
            let (value, after) = sql_literal(after);
            properties.insert(key, value);
            rest = after;
        }
        let columns_text = ddl
            .split_once(" (\n")
            .unwrap()
            .1
            .split_once("\n)\n")
            .unwrap()
            .0;
        let columns = columns_text
            .lines()
            .map(|l| backticked(l)[0].clone())
            .collect();
        let partitions_text = ddl
            .split_once("PARTITIONED BY (")
            .unwrap()
            .1
            .split_once(")\n")
            .unwrap()
            .0;
        let partitions = backticked(partitions_text);
        assert_eq!(properties["projection.enabled"], "true");
        Self {
            location,
            template: properties["storage.location.template"].clone(),
            properties,
            partitions,
            columns,
        }
    }

    /// The partition values of the object at `s3://{bucket}/{key}`, if the
    /// table reads it: under the location, at a prefix the template makes
    /// from values the projections allow.
    fn partition_of(&self, bucket: &str, key: &str) -> Option<BTreeMap<String, String>> {
        let url = format!("s3://{bucket}/{key}");
        url.strip_prefix(&self.location)?;
        let template = self.template.strip_suffix('/').unwrap();
        let segments: Vec<&str> = template.split('/').collect();
        let parts: Vec<&str> = url.split('/').collect();
        // At least one more segment (the file) below the template's prefix.
        if parts.len() <= segments.len() {
            return None;
        }
        let mut values = BTreeMap::new();
        for (pattern, part) in segments.iter().zip(&parts) {
            match pattern.split_once("${") {
                None if pattern == part => {}
                None => return None,
                Some((literal, var)) => {
                    let name = var.strip_suffix('}').unwrap();
                    let value = part.strip_prefix(literal)?;
                    if !self.allows(name, value) {
                        return None;
                    }
                    values.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        let names: Vec<&String> = values.keys().collect();
        let mut declared: Vec<&String> = self.partitions.iter().collect();
        declared.sort();
        assert_eq!(names, declared, "every partition column is in the template");
        Some(values)
    }

    fn allows(&self, column: &str, value: &str) -> bool {
        let setting = |s: &str| self.properties.get(&format!("projection.{column}.{s}"));
        match setting("type").map(String::as_str) {
            Some("enum") => setting("values").unwrap().split(',').any(|v| v == value),
            Some("injected") => !value.is_empty(),
            Some("date") => {
                assert_eq!(setting("format").unwrap(), "yyyy-MM-dd");
                let (start, end) = setting("range").unwrap().split_once(',').unwrap();
                assert_eq!(end, "NOW");
                chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok()
                    && value >= start
                    && value <= Utc::now().format("%Y-%m-%d").to_string().as_str()
            }
            Some("integer") => {
                let (low, high) = setting("range").unwrap().split_once(',').unwrap();
                let digits: usize = setting("digits").unwrap().parse().unwrap();
                value.len() == digits
                    && value
                        .parse::<u32>()
                        .is_ok_and(|n| n >= low.parse().unwrap() && n <= high.parse().unwrap())
            }
            other => panic!("{column}: no projection ({other:?})"),
        }
    }
}

/// Every document of an archived object: one for a message, a line each
/// for events; gunzipped when the key says `.gz`, as Athena decides.
fn documents(object: &StoredObject) -> Vec<Value> {
    let gzip = object.key.ends_with(".gz");
    assert_eq!(
        gzip,
        object.content_encoding.as_deref() == Some("gzip"),
        "{}",
        object.key
    );
    object.lines()
}

#[tokio::test]
async fn the_athena_tables_of_setup_read_exactly_the_objects_archived() {
    let w = world().await;
    let dated = w.customer(
        "111122223333",
        "eu-west-1",
        "acme-athena-dated",
        "stored-messages-dated",
    );
    let by_recipient = w.customer(
        "111122223333",
        "eu-west-1",
        "acme-athena-recipient",
        "stored-messages-recipient",
    );
    // A folder with a quote: the statements must escape it.
    let folder = "it's/archive";
    let d_dated = w
        .register(&dated, "p1", |d| {
            d.record_kinds = RecordKind::ALL.to_vec();
            s3_mut(d).layout = Layout::ByDate;
            s3_mut(d).folder_path = Some(FolderPath::parse(folder).unwrap());
        })
        .await;
    let d_recipient = w
        .register(&by_recipient, "p1", |d| {
            d.record_kinds = RecordKind::ALL.to_vec();
            s3_mut(d).compression = Compression::None;
        })
        .await;
    let archiver = w.archiver();
    let channels = ["email", "sms", "push", "in_app", "web_push", "whatsapp"];
    let mut records: Vec<Value> = (0..60)
        .map(|i| message("p1", &format!("m{i:03}"), channels[i % 6], i))
        .collect();
    records.extend((0..120).map(|i| engagement_event("p1", i)));
    let response = handler::handle(&archiver, sqs_event(&records_of(&records)))
        .await
        .unwrap();
    assert_eq!(failures(&response), Vec::<String>::new());
    // A connection probe is in each bucket too; no table may read it.
    for (customer, d) in [(&dated, &d_dated), (&by_recipient, &d_recipient)] {
        let key =
            stored_messages::s3::keys::probe_key(d.s3().unwrap().folder_path.as_ref(), Utc::now());
        w.emulator.aws(&customer.account, &customer.region, json!([{ "service": "s3", "op": "put_object", "args": { "Bucket": customer.bucket, "Key": key, "Body": "{}" } }]));
    }

    let principal = w.settings.vendor_principal_arn.clone().unwrap_or_default();
    for (customer, d, layout) in [
        (&dated, &d_dated, "by_date"),
        (&by_recipient, &d_recipient, "by_recipient"),
    ] {
        let query = stored_messages::setup::SetupQuery {
            bucket: Some(d.s3().unwrap().bucket.clone()),
            folder_path: d.s3().unwrap().folder_path.clone(),
            kms_key_arn: None,
        };
        let setup =
            stored_messages::setup::render(&w.external_id, &principal, "stored-messages", &query);
        let messages = Table::parse(setup["athena"][layout]["messages"].as_str().unwrap());
        let events = Table::parse(setup["athena"][layout]["events"].as_str().unwrap());
        let objects = w.emulator.objects(customer, "");
        let (mut read_messages, mut read_events) = (0, 0);
        for object in &objects {
            let as_message = messages.partition_of(&customer.bucket, &object.key);
            let as_event = events.partition_of(&customer.bucket, &object.key);
            if object.key.contains("_stored-messages/") {
                assert!(as_message.is_none() && as_event.is_none(), "{}", object.key);
                continue;
            }
            let is_event = object.key.contains("events/");
            let (table, partition) = match (is_event, as_message, as_event) {
                (false, Some(p), None) => (&messages, p),
                (true, None, Some(p)) => (&events, p),
                other => panic!("{}: read by the wrong tables: {other:?}", object.key),
            };
            for doc in documents(object) {
                // The key's partition values are the document's own.
                assert_eq!(doc["channel"], partition["channel"].as_str());
                assert_eq!(doc["project_id"], partition["project"].as_str());
                if let Some(event_type) = partition.get("event_type") {
                    assert_eq!(doc["event_type"], event_type.as_str());
                }
                if let (Some(date), Some(hour)) = (partition.get("date"), partition.get("hour")) {
                    let at = doc.get("occurred_at").or(doc.get("sent_at")).unwrap();
                    assert_eq!(
                        &utc_hour(at.as_str().unwrap()),
                        &(date.clone(), hour.clone())
                    );
                }
                // Every column the table declares is a field of the document
                // (optional ones may be absent, as the records allow).
                for column in &table.columns {
                    let optional =
                        ["campaign_id", "message_id", "data", "kind"].contains(&column.as_str());
                    assert!(
                        optional || doc.get(column).is_some(),
                        "{column} in {}",
                        object.key
                    );
                }
                if is_event {
                    read_events += 1;
                } else {
                    read_messages += 1;
                }
            }
        }
        assert_eq!((read_messages, read_events), (60, 120), "{layout}");
    }
}
