//! Identifiers that end up inside S3 keys. Each type only exists in a valid
//! form, so key naming can never be handed a value that escapes its segment.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A field that broke the contract's rules. Carries the field name and the
/// rule only, never the offending value: values may be PII.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct InvalidField {
    pub field: &'static str,
    pub rule: &'static str,
}

impl InvalidField {
    pub fn new(field: &'static str, rule: &'static str) -> Self {
        Self { field, rule }
    }
}

fn is_slug_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

macro_rules! slug_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:literal, $extra:literal, $rule:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, InvalidField> {
                let ok = (1..=$max).contains(&value.len())
                    && value.chars().all(|c| is_slug_char(c) || $extra.contains(c))
                    && value != "."
                    && value != "..";
                if ok {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(InvalidField::new($field, $rule))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidField;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

slug_id!(
    /// The tenant. Only ever taken from the authorizer context or from an
    /// archive request the sending platform produced, never from an API body.
    OrgId, "org_id", 64, "", "must be 1-64 characters of [A-Za-z0-9_-]"
);
slug_id!(
    /// A project of an org; destinations hang off projects.
    ProjectId, "project_id", 64, "", "must be 1-64 characters of [A-Za-z0-9_-]"
);
slug_id!(
    /// The campaign a message belongs to; absent means `unassociated` in keys.
    CampaignId, "campaign_id", 64, "", "must be 1-64 characters of [A-Za-z0-9_-]"
);
slug_id!(
    /// The platform's id of one sent message: the file name of its object, so
    /// `.` and `..` are refused to keep the key inside its prefix.
    MessageId, "message_id", 128, ".", "must be 1-128 characters of [A-Za-z0-9._-], not '.' or '..'"
);

slug_id!(
    /// The platform's id of one engagement event (CONTRACT section 2b): the
    /// reader's deduplication key, and what an events object's `batch_id`
    /// is computed from.
    EventId, "event_id", 128, ".", "must be 1-128 characters of [A-Za-z0-9._-], not '.' or '..'"
);

/// The ids we mint (`dst_`, `bf_`): a prefix and 26 lowercase base32
/// characters, 130 bits from the OS CSPRNG, so an id is unguessable and
/// never names another tenant's record by accident (CONTRACT sections 3, 5).
pub(crate) mod minted {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    const LEN: usize = 26;

    /// Whether `value` is `prefix` and 26 characters of the alphabet.
    pub(crate) fn is_minted(value: &str, prefix: &str) -> bool {
        value
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.len() == LEN && rest.bytes().all(|b| ALPHABET.contains(&b)))
    }

    /// A fresh id with `prefix`.
    pub(crate) fn mint(prefix: &str) -> Result<String, getrandom::Error> {
        let mut bytes = [0u8; LEN];
        getrandom::fill(&mut bytes)?;
        let suffix: String = bytes
            .iter()
            .map(|b| ALPHABET[usize::from(b % 32)] as char)
            .collect();
        Ok(format!("{prefix}{suffix}"))
    }
}

/// What happened to a sent message (CONTRACT section 2b):
/// `[a-z][a-z0-9_]{0,63}`, a segment of an events object's key. The
/// standard types are in [`crate::records::event::STANDARD_EVENT_TYPES`];
/// any other value of this shape is kept as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventType(String);

impl EventType {
    pub fn parse(value: &str) -> Result<Self, InvalidField> {
        let mut bytes = value.bytes();
        let ok = value.len() <= 64
            && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
            && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidField::new(
                "event_type",
                "must be 1-64 characters of [a-z0-9_], starting with a letter",
            ))
        }
    }
}
string_newtype!(EventType, InvalidField);

/// The kinds of record a destination takes (CONTRACT section 3,
/// `record_kinds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Message,
    Event,
}

impl RecordKind {
    pub const ALL: [RecordKind; 2] = [RecordKind::Message, RecordKind::Event];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Message => "message",
            RecordKind::Event => "event",
        }
    }

    pub fn parse(value: &str) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| k.as_str() == value)
    }
}

/// The channel a message was sent on; the first segment of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Push,
    InApp,
    WebPush,
    Whatsapp,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Channel::Email,
        Channel::Sms,
        Channel::Push,
        Channel::InApp,
        Channel::WebPush,
        Channel::Whatsapp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
            Channel::InApp => "in_app",
            Channel::WebPush => "web_push",
            Channel::Whatsapp => "whatsapp",
        }
    }

    pub fn parse(value: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == value)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_ids_follow_the_contract() {
        for ok in ["acme", "a", "A-b_9", &"x".repeat(64)] {
            assert!(OrgId::parse(ok).is_ok(), "{ok}");
            assert!(ProjectId::parse(ok).is_ok(), "{ok}");
            assert!(CampaignId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            &"x".repeat(65),
            "a/b",
            "a.b",
            "a b",
            "ümlaut",
            "..",
            "a\n",
            "ａcme",
        ] {
            assert!(OrgId::parse(bad).is_err(), "{bad:?}");
            assert!(ProjectId::parse(bad).is_err(), "{bad:?}");
            assert!(CampaignId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn message_ids_allow_dots_but_not_dot_segments() {
        for ok in [
            "9c438a20d26e4e9f8ad4edea23f811cd",
            "a.b",
            "...",
            "a-b_c.d",
            &"m".repeat(128),
        ] {
            assert!(MessageId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [".", "..", "", "a/b", "a\\b", &"m".repeat(129), "a%2F", "é"] {
            assert!(MessageId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_name_the_field_not_the_value() {
        let err = OrgId::parse("secret@example.com").unwrap_err();
        assert_eq!(err.field, "org_id");
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn event_types_are_lowercase_words() {
        for ok in [
            "click",
            "rendering_failure",
            "opt_out",
            "a",
            "x9_",
            &"e".repeat(64),
        ] {
            assert!(EventType::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Click",
            "9lives",
            "_x",
            "a-b",
            "a.b",
            "a/b",
            "é",
            &"e".repeat(65),
        ] {
            assert!(EventType::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            serde_json::from_str::<EventType>("\"Open\"").map_err(|e| e.is_data()),
            Err(true)
        );
        assert!(EventId::parse("ev-01JD7QH9ZK8M3T2R6W4Y5X1A0B").is_ok());
        assert!(EventId::parse("..").is_err());
        for kind in RecordKind::ALL {
            assert_eq!(RecordKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(RecordKind::parse("events"), None);
    }

    #[test]
    fn channels_round_trip_through_their_wire_names() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
        assert_eq!(Channel::parse("fax"), None);
        assert_eq!(Channel::parse("Email"), None);
    }
}
