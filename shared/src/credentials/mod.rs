//! Where a destination's identity comes from, and the cache that keeps
//! fetching it off the per-message path.
//!
//! A [`CredentialSource`] is one way to obtain credentials: [`role`] assumes
//! the customer's role; [`access_key`] reads an IAM user's key pair from
//! Secrets Manager (or uses a pair being checked). Above it, one
//! type serves every source: [`CachedCredentials`] fetches once, refreshes
//! ahead of expiry, lets one caller fetch while concurrent callers wait
//! (single flight), remembers a refusal for a while so a broken destination
//! does not hammer STS once per message, and drops credentials S3 rejected.
//! [`Identities`] keeps one [`Identity`] (credentials plus the S3 client that
//! signs with them) per source and region for the life of the container, so
//! the writer, the checks and the health checker never ask which source it is.

pub mod access_key;
pub mod role;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::provider::{self, ProvideCredentials};
use aws_credential_types::Credentials;
use aws_sdk_s3::config::{IdentityCache, Region};

use crate::destination::{Auth, Destination};
use crate::secrets::{SecretName, SecretStore};
pub use access_key::{AccessKeyPair, GivenKeySource, StoredKeySource};
pub use role::{assume_role, trust_policy, AssumeSpec, ExternalId, RoleSource};

/// Refresh this long before expiry (or halfway, for shorter-lived
/// credentials), so no request is signed with credentials about to lapse.
const REFRESH_AHEAD: Duration = Duration::from_secs(5 * 60);
/// How long a refused fetch is answered from memory.
pub const DENIAL_TTL: Duration = Duration::from_secs(60);
/// At most one renewal after a denied write per identity in this long.
pub const RENEWAL_AFTER_DENIAL_INTERVAL: Duration = Duration::from_secs(60);

/// Why an identity's credentials could not be had, and whether a retry can
/// help. Messages carry our own words and AWS error codes only (STS's text
/// names our principal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// The source refused us (AssumeRole denied).
    #[error("AssumeRole was denied")]
    Denied,
    #[error("AssumeRole failed ({0})")]
    Failed(String),
    #[error("AssumeRole failed transiently ({0})")]
    Transient(String),
    /// The stored access key could not be read from our Secrets Manager:
    /// our side, never the customer's, so always retried (the record stays
    /// on the queue) and never a reason to call the destination `failing`.
    #[error("the stored access key could not be read ({0})")]
    SecretUnavailable(String),
    /// The destination's secret does not exist: half deleted (the secret
    /// goes first), or removed by hand. Retrying will not bring it back;
    /// the objects are parked until the customer sends a key again.
    #[error("the stored access key is gone")]
    SecretGone,
}

impl CredentialsError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient(_) | Self::SecretUnavailable(_))
    }
}

/// One way to obtain a destination's credentials: one implementation plus
/// its variant in [`SourceKey`] per source.
pub trait CredentialSource: Send + Sync + fmt::Debug {
    /// One uncached fetch.
    fn fetch(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<Credentials, CredentialsError>> + Send + '_>>;
}

#[derive(Default)]
struct CacheState {
    /// The credentials and when to stop using them (`None`: a long-term
    /// key, used until the identity itself is replaced).
    credentials: Option<(Credentials, Option<SystemTime>)>,
    /// Until when a refusal (or a secret that is gone) is answered from memory.
    denied_until: Option<Instant>,
    refused_with: Option<CredentialsError>,
    /// When credentials were last dropped because S3 denied a write.
    renewed_after_denial: Option<Instant>,
}

/// When to fetch again: ahead of expiry, or never for credentials without
/// one (an access key: re-reading the secret per write would cost a
/// Secrets Manager call per object).
fn refresh_at(credentials: &Credentials, now: SystemTime) -> Option<SystemTime> {
    let expiry = credentials.expiry()?;
    let lifetime = expiry.duration_since(now).unwrap_or_default();
    Some(expiry - REFRESH_AHEAD.min(lifetime / 2))
}

struct Inner {
    source: Box<dyn CredentialSource>,
    state: tokio::sync::Mutex<CacheState>,
    fetches: Arc<AtomicU64>,
}

/// Cached credentials of one identity, whatever its source. Also the
/// credentials provider of that identity's S3 client, so the client never
/// fetches on its own.
#[derive(Clone)]
pub struct CachedCredentials(Arc<Inner>);

impl fmt::Debug for CachedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedCredentials")
            .field("source", &self.0.source)
            .finish()
    }
}

impl CachedCredentials {
    /// A cache over `source`, counting its fetches into `fetches`.
    pub fn new(source: Box<dyn CredentialSource>, fetches: Arc<AtomicU64>) -> Self {
        Self(Arc::new(Inner {
            source,
            state: tokio::sync::Mutex::default(),
            fetches,
        }))
    }

    /// Fresh credentials, from memory when possible. Holding the async lock
    /// across the STS call is what makes concurrent first use single-flight.
    pub async fn get(&self) -> Result<Credentials, CredentialsError> {
        let mut state = self.0.state.lock().await;
        if let Some((credentials, refresh_at)) = &state.credentials {
            if refresh_at.is_none_or(|at| SystemTime::now() < at) {
                return Ok(credentials.clone());
            }
        }
        if let (Some(until), Some(err)) = (state.denied_until, &state.refused_with) {
            if Instant::now() < until {
                return Err(err.clone());
            }
        }
        self.0.fetches.fetch_add(1, Ordering::Relaxed);
        match self.0.source.fetch().await {
            Ok(credentials) => {
                state.credentials = Some((
                    credentials.clone(),
                    refresh_at(&credentials, SystemTime::now()),
                ));
                state.denied_until = None;
                Ok(credentials)
            }
            Err(err) => {
                if matches!(err, CredentialsError::Denied | CredentialsError::SecretGone) {
                    state.denied_until = Some(Instant::now() + DENIAL_TTL);
                    state.refused_with = Some(err.clone());
                }
                state.credentials = None;
                Err(err)
            }
        }
    }

    /// Drops the cached credentials after S3 said they expired.
    pub async fn invalidate(&self) {
        self.0.state.lock().await.credentials = None;
    }

    /// After S3 denied a write signed with the access key `used`: whether a
    /// retry may see other credentials. Drops `used` from the cache so the
    /// next [`CachedCredentials::get`] fetches afresh (a new role session; an
    /// access key's version read again), at most once per
    /// [`RENEWAL_AFTER_DENIAL_INTERVAL`] (never once per message).
    ///
    /// Why: a customer who presses "Revoke active sessions" on the role
    /// attaches a Deny for sessions issued before that moment (IAM User
    /// Guide, "Revoking IAM role temporary security credentials"); our cached
    /// session then gets 403 on every write while a fresh AssumeRole works.
    /// Without this we would park for up to an hour (real-setups B11).
    pub async fn renew_after_denial(&self, used: &str) -> bool {
        let mut state = self.0.state.lock().await;
        match &state.credentials {
            // Another write renewed them meanwhile: retry with those.
            Some((current, _)) if current.access_key_id() != used => return true,
            None => return true,
            Some(_) => {}
        }
        if state
            .renewed_after_denial
            .is_some_and(|at| at.elapsed() < RENEWAL_AFTER_DENIAL_INTERVAL)
        {
            return false;
        }
        state.renewed_after_denial = Some(Instant::now());
        state.credentials = None;
        true
    }
}

impl ProvideCredentials for CachedCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            self.get()
                .await
                .map_err(aws_credential_types::provider::error::CredentialsError::provider_error)
        })
    }
}

/// A destination's identity and the S3 client that writes with it.
pub struct Identity {
    pub credentials: CachedCredentials,
    pub s3: aws_sdk_s3::Client,
}

/// What makes two destinations share an identity: its source, and the
/// region its S3 client signs for. A new source is one more variant.
#[derive(Clone, PartialEq, Eq, Hash)]
enum SourceKey {
    Role(AssumeSpec),
    /// A stored access key: its secret and the version the registry names.
    StoredKey {
        name: SecretName,
        version: String,
    },
    /// A key pair being checked (create, `PATCH`, rotation), not stored yet.
    GivenKey(AccessKeyPair),
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct IdentityKey {
    source: SourceKey,
    region: String,
}

/// All identities of this container.
pub struct Identities {
    sts: aws_sdk_sts::Client,
    s3_config: aws_sdk_s3::config::Builder,
    secrets: SecretStore,
    secret_prefix: String,
    duration: Duration,
    /// Keys a request is checking: the identity of an access-key
    /// destination under check signs with these, not with its secret.
    given: Option<AccessKeyPair>,
    identities: Mutex<HashMap<IdentityKey, Arc<Identity>>>,
    fetches: Arc<AtomicU64>,
}

impl Identities {
    /// `s3_config` carries the shared HTTP client, timeouts and addressing;
    /// every session's client is built from it. `secret_prefix` is
    /// `CREDENTIALS_SECRET_PREFIX`.
    pub fn new(
        sts: aws_sdk_sts::Client,
        s3_config: aws_sdk_s3::config::Builder,
        secrets: SecretStore,
        secret_prefix: String,
        duration: Duration,
    ) -> Self {
        Self {
            sts,
            s3_config,
            secrets,
            secret_prefix,
            duration,
            given: None,
            identities: Mutex::new(HashMap::new()),
            fetches: Arc::new(AtomicU64::new(0)),
        }
    }

    /// These identities, signing access-key destinations with `pair`.
    pub fn with_given_keys(mut self, pair: AccessKeyPair) -> Self {
        self.given = Some(pair);
        self
    }

    /// Credential fetches (AssumeRole calls, secret reads) made by this
    /// container so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn source_key(&self, destination: &Destination, external_id: &ExternalId) -> SourceKey {
        match &destination.auth {
            Auth::Role {
                role_arn,
                role_session_name,
            } => SourceKey::Role(AssumeSpec {
                role_arn: role_arn.clone(),
                external_id: Some(external_id.clone()),
                session_name: role_session_name.clone(),
                policy: Some(destination.target.session_policy(role_arn.partition())),
                duration: self.duration,
            }),
            Auth::AccessKey(stored) => match (&self.given, &stored.secret_version_id) {
                (Some(pair), _) => SourceKey::GivenKey(pair.clone()),
                (None, version) => SourceKey::StoredKey {
                    name: SecretName::of(&self.secret_prefix, &destination.org_id, &destination.id),
                    // Never saved without a version; an empty one reads nothing.
                    version: version.clone().unwrap_or_default(),
                },
            },
        }
    }

    fn source(&self, key: &SourceKey) -> Box<dyn CredentialSource> {
        match key {
            SourceKey::Role(spec) => Box::new(RoleSource {
                sts: self.sts.clone(),
                spec: spec.clone(),
            }),
            SourceKey::StoredKey { name, version } => Box::new(StoredKeySource {
                secrets: self.secrets.clone(),
                name: name.clone(),
                version: version.clone(),
            }),
            SourceKey::GivenKey(pair) => Box::new(GivenKeySource(pair.clone())),
        }
    }

    /// The identity for writing to `destination` on behalf of its org.
    pub fn for_destination(
        &self,
        destination: &Destination,
        external_id: &ExternalId,
    ) -> Arc<Identity> {
        let key = IdentityKey {
            source: self.source_key(destination, external_id),
            region: destination.region().as_str().to_owned(),
        };
        // A poisoned lock only means another task panicked mid-insert; the map is still usable.
        let mut identities = self.identities.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(identity) = identities.get(&key) {
            return Arc::clone(identity);
        }
        if let SourceKey::StoredKey { name, version } = &key.source {
            // A rotated key's older versions are never used again here.
            identities.retain(|k, _| {
                !matches!(&k.source, SourceKey::StoredKey { name: n, version: v } if n == name && v != version)
            });
        }
        let credentials =
            CachedCredentials::new(self.source(&key.source), Arc::clone(&self.fetches));
        let s3 = aws_sdk_s3::Client::from_conf(
            self.s3_config
                .clone()
                .region(Region::new(key.region.clone()))
                .credentials_provider(credentials.clone())
                // CachedCredentials is the cache; a second one would hide invalidation.
                .identity_cache(IdentityCache::no_cache())
                .build(),
        );
        let identity = Arc::new(Identity { credentials, s3 });
        identities.insert(key, Arc::clone(&identity));
        identity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source without AWS: hands out numbered keys, or refuses.
    #[derive(Debug)]
    struct Numbered {
        issued: Arc<AtomicU64>,
        refuse: bool,
    }

    impl CredentialSource for Numbered {
        fn fetch(
            &self,
        ) -> Pin<Box<dyn Future<Output = Result<Credentials, CredentialsError>> + Send + '_>>
        {
            Box::pin(async move {
                tokio::task::yield_now().await;
                if self.refuse {
                    return Err(CredentialsError::Denied);
                }
                let n = self.issued.load(Ordering::SeqCst);
                Ok(Credentials::new(
                    format!("KEY{n}"),
                    "secret",
                    None,
                    Some(SystemTime::now() + Duration::from_secs(3600)),
                    "test",
                ))
            })
        }
    }

    fn cache(refuse: bool) -> (CachedCredentials, Arc<AtomicU64>) {
        let fetches = Arc::new(AtomicU64::new(0));
        let source = Numbered {
            issued: Arc::clone(&fetches),
            refuse,
        };
        (
            CachedCredentials::new(Box::new(source), Arc::clone(&fetches)),
            fetches,
        )
    }

    #[tokio::test]
    async fn any_source_is_fetched_once_for_concurrent_callers() {
        let (cache, fetches) = cache(false);
        let all = futures_util::future::join_all((0..20).map(|_| cache.get())).await;
        assert!(all
            .iter()
            .all(|c| c.as_ref().is_ok_and(|c| c.access_key_id() == "KEY1")));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refusal_is_remembered_instead_of_refetched() {
        let (cache, fetches) = cache(true);
        for _ in 0..5 {
            assert_eq!(cache.get().await.unwrap_err(), CredentialsError::Denied);
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "within DENIAL_TTL");
    }

    #[tokio::test]
    async fn rejected_credentials_are_renewed_once_per_interval_whatever_the_source() {
        let (cache, fetches) = cache(false);
        let first = cache.get().await.unwrap();
        assert!(cache.renew_after_denial(first.access_key_id()).await);
        let second = cache.get().await.unwrap();
        assert_ne!(first.access_key_id(), second.access_key_id());
        // A writer still holding the old key retries with the new one, free.
        assert!(cache.renew_after_denial(first.access_key_id()).await);
        // The new key denied too, within the interval: no second renewal.
        assert!(!cache.renew_after_denial(second.access_key_id()).await);
        assert_eq!(
            cache.get().await.unwrap().access_key_id(),
            second.access_key_id()
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }
}
