//! `run-backfill`'s work: one unit from the backfill queue at a time. A
//! plan unit lists the manifest and fans out one unit per object; an
//! object unit reads its object on from the checkpoint, chunk by chunk,
//! archives each chunk into the job's destination through
//! [`Archiver::archive_into`] and commits the chunk's counts with the new
//! checkpoint in one conditional write, until the object ends, the job is
//! cancelled or failed, or the invocation's deadline comes (then the unit
//! is sent again and the next invocation goes on from the checkpoint).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tracing::{info, warn, Instrument};

use super::job::{Backfill, BackfillId, ChunkDone, Commit, Counts, JobError, JobStatus};
use super::manifest::{ChunkBounds, Line, ManifestEncoding, ManifestReader, ReadError, Source};
use super::queue::{WorkQueue, WorkUnit};
use crate::archive::{Archiver, InboundRecord, RecordOutcome};
use crate::destination::{Destination, Status};
use crate::failure::FailureCode;
use crate::ids::OrgId;
use crate::registry::{Registry, RegistryError};
use crate::s3::BucketName;

/// How one unit ended, for the SQS batch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitEnd {
    /// Nothing more to do with this message: delete it.
    Done,
    /// The deadline came: the unit was sent again to go on from its
    /// checkpoint; delete this message.
    Continued,
    /// Not finished for a reason retrying may fix (our control bucket, the
    /// queue, a throttled or failing write): report it for retry. The
    /// reason is an error code, never data.
    Retry(String),
}

/// What one unit did, for the log and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitReport {
    pub end: UnitEnd,
    /// Counts of the chunks this invocation committed.
    pub counts: Counts,
    pub chunks: u64,
}

impl UnitReport {
    fn ended(end: UnitEnd) -> Self {
        Self {
            end,
            counts: Counts::default(),
            chunks: 0,
        }
    }
}

impl UnitReport {
    /// The EMF line of one unit (CONTRACT section 6's namespace), per
    /// record like the job's counts.
    pub fn metrics_line(&self, timestamp_ms: i64) -> String {
        let c = &self.counts;
        let continued = matches!(self.end, UnitEnd::Continued);
        let retried = matches!(self.end, UnitEnd::Retry(_));
        let values: Vec<(&str, &str, f64)> = [
            ("RecordsRead", c.records_read),
            ("ObjectsWritten", c.objects_written),
            ("AlreadyPresent", c.already_present),
            ("Malformed", c.malformed),
            ("Failed", c.failed),
            ("Skipped", c.skipped),
            ("Chunks", self.chunks),
            ("UnitsContinued", u64::from(continued)),
            ("UnitsRetried", u64::from(retried)),
        ]
        .iter()
        .map(|(name, n)| (*name, "Count", *n as f64))
        .collect();
        crate::metrics::emf_line(timestamp_ms, &[("Function", "run-backfill")], &values)
    }
}

impl From<RegistryError> for UnitEnd {
    fn from(err: RegistryError) -> Self {
        Self::Retry(err.to_string())
    }
}

/// The backfill service of one Lambda container: the archive pipeline of
/// archive-message (same writer, identity cache, parking and detection),
/// the control bucket, the queue and the staging bucket.
pub struct Backfiller {
    archiver: Archiver,
    registry: Registry,
    queue: WorkQueue,
    staging: BucketName,
    bounds: ChunkBounds,
}

impl Backfiller {
    pub fn new(
        archiver: Archiver,
        registry: Registry,
        queue: WorkQueue,
        staging: BucketName,
        bounds: ChunkBounds,
    ) -> Self {
        Self {
            archiver,
            registry,
            queue,
            staging,
            bounds,
        }
    }

    /// Runs one unit until it is done or `deadline` comes; every line it
    /// logs carries the unit's org and job.
    pub async fn run(&self, unit: &WorkUnit, deadline: tokio::time::Instant) -> UnitReport {
        let span = tracing::info_span!(
            "backfill",
            org_id = %unit.org_id(),
            backfill_id = %unit.backfill_id(),
        );
        self.run_unit(unit, deadline).instrument(span).await
    }

    async fn run_unit(&self, unit: &WorkUnit, deadline: tokio::time::Instant) -> UnitReport {
        match unit {
            WorkUnit::Plan {
                org_id,
                backfill_id,
            } => UnitReport::ended(self.plan(org_id, backfill_id).await),
            WorkUnit::Object {
                org_id,
                backfill_id,
                file,
            } => {
                let mut report = UnitReport::ended(UnitEnd::Done);
                report.end = match self
                    .object(org_id, backfill_id, *file, deadline, &mut report)
                    .await
                    .unwrap_or_else(|end| end)
                {
                    // No chunk committed before the deadline: a retry, so
                    // the receive count grows and a unit that can never
                    // finish a chunk ends its job instead of looping.
                    UnitEnd::Continued if report.chunks == 0 => {
                        UnitEnd::Retry("no chunk finished before the deadline".to_owned())
                    }
                    // Progress was made: go on from it, with fresh receives.
                    UnitEnd::Retry(_) if report.chunks > 0 => UnitEnd::Continued,
                    end => end,
                };
                if report.end == UnitEnd::Continued {
                    // Sent again from here: a failure to send is a retry.
                    if let Err(err) = self.queue.send_all(std::slice::from_ref(unit)).await {
                        report.end = UnitEnd::Retry(err.to_string());
                    }
                }
                report
            }
        }
    }

    /// Fails a job that has not finished, after a unit gave up on it.
    ///
    /// # Errors
    /// [`RegistryError`] when the job could not be saved.
    pub async fn fail(
        &self,
        org: &OrgId,
        id: &BackfillId,
        error: JobError,
    ) -> Result<(), RegistryError> {
        let updated = self
            .registry
            .update_backfill(org, id, |job| job.fail(error.clone(), Utc::now()))
            .await?;
        if let Some((job, ())) = updated {
            log_if_final(&job);
        }
        Ok(())
    }

    /// Lists a `queued` job's manifest and starts it, then sends a unit
    /// for every object not done. Run again (a redelivery after a crash),
    /// it sends the units of a `running` job again: a duplicate unit finds
    /// its checkpoint moved and stops.
    async fn plan(&self, org: &OrgId, id: &BackfillId) -> UnitEnd {
        let job = match self.registry.backfill(org, id).await {
            Ok(Some((job, _))) => job,
            Ok(None) => return UnitEnd::Done,
            Err(err) => return err.into(),
        };
        let job = match job.status {
            JobStatus::Queued => {
                let listed = match self
                    .registry
                    .list_manifest(&self.staging, &job.manifest_prefix)
                    .await
                {
                    Ok(listed) => listed,
                    Err(err) => return err.into(),
                };
                match self
                    .registry
                    .update_backfill(org, id, |job| job.plan(listed.clone(), Utc::now()))
                    .await
                {
                    Ok(Some((job, ()))) => job,
                    Ok(None) => return UnitEnd::Done,
                    Err(err) => return err.into(),
                }
            }
            JobStatus::Running => job,
            _ => return UnitEnd::Done,
        };
        log_if_final(&job);
        if job.status != JobStatus::Running {
            return UnitEnd::Done;
        }
        info!(
            event = "backfill_started",
            files_total = job.counts.files_total,
            "backfill planned"
        );
        let units: Vec<WorkUnit> = job
            .files
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.done)
            .map(|(file, _)| WorkUnit::Object {
                org_id: org.clone(),
                backfill_id: id.clone(),
                file,
            })
            .collect();
        match self.queue.send_all(&units).await {
            Ok(()) => UnitEnd::Done,
            Err(err) => UnitEnd::Retry(err.to_string()),
        }
    }

    /// The destination a job writes to, or the end of the unit: a deleted
    /// or paused destination fails the job (it receives nothing).
    async fn destination(&self, job: &Backfill) -> Result<Arc<Destination>, UnitEnd> {
        let stop = |code: &str, message: &str| JobError::new(code, message);
        let failure = match self.registry.destination(&job.org_id, &job.destination_id).await {
            Ok(d) if d.status != Status::Disabled => return Ok(Arc::new(d)),
            Ok(_) => stop(
                "destination_disabled",
                "The destination was paused, so it receives nothing; resume it and start the backfill again.",
            ),
            Err(RegistryError::NotFound) => stop(
                "destination_not_found",
                "The destination was deleted; the backfill stopped.",
            ),
            Err(err) => return Err(err.into()),
        };
        self.fail(&job.org_id, &job.id, failure).await?;
        Err(UnitEnd::Done)
    }

    /// Reads object `file` of the job on from its checkpoint, committing
    /// chunk by chunk. `Err` carries the unit's end when it stops early.
    async fn object(
        &self,
        org: &OrgId,
        id: &BackfillId,
        file: usize,
        deadline: tokio::time::Instant,
        report: &mut UnitReport,
    ) -> Result<UnitEnd, UnitEnd> {
        let Some((job, _)) = self.registry.backfill(org, id).await? else {
            return Ok(UnitEnd::Done);
        };
        let Some(entry) = job
            .files
            .get(file)
            .filter(|_| job.status == JobStatus::Running)
        else {
            return Ok(UnitEnd::Done);
        };
        if entry.done {
            return Ok(UnitEnd::Done);
        }
        let mut destination = self.destination(&job).await?;
        let mut loaded = tokio::time::Instant::now();
        let Some(encoding) = ManifestEncoding::of(&entry.key) else {
            return Ok(UnitEnd::Done);
        };
        // A gzip stream can only be read from its start.
        let source_offset = match encoding {
            ManifestEncoding::Plain => entry.offset,
            ManifestEncoding::Gzip => 0,
        };
        let stream = match self
            .registry
            .open_manifest(
                &self.staging,
                &entry.key,
                source_offset,
                entry.etag.as_deref(),
            )
            .await
        {
            Ok(stream) => stream,
            Err(RegistryError::NotFound) => {
                self.fail(
                    org,
                    id,
                    JobError::new(
                        "manifest_object_missing",
                        format!(
                            "The manifest object {} was deleted or replaced while the backfill read it; export it again under a new prefix and start a new backfill.",
                            entry.key
                        ),
                    ),
                )
                .await?;
                return Ok(UnitEnd::Done);
            }
            Err(err) => return Err(err.into()),
        };
        let mut reader = ManifestReader::new(
            Source::S3(stream),
            encoding,
            source_offset,
            entry.offset,
            entry.lines,
        );
        let key = entry.key.clone();
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Ok(UnitEnd::Continued);
            }
            // What archive-message honours within a minute (a DELETE, a
            // pause, an edit), a unit honours within a minute too.
            if loaded.elapsed() >= crate::archive::DESTINATION_CACHE_TTL {
                destination = self.destination(&job).await?;
                loaded = tokio::time::Instant::now();
            }
            let (from_offset, _) = reader.position();
            let read = tokio::time::timeout_at(deadline, reader.next_chunk(self.bounds)).await;
            let chunk = match read {
                Err(_) => return Ok(UnitEnd::Continued),
                Ok(Ok(chunk)) => chunk,
                Ok(Err(ReadError::Stream)) => {
                    return Ok(UnitEnd::Retry(ReadError::Stream.to_string()))
                }
                Ok(Err(ReadError::Corrupt)) => {
                    self.fail(
                        org,
                        id,
                        JobError::new(
                            "manifest_unreadable",
                            format!("The manifest object {key} is not valid gzip past byte {from_offset} of its text; the lines before it were archived."),
                        ),
                    )
                    .await?;
                    return Ok(UnitEnd::Done);
                }
            };
            let done = self
                .archive_chunk(&destination, id, file, from_offset, &chunk, deadline)
                .await?;
            let committed = self
                .registry
                .update_backfill(org, id, |job| job.commit(&done, Utc::now()))
                .await?;
            let Some((job, Commit::Applied)) = committed else {
                info!(
                    file,
                    "another delivery of this unit committed first; it goes on"
                );
                return Ok(UnitEnd::Done);
            };
            report.chunks += 1;
            report.counts.add_records(&done.counts);
            log_if_final(&job);
            if job.status != JobStatus::Running || done.end_of_file {
                return Ok(UnitEnd::Done);
            }
        }
    }

    /// One chunk through the archive pipeline: its record counts and
    /// checkpoint to commit. `Err` when the chunk must be read again (the
    /// deadline, or a failure retrying may fix).
    async fn archive_chunk(
        &self,
        destination: &Arc<Destination>,
        id: &BackfillId,
        file: usize,
        from_offset: u64,
        chunk: &super::manifest::Chunk,
        deadline: tokio::time::Instant,
    ) -> Result<ChunkDone, UnitEnd> {
        let mut counts = Counts {
            records_read: chunk.lines.len() as u64,
            ..Counts::default()
        };
        // A line's name in logs and quarantine: job, object and line number.
        let names: Vec<String> = chunk
            .lines
            .iter()
            .map(|(number, _)| format!("{id}-{file:04}-{number:09}"))
            .collect();
        let mut records = Vec::with_capacity(chunk.lines.len());
        for ((number, line), name) in chunk.lines.iter().zip(&names) {
            match line {
                Line::Text(body) => records.push(InboundRecord { id: name, body }),
                Line::TooLong | Line::NotUtf8 => {
                    counts.malformed += 1;
                    warn!(file, line = number, reason = ?line, "manifest line is not a record; counted as malformed");
                }
            }
        }
        let archived = self
            .archiver
            .archive_into(destination, &records, Some(deadline))
            .await;
        if archived.outcomes.contains(&RecordOutcome::Retry) {
            return Err(if archived.timed_out {
                UnitEnd::Continued
            } else {
                let code = archived
                    .failures
                    .first()
                    .map_or("retryable failure", |c| c.as_str());
                UnitEnd::Retry(format!("a write will be retried ({code})"))
            });
        }
        for outcome in &archived.outcomes {
            match outcome {
                RecordOutcome::Written => counts.objects_written += 1,
                RecordOutcome::AlreadyPresent => counts.already_present += 1,
                RecordOutcome::Malformed => counts.malformed += 1,
                RecordOutcome::Skipped => counts.skipped += 1,
                RecordOutcome::Parked => counts.failed += 1,
                RecordOutcome::Retry => {}
            }
        }
        let token = crate::ids::minted::mint("chunk_")
            .map_err(|e| UnitEnd::Retry(format!("no randomness for a commit token ({e})")))?;
        let failure =
            (counts.failed > 0).then(|| broken(archived.failures.first().copied(), counts.failed));
        Ok(ChunkDone {
            file,
            from_offset,
            to_offset: chunk.end_offset,
            to_lines: chunk.end_lines,
            end_of_file: chunk.end_of_file,
            token,
            counts,
            failure,
        })
    }
}

/// The job's error when its destination broke mid-way.
fn broken(code: Option<FailureCode>, parked: u64) -> JobError {
    let code = code.map_or("put_object_failed", FailureCode::as_str);
    JobError::new(
        code,
        format!(
            "The destination refused writes ({code}); the backfill stopped. {parked} records are held for it and are written once a health check sees it recover. Fix the destination (POST .../test shows what is wrong), then start the backfill again: what already landed counts as already_present."
        ),
    )
}

/// The one log line of a job's end (numbers and codes only).
fn log_if_final(job: &Backfill) {
    if job.status.is_final() {
        info!(
            event = "backfill_finished",
            status = job.status.as_str(),
            code = job.error.as_ref().map(|e| e.code.as_str()),
            records_read = job.counts.records_read,
            objects_written = job.counts.objects_written,
            already_present = job.counts.already_present,
            malformed = job.counts.malformed,
            failed = job.counts.failed,
            skipped = job.counts.skipped,
            "backfill finished"
        );
    }
}

/// How long a unit that failed waits before it is tried again: 30 s,
/// doubling per receive, at most 15 minutes.
pub fn retry_delay(receive_count: u32) -> Duration {
    let doublings = receive_count.saturating_sub(1).min(5);
    Duration::from_secs((30u64 << doublings).min(900))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_quarter_hour() {
        assert_eq!(retry_delay(1), Duration::from_secs(30));
        assert_eq!(retry_delay(2), Duration::from_secs(60));
        assert_eq!(retry_delay(5), Duration::from_secs(480));
        assert_eq!(retry_delay(6), Duration::from_secs(900));
        assert_eq!(retry_delay(60), Duration::from_secs(900));
    }

    #[test]
    fn a_units_metric_line_counts_records_and_how_it_ended() {
        let report = UnitReport {
            end: UnitEnd::Retry("x".into()),
            counts: Counts {
                records_read: 7,
                objects_written: 5,
                skipped: 2,
                ..Counts::default()
            },
            chunks: 1,
        };
        let line: serde_json::Value =
            serde_json::from_str(&report.metrics_line(1_700_000_000_000)).unwrap();
        assert_eq!(line["Function"], "run-backfill");
        assert_eq!(line["RecordsRead"], 7.0);
        assert_eq!(line["Skipped"], 2.0);
        assert_eq!(
            (
                line["UnitsRetried"].as_f64(),
                line["UnitsContinued"].as_f64()
            ),
            (Some(1.0), Some(0.0))
        );
        assert!(
            !line.to_string().contains("\"x\""),
            "no reason text in metrics"
        );
    }

    #[test]
    fn a_broken_destination_names_its_code_and_what_to_do() {
        let error = broken(Some(FailureCode::PutObjectDenied), 12);
        assert_eq!(error.code, "put_object_denied");
        assert!(error.message.contains("12 records are held"));
    }
}
