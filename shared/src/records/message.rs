//! The message record kind: one SQS message body from the sending platform
//! (CONTRACT section 2), parsed into a value that key naming can trust.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::json::{self, field_str, is_object, strict_json, Envelope, Fields, Malformed};
use crate::ids::{CampaignId, Channel, InvalidField, MessageId, OrgId, ProjectId};
use crate::s3::BucketName;

/// Where the rendered message is: inline, or staged in our own bucket
/// because it did not fit in an SQS message. The message is kept as the
/// exact JSON text it arrived as (a JSON object): it is archived as is, and
/// never unescaping and re-escaping a 64 KB email saves most of the JSON
/// work per message.
#[derive(Debug, Clone)]
pub enum MessageBody {
    Inline(Box<RawValue>),
    Staged(StagedRef),
}

/// Where a `message_ref` body waits: in `STAGING_BUCKET`, under the record's
/// own `{org_id}/` (CONTRACT section 2). Only [`ArchiveRequest::parse`] makes
/// one, after confining the tenant-supplied bucket and key, so a record can
/// never make us read our control bucket, another org's staged bodies or a
/// bucket we do not own, and archive what it holds into its own bucket
/// (real-setups B15: org B naming `orgs/A/external-id.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedRef {
    bucket: BucketName,
    key: String,
}

impl StagedRef {
    fn confine(
        bucket: &str,
        key: &str,
        org: &OrgId,
        staging: Option<&BucketName>,
    ) -> Result<Self, InvalidField> {
        let staging = staging.ok_or(InvalidField::new(
            "message_ref",
            "is not accepted: no staging bucket is configured",
        ))?;
        if bucket != staging.as_str() {
            return Err(InvalidField::new(
                "message_ref.bucket",
                "must be the staging bucket",
            ));
        }
        let within_org = key
            .strip_prefix(org.as_str())
            .and_then(|k| k.strip_prefix('/'));
        // Dot segments and empty segments are refused as well: S3 keeps them
        // literally, but HTTP stacks and proxies may normalise `a/../b`.
        let confined = within_org.is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .split('/')
                    .all(|s| !s.is_empty() && s != "." && s != "..")
        });
        if !confined || key.len() > 1024 {
            return Err(InvalidField::new(
                "message_ref.key",
                "must be a key of at most 1024 bytes under the request's {org_id}/, without empty, '.' or '..' segments",
            ));
        }
        Ok(Self {
            bucket: staging.clone(),
            key: key.to_owned(),
        })
    }

    pub fn bucket(&self) -> &BucketName {
        &self.bucket
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The lowercase hex SHA-256 of the recipient identity: lets customers find
/// one person's messages without the key carrying the address itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientHash(String);

impl RecipientHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A valid archive request.
#[derive(Debug, Clone)]
pub struct ArchiveRequest {
    pub org_id: OrgId,
    pub project_id: ProjectId,
    pub message_id: MessageId,
    pub channel: Channel,
    pub sent_at: DateTime<Utc>,
    pub campaign_id: Option<CampaignId>,
    pub recipient: RecipientHash,
    pub body: MessageBody,
    /// The request object without `message`/`message_ref`: unknown fields are
    /// kept, because the archived object is the request as sent.
    envelope: Fields,
}

impl ArchiveRequest {
    /// Parses one SQS body under CONTRACT section 2. `staging` is
    /// `STAGING_BUCKET`: the only bucket a `message_ref` may name.
    pub fn parse(body: &[u8], staging: Option<&BucketName>) -> Result<Self, Malformed> {
        let mut envelope = json::fields(body)?;
        let Envelope {
            org_id,
            project_id,
            channel,
            campaign_id,
            recipient,
        } = Envelope::parse(&envelope)?;
        let message_id = MessageId::parse(&field_str(&envelope, "message_id")?)?;
        let sent_at = json::timestamp(&envelope, "sent_at")?;
        let recipient = RecipientHash(hex::encode(Sha256::digest(recipient.as_bytes())));

        let body = match (envelope.remove("message"), envelope.remove("message_ref")) {
            (Some(message), None) if is_object(&message) => MessageBody::Inline(message),
            (Some(_), None) => {
                return Err(InvalidField::new("message", "must be a JSON object").into())
            }
            (None, Some(reference)) if is_object(&reference) => {
                let reference: Fields = serde_json::from_str(reference.get()).map_err(|_| {
                    InvalidField::new("message_ref", "must be an object with bucket and key")
                })?;
                let bucket = field_str(&reference, "bucket").map_err(|_| {
                    InvalidField::new("message_ref.bucket", "must be the staging bucket")
                })?;
                let key = field_str(&reference, "key")
                    .map_err(|_| InvalidField::new("message_ref.key", "must be a string"))?;
                MessageBody::Staged(StagedRef::confine(&bucket, &key, &org_id, staging)?)
            }
            (None, Some(_)) => {
                return Err(InvalidField::new(
                    "message_ref",
                    "must be an object with bucket and key",
                )
                .into())
            }
            (None, None) => {
                return Err(InvalidField::new(
                    "message",
                    "one of message or message_ref is required",
                )
                .into())
            }
            (Some(_), Some(_)) => {
                return Err(InvalidField::new(
                    "message",
                    "message and message_ref are mutually exclusive",
                )
                .into())
            }
        };

        Ok(Self {
            org_id,
            project_id,
            message_id,
            channel,
            sent_at,
            campaign_id,
            recipient,
            body,
            envelope,
        })
    }

    /// The archived object: the request with `message` inlined and
    /// `archived_at` added, serialised once and shared by every destination.
    pub fn archived_document(&self, message: &RawValue, archived_at: DateTime<Utc>) -> Vec<u8> {
        let mut doc = Vec::new();
        json::write_archived(
            &self.envelope,
            Some(("message", message)),
            &json::archived_at(archived_at),
            &mut doc,
        );
        doc
    }
}

/// Parses the contents of a `message_ref` object: it must hold the message
/// JSON object itself.
pub fn parse_referenced_message(bytes: &[u8]) -> Result<Box<RawValue>, Malformed> {
    strict_json(bytes)?;
    match serde_json::from_slice::<Box<RawValue>>(bytes) {
        Ok(message) if is_object(&message) => Ok(message),
        Ok(_) => Err(InvalidField::new(
            "message_ref",
            "the referenced object must hold a JSON object",
        )
        .into()),
        Err(e) => Err(Malformed::Json {
            line: e.line(),
            column: e.column(),
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{json, Value};

    pub(crate) fn sample() -> Value {
        json!({
            "version": 1,
            "org_id": "acme",
            "project_id": "12345",
            "message_id": "9c438a20d26e4e9f8ad4edea23f811cd",
            "channel": "email",
            "sent_at": "2026-11-22T23:12:28.123Z",
            "campaign_id": "1234567",
            "recipient": { "email": " Ada@Example.com ", "user_id": "u-1" },
            "message": { "subject": "Hi", "html_body": "<p>Hello Ada</p>" },
            "platform_trace": "kept"
        })
    }

    fn staging() -> BucketName {
        BucketName::parse("staging-bucket").unwrap()
    }

    fn parse(v: &Value) -> Result<ArchiveRequest, Malformed> {
        ArchiveRequest::parse(v.to_string().as_bytes(), Some(&staging()))
    }

    fn sha(s: &str) -> String {
        hex::encode(Sha256::digest(s.as_bytes()))
    }

    #[test]
    fn a_full_request_parses() {
        let req = parse(&sample()).unwrap();
        assert_eq!(req.org_id.as_str(), "acme");
        assert_eq!(req.channel, Channel::Email);
        assert_eq!(
            req.campaign_id.as_ref().map(|c| c.as_str()),
            Some("1234567")
        );
        assert_eq!(req.sent_at.to_rfc3339(), "2026-11-22T23:12:28.123+00:00");
        assert!(matches!(req.body, MessageBody::Inline(_)));
    }

    #[test]
    fn recipient_hash_uses_normalised_email_then_user_id() {
        let req = parse(&sample()).unwrap();
        assert_eq!(req.recipient.as_str(), sha("ada@example.com"));
        let mut v = sample();
        v["recipient"] = json!({ "user_id": "U-1", "phone": "+15551234567" });
        assert_eq!(parse(&v).unwrap().recipient.as_str(), sha("U-1"));
        v["recipient"] = json!({ "email": "", "user_id": "u-2" });
        assert_eq!(parse(&v).unwrap().recipient.as_str(), sha("u-2"));
        v["recipient"] = json!({ "phone": "+15551234567" });
        assert_eq!(
            parse(&v).err(),
            Some(InvalidField::new("recipient", "needs email or user_id").into())
        );
        v["recipient"] = json!({ "email": 7 });
        assert!(parse(&v).is_err());
        v["recipient"] = json!("ada@example.com");
        assert!(parse(&v).is_err());
    }

    #[test]
    fn each_rule_of_section_2_is_enforced() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("version", json!(2), "version"),
            ("version", json!("1"), "version"),
            ("org_id", json!("a/b"), "org_id"),
            ("org_id", json!(null), "org_id"),
            ("project_id", json!(""), "project_id"),
            ("message_id", json!(".."), "message_id"),
            ("message_id", json!("a/b"), "message_id"),
            ("channel", json!("fax"), "channel"),
            ("sent_at", json!("yesterday"), "sent_at"),
            ("sent_at", json!("2026-11-22 23:12:28"), "sent_at"),
            ("campaign_id", json!("a b"), "campaign_id"),
            ("campaign_id", json!(5), "campaign_id"),
            ("message", json!("text"), "message"),
        ];
        for (field, value, expect) in cases {
            let mut v = sample();
            v[field] = value.clone();
            match parse(&v) {
                Err(Malformed::Field(f)) => assert_eq!(f.field, expect, "{field}={value}"),
                other => panic!("{field}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn message_and_message_ref_are_exclusive() {
        let mut v = sample();
        v["message_ref"] = json!({"bucket": "staging-bucket", "key": "acme/k/1.json"});
        assert!(parse(&v).is_err());
        v.as_object_mut().unwrap().remove("message");
        let req = parse(&v).unwrap();
        let MessageBody::Staged(staged) = req.body else {
            panic!("a message_ref body")
        };
        assert_eq!(
            (staged.bucket(), staged.key()),
            (&staging(), "acme/k/1.json")
        );
        v.as_object_mut().unwrap().remove("message_ref");
        assert!(parse(&v).is_err());
    }

    #[test]
    fn message_ref_is_confined_to_the_staging_bucket_and_the_orgs_own_prefix() {
        // Real-setups B15: a record of one org naming our control data or
        // another org's staged bodies is malformed, never read.
        let mut v = sample();
        v.as_object_mut().unwrap().remove("message");
        for (bucket, key) in [
            ("sm-control", "orgs/acme/external-id.json"),
            ("sm-control", "acme/x.json"),
            ("staging-bucket", "orgs/acme/external-id.json"),
            ("staging-bucket", "other-org/x.json"),
            ("staging-bucket", "acme-evil/x.json"),
            ("staging-bucket", "acme"),
            ("staging-bucket", "acme/"),
            ("staging-bucket", "acme/../other-org/x.json"),
            ("staging-bucket", "acme/./x.json"),
            ("staging-bucket", "acme//x.json"),
            ("staging-bucket", ""),
            ("Bad_Bucket", "acme/x.json"),
            ("some-public-bucket", "acme/x.json"),
        ] {
            v["message_ref"] = json!({ "bucket": bucket, "key": key });
            assert!(
                matches!(parse(&v), Err(Malformed::Field(_))),
                "{bucket}/{key} must be malformed"
            );
        }
        v["message_ref"] =
            json!({ "bucket": "staging-bucket", "key": format!("acme/{}", "k".repeat(1020)) });
        assert!(parse(&v).is_err(), "over 1024 bytes");
        v["message_ref"] = json!({ "bucket": "staging-bucket", "key": "acme/2026/11/x.json" });
        assert!(parse(&v).is_ok());
        assert!(
            ArchiveRequest::parse(v.to_string().as_bytes(), None).is_err(),
            "no staging bucket configured: every message_ref is malformed"
        );
    }

    #[test]
    fn missing_campaign_is_none_and_unknown_fields_are_kept() {
        let mut v = sample();
        v.as_object_mut().unwrap().remove("campaign_id");
        let req = parse(&v).unwrap();
        assert_eq!(req.campaign_id, None);
        let MessageBody::Inline(message) = req.body.clone() else {
            panic!()
        };
        let at = DateTime::parse_from_rfc3339("2026-11-23T01:02:03.004Z")
            .unwrap()
            .with_timezone(&Utc);
        let doc: Value = serde_json::from_slice(&req.archived_document(&message, at)).unwrap();
        assert_eq!(doc["platform_trace"], "kept");
        assert_eq!(doc["archived_at"], "2026-11-23T01:02:03.004Z");
        assert_eq!(doc["message"]["subject"], "Hi");
        assert!(doc.get("message_ref").is_none());
    }

    #[test]
    fn the_message_is_archived_as_the_exact_text_sent() {
        let message = r#"{"subject":"Caf\u00e9 \"news\"", "price": 1.50, "big": 12345678901234567890, "dup": 1, "dup": 2}"#;
        let body = format!(
            r#"{{"version":1,"org_id":"acme","project_id":"p","message_id":"m","channel":"email","sent_at":"2026-11-22T23:12:28Z","recipient":{{"user_id":"u"}},"message":{message},"zeta":[1, 2]}}"#
        );
        let req = ArchiveRequest::parse(body.as_bytes(), None).unwrap();
        let MessageBody::Inline(raw) = &req.body else {
            panic!("an inline body")
        };
        let at = Utc::now();
        let doc = String::from_utf8(req.archived_document(raw, at)).unwrap();
        assert!(doc.contains(&format!(r#""message":{message}"#)), "{doc}");
        assert!(doc.contains(r#""zeta":[1, 2]"#), "{doc}");
        let value: Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(value["message"]["subject"], "Café \"news\"");
        assert_eq!(
            value.as_object().unwrap().keys().collect::<Vec<_>>(),
            [
                "archived_at",
                "channel",
                "message",
                "message_id",
                "org_id",
                "project_id",
                "recipient",
                "sent_at",
                "version",
                "zeta"
            ]
        );
    }

    #[test]
    fn a_body_of_another_json_type_is_not_an_object_and_broken_json_is_json() {
        for body in ["[1]", "\"text\"", "7", "null"] {
            assert_eq!(
                ArchiveRequest::parse(body.as_bytes(), None).err(),
                Some(Malformed::NotAnObject),
                "{body}"
            );
        }
        for body in [
            "{",
            "{\"version\":1,}",
            "nope",
            "",
            "[",
            "[1,",
            "[}",
            "\"x\" junk",
            "7 x",
        ] {
            assert!(
                matches!(
                    ArchiveRequest::parse(body.as_bytes(), None).err(),
                    Some(Malformed::Json { .. })
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn json_other_readers_refuse_is_malformed_wherever_it_is() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for bad in [
            r#""\ud800""#,
            r#""\udc00x""#,
            "1e400",
            "-1e400",
            deep.as_str(),
        ] {
            for place in ["message", "platform_trace"] {
                let mut v = sample();
                v[place] = json!({ "inner": "PLACEHOLDER" });
                let body = v.to_string().replace(r#""PLACEHOLDER""#, bad);
                assert!(
                    matches!(
                        ArchiveRequest::parse(body.as_bytes(), None).err(),
                        Some(Malformed::Json { .. })
                    ),
                    "{place}: {}",
                    &bad[..bad.len().min(20)]
                );
            }
            let staged = format!(r#"{{"html_body":{bad}}}"#);
            assert!(parse_referenced_message(staged.as_bytes()).is_err());
        }
        let mut v = sample();
        v["message"] = json!({ "inner": "PLACEHOLDER", "n": 1e300 });
        let paired = v
            .to_string()
            .replace(r#""PLACEHOLDER""#, r#""\ud83d\ude00""#);
        assert!(
            ArchiveRequest::parse(paired.as_bytes(), None).is_ok(),
            "a surrogate pair and a large finite number are fine"
        );
    }

    #[test]
    fn errors_never_quote_the_body() {
        let secret = "ada.lovelace@example.com";
        let body =
            format!("{{\"version\":1,\"recipient\":{{\"email\":\"{secret}\"}},\"org_id\":{{}} }}");
        let err = ArchiveRequest::parse(body.as_bytes(), None)
            .unwrap_err()
            .to_string();
        assert!(!err.contains(secret), "{err}");
        let err = ArchiveRequest::parse(format!("{{\"x\": \"{secret}").as_bytes(), None)
            .unwrap_err()
            .to_string();
        assert!(!err.contains(secret), "{err}");
        assert!(matches!(
            ArchiveRequest::parse(b"[1]", None),
            Err(Malformed::NotAnObject)
        ));
        assert!(matches!(
            ArchiveRequest::parse(b"\xff", None),
            Err(Malformed::Json { .. })
        ));
    }

    #[test]
    fn referenced_message_must_be_an_object() {
        assert!(parse_referenced_message(br#"{"subject":"x"}"#).is_ok());
        assert!(parse_referenced_message(b"[1]").is_err());
        assert!(parse_referenced_message(b"nope").is_err());
    }
}
