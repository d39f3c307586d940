//! The control bucket (CONTRACT section 7): org External IDs, destinations,
//! quarantine, parked objects; and reads of staged bodies from the staging
//! bucket. Our own private buckets, used with our own identity, and every
//! request asserts that we own them (`ExpectedBucketOwner`): a bucket of ours
//! deleted and re-created by another account is refused, never written to or
//! read from.

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use tracing::warn;

use crate::arn::AccountId;
use crate::backfill::{
    Backfill, BackfillId, Claim, Listed, ManifestEncoding, ManifestPrefix, MAX_FILES,
};
use crate::credentials::ExternalId;
use crate::destination::{Destination, DestinationId};
use crate::failure::{sdk_outcome, SdkOutcome};
use crate::ids::{OrgId, ProjectId};
use crate::records::message::StagedRef;
use crate::s3::BucketName;
use crate::store::{ControlStore, Parked};
use crate::write::{ContentType, Encoded};

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
    #[error("the record changed since it was read")]
    Conflict,
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

/// Whether a stored destination that failed to load holds a `folder_path`
/// with `*` (valid in contract v1, refused since v1.1).
fn has_wildcard_folder(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|record| {
            let folder = record.get("folder_path")?.as_str()?.to_owned();
            Some(crate::s3::FolderPath::parse(&folder) == Err(crate::s3::FolderPathError::Wildcard))
        })
        .unwrap_or(false)
}

/// Where a malformed body is kept in the control bucket: by processing day.
pub fn quarantine_key(processed_at: DateTime<Utc>, sqs_message_id: &str) -> String {
    // SQS message ids are UUIDs; anything else is made key-safe rather than trusted.
    let id: String = sqs_message_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect();
    format!("quarantine/{}/{id}.json", processed_at.format("%Y-%m-%d"))
}

/// Conditional writes: how the registry stays race-safe without locks.
#[derive(Clone, Copy)]
enum Condition<'a> {
    None,
    /// `If-None-Match: *`: create, never overwrite.
    Absent,
    /// `If-Match: etag`: replace only what we read.
    Unchanged(&'a str),
}

struct Fetched {
    body: Bytes,
    etag: String,
    content_type: Option<String>,
    content_encoding: Option<String>,
    /// [`PARKED_UNDER`], when set.
    made_under: Option<String>,
}

/// User metadata of a parked object: the key prefix its key was made under
/// (see [`crate::store::Parked`]), `/` for none (a folder never starts
/// with `/`, and an empty header may not survive every HTTP stack).
const PARKED_UNDER: &str = "stored-messages-key-prefix";

/// An object held for a broken destination, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedObject {
    /// The control-bucket key.
    pub parked_key: String,
    /// The key it will have in the customer bucket.
    pub object_key: String,
    pub last_modified: Option<DateTime<Utc>>,
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
    /// Our account ([`crate::config::own_account`]), asserted on every request.
    owner: AccountId,
}

impl Registry {
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>, owner: AccountId) -> Self {
        Self {
            s3,
            bucket: bucket.into(),
            owner,
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

    async fn read(&self, key: &str) -> Result<Option<Bytes>, RegistryError> {
        Ok(self.fetch(&self.bucket, key).await?.map(|f| f.body))
    }

    /// One GetObject: the body and the headers we use, or None when absent.
    async fn fetch(&self, bucket: &str, key: &str) -> Result<Option<Fetched>, RegistryError> {
        let request = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .expected_bucket_owner(self.owner.as_str());
        let out = match request.send().await {
            Ok(out) => out,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None)
            }
            Err(err) => return Err(unavailable(&err)),
        };
        let etag = out.e_tag().unwrap_or_default().to_owned();
        let content_type = out.content_type().map(str::to_owned);
        let made_under = out.metadata().and_then(|m| m.get(PARKED_UNDER)).map(|p| {
            if p == "/" {
                String::new()
            } else {
                p.clone()
            }
        });
        let content_encoding = out.content_encoding().map(str::to_owned);
        let body = out
            .body
            .collect()
            .await
            .map_err(|_| RegistryError::Unavailable("the object could not be read".to_owned()))?
            .into_bytes();
        Ok(Some(Fetched {
            body,
            etag,
            content_type,
            content_encoding,
            made_under,
        }))
    }

    async fn write(
        &self,
        key: &str,
        body: Vec<u8>,
        create_only: bool,
    ) -> Result<(), RegistryError> {
        let condition = if create_only {
            Condition::Absent
        } else {
            Condition::None
        };
        let body = Encoded {
            body: Bytes::from(body),
            content_type: ContentType::Json,
            content_encoding: None,
        };
        self.put(key, &body, condition, None).await
    }

    async fn put(
        &self,
        key: &str,
        object: &Encoded,
        condition: Condition<'_>,
        made_under: Option<&str>,
    ) -> Result<(), RegistryError> {
        let mut request = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .expected_bucket_owner(self.owner.as_str())
            .content_type(object.content_type.as_str())
            .set_content_encoding(object.content_encoding.map(str::to_owned))
            .body(ByteStream::from(object.body.clone()));
        if let Some(prefix) = made_under {
            let value = if prefix.is_empty() { "/" } else { prefix };
            request = request.metadata(PARKED_UNDER, value);
        }
        request = match condition {
            Condition::None => request,
            Condition::Absent => request.if_none_match("*"),
            Condition::Unchanged(etag) => request.if_match(etag),
        };
        let err = match request.send().await {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        // 412: the condition failed. 409 ConditionalRequestConflict: another
        // conditional write to the key was in flight, which S3 asks to retry
        // (S3 User Guide, "Conditional writes"); both mean "read again".
        // 404 under If-Match: the record was deleted meanwhile.
        match (err.raw_response().map(|r| r.status().as_u16()), condition) {
            (Some(412 | 409), Condition::Unchanged(_)) => Err(RegistryError::Conflict),
            (Some(412 | 409), Condition::Absent) => Err(RegistryError::AlreadyExists),
            (Some(404), Condition::Unchanged(_)) => Err(RegistryError::NotFound),
            _ => Err(unavailable(&err)),
        }
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
        Ok(self
            .list(prefix)
            .await?
            .into_iter()
            .map(|(key, _)| key)
            .collect())
    }

    async fn list(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, Option<DateTime<Utc>>)>, RegistryError> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .expected_bucket_owner(self.owner.as_str())
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| unavailable(&e))?;
            keys.extend(out.contents().iter().filter_map(|o| {
                let modified = o
                    .last_modified()
                    .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()));
                o.key().map(|k| (k.to_owned(), modified))
            }));
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
            let Some(bytes) = self.read(key).await? else {
                continue;
            };
            let destination: Destination = match serde_json::from_slice(&bytes) {
                Ok(destination) => destination,
                Err(_) if has_wildcard_folder(&bytes) => {
                    // Saved under contract v1, which allowed `*` in a folder:
                    // its session policy would cover other folders. Never
                    // used, and said once per load so operators can ask the
                    // customer to recreate it.
                    warn!(
                        event = "destination_skipped",
                        registry_key = %key,
                        reason = "folder_path contains '*', refused since contract v1.1",
                        "stored destination skipped"
                    );
                    continue;
                }
                Err(_) => return Err(RegistryError::Corrupt(key.clone())),
            };
            if !destination.is_consistent() || Self::destination_key(&destination) != *key {
                return Err(RegistryError::Corrupt(key.clone()));
            }
            destinations.push(destination);
        }
        Ok(destinations)
    }

    /// Where a destination's parked objects sit in the control bucket
    /// (CONTRACT section 7); the in-memory store keeps the same layout.
    pub(crate) fn parked_prefix(destination: &Destination) -> String {
        format!("parked/{}/{}/", destination.org_id, destination.id)
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
        self.delete(&Self::destination_key(destination)).await
    }

    /// Deletes an org's destination record that no longer loads (a v1
    /// destination with `*` in its folder, skipped everywhere else), so the
    /// customer can still remove it by id. Whether there was one.
    pub async fn delete_unusable_destination(
        &self,
        org: &OrgId,
        id: &DestinationId,
    ) -> Result<bool, RegistryError> {
        let suffix = format!("/{id}.json");
        let keys = self.list_keys(&format!("destinations/{org}/")).await?;
        let Some(key) = keys.iter().find(|k| k.ends_with(&suffix)) else {
            return Ok(false);
        };
        self.delete(key).await?;
        Ok(true)
    }

    async fn delete(&self, key: &str) -> Result<(), RegistryError> {
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .expected_bucket_owner(self.owner.as_str())
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }
}

/// How many times a job update is tried against concurrent writers before
/// it gives up (each round, one writer wins).
const JOB_UPDATE_ATTEMPTS: u32 = 40;

/// Rounds of [`Registry::claim_destination`]: each lost round means another
/// start won the claim, which then holds, so a few settle any race.
const CLAIM_ATTEMPTS: u32 = 4;

/// Backfill jobs (CONTRACT section 7: `backfills/{org_id}/{backfill_id}.json`)
/// and the manifests they read from the staging bucket.
impl Registry {
    fn backfill_key(org: &OrgId, id: &BackfillId) -> String {
        format!("backfills/{org}/{id}.json")
    }

    fn claim_key(org: &OrgId, destination: &DestinationId) -> String {
        format!("backfills/{org}/claims/{destination}.json")
    }

    /// Claims `destination` for `claim`'s job (see [`crate::backfill::claim`]):
    /// `None` once claimed, or the job that holds it. Written with
    /// `If-None-Match: *`, or `If-Match` over the claim of a job that has
    /// ended, so of concurrent starts exactly one gets through.
    ///
    /// Errors: [`RegistryError::Conflict`] when other starts kept winning
    /// the claim for [`CLAIM_ATTEMPTS`] rounds; the control bucket's.
    pub async fn claim_destination(
        &self,
        org: &OrgId,
        destination: &DestinationId,
        claim: &Claim,
    ) -> Result<Option<BackfillId>, RegistryError> {
        let key = Self::claim_key(org, destination);
        let body = serde_json::to_vec(claim).map_err(|e| RegistryError::Corrupt(e.to_string()))?;
        let body = Encoded {
            body: Bytes::from(body),
            content_type: ContentType::Json,
            content_encoding: None,
        };
        for _ in 0..CLAIM_ATTEMPTS {
            match self.put(&key, &body, Condition::Absent, None).await {
                Ok(()) => return Ok(None),
                Err(RegistryError::AlreadyExists) => {}
                Err(err) => return Err(err),
            }
            let Some(current) = self.fetch(&self.bucket, &key).await? else {
                continue;
            };
            // A claim or job record that does not load holds nothing: it
            // must not lock its destination out of backfills for good.
            if let Ok(held) = serde_json::from_slice::<Claim>(&current.body) {
                let job = match self.backfill(org, &held.backfill_id).await {
                    Ok(found) => found.map(|(job, _)| job),
                    Err(RegistryError::Corrupt(_)) => None,
                    Err(err) => return Err(err),
                };
                if held.holds(job.as_ref(), Utc::now()) {
                    return Ok(Some(held.backfill_id));
                }
            } else {
                warn!(registry_key = %key, "backfill claim does not load; replaced");
            }
            match self
                .put(&key, &body, Condition::Unchanged(&current.etag), None)
                .await
            {
                Ok(()) => return Ok(None),
                // Another start replaced it first: read it again.
                Err(RegistryError::Conflict | RegistryError::NotFound) => {}
                Err(err) => return Err(err),
            }
        }
        Err(RegistryError::Conflict)
    }

    /// Saves a new job; never overwrites one.
    pub async fn create_backfill(&self, job: &Backfill) -> Result<(), RegistryError> {
        let body = serde_json::to_vec(job).map_err(|e| RegistryError::Corrupt(e.to_string()))?;
        self.write(&Self::backfill_key(&job.org_id, &job.id), body, true)
            .await
    }

    /// One of `org`'s jobs and its version, or None. The key is built from
    /// the authorizer's org, so another org's id is simply not found; a
    /// record that does not match its key or leaves its org is corrupt.
    pub async fn backfill(
        &self,
        org: &OrgId,
        id: &BackfillId,
    ) -> Result<Option<(Backfill, String)>, RegistryError> {
        let key = Self::backfill_key(org, id);
        let Some(fetched) = self.fetch(&self.bucket, &key).await? else {
            return Ok(None);
        };
        let job: Backfill = serde_json::from_slice(&fetched.body)
            .map_err(|_| RegistryError::Corrupt(key.clone()))?;
        if &job.org_id != org || &job.id != id || !job.is_consistent() {
            return Err(RegistryError::Corrupt(key));
        }
        Ok(Some((job, fetched.etag)))
    }

    /// Applies `change` to a job and saves it only if nobody wrote it in
    /// between (`If-Match`), reading again and re-applying as often as it
    /// takes; a change that leaves the job as it was writes nothing. None
    /// when the job does not exist. `change` sees the job as it is now,
    /// so it decides on current state (a cancel, another unit's commit).
    pub async fn update_backfill<T>(
        &self,
        org: &OrgId,
        id: &BackfillId,
        mut change: impl FnMut(&mut Backfill) -> T,
    ) -> Result<Option<(Backfill, T)>, RegistryError> {
        for attempt in 0..JOB_UPDATE_ATTEMPTS {
            let Some((mut job, etag)) = self.backfill(org, id).await? else {
                return Ok(None);
            };
            let before = job.clone();
            let result = change(&mut job);
            if job == before {
                return Ok(Some((job, result)));
            }
            let body =
                serde_json::to_vec(&job).map_err(|e| RegistryError::Corrupt(e.to_string()))?;
            let body = Encoded {
                body: Bytes::from(body),
                content_type: ContentType::Json,
                content_encoding: None,
            };
            match self
                .put(
                    &Self::backfill_key(org, id),
                    &body,
                    Condition::Unchanged(&etag),
                    None,
                )
                .await
            {
                Ok(()) => return Ok(Some((job, result))),
                Err(RegistryError::Conflict) => {
                    // Another writer won this round: back off exponentially
                    // (10 ms doubling, at most 1.3 s) with jitter, so many
                    // units of one job spread their next tries out.
                    let mut jitter = [0u8; 2];
                    let _ = getrandom::fill(&mut jitter);
                    let base = 10u64 << attempt.min(7);
                    let wait = base / 2 + u64::from(u16::from_le_bytes(jitter)) % base;
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                }
                Err(RegistryError::NotFound) => return Ok(None),
                Err(err) => return Err(err),
            }
        }
        Err(RegistryError::Unavailable(
            "the backfill job kept changing while it was updated".to_owned(),
        ))
    }

    /// Every job of one org, oldest first.
    pub async fn org_backfills(&self, org: &OrgId) -> Result<Vec<Backfill>, RegistryError> {
        let mut jobs = Vec::new();
        for key in self.list_keys(&format!("backfills/{org}/")).await? {
            let Some(id) = key
                .rsplit('/')
                .next()
                .and_then(|name| name.strip_suffix(".json"))
                .and_then(|id| BackfillId::parse(id).ok())
            else {
                continue;
            };
            match self.backfill(org, &id).await {
                Ok(Some((job, _))) => jobs.push(job),
                Ok(None) => {}
                // One damaged record must not hide the org's other jobs.
                Err(RegistryError::Corrupt(key)) => {
                    warn!(registry_key = %key, "backfill job record does not load; skipped");
                }
                Err(err) => return Err(err),
            }
        }
        jobs.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(jobs)
    }

    /// The manifest objects under `prefix` in the staging bucket, in key
    /// order: the `.ndjson` and `.ndjson.gz` ones, at most [`MAX_FILES`] + 1
    /// (enough to know there are too many).
    pub async fn list_manifest(
        &self,
        staging: &BucketName,
        prefix: &ManifestPrefix,
    ) -> Result<Vec<Listed>, RegistryError> {
        let mut found = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .s3
                .list_objects_v2()
                .bucket(staging.as_str())
                .expected_bucket_owner(self.owner.as_str())
                .prefix(prefix.as_str())
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| unavailable(&e))?;
            for object in out.contents() {
                let Some(key) = object.key() else { continue };
                if prefix.contains(key) && ManifestEncoding::of(key).is_some() {
                    found.push(Listed {
                        key: key.to_owned(),
                        size: object
                            .size()
                            .and_then(|s| u64::try_from(s).ok())
                            .unwrap_or(0),
                        etag: object.e_tag().map(str::to_owned),
                    });
                }
            }
            token = out.next_continuation_token().map(str::to_owned);
            if token.is_none() || found.len() > MAX_FILES {
                return Ok(found);
            }
        }
    }

    /// A manifest object's body as it streams, from byte `from` (an S3
    /// `Range`), of the version `etag` names when given (`If-Match`).
    /// [`RegistryError::NotFound`] when it is gone or was replaced; an
    /// empty stream when `from` is its end.
    pub async fn open_manifest(
        &self,
        staging: &BucketName,
        key: &str,
        from: u64,
        etag: Option<&str>,
    ) -> Result<ByteStream, RegistryError> {
        let mut request = self
            .s3
            .get_object()
            .bucket(staging.as_str())
            .key(key)
            .expected_bucket_owner(self.owner.as_str())
            .set_if_match(etag.map(str::to_owned));
        if from > 0 {
            request = request.range(format!("bytes={from}-"));
        }
        match request.send().await {
            Ok(out) => Ok(out.body),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                Err(RegistryError::NotFound)
            }
            Err(err) => match err.raw_response().map(|r| r.status().as_u16()) {
                // 412: another version than the one listed.
                Some(412) => Err(RegistryError::NotFound),
                // 416: the checkpoint is the object's end; nothing is left.
                Some(416) => Ok(ByteStream::from_static(b"")),
                _ => Err(unavailable(&err)),
            },
        }
    }
}

impl ControlStore for Registry {
    /// A staged body (`message_ref`) from our staging bucket, or None. The
    /// location is already confined to the record's org by
    /// [`crate::records::message::StagedRef`].
    async fn read_staged(&self, staged: &StagedRef) -> Result<Option<Bytes>, RegistryError> {
        Ok(self
            .fetch(staged.bucket().as_str(), staged.key())
            .await?
            .map(|f| f.body))
    }

    /// The org's External ID, if it has one yet.
    async fn external_id(&self, org: &OrgId) -> Result<Option<ExternalId>, RegistryError> {
        let Some(bytes) = self.read(&Self::external_id_key(org)).await? else {
            return Ok(None);
        };
        let record: ExternalIdRecord = serde_json::from_slice(&bytes)
            .map_err(|_| RegistryError::Corrupt(Self::external_id_key(org)))?;
        Ok(Some(record.external_id))
    }

    /// Every destination of one project.
    async fn project_destinations(
        &self,
        org: &OrgId,
        project: &ProjectId,
    ) -> Result<Vec<Destination>, RegistryError> {
        self.destinations_under(&format!("destinations/{org}/{project}/"))
            .await
    }

    /// Every destination of every org: the health check's work list.
    async fn all_destinations(&self) -> Result<Vec<Destination>, RegistryError> {
        self.destinations_under("destinations/").await
    }

    /// A destination and the ETag to replace it with, or None once deleted.
    async fn destination_for_update(
        &self,
        current: &Destination,
    ) -> Result<Option<(Destination, String)>, RegistryError> {
        let key = Self::destination_key(current);
        let Some(fetched) = self.fetch(&self.bucket, &key).await? else {
            return Ok(None);
        };
        let destination: Destination = serde_json::from_slice(&fetched.body)
            .map_err(|_| RegistryError::Corrupt(key.clone()))?;
        Ok(Some((destination, fetched.etag)))
    }

    /// Replaces a destination only if nobody changed it since `etag` was read.
    async fn replace_destination(
        &self,
        destination: &Destination,
        etag: &str,
    ) -> Result<(), RegistryError> {
        let body =
            serde_json::to_vec(destination).map_err(|e| RegistryError::Corrupt(e.to_string()))?;
        let body = Encoded {
            body: Bytes::from(body),
            content_type: ContentType::Json,
            content_encoding: None,
        };
        self.put(
            &Self::destination_key(destination),
            &body,
            Condition::Unchanged(etag),
            None,
        )
        .await
    }

    /// Holds an object for a broken destination: the exact body and key it
    /// would have had, so a replay writes what the customer would have got.
    async fn park(
        &self,
        destination: &Destination,
        object_key: &str,
        object: &Encoded,
    ) -> Result<(), RegistryError> {
        let key = format!("{}{object_key}", Self::parked_prefix(destination));
        let made_under = destination.target.key_prefix();
        self.put(&key, object, Condition::None, Some(&made_under))
            .await
    }

    /// The objects parked for a destination, oldest key order as S3 lists them.
    async fn parked(&self, destination: &Destination) -> Result<Vec<ParkedObject>, RegistryError> {
        let prefix = Self::parked_prefix(destination);
        Ok(self
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|(parked_key, last_modified)| {
                let object_key = parked_key.strip_prefix(&prefix)?.to_owned();
                Some(ParkedObject {
                    parked_key,
                    object_key,
                    last_modified,
                })
            })
            .collect())
    }

    /// A parked object as it was parked, or None once gone.
    async fn read_parked(&self, parked: &ParkedObject) -> Result<Option<Parked>, RegistryError> {
        Ok(self
            .fetch(&self.bucket, &parked.parked_key)
            .await?
            .map(|f| Parked {
                object: Encoded::stored(
                    f.body,
                    f.content_type.as_deref(),
                    f.content_encoding.as_deref(),
                ),
                made_under: f.made_under,
            }))
    }

    async fn delete_parked(&self, parked: &ParkedObject) -> Result<(), RegistryError> {
        self.delete(&parked.parked_key).await
    }

    /// Keeps the raw body of a malformed archive request.
    async fn quarantine(&self, key: &str, raw_body: &str) -> Result<(), RegistryError> {
        self.write(key, raw_body.as_bytes().to_vec(), false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_keys_are_daily_and_key_safe() {
        let at = DateTime::parse_from_rfc3339("2026-11-23T23:59:59Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            quarantine_key(at, "059f36b4-87a3-44ab-83d2-661975830a7d"),
            "quarantine/2026-11-23/059f36b4-87a3-44ab-83d2-661975830a7d.json"
        );
        assert_eq!(
            quarantine_key(at, "../../x"),
            "quarantine/2026-11-23/______x.json"
        );
    }
}
