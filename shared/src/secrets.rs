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

use serde::{Deserialize, Serialize};

use crate::credentials::access_key::{AccessKeyId, AccessKeyPair, SecretAccessKey};
use crate::credentials::CredentialsError;
use crate::destination::DestinationId;
use crate::failure::{sdk_outcome, SdkOutcome};
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

/// The secret's JSON. Never logged: the type has no `Debug`.
#[derive(Serialize, Deserialize)]
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
    pub retryable: bool,
}

impl From<SecretError> for CredentialsError {
    fn from(err: SecretError) -> Self {
        CredentialsError::SecretUnavailable(err.code)
    }
}

fn failure<E: aws_sdk_s3::error::ProvideErrorMetadata>(
    operation: &'static str,
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::http::Response,
    >,
) -> SecretError {
    let (code, retryable) = match sdk_outcome(err) {
        SdkOutcome::Service(facts) => (
            facts.code.unwrap_or("no error code").to_owned(),
            facts.is_transient(),
        ),
        SdkOutcome::Transport => ("no answer".to_owned(), true),
        SdkOutcome::Construction => ("request could not be built".to_owned(), false),
    };
    SecretError {
        operation,
        code,
        retryable,
    }
}

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

    /// Stores `pair` as the destination's secret: creates it, or puts a new
    /// version when it exists (a role destination switched to keys and
    /// back). Returns the version id the registry must name.
    pub async fn store(
        &self,
        name: &SecretName,
        pair: &AccessKeyPair,
    ) -> Result<String, SecretError> {
        let created = self
            .client
            .create_secret()
            .name(name.as_str())
            .description("Access key of a stored-messages destination")
            .set_kms_key_id(self.kms_key_id.clone())
            .secret_string(Self::secret_string(pair))
            .send()
            .await;
        match created {
            Ok(out) => out.version_id().map(str::to_owned).ok_or(SecretError {
                operation: "CreateSecret",
                code: "no version id".into(),
                retryable: false,
            }),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_exists_exception()) =>
            {
                self.put(name, pair).await
            }
            Err(err) => Err(failure("CreateSecret", &err)),
        }
    }

    /// A new version of an existing secret; the one before stays readable
    /// as `AWSPREVIOUS` until the registry names the new one.
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
            .map_err(|err| failure("PutSecretValue", &err))?;
        out.version_id().map(str::to_owned).ok_or(SecretError {
            operation: "PutSecretValue",
            code: "no version id".into(),
            retryable: false,
        })
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
            .map_err(|err| failure("GetSecretValue", &err))?;
        let unreadable = || SecretError {
            operation: "GetSecretValue",
            code: "unreadable secret".into(),
            retryable: false,
        };
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
            Err(err) => Err(failure("DeleteSecret", &err)),
        }
    }
}
