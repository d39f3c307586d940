//! The kinds of record on the archive queue (CONTRACT section 2; engagement
//! events, section 2b, are next). The pipeline in [`crate::archive`] sees a
//! record only through what every kind has: a tenant, a project, the
//! destinations that take it, and the [`Group`] that makes it part of an
//! object. A kind provides:
//!
//! | what | where |
//! |---|---|
//! | parsing and its rules, with [`Malformed`] for what is refused | its module ([`message`]) |
//! | which destinations take it | [`Record::goes_to`] |
//! | how its records become objects | [`group`] |
//! | each object's key per destination kind | [`crate::destination::Target`] |
//! | the object's contents and how it is written | `crate::archive` (one arm per [`Group`] variant) |

pub mod message;

use std::sync::Arc;

use serde_json::value::RawValue;

use crate::credentials::ExternalId;
use crate::destination::Destination;
use crate::ids::{InvalidField, OrgId, ProjectId};
use crate::s3::BucketName;

pub use message::Malformed;

/// One parsed record of the queue, by kind.
#[derive(Debug, Clone)]
pub enum Record {
    /// A sent message (CONTRACT section 2).
    Message(message::ArchiveRequest),
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
            Some(_) => Err(InvalidField::new("kind", "must be message").into()),
        }
    }

    pub fn org_id(&self) -> &OrgId {
        match self {
            Record::Message(m) => &m.org_id,
        }
    }

    pub fn project_id(&self) -> &ProjectId {
        match self {
            Record::Message(m) => &m.project_id,
        }
    }

    /// Whether `destination` (one of the record's project) takes this
    /// record: CONTRACT section 2, not `disabled` and its channel.
    pub fn goes_to(&self, destination: &Destination) -> bool {
        match self {
            Record::Message(m) => destination.accepts(m.channel),
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
    let Ok(Kind { kind: Some(raw) }) = serde_json::from_slice::<Kind<'_>>(body) else {
        return Ok(None);
    };
    serde_json::from_str::<String>(raw.get())
        .map(Some)
        .map_err(|_| InvalidField::new("kind", "must be a string").into())
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
}

impl Group<'_> {
    /// The batch positions of the records this object holds.
    pub fn records(&self) -> Vec<usize> {
        match self {
            Group::Message { routed, .. } => vec![routed.index],
        }
    }
}

/// Groups a batch's routed records into objects, in batch order. Messages
/// are one object each; a batched kind (events) groups here.
pub fn group(routed: &[Routed]) -> Vec<Group<'_>> {
    routed
        .iter()
        .map(|r| match &r.record {
            Record::Message(request) => Group::Message { routed: r, request },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ids::Channel;
    use crate::store::memory::destination;

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
        for kind in [json!("event"), json!("Message"), json!(7)] {
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
        let groups = group(&routed);
        let held: Vec<Vec<usize>> = groups.iter().map(Group::records).collect();
        assert_eq!(held, [vec![3], vec![7]]);
    }
}
