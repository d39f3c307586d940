//! ARNs a customer hands us: the role we assume and the KMS key their bucket
//! encrypts with. Parsed strictly because the role ARN decides whose account we
//! act in, and the account in it is the `ExpectedBucketOwner` of every write.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The AWS partitions we can reach; anything else is refused up front.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Partition {
    Aws,
    AwsCn,
    AwsUsGov,
}

impl Partition {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "aws" => Some(Self::Aws),
            "aws-cn" => Some(Self::AwsCn),
            "aws-us-gov" => Some(Self::AwsUsGov),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::AwsCn => "aws-cn",
            Self::AwsUsGov => "aws-us-gov",
        }
    }

    /// The partition a region belongs to (`cn-*` China, `us-gov-*`
    /// GovCloud; "Regions and endpoints", AWS General Reference). Used for
    /// access-key destinations, which have no ARN of their own to read it
    /// from.
    pub fn of_region(region: &str) -> Self {
        if region.starts_with("cn-") {
            Self::AwsCn
        } else if region.starts_with("us-gov-") {
            Self::AwsUsGov
        } else {
            Self::Aws
        }
    }

    /// The DNS suffix of the partition's service endpoints, as `kms:ViaService`
    /// names them (`s3.cn-north-1.amazonaws.com.cn` in China; AWS KMS
    /// Developer Guide, "kms:ViaService").
    pub fn dns_suffix(self) -> &'static str {
        match self {
            Self::AwsCn => "amazonaws.com.cn",
            Self::Aws | Self::AwsUsGov => "amazonaws.com",
        }
    }
}

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(value: &str) -> Option<Self> {
        (value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountId {
    type Error = ArnError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or(ArnError::Account)
    }
}

impl From<AccountId> for String {
    fn from(value: AccountId) -> Self {
        value.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an ARN was refused. Messages are written for the customer's AWS admin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    #[error(
        "must look like arn:aws:iam::123456789012:role/NAME (partition aws, aws-cn or aws-us-gov)"
    )]
    RoleShape,
    #[error("the account id must be 12 digits")]
    Account,
    #[error("the role name must be 1-64 characters of letters, digits and +=,.@_- (path segments likewise)")]
    RoleName,
    #[error("must be a KMS key or alias ARN, like arn:aws:kms:eu-west-1:123456789012:key/ID or .../alias/NAME")]
    KmsShape,
}

fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

/// A customer's IAM role: `arn:{partition}:iam::{account}:role/{path/}{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoleArn {
    raw: String,
    partition: Partition,
    account: AccountId,
    /// Byte offset of the name inside `raw`: the part after the last `/`.
    name_at: usize,
}

impl RoleArn {
    pub fn parse(value: &str) -> Result<Self, ArnError> {
        if value.len() > 2048 {
            return Err(ArnError::RoleShape);
        }
        let mut parts = value.splitn(6, ':');
        let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(ArnError::RoleShape);
        };
        let partition = Partition::parse(partition).ok_or(ArnError::RoleShape)?;
        let account = AccountId::parse(account).ok_or(ArnError::Account)?;
        let path_and_name = resource.strip_prefix("role/").ok_or(ArnError::RoleShape)?;
        let segments: Vec<&str> = path_and_name.split('/').collect();
        let name = segments.last().copied().unwrap_or_default();
        let segments_ok = segments.iter().all(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars().all(is_iam_name_char)
                && !s.trim_matches('.').is_empty()
        });
        if !segments_ok || path_and_name.len() > 512 + 64 {
            return Err(ArnError::RoleName);
        }
        Ok(Self {
            raw: value.to_owned(),
            partition,
            account,
            name_at: value.len() - name.len(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn partition(&self) -> Partition {
        self.partition
    }

    /// The customer's account: the only owner we accept for their bucket.
    pub fn account(&self) -> &AccountId {
        &self.account
    }

    /// The role name without its path; the prefix rule applies to this part
    /// only, so `role/stored-messages/evil` does not pass on its path.
    pub fn name(&self) -> &str {
        &self.raw[self.name_at..]
    }

    pub fn has_name_prefix(&self, prefix: &str) -> bool {
        self.name().starts_with(prefix)
    }
}

impl TryFrom<String> for RoleArn {
    type Error = ArnError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<RoleArn> for String {
    fn from(value: RoleArn) -> Self {
        value.raw
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// A KMS key (`key/ID`) or alias (`alias/NAME`) ARN. Aliases are allowed
/// because customers rotate keys behind them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KmsKeyArn {
    raw: String,
    is_alias: bool,
}

impl KmsKeyArn {
    pub fn parse(value: &str) -> Result<Self, ArnError> {
        let mut parts = value.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some("kms"),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(ArnError::KmsShape);
        };
        let id_ok = |s: &str, extra: &str| {
            (1..=256).contains(&s.len())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
        };
        let is_alias = match resource.split_once('/') {
            Some(("key", id)) if id_ok(id, "-") => false,
            Some(("alias", name)) if id_ok(name, "/_-") && !name.starts_with("aws/") => true,
            _ => return Err(ArnError::KmsShape),
        };
        if Partition::parse(partition).is_none()
            || crate::destination::Region::parse(region).is_err()
            || AccountId::parse(account).is_none()
        {
            return Err(ArnError::KmsShape);
        }
        Ok(Self {
            raw: value.to_owned(),
            is_alias,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn is_alias(&self) -> bool {
        self.is_alias
    }

    fn part(&self, index: usize) -> &str {
        self.raw.split(':').nth(index).unwrap_or_default()
    }

    /// Parsed, so always one of the three.
    pub fn partition(&self) -> Partition {
        Partition::parse(self.part(1)).unwrap_or(Partition::Aws)
    }

    pub fn region(&self) -> &str {
        self.part(3)
    }

    pub fn account(&self) -> &str {
        self.part(4)
    }

    /// `alias/NAME` for an alias ARN, as `kms:ResourceAliases` lists it.
    pub fn alias_name(&self) -> Option<&str> {
        self.is_alias
            .then(|| self.raw.splitn(6, ':').nth(5))
            .flatten()
    }
}

impl TryFrom<String> for KmsKeyArn {
    type Error = ArnError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<KmsKeyArn> for String {
    fn from(value: KmsKeyArn) -> Self {
        value.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_in_every_partition_parse() {
        for (arn, partition, name) in [
            (
                "arn:aws:iam::111122223333:role/stored-messages-acme",
                Partition::Aws,
                "stored-messages-acme",
            ),
            (
                "arn:aws-cn:iam::111122223333:role/stored-messages",
                Partition::AwsCn,
                "stored-messages",
            ),
            (
                "arn:aws-us-gov:iam::111122223333:role/a/b/stored-messages-x",
                Partition::AwsUsGov,
                "stored-messages-x",
            ),
            (
                "arn:aws:iam::111122223333:role/svc/stored-messages+=,.@_-",
                Partition::Aws,
                "stored-messages+=,.@_-",
            ),
        ] {
            let parsed = RoleArn::parse(arn).unwrap();
            assert_eq!(parsed.partition(), partition);
            assert_eq!(parsed.account().as_str(), "111122223333");
            assert_eq!(parsed.name(), name);
            assert_eq!(parsed.as_str(), arn);
        }
    }

    #[test]
    fn malformed_role_arns_are_refused_with_the_reason() {
        for (arn, err) in [
            ("", ArnError::RoleShape),
            (
                "arn:aws:iam::111122223333:user/stored-messages",
                ArnError::RoleShape,
            ),
            (
                "arn:aws:sts::111122223333:role/stored-messages",
                ArnError::RoleShape,
            ),
            (
                "arn:aws-iso:iam::111122223333:role/stored-messages",
                ArnError::RoleShape,
            ),
            (
                "arn:aws:iam:eu-west-1:111122223333:role/stored-messages",
                ArnError::RoleShape,
            ),
            (
                "arn:aws:iam::11112222333:role/stored-messages",
                ArnError::Account,
            ),
            (
                "arn:aws:iam::1111222233334:role/stored-messages",
                ArnError::Account,
            ),
            (
                "arn:aws:iam::11112222333x:role/stored-messages",
                ArnError::Account,
            ),
            ("arn:aws:iam::111122223333:role/", ArnError::RoleName),
            (
                "arn:aws:iam::111122223333:role/a//stored-messages",
                ArnError::RoleName,
            ),
            (
                "arn:aws:iam::111122223333:role/stored-messages/",
                ArnError::RoleName,
            ),
            (
                "arn:aws:iam::111122223333:role/stored messages",
                ArnError::RoleName,
            ),
            (
                "arn:aws:iam::111122223333:role/stored-messagés",
                ArnError::RoleName,
            ),
            (
                "arn:aws:iam::111122223333:role/../stored-messages",
                ArnError::RoleName,
            ),
        ] {
            assert_eq!(RoleArn::parse(arn), Err(err), "{arn:?}");
        }
        let long = format!("arn:aws:iam::111122223333:role/{}", "a".repeat(65));
        assert_eq!(RoleArn::parse(&long), Err(ArnError::RoleName));
        assert_eq!(RoleArn::parse(&"a".repeat(5000)), Err(ArnError::RoleShape));
    }

    #[test]
    fn the_prefix_applies_to_the_name_not_the_path() {
        let in_path =
            RoleArn::parse("arn:aws:iam::111122223333:role/stored-messages/admin").unwrap();
        assert!(!in_path.has_name_prefix("stored-messages"));
        let named =
            RoleArn::parse("arn:aws:iam::111122223333:role/team/stored-messages-prod").unwrap();
        assert!(named.has_name_prefix("stored-messages"));
        let case = RoleArn::parse("arn:aws:iam::111122223333:role/Stored-Messages").unwrap();
        assert!(!case.has_name_prefix("stored-messages"));
    }

    #[test]
    fn kms_key_and_alias_arns() {
        let key = KmsKeyArn::parse(
            "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        )
        .unwrap();
        assert!(!key.is_alias());
        assert_eq!(key.alias_name(), None);
        assert_eq!(
            (key.partition(), key.region(), key.account()),
            (Partition::Aws, "eu-west-1", "111122223333")
        );
        let alias =
            KmsKeyArn::parse("arn:aws-cn:kms:cn-north-1:111122223333:alias/archive/prod").unwrap();
        assert!(alias.is_alias());
        assert_eq!(alias.alias_name(), Some("alias/archive/prod"));
        assert_eq!(alias.partition(), Partition::AwsCn);
        for bad in [
            "",
            "arn:aws:kms:eu-west-1:111122223333:key/",
            "arn:aws:kms:eu-west-1:111122223333:alias/aws/s3",
            "arn:aws:kms::111122223333:key/abc",
            "arn:aws:kms:eu-west-1:1111:key/abc",
            "arn:aws:s3:eu-west-1:111122223333:key/abc",
            "arn:aws:kms:eu-west-1:111122223333:key/abc def",
            "alias/foo",
        ] {
            assert_eq!(KmsKeyArn::parse(bad), Err(ArnError::KmsShape), "{bad:?}");
        }
    }
}
