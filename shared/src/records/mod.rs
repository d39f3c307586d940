//! The kinds of record on the archive queue: messages (CONTRACT section 2)
//! and engagement events (section 2b). The pipeline in [`crate::archive`]
//! sees a record only through what every kind has: a tenant, a project,
//! the destinations that take it, and the [`Group`] that makes it part of
//! an object. A kind provides:
//!
//! | what | where |
//! |---|---|
//! | parsing and its rules, with [`Malformed`] for what is refused | its module ([`message`], [`event`]); what they share in `json` |
//! | which destinations take it | [`Record::goes_to`] |
//! | how its records become objects | [`group`] |
//! | each object's key per destination kind | [`crate::destination::Target`] |
//! | the object's contents and how it is written | `crate::archive` (one arm per [`Group`] variant) |

pub mod event;
mod json;
pub mod message;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::credentials::ExternalId;
use crate::destination::Destination;
use crate::ids::{EventId, InvalidField, OrgId, ProjectId, RecordKind};
use crate::s3::BucketName;

pub use event::{EngagementEvent, EventPartition, ObjectBounds};
pub use json::Malformed;

/// One parsed record of the queue, by kind.
#[derive(Debug, Clone)]
pub enum Record {
    /// A sent message (CONTRACT section 2).
    Message(message::ArchiveRequest),
    /// What happened to a sent message (CONTRACT section 2b).
    Event(EngagementEvent),
}

impl Record {
    /// Parses one SQS body by its `kind` (absent means `message`).
    /// `staging` is `STAGING_BUCKET`, the one bucket a `message_ref` may name.
    ///
    /// # Errors
    /// [`Malformed`] naming the field and rule that refused it, never the value.
    pub fn parse(body: &[u8], staging: Option<&BucketName>) -> Result<Self, Malformed> {
        match kind(body)?.as_deref() {
            None | Some("message") => {
                message::ArchiveRequest::parse(body, staging).map(Record::Message)
            }
            Some("event") => EngagementEvent::parse(body).map(Record::Event),
            Some(_) => Err(InvalidField::new("kind", "must be message or event").into()),
        }
    }

    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Message(_) => RecordKind::Message,
            Record::Event(_) => RecordKind::Event,
        }
    }

    pub fn org_id(&self) -> &OrgId {
        match self {
            Record::Message(m) => &m.org_id,
            Record::Event(e) => &e.org_id,
        }
    }

    pub fn project_id(&self) -> &ProjectId {
        match self {
            Record::Message(m) => &m.project_id,
            Record::Event(e) => &e.project_id,
        }
    }

    /// Whether `destination` (one of the record's project) takes this
    /// record: CONTRACT sections 2 and 2b, not `disabled`, its kind in
    /// `record_kinds`, its channel, and for an event its type when the
    /// destination keeps only some.
    pub fn goes_to(&self, destination: &Destination) -> bool {
        match self {
            Record::Message(m) => destination.accepts(RecordKind::Message, m.channel),
            Record::Event(e) => {
                destination.accepts(RecordKind::Event, e.channel)
                    && destination.keeps_event_type(&e.event_type)
            }
        }
    }
}

/// The `kind` field alone, read before anything else is trusted: a body
/// that is not a JSON object is left to the kind's parser to refuse with
/// its position.
fn kind(body: &[u8]) -> Result<Option<String>, Malformed> {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(borrow)]
        kind: Option<&'a RawValue>,
    }
    let text = match serde_json::from_slice::<Kind<'_>>(body) {
        Ok(Kind { kind: None }) => return Ok(None),
        Ok(Kind { kind: Some(raw) }) => raw.get().to_owned(),
        // A repeated `kind` refuses the struct: read it as the kinds'
        // parsers will, from the field map (the last copy).
        Err(_) => match serde_json::from_slice::<json::Fields>(body) {
            Ok(fields) => match fields.get("kind") {
                Some(raw) => raw.get().to_owned(),
                None => return Ok(None),
            },
            Err(_) => return Ok(None),
        },
    };
    match serde_json::from_str::<Option<String>>(&text) {
        Ok(kind) => Ok(kind),
        Err(_) => Err(InvalidField::new("kind", "must be a string").into()),
    }
}

/// A record on its way: where it is in the batch, which destinations take
/// it, and the org's External ID to reach them with.
#[derive(Debug)]
pub struct Routed {
    /// The record's position in the SQS batch.
    pub index: usize,
    pub record: Record,
    /// Never empty: a record no destination takes is acknowledged earlier.
    pub targets: Vec<Arc<Destination>>,
    pub external_id: ExternalId,
}

/// One object to build and write, and the records it holds: a record is
/// acknowledged only when every group holding it has been written (or
/// parked). The step that turns a batch's records into objects.
#[derive(Debug)]
pub enum Group<'r> {
    /// A message is one object, written to each destination that takes it
    /// at that destination's key (CONTRACT section 4).
    Message {
        routed: &'r Routed,
        request: &'r message::ArchiveRequest,
    },
    /// Events of one partition, batched into one NDJSON object.
    Events(EventBatch<'r>),
}

/// One events object (CONTRACT section 4): events of one partition, each
/// `event_id` once, in `event_id` order, written to every destination that
/// takes them at that destination's key.
#[derive(Debug)]
pub struct EventBatch<'r> {
    pub partition: EventPartition<'r>,
    /// CONTRACT section 4's `batch_id` of [`Self::events`].
    pub batch_id: String,
    /// Sorted by `event_id`, each id once.
    pub events: Vec<&'r EngagementEvent>,
    /// The batch positions this object holds, a repeated `event_id`'s too:
    /// each is acknowledged when the object is written.
    pub records: Vec<usize>,
    /// The first event's routing. Every event of a partition goes to the
    /// same destinations with the same External ID: [`Record::goes_to`]
    /// reads only the kind, channel and type, which the partition fixes,
    /// from one list of the project's destinations per batch.
    pub routed: &'r Routed,
}

impl Group<'_> {
    /// The batch positions of the records this object holds.
    pub fn records(&self) -> Vec<usize> {
        match self {
            Group::Message { routed, .. } => vec![routed.index],
            Group::Events(batch) => batch.records.clone(),
        }
    }
}

/// Groups a batch's routed records into objects: messages one object each,
/// in batch order; then events by partition (CONTRACT section 4), each
/// `event_id` once per partition (the first copy in batch order is the one
/// written; a copy of another type or hour is another partition's event and
/// written there), sorted by id and split at `bounds`.
pub fn group(routed: &[Routed], bounds: ObjectBounds) -> Vec<Group<'_>> {
    let mut groups = Vec::with_capacity(routed.len());
    // Per partition, each distinct event by id with every position it holds.
    type Distinct<'r> = BTreeMap<&'r EventId, (&'r EngagementEvent, &'r Routed, Vec<usize>)>;
    let mut partitions: BTreeMap<EventPartition<'_>, Distinct<'_>> = BTreeMap::new();
    for r in routed {
        match &r.record {
            Record::Message(request) => groups.push(Group::Message { routed: r, request }),
            Record::Event(event) => {
                partitions
                    .entry(event.partition())
                    .or_default()
                    .entry(&event.event_id)
                    .or_insert_with(|| (event, r, Vec::new()))
                    .2
                    .push(r.index);
            }
        }
    }
    for (partition, distinct) in partitions {
        let entries: Vec<_> = distinct.into_values().collect();
        let events: Vec<&EngagementEvent> = entries.iter().map(|e| e.0).collect();
        for range in event::split(&events, bounds) {
            let chunk = &entries[range.clone()];
            let mut records: Vec<usize> = chunk.iter().flat_map(|e| e.2.iter().copied()).collect();
            records.sort_unstable();
            groups.push(Group::Events(EventBatch {
                partition,
                batch_id: event::batch_id(chunk.iter().map(|e| &e.0.event_id)),
                events: events[range].to_vec(),
                records,
                routed: chunk[0].1,
            }));
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ids::{Channel, EventType};
    use crate::store::memory::destination;
    use serde_json::Value;

    fn body(kind: Option<serde_json::Value>) -> Vec<u8> {
        let mut v = message::tests::sample();
        if let Some(kind) = kind {
            v["kind"] = kind;
        }
        v.to_string().into_bytes()
    }

    #[test]
    fn a_record_is_parsed_by_its_kind() {
        // Absent and null mean a message, as for every optional field.
        for kind in [None, Some(json!(null)), Some(json!("message"))] {
            assert!(matches!(
                Record::parse(&body(kind), None),
                Ok(Record::Message(_))
            ));
        }
        // An event body of the message sample lacks the event's fields:
        // it is parsed as an event, and refused as one.
        assert!(matches!(
            Record::parse(&body(Some(json!("event"))), None),
            Err(Malformed::Field(f)) if f.field == "event_id"
        ));
        assert!(matches!(
            Record::parse(event::tests::sample().to_string().as_bytes(), None),
            Ok(Record::Event(_))
        ));
        // A repeated kind is read as the parsers read it: the last copy.
        let twice = event::tests::sample().to_string().replacen(
            "\"kind\":\"event\"",
            "\"kind\":\"message\",\"kind\":\"event\"",
            1,
        );
        assert!(matches!(
            Record::parse(twice.as_bytes(), None),
            Ok(Record::Event(_))
        ));
        for kind in [json!("events"), json!("Message"), json!(7)] {
            let refused = Record::parse(&body(Some(kind.clone())), None);
            assert!(
                matches!(&refused, Err(Malformed::Field(f)) if f.to_string().starts_with("kind")),
                "{kind}: {refused:?}"
            );
        }
        // Not an object: the kind's own parser says where it broke.
        assert!(matches!(
            Record::parse(b"[1", None),
            Err(Malformed::Json { .. })
        ));
    }

    #[test]
    fn a_message_goes_to_its_projects_active_destinations_for_its_channel() {
        let Ok(record) = Record::parse(&body(None), None) else {
            panic!("sample parses")
        };
        assert_eq!(record.org_id().as_str(), "acme");
        assert_eq!(record.project_id().as_str(), "12345");
        assert!(record.goes_to(&destination("12345", &[Channel::Email])));
        assert!(!record.goes_to(&destination("12345", &[Channel::Sms])));
        let mut paused = destination("12345", &[Channel::Email]);
        paused.status = crate::destination::Status::Disabled;
        assert!(!record.goes_to(&paused));
        let mut events_only = destination("12345", &[Channel::Email]);
        events_only.record_kinds = vec![RecordKind::Event];
        assert!(!record.goes_to(&events_only));
    }

    #[test]
    fn an_event_goes_where_its_kind_channel_and_type_are_taken() {
        let record = Record::Event(event::tests::event(&event::tests::sample()));
        let mut d = destination("12345", &[Channel::Email]);
        assert!(
            !record.goes_to(&d),
            "record_kinds defaults to messages only"
        );
        d.record_kinds = vec![RecordKind::Message, RecordKind::Event];
        assert!(record.goes_to(&d));
        d.event_types = Some(vec![EventType::parse("open").unwrap()]);
        assert!(!record.goes_to(&d), "a click is not kept");
        d.event_types = Some(vec![
            EventType::parse("open").unwrap(),
            EventType::parse("click").unwrap(),
        ]);
        assert!(record.goes_to(&d));
        d.channels = vec![Channel::Sms];
        assert!(!record.goes_to(&d));
        d.channels = vec![Channel::Email];
        d.status = crate::destination::Status::Disabled;
        assert!(!record.goes_to(&d));
    }

    /// Events routed at batch positions `0..`, every one to the same
    /// destination.
    fn routed_events(events: &[Value]) -> Vec<Routed> {
        let mut target = destination("12345", &Channel::ALL);
        target.record_kinds = RecordKind::ALL.to_vec();
        let target = Arc::new(target);
        let external_id = ExternalId::generate().unwrap();
        events
            .iter()
            .enumerate()
            .map(|(index, v)| Routed {
                index,
                record: Record::parse(v.to_string().as_bytes(), None).unwrap(),
                targets: vec![Arc::clone(&target)],
                external_id: external_id.clone(),
            })
            .collect()
    }

    fn ev(id: &str, channel: &str, event_type: &str, at: &str) -> Value {
        let mut v = event::tests::sample();
        v["event_id"] = json!(id);
        v["channel"] = json!(channel);
        v["event_type"] = json!(event_type);
        v["occurred_at"] = json!(at);
        v
    }

    fn batches<'r>(groups: &'r [Group<'r>]) -> Vec<&'r EventBatch<'r>> {
        groups
            .iter()
            .filter_map(|g| match g {
                Group::Events(b) => Some(b),
                Group::Message { .. } => None,
            })
            .collect()
    }

    #[test]
    fn events_group_by_channel_project_type_and_hour_sorted_by_id() {
        let events = [
            ev("e-3", "email", "open", "2026-11-22T23:59:59Z"),
            ev("e-1", "email", "open", "2026-11-22T23:00:00Z"),
            ev("e-2", "email", "open", "2026-11-23T00:00:00Z"),
            ev("e-4", "email", "click", "2026-11-22T23:10:00Z"),
            ev("e-5", "sms", "open", "2026-11-22T23:10:00+01:00"),
            ev("e-6", "email", "open", "2026-11-23T00:30:00+01:00"),
        ];
        let routed = routed_events(&events);
        let groups = group(&routed, ObjectBounds::DEFAULT);
        let found: Vec<(String, Vec<&str>, Vec<usize>)> = batches(&groups)
            .iter()
            .map(|b| {
                let p = &b.partition;
                (
                    format!("{}/{}/{}", p.channel, p.event_type, p.hour.format("%d-%H")),
                    b.events.iter().map(|e| e.event_id.as_str()).collect(),
                    b.records.clone(),
                )
            })
            .collect();
        let expected = [
            ("email/click/22-23", vec!["e-4"], vec![3]),
            // e-6 is 23:30 UTC: the same hour as e-1 and e-3.
            ("email/open/22-23", vec!["e-1", "e-3", "e-6"], vec![0, 1, 5]),
            ("email/open/23-00", vec!["e-2"], vec![2]),
            ("sms/open/22-22", vec!["e-5"], vec![4]),
        ];
        let expected: Vec<(String, Vec<&str>, Vec<usize>)> = expected
            .into_iter()
            .map(|(p, e, r)| (p.to_owned(), e, r))
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn the_same_set_in_any_order_is_the_same_object() {
        let events: Vec<Value> = (0..40)
            .map(|i| {
                ev(
                    &format!("ev-{i:03}"),
                    "email",
                    "open",
                    "2026-11-22T23:00:00Z",
                )
            })
            .collect();
        let key = |events: &[Value]| -> Vec<String> {
            let routed = routed_events(events);
            let groups = group(
                &routed,
                ObjectBounds {
                    max_lines: 16,
                    max_bytes: usize::MAX,
                },
            );
            batches(&groups)
                .iter()
                .map(|b| b.batch_id.clone())
                .collect()
        };
        let forward = key(&events);
        let mut shuffled = events.clone();
        shuffled.reverse();
        shuffled.swap(3, 17);
        assert_eq!(forward.len(), 3, "40 events at 16 a line bound");
        assert_eq!(key(&shuffled), forward);
        assert_ne!(key(&events[1..]), forward, "another set, another key");
    }

    #[test]
    fn a_repeated_event_id_is_written_once_and_held_by_its_object() {
        let events = [
            ev("dup", "email", "open", "2026-11-22T23:00:00Z"),
            ev("other", "email", "open", "2026-11-22T23:05:00Z"),
            // The same id of another type: that type's event, written in
            // its own object, so a destination keeping only clicks gets it.
            ev("dup", "email", "click", "2026-11-22T23:00:00Z"),
            // The same id again: written once, as the first copy, and
            // acknowledged with it.
            ev("dup", "email", "open", "2026-11-22T23:00:00Z"),
        ];
        let routed = routed_events(&events);
        let groups = group(&routed, ObjectBounds::DEFAULT);
        let batches = batches(&groups);
        let held: Vec<(&str, Vec<&str>, Vec<usize>)> = batches
            .iter()
            .map(|b| {
                let ids = b.events.iter().map(|e| e.event_id.as_str()).collect();
                (b.partition.event_type.as_str(), ids, b.records.clone())
            })
            .collect();
        assert_eq!(
            held,
            [
                ("click", vec!["dup"], vec![2]),
                ("open", vec!["dup", "other"], vec![0, 1, 3]),
            ]
        );
        // Another org's or project's event of the same id is another event.
        let mut elsewhere = ev("dup", "email", "open", "2026-11-22T23:00:00Z");
        elsewhere["project_id"] = json!("other-project");
        let routed = routed_events(&[events[0].clone(), elsewhere]);
        assert_eq!(
            self::batches(&group(&routed, ObjectBounds::DEFAULT)).len(),
            2
        );
    }

    #[test]
    fn messages_and_events_of_one_batch_are_grouped_together() {
        let mut routed = routed_events(&[
            ev("e-1", "email", "open", "2026-11-22T23:00:00Z"),
            ev("e-2", "email", "open", "2026-11-22T23:00:00Z"),
        ]);
        routed.push(Routed {
            index: 2,
            record: Record::parse(&body(None), None).unwrap(),
            targets: routed[0].targets.clone(),
            external_id: routed[0].external_id.clone(),
        });
        let groups = group(&routed, ObjectBounds::DEFAULT);
        let held: Vec<Vec<usize>> = groups.iter().map(Group::records).collect();
        assert_eq!(held, [vec![2], vec![0, 1]]);
    }

    #[test]
    fn each_message_is_one_object_holding_only_itself() {
        let routed: Vec<Routed> = [3, 7]
            .into_iter()
            .map(|index| Routed {
                index,
                record: Record::parse(&body(None), None).unwrap(),
                targets: vec![Arc::new(destination("12345", &Channel::ALL))],
                external_id: ExternalId::generate().unwrap(),
            })
            .collect();
        let groups = group(&routed, ObjectBounds::DEFAULT);
        let held: Vec<Vec<usize>> = groups.iter().map(Group::records).collect();
        assert_eq!(held, [vec![3], vec![7]]);
    }
}
