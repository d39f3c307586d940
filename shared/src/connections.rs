//! The customer's side as the flows see it, whatever the destination kind:
//! write one object, run the live checks. [`Delivery`] is the narrow
//! interface the archive and health decisions stand on; [`Connections`] is
//! the real one, which holds the container's identities and sends each call
//! to the destination's kind (`crate::s3` today). Tests put an in-memory
//! `Delivery` underneath instead.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;

use crate::checks::{
    access_key_check, assume_role_failure, external_id_enforced, Check, CheckStatus, LiveCheck,
    Purpose,
};
use crate::config::Settings;
use crate::credentials::{AccessKeyPair, ExternalId, Identities};
use crate::destination::{Auth, Destination, Target};
use crate::secrets::SecretStore;
use crate::write::{Encoded, WriteError, Written};

/// One object for one destination: the kind's own key (an S3 key) and the
/// encoded bytes.
#[derive(Debug, Clone, Copy)]
pub struct Object<'a> {
    pub key: &'a str,
    pub body: &'a Encoded,
}

/// What the archive and health flows need from a destination.
pub trait Delivery: Send + Sync {
    /// Writes one object, write-once (CONTRACT section 4): an object
    /// already there is [`Written::AlreadyPresent`], never overwritten.
    fn write(
        &self,
        destination: &Destination,
        external_id: &ExternalId,
        object: Object<'_>,
    ) -> impl Future<Output = Result<Written, WriteError>> + Send;

    /// Runs `which` of the live checks in [`LiveCheck::ALL`]'s order; the
    /// first failure skips the rest (CONTRACT section 5).
    fn live_checks(
        &self,
        destination: &Destination,
        external_id: &ExternalId,
        purpose: Purpose,
        which: &[LiveCheck],
    ) -> impl Future<Output = Vec<Check>> + Send;

    /// Credential fetches (AssumeRole calls, access-key secret reads) made so far, for the `StsCalls` metric.
    fn credential_fetches(&self) -> u64;
}

/// The real [`Delivery`] of one Lambda container: its identities (cached
/// sessions), STS for the `external_id_enforced` check, and unsigned S3
/// settings for `not_public`.
pub struct Connections {
    identities: Identities,
    sts: aws_sdk_sts::Client,
    anonymous_s3: aws_sdk_s3::config::Builder,
    session_duration: Duration,
}

impl Connections {
    /// Everything over the one HTTP client and timeouts of `sdk`.
    pub fn new(settings: &Settings, sdk: &aws_config::SdkConfig) -> Self {
        Self::from_parts(
            aws_sdk_sts::Client::new(sdk),
            settings.s3_config(sdk),
            settings.anonymous_s3_config(sdk),
            settings.secret_store(sdk),
            settings,
        )
    }

    /// From clients already built; fresh identities (no cached session).
    pub fn from_parts(
        sts: aws_sdk_sts::Client,
        s3_config: aws_sdk_s3::config::Builder,
        anonymous_s3: aws_sdk_s3::config::Builder,
        secrets: SecretStore,
        settings: &Settings,
    ) -> Self {
        Self {
            identities: Identities::new(
                sts.clone(),
                s3_config,
                secrets,
                settings.credentials_secret_prefix.clone(),
                settings.session_duration,
            ),
            sts,
            anonymous_s3,
            session_duration: settings.session_duration,
        }
    }

    /// These connections, signing an access-key destination with `pair`
    /// (a key being checked before it is stored) instead of its secret.
    pub fn with_given_keys(mut self, pair: AccessKeyPair) -> Self {
        self.identities = self.identities.with_given_keys(pair);
        self
    }

    /// The live checks of [`Delivery::live_checks`]. An access key's
    /// `access_key` check also sets `destination.account_id` to the account
    /// `GetCallerIdentity` named: every later check, and every write once
    /// saved, asserts that account as the bucket owner (CONTRACT section 3).
    pub async fn run_live_checks(
        &self,
        destination: &mut Destination,
        external_id: &ExternalId,
        purpose: Purpose,
        which: &[LiveCheck],
    ) -> Vec<Check> {
        let identity = self.identities.for_destination(destination, external_id);
        let now = Utc::now();
        let mut results = Vec::new();
        let mut failed = false;
        for live in LiveCheck::ALL.into_iter().filter(|c| which.contains(c)) {
            let name = live.name();
            if failed {
                results.push(Check::skip(name, "Skipped: an earlier check failed."));
                continue;
            }
            let role = matches!(destination.auth, Auth::Role { .. });
            let check = match (live, &destination.target) {
                (LiveCheck::AccessKey, _) if role => Check::skip(
                    name,
                    "Not applicable: this destination assumes a role (next check).",
                ),
                (LiveCheck::AccessKey, _) => {
                    let (check, account) = access_key_check(&self.sts, &identity, destination).await;
                    if let Some(account) = account {
                        destination.account_id = account;
                    }
                    check
                }
                (LiveCheck::AssumeRole | LiveCheck::ExternalIdEnforced, _) if !role => Check::skip(
                    name,
                    "Not applicable: an access-key destination signs with its key; there is no role to assume and no External ID.",
                ),
                (LiveCheck::AssumeRole, _) => match identity.credentials.get().await {
                    Ok(_) => Check::pass(name, "We assumed the role with your External ID."),
                    Err(err) => assume_role_failure(&err),
                },
                (LiveCheck::ExternalIdEnforced, _) => {
                    external_id_enforced(&self.sts, destination, self.session_duration).await
                }
                (LiveCheck::PutObject, Target::S3(s3)) => {
                    crate::s3::checks::probe(&identity, destination, s3, purpose, now).await
                }
                (LiveCheck::NotPublic, Target::S3(s3)) => {
                    crate::s3::checks::not_public(&self.anonymous_s3, destination, s3, now).await
                }
            };
            failed = check.status == CheckStatus::Fail;
            results.push(check);
        }
        results
    }
}

impl Delivery for Connections {
    async fn write(
        &self,
        destination: &Destination,
        external_id: &ExternalId,
        object: Object<'_>,
    ) -> Result<Written, WriteError> {
        let identity = self.identities.for_destination(destination, external_id);
        match &destination.target {
            Target::S3(s3) => {
                let put_target = crate::s3::put::PutTarget {
                    bucket: &s3.bucket,
                    key: object.key,
                    owner: destination.expected_owner(),
                    encryption: &s3.encryption,
                    write_once: true,
                };
                let role = matches!(destination.auth, Auth::Role { .. });
                crate::s3::put::put(&identity, put_target, object.body)
                    .await
                    .map_err(|err| err.for_auth(role))
            }
        }
    }

    async fn live_checks(
        &self,
        destination: &Destination,
        external_id: &ExternalId,
        purpose: Purpose,
        which: &[LiveCheck],
    ) -> Vec<Check> {
        let mut checked = destination.clone();
        self.run_live_checks(&mut checked, external_id, purpose, which)
            .await
    }

    fn credential_fetches(&self) -> u64 {
        self.identities.fetches()
    }
}
