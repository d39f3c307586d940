//! Backfills (CONTRACT section 5): a destination receives the history the
//! sending platform exported to `STAGING_BUCKET`, not only what is sent
//! from now on.
//!
//! | what | where |
//! |---|---|
//! | the job record, its counts and every change it goes through | [`job`] |
//! | the one job a destination may run at a time | [`claim`] |
//! | the manifest prefix's confinement, and reading an object in chunks from a checkpoint | [`manifest`] |
//! | the units of work on the backfill queue | [`queue`] |
//! | `run-backfill`'s work on one unit | [`worker`] |
//!
//! The API (`crate::api`) creates a job `queued` and sends a plan unit;
//! the worker lists the manifest, sends one unit per object, and each unit
//! writes through the archive pipeline ([`crate::archive::Archiver::archive_into`]),
//! so a backfilled record lands at the same write-once key, with the same
//! identity and rules, as if archive-message had written it.

pub mod claim;
pub mod job;
pub mod manifest;
pub mod queue;
pub mod worker;

pub use claim::Claim;
pub use job::{Backfill, BackfillId, Counts, JobError, JobStatus, Listed, MAX_FILES};
pub use manifest::{ChunkBounds, ManifestEncoding, ManifestPrefix};
pub use queue::{WorkQueue, WorkUnit};
pub use worker::{Backfiller, UnitEnd, UnitReport};

/// The most lines one chunk holds (`BACKFILL_CHUNK_LINES` may lower it):
/// the events-object line bound ([`crate::records::ObjectBounds`]), so a
/// chunk of one hour's events of one type is one object.
pub const CHUNK_LINES: usize = 5_000;

/// The most text one chunk holds before its last line ends.
pub const CHUNK_BYTES: usize = 4 << 20;

/// A longer line is malformed, dropped as it streams by rather than held:
/// 6 MiB, Lambda's own invocation payload bound.
pub const MAX_LINE_BYTES: usize = 6 << 20;

/// `run-backfill`'s settings (CONTRACT section 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillSettings {
    /// `BACKFILL_QUEUE_URL`; None refuses backfills.
    pub queue_url: Option<String>,
    /// `BACKFILL_CHUNK_LINES`, 1..=[`CHUNK_LINES`]: smaller chunks commit
    /// (and so resume) more often, at one job write each.
    pub chunk_lines: usize,
    /// `BACKFILL_MAX_RECEIVES` (default 5): the queue's `maxReceiveCount`.
    /// A unit failing on its last receive fails its job instead of
    /// vanishing into the dead-letter queue unannounced.
    pub max_receives: u32,
}

impl BackfillSettings {
    /// The chunk bounds these settings give.
    pub fn chunk_bounds(&self) -> ChunkBounds {
        ChunkBounds {
            max_lines: self.chunk_lines,
            max_bytes: CHUNK_BYTES,
            max_line_bytes: MAX_LINE_BYTES,
        }
    }
}
