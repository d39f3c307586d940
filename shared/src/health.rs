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
use crate::checks::{Check, CheckStatus, LiveCheck, Purpose};
use crate::connections::{Connections, Delivery, Object};
use crate::credentials::ExternalId;
use crate::destination::{Destination, HealthError, Status};
use crate::ids::OrgId;
use crate::notify::{announce, EventBridgeNotifier, Notifier, Transition};
use crate::registry::{ParkedObject, Registry, RegistryError};
use crate::store::ControlStore;

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
    /// Access-key destinations whose key is older than
    /// [`crate::destination::ROTATION_DUE_AFTER`] (`auth.rotation_due`).
    pub access_keys_rotation_due: u64,
}

/// A failed check run: what the customer sees, and whether a retry can fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: HealthError,
    /// Throttling, 5xx, a timeout, our own control bucket: recorded, but
    /// never a reason to move a destination (CONTRACT section 6).
    pub transient: bool,
}

impl Failure {
    /// The first failed check of a run, or None when all passed.
    pub fn of(checks: &[Check]) -> Option<Self> {
        checks
            .iter()
            .find(|c| c.status == CheckStatus::Fail)
            .map(Self::from_check)
    }

    /// A failed check as the health it leaves.
    pub fn from_check(check: &Check) -> Self {
        Self {
            transient: check.transient,
            error: HealthError {
                code: check.code.unwrap_or("put_object_failed").to_owned(),
                message: check.message.clone(),
            },
        }
    }
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

/// The health checker of one Lambda container, over our control data (`S`)
/// and the customer's side (`D`); its sessions persist, so a fresh cached
/// credential means no STS call.
pub struct HealthChecker<S = Registry, D = Connections, N = EventBridgeNotifier> {
    registry: S,
    delivery: D,
    notifier: N,
    external_ids: TtlCache<OrgId, Option<ExternalId>>,
    settings: HealthSettings,
}

impl<S: ControlStore, D: Delivery, N: Notifier> HealthChecker<S, D, N> {
    /// `notifier` publishes each transition (CONTRACT section 6).
    pub fn new(registry: S, delivery: D, notifier: N, settings: HealthSettings) -> Self {
        Self {
            registry,
            delivery,
            notifier,
            external_ids: TtlCache::new(Duration::from_secs(300)),
            settings,
        }
    }

    /// Checks every destination. Only listing the registry can fail the run;
    /// each destination's trouble is recorded on that destination.
    pub async fn run(&self, deadline: Instant) -> Result<HealthReport, RegistryError> {
        let destinations = self.registry.all_destinations().await?;
        let now = chrono::Utc::now();
        // Counted for the metric; which ones, the API says (auth.rotation_due).
        let rotation_due = destinations
            .iter()
            .filter(|d| d.auth.access_key().is_some_and(|key| key.rotation_due(now)))
            .count() as u64;
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

        let mut report = HealthReport {
            access_keys_rotation_due: rotation_due,
            ..HealthReport::default()
        };
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
            Ok(checks) => Failure::of(&checks),
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
        let recorded =
            record_health(&self.registry, &destination, failure.as_ref(), Utc::now()).await;
        let transitioned = recorded.transition.is_some();
        if let Some(transition) = &recorded.transition {
            announce(&self.notifier, transition, "check-destinations").await;
        }

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
                // Replayed with the settings just recorded as healthy, never
                // with the copy the run started from.
                if let (true, false, Some(fresh)) =
                    (healthy, parked.is_empty(), recorded.destination.as_ref())
                {
                    result.replayed = self.replay(fresh, &parked, deadline).await;
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
        self.delivery
            .live_checks(
                destination,
                &external_id,
                Purpose::HealthCheck,
                &LiveCheck::HEALTH,
            )
            .await
    }

    /// Replays parked objects to a recovered destination, write-once at
    /// their own keys; each is deleted only after its write succeeded, and
    /// what the deadline leaves is picked up by the next run.
    async fn replay(
        &self,
        destination: &Destination,
        parked: &[ParkedObject],
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
        let mut replayed = 0;
        for object in parked {
            if Instant::now() >= deadline {
                break;
            }
            let Ok(Some(parked)) = self.registry.read_parked(object).await else {
                continue;
            };
            let key = match &parked.made_under {
                Some(prefix) => destination.target.rebased_key(&object.object_key, prefix),
                None => object.object_key.clone(),
            };
            let replayed_object = Object {
                key: &key,
                body: &parked.object,
            };
            match self
                .delivery
                .write(destination, &external_id, replayed_object)
                .await
            {
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

/// What [`record_health`] saved.
#[derive(Debug, Default)]
pub struct Recorded {
    /// The destination as saved; None when nothing was (deleted, disabled,
    /// or the control bucket refused).
    pub destination: Option<Destination>,
    /// The status move, when there was one; the caller announces it.
    pub transition: Option<Transition>,
}

/// Records one health observation (`failure`: None for a pass) on the
/// stored destination, merging into whatever the record is now: a
/// concurrent API update wins for every field but `health` and `status`.
/// Used by the health checker, the API's on-demand test and archive's
/// immediate detection, so all three apply the same rules.
///
/// CONTRACT section 6: a pass moves the destination to `active`; only a
/// failure that retrying will not fix moves it to `failing`. A transient
/// one (throttling, 5xx, a timeout) is recorded in `health` and moves
/// nothing, so one `503 SlowDown` never flaps a destination (real-setups
/// B08). A `disabled` destination is the customer's pause: nothing is
/// recorded on it.
pub async fn record_health<S: ControlStore>(
    store: &S,
    checked: &Destination,
    failure: Option<&Failure>,
    at: DateTime<Utc>,
) -> Recorded {
    for _ in 0..5 {
        let (mut current, version) = match store.destination_for_update(checked).await {
            Ok(Some(found)) => found,
            Ok(None) => return Recorded::default(), // deleted meanwhile
            Err(err) => {
                warn!(error = %err, "health could not be read for update");
                return Recorded::default();
            }
        };
        if current.status == Status::Disabled {
            return Recorded::default();
        }
        // A result about other settings than the stored ones (a PATCH landed
        // since the check began, or the caller's copy is a cache up to 60 s
        // old) says nothing about the destination as it is now.
        if current.connection_differs(checked) {
            info!(destination_id = %current.id, "health not recorded: the destination's connection changed since it was checked");
            return Recorded::default();
        }
        let from = current.status;
        current.health.last_checked_at = Some(at);
        match failure {
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
        match store.replace_destination(&current, &version).await {
            Ok(()) => {
                let transition = (from != current.status).then(|| Transition {
                    org_id: current.org_id.clone(),
                    project_id: current.project_id.clone(),
                    destination_id: current.id.clone(),
                    from,
                    to: current.status,
                    code: failure
                        .filter(|_| current.status == Status::Failing)
                        .map(|f| f.error.code.clone()),
                    message: failure
                        .filter(|_| current.status == Status::Failing)
                        .map(|f| f.error.message.clone()),
                    occurred_at: at,
                });
                return Recorded {
                    destination: Some(current),
                    transition,
                };
            }
            Err(RegistryError::Conflict) => continue,
            Err(err) => {
                warn!(error = %err, "health could not be recorded");
                return Recorded::default();
            }
        }
    }
    warn!("health not recorded: the destination kept changing");
    Recorded::default()
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
            (
                "AccessKeysRotationDue",
                "Count",
                self.access_keys_rotation_due as f64,
            ),
        ];
        crate::metrics::emf_line(timestamp_ms, &[("Function", "check-destinations")], &values)
    }
}

/// The health decisions of CONTRACT section 6 over the in-memory store and
/// customer side: which failures move a destination, what is recorded,
/// and when parked objects are replayed. No AWS, no emulator.
#[cfg(test)]
mod tests {
    use crate::write::{encode, Compression};

    use super::*;
    use crate::ids::Channel;
    use crate::store::memory::{destination, MemoryDelivery, MemoryNotifier, MemoryStore, Side};

    type Checker = HealthChecker<MemoryStore, MemoryDelivery, MemoryNotifier>;

    fn checker(destinations: &[&Destination]) -> Checker {
        let store = MemoryStore::seeded(destinations);
        let settings = HealthSettings {
            per_destination_timeout: Duration::from_millis(200),
            ..HealthSettings::default()
        };
        HealthChecker::new(
            store,
            MemoryDelivery::default(),
            MemoryNotifier::default(),
            settings,
        )
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test]
    async fn keys_older_than_ninety_days_are_counted_for_the_nag() {
        use crate::credentials::access_key::MaskedKeyId;
        use crate::destination::{Auth, StoredAccessKey, ROTATION_DUE_AFTER};
        let keyed = |age: chrono::TimeDelta| {
            let mut d = destination("p1", &[Channel::Email]);
            d.auth = Auth::AccessKey(StoredAccessKey {
                access_key_id: MaskedKeyId::parse("AKIA************MPLE").unwrap(),
                credentials_updated_at: chrono::Utc::now() - age,
                secret_version_id: Some("v".into()),
            });
            d
        };
        let old = keyed(ROTATION_DUE_AFTER + chrono::TimeDelta::hours(1));
        let young = keyed(ROTATION_DUE_AFTER - chrono::TimeDelta::hours(1));
        let role = destination("p1", &[Channel::Email]);
        let report = checker(&[&old, &young, &role]).run(far()).await.unwrap();
        assert_eq!((report.checked, report.access_keys_rotation_due), (3, 1));
        let line: serde_json::Value = serde_json::from_str(&report.metrics_line(0)).unwrap();
        assert_eq!(line["AccessKeysRotationDue"], 1.0);
    }

    fn stored(c: &Checker, d: &Destination) -> Destination {
        c.registry.destination(&d.id).unwrap()
    }

    #[tokio::test]
    async fn a_pass_records_health_and_keeps_the_destination_active() {
        let d = destination("p", &Channel::ALL);
        let c = checker(&[&d]);
        let report = c.run(far()).await.unwrap();
        assert_eq!(
            (report.checked, report.healthy, report.transitions),
            (1, 1, 0)
        );
        let now = stored(&c, &d);
        assert_eq!(now.status, Status::Active);
        assert!(now.health.last_ok_at.is_some() && now.health.last_error.is_none());
    }

    #[tokio::test]
    async fn a_failure_retrying_will_not_fix_moves_active_to_failing_once() {
        let d = destination("p", &Channel::ALL);
        let c = checker(&[&d]);
        c.delivery.set(&d.id, Side::denied());
        let first = c.run(far()).await.unwrap();
        assert_eq!((first.failing, first.transitions), (1, 1));
        let now = stored(&c, &d);
        assert_eq!(now.status, Status::Failing);
        assert_eq!(now.health.consecutive_failures, 1);
        assert_eq!(
            now.health.last_error.map(|e| e.code),
            Some("put_object_denied".to_owned())
        );
        let published = c.notifier.published();
        assert_eq!(published.len(), 1);
        assert_eq!(
            (published[0].from, published[0].to),
            (Status::Active, Status::Failing)
        );
        assert_eq!(published[0].code.as_deref(), Some("put_object_denied"));
        assert_eq!(published[0].destination_id, d.id);
        let second = c.run(far()).await.unwrap();
        assert_eq!(second.transitions, 0, "logged once, at the move");
        assert_eq!(
            c.notifier.published().len(),
            1,
            "published once, at the move"
        );
        assert_eq!(stored(&c, &d).health.consecutive_failures, 2);
    }

    #[tokio::test]
    async fn a_transient_failure_is_recorded_and_moves_nothing() {
        let d = destination("p", &Channel::ALL);
        let c = checker(&[&d]);
        c.delivery.set(&d.id, Side::throttled());
        let report = c.run(far()).await.unwrap();
        assert_eq!((report.failing, report.transitions), (1, 0));
        let now = stored(&c, &d);
        assert_eq!(
            now.status,
            Status::Active,
            "one 503 never flaps a destination"
        );
        assert_eq!(now.health.consecutive_failures, 1);
        assert_eq!(
            now.health.last_error.map(|e| e.code),
            Some("put_object_failed".to_owned())
        );
    }

    #[tokio::test]
    async fn a_check_that_times_out_is_transient() {
        let d = destination("p", &Channel::ALL);
        let c = checker(&[&d]);
        c.delivery.set(&d.id, Side::Hangs);
        let report = c.run(far()).await.unwrap();
        assert_eq!((report.timed_out, report.transitions), (1, 0));
        assert_eq!(stored(&c, &d).status, Status::Active);
    }

    #[tokio::test]
    async fn a_missing_external_id_is_ours_and_transient() {
        let d = destination("p", &Channel::ALL);
        let store = MemoryStore::default();
        store.put_destination(d.clone());
        let c = HealthChecker::new(
            store,
            MemoryDelivery::default(),
            MemoryNotifier::default(),
            HealthSettings::default(),
        );
        let report = c.run(far()).await.unwrap();
        assert_eq!((report.failing, report.transitions), (1, 0));
        let now = c.registry.destination(&d.id).unwrap();
        assert_eq!(now.status, Status::Active);
        assert_eq!(
            now.health.last_error.map(|e| e.code),
            Some("assume_role_failed".to_owned())
        );
    }

    #[tokio::test]
    async fn disabled_destinations_are_not_checked() {
        let mut d = destination("p", &Channel::ALL);
        d.status = Status::Disabled;
        let c = checker(&[&d]);
        c.delivery.set(&d.id, Side::denied());
        let report = c.run(far()).await.unwrap();
        assert_eq!(report.checked, 0);
        assert_eq!(stored(&c, &d), d);
    }

    #[tokio::test]
    async fn recovery_moves_failing_to_active_and_replays_what_was_parked() {
        let mut d = destination("p", &Channel::ALL);
        d.status = Status::Failing;
        let c = checker(&[&d]);
        for key in ["a.json", "b.json"] {
            c.registry
                .park(&d, key, &encode(b"{}", Compression::None))
                .await
                .unwrap();
        }
        let report = c.run(far()).await.unwrap();
        assert_eq!((report.transitions, report.replayed), (1, 2));
        assert_eq!(report.parked_remaining, 0);
        assert_eq!(stored(&c, &d).status, Status::Active);
        let published = c.notifier.published();
        assert_eq!(published.len(), 1);
        assert_eq!(
            (published[0].from, published[0].to),
            (Status::Failing, Status::Active)
        );
        assert_eq!(
            (
                published[0].code.as_deref(),
                published[0].message.as_deref()
            ),
            (None, None)
        );
        assert_eq!(c.delivery.keys(&d.id), ["a.json", "b.json"]);
        assert!(c.registry.parked_keys().is_empty(), "deleted once written");
    }

    #[tokio::test]
    async fn a_parked_object_replays_under_the_folder_of_now() {
        let mut d = destination("p", &Channel::ALL);
        d.status = Status::Failing;
        let folder = |f: &str| Some(crate::s3::FolderPath::parse(f).unwrap());
        let crate::destination::Target::S3(s3) = &mut d.target;
        s3.folder_path = folder("exports/old");
        let c = checker(&[&d]);
        c.registry
            .park(
                &d,
                "exports/old/email/m-1.json",
                &encode(b"{}", Compression::None),
            )
            .await
            .unwrap();
        // The customer moves the archive (a PATCH of folder_path): the
        // session policy now allows only the new folder.
        let (mut moved, version) = c
            .registry
            .destination_for_update(&d)
            .await
            .unwrap()
            .unwrap();
        let crate::destination::Target::S3(s3) = &mut moved.target;
        s3.folder_path = folder("exports/new");
        c.registry
            .replace_destination(&moved, &version)
            .await
            .unwrap();

        let report = c.run(far()).await.unwrap();
        assert_eq!(report.replayed, 1);
        assert_eq!(c.delivery.keys(&d.id), ["exports/new/email/m-1.json"]);
        assert!(c.registry.parked_keys().is_empty());
    }

    #[tokio::test]
    async fn a_broken_destination_keeps_its_parked_objects() {
        let d = destination("p", &Channel::ALL);
        let c = checker(&[&d]);
        c.delivery.set(&d.id, Side::denied());
        c.registry
            .park(&d, "a.json", &encode(b"{}", Compression::None))
            .await
            .unwrap();
        let report = c.run(far()).await.unwrap();
        assert_eq!((report.replayed, report.parked_remaining), (0, 1));
        assert_eq!(c.registry.parked_keys().len(), 1);
    }

    #[tokio::test]
    async fn replay_stops_at_the_deadline_and_leaves_the_rest_for_the_next_run() {
        let d = destination("p", &Channel::ALL);
        let c = checker(&[&d]);
        c.registry
            .park(&d, "a.json", &encode(b"{}", Compression::None))
            .await
            .unwrap();
        let report = c.run(Instant::now()).await.unwrap();
        assert_eq!((report.healthy, report.replayed), (1, 0));
        assert_eq!(report.parked_remaining, 1);
    }

    #[tokio::test]
    async fn health_is_recorded_over_a_concurrent_update() {
        let d = destination("p", &Channel::ALL);
        let c = checker(&[&d]);
        c.delivery.set(&d.id, Side::denied());
        c.registry.race_next_replacements(2);
        let report = c.run(far()).await.unwrap();
        assert_eq!(report.transitions, 1);
        assert_eq!(stored(&c, &d).status, Status::Failing);
    }

    #[tokio::test]
    async fn only_an_unlistable_registry_fails_the_run() {
        let c = checker(&[]);
        c.registry.make_unavailable("all_destinations");
        assert!(c.run(far()).await.is_err());
        let d = destination("p", &Channel::ALL);
        let c = checker(&[&d]);
        c.registry.make_unavailable("replace_destination");
        let report = c.run(far()).await.unwrap();
        assert_eq!((report.checked, report.transitions), (1, 0));
    }

    #[tokio::test]
    async fn a_result_about_settings_since_changed_is_not_recorded() {
        let checked = destination("p", &Channel::ALL);
        let mut edited = checked.clone();
        let crate::destination::Target::S3(s3) = &mut edited.target;
        s3.bucket = crate::s3::BucketName::parse("acme-moved").unwrap();
        let store = MemoryStore::seeded(&[&edited]);
        let failure = Failure {
            transient: false,
            error: HealthError {
                code: "bucket_not_found".to_owned(),
                message: "The bucket does not exist.".to_owned(),
            },
        };
        let recorded = record_health(&store, &checked, Some(&failure), Utc::now()).await;
        assert!(recorded.transition.is_none() && recorded.destination.is_none());
        assert_eq!(store.destination(&checked.id).unwrap(), edited, "untouched");
    }
}
