//! A destination: one customer bucket connection for one project, and the
//! value types its fields are made of. Every type parses, so a stored
//! destination read back from the registry is valid by construction.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::arn::{AccountId, KmsKeyArn, RoleArn};
use crate::ids::{Channel, OrgId, ProjectId};

macro_rules! string_newtype {
    ($name:ident, $err:ident) => {
        impl TryFrom<String> for $name {
            type Error = $err;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

/// Why a bucket name breaks S3's naming rules; each variant is a rule a
/// customer can check against their console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BucketNameError {
    #[error("must be 3 to 63 characters long")]
    Length,
    #[error("may contain only lowercase letters, digits, '.' and '-'")]
    Characters,
    #[error("must start and end with a letter or digit")]
    Edges,
    /// S3 refuses these too: each dot-separated label is a DNS label.
    #[error("must not contain '..', '.-' or '-.'")]
    Labels,
    #[error("must not be formatted as an IP address")]
    IpAddress,
    #[error("must not start with 'xn--' or 'sthree-' nor end with '-s3alias' or '--ol-s3'")]
    Reserved,
}

/// An S3 bucket name under the general-purpose bucket naming rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BucketName(String);

impl BucketName {
    pub fn parse(value: &str) -> Result<Self, BucketNameError> {
        if !(3..=63).contains(&value.len()) {
            return Err(BucketNameError::Length);
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            return Err(BucketNameError::Characters);
        }
        let edge_ok =
            |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !edge_ok(value.bytes().next()) || !edge_ok(value.bytes().last()) {
            return Err(BucketNameError::Edges);
        }
        if value.contains("..") || value.contains(".-") || value.contains("-.") {
            return Err(BucketNameError::Labels);
        }
        if value.parse::<std::net::Ipv4Addr>().is_ok() {
            return Err(BucketNameError::IpAddress);
        }
        if value.starts_with("xn--")
            || value.starts_with("sthree-")
            || value.ends_with("-s3alias")
            || value.ends_with("--ol-s3")
        {
            return Err(BucketNameError::Reserved);
        }
        Ok(Self(value.to_owned()))
    }
}
string_newtype!(BucketName, BucketNameError);

/// Why a folder path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FolderPathError {
    #[error("must be at most 256 characters")]
    Length,
    #[error("must not start or end with '/' nor contain '//'")]
    Slashes,
    #[error("must not contain '.' or '..' segments")]
    DotSegment,
    #[error("segments may contain only letters, digits and !_.'()-")]
    Characters,
    /// Refused since contract v1.1: S3 takes `*` in a key, but IAM reads it
    /// as a wildcard, so `folder_path: "*"` would turn every policy built from
    /// the folder into `bucket/*/*` (any folder of the bucket).
    #[error(
        "must not contain '*': IAM policies built from the folder would read it as a wildcard"
    )]
    Wildcard,
}

/// The customer's prefix inside their bucket (CONTRACT section 3). Restricted
/// to S3's "safe" characters so a key can never climb out of it or need
/// encoding, minus `*`, which IAM matches as a wildcard: every policy we
/// render from a folder (session policy, setup policies, the customer
/// template) then names exactly that folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FolderPath(String);

impl FolderPath {
    /// The punctuation a segment may hold besides ASCII letters and digits.
    pub const PUNCTUATION: &'static str = "!_.'()-";

    pub fn parse(value: &str) -> Result<Self, FolderPathError> {
        if value.is_empty() || value.len() > 256 {
            return Err(FolderPathError::Length);
        }
        for segment in value.split('/') {
            if segment.is_empty() {
                return Err(FolderPathError::Slashes);
            }
            if segment == "." || segment == ".." {
                return Err(FolderPathError::DotSegment);
            }
            if segment.contains('*') {
                return Err(FolderPathError::Wildcard);
            }
            if !segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || Self::PUNCTUATION.contains(c))
            {
                return Err(FolderPathError::Characters);
            }
        }
        Ok(Self(value.to_owned()))
    }
}
string_newtype!(FolderPath, FolderPathError);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be an AWS region code such as eu-west-1")]
pub struct RegionError;

/// An AWS region code. Shape-checked only: new regions appear every year and
/// a wrong-but-plausible region is caught live by the probe write.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    pub fn parse(value: &str) -> Result<Self, RegionError> {
        // {area}[-gov|-iso*]-{direction}-{n}: us-east-1, us-gov-west-1, cn-north-1, ap-southeast-5
        let parts: Vec<&str> = value.split('-').collect();
        let lower = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
        let ok = match parts.as_slice() {
            [area, direction, n] => {
                area.len() == 2 && lower(area) && lower(direction) && is_region_number(n)
            }
            [area, qualifier, direction, n] => {
                area.len() == 2
                    && lower(area)
                    && (*qualifier == "gov" || qualifier.starts_with("iso"))
                    && lower(qualifier)
                    && lower(direction)
                    && is_region_number(n)
            }
            _ => false,
        };
        if ok && value.len() <= 32 {
            Ok(Self(value.to_owned()))
        } else {
            Err(RegionError)
        }
    }
}
string_newtype!(Region, RegionError);

fn is_region_number(n: &str) -> bool {
    (1..=2).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be 2-64 characters of letters, digits and +=,.@_-")]
pub struct SessionNameError;

/// The `RoleSessionName` we present; it shows up in the customer's CloudTrail.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionName(String);

impl SessionName {
    pub fn parse(value: &str) -> Result<Self, SessionNameError> {
        let ok = (2..=64).contains(&value.len())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        ok.then(|| Self(value.to_owned())).ok_or(SessionNameError)
    }
}
string_newtype!(SessionName, SessionNameError);

impl Default for SessionName {
    fn default() -> Self {
        Self("stored-messages".to_owned())
    }
}

/// How keys are laid out in the bucket (CONTRACT section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    #[default]
    ByRecipient,
    ByDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    Gzip,
    None,
}

/// Server-side encryption we ask S3 for on every write.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Encryption {
    /// No header: the bucket's default encryption applies.
    #[default]
    BucketDefault,
    Aes256,
    Kms {
        kms_key_arn: KmsKeyArn,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Failing,
    Disabled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Failing => "failing",
            Status::Disabled => "disabled",
        }
    }
}

/// The code and text of the last failed check, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Health {
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_ok_at: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    pub last_error: Option<HealthError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be dst_ followed by 26 lowercase base32 characters")]
pub struct DestinationIdError;

/// `dst_` + 26 lowercase base32 characters: 130 random bits, unguessable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DestinationId(String);

impl DestinationId {
    const ALPHABET: &'static [u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

    pub fn parse(value: &str) -> Result<Self, DestinationIdError> {
        let ok = value.strip_prefix("dst_").is_some_and(|rest| {
            rest.len() == 26 && rest.bytes().all(|b| Self::ALPHABET.contains(&b))
        });
        ok.then(|| Self(value.to_owned())).ok_or(DestinationIdError)
    }

    /// A fresh id from the OS CSPRNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 26];
        getrandom::fill(&mut bytes)?;
        let id: String = bytes
            .iter()
            .map(|b| Self::ALPHABET[usize::from(b % 32)] as char)
            .collect();
        Ok(Self(format!("dst_{id}")))
    }
}
string_newtype!(DestinationId, DestinationIdError);

/// A destination as stored in the registry and returned by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub id: DestinationId,
    pub org_id: OrgId,
    pub project_id: ProjectId,
    pub role_arn: RoleArn,
    pub role_session_name: SessionName,
    pub region: Region,
    pub bucket: BucketName,
    pub folder_path: Option<FolderPath>,
    pub channels: Vec<Channel>,
    pub layout: Layout,
    pub compression: Compression,
    pub encryption: Encryption,
    pub bucket_private_confirmed: bool,
    /// Always the role ARN's account; stored because the API shows it, and
    /// checked on load so a hand-edited record cannot point writes elsewhere.
    pub account_id: AccountId,
    pub created_at: DateTime<Utc>,
    pub status: Status,
    #[serde(default)]
    pub health: Health,
}

impl Destination {
    /// Whether a message on `channel` goes here.
    pub fn accepts(&self, channel: Channel) -> bool {
        self.status != Status::Disabled && self.channels.contains(&channel)
    }

    /// The owner every S3 call to this bucket must assert.
    pub fn expected_owner(&self) -> &AccountId {
        self.role_arn.account()
    }

    /// A record is consistent when its account matches its role.
    pub fn is_consistent(&self) -> bool {
        &self.account_id == self.role_arn.account()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for ok in [
            "abc",
            "acme-message-archive",
            "a.b-c",
            "1bucket",
            &"a".repeat(63),
            "my.bucket.1",
        ] {
            assert!(BucketName::parse(ok).is_ok(), "{ok}");
        }
        for (bad, err) in [
            ("ab", BucketNameError::Length),
            ("", BucketNameError::Length),
            (&"a".repeat(64) as &str, BucketNameError::Length),
            ("Acme", BucketNameError::Characters),
            ("acme_archive", BucketNameError::Characters),
            ("acmé-archive", BucketNameError::Characters),
            ("аcme", BucketNameError::Characters), // Cyrillic a
            ("acme archive", BucketNameError::Characters),
            ("acme/../x", BucketNameError::Characters),
            ("-acme", BucketNameError::Edges),
            ("acme-", BucketNameError::Edges),
            (".acme", BucketNameError::Edges),
            ("acme..archive", BucketNameError::Labels),
            ("acme.-archive", BucketNameError::Labels),
            ("acme-.archive", BucketNameError::Labels),
            ("192.168.5.4", BucketNameError::IpAddress),
            ("xn--acme", BucketNameError::Reserved),
            ("sthree-acme", BucketNameError::Reserved),
            ("acme-s3alias", BucketNameError::Reserved),
            ("acme--ol-s3", BucketNameError::Reserved),
        ] {
            assert_eq!(BucketName::parse(bad), Err(err), "{bad:?}");
        }
    }

    #[test]
    fn folder_paths_cannot_escape_or_need_encoding() {
        for ok in [
            "archive",
            "archive/prod",
            "a!_.'()-b/c",
            "x/..y/z.",
            &"a".repeat(256),
        ] {
            assert!(FolderPath::parse(ok).is_ok(), "{ok}");
        }
        for (bad, err) in [
            ("", FolderPathError::Length),
            (&"a".repeat(257) as &str, FolderPathError::Length),
            ("/archive", FolderPathError::Slashes),
            ("archive/", FolderPathError::Slashes),
            ("a//b", FolderPathError::Slashes),
            ("../other", FolderPathError::DotSegment),
            ("a/./b", FolderPathError::DotSegment),
            ("a/..", FolderPathError::DotSegment),
            ("a b", FolderPathError::Characters),
            ("a\\b", FolderPathError::Characters),
            ("a%2F..", FolderPathError::Characters),
            ("archive\u{2215}x", FolderPathError::Characters), // division slash look-alike
            ("a\u{0}", FolderPathError::Characters),
            ("*", FolderPathError::Wildcard),
            ("team*", FolderPathError::Wildcard),
            ("archive/*", FolderPathError::Wildcard),
            ("a/*/b", FolderPathError::Wildcard),
        ] {
            assert_eq!(FolderPath::parse(bad), Err(err), "{bad:?}");
        }
    }

    #[test]
    fn regions_are_shape_checked() {
        for ok in [
            "eu-west-1",
            "us-east-1",
            "ap-southeast-5",
            "us-gov-west-1",
            "cn-north-1",
            "us-isob-east-1",
            "il-central-1",
        ] {
            assert!(Region::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "eu-west",
            "EU-WEST-1",
            "eu-west-01",
            "eu-west-1a",
            "europe-west-1",
            "eu_west_1",
            "eu-west-1 ",
            "us-foo-east-1",
            "e-west-1",
        ] {
            assert!(Region::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn session_names() {
        for ok in ["stored-messages", "ab", "a+=,.@_-b", &"s".repeat(64)] {
            assert!(SessionName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["a", "", &"s".repeat(65), "a b", "a/b", "ä-session"] {
            assert!(SessionName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn destination_ids_are_random_and_well_formed() {
        let a = DestinationId::generate().unwrap();
        let b = DestinationId::generate().unwrap();
        assert_ne!(a, b);
        assert!(DestinationId::parse(a.as_str()).is_ok());
        assert_eq!(a.as_str().len(), 30);
        for bad in [
            "dst_",
            "dst_ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "xyz_abcdefghijklmnopqrstuvwx",
            "dst_abcdefghijklmnopqrstuvw1",
        ] {
            assert!(DestinationId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn encryption_wire_shape() {
        let kms: Encryption = serde_json::from_str(
            r#"{"mode":"kms","kms_key_arn":"arn:aws:kms:eu-west-1:111122223333:key/abc-1"}"#,
        )
        .unwrap();
        assert!(matches!(kms, Encryption::Kms { .. }));
        let aes: Encryption = serde_json::from_str(r#"{"mode":"aes256"}"#).unwrap();
        assert_eq!(aes, Encryption::Aes256);
        assert!(serde_json::from_str::<Encryption>(r#"{"mode":"kms"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&Encryption::BucketDefault).unwrap(),
            r#"{"mode":"bucket_default"}"#
        );
    }
}
