//! The access-key source (CONTRACT section 3, `auth.mode` `access_key`): an
//! IAM user's long-lived key pair, for customers who cannot create a role
//! (Braze's "AWS secret key" method). The pair is kept only in Secrets
//! Manager ([`crate::secrets`]); this module holds its shapes, the mask the
//! API shows, the `access_key` check's call and the two sources: the stored
//! pair (archive, health) and a pair being checked before it is stored
//! (validation, rotation).

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use aws_credential_types::Credentials;
use serde::{Deserialize, Serialize};

use super::{CredentialSource, CredentialsError};
use crate::arn::AccountId;
use crate::failure::{sdk_outcome, SdkOutcome};
use crate::secrets::{SecretName, SecretStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessKeyShapeError {
    #[error("access_key_id must be an IAM user's long-term access key id: AKIA followed by 16 uppercase letters and digits (a temporary ASIA key expires within hours)")]
    Id,
    #[error(
        "secret_access_key must be the 40-character secret AWS showed when the key was created"
    )]
    Secret,
}

/// A long-term access key id: `AKIA` + 16 of `[A-Z0-9]` (IAM User Guide,
/// "Manage access keys for IAM users": `AKIA` keys are long-term, `ASIA`
/// keys are temporary session keys, which would stop working within hours).
/// Not a secret (CloudTrail shows it), but only its mask leaves Secrets
/// Manager: it has no `Serialize` and no `Display`, so it cannot slip into
/// an answer or a record whole.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AccessKeyId(String);

impl AccessKeyId {
    pub fn parse(value: &str) -> Result<Self, AccessKeyShapeError> {
        let ok = value.len() == 20
            && value.starts_with("AKIA")
            && value
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        ok.then(|| Self(value.to_owned()))
            .ok_or(AccessKeyShapeError::Id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the API shows (CONTRACT section 3): `AKIA************WXYZ`, the
    /// last 4 characters only, enough for the customer to tell keys apart.
    pub fn masked(&self) -> MaskedKeyId {
        MaskedKeyId(format!("AKIA{}{}", "*".repeat(12), &self.0[16..]))
    }
}

impl fmt::Debug for AccessKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessKeyId({})", self.masked().0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be AKIA, 12 asterisks and the key id's last 4 characters")]
pub struct MaskedKeyIdError;

/// An access key id as stored in the registry and shown by the API.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MaskedKeyId(String);

impl MaskedKeyId {
    pub fn parse(value: &str) -> Result<Self, MaskedKeyIdError> {
        let ok = value.len() == 20
            && value.starts_with("AKIA************")
            && value[16..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        ok.then(|| Self(value.to_owned())).ok_or(MaskedKeyIdError)
    }
}
string_newtype!(MaskedKeyId, MaskedKeyIdError);

/// A secret access key. Never printed: `Debug` is redacted and there is no
/// `Display` or `Serialize`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretAccessKey(String);

impl SecretAccessKey {
    /// AWS's secret keys are 40 characters of base64's alphabet. The shape
    /// check turns a pasted id, a truncated copy or a stray space into
    /// `auth_invalid` instead of a confusing `access_key_invalid`.
    pub fn parse(value: &str) -> Result<Self, AccessKeyShapeError> {
        let ok = value.len() == 40
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'+');
        ok.then(|| Self(value.to_owned()))
            .ok_or(AccessKeyShapeError::Secret)
    }

    /// The secret itself, for signing and for Secrets Manager only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretAccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretAccessKey(<redacted>)")
    }
}

/// A customer's key pair, as given in a request or read from Secrets Manager.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccessKeyPair {
    pub id: AccessKeyId,
    pub secret: SecretAccessKey,
}

impl AccessKeyPair {
    fn credentials(&self) -> Credentials {
        // No expiry: a long-term key is used until the customer rotates it,
        // and a rotation is a new secret version, hence a new identity.
        Credentials::new(
            self.id.as_str(),
            self.secret.expose(),
            None,
            None,
            "stored-messages-access-key",
        )
    }
}

/// Who a key belongs to, from `sts:GetCallerIdentity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account: AccountId,
    /// `arn:aws:iam::{account}:user/...`, or `...:root` for the root user.
    pub arn: String,
}

impl CallerIdentity {
    /// The account's root user: its keys can do anything in the account
    /// and cannot be scoped, so CONTRACT section 3 refuses them (and the
    /// IAM User Guide, "Root user best practices", says not to have any).
    pub fn is_root(&self) -> bool {
        self.arn.ends_with(":root")
    }
}

/// Why `sts:GetCallerIdentity` with the customer's key failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyCheckError {
    /// STS does not know the key, or the secret does not match it
    /// (`InvalidClientTokenId`, `SignatureDoesNotMatch`): deleted,
    /// deactivated, or mistyped.
    #[error("AWS does not accept the access key ({0})")]
    Rejected(String),
    #[error("GetCallerIdentity failed ({code})")]
    Failed { code: String, retryable: bool },
}

/// `sts:GetCallerIdentity` signed with `credentials`: the `access_key` check
/// (CONTRACT section 5). It needs no permission, so it tells a bad key from
/// a key without rights ("GetCallerIdentity", STS API Reference).
pub async fn caller_identity(sts: &aws_sdk_sts::Client) -> Result<CallerIdentity, KeyCheckError> {
    let out = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|err| match sdk_outcome(&err) {
            SdkOutcome::Service(facts) => {
                let code = facts.code.unwrap_or("no error code").to_owned();
                if matches!(
                    facts.code,
                    Some("InvalidClientTokenId" | "SignatureDoesNotMatch" | "AccessDenied")
                ) || (facts.status == Some(403) && facts.code.is_none())
                {
                    KeyCheckError::Rejected(code)
                } else {
                    KeyCheckError::Failed {
                        retryable: facts.is_transient(),
                        code,
                    }
                }
            }
            SdkOutcome::Transport => KeyCheckError::Failed {
                code: "no answer from STS".into(),
                retryable: true,
            },
            SdkOutcome::Construction => KeyCheckError::Failed {
                code: "request could not be built".into(),
                retryable: false,
            },
        })?;
    let account =
        out.account()
            .and_then(AccountId::parse)
            .ok_or_else(|| KeyCheckError::Failed {
                code: "STS returned no account".into(),
                retryable: false,
            })?;
    // Without an ARN a root key could not be told apart: no pass.
    let arn = out
        .arn()
        .filter(|arn| !arn.is_empty())
        .ok_or_else(|| KeyCheckError::Failed {
            code: "STS returned no ARN".into(),
            retryable: false,
        })?;
    Ok(CallerIdentity {
        account,
        arn: arn.to_owned(),
    })
}

/// A stored key: one version of its secret, read once and kept for the
/// life of the identity (a rotation names a new version, hence a new
/// identity).
pub struct StoredKeySource {
    pub secrets: SecretStore,
    pub name: SecretName,
    pub version: String,
}

impl fmt::Debug for StoredKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKeySource")
            .field("name", &self.name.as_str())
            .finish()
    }
}

impl CredentialSource for StoredKeySource {
    fn fetch(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<Credentials, CredentialsError>> + Send + '_>> {
        Box::pin(async move {
            let pair = self.secrets.read(&self.name, &self.version).await?;
            Ok(pair.credentials())
        })
    }
}

/// Keys given in the request being checked (create, `PATCH`, rotation):
/// used as they are, before anything is stored.
pub struct GivenKeySource(pub AccessKeyPair);

impl fmt::Debug for GivenKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("GivenKeySource").field(&self.0.id).finish()
    }
}

impl CredentialSource for GivenKeySource {
    fn fetch(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<Credentials, CredentialsError>> + Send + '_>> {
        Box::pin(async move { Ok(self.0.credentials()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    #[test]
    fn key_ids_are_long_term_keys_and_show_their_last_four() {
        let id = AccessKeyId::parse(ID).unwrap();
        assert_eq!(id.masked().as_str(), "AKIA************MPLE");
        assert!(!format!("{id:?}").contains("IOSFODNN7EXA"));
        for bad in [
            "ASIAIOSFODNN7EXAMPLE",  // a session key: expires
            "AKIAIOSFODNN7EXAMPL",   // 19
            "AKIAIOSFODNN7EXAMPLEE", // 21
            "AKIAiosfodnn7example",
            " AKIAIOSFODNN7EXAMPL",
        ] {
            assert_eq!(
                AccessKeyId::parse(bad),
                Err(AccessKeyShapeError::Id),
                "{bad}"
            );
        }
        assert!(MaskedKeyId::parse("AKIA************MPLE").is_ok());
        assert!(
            MaskedKeyId::parse(ID).is_err(),
            "a full id is not a masked one"
        );
    }

    #[test]
    fn secrets_have_aws_shape_and_never_print() {
        let secret = SecretAccessKey::parse(SECRET).unwrap();
        assert!(!format!("{secret:?}").contains("EXAMPLEKEY"));
        for bad in [
            &SECRET[1..],
            &format!("{SECRET} "),
            &format!("{}é", &SECRET[..39]),
        ] {
            assert_eq!(
                SecretAccessKey::parse(bad),
                Err(AccessKeyShapeError::Secret)
            );
        }
    }

    #[test]
    fn root_is_told_by_the_arn() {
        let account = AccountId::parse("111122223333").unwrap();
        let root = CallerIdentity {
            account: account.clone(),
            arn: "arn:aws:iam::111122223333:root".into(),
        };
        let user = CallerIdentity {
            account,
            arn: "arn:aws:iam::111122223333:user/archiver".into(),
        };
        assert!(root.is_root());
        assert!(!user.is_root());
    }
}
