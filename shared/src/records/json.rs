//! What every record kind shares on the wire: strict JSON, the envelope
//! fields of CONTRACT section 2 (version, tenant, project, channel,
//! campaign, recipient) and the archived line or document built from the
//! fields as sent.
//!
//! Error messages name fields and rules only. serde's own messages quote the
//! offending value, which may be an address or a message body, so they are
//! never passed on.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::ids::{CampaignId, Channel, InvalidField, OrgId, ProjectId};

/// Why a body can never be archived. Safe to log: no values, only rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("body is not valid UTF-8 JSON (line {line}, column {column})")]
    Json { line: usize, column: usize },
    #[error("body must be a JSON object")]
    NotAnObject,
    #[error(transparent)]
    Field(#[from] InvalidField),
}

/// A record's fields as sent, each as its JSON text: unknown fields are
/// kept, because what is archived is the record as sent.
pub(crate) type Fields = BTreeMap<String, Box<RawValue>>;

/// The fields of one body, after proving the whole body strict JSON.
pub(crate) fn fields(body: &[u8]) -> Result<Fields, Malformed> {
    strict_json(body)?;
    // Valid JSON by now: the only way left to fail is another type.
    serde_json::from_slice(body).map_err(|_| Malformed::NotAnObject)
}

/// A field's value, parsed from its JSON text; `None` when absent.
pub(crate) fn field<T: serde::de::DeserializeOwned>(
    fields: &Fields,
    name: &'static str,
    rule: &'static str,
) -> Result<Option<T>, InvalidField> {
    fields
        .get(name)
        .map(|raw| serde_json::from_str(raw.get()).map_err(|_| InvalidField::new(name, rule)))
        .transpose()
}

pub(crate) fn field_str(fields: &Fields, name: &'static str) -> Result<String, InvalidField> {
    field(fields, name, "must be a string")?.ok_or(InvalidField::new(name, "is required"))
}

/// An optional string field: absent and `null` are both `None`.
pub(crate) fn optional_str(
    fields: &Fields,
    name: &'static str,
) -> Result<Option<String>, InvalidField> {
    Ok(field::<Option<String>>(fields, name, "must be a string")?.flatten())
}

/// An RFC 3339 timestamp field, in UTC.
pub(crate) fn timestamp(
    fields: &Fields,
    name: &'static str,
) -> Result<DateTime<Utc>, InvalidField> {
    DateTime::parse_from_rfc3339(&field_str(fields, name)?)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| InvalidField::new(name, "must be an RFC 3339 timestamp"))
}

/// The fields messages and events share (CONTRACT sections 2 and 2b).
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    pub(crate) org_id: OrgId,
    pub(crate) project_id: ProjectId,
    pub(crate) channel: Channel,
    pub(crate) campaign_id: Option<CampaignId>,
    /// The recipient identity of CONTRACT section 4's `{R}`: the email
    /// trimmed and lowercased, else the user id as is. PII: only its hash
    /// ever leaves this crate.
    pub(crate) recipient: String,
}

impl Envelope {
    pub(crate) fn parse(fields: &Fields) -> Result<Self, InvalidField> {
        if field::<u64>(fields, "version", "must be 1")? != Some(1) {
            return Err(InvalidField::new("version", "must be 1"));
        }
        let org_id = OrgId::parse(&field_str(fields, "org_id")?)?;
        let project_id = ProjectId::parse(&field_str(fields, "project_id")?)?;
        let channel = Channel::parse(&field_str(fields, "channel")?).ok_or(InvalidField::new(
            "channel",
            "must be one of email, sms, push, in_app, web_push, whatsapp",
        ))?;
        let campaign_id = optional_str(fields, "campaign_id")?
            .map(|c| CampaignId::parse(&c))
            .transpose()?;
        let recipient =
            recipient_identity(field::<Value>(fields, "recipient", "must be an object")?.as_ref())?;
        Ok(Self {
            org_id,
            project_id,
            channel,
            campaign_id,
            recipient,
        })
    }
}

/// CONTRACT section 2's recipient rule: an object with a non-blank `email`
/// or `user_id` string.
fn recipient_identity(recipient: Option<&Value>) -> Result<String, InvalidField> {
    let Some(Value::Object(recipient)) = recipient else {
        return Err(InvalidField::new("recipient", "must be an object"));
    };
    let text = |field: &'static str| match recipient.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.as_str())),
        Some(Value::String(_)) => Ok(None),
        Some(_) => Err(InvalidField::new(field, "must be a string")),
    };
    match (text("email")?, text("user_id")?) {
        (Some(email), _) => Ok(email.trim().to_lowercase()),
        (None, Some(user_id)) => Ok(user_id.to_owned()),
        (None, None) => Err(InvalidField::new("recipient", "needs email or user_id")),
    }
}

/// Proves `bytes` is JSON every reader of the archive can load, before any
/// of it is kept as raw text: [`RawValue`] alone checks syntax only, and
/// would let through a lone UTF-16 surrogate (`"\ud800"`), a number out of
/// range (`1e400`) or nesting deeper than 128, which serde_json and others
/// then refuse to read back. One walk, nothing built: strings are unescaped
/// into serde_json's scratch buffer, numbers parsed, depth counted.
pub(crate) fn strict_json(bytes: &[u8]) -> Result<(), Malformed> {
    serde_json::from_slice::<Walk>(bytes)
        .map(|_| ())
        .map_err(|e| Malformed::Json {
            line: e.line(),
            column: e.column(),
        })
}

/// A JSON value visited through `deserialize_any` (serde_json's full
/// checks) and dropped as it goes, unlike `IgnoredAny`, which takes the
/// lenient skipping path.
struct Walk;

impl<'de> serde::Deserialize<'de> for Walk {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Walk)
    }
}

impl<'de> serde::de::Visitor<'de> for Walk {
    type Value = Walk;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_str<E>(self, _: &str) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_unit<E>(self) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<Walk, A::Error> {
        while items.next_element::<Walk>()?.is_some() {}
        Ok(Walk)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut fields: A) -> Result<Walk, A::Error> {
        while fields.next_entry::<Walk, Walk>()?.is_some() {}
        Ok(Walk)
    }
}

/// Whether a value's JSON text is an object.
pub(crate) fn is_object(raw: &RawValue) -> bool {
    raw.get().trim_start().starts_with('{')
}

/// `archived_at` as its JSON text: RFC 3339, UTC, milliseconds, so always
/// 26 bytes with its quotes.
pub(crate) fn archived_at(at: DateTime<Utc>) -> Box<RawValue> {
    let text = at.to_rfc3339_opts(SecondsFormat::Millis, true);
    // A string always serialises; the fallback (`null`) is never used.
    serde_json::value::to_raw_value(&text).unwrap_or_default()
}

/// Appends the archived form of a record to `out`: its fields as sent
/// (each the exact JSON text), plus `extra` (a message's inlined body) and
/// `archived_at`, keys in order. A field of the same name as one added is
/// replaced, never repeated.
pub(crate) fn write_archived(
    fields: &Fields,
    extra: Option<(&'static str, &RawValue)>,
    archived_at: &RawValue,
    out: &mut Vec<u8>,
) {
    let mut doc: BTreeMap<&str, &RawValue> = fields
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_ref()))
        .collect();
    if let Some((name, value)) = extra {
        doc.insert(name, value);
    }
    doc.insert("archived_at", archived_at);
    // Keys and JSON texts always serialise, and a Vec never refuses a write.
    let _ = serde_json::to_writer(out, &doc);
}

/// `json` (valid JSON text) without the whitespace outside its strings, so
/// it fits on one NDJSON line. Strings cannot hold a raw line break (JSON
/// escapes it), so only text with a break outside a string is rewritten;
/// every value keeps its exact text (numbers are never re-printed).
pub(crate) fn one_line(json: &[u8]) -> Cow<'_, [u8]> {
    if !json.iter().any(|b| matches!(b, b'\n' | b'\r')) {
        return Cow::Borrowed(json);
    }
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
            out.push(b);
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            out.push(b);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_drops_only_whitespace_outside_strings() {
        let text = b"{\"a\" : [1,\r\n 2.50],\n\t\"b\": \"x \\\" \\\\\\n y\" }";
        let line = one_line(text);
        assert_eq!(
            std::str::from_utf8(&line).unwrap(),
            r#"{"a":[1,2.50],"b":"x \" \\\n y"}"#
        );
        let parsed: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(parsed, serde_json::from_slice::<Value>(text).unwrap());
        // Already one line: the same bytes, not a copy.
        assert!(matches!(one_line(b"{\"a\": 1}"), Cow::Borrowed(_)));
    }
}
