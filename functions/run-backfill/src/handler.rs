//! SQS batch of backfill units in, `batchItemFailures` out: exactly the
//! units to retry.

use std::convert::Infallible;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use stored_messages::backfill::worker::retry_delay;
use stored_messages::backfill::{Backfiller, JobError, UnitEnd, WorkQueue, WorkUnit};
use stored_messages::deadline::stop_at;
use tracing::{error, warn};

/// Stop starting chunks this long before Lambda's deadline: what is in
/// flight then is abandoned (its chunk read again by the next invocation),
/// and the unit sent again, well before the function is killed.
const DEADLINE_MARGIN: Duration = Duration::from_secs(20);

/// Never fails as a whole (`Infallible`): a unit that cannot finish now is
/// listed in `batchItemFailures` and made visible again after a back-off;
/// on its last receive it fails its job instead, so a job never waits on a
/// unit that went to the dead-letter queue.
pub async fn handle(
    backfiller: &Backfiller,
    queue: &WorkQueue,
    max_receives: u32,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Infallible> {
    let deadline = stop_at(
        event.context.deadline,
        DEADLINE_MARGIN,
        Duration::from_secs(900),
    );
    let mut response = SqsBatchResponse::default();
    for record in &event.payload.records {
        let Some(id) = record.message_id.as_deref() else {
            continue;
        };
        let body = record.body.as_deref().unwrap_or_default();
        let Ok(unit) = serde_json::from_str::<WorkUnit>(body) else {
            // Only our functions send here: not a unit is a bug, and
            // retrying it would never make it one.
            error!(sqs_message_id = id, "not a backfill unit; dropped");
            continue;
        };
        let report = backfiller.run(&unit, deadline).await;
        stored_messages::metrics::emit(&report.metrics_line(stored_messages::metrics::now_ms()));
        let UnitEnd::Retry(reason) = report.end else {
            continue;
        };
        let receives = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(1);
        if receives >= max_receives {
            let exhausted = JobError::new(
                "retries_exhausted",
                format!("A part of the backfill failed {receives} times ({reason}). What was written stays; start the backfill again to finish it (what landed counts as already_present)."),
            );
            match backfiller
                .fail(unit.org_id(), unit.backfill_id(), exhausted)
                .await
            {
                Ok(()) => continue,
                Err(err) => {
                    error!(sqs_message_id = id, error = %err, "a unit out of retries could not fail its job")
                }
            }
        } else {
            warn!(sqs_message_id = id, receives, reason = %reason, "backfill unit will be retried");
            if let Some(handle) = record.receipt_handle.as_deref() {
                if let Err(err) = queue.retry_after(handle, retry_delay(receives)).await {
                    warn!(sqs_message_id = id, error = %err, "back-off not set; the unit returns at the visibility timeout");
                }
            }
        }
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id.to_owned();
        response.batch_item_failures.push(failure);
    }
    Ok(response)
}
