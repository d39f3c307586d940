//! The archive pipeline: a batch of SQS records in, the records to retry
//! out, in named steps: parse each record by its kind, route it to the
//! destinations that take it, group the routed records into objects, and
//! write every object (or park it for a broken destination). Every write
//! of the batch shares one concurrency bound, and a record is acknowledged
//! only when every object holding it has been written or parked.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use serde_json::value::RawValue;
use tokio::sync::{Semaphore, SemaphorePermit};
use tracing::{info, warn, Instrument};

use crate::cache::TtlCache;
use crate::checks::write_failure;
use crate::connections::{Connections, Delivery, Object};
use crate::credentials::ExternalId;
use crate::destination::{Destination, DestinationId, Status};
use crate::failure::FailureCode;
use crate::health::{record_health, Failure};
use crate::ids::{InvalidField, OrgId, ProjectId, RecordKind};
use crate::notify::{announce, EventBridgeNotifier, Notifier};
use crate::records::event::ndjson;
use crate::records::message::{parse_referenced_message, ArchiveRequest, MessageBody};
use crate::records::{group, EventBatch, Group, Malformed, ObjectBounds, Record, Routed};
use crate::registry::{quarantine_key, Registry, RegistryError};
use crate::s3::BucketName;
use crate::store::ControlStore;
use crate::write::{encode_as, Compression, ContentType, Encoded, WriteError, Written};

/// How long a container trusts its copy of a project's destinations: a
/// deleted destination receives nothing once this has passed (CONTRACT 5).
pub const DESTINATION_CACHE_TTL: Duration = Duration::from_secs(60);

/// How often one container may move one destination to `failing` on a
/// failed write (CONTRACT section 6's immediate detection): once per
/// destination per minute, never per message.
pub const DETECTION_INTERVAL: Duration = Duration::from_secs(60);

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
    /// Event records archived, once each whatever the number of
    /// destinations (a repeated `event_id` counts once per SQS record).
    pub events_archived: u64,
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

/// What became of one record of a backfill chunk ([`Archiver::archive_into`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Its object was newly written.
    Written,
    /// Its object was already there (`412` on the write-once key).
    AlreadyPresent,
    /// Not a valid record of the destination's org and project: quarantined.
    Malformed,
    /// The destination does not take it.
    Skipped,
    /// Parked for the broken destination (CONTRACT section 7).
    Parked,
    /// Not finished: the chunk must be read again.
    Retry,
}

/// What a backfill chunk did.
#[derive(Debug, Default)]
pub struct ChunkReport {
    /// One per record, in order.
    pub outcomes: Vec<RecordOutcome>,
    /// The failure code of each failed write (parked or to retry).
    pub failures: Vec<FailureCode>,
    /// The deadline passed: what is left is for the next invocation.
    pub timed_out: bool,
}

/// How one record ended, merged over every step and object that held it.
#[derive(Debug, Clone, Copy, Default)]
struct RecordEnd {
    retry: bool,
    archived: bool,
    /// Some object holding it was newly written (not a `412`).
    created: bool,
    /// Some object holding it was parked for a broken destination.
    parked: bool,
    quarantined: bool,
    no_destination: bool,
    timed_out: bool,
}

impl RecordEnd {
    /// Retried: what a record is until a step says otherwise.
    fn retry() -> Self {
        Self {
            retry: true,
            ..Self::default()
        }
    }

    /// Abandoned at the deadline, and so retried.
    fn abandoned() -> Self {
        Self {
            retry: true,
            timed_out: true,
            ..Self::default()
        }
    }

    /// A record is archived only if every object holding it was, and
    /// retried if any one of them must be.
    fn merge(&mut self, other: Self) {
        self.retry |= other.retry;
        self.archived &= other.archived;
        self.created |= other.created;
        self.parked |= other.parked;
        self.quarantined |= other.quarantined;
        self.no_destination |= other.no_destination;
        self.timed_out |= other.timed_out;
    }
}

/// The writes of one object (or one quarantine), counted once per object.
#[derive(Debug, Default)]
struct Tally {
    written: u64,
    already_present: u64,
    parked: u64,
    failures: Vec<FailureCode>,
}

/// What a unit of work did: to each of its records, and in objects.
#[derive(Debug, Default)]
struct Outcome {
    end: RecordEnd,
    tally: Tally,
}

impl Outcome {
    fn ended(end: RecordEnd) -> Self {
        Self {
            end,
            tally: Tally::default(),
        }
    }
}

/// How one write to one destination ended.
enum WriteEnd {
    Written,
    AlreadyPresent,
    /// The destination is broken; the object waits in `parked/`.
    Parked(FailureCode),
}

/// A project's destinations, shared by every record of the batch.
type ProjectDestinations = Arc<Vec<Arc<Destination>>>;

/// A registry lookup made against the deadline: `None` once it passed first.
type Lookup<T> = Option<Result<T, RegistryError>>;

/// Step 1's result: the records by kind, and the malformed ones.
struct Parsed {
    records: Vec<(usize, Record)>,
    malformed: Vec<(usize, Malformed)>,
}

/// One unit of the write step.
enum Work<'b> {
    /// A malformed record's raw body, into quarantine.
    Quarantine(usize, Malformed),
    /// One object to every destination of its group.
    Object(Group<'b>),
}

/// Runs `work` unless `deadline` passes first; `None` once it has.
async fn within<T>(
    deadline: Option<tokio::time::Instant>,
    work: impl Future<Output = T>,
) -> Option<T> {
    match deadline {
        None => Some(work.await),
        // Not started before the deadline: not started at all.
        Some(deadline) if tokio::time::Instant::now() >= deadline => None,
        Some(deadline) => tokio::time::timeout_at(deadline, work).await.ok(),
    }
}

/// The archive service of one Lambda container, over our control data
/// (`S`, the control bucket in production), the customer's side (`D`) and
/// where health transitions are published (`N`).
pub struct Archiver<S = Registry, D = Connections, N = EventBridgeNotifier> {
    /// Shared with the detection task, which outlives an abandoned batch.
    registry: Arc<S>,
    delivery: D,
    notifier: Arc<N>,
    /// When this container last recorded a failed write per destination.
    detected: Mutex<HashMap<DestinationId, Instant>>,
    destinations: TtlCache<(OrgId, ProjectId), ProjectDestinations>,
    external_ids: TtlCache<OrgId, Option<ExternalId>>,
    max_in_flight: usize,
    /// `STAGING_BUCKET`: the one bucket a `message_ref` may name.
    staging: Option<BucketName>,
    /// When an events group is split into several objects.
    event_bounds: ObjectBounds,
}

impl Archiver {
    /// A Lambda container's archiver (archive-message and run-backfill):
    /// one registry client, the connections to customers (STS, secrets and
    /// the session cache) and the EventBridge client for health
    /// transitions, all over the one HTTP client of `sdk`; `account` is
    /// ours, the owner of the control and staging buckets.
    pub fn from_settings(
        settings: &crate::config::Settings,
        sdk: &aws_config::SdkConfig,
        account: crate::arn::AccountId,
    ) -> Self {
        Self::new(
            Registry::new(settings.s3_client(sdk), &settings.control_bucket, account),
            Connections::new(settings, sdk),
            EventBridgeNotifier::new(sdk, settings.event_bus_name.clone()),
            settings.max_in_flight,
            settings.staging_bucket.clone(),
        )
        .with_event_bounds(ObjectBounds {
            max_lines: settings.events_per_object,
            ..ObjectBounds::DEFAULT
        })
    }
}

impl<S: ControlStore + 'static, D: Delivery, N: Notifier + 'static> Archiver<S, D, N> {
    /// `max_in_flight` bounds the writes (and staged reads) of a batch;
    /// `staging` is `STAGING_BUCKET`, the one bucket a `message_ref` may name.
    pub fn new(
        registry: S,
        delivery: D,
        notifier: N,
        max_in_flight: usize,
        staging: Option<BucketName>,
    ) -> Self {
        Self {
            registry: Arc::new(registry),
            delivery,
            notifier: Arc::new(notifier),
            detected: Mutex::new(HashMap::new()),
            destinations: TtlCache::new(DESTINATION_CACHE_TTL),
            external_ids: TtlCache::new(DESTINATION_CACHE_TTL),
            max_in_flight: max_in_flight.max(1),
            staging,
            event_bounds: ObjectBounds::DEFAULT,
        }
    }

    /// Splits events objects at `bounds` instead of
    /// [`ObjectBounds::DEFAULT`]: for tests of splitting, and for the
    /// bench's one-object-per-event comparison.
    pub fn with_event_bounds(mut self, bounds: ObjectBounds) -> Self {
        self.event_bounds = bounds;
        self
    }

    /// Archives a batch. Never fails as a whole: a record that cannot be
    /// finished now is listed for retry, and only that record.
    ///
    /// Work still unfinished at `deadline` is abandoned and its records listed
    /// for retry, so the function answers before Lambda kills it mid-write
    /// (which would make SQS retry the whole batch). Writes are write-once, so
    /// a retried record never duplicates what already landed.
    ///
    /// Every record is parsed up front (the batch is already in memory, at
    /// most Lambda's 6 MB payload); objects are built and encoded only as
    /// write slots free up, so a 10,000 record batch never holds every
    /// encoded object at once.
    pub async fn archive_batch(
        &self,
        records: &[InboundRecord<'_>],
        deadline: Option<tokio::time::Instant>,
    ) -> BatchReport {
        let sts_before = self.delivery.credential_fetches();
        let now = Utc::now();
        // Every record ends retried unless a step says otherwise, so none
        // is ever acknowledged unwritten.
        let mut ends = vec![RecordEnd::retry(); records.len()];
        let mut tally = Tally::default();

        let Parsed {
            records: parsed,
            malformed,
        } = self.parse(records);
        let mut kinds: Vec<Option<RecordKind>> = vec![None; records.len()];
        for (index, record) in &parsed {
            kinds[*index] = Some(record.kind());
        }
        let routed = self
            .route(records, parsed, deadline, &mut ends, &mut tally)
            .await;
        self.finish(
            records, malformed, routed, now, deadline, &mut ends, &mut tally,
        )
        .await;

        let mut batch = BatchReport::default();
        for ((record, end), kind) in records.iter().zip(ends).zip(kinds) {
            if end.retry {
                batch.retry.push(record.id.to_owned());
            }
            match kind {
                Some(RecordKind::Event) => batch.events_archived += u64::from(end.archived),
                _ => batch.messages_archived += u64::from(end.archived),
            }
            batch.quarantined += u64::from(end.quarantined);
            batch.no_destination += u64::from(end.no_destination);
            batch.timed_out += u64::from(end.timed_out);
        }
        batch.objects_written = tally.written;
        batch.already_present = tally.already_present;
        batch.parked = tally.parked;
        for code in tally.failures {
            *batch.failures.entry(code.as_str()).or_default() += 1;
        }
        batch.sts_calls = self.delivery.credential_fetches() - sts_before;
        batch
    }

    /// Archives the records of one backfill chunk into `destination` alone
    /// (CONTRACT section 5), with the writer, keys, caches, parking and
    /// detection of [`Archiver::archive_batch`]. A record of another org
    /// or project is malformed and quarantined, never written; one the
    /// destination does not take (its channels, record kinds or event
    /// types) is skipped. `records[i].id` names the record in logs and in
    /// its quarantine key.
    ///
    /// Returns what became of each record, in order. `Retry` means nothing
    /// is known of it (a failure retrying may fix, or the deadline): the
    /// chunk must be read again, and its write-once keys make that safe.
    pub async fn archive_into(
        &self,
        destination: &Arc<Destination>,
        records: &[InboundRecord<'_>],
        deadline: Option<tokio::time::Instant>,
    ) -> ChunkReport {
        let now = Utc::now();
        let mut ends = vec![RecordEnd::retry(); records.len()];
        let mut skipped = vec![false; records.len()];
        let mut tally = Tally::default();
        let Parsed {
            records: parsed,
            mut malformed,
        } = self.parse(records);
        let external_id = match within(deadline, self.external_id(&destination.org_id)).await {
            Some(Ok(Some(found))) => Some(found),
            Some(Ok(None)) => {
                warn!(destination_id = %destination.id, "org has a destination but no External ID; chunk will be retried");
                None
            }
            Some(Err(err)) => {
                warn!(destination_id = %destination.id, error = %err, "External ID unavailable; chunk will be retried");
                None
            }
            None => None,
        };
        let mut routed = Vec::with_capacity(parsed.len());
        if let Some(external_id) = external_id {
            for (index, record) in parsed {
                if record.org_id() != &destination.org_id
                    || record.project_id() != &destination.project_id
                {
                    malformed.push((
                        index,
                        Malformed::Field(InvalidField::new(
                            "org_id",
                            "names another org or project than the backfill's destination",
                        )),
                    ));
                } else if record.goes_to(destination) {
                    routed.push(Routed {
                        index,
                        record,
                        targets: vec![Arc::clone(destination)],
                        external_id: external_id.clone(),
                    });
                } else {
                    ends[index] = RecordEnd::default();
                    skipped[index] = true;
                }
            }
            self.finish(
                records, malformed, routed, now, deadline, &mut ends, &mut tally,
            )
            .await;
        }
        let outcomes = ends
            .iter()
            .zip(skipped)
            .map(|(end, skipped)| {
                if skipped {
                    RecordOutcome::Skipped
                } else if end.retry {
                    RecordOutcome::Retry
                } else if end.quarantined {
                    RecordOutcome::Malformed
                } else if end.parked {
                    RecordOutcome::Parked
                } else if end.created {
                    RecordOutcome::Written
                } else {
                    RecordOutcome::AlreadyPresent
                }
            })
            .collect();
        ChunkReport {
            outcomes,
            failures: tally.failures,
            timed_out: ends.iter().any(|e| e.timed_out)
                || deadline.is_some_and(|d| tokio::time::Instant::now() >= d),
        }
    }

    /// Steps 3 and 4, shared by both entry points: routed records into
    /// objects, then every quarantine and write.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        records: &[InboundRecord<'_>],
        malformed: Vec<(usize, Malformed)>,
        routed: Vec<Routed>,
        now: DateTime<Utc>,
        deadline: Option<tokio::time::Instant>,
        ends: &mut [RecordEnd],
        tally: &mut Tally,
    ) {
        let groups = group(&routed, self.event_bounds);
        for group in &groups {
            for index in group.records() {
                ends[index] = RecordEnd {
                    archived: true,
                    ..RecordEnd::default()
                };
            }
        }
        for (index, _) in &malformed {
            ends[*index] = RecordEnd::default();
        }
        let work = malformed
            .into_iter()
            .map(|(index, reason)| Work::Quarantine(index, reason))
            .chain(groups.into_iter().map(Work::Object));
        self.write_all(records, work, now, deadline, ends, tally)
            .await;
    }

    /// Step 1: every record by its kind, or the reason it is malformed.
    fn parse(&self, records: &[InboundRecord<'_>]) -> Parsed {
        let mut parsed = Vec::with_capacity(records.len());
        let mut malformed = Vec::new();
        for (index, record) in records.iter().enumerate() {
            match Record::parse(record.body.as_bytes(), self.staging.as_ref()) {
                Ok(record) => parsed.push((index, record)),
                Err(reason) => malformed.push((index, reason)),
            }
        }
        Parsed {
            records: parsed,
            malformed,
        }
    }

    /// Step 2: the destinations that take each record (CONTRACT 2) and its
    /// org's External ID, each looked up once per batch. A record no
    /// destination takes is acknowledged; one whose lookups fail (or do not
    /// finish by the deadline) is retried, never written with a wrong
    /// identity.
    async fn route(
        &self,
        records: &[InboundRecord<'_>],
        parsed: Vec<(usize, Record)>,
        deadline: Option<tokio::time::Instant>,
        ends: &mut [RecordEnd],
        tally: &mut Tally,
    ) -> Vec<Routed> {
        let projects: BTreeSet<(OrgId, ProjectId)> = parsed
            .iter()
            .map(|(_, r)| (r.org_id().clone(), r.project_id().clone()))
            .collect();
        let destinations: HashMap<(OrgId, ProjectId), Lookup<ProjectDestinations>> =
            stream::iter(projects)
                .map(|key| async move {
                    let found = within(deadline, self.destinations_for(&key)).await;
                    (key, found)
                })
                .buffer_unordered(self.max_in_flight)
                .collect()
                .await;

        let mut with_targets = Vec::with_capacity(parsed.len());
        for (index, record) in parsed {
            // Spans only where a line is logged: this loop runs per record.
            let span = || record_span(records[index].id, &record).entered();
            let key = (record.org_id().clone(), record.project_id().clone());
            let targets = match destinations.get(&key) {
                Some(Some(Ok(found))) => found
                    .iter()
                    .filter(|d| record.goes_to(d))
                    .cloned()
                    .collect::<Vec<_>>(),
                Some(Some(Err(err))) => {
                    let _span = span();
                    warn!(error = %err, "destinations unavailable; record will be retried");
                    continue;
                }
                Some(None) | None => {
                    let _span = span();
                    warn!("deadline reached; record will be retried");
                    ends[index] = RecordEnd::abandoned();
                    continue;
                }
            };
            if targets.is_empty() {
                let _span = span();
                info!("project has no active destination for this channel; acknowledged");
                ends[index] = RecordEnd {
                    no_destination: true,
                    ..RecordEnd::default()
                };
                continue;
            }
            with_targets.push((index, record, targets));
        }

        let orgs: BTreeSet<OrgId> = with_targets
            .iter()
            .map(|(_, r, _)| r.org_id().clone())
            .collect();
        let external_ids: HashMap<OrgId, Lookup<Option<ExternalId>>> =
            join_all(orgs.into_iter().map(|org| async move {
                let found = within(deadline, self.external_id(&org)).await;
                (org, found)
            }))
            .await
            .into_iter()
            .collect();

        let mut routed = Vec::with_capacity(with_targets.len());
        for (index, record, targets) in with_targets {
            let found = external_ids.get(record.org_id());
            if let Some(Some(Ok(Some(external_id)))) = found {
                routed.push(Routed {
                    index,
                    record,
                    targets,
                    external_id: external_id.clone(),
                });
                continue;
            }
            let _span = record_span(records[index].id, &record).entered();
            match found {
                Some(Some(Ok(Some(_)))) => {}
                Some(Some(Ok(None))) => {
                    warn!("org has destinations but no External ID; record will be retried");
                    tally.failures.push(FailureCode::AssumeRoleFailed);
                }
                Some(Some(Err(err))) => {
                    warn!(error = %err, "External ID unavailable; record will be retried");
                }
                Some(None) | None => {
                    warn!("deadline reached; record will be retried");
                    ends[index] = RecordEnd::abandoned();
                }
            }
        }
        routed
    }

    /// Step 4: every quarantine and object, at most `max_in_flight` at a
    /// time, each abandoned (and its records retried) at the deadline.
    async fn write_all(
        &self,
        records: &[InboundRecord<'_>],
        work: impl Iterator<Item = Work<'_>>,
        now: DateTime<Utc>,
        deadline: Option<tokio::time::Instant>,
        ends: &mut [RecordEnd],
        tally: &mut Tally,
    ) {
        let permits = Semaphore::new(self.max_in_flight);
        let staged = Semaphore::new(STAGED_IN_FLIGHT);
        let (permits, staged) = (&permits, &staged);
        let mut pending = stream::iter(work.map(|work| async move {
            let indexes = match &work {
                Work::Quarantine(index, _) => vec![*index],
                Work::Object(group) => group.records(),
            };
            let outcome = within(deadline, self.run(records, work, now, permits, staged))
                .await
                .unwrap_or_else(|| {
                    for index in &indexes {
                        warn!(
                            sqs_message_id = records[*index].id,
                            "deadline reached; record will be retried"
                        );
                    }
                    Outcome::ended(RecordEnd::abandoned())
                });
            (indexes, outcome)
        }))
        .buffer_unordered(self.max_in_flight);
        while let Some((indexes, outcome)) = pending.next().await {
            for index in indexes {
                ends[index].merge(outcome.end);
            }
            tally.written += outcome.tally.written;
            tally.already_present += outcome.tally.already_present;
            tally.parked += outcome.tally.parked;
            tally.failures.extend(outcome.tally.failures);
        }
    }

    /// One unit of the write step, by kind.
    async fn run(
        &self,
        records: &[InboundRecord<'_>],
        work: Work<'_>,
        now: DateTime<Utc>,
        permits: &Semaphore,
        staged: &Semaphore,
    ) -> Outcome {
        match work {
            Work::Quarantine(index, reason) => {
                let record = records[index];
                let span = tracing::info_span!("record", sqs_message_id = record.id);
                Outcome::ended(
                    self.quarantine(record, now, &reason, permits)
                        .instrument(span)
                        .await,
                )
            }
            Work::Object(Group::Message { routed, request }) => {
                let record = records[routed.index];
                let span = record_span(record.id, &routed.record);
                self.write_message(record, routed, request, now, permits, staged)
                    .instrument(span)
                    .await
            }
            Work::Object(Group::Events(batch)) => {
                let span = tracing::info_span!(
                    "events",
                    org_id = %batch.partition.org_id,
                    project_id = %batch.partition.project_id,
                    channel = %batch.partition.channel,
                    event_type = %batch.partition.event_type,
                    batch_id = %batch.batch_id,
                    events = batch.events.len(),
                );
                self.write_events(&batch, now, permits)
                    .instrument(span)
                    .await
            }
        }
    }

    /// An events object: its NDJSON body, built once and encoded once per
    /// compression its destinations use, then every write, each at its
    /// destination's key.
    async fn write_events(
        &self,
        batch: &EventBatch<'_>,
        now: DateTime<Utc>,
        permits: &Semaphore,
    ) -> Outcome {
        let body = ndjson(&batch.events, now);
        let encoded = encodings(&batch.routed.targets, &body, ContentType::Ndjson);
        drop(body);
        self.deliver(
            batch.routed,
            &encoded,
            |d| d.target.event_key(batch),
            permits,
        )
        .await
    }

    /// A message: its body (inline or staged), the archived document, one
    /// encoding per compression its destinations use, then every write.
    async fn write_message(
        &self,
        record: InboundRecord<'_>,
        routed: &Routed,
        request: &ArchiveRequest,
        now: DateTime<Utc>,
        permits: &Semaphore,
        staged: &Semaphore,
    ) -> Outcome {
        // Held until this record's writes end: a staged body may be megabytes.
        let (message, _staged_permit) =
            match self.message(record, request, now, permits, staged).await {
                Ok(found) => found,
                Err(end) => return Outcome::ended(end),
            };
        let document = request.archived_document(&message, now);
        drop(message);
        let encoded = encodings(&routed.targets, &document, ContentType::Json);
        drop(document);
        self.deliver(routed, &encoded, |d| d.target.message_key(request), permits)
            .await
    }

    /// One object to every destination of `routed`, each at its own key,
    /// in the encoding it uses; the outcome over all of them: archived
    /// only if every write ended well, retried if any must be.
    async fn deliver(
        &self,
        routed: &Routed,
        encoded: &Encodings,
        key: impl Fn(&Destination) -> String,
        permits: &Semaphore,
    ) -> Outcome {
        let writes = routed.targets.iter().map(|destination| {
            let body = encoded.for_destination(destination);
            let key = key(destination);
            async move {
                self.write(destination, &routed.external_id, &key, body, permits)
                    .await
            }
        });
        let mut outcome = Outcome::ended(RecordEnd {
            archived: true,
            ..RecordEnd::default()
        });
        for result in join_all(writes).await {
            match result {
                Ok(WriteEnd::Written) => {
                    outcome.end.created = true;
                    outcome.tally.written += 1;
                }
                Ok(WriteEnd::AlreadyPresent) => outcome.tally.already_present += 1,
                Ok(WriteEnd::Parked(code)) => {
                    outcome.end.archived = false;
                    outcome.end.parked = true;
                    outcome.tally.parked += 1;
                    outcome.tally.failures.push(code);
                }
                Err(code) => {
                    outcome.end.archived = false;
                    outcome.end.retry = true;
                    outcome.tally.failures.push(code);
                }
            }
        }
        outcome
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
    ) -> Result<(Cow<'r, RawValue>, Option<SemaphorePermit<'s>>), RecordEnd> {
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
            Ok(None) => Malformed::Field(InvalidField::new(
                "message_ref",
                "the referenced object does not exist",
            )),
            Err(err) => {
                warn!(error = %err, "staged message unavailable; record will be retried");
                return Err(RecordEnd::retry());
            }
        };
        Err(self.quarantine(record, now, &reason, permits).await)
    }

    /// One object to one destination. A failure retrying can fix retries
    /// the record; one it cannot parks the object (CONTRACT section 7).
    async fn write(
        &self,
        destination: &Arc<Destination>,
        external_id: &ExternalId,
        key: &str,
        body: Option<&Encoded>,
        permits: &Semaphore,
    ) -> Result<WriteEnd, FailureCode> {
        let Some(body) = body else {
            return Err(FailureCode::PutObjectFailed);
        };
        let object = Object { key, body };
        let _permit = permits.acquire().await;
        let err = match self.delivery.write(destination, external_id, object).await {
            Ok(Written::Created) => return Ok(WriteEnd::Written),
            Ok(Written::AlreadyPresent) => return Ok(WriteEnd::AlreadyPresent),
            Err(err) => err,
        };
        if err.retryable {
            warn!(destination_id = %destination.id, code = %err.code, error = %err.message, "write failed; record will be retried");
            return Err(err.code);
        }
        // Retrying soon will not fix a denied role or a missing bucket: hold the
        // object in our bucket until a health check sees the destination recover,
        // instead of letting SQS retry the record into the dead-letter queue.
        let parked = self.registry.park(destination, key, body).await;
        self.detect(destination, &err).await;
        match parked {
            Ok(()) => {
                warn!(destination_id = %destination.id, code = %err.code, error = %err.message, "destination broken; object parked for replay");
                Ok(WriteEnd::Parked(err.code))
            }
            Err(park_err) => {
                warn!(destination_id = %destination.id, code = %err.code, error = %park_err, "destination broken and parking failed; record will be retried");
                Err(err.code)
            }
        }
    }

    /// CONTRACT section 6's immediate detection: a permanent write failure
    /// moves an `active` destination to `failing` with the same rules, log
    /// line and event as a health check, so the customer hears within a
    /// minute, not at the next scheduled run. At most once per destination
    /// per [`DETECTION_INTERVAL`] in this container; the health checker
    /// moves it back once it recovers.
    ///
    /// The record and the event are one task, spawned and awaited: were the
    /// batch abandoned at its deadline between saving `failing` and
    /// publishing it, the task still finishes (in this invocation's margin,
    /// or when the container next runs), so a saved move is never left
    /// unannounced.
    async fn detect(&self, destination: &Arc<Destination>, err: &WriteError) {
        if destination.status != Status::Active {
            return;
        }
        {
            let mut detected = self.detected.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if detected
                .get(&destination.id)
                .is_some_and(|at| now.duration_since(*at) < DETECTION_INTERVAL)
            {
                return;
            }
            detected.insert(destination.id.clone(), now);
        }
        let failure = Failure::from_check(&write_failure(destination, err));
        let (store, notifier) = (Arc::clone(&self.registry), Arc::clone(&self.notifier));
        let destination = Arc::clone(destination);
        let task = tokio::spawn(async move {
            let recorded = record_health(&*store, &destination, Some(&failure), Utc::now()).await;
            if let Some(transition) = recorded.transition {
                announce(&*notifier, &transition, "archive-message").await;
            }
        });
        // A JoinError is only a panic inside the task: nothing to undo here.
        let _ = task.await;
    }

    /// Keeps a malformed record's raw body; acknowledged once kept,
    /// retried if it could not be.
    async fn quarantine(
        &self,
        record: InboundRecord<'_>,
        now: DateTime<Utc>,
        reason: &Malformed,
        permits: &Semaphore,
    ) -> RecordEnd {
        let key = quarantine_key(now, record.id);
        let _permit = permits.acquire().await;
        match self.registry.quarantine(&key, record.body).await {
            Ok(()) => {
                warn!(reason = %reason, quarantine_key = %key, "malformed archive request quarantined");
                RecordEnd {
                    quarantined: true,
                    ..RecordEnd::default()
                }
            }
            Err(err) => {
                warn!(reason = %reason, error = %err, "malformed archive request could not be quarantined; record will be retried");
                RecordEnd::retry()
            }
        }
    }

    async fn destinations_for(
        &self,
        key: &(OrgId, ProjectId),
    ) -> Result<ProjectDestinations, RegistryError> {
        self.destinations
            .get_or_try_load(key, || async {
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

/// One object's bytes in each compression its destinations use, encoded
/// once whatever the number of destinations.
struct Encodings {
    gzip: Option<Encoded>,
    plain: Option<Encoded>,
}

impl Encodings {
    fn for_destination(&self, destination: &Destination) -> Option<&Encoded> {
        match destination.target.compression() {
            Compression::Gzip => self.gzip.as_ref(),
            Compression::None => self.plain.as_ref(),
        }
    }
}

fn encodings(targets: &[Arc<Destination>], bytes: &[u8], content_type: ContentType) -> Encodings {
    let encoded = |compression| {
        targets
            .iter()
            .any(|d| d.target.compression() == compression)
            .then(|| encode_as(bytes, content_type, compression))
    };
    Encodings {
        gzip: encoded(Compression::Gzip),
        plain: encoded(Compression::None),
    }
}

/// The spans every log line of one record is written under: its SQS id,
/// and what it is (never its contents).
fn record_span(sqs_message_id: &str, record: &Record) -> tracing::Span {
    let outer = tracing::info_span!("record", sqs_message_id);
    match record {
        Record::Message(m) => tracing::info_span!(
            parent: &outer,
            "message",
            org_id = %m.org_id,
            project_id = %m.project_id,
            message_id = %m.message_id,
        ),
        Record::Event(e) => tracing::info_span!(
            parent: &outer,
            "event",
            org_id = %e.org_id,
            project_id = %e.project_id,
            event_id = %e.event_id,
        ),
    }
}

impl BatchReport {
    /// The EMF line for this batch.
    pub fn metrics_line(&self, timestamp_ms: i64) -> String {
        let counts = [
            ("MessagesArchived", self.messages_archived),
            ("EventsArchived", self.events_archived),
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
    use crate::ids::{Channel, EventId, EventType};
    use crate::store::memory::{destination, MemoryDelivery, MemoryNotifier, MemoryStore, Side};

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
        archiver: Archiver<MemoryStore, MemoryDelivery, MemoryNotifier>,
    }

    impl World {
        fn new(destinations: &[&Destination]) -> Self {
            let store = MemoryStore::seeded(destinations);
            let staging = BucketName::parse("staging-bucket").ok();
            Self {
                archiver: Archiver::new(
                    store,
                    MemoryDelivery::default(),
                    MemoryNotifier::default(),
                    8,
                    staging,
                ),
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
        let archiver = Archiver::new(
            store,
            MemoryDelivery::default(),
            MemoryNotifier::default(),
            8,
            None,
        );
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

    #[tokio::test]
    async fn the_first_permanent_failure_moves_the_destination_to_failing_once() {
        let broken = destination("p", &[Channel::Email]);
        let w = World::new(&[&broken]);
        w.delivery().set(&broken.id, Side::denied());
        let first = w
            .archive(&[&message("m-1", "email"), &message("m-2", "email")])
            .await;
        assert_eq!(first.parked, 2);
        let stored = w.store().destination(&broken.id).unwrap();
        assert_eq!(stored.status, Status::Failing);
        assert_eq!(
            stored.health.last_error.map(|e| e.code),
            Some("put_object_denied".to_owned())
        );
        let published = w.archiver.notifier.published();
        assert_eq!(published.len(), 1, "one event, not one per message");
        assert_eq!(
            (published[0].from, published[0].to),
            (Status::Active, Status::Failing)
        );
        w.archive(&[&message("m-3", "email")]).await;
        assert_eq!(
            w.archiver.notifier.published().len(),
            1,
            "once per destination per minute"
        );
    }

    #[tokio::test]
    async fn transient_failures_never_move_the_destination() {
        let slow = destination("p", &[Channel::Email]);
        let w = World::new(&[&slow]);
        w.delivery().set(&slow.id, Side::throttled());
        w.archive(&[&message("m-1", "email")]).await;
        assert_eq!(
            w.store().destination(&slow.id).unwrap().status,
            Status::Active
        );
        assert!(w.archiver.notifier.published().is_empty());
    }

    fn event(id: &str, channel: &str, event_type: &str, at: &str) -> String {
        json!({
            "version": 1, "kind": "event", "org_id": "acme", "project_id": "p",
            "event_id": id, "message_id": "m-1", "channel": channel,
            "event_type": event_type, "occurred_at": at,
            "recipient": { "email": "ada@example.com" }, "data": { "url": "https://example.com/x" },
        })
        .to_string()
    }

    fn with_events(mut d: Destination) -> Destination {
        d.record_kinds = vec![RecordKind::Message, RecordKind::Event];
        d
    }

    const OPEN_PREFIX: &str =
        "events/channel=email/project=p/event_type=open/date=2026-11-23/hour=08/";

    fn lines(object: &Encoded) -> Vec<Value> {
        assert_eq!(object.content_type, ContentType::Ndjson);
        assert_eq!(
            object.content_encoding, None,
            "the test destination is uncompressed"
        );
        let text = std::str::from_utf8(&object.body).unwrap();
        assert!(text.ends_with('\n'));
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn events_of_one_partition_are_one_ndjson_object_at_the_contracts_key() {
        let d = with_events(destination("p", &Channel::ALL));
        let w = World::new(&[&d]);
        let bodies = [
            event("ev-2", "email", "open", "2026-11-23T08:59:00Z"),
            event("ev-1", "email", "open", "2026-11-23T08:01:00Z"),
            event("ev-3", "email", "click", "2026-11-23T08:30:00Z"),
            message("m-1", "email"),
        ];
        let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let report = w.archive(&bodies).await;

        assert!(report.retry.is_empty());
        assert_eq!((report.events_archived, report.messages_archived), (3, 1));
        assert_eq!(
            report.objects_written, 3,
            "two events objects and a message"
        );
        let batch_id = crate::records::event::batch_id(&[
            EventId::parse("ev-1").unwrap(),
            EventId::parse("ev-2").unwrap(),
        ]);
        let key = format!("{OPEN_PREFIX}{batch_id}.ndjson");
        let object = w.delivery().object(&d.id, &key).expect("the open object");
        let lines = lines(&object);
        let ids: Vec<&str> = lines
            .iter()
            .map(|l| l["event_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["ev-1", "ev-2"]);
        assert_eq!(lines[0]["data"]["url"], "https://example.com/x");
        assert!(lines[0]["archived_at"].is_string());
        assert!(w.delivery().keys(&d.id).contains(&KEY.to_owned()));

        // The same events again, in another order: the same key, nothing new.
        let mut again = bodies.clone();
        again.reverse();
        let report = w.archive(&again).await;
        assert_eq!((report.objects_written, report.already_present), (0, 3));
        assert_eq!(report.events_archived, 3);
    }

    #[tokio::test]
    async fn events_go_only_where_their_kind_and_type_are_taken() {
        let messages_only = destination("p", &Channel::ALL);
        let mut opens_only = with_events(destination("p", &Channel::ALL));
        opens_only.event_types = Some(vec![EventType::parse("open").unwrap()]);
        let w = World::new(&[&messages_only, &opens_only]);
        let bodies = [
            event("ev-1", "email", "open", "2026-11-23T08:01:00Z"),
            event("ev-2", "email", "click", "2026-11-23T08:01:00Z"),
        ];
        let report = w.archive(&[&bodies[0], &bodies[1]]).await;
        assert!(report.retry.is_empty());
        assert_eq!((report.events_archived, report.no_destination), (1, 1));
        assert!(w.delivery().keys(&messages_only.id).is_empty());
        let keys = w.delivery().keys(&opens_only.id);
        assert_eq!(keys.len(), 1);
        assert!(keys[0].starts_with(OPEN_PREFIX), "{keys:?}");
    }

    #[tokio::test]
    async fn a_failed_events_object_retries_exactly_its_records() {
        let d = with_events(destination("p", &Channel::ALL));
        let w = World::new(&[&d]);
        w.delivery().fail_under(
            &d.id,
            OPEN_PREFIX,
            match Side::throttled() {
                Side::Failing(err) => err,
                _ => unreachable!(),
            },
        );
        let bodies = [
            event("ev-1", "email", "open", "2026-11-23T08:01:00Z"),
            event("ev-2", "email", "click", "2026-11-23T08:01:00Z"),
            event("ev-3", "email", "open", "2026-11-23T08:02:00Z"),
            message("m-1", "email"),
            // A repeat of ev-1: held by the same object, so retried with it.
            event("ev-1", "email", "open", "2026-11-23T08:01:00Z"),
        ];
        let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let report = w.archive(&bodies).await;
        assert_eq!(report.retry, ["sqs-0", "sqs-2", "sqs-4"]);
        assert_eq!((report.events_archived, report.messages_archived), (1, 1));
        assert_eq!(report.parked, 0);

        // The retry: only the retried records come back, and land.
        w.delivery().heal();
        let retried: Vec<&str> = [0, 2, 4].iter().map(|i| bodies[*i]).collect();
        let report = w.archive(&retried).await;
        assert!(report.retry.is_empty());
        assert_eq!((report.events_archived, report.objects_written), (3, 1));
    }

    #[tokio::test]
    async fn a_broken_destination_parks_the_events_object_as_ndjson() {
        let d = with_events(destination("p", &Channel::ALL));
        let w = World::new(&[&d]);
        w.delivery().set(&d.id, Side::denied());
        let body = event("ev-1", "email", "open", "2026-11-23T08:01:00Z");
        let report = w.archive(&[&body]).await;
        assert!(report.retry.is_empty(), "parked is acknowledged");
        assert_eq!(report.parked, 1);
        let parked = w.store().parked_keys();
        assert_eq!(parked.len(), 1);
        assert!(parked[0].contains(OPEN_PREFIX), "{parked:?}");
        let object = w.store().parked_object(&parked[0]).unwrap();
        assert_eq!(lines(&object)[0]["event_id"], "ev-1");
    }

    #[tokio::test]
    async fn a_group_over_the_bound_is_split_and_each_part_holds_its_records() {
        let d = with_events(destination("p", &Channel::ALL));
        let mut w = World::new(&[&d]);
        w.archiver = w.archiver.with_event_bounds(ObjectBounds {
            max_lines: 3,
            max_bytes: usize::MAX,
        });
        let bodies: Vec<String> = (0..7)
            .map(|i| event(&format!("ev-{i}"), "email", "open", "2026-11-23T08:01:00Z"))
            .collect();
        let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let report = w.archive(&bodies).await;
        assert_eq!((report.objects_written, report.events_archived), (3, 7));
        let sizes: Vec<usize> = w
            .delivery()
            .keys(&d.id)
            .iter()
            .map(|k| lines(&w.delivery().object(&d.id, k).unwrap()).len())
            .collect();
        let mut sorted = sizes.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [1, 3, 3]);
    }
}
