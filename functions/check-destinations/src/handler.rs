//! EventBridge scheduled event in, a run summary out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::{json, Value};
use stored_messages::arn::AccountId;
use stored_messages::config::Settings;
use stored_messages::credentials::RoleSessions;
use stored_messages::deadline::stop_at;
use stored_messages::health::HealthChecker;
use stored_messages::registry::Registry;

/// Replays stop this long before the Lambda deadline (or a quarter of the
/// time left, if less), so the run always finishes and records what it learned.
const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// `account` is ours, the owner of the control bucket.
pub fn checker(
    settings: &Settings,
    sdk: &aws_config::SdkConfig,
    account: AccountId,
) -> HealthChecker {
    let sts = aws_sdk_sts::Client::new(sdk);
    HealthChecker::new(
        Registry::new(settings.s3_client(sdk), &settings.control_bucket, account),
        RoleSessions::new(
            sts.clone(),
            settings.s3_config(sdk),
            settings.session_duration,
        ),
        sts,
        settings.anonymous_s3_config(sdk),
        settings.session_duration,
        settings.health,
    )
}

pub async fn handle(
    checker: &HealthChecker,
    event: LambdaEvent<EventBridgeEvent<Value>>,
) -> Result<Value, Error> {
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
