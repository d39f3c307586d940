//! A backfill job (CONTRACT section 5) as the control bucket keeps it at
//! `backfills/{org_id}/{backfill_id}.json` (section 7), and every change a
//! job goes through. Each change is a pure function of the record, applied
//! under a conditional write (`If-Match`), so concurrent work units, a
//! duplicate delivery and a cancel never lose or double an update.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::manifest::ManifestPrefix;
use crate::destination::{Destination, DestinationId};
use crate::ids::{OrgId, ProjectId};

/// At most this many manifest objects per backfill: every object's
/// progress lives in the job record, which each chunk rewrites (about
/// 100 bytes per object). A larger export is split over several prefixes.
pub const MAX_FILES: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be bf_ followed by 26 lowercase base32 characters")]
pub struct BackfillIdError;

/// `bf_` + 26 lowercase base32 characters: 130 random bits, unguessable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackfillId(String);

impl BackfillId {
    pub fn parse(value: &str) -> Result<Self, BackfillIdError> {
        crate::ids::minted::is_minted(value, "bf_")
            .then(|| Self(value.to_owned()))
            .ok_or(BackfillIdError)
    }

    /// A fresh id from the OS CSPRNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        crate::ids::minted::mint("bf_").map(Self)
    }
}
string_newtype!(BackfillId, BackfillIdError);

/// CONTRACT section 5's job states. `succeeded`, `failed` and `cancelled`
/// are final: nothing moves a job out of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted; the manifest is not listed yet.
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What a job did, per record (a line of the manifest) except the two
/// `files_*` counts. Once every object is read, `records_read` is exactly
/// `objects_written + already_present + malformed + failed + skipped`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub files_total: u64,
    pub files_done: u64,
    /// Non-blank lines read (blank lines are not records).
    pub records_read: u64,
    /// Records this job archived: a message is its own object; an event is
    /// counted once, in the events object that holds it.
    pub objects_written: u64,
    /// Records already archived (a `412` on the write-once key): written
    /// by the archive path, an earlier run of this manifest, or a chunk
    /// repeated after an interruption.
    pub already_present: u64,
    /// Lines that are not a valid record of the destination's org and
    /// project, quarantined like archive bodies (CONTRACT section 2).
    pub malformed: u64,
    /// Records the destination refused for a reason retrying will not fix:
    /// parked for it (CONTRACT section 7) and written by the health check
    /// that sees it recover.
    pub failed: u64,
    /// Valid records the destination does not take (its `channels`,
    /// `record_kinds` or `event_types`): not written, by the customer's
    /// choice. An addition to the contract's counts.
    #[serde(default)]
    pub skipped: u64,
}

impl Counts {
    /// Adds a chunk's record counts (not the `files_*` counts).
    pub fn add_records(&mut self, other: &Counts) {
        self.records_read += other.records_read;
        self.objects_written += other.objects_written;
        self.already_present += other.already_present;
        self.malformed += other.malformed;
        self.failed += other.failed;
        self.skipped += other.skipped;
    }

    /// Every record read ended in exactly one of the other counts.
    pub fn adds_up(&self) -> bool {
        self.records_read
            == self.objects_written
                + self.already_present
                + self.malformed
                + self.failed
                + self.skipped
    }
}

/// Why a job failed: a code the console can act on and a sentence for the
/// customer. Never a record's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

impl JobError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// One manifest object and how far the job has read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Its key in `STAGING_BUCKET`, under the job's manifest prefix.
    pub key: String,
    /// Its size in bytes when listed.
    pub size: u64,
    /// The checkpoint: bytes of its (decompressed) text consumed by
    /// committed chunks.
    pub offset: u64,
    /// Lines consumed by committed chunks: the next line's number.
    pub lines: u64,
    pub done: bool,
    /// Its ETag when listed: every read asks for that version (`If-Match`),
    /// so an export replaced mid-job fails it instead of being read from
    /// an offset into other text.
    #[serde(default)]
    pub etag: Option<String>,
    /// The token of the last chunk committed: a commit whose reply was
    /// lost, retried, finds its own token and is not counted twice.
    #[serde(default)]
    pub last_commit: Option<String>,
}

/// One object as the manifest listing gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
}

/// A job as stored. The API shows [`Backfill::api_view`], without `files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backfill {
    pub id: BackfillId,
    pub org_id: OrgId,
    pub destination_id: DestinationId,
    /// The destination's project: a record of another project is malformed.
    pub project_id: ProjectId,
    pub manifest_prefix: ManifestPrefix,
    pub status: JobStatus,
    pub counts: Counts,
    pub error: Option<JobError>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The manifest as listed when the job started, in key order; empty
    /// while `queued`.
    #[serde(default)]
    pub files: Vec<ManifestFile>,
}

/// A chunk's result, to commit with its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkDone {
    /// The object's index in [`Backfill::files`].
    pub file: usize,
    /// The checkpoint the chunk started from: the commit applies only if
    /// the job still says so (no other worker committed it meanwhile).
    pub from_offset: u64,
    pub to_offset: u64,
    pub to_lines: u64,
    /// The chunk ended the object.
    pub end_of_file: bool,
    /// Unique per chunk read (random): recognises this chunk's own commit
    /// when a retried write of it finds it already applied.
    pub token: String,
    /// Record counts of the chunk.
    pub counts: Counts,
    /// The destination broke during the chunk: the job fails with this.
    pub failure: Option<JobError>,
}

/// Whether a commit applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    Applied,
    /// The object's checkpoint is not where the chunk started: another
    /// delivery of the same unit committed it first. Its counts are
    /// dropped, and that worker carries on with the object.
    NotOwner,
}

impl Backfill {
    /// A new job for `destination`, `queued`.
    pub fn new(
        id: BackfillId,
        destination: &Destination,
        manifest_prefix: ManifestPrefix,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            org_id: destination.org_id.clone(),
            destination_id: destination.id.clone(),
            project_id: destination.project_id.clone(),
            manifest_prefix,
            status: JobStatus::Queued,
            counts: Counts::default(),
            error: None,
            created_at: now,
            updated_at: now,
            files: Vec::new(),
        }
    }

    /// What a stored job must hold to be used: its prefix inside its org's
    /// folder, and every object inside its prefix. A record edited by hand
    /// to point elsewhere is never read from.
    pub fn is_consistent(&self) -> bool {
        self.manifest_prefix.belongs_to(&self.org_id)
            && self
                .files
                .iter()
                .all(|f| self.manifest_prefix.contains(&f.key))
    }

    /// Starts a `queued` job over the listed manifest (in key order); a job
    /// already started is left as it is. An empty or too large manifest
    /// fails the job.
    pub fn plan(&mut self, listed: Vec<Listed>, now: DateTime<Utc>) {
        if self.status != JobStatus::Queued {
            return;
        }
        if listed.is_empty() {
            return self.fail(
                JobError::new(
                    "manifest_empty",
                    "No .ndjson or .ndjson.gz object is under the manifest prefix.",
                ),
                now,
            );
        }
        if listed.len() > MAX_FILES {
            return self.fail(
                JobError::new(
                    "manifest_too_large",
                    format!(
                        "The manifest prefix holds more than {MAX_FILES} objects; split the export over several prefixes."
                    ),
                ),
                now,
            );
        }
        self.counts.files_total = listed.len() as u64;
        self.files = listed
            .into_iter()
            .map(|object| ManifestFile {
                key: object.key,
                size: object.size,
                offset: 0,
                lines: 0,
                done: false,
                etag: object.etag,
                last_commit: None,
            })
            .collect();
        self.status = JobStatus::Running;
        self.updated_at = now;
    }

    /// Commits one chunk: its checkpoint and counts, together, so a chunk
    /// is counted exactly once whoever repeats it. Counts are applied even
    /// to a cancelled job: what was written stays, and is shown.
    pub fn commit(&mut self, chunk: &ChunkDone, now: DateTime<Utc>) -> Commit {
        let Some(file) = self.files.get_mut(chunk.file) else {
            return Commit::NotOwner;
        };
        if file.last_commit.as_deref() == Some(chunk.token.as_str()) {
            // This very chunk, committed by an earlier try whose answer
            // was lost: applied once already.
            return Commit::Applied;
        }
        if file.done || file.offset != chunk.from_offset {
            return Commit::NotOwner;
        }
        file.offset = chunk.to_offset;
        file.lines = chunk.to_lines;
        file.last_commit = Some(chunk.token.clone());
        if chunk.end_of_file {
            file.done = true;
            self.counts.files_done += 1;
        }
        self.counts.add_records(&chunk.counts);
        self.updated_at = now;
        if let Some(failure) = &chunk.failure {
            self.fail(failure.clone(), now);
        }
        if self.status == JobStatus::Running && self.files.iter().all(|f| f.done) {
            self.status = JobStatus::Succeeded;
        }
        Commit::Applied
    }

    /// Fails a job that is not final yet; a final one keeps its outcome.
    pub fn fail(&mut self, error: JobError, now: DateTime<Utc>) {
        if self.status.is_final() {
            return;
        }
        self.status = JobStatus::Failed;
        self.error = Some(error);
        self.updated_at = now;
    }

    /// Cancels a job that has not finished; `Err` with the job's final
    /// status otherwise (cancelling a cancelled job is `Ok`: it is what
    /// was asked).
    pub fn cancel(&mut self, now: DateTime<Utc>) -> Result<(), JobStatus> {
        match self.status {
            JobStatus::Queued | JobStatus::Running => {
                self.status = JobStatus::Cancelled;
                self.updated_at = now;
                Ok(())
            }
            JobStatus::Cancelled => Ok(()),
            other => Err(other),
        }
    }

    /// The job as the API shows it (CONTRACT section 5): its progress per
    /// object stays inside.
    pub fn api_view(&self) -> Value {
        json!({
            "id": self.id,
            "destination_id": self.destination_id,
            "manifest_prefix": self.manifest_prefix,
            "status": self.status,
            "counts": self.counts,
            "error": self.error,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::memory::destination;

    /// A new job `bf_bbb…` over `acme/exports/2026-11/`, for the backfill
    /// modules' unit tests.
    pub(crate) fn job() -> Backfill {
        let destination = destination("p", &crate::ids::Channel::ALL);
        let prefix = ManifestPrefix::parse(&destination.org_id, "acme/exports/2026-11/").unwrap();
        Backfill::new(
            BackfillId::parse("bf_bbbbbbbbbbbbbbbbbbbbbbbbbb").unwrap(),
            &destination,
            prefix,
            Utc::now(),
        )
    }

    fn listed(n: usize) -> Vec<Listed> {
        (0..n)
            .map(|i| Listed {
                key: format!("acme/exports/2026-11/part-{i:04}.ndjson"),
                size: 10,
                etag: Some(format!("\"e{i}\"")),
            })
            .collect()
    }

    fn chunk(file: usize, from: u64, to: u64, read: u64, eof: bool) -> ChunkDone {
        ChunkDone {
            file,
            from_offset: from,
            to_offset: to,
            to_lines: to / 10,
            end_of_file: eof,
            token: format!("t-{file}-{from}"),
            counts: Counts {
                records_read: read,
                objects_written: read - 1,
                malformed: 1,
                ..Counts::default()
            },
            failure: None,
        }
    }

    #[test]
    fn ids_are_minted_and_checked() {
        let id = BackfillId::generate().unwrap();
        assert!(BackfillId::parse(id.as_str()).is_ok());
        assert_ne!(id, BackfillId::generate().unwrap());
        for bad in [
            "bf_",
            "bf_AAAAAAAAAAAAAAAAAAAAAAAAAA",
            "dst_aaaaaaaaaaaaaaaaaaaaaaaaaa",
            "bf_aaaaaaaaaaaaaaaaaaaaaaaaa1",
            "bf_aaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(BackfillId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_job_runs_to_success_and_its_counts_add_up() {
        let mut job = job();
        job.plan(listed(2), Utc::now());
        assert_eq!(job.status, JobStatus::Running);
        assert_eq!(job.counts.files_total, 2);
        assert_eq!(
            job.commit(&chunk(0, 0, 50, 5, false), Utc::now()),
            Commit::Applied
        );
        assert_eq!(
            job.commit(&chunk(0, 50, 90, 4, true), Utc::now()),
            Commit::Applied
        );
        assert_eq!(job.status, JobStatus::Running);
        assert_eq!(
            job.commit(&chunk(1, 0, 30, 3, true), Utc::now()),
            Commit::Applied
        );
        assert_eq!(job.status, JobStatus::Succeeded);
        assert_eq!(job.counts.files_done, 2);
        assert_eq!(job.counts.records_read, 12);
        assert_eq!((job.counts.objects_written, job.counts.malformed), (9, 3));
        assert!(job.counts.adds_up());
    }

    #[test]
    fn a_repeated_chunk_is_counted_once() {
        let mut job = job();
        job.plan(listed(1), Utc::now());
        let first = chunk(0, 0, 50, 5, false);
        assert_eq!(job.commit(&first, Utc::now()), Commit::Applied);
        // The same commit again (its first answer was lost): applied, once.
        assert_eq!(job.commit(&first, Utc::now()), Commit::Applied);
        assert_eq!(job.counts.records_read, 5);
        // A duplicate delivery of the unit read the same chunk.
        let mut duplicate = first.clone();
        duplicate.token = "another-reader".into();
        assert_eq!(job.commit(&duplicate, Utc::now()), Commit::NotOwner);
        assert_eq!(job.counts.records_read, 5);
        assert_eq!(job.files[0].offset, 50);
        // A chunk of an object already done, or of no object, never applies.
        assert_eq!(
            job.commit(&chunk(0, 50, 60, 1, true), Utc::now()),
            Commit::Applied
        );
        assert_eq!(
            job.commit(&chunk(0, 60, 70, 1, true), Utc::now()),
            Commit::NotOwner
        );
        assert_eq!(
            job.commit(&chunk(7, 0, 10, 1, true), Utc::now()),
            Commit::NotOwner
        );
        assert_eq!(job.counts.records_read, 6);
    }

    #[test]
    fn empty_and_oversized_manifests_fail_and_planning_happens_once() {
        let mut empty = job();
        empty.plan(Vec::new(), Utc::now());
        assert_eq!(empty.status, JobStatus::Failed);
        assert_eq!(empty.error.as_ref().unwrap().code, "manifest_empty");
        let mut large = job();
        large.plan(listed(MAX_FILES + 1), Utc::now());
        assert_eq!(large.error.as_ref().unwrap().code, "manifest_too_large");
        assert!(large.files.is_empty());
        let mut once = job();
        once.plan(listed(2), Utc::now());
        once.plan(listed(5), Utc::now());
        assert_eq!(once.files.len(), 2, "a second plan changes nothing");
    }

    #[test]
    fn cancel_stops_what_has_not_finished_and_keeps_later_counts() {
        let mut job = job();
        job.plan(listed(2), Utc::now());
        job.commit(&chunk(0, 0, 50, 5, false), Utc::now());
        assert_eq!(job.cancel(Utc::now()), Ok(()));
        assert_eq!(job.cancel(Utc::now()), Ok(()), "idempotent");
        // The chunk in flight when the cancel landed still counts.
        assert_eq!(
            job.commit(&chunk(0, 50, 90, 4, true), Utc::now()),
            Commit::Applied
        );
        assert_eq!(job.status, JobStatus::Cancelled);
        assert_eq!(job.counts.records_read, 9);
        let mut done = self::job();
        done.plan(listed(1), Utc::now());
        done.commit(&chunk(0, 0, 10, 1, true), Utc::now());
        assert_eq!(done.cancel(Utc::now()), Err(JobStatus::Succeeded));
    }

    #[test]
    fn a_broken_destination_fails_the_job_once() {
        let mut job = job();
        job.plan(listed(2), Utc::now());
        let mut broken = chunk(0, 0, 50, 5, false);
        broken.counts = Counts {
            records_read: 5,
            failed: 5,
            ..Counts::default()
        };
        broken.failure = Some(JobError::new("put_object_denied", "denied"));
        assert_eq!(job.commit(&broken, Utc::now()), Commit::Applied);
        assert_eq!(job.status, JobStatus::Failed);
        job.fail(JobError::new("other", "later"), Utc::now());
        assert_eq!(job.error.as_ref().unwrap().code, "put_object_denied");
        assert_eq!(job.counts.failed, 5);
        assert!(job.counts.adds_up());
    }

    #[test]
    fn the_api_view_hides_progress_and_stored_jobs_stay_in_their_org() {
        let mut job = job();
        job.plan(listed(1), Utc::now());
        let view = job.api_view();
        assert!(view.get("files").is_none() && view.get("org_id").is_none());
        assert_eq!(view["status"], "running");
        assert_eq!(view["counts"]["files_total"], 1);
        assert_eq!(view["error"], Value::Null);
        assert!(job.is_consistent());
        job.files[0].key = "other/exports/part.ndjson".into();
        assert!(!job.is_consistent());
        let stored = serde_json::to_string(&job).unwrap();
        let back: Backfill = serde_json::from_str(&stored).unwrap();
        assert_eq!(back, job);
    }
}
