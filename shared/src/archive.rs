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
use crate::connections::{Connections, Delivery, Object};
use crate::credentials::ExternalId;
use crate::destination::Destination;
use crate::failure::FailureCode;
use crate::ids::{OrgId, ProjectId};
use crate::registry::{quarantine_key, Registry, RegistryError};
use crate::request::{parse_referenced_message, ArchiveRequest, Malformed, MessageBody};
use crate::s3::BucketName;
use crate::store::ControlStore;
use crate::write::{encode, Compression, Encoded, Written};

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

/// The archive service of one Lambda container, over our control data
/// (`S`, the control bucket in production) and the customer's side (`D`).
pub struct Archiver<S = Registry, D = Connections> {
    registry: S,
    delivery: D,
    destinations: TtlCache<(OrgId, ProjectId), Arc<Vec<Arc<Destination>>>>,
    external_ids: TtlCache<OrgId, Option<ExternalId>>,
    max_in_flight: usize,
    /// `STAGING_BUCKET`: the one bucket a `message_ref` may name.
    staging: Option<BucketName>,
}

impl<S: ControlStore, D: Delivery> Archiver<S, D> {
    /// `max_in_flight` bounds the writes (and staged reads) of a batch;
    /// `staging` is `STAGING_BUCKET`, the one bucket a `message_ref` may name.
    pub fn new(
        registry: S,
        delivery: D,
        max_in_flight: usize,
        staging: Option<BucketName>,
    ) -> Self {
        Self {
            registry,
            delivery,
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
        let sts_before = self.delivery.credential_fetches();
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
        batch.sts_calls = self.delivery.credential_fetches() - sts_before;
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
                .any(|d| d.target.compression() == compression)
                .then(|| encode(&document, compression))
        };
        let (gzip, plain) = (encoded(Compression::Gzip), encoded(Compression::None));
        drop(document);

        let writes = targets.iter().map(|destination| {
            let body = match destination.target.compression() {
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
        let key = destination.target.message_key(request);
        let object = Object { key: &key, body };
        let _permit = permits.acquire().await;
        let err = match self.delivery.write(destination, external_id, object).await {
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

/// The archive decisions of CONTRACT sections 2 and 7 over the in-memory
/// store and customer side: which records are retried, parked, quarantined
/// or acknowledged. No AWS, no emulator.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{json, Value};

    use super::*;
    use crate::destination::Status;
    use crate::ids::Channel;
    use crate::store::memory::{destination, MemoryDelivery, MemoryStore, Side};

    const KEY: &str = "channel=email/project=p/date=2026-11-23/hour=08/m-1.json";

    fn message(id: &str, channel: &str) -> String {
        json!({
            "version": 1, "org_id": "acme", "project_id": "p", "message_id": id,
            "channel": channel, "sent_at": "2026-11-23T08:00:00Z",
            "recipient": { "user_id": "u-1" }, "message": { "subject": "Hi" },
        })
        .to_string()
    }

    struct World {
        archiver: Archiver<MemoryStore, MemoryDelivery>,
    }

    impl World {
        fn new(destinations: &[&Destination]) -> Self {
            let store = MemoryStore::default();
            store.put_external_id(
                &OrgId::parse("acme").unwrap(),
                ExternalId::generate().unwrap(),
            );
            for d in destinations {
                store.put_destination((*d).clone());
            }
            let staging = BucketName::parse("staging-bucket").ok();
            Self {
                archiver: Archiver::new(store, MemoryDelivery::default(), 8, staging),
            }
        }

        fn store(&self) -> &MemoryStore {
            &self.archiver.registry
        }

        fn delivery(&self) -> &MemoryDelivery {
            &self.archiver.delivery
        }

        async fn archive(&self, bodies: &[&str]) -> BatchReport {
            let ids: Vec<String> = (0..bodies.len()).map(|i| format!("sqs-{i}")).collect();
            let records: Vec<InboundRecord<'_>> = ids
                .iter()
                .zip(bodies)
                .map(|(id, body)| InboundRecord { id, body })
                .collect();
            self.archiver.archive_batch(&records, None).await
        }
    }

    #[tokio::test]
    async fn a_message_goes_to_every_active_destination_that_takes_its_channel() {
        let both = destination("p", &Channel::ALL);
        let email = destination("p", &[Channel::Email]);
        let sms_only = destination("p", &[Channel::Sms]);
        let mut paused = destination("p", &[Channel::Email]);
        paused.status = Status::Disabled;
        let other_project = destination("q", &[Channel::Email]);
        let w = World::new(&[&both, &email, &sms_only, &paused, &other_project]);

        let report = w.archive(&[&message("m-1", "email")]).await;

        assert!(report.retry.is_empty());
        assert_eq!((report.messages_archived, report.objects_written), (1, 2));
        for taken in [&both, &email] {
            assert_eq!(w.delivery().keys(&taken.id), [KEY]);
        }
        for skipped in [&sms_only, &paused, &other_project] {
            assert!(w.delivery().keys(&skipped.id).is_empty());
        }
    }

    #[tokio::test]
    async fn a_redelivered_message_is_already_present_not_rewritten() {
        let d = destination("p", &[Channel::Email]);
        let w = World::new(&[&d]);
        w.archive(&[&message("m-1", "email")]).await;
        let again = w.archive(&[&message("m-1", "email")]).await;
        assert!(again.retry.is_empty());
        assert_eq!((again.objects_written, again.already_present), (0, 1));
        assert_eq!(again.messages_archived, 1);
    }

    #[tokio::test]
    async fn a_project_without_a_destination_for_the_channel_is_acknowledged() {
        let d = destination("p", &[Channel::Sms]);
        let w = World::new(&[&d]);
        let report = w.archive(&[&message("m-1", "email")]).await;
        assert!(report.retry.is_empty());
        assert_eq!(report.no_destination, 1);
        assert_eq!(w.delivery().writes(), 0);
    }

    #[tokio::test]
    async fn malformed_records_are_quarantined_and_acknowledged_alone() {
        let d = destination("p", &[Channel::Email]);
        let w = World::new(&[&d]);
        let report = w
            .archive(&[
                &message("m-1", "email"),
                "{not json",
                &message("../x", "email"),
            ])
            .await;
        assert!(report.retry.is_empty());
        assert_eq!((report.quarantined, report.messages_archived), (2, 1));
        let quarantined = w.store().quarantined();
        assert_eq!(quarantined.len(), 2);
        assert_eq!(quarantined[0].1, "{not json", "the raw body, as it came");
        assert!(
            quarantined[0].0.starts_with("quarantine/")
                && quarantined[0].0.ends_with("/sqs-1.json")
        );
    }

    #[tokio::test]
    async fn a_malformed_record_that_cannot_be_quarantined_is_retried() {
        let w = World::new(&[]);
        w.store().make_unavailable("quarantine");
        let report = w.archive(&["{not json"]).await;
        assert_eq!(report.retry, ["sqs-0"]);
        assert_eq!(report.quarantined, 0);
    }

    #[tokio::test]
    async fn a_transient_write_failure_retries_the_record_and_parks_nothing() {
        let d = destination("p", &[Channel::Email]);
        let w = World::new(&[&d]);
        w.delivery().set(&d.id, Side::throttled());
        let report = w.archive(&[&message("m-1", "email")]).await;
        assert_eq!(report.retry, ["sqs-0"]);
        assert_eq!(report.parked, 0);
        assert!(w.store().parked_keys().is_empty());
        assert_eq!(report.failures.get("put_object_failed"), Some(&1));
    }

    #[tokio::test]
    async fn a_permanent_failure_parks_the_object_at_its_key_and_acknowledges() {
        let broken = destination("p", &[Channel::Email]);
        let fine = destination("p", &[Channel::Email]);
        let w = World::new(&[&broken, &fine]);
        w.delivery().set(&broken.id, Side::denied());
        let report = w.archive(&[&message("m-1", "email")]).await;
        assert!(report.retry.is_empty(), "parked is kept, not retried");
        assert_eq!((report.parked, report.objects_written), (1, 1));
        assert_eq!(report.messages_archived, 0, "not archived everywhere");
        assert_eq!(
            w.store().parked_keys(),
            [format!("parked/acme/{}/{KEY}", broken.id)]
        );
        assert_eq!(w.delivery().keys(&fine.id), [KEY]);
        assert_eq!(report.failures.get("put_object_denied"), Some(&1));
    }

    #[tokio::test]
    async fn a_permanent_failure_that_cannot_be_parked_is_retried() {
        let d = destination("p", &[Channel::Email]);
        let w = World::new(&[&d]);
        w.delivery().set(&d.id, Side::denied());
        w.store().make_unavailable("park");
        let report = w.archive(&[&message("m-1", "email")]).await;
        assert_eq!(report.retry, ["sqs-0"]);
        assert_eq!(report.parked, 0);
    }

    #[tokio::test]
    async fn a_record_is_acknowledged_only_when_every_write_succeeded() {
        let ok = destination("p", &[Channel::Email]);
        let slow = destination("p", &[Channel::Email]);
        let w = World::new(&[&ok, &slow]);
        w.delivery().set(&slow.id, Side::throttled());
        let first = w.archive(&[&message("m-1", "email")]).await;
        assert_eq!(first.retry, ["sqs-0"]);
        w.delivery().set(&slow.id, Side::Healthy);
        let retried = w.archive(&[&message("m-1", "email")]).await;
        assert!(retried.retry.is_empty());
        assert_eq!((retried.objects_written, retried.already_present), (1, 1));
    }

    #[tokio::test]
    async fn an_unreadable_registry_or_a_missing_external_id_retries_never_writes() {
        let d = destination("p", &[Channel::Email]);
        let w = World::new(&[&d]);
        w.store().make_unavailable("project_destinations");
        let report = w.archive(&[&message("m-1", "email")]).await;
        assert_eq!(report.retry, ["sqs-0"]);

        let store = MemoryStore::default();
        store.put_destination(d.clone());
        let archiver = Archiver::new(store, MemoryDelivery::default(), 8, None);
        let body = message("m-1", "email");
        let report = archiver
            .archive_batch(
                &[InboundRecord {
                    id: "sqs-0",
                    body: &body,
                }],
                None,
            )
            .await;
        assert_eq!(report.retry, ["sqs-0"]);
        assert_eq!(report.failures.get("assume_role_failed"), Some(&1));
        assert_eq!(
            archiver.delivery.writes(),
            0,
            "never written with a wrong identity"
        );
    }

    #[tokio::test]
    async fn work_unfinished_at_the_deadline_is_retried_and_the_rest_kept() {
        let hung = destination("p", &[Channel::Sms]);
        let fine = destination("p", &[Channel::Email]);
        let w = World::new(&[&hung, &fine]);
        w.delivery().set(&hung.id, Side::Hangs);
        let (email, sms) = (message("m-1", "email"), message("m-2", "sms"));
        let records = [
            InboundRecord {
                id: "a",
                body: &email,
            },
            InboundRecord {
                id: "b",
                body: &sms,
            },
        ];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        let report = w.archiver.archive_batch(&records, Some(deadline)).await;
        assert_eq!(report.retry, ["b"]);
        assert_eq!((report.timed_out, report.messages_archived), (1, 1));

        let passed = tokio::time::Instant::now();
        let report = w.archiver.archive_batch(&records[..1], Some(passed)).await;
        assert_eq!(
            report.retry,
            ["a"],
            "not started before the deadline: not started"
        );
        assert_eq!(report.timed_out, 1);
    }

    #[tokio::test]
    async fn staged_messages_are_read_from_the_orgs_staging_prefix() {
        let d = destination("p", &[Channel::Email]);
        let w = World::new(&[&d]);
        let staged = |key: &str| {
            let mut v: Value = serde_json::from_str(&message("m-1", "email")).unwrap();
            let body = v.as_object_mut().unwrap();
            body.remove("message");
            body.insert(
                "message_ref".into(),
                json!({ "bucket": "staging-bucket", "key": key }),
            );
            v.to_string()
        };
        w.store()
            .put_staged("acme/m-1.json", br#"{"subject":"staged"}"#);
        let report = w.archive(&[&staged("acme/m-1.json")]).await;
        assert_eq!((report.messages_archived, report.quarantined), (1, 0));

        let missing = w.archive(&[&staged("acme/gone.json")]).await;
        assert_eq!(missing.quarantined, 1, "a missing staged body is malformed");

        w.store().make_unavailable("read_staged");
        let unreadable = w.archive(&[&staged("acme/m-1.json")]).await;
        assert_eq!(
            unreadable.retry,
            ["sqs-0"],
            "an unreadable bucket is retried"
        );
    }
}
