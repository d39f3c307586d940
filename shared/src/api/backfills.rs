//! Backfill routes (CONTRACT section 5): start one into a destination,
//! list a destination's, read one, cancel one. Every route is org-scoped:
//! jobs are read at `backfills/{org_id}/...` of the authorizer's org only,
//! and a manifest prefix outside that org's folder is refused before
//! anything is read.

use chrono::Utc;
use serde_json::{json, Map, Value};
use tracing::{error, info};

use super::{Api, ApiError, ApiResponse};
use crate::backfill::{Backfill, BackfillId, Claim, JobError, ManifestPrefix, WorkUnit};
use crate::destination::{DestinationId, Status};
use crate::ids::OrgId;
use crate::registry::RegistryError;

impl ApiResponse {
    fn with_backfill(status: u16, job: &Backfill) -> Self {
        Self::json(status, json!({ "backfill": job.api_view() }))
    }
}

/// The one field of a start request, checked before anything is read.
fn manifest_prefix(org: &OrgId, body: &Map<String, Value>) -> Result<ManifestPrefix, ApiError> {
    if let Some(unknown) = body.keys().find(|k| k.as_str() != "manifest_prefix") {
        return Err(ApiError::InvalidRequest(format!(
            "{unknown} is not a field of a backfill request: send only manifest_prefix."
        )));
    }
    let Some(value) = body.get("manifest_prefix").and_then(Value::as_str) else {
        return Err(ApiError::InvalidRequest(
            "manifest_prefix is required: the folder in the staging bucket that holds the export, starting with your organisation's \"{org_id}/\".".into(),
        ));
    };
    ManifestPrefix::parse(org, value).map_err(|e| ApiError::InvalidRequest(e.to_string()))
}

impl Api {
    /// `POST /v1/destinations/{id}/backfills`: a `queued` job and its plan
    /// unit on the queue, `202`. At most one job per destination runs at
    /// a time (`409`): two over the same history would only race. The
    /// destination's claim ([`crate::backfill::claim`]) decides it.
    pub(super) async fn start_backfill(
        &self,
        org: &OrgId,
        id: &DestinationId,
        body: &Map<String, Value>,
    ) -> Result<ApiResponse, ApiError> {
        let prefix = manifest_prefix(org, body)?;
        let Some(queue) = self
            .backfill_queue
            .as_ref()
            .filter(|_| self.settings.staging_bucket.is_some())
        else {
            return Err(ApiError::InvalidRequest(
                "Backfills are not enabled on this deployment.".into(),
            ));
        };
        let destination = self.registry.destination(org, id).await?;
        if destination.status == Status::Disabled {
            return Err(ApiError::Busy(
                "The destination is paused, so it receives nothing: resume it first.",
            ));
        }
        let job_id = BackfillId::generate().map_err(|e| ApiError::Internal(e.to_string()))?;
        let claim = Claim {
            backfill_id: job_id.clone(),
            claimed_at: Utc::now(),
        };
        let busy = ApiError::Busy(
            "A backfill into this destination is already queued or running: wait for it, or cancel it.",
        );
        match self.registry.claim_destination(org, id, &claim).await {
            Ok(None) => {}
            Ok(Some(holder)) => {
                info!(org_id = %org, destination_id = %id, backfill_id = %holder, "backfill refused: the destination's job is still active");
                return Err(busy);
            }
            Err(RegistryError::Conflict) => return Err(busy),
            Err(err) => return Err(err.into()),
        }
        let job = Backfill::new(job_id, &destination, prefix, Utc::now());
        self.registry.create_backfill(&job).await?;
        let plan = WorkUnit::Plan {
            org_id: org.clone(),
            backfill_id: job.id.clone(),
        };
        if let Err(err) = queue.send_all(&[plan]).await {
            // Never a `queued` job that nothing will run.
            let failed = JobError::new(
                "internal",
                "The backfill could not be queued; start it again.",
            );
            if let Err(save) = self
                .registry
                .update_backfill(org, &job.id, |j| j.fail(failed.clone(), Utc::now()))
                .await
            {
                error!(org_id = %org, backfill_id = %job.id, error = %save, "an unqueued backfill could not be marked failed");
            }
            return Err(ApiError::Internal(err.to_string()));
        }
        info!(org_id = %org, destination_id = %id, backfill_id = %job.id, event = "backfill_queued", "backfill queued");
        Ok(ApiResponse::with_backfill(202, &job))
    }

    /// `GET /v1/destinations/{id}/backfills`: the destination's jobs,
    /// oldest first; `404` for a destination the org does not have.
    pub(super) async fn destination_backfills(
        &self,
        org: &OrgId,
        id: &DestinationId,
    ) -> Result<ApiResponse, ApiError> {
        self.registry.destination(org, id).await?;
        let jobs: Vec<Value> = self
            .registry
            .org_backfills(org)
            .await?
            .iter()
            .filter(|job| &job.destination_id == id)
            .map(Backfill::api_view)
            .collect();
        Ok(ApiResponse::json(200, json!({ "backfills": jobs })))
    }

    /// `GET /v1/backfills/{id}`.
    pub(super) async fn get_backfill(
        &self,
        org: &OrgId,
        id: &BackfillId,
    ) -> Result<ApiResponse, ApiError> {
        let (job, _) = self
            .registry
            .backfill(org, id)
            .await?
            .ok_or(ApiError::NotFound)?;
        Ok(ApiResponse::with_backfill(200, &job))
    }

    /// `POST /v1/backfills/{id}/cancel`: units stop at their next chunk;
    /// what was written stays. A job that already succeeded or failed is
    /// answered as it is (`200`, CONTRACT section 5): its `status` says
    /// the cancel came too late.
    pub(super) async fn cancel_backfill(
        &self,
        org: &OrgId,
        id: &BackfillId,
    ) -> Result<ApiResponse, ApiError> {
        let (job, cancelled) = self
            .registry
            .update_backfill(org, id, |job| job.cancel(Utc::now()))
            .await?
            .ok_or(ApiError::NotFound)?;
        if cancelled.is_ok() {
            info!(org_id = %org, backfill_id = %id, event = "backfill_cancelled", "backfill cancelled");
        }
        Ok(ApiResponse::with_backfill(200, &job))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_start_request_names_a_prefix_in_the_callers_folder_only() {
        let org = OrgId::parse("acme").unwrap();
        assert!(manifest_prefix(&org, &body(json!({"manifest_prefix": "acme/exports/"}))).is_ok());
        for bad in [
            json!({}),
            json!({"manifest_prefix": 3}),
            json!({"manifest_prefix": "other/exports/"}),
            json!({"manifest_prefix": "acme-2/exports/"}),
            json!({"manifest_prefix": "acme/exports/", "bucket": "sm-control"}),
            json!({"manifest_prefix": "acme/../other/"}),
        ] {
            let refused = manifest_prefix(&org, &body(bad.clone()));
            assert!(matches!(refused, Err(ApiError::InvalidRequest(_))), "{bad}");
        }
    }
}
