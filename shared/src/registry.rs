//! The control bucket (CONTRACT section 7): org External IDs, destinations,
//! quarantine. Our own private bucket, written with our own identity.

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::credentials::ExternalId;
use crate::destination::{Destination, DestinationId};
use crate::failure::{sdk_outcome, SdkOutcome};
use crate::ids::{OrgId, ProjectId};

/// Why the registry could not answer. Never carries record contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("the control bucket is unavailable ({0})")]
    Unavailable(String),
    #[error("a registry record is corrupt: {0}")]
    Corrupt(String),
    #[error("the record already exists")]
    AlreadyExists,
    #[error("no such record")]
    NotFound,
    #[error("could not generate a secret: {0}")]
    Random(String),
}

fn unavailable<E>(
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::http::Response,
    >,
) -> RegistryError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    match sdk_outcome(err) {
        SdkOutcome::Service(facts) => {
            RegistryError::Unavailable(facts.code.unwrap_or("no error code").to_owned())
        }
        SdkOutcome::Transport => RegistryError::Unavailable("no answer".to_owned()),
        SdkOutcome::Construction => {
            RegistryError::Unavailable("request could not be built".to_owned())
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ExternalIdRecord {
    external_id: ExternalId,
    created_at: DateTime<Utc>,
}

/// Reads and writes the control bucket.
#[derive(Clone)]
pub struct Registry {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl Registry {
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            s3,
            bucket: bucket.into(),
        }
    }

    fn external_id_key(org: &OrgId) -> String {
        format!("orgs/{org}/external-id.json")
    }

    fn destination_key(destination: &Destination) -> String {
        format!(
            "destinations/{}/{}/{}.json",
            destination.org_id, destination.project_id, destination.id
        )
    }

    /// An object's bytes from any bucket we own (control or staging), or None.
    pub async fn read(&self, bucket: &str, key: &str) -> Result<Option<Bytes>, RegistryError> {
        let out = match self.s3.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => out,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None)
            }
            Err(err) => return Err(unavailable(&err)),
        };
        let body =
            out.body.collect().await.map_err(|_| {
                RegistryError::Unavailable("the object could not be read".to_owned())
            })?;
        Ok(Some(body.into_bytes()))
    }

    async fn write(
        &self,
        key: &str,
        body: Vec<u8>,
        create_only: bool,
    ) -> Result<(), RegistryError> {
        let mut request = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        if create_only {
            request = request.if_none_match("*");
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 412) =>
            {
                Err(RegistryError::AlreadyExists)
            }
            Err(err) => Err(unavailable(&err)),
        }
    }

    /// The org's External ID, if it has one yet.
    pub async fn external_id(&self, org: &OrgId) -> Result<Option<ExternalId>, RegistryError> {
        let Some(bytes) = self.read(&self.bucket, &Self::external_id_key(org)).await? else {
            return Ok(None);
        };
        let record: ExternalIdRecord = serde_json::from_slice(&bytes)
            .map_err(|_| RegistryError::Corrupt(Self::external_id_key(org)))?;
        Ok(Some(record.external_id))
    }

    /// The org's External ID, created on first use. Written with
    /// `If-None-Match: *`: of two concurrent first calls one write wins and
    /// both read back the winner, so an org never has two.
    pub async fn ensure_external_id(&self, org: &OrgId) -> Result<ExternalId, RegistryError> {
        if let Some(existing) = self.external_id(org).await? {
            return Ok(existing);
        }
        let record = ExternalIdRecord {
            external_id: ExternalId::generate()
                .map_err(|e| RegistryError::Random(e.to_string()))?,
            created_at: Utc::now(),
        };
        let body =
            serde_json::to_vec(&record).map_err(|e| RegistryError::Corrupt(e.to_string()))?;
        match self.write(&Self::external_id_key(org), body, true).await {
            Ok(()) => Ok(record.external_id),
            Err(RegistryError::AlreadyExists) => self
                .external_id(org)
                .await?
                .ok_or_else(|| RegistryError::Corrupt(Self::external_id_key(org))),
            Err(err) => Err(err),
        }
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, RegistryError> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| unavailable(&e))?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            token = out.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return Ok(keys);
            }
        }
    }

    async fn destinations_under(&self, prefix: &str) -> Result<Vec<Destination>, RegistryError> {
        let keys = self.list_keys(prefix).await?;
        let mut destinations = Vec::with_capacity(keys.len());
        for key in keys.iter().filter(|k| k.ends_with(".json")) {
            // Deleted between list and get: it is simply gone.
            let Some(bytes) = self.read(&self.bucket, key).await? else {
                continue;
            };
            let destination: Destination =
                serde_json::from_slice(&bytes).map_err(|_| RegistryError::Corrupt(key.clone()))?;
            if !destination.is_consistent() || Self::destination_key(&destination) != *key {
                return Err(RegistryError::Corrupt(key.clone()));
            }
            destinations.push(destination);
        }
        Ok(destinations)
    }

    /// Every destination of one project.
    pub async fn project_destinations(
        &self,
        org: &OrgId,
        project: &ProjectId,
    ) -> Result<Vec<Destination>, RegistryError> {
        self.destinations_under(&format!("destinations/{org}/{project}/"))
            .await
    }

    /// Every destination of one org.
    pub async fn org_destinations(&self, org: &OrgId) -> Result<Vec<Destination>, RegistryError> {
        self.destinations_under(&format!("destinations/{org}/"))
            .await
    }

    /// One destination of an org, by id; another org's id is simply not found.
    pub async fn destination(
        &self,
        org: &OrgId,
        id: &DestinationId,
    ) -> Result<Destination, RegistryError> {
        self.org_destinations(org)
            .await?
            .into_iter()
            .find(|d| &d.id == id)
            .ok_or(RegistryError::NotFound)
    }

    /// Saves a new destination; never overwrites one with the same id.
    pub async fn create_destination(&self, destination: &Destination) -> Result<(), RegistryError> {
        let body =
            serde_json::to_vec(destination).map_err(|e| RegistryError::Corrupt(e.to_string()))?;
        self.write(&Self::destination_key(destination), body, true)
            .await
    }

    pub async fn delete_destination(&self, destination: &Destination) -> Result<(), RegistryError> {
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(Self::destination_key(destination))
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }

    /// Keeps the raw body of a malformed archive request.
    pub async fn quarantine(&self, key: &str, raw_body: &str) -> Result<(), RegistryError> {
        self.write(key, raw_body.as_bytes().to_vec(), false).await
    }
}
