//! A saved destination's lifecycle (CONTRACT section 5): `PATCH` to edit,
//! pause and resume it, `PUT .../credentials` to rotate an access key, and
//! `POST .../test`, "Test Credentials" on a saved destination. They record
//! what they learn with the health rules of section 6, through the same
//! [`record_health`] the health checker uses.

use chrono::Utc;
use serde_json::{json, Map, Value};
use tracing::info;

use super::{internal, Api, ApiError, ApiResponse};
use crate::checks::{all_passed, static_checks_keeping, Check, LiveCheck, Purpose};
use crate::destination::{Auth, Destination, DestinationId, Status};
use crate::health::{record_health, Failure};
use crate::ids::OrgId;
use crate::notify::{announce, Transition};
use crate::registry::RegistryError;
use crate::store::ControlStore;

/// The section 3 fields a `PATCH` may change: all but `project_id`, which
/// names where the destination is stored and what it receives.
const EDITABLE: [&str; 13] = [
    "auth",
    "role_arn",
    "role_session_name",
    "region",
    "bucket",
    "folder_path",
    "channels",
    "record_kinds",
    "event_types",
    "layout",
    "compression",
    "encryption",
    "bucket_private_confirmed",
];

/// How often a `PATCH` re-reads and re-merges when a health update races
/// its conditional write.
const SAVE_ATTEMPTS: usize = 5;

/// A `PATCH` that passed its checks, ready for the conditional save.
struct Checked<'a> {
    current: &'a Destination,
    candidate: Destination,
    /// The `ETag` of `current`: the save refuses any other.
    read_etag: String,
    status: Option<Status>,
    /// Whether the live checks ran (and passed).
    revalidated: bool,
}

/// A `PATCH` body, checked field by field before anything is read.
struct Patch {
    settings: Map<String, Value>,
    status: Option<Status>,
}

impl Patch {
    /// `project_id`, a field a `PATCH` cannot change (unknown, or not built
    /// yet) or a `status` other than `active`/`disabled`: `400`. Field
    /// names and rules only, never values.
    fn parse(body: &Map<String, Value>) -> Result<Self, ApiError> {
        let mut patch = Self {
            settings: Map::new(),
            status: None,
        };
        for (name, value) in body {
            match name.as_str() {
                "project_id" => {
                    return Err(ApiError::InvalidRequest(
                        "project_id cannot be changed: create a destination in the other project instead.".into(),
                    ))
                }
                "status" => {
                    patch.status = Some(match value.as_str() {
                        Some("active") => Status::Active,
                        Some("disabled") => Status::Disabled,
                        _ => {
                            return Err(ApiError::InvalidRequest(
                                "status must be active or disabled.".into(),
                            ))
                        }
                    })
                }
                field if EDITABLE.contains(&field) => {
                    patch.settings.insert(name.clone(), value.clone());
                }
                _ => {
                    return Err(ApiError::InvalidRequest(format!(
                        "The body has a field a PATCH cannot change. Allowed: {}, status.",
                        EDITABLE.join(", ")
                    )))
                }
            }
        }
        Ok(patch)
    }
}

/// A stored destination's settings as a request body would give them, so
/// a merged `PATCH` runs through the very static checks of a create. A
/// stored access key is not a request's `auth` (it has no secret): the
/// static checks keep it instead (`static_checks_keeping`).
fn settings_of(destination: &Destination) -> Map<String, Value> {
    let Value::Object(mut fields) = json!(destination) else {
        return Map::new();
    };
    fields.retain(|name, _| {
        name == "project_id" || (name != "auth" && EDITABLE.contains(&name.as_str()))
    });
    fields
}

/// The stored settings and the `PATCH` merged. A `PATCH` that switches to
/// an access key drops the stored role fields (unless it gives them too,
/// which `auth_invalid` then refuses), so it needs no `"role_arn": null`.
fn merge(current: &Destination, patch: Map<String, Value>) -> Map<String, Value> {
    let mut merged = settings_of(current);
    let to_key = patch
        .get("auth")
        .and_then(|auth| auth.get("mode"))
        .is_some_and(|mode| mode == "access_key");
    if to_key {
        merged.remove("role_arn");
        merged.remove("role_session_name");
    }
    merged.extend(patch);
    merged
}

/// RFC 9110 `If-Match`: `*`, or a list of strong entity tags one of which
/// must be the current one.
fn if_match_holds(if_match: Option<&str>, etag: &str) -> bool {
    if_match.is_none_or(|header| {
        header
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag == etag)
    })
}

impl Api {
    /// `PATCH /v1/destinations/{id}`: a change to a connection field, or a
    /// resume (`disabled` → `active`), re-runs every check on the merged
    /// destination and saves only when all pass; anything else saves at
    /// once. The save is a conditional write: a racing health update is
    /// re-read and kept (the edit wins for settings, the health for
    /// health), and a racing edit is never overwritten: `409` (`412` under
    /// `If-Match`).
    pub(super) async fn patch(
        &self,
        org: &OrgId,
        id: &DestinationId,
        body: &Map<String, Value>,
        if_match: Option<&str>,
    ) -> Result<ApiResponse, ApiError> {
        self.edit(org, id, body, if_match, false).await
    }

    /// A `PATCH`, or with `keys_only` a rotation, which must find an
    /// access-key destination on the very read it edits (the save below
    /// then refuses any change since): a role destination is `409`
    /// `not_access_key`, never turned into a key one by a racing `PATCH`.
    async fn edit(
        &self,
        org: &OrgId,
        id: &DestinationId,
        body: &Map<String, Value>,
        if_match: Option<&str>,
        keys_only: bool,
    ) -> Result<ApiResponse, ApiError> {
        let patch = Patch::parse(body)?;
        let current = self.registry.destination(org, id).await?;
        if keys_only && current.auth.access_key().is_none() {
            return Err(ApiError::NotAccessKey);
        }
        let read_etag = current.etag();
        if !if_match_holds(if_match, &read_etag) {
            return Err(ApiError::PreconditionFailed);
        }
        let kept_key = current
            .auth
            .access_key()
            .filter(|_| !patch.settings.contains_key("auth"));
        let merged = merge(&current, patch.settings);
        let outcome =
            static_checks_keeping(org, &merged, &self.settings.role_name_prefix, kept_key);
        let mut checks = outcome.checks;
        let new_keys = outcome.new_keys;
        let Some(mut candidate) = outcome.destination else {
            if all_passed(&checks) {
                return Err(ApiError::Internal(
                    "no destination from passing checks".into(),
                ));
            }
            checks.extend(LiveCheck::ALL.iter().map(|live| {
                Check::skip(live.name(), "Skipped: fix the failed checks above first.")
            }));
            return Ok(ApiResponse::json(
                422,
                json!({ "valid": false, "checks": checks }),
            ));
        };
        let resuming = current.status == Status::Disabled && patch.status == Some(Status::Active);
        let revalidated = resuming || current.connection_differs(&candidate);
        if revalidated {
            checks.extend(
                self.live_checks(org, &mut candidate, Purpose::Validation, new_keys.clone())
                    .await?,
            );
            if !all_passed(&checks) {
                return Ok(ApiResponse::json(
                    422,
                    json!({ "valid": false, "checks": checks }),
                ));
            }
        } else {
            // Unchanged identity: the account learnt when it was checked.
            candidate.account_id = current.account_id.clone();
        }
        // Only keys that passed reach Secrets Manager: a new version, which
        // readers use once the save below names it (crate::secrets).
        let secret = self.secret_name(org, id);
        let had_key = current.auth.access_key().is_some();
        if let Some(pair) = &new_keys {
            let version = match had_key {
                // The secret of a destination that has one: a new version.
                // Gone (removed by hand, or by a DELETE that did not finish):
                // stored again, so a rotation repairs the destination; a
                // DELETE that did finish makes the save below fail, and the
                // cleanup after it removes the secret again.
                true => match self.secrets.put(&secret, pair).await {
                    Err(err) if err.gone => self.secrets.store(&secret, pair).await,
                    put => put,
                },
                false => self.secrets.store(&secret, pair).await,
            }
            .map_err(internal)?;
            if let Auth::AccessKey(stored) = &mut candidate.auth {
                stored.secret_version_id = Some(version);
            }
        }
        let checked = Checked {
            current: &current,
            candidate,
            read_etag,
            status: patch.status,
            revalidated,
        };
        let saved = self.save_patch(org, id, &checked, if_match).await;
        match &saved {
            // A role now: the key is no longer needed anywhere.
            Ok(_) if had_key && checked.candidate.auth.access_key().is_none() => {
                self.delete_secret(org, id).await;
            }
            // Keys stored for a save that did not happen: the secret goes
            // only when the destination as it is now surely needs none (a
            // registry we cannot read proves nothing).
            Err(_) if new_keys.is_some() => {
                let unused = match self.registry.destination(org, id).await {
                    Ok(now) => now.auth.access_key().is_none(),
                    Err(RegistryError::NotFound) => true,
                    Err(_) => false,
                };
                if unused {
                    self.delete_secret(org, id).await;
                }
            }
            _ => {}
        }
        saved
    }

    /// The conditional save of a checked `PATCH` (see [`Api::patch`]).
    async fn save_patch(
        &self,
        org: &OrgId,
        id: &DestinationId,
        checked: &Checked<'_>,
        if_match: Option<&str>,
    ) -> Result<ApiResponse, ApiError> {
        let Checked {
            current,
            candidate,
            read_etag,
            status,
            revalidated,
        } = checked;
        let (status, revalidated) = (*status, *revalidated);
        for _ in 0..SAVE_ATTEMPTS {
            let Some((fresh, version)) = self.registry.destination_for_update(current).await?
            else {
                return Err(ApiError::NotFound);
            };
            if fresh.etag() != *read_etag {
                // Another edit landed since we read: never overwrite it.
                return Err(if if_match.is_some() {
                    ApiError::PreconditionFailed
                } else {
                    ApiError::Conflict
                });
            }
            let now = Utc::now();
            let mut updated = Destination {
                id: fresh.id.clone(),
                org_id: fresh.org_id.clone(),
                project_id: fresh.project_id.clone(),
                created_at: fresh.created_at,
                updated_at: Some(now),
                status: fresh.status,
                health: fresh.health.clone(),
                ..candidate.clone()
            };
            match status {
                Some(Status::Disabled) => updated.status = Status::Disabled,
                Some(Status::Active) if fresh.status == Status::Disabled => {
                    updated.status = Status::Active
                }
                _ => {}
            }
            // Every check just passed: that is a healthy destination.
            if revalidated && updated.status != Status::Disabled {
                updated.status = Status::Active;
                updated.health.last_checked_at = Some(now);
                updated.health.last_ok_at = Some(now);
                updated.health.consecutive_failures = 0;
                updated.health.last_error = None;
            }
            match self.registry.replace_destination(&updated, &version).await {
                Ok(()) => {
                    info!(org_id = %org, destination_id = %id, revalidated, status = updated.status.as_str(), "destination updated");
                    if fresh.status == Status::Failing && updated.status == Status::Active {
                        let transition = Transition {
                            org_id: updated.org_id.clone(),
                            project_id: updated.project_id.clone(),
                            destination_id: updated.id.clone(),
                            from: Status::Failing,
                            to: Status::Active,
                            code: None,
                            message: None,
                            occurred_at: now,
                        };
                        announce(&self.notifier, &transition, "validate-destination").await;
                    }
                    return Ok(ApiResponse::with_destination(200, json!({}), &updated));
                }
                Err(RegistryError::Conflict) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(ApiError::Conflict)
    }

    /// `PUT /v1/destinations/{id}/credentials` (CONTRACT section 5): a new
    /// key pair for an access-key destination, checked like a new
    /// destination before the swap. The old secret version stays in use
    /// until the new one passed and the destination names it; `422` leaves
    /// everything as it was.
    pub(super) async fn rotate(
        &self,
        org: &OrgId,
        id: &DestinationId,
        body: &Map<String, Value>,
        if_match: Option<&str>,
    ) -> Result<ApiResponse, ApiError> {
        // A field's name is the caller's own text: not echoed.
        if body
            .keys()
            .any(|k| !matches!(k.as_str(), "access_key_id" | "secret_access_key"))
        {
            return Err(ApiError::InvalidRequest(
                "The body takes access_key_id and secret_access_key only.".into(),
            ));
        }
        let mut auth = body.clone();
        auth.insert("mode".into(), json!("access_key"));
        let mut patch = Map::new();
        patch.insert("auth".into(), Value::Object(auth));
        self.edit(org, id, &patch, if_match, true).await
    }

    /// `POST /v1/destinations/{id}/test`: every live check now, with the
    /// stored settings; the result is recorded with the health rules of
    /// section 6 (a pass moves `failing` back to `active`; a transient
    /// failure moves nothing; a `disabled` destination records nothing).
    /// Parked objects are replayed by the next scheduled health run, not
    /// here: a replay can take longer than API Gateway's 30 s.
    pub(super) async fn test(
        &self,
        org: &OrgId,
        id: &DestinationId,
    ) -> Result<ApiResponse, ApiError> {
        let current = self.registry.destination(org, id).await?;
        let checks = self
            .live_checks(org, &mut current.clone(), Purpose::OnDemandTest, None)
            .await?;
        let failure = Failure::of(&checks);
        let recorded = record_health(&self.registry, &current, failure.as_ref(), Utc::now()).await;
        if let Some(transition) = &recorded.transition {
            announce(&self.notifier, transition, "validate-destination").await;
        }
        let destination = match recorded.destination {
            Some(saved) => saved,
            None => self.registry.destination(org, id).await?,
        };
        Ok(ApiResponse::with_destination(
            200,
            json!({ "valid": all_passed(&checks), "checks": checks }),
            &destination,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_patch_takes_settings_and_status_only() {
        let patch = Patch::parse(&body(json!({
            "bucket": "other-bucket", "folder_path": null, "status": "disabled"
        })))
        .unwrap();
        assert_eq!(patch.status, Some(Status::Disabled));
        assert_eq!(patch.settings.len(), 2);
        assert!(Patch::parse(&body(json!({ "auth": { "mode": "role" } }))).is_ok());
        for refused in [
            json!({ "project_id": "p2" }),
            json!({ "status": "failing" }),
            json!({ "status": true }),
            json!({ "id": "dst_x" }),
            json!({ "health": {} }),
            json!({ "secret": "do-not-echo-this" }),
        ] {
            let err = Patch::parse(&body(refused.clone())).err().unwrap();
            assert!(matches!(err, ApiError::InvalidRequest(_)), "{refused}");
            assert!(!err.to_string().contains("do-not-echo-this"));
        }
    }

    #[test]
    fn switching_to_a_key_drops_the_stored_role_and_a_role_auth_keeps_it() {
        let current = crate::store::memory::destination("p1", &[crate::ids::Channel::Email]);
        let keys = json!({ "mode": "access_key", "access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "x" });
        let merged = merge(&current, body(json!({ "auth": keys })));
        assert!(!merged.contains_key("role_arn") && !merged.contains_key("role_session_name"));
        assert_eq!(merged["bucket"], "acme-archive", "the rest is kept");
        let merged = merge(&current, body(json!({ "auth": { "mode": "role" } })));
        assert!(
            merged.contains_key("role_arn"),
            "a role's auth is a no-op on a role"
        );
        let outcome = static_checks_keeping(
            &OrgId::parse("acme").unwrap(),
            &merged,
            "stored-messages",
            None,
        );
        assert!(outcome.destination.is_some(), "{:?}", outcome.checks);
    }

    #[test]
    fn if_match_is_strong_and_may_list_tags() {
        let etag = "\"abc\"";
        assert!(if_match_holds(None, etag));
        assert!(if_match_holds(Some("\"abc\""), etag));
        assert!(if_match_holds(Some("\"x\", \"abc\""), etag));
        assert!(if_match_holds(Some("*"), etag));
        assert!(!if_match_holds(Some("\"x\""), etag));
        assert!(
            !if_match_holds(Some("W/\"abc\""), etag),
            "weak never matches"
        );
        assert!(!if_match_holds(Some("abc"), etag));
    }
}
