//! EventBridge scheduled event in, a run summary out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{json, Value};
use stored_messages::arn::AccountId;
use stored_messages::config::Settings;
use stored_messages::connections::Connections;
use stored_messages::deadline::stop_at;
use stored_messages::health::HealthChecker;
use stored_messages::notify::EventBridgeNotifier;
use stored_messages::registry::{Registry, RegistryError};

/// Replays stop this long before the Lambda deadline (or a quarter of the
/// time left, if less), so the run always finishes and records what it learned.
const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// `account` is ours, the owner of the control bucket.
pub fn checker(
    settings: &Settings,
    sdk: &aws_config::SdkConfig,
    account: AccountId,
) -> HealthChecker {
    HealthChecker::new(
        Registry::new(settings.s3_client(sdk), &settings.control_bucket, account),
        Connections::new(settings, sdk),
        EventBridgeNotifier::new(sdk, settings.event_bus_name.clone()),
        settings.health,
    )
}

/// Why a whole run failed: only the registry listing can fail it (each
/// destination's trouble is recorded on that destination). Reported to
/// Lambda with a stable `error_type`, so alarms and retries can key on it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the destinations could not be listed: {0}")]
    Registry(#[from] RegistryError),
}

impl From<RunError> for Diagnostic {
    fn from(err: RunError) -> Self {
        let error_type = match &err {
            RunError::Registry(RegistryError::Corrupt(_)) => "RegistryCorrupt",
            RunError::Registry(_) => "ControlBucketUnavailable",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: err.to_string(),
        }
    }
}

pub async fn handle(
    checker: &HealthChecker,
    event: LambdaEvent<EventBridgeEvent<Value>>,
) -> Result<Value, RunError> {
    let deadline = stop_at(
        event.context.deadline,
        DEADLINE_MARGIN,
        Duration::from_secs(300),
    )
    .into_std();
    let report = checker.run(deadline).await?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    stored_messages::metrics::emit(&report.metrics_line(now_ms));
    Ok(json!({
        "checked": report.checked,
        "healthy": report.healthy,
        "failing": report.failing,
        "timed_out": report.timed_out,
        "replayed": report.replayed,
        "parked_remaining": report.parked_remaining,
    }))
}

#[cfg(test)]
mod diagnostics {
    use super::*;

    #[test]
    fn run_errors_have_stable_error_types() {
        let unavailable = Diagnostic::from(RunError::from(RegistryError::Unavailable(
            "SlowDown".into(),
        )));
        assert_eq!(unavailable.error_type, "ControlBucketUnavailable");
        let corrupt = Diagnostic::from(RunError::from(RegistryError::Corrupt(
            "destinations/a/b/c.json".into(),
        )));
        assert_eq!(corrupt.error_type, "RegistryCorrupt");
    }
}
