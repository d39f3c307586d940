//! The S3 destination kind: the customer's bucket (CONTRACT sections 3 and
//! 4). What a destination kind provides, this folder provides for S3:
//!
//! | what | where |
//! |---|---|
//! | the target's fields and their value types | here ([`S3Target`]) |
//! | static checks of those fields | [`checks::static_checks`] |
//! | live checks: the probe write, the public-read check | [`checks`] |
//! | object keys of each record kind, the probe key | [`keys`] |
//! | the write (`PutObject`, write-once) | [`put`] |
//! | the session policy and the policies customers paste | [`policy`] |
//!
//! [`crate::destination::Target`] registers it; nothing outside this folder
//! names a bucket field except through [`S3Target`].

pub mod checks;
pub mod keys;
pub mod policy;
pub mod put;

use serde::{Deserialize, Serialize};

use crate::arn::KmsKeyArn;
use crate::destination::Region;
use crate::write::Compression;

/// Where and how an S3 destination writes: the section 3 fields that name
/// the customer's bucket. Serialised flat into the destination, as the
/// contract's wire format has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Target {
    /// The bucket's region: the S3 client's and the KMS condition's.
    pub region: Region,
    pub bucket: BucketName,
    pub folder_path: Option<FolderPath>,
    pub layout: Layout,
    pub compression: Compression,
    pub encryption: Encryption,
    pub bucket_private_confirmed: bool,
}

impl S3Target {
    /// Whether `other` writes somewhere else or otherwise: another region,
    /// bucket, folder or encryption, which the live checks must prove again.
    /// Layout and compression change only keys and bytes.
    pub fn connection_differs(&self, other: &S3Target) -> bool {
        self.region != other.region
            || self.bucket != other.bucket
            || self.folder_path != other.folder_path
            || self.encryption != other.encryption
    }
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

/// How object keys are laid out (CONTRACT section 4): by recipient, to
/// find or erase one person's messages by prefix, or by date, for Athena
/// and lifecycle rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    #[default]
    ByRecipient,
    ByDate,
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
