//! A destination: one connection to a customer's resources for one
//! project, the value types its shared fields are made of, and the target
//! that says which kind it is. Every type parses, so a stored
//! destination read back from the registry is valid by construction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::arn::{AccountId, Partition, RoleArn};
use crate::credentials::access_key::MaskedKeyId;
use crate::ids::{Channel, EventType, OrgId, ProjectId, RecordKind};
use crate::records::message::ArchiveRequest;
use crate::records::EventBatch;
use crate::s3::S3Target;
use crate::write::Compression;

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
    pub fn parse(value: &str) -> Result<Self, DestinationIdError> {
        crate::ids::minted::is_minted(value, "dst_")
            .then(|| Self(value.to_owned()))
            .ok_or(DestinationIdError)
    }

    /// A fresh id from the OS CSPRNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        crate::ids::minted::mint("dst_").map(Self)
    }
}
string_newtype!(DestinationId, DestinationIdError);

/// A destination as stored in the registry and returned by the API: what
/// every kind shares (who, which project, which identity, status and health)
/// and, in `target`, where its objects go. Serialised flat, as CONTRACT
/// section 3 has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub id: DestinationId,
    pub org_id: OrgId,
    pub project_id: ProjectId,
    /// Whose credentials write: a role, or an IAM user's access key.
    #[serde(flatten)]
    pub auth: Auth,
    pub channels: Vec<Channel>,
    /// The kinds of record it takes (CONTRACT section 3); records saved
    /// before v1.1 took messages only, and read so.
    #[serde(default = "messages_only")]
    pub record_kinds: Vec<RecordKind>,
    /// The event types it keeps; `None` keeps every type.
    #[serde(default)]
    pub event_types: Option<Vec<EventType>>,
    /// The role ARN's account (checked on load, so a hand-edited record
    /// cannot point writes elsewhere), or the account `GetCallerIdentity`
    /// named for the access key when it was checked.
    pub account_id: AccountId,
    pub created_at: DateTime<Utc>,
    /// When the customer last changed a setting (create, `PATCH`); None on
    /// records saved before v1.1. Health updates leave it alone.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    pub status: Status,
    #[serde(default)]
    pub health: Health,
    #[serde(flatten)]
    pub target: Target,
}

/// Whose credentials write to a destination (CONTRACT section 3, `auth`).
///
/// Stored flat as the contract has it: a role destination keeps its
/// `role_arn` and `role_session_name` (and no `auth`, as records saved
/// before v1.1 have it, so their `ETag` is unchanged); an access-key
/// destination keeps `auth` with the masked key id and no role fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AuthWire", into = "AuthWire")]
pub enum Auth {
    Role {
        role_arn: RoleArn,
        role_session_name: SessionName,
    },
    AccessKey(StoredAccessKey),
}

/// An access-key destination's `auth` as stored. The pair itself is in
/// Secrets Manager ([`crate::secrets`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAccessKey {
    pub access_key_id: MaskedKeyId,
    /// When the key was last set (create, `PATCH`, `PUT .../credentials`):
    /// what `rotation_due` is computed from.
    pub credentials_updated_at: DateTime<Utc>,
    /// The Secrets Manager version holding the pair; `None` only between
    /// the checks of a new key and its save. Never in an API answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_version_id: Option<String>,
}

/// The account an access-key destination has before its `access_key`
/// check learns the real one from `GetCallerIdentity`. Safe by
/// construction: as an `ExpectedBucketOwner` it makes S3 refuse, never
/// write elsewhere; a record carrying it does not load
/// ([`Destination::is_consistent`]) and an answer does not show it.
pub const UNKNOWN_ACCOUNT: &str = "000000000000";

/// How long a key may go unrotated before the API flags it (IAM User
/// Guide, "Security best practices in IAM": rotate access keys regularly;
/// AWS Security Hub's IAM.3 control flags keys older than 90 days).
pub const ROTATION_DUE_AFTER: chrono::TimeDelta = chrono::TimeDelta::days(90);

impl StoredAccessKey {
    /// Whether the key is due for rotation at `now` (`auth.rotation_due`).
    pub fn rotation_due(&self, now: DateTime<Utc>) -> bool {
        now - self.credentials_updated_at >= ROTATION_DUE_AFTER
    }
}

impl Auth {
    /// Who signs, in words for a remediation: "the role" or "the IAM user".
    pub fn principal_words(&self) -> &'static str {
        match self {
            Auth::Role { .. } => "the role",
            Auth::AccessKey(_) => "the IAM user of the access key",
        }
    }

    pub fn access_key(&self) -> Option<&StoredAccessKey> {
        match self {
            Auth::AccessKey(stored) => Some(stored),
            Auth::Role { .. } => None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct AuthWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role_arn: Option<RoleArn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role_session_name: Option<SessionName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<AuthMode>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
enum AuthMode {
    Role,
    AccessKey(StoredAccessKey),
}

impl TryFrom<AuthWire> for Auth {
    type Error = &'static str;
    fn try_from(wire: AuthWire) -> Result<Self, Self::Error> {
        match (wire.auth, wire.role_arn) {
            (None | Some(AuthMode::Role), Some(role_arn)) => Ok(Auth::Role {
                role_arn,
                role_session_name: wire.role_session_name.unwrap_or_default(),
            }),
            (None | Some(AuthMode::Role), None) => Err("a role destination needs role_arn"),
            (Some(AuthMode::AccessKey(stored)), None) if wire.role_session_name.is_none() => {
                Ok(Auth::AccessKey(stored))
            }
            (Some(AuthMode::AccessKey(_)), _) => {
                Err("an access-key destination has no role_arn or role_session_name")
            }
        }
    }
}

impl From<Auth> for AuthWire {
    fn from(auth: Auth) -> Self {
        match auth {
            Auth::Role {
                role_arn,
                role_session_name,
            } => AuthWire {
                role_arn: Some(role_arn),
                role_session_name: Some(role_session_name),
                auth: None,
            },
            Auth::AccessKey(stored) => AuthWire {
                role_arn: None,
                role_session_name: None,
                auth: Some(AuthMode::AccessKey(stored)),
            },
        }
    }
}

/// Fields of a stored destination the customer does not set: left out of
/// the [`Destination::etag`].
const NOT_SET_BY_CUSTOMER: [&str; 6] = [
    "org_id",
    "account_id",
    "created_at",
    "updated_at",
    "status",
    "health",
];

/// CONTRACT section 3's default `record_kinds`.
pub fn messages_only() -> Vec<RecordKind> {
    vec![RecordKind::Message]
}

impl Destination {
    /// Whether a record of `kind` on `channel` goes here: not paused, and
    /// the kind and channel among those it takes.
    pub fn accepts(&self, kind: RecordKind, channel: Channel) -> bool {
        self.status != Status::Disabled
            && self.record_kinds.contains(&kind)
            && self.channels.contains(&channel)
    }

    /// Whether an event of `event_type` is kept: every type unless
    /// `event_types` names some.
    pub fn keeps_event_type(&self, event_type: &EventType) -> bool {
        self.event_types
            .as_ref()
            .is_none_or(|kept| kept.contains(event_type))
    }

    /// The owner every call to the customer's resources must assert: the
    /// role's account, or the access key's (CONTRACT section 4).
    pub fn expected_owner(&self) -> &AccountId {
        match &self.auth {
            Auth::Role { role_arn, .. } => role_arn.account(),
            Auth::AccessKey(_) => &self.account_id,
        }
    }

    /// A record is consistent when its account is its role's, or, for an
    /// access key, the one its check learnt.
    pub fn is_consistent(&self) -> bool {
        match &self.auth {
            Auth::Role { role_arn, .. } => &self.account_id == role_arn.account(),
            Auth::AccessKey(_) => self.account_id.as_str() != UNKNOWN_ACCOUNT,
        }
    }

    /// The partition the destination's resources are in.
    pub fn partition(&self) -> Partition {
        match &self.auth {
            Auth::Role { role_arn, .. } => role_arn.partition(),
            Auth::AccessKey(_) => Partition::of_region(self.region().as_str()),
        }
    }

    /// The region of the target's resources, where its sessions sign.
    pub fn region(&self) -> &Region {
        self.target.region()
    }

    /// The `ETag` of the destination's settings (CONTRACT section 5): a
    /// quoted hash over its id, the fields the customer sets (section 3)
    /// and whether it is `disabled`, so a health update or an
    /// `active`/`failing` move leaves it unchanged and an `If-Match` fails
    /// only when a setting changed.
    pub fn etag(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let serde_json::Value::Object(fields) = &mut value {
            for field in NOT_SET_BY_CUSTOMER {
                fields.remove(field);
            }
            fields.insert(
                "disabled".to_owned(),
                serde_json::Value::Bool(self.status == Status::Disabled),
            );
        }
        // serde_json's map is ordered by key: the same settings, the same text.
        let digest = Sha256::digest(value.to_string().as_bytes());
        format!("\"{}\"", hex::encode(&digest[..16]))
    }

    /// The destination as the API shows it (CONTRACT section 3): `auth`
    /// always present (`{"mode": "role"}` for a role), an access key's
    /// masked id, `credentials_updated_at` and `rotation_due` at `now`,
    /// never the secret's version.
    pub fn api_view(&self, now: DateTime<Utc>) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let serde_json::Value::Object(fields) = &mut value {
            let auth = match &self.auth {
                Auth::Role { .. } => serde_json::json!({ "mode": "role" }),
                Auth::AccessKey(stored) => serde_json::json!({
                    "mode": "access_key",
                    "access_key_id": stored.access_key_id,
                    "credentials_updated_at": stored.credentials_updated_at,
                    "rotation_due": stored.rotation_due(now),
                }),
            };
            fields.insert("auth".to_owned(), auth);
            if self.account_id.as_str() == UNKNOWN_ACCOUNT {
                fields.remove("account_id");
            }
        }
        value
    }

    /// Whether reaching `other` needs the live checks again: a change to
    /// the identity or to where the target is (CONTRACT section 5's
    /// connection fields), not to layout, compression or channels.
    pub fn connection_differs(&self, other: &Destination) -> bool {
        self.auth != other.auth || self.target.connection_differs(&other.target)
    }

    /// The S3 target, when this destination is a bucket.
    pub fn s3(&self) -> Option<&S3Target> {
        match &self.target {
            Target::S3(s3) => Some(s3),
        }
    }
}

/// Where a destination's objects go: one variant per destination kind, each
/// kind a folder of its own (`crate::s3`). Registering a kind is a variant
/// here and its arms in [`crate::connections`] (the write and live checks),
/// [`crate::checks::static_checks`] (its fields) and
/// [`crate::credentials`] (its session policy).
///
/// On the wire the kind's fields sit flat in the destination (CONTRACT
/// section 3 has no kind field yet): S3, the only kind, reads them as they
/// are. A second kind needs a discriminating field in the contract first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    S3(S3Target),
}

impl Target {
    /// The region of the target's resources, where its sessions sign.
    pub fn region(&self) -> &Region {
        match self {
            Target::S3(s3) => &s3.region,
        }
    }

    /// How objects for this target are encoded.
    pub fn compression(&self) -> Compression {
        match self {
            Target::S3(s3) => s3.compression,
        }
    }

    /// Where an archived message lands in this target (CONTRACT section 4).
    pub fn message_key(&self, request: &ArchiveRequest) -> String {
        match self {
            Target::S3(s3) => crate::s3::keys::message_key(s3, request),
        }
    }

    /// What every key of this target starts with: `{folder}/`, or `""`.
    pub fn key_prefix(&self) -> String {
        match self {
            Target::S3(s3) => crate::s3::keys::folder_prefix(s3.folder_path.as_ref()),
        }
    }

    /// `key`, made when this target's keys started with `made_under`,
    /// moved under its prefix of now: a parked object replayed after a
    /// `folder_path` change lands in the new folder, the one the session
    /// policy allows. A key that does not start with `made_under` is kept.
    pub fn rebased_key(&self, key: &str, made_under: &str) -> String {
        match key.strip_prefix(made_under) {
            Some(rest) => format!("{}{rest}", self.key_prefix()),
            None => key.to_owned(),
        }
    }

    /// Where an events object lands in this target (CONTRACT section 4).
    pub fn event_key(&self, batch: &EventBatch<'_>) -> String {
        match self {
            Target::S3(s3) => crate::s3::keys::event_key(s3, batch),
        }
    }

    /// Whether the two targets are different connections (another bucket,
    /// region, folder or encryption for S3).
    pub fn connection_differs(&self, other: &Target) -> bool {
        match (self, other) {
            (Target::S3(a), Target::S3(b)) => a.connection_differs(b),
        }
    }

    /// The session policy that narrows our session to this target's writes
    /// (and the KMS use they need); `partition` is the role's.
    pub fn session_policy(&self, partition: Partition) -> String {
        match self {
            Target::S3(s3) => crate::s3::policy::session_policy(partition, s3),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Target::S3(s3) => s3.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        S3Target::deserialize(deserializer).map(Target::S3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored_key(updated: DateTime<Utc>) -> StoredAccessKey {
        StoredAccessKey {
            access_key_id: MaskedKeyId::parse("AKIA************MPLE").unwrap(),
            credentials_updated_at: updated,
            secret_version_id: Some("version-1".into()),
        }
    }

    #[test]
    fn a_role_destination_is_stored_as_before_v1_1() {
        let d = crate::store::memory::destination("p1", &[crate::ids::Channel::Email]);
        let text = serde_json::to_value(&d).unwrap();
        assert!(
            text.get("auth").is_none(),
            "no auth: the ETag of a v1 record is unchanged"
        );
        assert_eq!(text["role_session_name"], "stored-messages");
        let back: Destination = serde_json::from_value(text).unwrap();
        assert_eq!(back, d);
        assert_eq!(
            d.api_view(Utc::now())["auth"],
            serde_json::json!({ "mode": "role" })
        );
    }

    #[test]
    fn an_access_key_destination_round_trips_and_shows_no_version() {
        let mut d = crate::store::memory::destination("p1", &[crate::ids::Channel::Email]);
        d.account_id = AccountId::parse("444455556666").unwrap();
        let now = Utc::now();
        d.auth = Auth::AccessKey(stored_key(now - chrono::TimeDelta::days(89)));
        let text = serde_json::to_value(&d).unwrap();
        assert!(text.get("role_arn").is_none());
        assert_eq!(text["auth"]["secret_version_id"], "version-1");
        let back: Destination = serde_json::from_value(text.clone()).unwrap();
        assert_eq!(back, d);
        assert_eq!(
            d.expected_owner().as_str(),
            "444455556666",
            "the key's account"
        );
        assert!(d.is_consistent());
        let view = d.api_view(now);
        assert_eq!(view["auth"]["access_key_id"], "AKIA************MPLE");
        assert_eq!(view["auth"]["rotation_due"], false);
        assert!(view["auth"].get("secret_version_id").is_none());
        d.auth = Auth::AccessKey(stored_key(now - ROTATION_DUE_AFTER));
        assert_eq!(d.api_view(now)["auth"]["rotation_due"], true);
        // A record with both a key and a role is refused, not guessed at.
        let mut both = text;
        both["role_arn"] = "arn:aws:iam::111122223333:role/stored-messages-acme".into();
        assert!(serde_json::from_value::<Destination>(both).is_err());
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
    fn a_key_is_rebased_from_the_prefix_it_was_made_under() {
        let mut d = crate::store::memory::destination("p", &[]);
        let Target::S3(s3) = &mut d.target;
        s3.folder_path = Some(crate::s3::FolderPath::parse("new/place").unwrap());
        let t = &d.target;
        assert_eq!(t.key_prefix(), "new/place/");
        assert_eq!(
            t.rebased_key("old/email/m.json", "old/"),
            "new/place/email/m.json"
        );
        assert_eq!(t.rebased_key("email/m.json", ""), "new/place/email/m.json");
        assert_eq!(
            t.rebased_key("new/place/email/m.json", "new/place/"),
            "new/place/email/m.json"
        );
        // Not made under that prefix: kept as it is.
        assert_eq!(
            t.rebased_key("other/email/m.json", "old/"),
            "other/email/m.json"
        );
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
}
