//! Object keys in the customer's bucket (CONTRACT section 4), one function
//! per record kind plus the probe's. Built only from parsed types, so every
//! key stays inside the destination's folder and needs no encoding.

use chrono::{DateTime, Utc};

use super::{FolderPath, Layout, S3Target};
use crate::records::message::ArchiveRequest;
use crate::records::EventBatch;
use crate::write::Compression;

/// The key an archived message is written under, by the target's layout.
pub fn message_key(target: &S3Target, request: &ArchiveRequest) -> String {
    key_for(
        target.folder_path.as_ref(),
        target.layout,
        target.compression,
        request,
    )
}

fn key_for(
    folder: Option<&FolderPath>,
    layout: Layout,
    compression: Compression,
    request: &ArchiveRequest,
) -> String {
    let prefix = folder_prefix(folder);
    let ext = match compression {
        Compression::Gzip => ".json.gz",
        Compression::None => ".json",
    };
    let (channel, project, message) = (
        request.channel.as_str(),
        request.project_id.as_str(),
        request.message_id.as_str(),
    );
    match layout {
        Layout::ByRecipient => {
            let campaign = request
                .campaign_id
                .as_ref()
                .map_or("unassociated", |c| c.as_str());
            let recipient = request.recipient.as_str();
            format!("{prefix}{channel}/{project}/{recipient}/{campaign}/{message}{ext}")
        }
        Layout::ByDate => {
            let hour = date_hour(request.sent_at);
            format!("{prefix}channel={channel}/project={project}/{hour}/{message}{ext}")
        }
    }
}

/// The key of an events object (CONTRACT section 4), whatever the layout:
/// `{P}events/channel=/project=/event_type=/date=/hour=/{batch_id}{Y}`.
pub fn event_key(target: &S3Target, batch: &EventBatch<'_>) -> String {
    let prefix = folder_prefix(target.folder_path.as_ref());
    let ext = match target.compression {
        Compression::Gzip => ".ndjson.gz",
        Compression::None => ".ndjson",
    };
    let p = &batch.partition;
    format!(
        "{prefix}events/channel={}/project={}/event_type={}/{}/{}{ext}",
        p.channel,
        p.project_id,
        p.event_type,
        date_hour(p.hour),
        batch.batch_id
    )
}

fn date_hour(at: DateTime<Utc>) -> String {
    at.format("date=%Y-%m-%d/hour=%H").to_string()
}

/// `{folder}/`, or `""` without a folder: CONTRACT section 4's `{P}`.
pub fn folder_prefix(folder: Option<&FolderPath>) -> String {
    folder.map(|f| format!("{f}/")).unwrap_or_default()
}

/// The connection probe of validation, health checks and on-demand tests
/// (CONTRACT section 4): one key per UTC day, written with `If-None-Match: *`
/// like every archive write, so a bucket policy that demands conditional
/// writes accepts it. The day's first probe writes (and so proves the KMS
/// path); later ones get `412`, which S3 answers only after authorising the
/// request, so it proves the grant too.
pub fn probe_key(folder: Option<&FolderPath>, at: DateTime<Utc>) -> String {
    format!(
        "{}_stored-messages/connection-test/{}.json",
        folder_prefix(folder),
        at.format("%Y-%m-%d")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::message::tests::sample;
    use serde_json::{json, Value};
    use sha2::{Digest, Sha256};

    fn request(v: &Value) -> ArchiveRequest {
        ArchiveRequest::parse(v.to_string().as_bytes(), None).unwrap()
    }

    fn folder(s: &str) -> FolderPath {
        FolderPath::parse(s).unwrap()
    }

    #[test]
    fn events_keys_follow_section_4_whatever_the_layout() {
        use crate::records::event::tests::sample as event_sample;
        use crate::records::{group, Group, ObjectBounds, Record, Routed};
        let mut v = event_sample();
        v["occurred_at"] = json!("2026-11-23T00:30:00+01:00");
        let routed = [Routed {
            index: 0,
            record: Record::parse(v.to_string().as_bytes(), None).unwrap(),
            targets: Vec::new(),
            external_id: crate::credentials::ExternalId::generate().unwrap(),
        }];
        let groups = group(&routed, ObjectBounds::DEFAULT);
        let Some(Group::Events(batch)) = groups.first() else {
            panic!("an events object")
        };
        let batch_id = hex::encode(&Sha256::digest(b"ev-01JD7QH9ZK8M3T2R6W4Y5X1A0B")[..16]);
        let mut target = crate::store::memory::destination("12345", &[]);
        let crate::destination::Target::S3(s3) = &mut target.target;
        for layout in [Layout::ByDate, Layout::ByRecipient] {
            s3.layout = layout;
            s3.folder_path = Some(folder("archive/prod"));
            s3.compression = Compression::Gzip;
            assert_eq!(
                event_key(s3, batch),
                format!("archive/prod/events/channel=email/project=12345/event_type=click/date=2026-11-22/hour=23/{batch_id}.ndjson.gz")
            );
            s3.folder_path = None;
            s3.compression = Compression::None;
            assert_eq!(
                event_key(s3, batch),
                format!("events/channel=email/project=12345/event_type=click/date=2026-11-22/hour=23/{batch_id}.ndjson")
            );
        }
    }

    #[test]
    fn by_recipient_keys() {
        let ada = hex::encode(Sha256::digest(b"ada@example.com"));
        let req = request(&sample());
        assert_eq!(
            key_for(None, Layout::ByRecipient, Compression::Gzip, &req),
            format!("email/12345/{ada}/1234567/9c438a20d26e4e9f8ad4edea23f811cd.json.gz")
        );
        assert_eq!(
            key_for(
                Some(&folder("archive/prod")),
                Layout::ByRecipient,
                Compression::None,
                &req
            ),
            format!("archive/prod/email/12345/{ada}/1234567/9c438a20d26e4e9f8ad4edea23f811cd.json")
        );
        let mut v = sample();
        v.as_object_mut().unwrap().remove("campaign_id");
        v["recipient"] = json!({"user_id": "u-1"});
        v["channel"] = json!("in_app");
        let uid = hex::encode(Sha256::digest(b"u-1"));
        assert_eq!(
            key_for(None, Layout::ByRecipient, Compression::Gzip, &request(&v)),
            format!("in_app/12345/{uid}/unassociated/9c438a20d26e4e9f8ad4edea23f811cd.json.gz")
        );
    }

    #[test]
    fn by_date_keys_use_utc_of_sent_at() {
        let mut v = sample();
        v["sent_at"] = json!("2026-11-23T01:30:00+02:00");
        v["channel"] = json!("web_push");
        assert_eq!(
            key_for(Some(&folder("a")), Layout::ByDate, Compression::Gzip, &request(&v)),
            "a/channel=web_push/project=12345/date=2026-11-22/hour=23/9c438a20d26e4e9f8ad4edea23f811cd.json.gz"
        );
        v["sent_at"] = json!("2026-01-05T07:00:00Z");
        assert_eq!(
            key_for(None, Layout::ByDate, Compression::None, &request(&v)),
            "channel=web_push/project=12345/date=2026-01-05/hour=07/9c438a20d26e4e9f8ad4edea23f811cd.json"
        );
    }

    #[test]
    fn the_same_recipient_in_any_case_shares_a_prefix() {
        let mut a = sample();
        a["recipient"] = json!({"email": "ADA@EXAMPLE.COM"});
        let mut b = sample();
        b["recipient"] = json!({"email": "ada@example.com  "});
        assert_eq!(
            key_for(None, Layout::ByRecipient, Compression::Gzip, &request(&a)),
            key_for(None, Layout::ByRecipient, Compression::Gzip, &request(&b))
        );
    }

    #[test]
    fn probe_keys_are_daily_under_the_folder() {
        let at = DateTime::parse_from_rfc3339("2026-11-23T23:59:59Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            probe_key(None, at),
            "_stored-messages/connection-test/2026-11-23.json"
        );
        assert_eq!(
            probe_key(Some(&folder("x/y")), at),
            "x/y/_stored-messages/connection-test/2026-11-23.json"
        );
    }
}
