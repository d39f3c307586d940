//! Telling the sending platform that a destination moved between `active`
//! and `failing` (CONTRACT section 6), so it can tell the customer's admin:
//! one JSON log line and, when `EVENT_BUS_NAME` is set, one EventBridge
//! event per transition, from whichever function made it (archive, health
//! check or API test).
//!
//! Publishing is best effort: the SDK retries throttling and 5xx, we retry
//! entries EventBridge reports as failed, and a publish that still fails is
//! a log line and a `NotificationsFailed` metric, never an error of the
//! caller. The whole publish is bounded by [`PUBLISH_TIMEOUT`], so a slow
//! bus never holds up an archive batch.

use std::future::Future;
use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{info, warn};

use crate::destination::{DestinationId, Status};
use crate::ids::{OrgId, ProjectId};

/// The event's `Source` (CONTRACT section 6).
pub const SOURCE: &str = "stored-messages";
/// The event's `DetailType` (CONTRACT section 6).
pub const DETAIL_TYPE: &str = "Destination Health Changed";
/// The longest a transition waits on EventBridge, retries included.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);
/// Attempts at an entry EventBridge accepted the call for but failed
/// (`FailedEntryCount`), which the SDK does not retry.
const ENTRY_ATTEMPTS: usize = 3;

/// One move of a destination between statuses: the event's `Detail`.
/// Codes and our own messages only: never a secret, a recipient or a body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub org_id: OrgId,
    pub project_id: ProjectId,
    pub destination_id: DestinationId,
    pub from: Status,
    pub to: Status,
    /// The failure's check code for a move to `failing`; `null` otherwise.
    pub code: Option<String>,
    /// The failure's message for a move to `failing`; `null` otherwise.
    pub message: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// Where transitions are published.
pub trait Notifier: Send + Sync {
    /// Publishes one transition; whether it reached the bus (true also when
    /// no bus is configured: there is nothing to miss).
    fn publish(&self, transition: &Transition) -> impl Future<Output = bool> + Send;
}

/// The real [`Notifier`]: `PutEvents` on `EVENT_BUS_NAME`, or nothing when
/// it is not set.
#[derive(Clone)]
pub struct EventBridgeNotifier {
    client: aws_sdk_eventbridge::Client,
    bus: Option<String>,
}

impl EventBridgeNotifier {
    /// `bus`: `EVENT_BUS_NAME` (a name or an ARN), or None to publish nothing.
    pub fn new(sdk: &aws_config::SdkConfig, bus: Option<String>) -> Self {
        Self {
            client: aws_sdk_eventbridge::Client::new(sdk),
            bus,
        }
    }

    async fn put(&self, bus: &str, transition: &Transition) -> Result<(), String> {
        let detail = serde_json::to_string(transition).map_err(|e| e.to_string())?;
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(bus)
            .source(SOURCE)
            .detail_type(DETAIL_TYPE)
            .detail(detail)
            .build();
        let mut last = String::new();
        for _ in 0..ENTRY_ATTEMPTS {
            match self.client.put_events().entries(entry.clone()).send().await {
                Ok(out) if out.failed_entry_count() == 0 => return Ok(()),
                // Entry-level failures (throttling, internal) come back in a 200.
                Ok(out) => {
                    last = out
                        .entries()
                        .iter()
                        .find_map(|e| e.error_code().map(str::to_owned))
                        .unwrap_or_else(|| "a failed entry".to_owned());
                }
                Err(err) => {
                    return Err(aws_sdk_eventbridge::error::ProvideErrorMetadata::code(&err)
                        .unwrap_or("no answer")
                        .to_owned())
                }
            }
        }
        Err(last)
    }
}

impl Notifier for EventBridgeNotifier {
    async fn publish(&self, transition: &Transition) -> bool {
        let Some(bus) = &self.bus else {
            return true;
        };
        match tokio::time::timeout(PUBLISH_TIMEOUT, self.put(bus, transition)).await {
            Ok(Ok(())) => true,
            Ok(Err(code)) => {
                warn!(destination_id = %transition.destination_id, error = %code, "health event not published");
                false
            }
            Err(_) => {
                warn!(destination_id = %transition.destination_id, "health event not published in time");
                false
            }
        }
    }
}

/// Logs a transition once (`event: "destination_health_changed"`) and
/// publishes it; a failed publish becomes a `NotificationsFailed` metric of
/// `function`. Never fails.
pub async fn announce<N: Notifier>(notifier: &N, transition: &Transition, function: &str) {
    info!(
        event = "destination_health_changed",
        org_id = %transition.org_id,
        destination_id = %transition.destination_id,
        from = transition.from.as_str(),
        to = transition.to.as_str(),
        code = transition.code.as_deref().unwrap_or("ok"),
        "destination health changed"
    );
    if !notifier.publish(transition).await {
        crate::metrics::emit(&crate::metrics::emf_line(
            Utc::now().timestamp_millis(),
            &[("Function", function)],
            &[("NotificationsFailed", "Count", 1.0)],
        ));
    }
}
