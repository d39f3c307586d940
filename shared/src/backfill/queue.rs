//! The backfill queue (`BACKFILL_QUEUE_URL`, CONTRACT section 1): the
//! units of work `run-backfill` is triggered by. SQS's event source mapping
//! is the engine: it runs units in parallel up to the mapping's
//! `MaximumConcurrency`, redelivers a unit whose invocation failed or
//! timed out, and moves one that keeps failing to the dead-letter queue.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::job::BackfillId;
use crate::failure::{sdk_outcome, SdkOutcome};
use crate::ids::OrgId;

/// One message on the queue. Only our functions send them; a body that is
/// not one is logged and dropped by the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "unit", rename_all = "snake_case", deny_unknown_fields)]
pub enum WorkUnit {
    /// List the manifest and send one [`WorkUnit::Object`] per object.
    Plan {
        org_id: OrgId,
        backfill_id: BackfillId,
    },
    /// Read one manifest object on from its checkpoint in the job record.
    Object {
        org_id: OrgId,
        backfill_id: BackfillId,
        /// Its index in the job's `files`.
        file: usize,
    },
}

impl WorkUnit {
    pub fn org_id(&self) -> &OrgId {
        match self {
            Self::Plan { org_id, .. } | Self::Object { org_id, .. } => org_id,
        }
    }

    pub fn backfill_id(&self) -> &BackfillId {
        match self {
            Self::Plan { backfill_id, .. } | Self::Object { backfill_id, .. } => backfill_id,
        }
    }
}

/// Why the queue refused. Carries the SQS error code only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the backfill queue refused {operation} ({code})")]
pub struct QueueError {
    pub operation: &'static str,
    pub code: String,
}

fn queue_error<E>(
    operation: &'static str,
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::http::Response,
    >,
) -> QueueError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata,
{
    let code = match sdk_outcome(err) {
        SdkOutcome::Service(facts) => facts.code.unwrap_or("no error code").to_owned(),
        SdkOutcome::Transport => "no answer".to_owned(),
        SdkOutcome::Construction => "request could not be built".to_owned(),
    };
    QueueError { operation, code }
}

/// Sends units to the backfill queue.
#[derive(Clone, Debug)]
pub struct WorkQueue {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

impl WorkQueue {
    /// SendMessageBatch takes at most 10 entries (SQS API Reference).
    const BATCH: usize = 10;

    pub fn new(sqs: aws_sdk_sqs::Client, url: String) -> Self {
        Self { sqs, url }
    }

    /// Sends every unit, ten per request. An entry SQS refuses is sent
    /// again once; a duplicate is harmless (each object's checkpoint
    /// decides who commits), a lost unit is not, so any entry still
    /// refused fails the whole call.
    ///
    /// # Errors
    /// [`QueueError`] when a request or an entry failed.
    pub async fn send_all(&self, units: &[WorkUnit]) -> Result<(), QueueError> {
        for batch in units.chunks(Self::BATCH) {
            let mut pending: Vec<(String, String)> = batch
                .iter()
                .enumerate()
                .map(|(i, unit)| {
                    let body = serde_json::to_string(unit).map_err(|_| QueueError {
                        operation: "SendMessageBatch",
                        code: "unit not serialisable".to_owned(),
                    })?;
                    Ok((i.to_string(), body))
                })
                .collect::<Result<_, QueueError>>()?;
            for attempt in 0..2 {
                let entries = pending
                    .iter()
                    .map(|(id, body)| {
                        aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                            .id(id)
                            .message_body(body)
                            .build()
                            .map_err(|_| QueueError {
                                operation: "SendMessageBatch",
                                code: "request could not be built".to_owned(),
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let out = self
                    .sqs
                    .send_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| queue_error("SendMessageBatch", &e))?;
                let failed: Vec<&str> = out.failed().iter().map(|f| f.id()).collect();
                pending.retain(|(id, _)| failed.contains(&id.as_str()));
                if pending.is_empty() {
                    break;
                }
                if attempt == 1 {
                    let code = out
                        .failed()
                        .first()
                        .map_or("entry failed", |f| f.code())
                        .to_owned();
                    return Err(QueueError {
                        operation: "SendMessageBatch",
                        code,
                    });
                }
            }
        }
        Ok(())
    }

    /// Makes a unit that failed visible again after `delay` instead of the
    /// queue's whole visibility timeout (set for the longest invocation), so
    /// a passing outage costs seconds, not half an hour.
    ///
    /// # Errors
    /// [`QueueError`]; the unit then comes back at the visibility timeout.
    pub async fn retry_after(
        &self,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), QueueError> {
        self.sqs
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(delay.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| queue_error("ChangeMessageVisibility", &e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_tagged_and_strict() {
        let unit = WorkUnit::Object {
            org_id: OrgId::parse("acme").unwrap(),
            backfill_id: BackfillId::parse("bf_bbbbbbbbbbbbbbbbbbbbbbbbbb").unwrap(),
            file: 3,
        };
        let body = serde_json::to_string(&unit).unwrap();
        assert_eq!(
            body,
            r#"{"unit":"object","org_id":"acme","backfill_id":"bf_bbbbbbbbbbbbbbbbbbbbbbbbbb","file":3}"#
        );
        assert_eq!(serde_json::from_str::<WorkUnit>(&body).unwrap(), unit);
        for bad in [
            r#"{"unit":"object","org_id":"acme","backfill_id":"bf_bbbbbbbbbbbbbbbbbbbbbbbbbb"}"#,
            r#"{"unit":"plan","org_id":"../x","backfill_id":"bf_bbbbbbbbbbbbbbbbbbbbbbbbbb"}"#,
            r#"{"unit":"plan","org_id":"acme","backfill_id":"bf_x"}"#,
            r#"{"unit":"plan","org_id":"acme","backfill_id":"bf_bbbbbbbbbbbbbbbbbbbbbbbbbb","extra":1}"#,
        ] {
            assert!(serde_json::from_str::<WorkUnit>(bad).is_err(), "{bad}");
        }
    }
}
