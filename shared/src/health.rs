//! Scheduled health checks (CONTRACT section 6): every destination that is
//! not disabled gets `assume_role` then the `put_object` probe; its `health`
//! and `status` are recorded race-safely; a recovered destination gets its
//! parked objects replayed, so a broken destination loses nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use tracing::{info, warn, Instrument};

use crate::cache::TtlCache;
use crate::checks::{live_checks, Check, CheckStatus, LiveCheck, LiveContext, Purpose};
use crate::credentials::{ExternalId, Identities};
use crate::destination::{Destination, HealthError, Status};
use crate::ids::OrgId;
use crate::registry::{Registry, RegistryError};
use crate::writer::{put, Encoded, PutTarget};

/// How a run is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// Destinations checked at once.
    pub concurrency: usize,
    /// A destination that takes longer fails this run, alone.
    pub per_destination_timeout: Duration,
    /// Parked objects older than this are reported (never deleted).
    pub parked_retention: Duration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            concurrency: 16,
            per_destination_timeout: Duration::from_secs(10),
            parked_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// What a run learned, for the metrics line and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub checked: u64,
    pub healthy: u64,
    pub failing: u64,
    pub timed_out: u64,
    pub transitions: u64,
    pub replayed: u64,
    pub parked_remaining: u64,
    pub parked_over_retention: u64,
    pub max_check_ms: u64,
}

/// A failed check run: what the customer sees, and whether a retry can fix it.
struct Failure {
    error: HealthError,
    transient: bool,
}

struct DestinationResult {
    healthy: bool,
    timed_out: bool,
    transitioned: bool,
    replayed: u64,
    parked_remaining: u64,
    parked_over_retention: u64,
    elapsed: Duration,
}

/// The health checker of one Lambda container; its role sessions persist,
/// so a fresh cached credential means no STS call.
pub struct HealthChecker {
    registry: Registry,
    sessions: Identities,
    sts: aws_sdk_sts::Client,
    anonymous_s3: aws_sdk_s3::config::Builder,
    session_duration: Duration,
    external_ids: TtlCache<OrgId, Option<ExternalId>>,
    settings: HealthSettings,
}

impl HealthChecker {
    pub fn new(
        registry: Registry,
        sessions: Identities,
        sts: aws_sdk_sts::Client,
        anonymous_s3: aws_sdk_s3::config::Builder,
        session_duration: Duration,
        settings: HealthSettings,
    ) -> Self {
        Self {
            registry,
            sessions,
            sts,
            anonymous_s3,
            session_duration,
            external_ids: TtlCache::new(Duration::from_secs(300)),
            settings,
        }
    }

    /// Checks every destination. Only listing the registry can fail the run;
    /// each destination's trouble is recorded on that destination.
    pub async fn run(&self, deadline: Instant) -> Result<HealthReport, RegistryError> {
        let destinations = self.registry.all_destinations().await?;
        let results: Vec<DestinationResult> = stream::iter(
            destinations
                .into_iter()
                .filter(|d| d.status != Status::Disabled)
                .map(|d| {
                    let span = tracing::info_span!("destination", org_id = %d.org_id, destination_id = %d.id);
                    self.check_one(Arc::new(d), deadline).instrument(span)
                }),
        )
        .buffer_unordered(self.settings.concurrency.max(1))
        .collect()
        .await;

        let mut report = HealthReport::default();
        for r in results {
            report.checked += 1;
            report.healthy += u64::from(r.healthy);
            report.failing += u64::from(!r.healthy);
            report.timed_out += u64::from(r.timed_out);
            report.transitions += u64::from(r.transitioned);
            report.replayed += r.replayed;
            report.parked_remaining += r.parked_remaining;
            report.parked_over_retention += r.parked_over_retention;
            report.max_check_ms = report.max_check_ms.max(r.elapsed.as_millis() as u64);
        }
        Ok(report)
    }

    async fn check_one(
        &self,
        destination: Arc<Destination>,
        deadline: Instant,
    ) -> DestinationResult {
        let started = Instant::now();
        let checks = tokio::time::timeout(
            self.settings.per_destination_timeout,
            self.checks(&destination),
        )
        .await;
        let timed_out = checks.is_err();
        let failure = match checks {
            Ok(checks) => checks
                .into_iter()
                .find(|c| c.status == CheckStatus::Fail)
                .map(|c| Failure {
                    transient: c.transient,
                    error: HealthError {
                        code: c.code.unwrap_or("put_object_failed").to_owned(),
                        message: c.message,
                    },
                }),
            // A timeout is the textbook transient failure.
            Err(_) => Some(Failure {
                transient: true,
                error: HealthError {
                    code: "put_object_failed".to_owned(),
                    message: format!(
                        "The check did not finish within {} s.",
                        self.settings.per_destination_timeout.as_secs()
                    ),
                },
            }),
        };
        let elapsed = started.elapsed();
        let healthy = failure.is_none();
        let transitioned = self.record(&destination, failure, Utc::now()).await;

        let mut result = DestinationResult {
            healthy,
            timed_out,
            transitioned,
            replayed: 0,
            parked_remaining: 0,
            parked_over_retention: 0,
            elapsed,
        };
        match self.registry.parked(&destination).await {
            Ok(parked) => {
                let retention = chrono::Duration::from_std(self.settings.parked_retention)
                    .unwrap_or(chrono::Duration::MAX);
                let cutoff = Utc::now() - retention;
                result.parked_over_retention = parked
                    .iter()
                    .filter(|p| p.last_modified.is_some_and(|m| m < cutoff))
                    .count() as u64;
                if healthy && !parked.is_empty() {
                    result.replayed = self.replay(&destination, &parked, deadline).await;
                }
                result.parked_remaining = parked.len() as u64 - result.replayed;
            }
            Err(err) => warn!(error = %err, "parked objects could not be listed"),
        }
        result
    }

    async fn checks(&self, destination: &Destination) -> Vec<Check> {
        let external_id = match self
            .external_ids
            .get_or_try_load(&destination.org_id, || {
                self.registry.external_id(&destination.org_id)
            })
            .await
        {
            Ok(Some(id)) => id,
            Ok(None) | Err(_) => {
                return vec![Check::fail(
                    LiveCheck::AssumeRole.name(),
                    "assume_role_failed",
                    "The organisation's External ID could not be read.",
                    "Retry later; this is on our side.",
                )
                .transient_if(true)]
            }
        };
        let ctx = LiveContext {
            sessions: &self.sessions,
            sts: &self.sts,
            anonymous_s3: &self.anonymous_s3,
            session_duration: self.session_duration,
        };
        live_checks(
            &ctx,
            destination,
            &external_id,
            Purpose::HealthCheck,
            &LiveCheck::HEALTH,
        )
        .await
    }

    /// Writes the new health, merging into whatever the record is now: a
    /// concurrent API update wins for every field but `health` and `status`.
    /// Returns whether the status changed (logged once, here).
    ///
    /// CONTRACT section 6: a pass moves the destination to `active`; only a
    /// failure that retrying will not fix moves it to `failing`. A transient
    /// one (throttling, 5xx, a timeout) is recorded in `health` and moves
    /// nothing, so one `503 SlowDown` never flaps a destination (real-setups
    /// B08).
    async fn record(
        &self,
        checked: &Destination,
        failure: Option<Failure>,
        at: DateTime<Utc>,
    ) -> bool {
        for _ in 0..5 {
            let (mut current, etag) = match self.registry.destination_for_update(checked).await {
                Ok(Some(found)) => found,
                Ok(None) => return false, // deleted meanwhile: nothing to record
                Err(err) => {
                    warn!(error = %err, "health could not be read for update");
                    return false;
                }
            };
            if current.status == Status::Disabled {
                return false;
            }
            let from = current.status;
            current.health.last_checked_at = Some(at);
            match &failure {
                None => {
                    current.health.last_ok_at = Some(at);
                    current.health.consecutive_failures = 0;
                    current.health.last_error = None;
                    current.status = Status::Active;
                }
                Some(failure) => {
                    current.health.consecutive_failures += 1;
                    current.health.last_error = Some(failure.error.clone());
                    if !failure.transient {
                        current.status = Status::Failing;
                    }
                }
            }
            match self.registry.replace_destination(&current, &etag).await {
                Ok(()) => {
                    if from != current.status {
                        info!(
                            event = "destination_health_changed",
                            org_id = %current.org_id,
                            destination_id = %current.id,
                            from = from.as_str(),
                            to = current.status.as_str(),
                            code = failure.as_ref().map_or("ok", |f| f.error.code.as_str()),
                            "destination health changed"
                        );
                        return true;
                    }
                    return false;
                }
                Err(RegistryError::Conflict) => continue,
                Err(err) => {
                    warn!(error = %err, "health could not be recorded");
                    return false;
                }
            }
        }
        warn!("health not recorded: the destination kept changing");
        false
    }

    /// Replays parked objects to a recovered destination, write-once at
    /// their own keys; each is deleted only after its write succeeded, and
    /// what the deadline leaves is picked up by the next run.
    async fn replay(
        &self,
        destination: &Destination,
        parked: &[crate::registry::ParkedObject],
        deadline: Instant,
    ) -> u64 {
        let Ok(Some(external_id)) = self
            .external_ids
            .get_or_try_load(&destination.org_id, || {
                self.registry.external_id(&destination.org_id)
            })
            .await
        else {
            return 0;
        };
        let session = self.sessions.for_destination(destination, &external_id);
        let mut replayed = 0;
        for object in parked {
            if Instant::now() >= deadline {
                break;
            }
            let Ok(Some((body, content_encoding))) = self.registry.read_parked(object).await else {
                continue;
            };
            let encoded = Encoded {
                body,
                content_encoding: match content_encoding.as_deref() {
                    Some("gzip") => Some("gzip"),
                    _ => None,
                },
            };
            let target = PutTarget {
                bucket: &destination.bucket,
                key: &object.object_key,
                owner: destination.expected_owner(),
                encryption: &destination.encryption,
                write_once: true,
            };
            match put(&session, target, &encoded).await {
                Ok(_) => {
                    if self.registry.delete_parked(object).await.is_ok() {
                        replayed += 1;
                    }
                }
                Err(err) => {
                    warn!(code = %err.code, "replay stopped: the destination failed again");
                    break;
                }
            }
        }
        if replayed > 0 {
            info!(replayed, "parked objects replayed");
        }
        replayed
    }
}

impl HealthReport {
    /// The EMF line for this run.
    pub fn metrics_line(&self, timestamp_ms: i64) -> String {
        let values = [
            ("DestinationsChecked", "Count", self.checked as f64),
            ("DestinationsHealthy", "Count", self.healthy as f64),
            ("DestinationsFailing", "Count", self.failing as f64),
            ("ChecksTimedOut", "Count", self.timed_out as f64),
            ("ObjectsReplayed", "Count", self.replayed as f64),
            ("ParkedObjects", "Count", self.parked_remaining as f64),
            (
                "ParkedOverRetention",
                "Count",
                self.parked_over_retention as f64,
            ),
            ("CheckDurationMax", "Milliseconds", self.max_check_ms as f64),
        ];
        crate::metrics::emf_line(timestamp_ms, &[("Function", "check-destinations")], &values)
    }
}
