//! The archive pipeline: a batch of SQS records in, the records to retry
//! out. Every write of the batch shares one concurrency bound, and a record
//! is acknowledged only when all its writes have succeeded.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use serde_json::value::RawValue;
use tokio::sync::{Semaphore, SemaphorePermit};
use tracing::{info, warn, Instrument};

use crate::cache::TtlCache;
use crate::credentials::{ExternalId, Identities};
use crate::destination::{BucketName, Compression, Destination};
use crate::failure::FailureCode;
use crate::ids::{OrgId, ProjectId};
use crate::keys::{object_key, quarantine_key};
use crate::registry::{Registry, RegistryError};
use crate::request::{parse_referenced_message, ArchiveRequest, Malformed, MessageBody};
use crate::writer::{encode, put, Encoded, PutTarget, Written};

/// How long a container trusts its copy of a project's destinations: a
/// deleted destination receives nothing once this has passed (CONTRACT 5).
pub const DESTINATION_CACHE_TTL: Duration = Duration::from_secs(60);

/// `message_ref` records between fetch and last write, at most: each holds
/// its staged body (up to megabytes) three times over (raw, parsed, encoded),
/// and a 128 MB function must hold them all.
pub const STAGED_IN_FLIGHT: usize = 8;

/// One SQS record as the pipeline needs it.
#[derive(Debug, Clone, Copy)]
pub struct InboundRecord<'a> {
    pub id: &'a str,
    pub body: &'a str,
}

/// What one batch did, for the response and the metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchReport {
    /// SQS message ids to report in `batchItemFailures`, in batch order.
    pub retry: Vec<String>,
    pub messages_archived: u64,
    pub objects_written: u64,
    pub already_present: u64,
    /// Objects held in the control bucket for a broken destination.
    pub parked: u64,
    pub quarantined: u64,
    pub no_destination: u64,
    /// Records abandoned at the deadline (and retried).
    pub timed_out: u64,
    pub sts_calls: u64,
    pub failures: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Default)]
struct RecordReport {
    retry: bool,
    archived: bool,
    written: u64,
    already_present: u64,
    parked: u64,
    quarantined: bool,
    no_destination: bool,
    timed_out: bool,
    failures: Vec<FailureCode>,
}

impl RecordReport {
    fn retry() -> Self {
        Self {
            retry: true,
            ..Self::default()
        }
    }
}

/// How one write to one destination ended.
enum Outcome {
    Written,
    AlreadyPresent,
    /// The destination is broken; the object waits in `parked/`.
    Parked(FailureCode),
}

/// The archive service of one Lambda container.
pub struct Archiver {
    registry: Registry,
    sessions: Identities,
    destinations: TtlCache<(OrgId, ProjectId), Arc<Vec<Arc<Destination>>>>,
    external_ids: TtlCache<OrgId, Option<ExternalId>>,
    max_in_flight: usize,
    /// `STAGING_BUCKET`: the one bucket a `message_ref` may name.
    staging: Option<BucketName>,
}

impl Archiver {
    pub fn new(
        registry: Registry,
        sessions: Identities,
        max_in_flight: usize,
        staging: Option<BucketName>,
    ) -> Self {
        Self {
            registry,
            sessions,
            destinations: TtlCache::new(DESTINATION_CACHE_TTL),
            external_ids: TtlCache::new(DESTINATION_CACHE_TTL),
            max_in_flight: max_in_flight.max(1),
            staging,
        }
    }

    /// Archives a batch. Never fails as a whole: a record that cannot be
    /// finished now is listed for retry, and only that record.
    ///
    /// Work still unfinished at `deadline` is abandoned and its records listed
    /// for retry, so the function answers before Lambda kills it mid-write
    /// (which would make SQS retry the whole batch). Writes are write-once, so
    /// a retried record never duplicates what already landed.
    pub async fn archive_batch(
        &self,
        records: &[InboundRecord<'_>],
        deadline: Option<tokio::time::Instant>,
    ) -> BatchReport {
        let sts_before = self.sessions.fetches();
        let permits = Semaphore::new(self.max_in_flight);
        let staged = Semaphore::new(STAGED_IN_FLIGHT);
        // Records start as slots free up rather than all at once: a 10,000
        // record batch would otherwise hold every parsed body and encoded
        // object in memory while waiting for a write permit.
        let mut pending = stream::iter(records.iter().enumerate().map(|(index, record)| {
            let span = tracing::info_span!("record", sqs_message_id = record.id);
            let permits = &permits;
            let staged = &staged;
            async move {
                let abandoned = || {
                    warn!(
                        sqs_message_id = record.id,
                        "deadline reached; record will be retried"
                    );
                    RecordReport {
                        retry: true,
                        timed_out: true,
                        ..RecordReport::default()
                    }
                };
                let report = match deadline {
                    None => {
                        self.archive_record(*record, permits, staged)
                            .instrument(span)
                            .await
                    }
                    // Not started before the deadline: not started at all.
                    Some(deadline) if tokio::time::Instant::now() >= deadline => abandoned(),
                    Some(deadline) => tokio::time::timeout_at(
                        deadline,
                        self.archive_record(*record, permits, staged)
                            .instrument(span),
                    )
                    .await
                    .unwrap_or_else(|_| abandoned()),
                };
                (index, report)
            }
        }))
        .buffer_unordered(self.max_in_flight);
        // Every record yields a report; were one ever missing, it is retried,
        // never acknowledged unwritten.
        let mut reports: Vec<RecordReport> = Vec::with_capacity(records.len());
        reports.resize_with(records.len(), RecordReport::retry);
        while let Some((index, report)) = pending.next().await {
            reports[index] = report;
        }
        drop(pending);

        let mut batch = BatchReport::default();
        for (record, report) in records.iter().zip(reports) {
            if report.retry {
                batch.retry.push(record.id.to_owned());
            }
            batch.messages_archived += u64::from(report.archived);
            batch.objects_written += report.written;
            batch.already_present += report.already_present;
            batch.parked += report.parked;
            batch.quarantined += u64::from(report.quarantined);
            batch.no_destination += u64::from(report.no_destination);
            batch.timed_out += u64::from(report.timed_out);
            for code in report.failures {
                *batch.failures.entry(code.as_str()).or_default() += 1;
            }
        }
        batch.sts_calls = self.sessions.fetches() - sts_before;
        batch
    }

    /// One record, in the contract's steps: parse (or quarantine), find the
    /// destinations that take it, the org's External ID, the message (inline
    /// or staged), one encoding per compression, then every write. A step
    /// that cannot finish now ends the record with its report.
    async fn archive_record(
        &self,
        record: InboundRecord<'_>,
        permits: &Semaphore,
        staged: &Semaphore,
    ) -> RecordReport {
        let now = Utc::now();
        let request = match ArchiveRequest::parse(record.body.as_bytes(), self.staging.as_ref()) {
            Ok(request) => request,
            Err(reason) => return self.quarantine(record, now, &reason, permits).await,
        };
        let span = tracing::info_span!(
            "message",
            org_id = %request.org_id,
            project_id = %request.project_id,
            message_id = %request.message_id,
        );
        self.archive_request(record, &request, now, permits, staged)
            .instrument(span)
            .await
            .unwrap_or_else(|ended| ended)
    }

    /// The steps after parsing; `Err` is a report that ends the record early.
    async fn archive_request(
        &self,
        record: InboundRecord<'_>,
        request: &ArchiveRequest,
        now: DateTime<Utc>,
        permits: &Semaphore,
        staged: &Semaphore,
    ) -> Result<RecordReport, RecordReport> {
        let targets = self.targets(request).await?;
        let external_id = self.org_external_id(&request.org_id).await?;
        // Held until this record's writes end: a staged body may be megabytes.
        let (message, _staged_permit) = self.message(record, request, now, permits, staged).await?;
        let document = request.archived_document(&message, now);
        drop(message);
        let encoded = |compression| {
            targets
                .iter()
                .any(|d| d.compression == compression)
                .then(|| encode(&document, compression))
        };
        let (gzip, plain) = (encoded(Compression::Gzip), encoded(Compression::None));
        drop(document);

        let writes = targets.iter().map(|destination| {
            let body = match destination.compression {
                Compression::Gzip => gzip.as_ref(),
                Compression::None => plain.as_ref(),
            };
            self.write(request, destination, &external_id, body, permits)
        });
        let mut report = RecordReport {
            archived: true,
            ..RecordReport::default()
        };
        for result in join_all(writes).await {
            match result {
                Ok(Outcome::Written) => report.written += 1,
                Ok(Outcome::AlreadyPresent) => report.already_present += 1,
                Ok(Outcome::Parked(code)) => {
                    report.archived = false;
                    report.parked += 1;
                    report.failures.push(code);
                }
                Err(code) => {
                    report.archived = false;
                    report.retry = true;
                    report.failures.push(code);
                }
            }
        }
        Ok(report)
    }

    /// The project's destinations that take this channel (CONTRACT 2): none
    /// is an acknowledged record; an unreadable registry, a retried one.
    async fn targets(
        &self,
        request: &ArchiveRequest,
    ) -> Result<Vec<Arc<Destination>>, RecordReport> {
        let destinations = self.destinations_for(request).await.map_err(|err| {
            warn!(error = %err, "destinations unavailable; record will be retried");
            RecordReport::retry()
        })?;
        let targets: Vec<Arc<Destination>> = destinations
            .iter()
            .filter(|d| d.accepts(request.channel))
            .cloned()
            .collect();
        if targets.is_empty() {
            info!("project has no active destination for this channel; acknowledged");
            return Err(RecordReport {
                no_destination: true,
                ..RecordReport::default()
            });
        }
        Ok(targets)
    }

    /// The org's External ID; without one (or without the registry) the
    /// record is retried, never written with a wrong identity.
    async fn org_external_id(&self, org: &OrgId) -> Result<ExternalId, RecordReport> {
        match self.external_id(org).await {
            Ok(Some(id)) => Ok(id),
            Ok(None) => {
                warn!("org has destinations but no External ID; record will be retried");
                Err(RecordReport {
                    retry: true,
                    failures: vec![FailureCode::AssumeRoleFailed],
                    ..RecordReport::default()
                })
            }
            Err(err) => {
                warn!(error = %err, "External ID unavailable; record will be retried");
                Err(RecordReport::retry())
            }
        }
    }

    /// The message to archive: inline, or read from the staging bucket (a
    /// missing or broken staged body is malformed and quarantined; an
    /// unreadable bucket, retried). With a staged body comes the permit that
    /// bounds how many are held at once.
    async fn message<'r, 's>(
        &self,
        record: InboundRecord<'_>,
        request: &'r ArchiveRequest,
        now: DateTime<Utc>,
        permits: &Semaphore,
        staged: &'s Semaphore,
    ) -> Result<(Cow<'r, RawValue>, Option<SemaphorePermit<'s>>), RecordReport> {
        let staged_ref = match &request.body {
            MessageBody::Inline(message) => return Ok((Cow::Borrowed(message.as_ref()), None)),
            MessageBody::Staged(staged_ref) => staged_ref,
        };
        let permit = staged.acquire().await.ok();
        let fetched = {
            let _permit = permits.acquire().await;
            self.registry.read_staged(staged_ref).await
        };
        let reason = match fetched {
            Ok(Some(bytes)) => match parse_referenced_message(&bytes) {
                Ok(message) => return Ok((Cow::Owned(message), permit)),
                Err(reason) => reason,
            },
            Ok(None) => Malformed::Field(crate::ids::InvalidField::new(
                "message_ref",
                "the referenced object does not exist",
            )),
            Err(err) => {
                warn!(error = %err, "staged message unavailable; record will be retried");
                return Err(RecordReport::retry());
            }
        };
        Err(self.quarantine(record, now, &reason, permits).await)
    }

    async fn write(
        &self,
        request: &ArchiveRequest,
        destination: &Destination,
        external_id: &ExternalId,
        body: Option<&Encoded>,
        permits: &Semaphore,
    ) -> Result<Outcome, FailureCode> {
        let Some(body) = body else {
            return Err(FailureCode::PutObjectFailed);
        };
        let key = object_key(destination, request);
        let session = self.sessions.for_destination(destination, external_id);
        let target = PutTarget {
            bucket: &destination.bucket,
            key: &key,
            owner: destination.expected_owner(),
            encryption: &destination.encryption,
            write_once: true,
        };
        let _permit = permits.acquire().await;
        let err = match put(&session, target, body).await {
            Ok(Written::Created) => return Ok(Outcome::Written),
            Ok(Written::AlreadyPresent) => return Ok(Outcome::AlreadyPresent),
            Err(err) => err,
        };
        if err.retryable {
            warn!(destination_id = %destination.id, code = %err.code, error = %err.message, "write failed; record will be retried");
            return Err(err.code);
        }
        // Retrying soon will not fix a denied role or a missing bucket: hold the
        // object in our bucket until a health check sees the destination recover,
        // instead of letting SQS retry the record into the dead-letter queue.
        match self
            .registry
            .park(destination, &key, body.body.clone(), body.content_encoding)
            .await
        {
            Ok(()) => {
                warn!(destination_id = %destination.id, code = %err.code, error = %err.message, "destination broken; object parked for replay");
                Ok(Outcome::Parked(err.code))
            }
            Err(park_err) => {
                warn!(destination_id = %destination.id, code = %err.code, error = %park_err, "destination broken and parking failed; record will be retried");
                Err(err.code)
            }
        }
    }

    async fn quarantine(
        &self,
        record: InboundRecord<'_>,
        now: DateTime<Utc>,
        reason: &Malformed,
        permits: &Semaphore,
    ) -> RecordReport {
        let key = quarantine_key(now, record.id);
        let _permit = permits.acquire().await;
        match self.registry.quarantine(&key, record.body).await {
            Ok(()) => {
                warn!(reason = %reason, quarantine_key = %key, "malformed archive request quarantined");
                RecordReport {
                    quarantined: true,
                    ..RecordReport::default()
                }
            }
            Err(err) => {
                warn!(reason = %reason, error = %err, "malformed archive request could not be quarantined; record will be retried");
                RecordReport::retry()
            }
        }
    }

    async fn destinations_for(
        &self,
        request: &ArchiveRequest,
    ) -> Result<Arc<Vec<Arc<Destination>>>, RegistryError> {
        let key = (request.org_id.clone(), request.project_id.clone());
        self.destinations
            .get_or_try_load(&key, || async {
                let found = self.registry.project_destinations(&key.0, &key.1).await?;
                Ok(Arc::new(found.into_iter().map(Arc::new).collect()))
            })
            .await
    }

    async fn external_id(&self, org: &OrgId) -> Result<Option<ExternalId>, RegistryError> {
        self.external_ids
            .get_or_try_load(org, || self.registry.external_id(org))
            .await
    }
}

impl BatchReport {
    /// The EMF line for this batch.
    pub fn metrics_line(&self, timestamp_ms: i64) -> String {
        let counts = [
            ("MessagesArchived", self.messages_archived),
            ("ObjectsWritten", self.objects_written),
            ("AlreadyPresent", self.already_present),
            ("Parked", self.parked),
            ("Quarantined", self.quarantined),
            ("NoDestination", self.no_destination),
            ("DeadlineRetries", self.timed_out),
            ("RecordsRetried", self.retry.len() as u64),
            ("StsCalls", self.sts_calls),
        ];
        let failure_names: Vec<String> = self
            .failures
            .keys()
            .map(|code| format!("Failures.{code}"))
            .collect();
        let mut values: Vec<(&str, &str, f64)> = counts
            .iter()
            .map(|(name, n)| (*name, "Count", *n as f64))
            .collect();
        values.extend(
            failure_names
                .iter()
                .zip(self.failures.values())
                .map(|(name, n)| (name.as_str(), "Count", *n as f64)),
        );
        crate::metrics::emf_line(timestamp_ms, &[("Function", "archive-message")], &values)
    }
}
