//! SQS batch in, `batchItemFailures` out: exactly the records to retry.

use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use std::convert::Infallible;

use lambda_runtime::LambdaEvent;
use stored_messages::archive::{Archiver, InboundRecord};
use stored_messages::deadline::stop_at;

/// Never fails as a whole (`Infallible`): a record that cannot be finished is
/// listed in `batchItemFailures`, so a function error would only make SQS
/// retry the records that did land.
pub async fn handle(
    archiver: &Archiver,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Infallible> {
    // SQS always sets a message id; a record without one could not be
    // reported back, so it is not ours to acknowledge or retry.
    let records: Vec<InboundRecord<'_>> = event
        .payload
        .records
        .iter()
        .filter_map(|r| {
            Some(InboundRecord {
                id: r.message_id.as_deref()?,
                body: r.body.as_deref().unwrap_or_default(),
            })
        })
        .collect();
    let report = archiver
        .archive_batch(
            &records,
            Some(stop_at(
                event.context.deadline,
                DEADLINE_MARGIN,
                Duration::from_secs(900),
            )),
        )
        .await;
    stored_messages::metrics::emit(&report.metrics_line(stored_messages::metrics::now_ms()));
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = report
        .retry
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    Ok(response)
}

/// Answer at least this long before Lambda's deadline.
const DEADLINE_MARGIN: Duration = Duration::from_secs(3);
