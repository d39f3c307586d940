//! The one backfill a destination may run at a time: `POST .../backfills`
//! answers `409` while another is `queued` or `running`, since two jobs over
//! one history would only race each other's writes.
//!
//! Each destination has a claim object in the control bucket,
//! `backfills/{org_id}/claims/{destination_id}.json` (beside the jobs of
//! CONTRACT section 7, under the same grant). A start writes it with
//! `If-None-Match: *` when there is none, or replaces, with `If-Match`, the
//! claim of a job that has ended. S3's conditional writes let exactly one of
//! two concurrent starts through, where reading the org's jobs first let
//! both pass, and a start reads one claim and one job, not every job the
//! org ever ran. Claims are never deleted: the next start replaces an
//! ended job's claim.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{Backfill, BackfillId};

/// How long a claim whose job record is not there yet still holds: the
/// start that wrote it saves the job right after, within API Gateway's
/// 30 s. A claim older than this with no job is an orphan of a start that
/// failed in between, and frees its destination.
pub const CLAIM_GRACE: Duration = Duration::minutes(5);

/// A claim object's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub backfill_id: BackfillId,
    pub claimed_at: DateTime<Utc>,
}

impl Claim {
    /// Whether this claim still holds its destination at `now`, given its
    /// job as stored (`None`: not saved yet, or gone).
    pub fn holds(&self, job: Option<&Backfill>, now: DateTime<Utc>) -> bool {
        match job {
            Some(job) => !job.status.is_final(),
            None => now - self.claimed_at < CLAIM_GRACE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backfill::job::tests::job;
    use crate::backfill::JobError;

    #[test]
    fn a_queued_or_running_job_holds_and_an_ended_one_frees() {
        let mut job = job();
        let claim = Claim {
            backfill_id: job.id.clone(),
            claimed_at: Utc::now() - Duration::days(3),
        };
        let now = Utc::now();
        assert!(claim.holds(Some(&job), now), "queued");
        job.fail(JobError::new("internal", "x"), now);
        assert!(!claim.holds(Some(&job), now), "failed");
    }

    #[test]
    fn a_claim_without_its_job_holds_only_through_the_grace() {
        let now = Utc::now();
        let id = job().id;
        let young = Claim {
            backfill_id: id.clone(),
            claimed_at: now - Duration::seconds(20),
        };
        assert!(young.holds(None, now), "its start is saving the job");
        let orphan = Claim {
            backfill_id: id,
            claimed_at: now - CLAIM_GRACE,
        };
        assert!(
            !orphan.holds(None, now),
            "its start failed before saving the job"
        );
    }
}
