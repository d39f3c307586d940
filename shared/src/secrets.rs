//! Where access-key destinations' key pairs live: AWS Secrets Manager, one
//! secret per destination named `{CREDENTIALS_SECRET_PREFIX}{org_id}/{destination_id}`
//! (CONTRACT section 3), encrypted with our KMS key. Never the control
//! bucket, never an API answer, never a log line.
//!
//! The registry names the secret *version* a destination uses, and readers
//! read that version, not `AWSCURRENT`: a rotation puts a new version, then
//! saves the destination naming it, so a failed or raced save leaves every
//! reader on the old version, which Secrets Manager keeps as `AWSPREVIOUS`
//! ("Secret versions", Secrets Manager User Guide).

use std::fmt;

use serde::Deserialize;

use crate::credentials::access_key::{AccessKeyId, AccessKeyPair, SecretAccessKey};
use crate::credentials::CredentialsError;
use crate::destination::DestinationId;
use crate::failure::code_and_retry;
use crate::ids::OrgId;

/// A destination's secret name. Built only from the authorizer's org and a
/// registry id, so no request can name another org's secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretName(String);

impl SecretName {
    pub fn of(prefix: &str, org: &OrgId, destination: &DestinationId) -> Self {
        Self(format!("{prefix}{org}/{destination}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The secret's JSON as read back. Never logged: the type has no `Debug`.
#[derive(Deserialize)]
struct Stored {
    access_key_id: String,
    secret_access_key: String,
}

/// A failed Secrets Manager call. Messages carry codes only, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Secrets Manager {operation} failed ({code})")]
pub struct SecretError {
    pub operation: &'static str,
    pub code: String,
    /// The secret does not exist (any more): a destination whose secret is
    /// gone will not get it back by retrying.
    pub gone: bool,
}

impl SecretError {
    fn of<E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(
        operation: &'static str,
        err: &aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::http::Response,
        >,
    ) -> Self {
        let (code, _) = code_and_retry(err);
        Self {
            gone: code == "ResourceNotFoundException",
            operation,
            code,
        }
    }

    fn answer(operation: &'static str, code: &str) -> Self {
        Self {
            operation,
            code: code.to_owned(),
            gone: false,
        }
    }
}

impl From<SecretError> for CredentialsError {
    fn from(err: SecretError) -> Self {
        if err.gone {
            CredentialsError::SecretGone
        } else {
            CredentialsError::SecretUnavailable(err.code)
        }
    }
}

/// How often, and how far apart, a `CreateSecret` is retried while a
/// secret of the same name is still being deleted. Forced deletion is
/// asynchronous ("DeleteSecret", Secrets Manager API Reference: "If you
/// delete a secret and then immediately create a secret with the same name,
/// use appropriate back off and retry logic"), which a destination
/// switched from a key to a role and back meets. 5 tries within 7.5 s
/// leave the API call inside API Gateway's 30 s.
const CREATE_ATTEMPTS: u32 = 5;
const CREATE_BACKOFF: std::time::Duration = std::time::Duration::from_millis(500);

/// Our Secrets Manager client and settings, built once per container.
#[derive(Clone)]
pub struct SecretStore {
    client: aws_sdk_secretsmanager::Client,
    kms_key_id: Option<String>,
}

impl fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretStore")
    }
}

impl SecretStore {
    /// `kms_key_id`: `CREDENTIALS_KMS_KEY_ID`, our key; `None` uses the
    /// account's `aws/secretsmanager` key.
    pub fn new(client: aws_sdk_secretsmanager::Client, kms_key_id: Option<String>) -> Self {
        Self { client, kms_key_id }
    }

    fn secret_string(pair: &AccessKeyPair) -> String {
        serde_json::json!({
            "access_key_id": pair.id.as_str(),
            "secret_access_key": pair.secret.expose(),
        })
        .to_string()
    }

    /// Stores `pair` as the destination's new secret (a destination
    /// switched to a key; [`SecretStore::put`] rotates an existing one), or
    /// a new version when one exists already. Returns the version id the
    /// registry must name.
    pub async fn store(
        &self,
        name: &SecretName,
        pair: &AccessKeyPair,
    ) -> Result<String, SecretError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let created = self
                .client
                .create_secret()
                .name(name.as_str())
                .description("Access key of a stored-messages destination")
                .set_kms_key_id(self.kms_key_id.clone())
                .secret_string(Self::secret_string(pair))
                .send()
                .await;
            let err = match created {
                Ok(out) => return Self::version(out.version_id(), "CreateSecret"),
                Err(err) => err,
            };
            let service = err.as_service_error();
            if service.is_some_and(|e| e.is_resource_exists_exception()) {
                return self.put(name, pair).await;
            }
            // Still being deleted: CreateSecret answers InvalidRequestException.
            if service.is_some_and(|e| e.is_invalid_request_exception())
                && attempt < CREATE_ATTEMPTS
            {
                tokio::time::sleep(CREATE_BACKOFF * attempt).await;
                continue;
            }
            return Err(SecretError::of("CreateSecret", &err));
        }
    }

    fn version(version: Option<&str>, operation: &'static str) -> Result<String, SecretError> {
        version
            .map(str::to_owned)
            .ok_or_else(|| SecretError::answer(operation, "no version id"))
    }

    /// A new version of an existing secret; the one before stays readable
    /// as `AWSPREVIOUS` until the registry names the new one. A secret that
    /// is gone is [`SecretError::gone`].
    pub async fn put(
        &self,
        name: &SecretName,
        pair: &AccessKeyPair,
    ) -> Result<String, SecretError> {
        let out = self
            .client
            .put_secret_value()
            .secret_id(name.as_str())
            .secret_string(Self::secret_string(pair))
            .send()
            .await
            .map_err(|err| SecretError::of("PutSecretValue", &err))?;
        Self::version(out.version_id(), "PutSecretValue")
    }

    /// The pair of one version.
    pub async fn read(
        &self,
        name: &SecretName,
        version: &str,
    ) -> Result<AccessKeyPair, SecretError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(name.as_str())
            .version_id(version)
            .send()
            .await
            .map_err(|err| SecretError::of("GetSecretValue", &err))?;
        let unreadable = || SecretError::answer("GetSecretValue", "unreadable secret");
        let stored: Stored = serde_json::from_str(out.secret_string().ok_or_else(unreadable)?)
            .map_err(|_| unreadable())?;
        Ok(AccessKeyPair {
            id: AccessKeyId::parse(&stored.access_key_id).map_err(|_| unreadable())?,
            secret: SecretAccessKey::parse(&stored.secret_access_key).map_err(|_| unreadable())?,
        })
    }

    /// Deletes the secret now, without the recovery window: the destination
    /// is gone, and a key kept for 7-30 days is a key that can leak. A
    /// secret already gone is success (a retried `DELETE`).
    pub async fn delete(&self, name: &SecretName) -> Result<(), SecretError> {
        match self
            .client
            .delete_secret()
            .secret_id(name.as_str())
            .force_delete_without_recovery(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(SecretError::of("DeleteSecret", &err)),
        }
    }
}
