//! The engagement event record kind (CONTRACT section 2b), and how a
//! batch's events become objects (section 4): one NDJSON object per
//! destination, channel, project, event type and UTC hour, named by the
//! set of events it holds.
//!
//! Why batched: one object per event would cost the customer a `PutObject`
//! per event ($5 per million at S3 Standard's $0.005 per 1,000 requests)
//! and hit S3's 3,500 PUT/s per prefix on a busy hour. Why named by the set:
//! the same events always give the same key, so a redelivered batch is a
//! `412` and nothing is written twice.

use std::ops::Range;

use chrono::{DateTime, Timelike, Utc};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::json::{self, field_str, is_object, optional_str, Envelope, Fields, Malformed};
use crate::ids::{
    CampaignId, Channel, EventId, EventType, InvalidField, MessageId, OrgId, ProjectId,
};

/// CONTRACT section 2b's standard event types, by channel. Any other type
/// of the right shape is archived as it is; these are the ones the Athena
/// table of [`crate::setup`] knows without being told.
pub const STANDARD_EVENT_TYPES: [(Channel, &[&str]); 6] = [
    (
        Channel::Email,
        &[
            "send",
            "delivery",
            "reject",
            "rendering_failure",
            "delivery_delay",
            "bounce",
            "complaint",
            "open",
            "click",
            "unsubscribe",
        ],
    ),
    (
        Channel::Sms,
        &["send", "delivery", "failure", "inbound", "opt_out"],
    ),
    (Channel::Push, &["send", "delivery", "open", "bounce"]),
    (Channel::InApp, &["impression", "click", "dismiss"]),
    (Channel::WebPush, &["send", "delivery", "click"]),
    (
        Channel::Whatsapp,
        &["send", "delivery", "read", "failure", "reply"],
    ),
];

/// Every standard event type once, in the order first listed.
pub fn standard_event_types() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = Vec::new();
    for (_, types) in STANDARD_EVENT_TYPES {
        for t in types {
            if !all.contains(t) {
                all.push(t);
            }
        }
    }
    all
}

/// The bytes `"archived_at":"2026-11-22T23:40:02.318Z",` adds to a line:
/// the timestamp is always this wide (milliseconds, `Z`), so a line's
/// size is known from the body alone.
const ARCHIVED_AT_BYTES: usize = 41;

/// A valid engagement event.
#[derive(Debug, Clone)]
pub struct EngagementEvent {
    pub org_id: OrgId,
    pub project_id: ProjectId,
    pub event_id: EventId,
    /// Absent for an event no sent message caused (an inbound SMS, a reply).
    pub message_id: Option<MessageId>,
    pub channel: Channel,
    pub event_type: EventType,
    pub occurred_at: DateTime<Utc>,
    pub campaign_id: Option<CampaignId>,
    /// The event as sent, every field kept: the archived line is the record.
    fields: Fields,
    /// The body's size as received, in bytes.
    size: usize,
}

impl EngagementEvent {
    /// Parses one SQS body under CONTRACT section 2b: the rules of section
    /// 2 for the fields it shares with a message, then the event's own.
    ///
    /// # Errors
    /// [`Malformed`] naming the field and rule that refused it, never the value.
    pub fn parse(body: &[u8]) -> Result<Self, Malformed> {
        let fields = json::fields(body)?;
        let Envelope {
            org_id,
            project_id,
            channel,
            campaign_id,
            ..
        } = Envelope::parse(&fields)?;
        if optional_str(&fields, "kind")?.as_deref() != Some("event") {
            return Err(InvalidField::new("kind", "must be event").into());
        }
        let event_id = EventId::parse(&field_str(&fields, "event_id")?)?;
        let message_id = optional_str(&fields, "message_id")?
            .map(|m| MessageId::parse(&m))
            .transpose()?;
        let event_type = EventType::parse(&field_str(&fields, "event_type")?)?;
        let occurred_at = json::timestamp(&fields, "occurred_at")?;
        match fields.get("data") {
            None => {}
            Some(data) if data.get() == "null" || is_object(data) => {}
            Some(_) => return Err(InvalidField::new("data", "must be a JSON object").into()),
        }
        Ok(Self {
            org_id,
            project_id,
            event_id,
            message_id,
            channel,
            event_type,
            occurred_at,
            campaign_id,
            fields,
            size: body.len(),
        })
    }

    /// Appends the event's archived line to `out`: the record as sent with
    /// `archived_at` added, on one line, and the `\n` that ends it.
    pub fn append_line(&self, archived_at: &RawValue, out: &mut Vec<u8>) {
        let start = out.len();
        json::write_archived(&self.fields, None, archived_at, out);
        // A body sent over several lines keeps its whitespace in the raw
        // field texts; an NDJSON line may not break.
        if let std::borrow::Cow::Owned(line) = json::one_line(&out[start..]) {
            out.truncate(start);
            out.extend_from_slice(&line);
        }
        out.push(b'\n');
    }

    /// At most the bytes of this event's line, newline included: the body
    /// as received plus `archived_at`. Known before any line is built, so
    /// a group is split the same way on every delivery.
    pub fn line_bytes(&self) -> usize {
        self.size + ARCHIVED_AT_BYTES + 1
    }
}

/// The NDJSON body of an events object: one line per event, in order, each
/// with the same `archived_at`.
pub fn ndjson(events: &[&EngagementEvent], archived_at: DateTime<Utc>) -> Vec<u8> {
    let archived_at = json::archived_at(archived_at);
    let mut out = Vec::with_capacity(events.iter().map(|e| e.line_bytes()).sum());
    for event in events {
        event.append_line(&archived_at, &mut out);
    }
    out
}

impl EngagementEvent {
    /// The part of its object's key the event shares with the others of
    /// the object (CONTRACT section 4).
    pub fn partition(&self) -> EventPartition<'_> {
        EventPartition {
            org_id: &self.org_id,
            project_id: &self.project_id,
            channel: self.channel,
            event_type: &self.event_type,
            hour: start_of_hour(self.occurred_at),
        }
    }
}

/// The UTC hour `at` falls in. Built from its fields rather than with
/// `duration_trunc`, which works in nanoseconds since 1970 and so fails
/// outside about 1677..2262, years RFC 3339 allows.
fn start_of_hour(at: DateTime<Utc>) -> DateTime<Utc> {
    at.with_minute(0)
        .and_then(|at| at.with_second(0))
        .and_then(|at| at.with_nanosecond(0))
        .unwrap_or(at)
}

/// What the events of one object share: everything of its key but the
/// `batch_id` (CONTRACT section 4). The tenant is part of it too: two orgs'
/// events never share an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventPartition<'r> {
    pub org_id: &'r OrgId,
    pub project_id: &'r ProjectId,
    pub channel: Channel,
    pub event_type: &'r EventType,
    /// `occurred_at` truncated to its UTC hour.
    pub hour: DateTime<Utc>,
}

/// The most one events object holds; a group over either bound is split
/// (CONTRACT section 4; the README's "Engagement events"). 5,000 lines keep
/// a failed write's retry to a few thousand records and an object quick to
/// read; 4 MiB, well above a busy hour's group from one SQS batch (Lambda's
/// payload is 6 MB), bounds the memory one object takes to build, for the
/// large groups a backfill makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectBounds {
    pub max_lines: usize,
    /// Uncompressed bytes, counted by [`EngagementEvent::line_bytes`].
    pub max_bytes: usize,
}

impl ObjectBounds {
    pub const DEFAULT: Self = Self {
        max_lines: 5_000,
        max_bytes: 4 * 1024 * 1024,
    };

    /// One object per event: what the bench compares batching with.
    pub const ONE_PER_EVENT: Self = Self {
        max_lines: 1,
        max_bytes: usize::MAX,
    };
}

impl Default for ObjectBounds {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The ranges of `events` (sorted by `event_id`, each id once) that become
/// one object each: filled in order up to either bound, so the same set of
/// events always splits the same way. An event larger than `max_bytes`
/// alone is an object of its own.
pub fn split(events: &[&EngagementEvent], bounds: ObjectBounds) -> Vec<Range<usize>> {
    let max_lines = bounds.max_lines.max(1);
    let mut ranges = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, event) in events.iter().enumerate() {
        let line = event.line_bytes();
        let full = i - start >= max_lines || bytes.saturating_add(line) > bounds.max_bytes;
        if i > start && full {
            ranges.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes = bytes.saturating_add(line);
    }
    if start < events.len() {
        ranges.push(start..events.len());
    }
    ranges
}

/// An events object's `batch_id` (CONTRACT section 4): the lowercase hex of
/// the first 16 bytes of the SHA-256 of its sorted `event_id`s joined by
/// `\n`. `sorted_ids` must be sorted and distinct.
pub fn batch_id<'a>(sorted_ids: impl IntoIterator<Item = &'a EventId>) -> String {
    let mut hasher = Sha256::new();
    for (i, id) in sorted_ids.into_iter().enumerate() {
        if i > 0 {
            hasher.update(b"\n");
        }
        hasher.update(id.as_str().as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::{json, Value};

    use super::*;

    pub(crate) fn sample() -> Value {
        json!({
            "version": 1,
            "kind": "event",
            "org_id": "acme",
            "project_id": "12345",
            "event_id": "ev-01JD7QH9ZK8M3T2R6W4Y5X1A0B",
            "message_id": "9c438a20d26e4e9f8ad4edea23f811cd",
            "channel": "email",
            "event_type": "click",
            "occurred_at": "2026-11-22T23:40:02.318Z",
            "campaign_id": "1234567",
            "recipient": { "email": "Ada@Example.com", "user_id": "u-1" },
            "data": { "url": "https://example.com/offer", "ip": "203.0.113.7" },
            "platform_trace": "kept"
        })
    }

    pub(crate) fn event(v: &Value) -> EngagementEvent {
        EngagementEvent::parse(v.to_string().as_bytes()).unwrap()
    }

    fn parse(v: &Value) -> Result<EngagementEvent, Malformed> {
        EngagementEvent::parse(v.to_string().as_bytes())
    }

    fn with(id: &str) -> EngagementEvent {
        let mut v = sample();
        v["event_id"] = json!(id);
        event(&v)
    }

    #[test]
    fn a_full_event_parses() {
        let e = event(&sample());
        assert_eq!(e.event_id.as_str(), "ev-01JD7QH9ZK8M3T2R6W4Y5X1A0B");
        assert_eq!(e.event_type.as_str(), "click");
        assert_eq!(e.channel, Channel::Email);
        assert_eq!(
            e.message_id.as_ref().map(MessageId::as_str),
            Some("9c438a20d26e4e9f8ad4edea23f811cd")
        );
        assert_eq!(e.occurred_at.to_rfc3339(), "2026-11-22T23:40:02.318+00:00");
        let p = e.partition();
        assert_eq!(p.hour.to_rfc3339(), "2026-11-22T23:00:00+00:00");
        // Far outside the nanosecond range of chrono's duration rounding.
        for (at, hour) in [
            ("2300-01-01T00:12:00Z", "2300-01-01T00:00:00+00:00"),
            ("1600-05-05T05:59:59.999-01:00", "1600-05-05T06:00:00+00:00"),
        ] {
            let mut v = sample();
            v["occurred_at"] = json!(at);
            assert_eq!(event(&v).partition().hour.to_rfc3339(), hour);
        }
    }

    #[test]
    fn each_rule_of_section_2b_is_enforced() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("version", json!(2), "version"),
            ("kind", json!("message"), "kind"),
            ("org_id", json!("a/b"), "org_id"),
            ("project_id", json!(""), "project_id"),
            ("event_id", json!(".."), "event_id"),
            ("event_id", json!("a/b"), "event_id"),
            ("event_id", json!(null), "event_id"),
            ("event_id", json!(7), "event_id"),
            ("message_id", json!("a/b"), "message_id"),
            ("message_id", json!(5), "message_id"),
            ("channel", json!("fax"), "channel"),
            ("event_type", json!("Click"), "event_type"),
            ("event_type", json!("1st"), "event_type"),
            ("event_type", json!("a-b"), "event_type"),
            ("event_type", json!("e".repeat(65)), "event_type"),
            ("event_type", json!(null), "event_type"),
            ("occurred_at", json!("yesterday"), "occurred_at"),
            ("occurred_at", json!("2026-11-22 23:40:02"), "occurred_at"),
            ("campaign_id", json!("a b"), "campaign_id"),
            ("recipient", json!({ "phone": "+15551234567" }), "recipient"),
            ("recipient", json!("ada@example.com"), "recipient"),
            ("data", json!("text"), "data"),
            ("data", json!([1]), "data"),
        ];
        for (field, value, expect) in cases {
            let mut v = sample();
            v[field] = value.clone();
            match parse(&v) {
                Err(Malformed::Field(f)) => assert_eq!(f.field, expect, "{field}={value}"),
                other => panic!("{field}={value}: {other:?}"),
            }
        }
        for required in ["event_id", "event_type", "occurred_at", "recipient", "kind"] {
            let mut v = sample();
            v.as_object_mut().unwrap().remove(required);
            assert!(parse(&v).is_err(), "{required} is required");
        }
    }

    #[test]
    fn optional_fields_may_be_absent_or_null_and_other_types_are_kept() {
        for field in ["message_id", "campaign_id", "data"] {
            let mut v = sample();
            v.as_object_mut().unwrap().remove(field);
            assert!(parse(&v).is_ok(), "{field} absent");
            v[field] = Value::Null;
            assert!(parse(&v).is_ok(), "{field} null");
        }
        let mut v = sample();
        v["event_type"] = json!("custom_survey_answer");
        v["channel"] = json!("whatsapp");
        assert_eq!(
            parse(&v).unwrap().event_type.as_str(),
            "custom_survey_answer"
        );
    }

    #[test]
    fn strict_json_applies_to_events_as_to_messages() {
        for bad in [r#""\ud800""#, "1e400"] {
            let mut v = sample();
            v["data"] = json!({ "x": "PLACEHOLDER" });
            let body = v.to_string().replace(r#""PLACEHOLDER""#, bad);
            assert!(matches!(
                EngagementEvent::parse(body.as_bytes()),
                Err(Malformed::Json { .. })
            ));
        }
        assert_eq!(
            EngagementEvent::parse(b"[1]").err(),
            Some(Malformed::NotAnObject)
        );
    }

    #[test]
    fn a_line_is_the_event_as_sent_plus_archived_at_on_one_line() {
        let pretty = serde_json::to_string_pretty(&sample()).unwrap();
        assert!(pretty.contains('\n'));
        let e = EngagementEvent::parse(pretty.as_bytes()).unwrap();
        let at = serde_json::value::to_raw_value("2026-11-23T01:02:03.004Z").unwrap();
        let mut out = b"previous\n".to_vec();
        e.append_line(&at, &mut out);
        let line = &out[b"previous\n".len()..];
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        assert!(line.ends_with(b"\n"));
        let mut expected = sample();
        expected["archived_at"] = json!("2026-11-23T01:02:03.004Z");
        assert_eq!(serde_json::from_slice::<Value>(line).unwrap(), expected);
        assert!(
            line.len() <= e.line_bytes(),
            "{} > {}",
            line.len(),
            e.line_bytes()
        );
        // A compact body's line is exactly the bound.
        let compact = event(&sample());
        let mut out = Vec::new();
        compact.append_line(&at, &mut out);
        assert_eq!(out.len(), compact.line_bytes());
    }

    #[test]
    fn batch_id_is_the_contracts_hash_of_the_sorted_ids() {
        let ids: Vec<EventId> = ["a", "b", "c"]
            .iter()
            .map(|s| EventId::parse(s).unwrap())
            .collect();
        let expected = hex::encode(&Sha256::digest(b"a\nb\nc")[..16]);
        assert_eq!(batch_id(&ids), expected);
        assert_eq!(batch_id(&ids).len(), 32);
        assert_ne!(batch_id(&ids[..2]), expected);
        assert_eq!(
            batch_id(&ids[..1]),
            hex::encode(&Sha256::digest(b"a")[..16]),
            "no trailing newline"
        );
    }

    #[test]
    fn a_group_splits_at_either_bound_the_same_way_every_time() {
        let events: Vec<EngagementEvent> = (0..10).map(|i| with(&format!("ev-{i:02}"))).collect();
        let refs: Vec<&EngagementEvent> = events.iter().collect();
        let line = refs[0].line_bytes();
        let by_lines = ObjectBounds {
            max_lines: 4,
            max_bytes: usize::MAX,
        };
        assert_eq!(split(&refs, by_lines), [0..4, 4..8, 8..10]);
        let by_bytes = ObjectBounds {
            max_lines: 100,
            max_bytes: 3 * line,
        };
        assert_eq!(split(&refs, by_bytes), [0..3, 3..6, 6..9, 9..10]);
        assert_eq!(split(&refs, ObjectBounds::DEFAULT), vec![0..refs.len()]);
        assert_eq!(split(&refs, ObjectBounds::ONE_PER_EVENT).len(), 10);
        let tiny = ObjectBounds {
            max_lines: 100,
            max_bytes: 1,
        };
        assert_eq!(
            split(&refs, tiny).len(),
            10,
            "an event over the bound is alone"
        );
        assert!(split(&[], ObjectBounds::DEFAULT).is_empty());
    }

    #[test]
    fn the_standard_types_are_listed_once() {
        let all = standard_event_types();
        assert_eq!(all.len(), 17);
        for t in &all {
            assert!(EventType::parse(t).is_ok(), "{t}");
        }
    }
}
