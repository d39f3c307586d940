//! Configuration from the environment (CONTRACT section 1), read once at
//! cold start, and the SDK clients built from it.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::arn::AccountId;
use crate::s3::BucketName;

/// Why a function refuses to start. Shown in the Lambda init error.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{name} is invalid: {rule}")]
    Invalid {
        name: &'static str,
        rule: &'static str,
    },
    #[error(
        "{0} is set but STORED_MESSAGES_ALLOW_ENDPOINT_OVERRIDE is not 1: \
         an endpoint override is for local emulation only"
    )]
    EndpointOverrideRefused(&'static str),
    #[error("our own AWS account could not be learnt from sts:GetCallerIdentity ({0})")]
    OwnAccount(String),
}

/// Everything the functions read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub control_bucket: String,
    pub role_name_prefix: String,
    pub vendor_principal_arn: Option<String>,
    /// Our bucket for `message_ref` bodies and backfill manifests; `None`
    /// makes every `message_ref` malformed (CONTRACT sections 1 and 2).
    pub staging_bucket: Option<BucketName>,
    /// AssumeRole duration, 900..=3600 s: see [`SESSION_DURATION_SECONDS`].
    pub session_duration: Duration,
    pub max_in_flight: usize,
    /// `ARCHIVE_EVENTS_PER_OBJECT`, 1..=5000 (default 5000): the line bound
    /// of an events object ([`crate::records::ObjectBounds`]). Lower only
    /// to trade the customer's PUT cost for smaller retries; the bench sets
    /// 1 to measure writing one object per event.
    pub events_per_object: usize,
    /// Set only for local emulation; then every service is reached there and
    /// S3 is addressed path-style.
    pub endpoint_override: Option<String>,
    /// Some endpoint (global or per service) is local: S3 is addressed
    /// path-style, because a local server serves every bucket at one host.
    pub local_endpoints: bool,
    /// How check-destinations bounds a run.
    pub health: crate::health::HealthSettings,
    /// `EVENT_BUS_NAME`: where health transitions are published (CONTRACT
    /// section 6); None publishes nothing (the log line stays).
    pub event_bus_name: Option<String>,
    /// `CREDENTIALS_SECRET_PREFIX` (default `stored-messages/`): the
    /// Secrets Manager name prefix of access-key destinations' secrets
    /// (CONTRACT sections 1 and 3); the template grants exactly this prefix.
    pub credentials_secret_prefix: String,
    /// `CREDENTIALS_KMS_KEY_ID`: our KMS key for those secrets (its ARN,
    /// from the template); unset uses the account's `aws/secretsmanager`.
    pub credentials_kms_key_id: Option<String>,
    /// How backfills run (CONTRACT sections 1 and 5).
    pub backfill: crate::backfill::BackfillSettings,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Same rules over any lookup, so tests need not touch the process env.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let control_bucket = get("CONTROL_BUCKET").ok_or(ConfigError::Missing("CONTROL_BUCKET"))?;
        BucketName::parse(&control_bucket).map_err(|_| ConfigError::Invalid {
            name: "CONTROL_BUCKET",
            rule: "must be an S3 bucket name",
        })?;
        let role_name_prefix =
            get("ROLE_NAME_PREFIX").unwrap_or_else(|| "stored-messages".to_owned());
        if role_name_prefix.is_empty()
            || !role_name_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
        {
            return Err(ConfigError::Invalid {
                name: "ROLE_NAME_PREFIX",
                rule: "must be non-empty IAM role name characters",
            });
        }
        let session_seconds = number(&get, "ROLE_SESSION_DURATION_SECONDS", 3600, SESSION_DURATION_SECONDS)
            .map_err(|_| ConfigError::Invalid {
                name: "ROLE_SESSION_DURATION_SECONDS",
                rule: "must be 900..3600 seconds: our functions run as a role session, so assuming a \
                       customer role is role chaining, which AWS caps at one hour (a longer session \
                       fails every AssumeRole with ValidationError)",
            })?;
        let staging_bucket = get("STAGING_BUCKET")
            .map(|name| {
                BucketName::parse(&name).map_err(|_| ConfigError::Invalid {
                    name: "STAGING_BUCKET",
                    rule: "must be an S3 bucket name",
                })
            })
            .transpose()?;
        // Equal names would let an org named `orgs` or `destinations` pass
        // the `{org_id}/` confinement of a message_ref into our control data.
        if staging_bucket
            .as_ref()
            .is_some_and(|staging| staging.as_str() == control_bucket)
        {
            return Err(ConfigError::Invalid {
                name: "STAGING_BUCKET",
                rule: "must not be the control bucket: staged bodies are tenant-named, control data is not",
            });
        }
        let credentials_secret_prefix =
            get("CREDENTIALS_SECRET_PREFIX").unwrap_or_else(|| "stored-messages/".to_owned());
        // Secrets Manager names: 1..512 of [A-Za-z0-9/_+=.@-] ("CreateSecret",
        // Secrets Manager API Reference), and the org id and destination id
        // appended after it take at most 64 + 1 + 30.
        if credentials_secret_prefix.is_empty()
            || credentials_secret_prefix.len() > 256
            || !credentials_secret_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
        {
            return Err(ConfigError::Invalid {
                name: "CREDENTIALS_SECRET_PREFIX",
                rule: "must be 1..256 characters of a Secrets Manager name: letters, digits and /_+=.@-",
            });
        }
        let max_in_flight = number(&get, "ARCHIVE_MAX_IN_FLIGHT", 64, 1..=1024)?;
        let default_lines = crate::records::ObjectBounds::DEFAULT.max_lines;
        let events_per_object = number(
            &get,
            "ARCHIVE_EVENTS_PER_OBJECT",
            default_lines,
            1..=default_lines,
        )?;
        // The SDK itself honours the per-service variables, and one of them
        // would win over everything we configure: each needs the same consent.
        let allowed = get("STORED_MESSAGES_ALLOW_ENDPOINT_OVERRIDE").as_deref() == Some("1");
        let mut local_endpoints = false;
        for name in ENDPOINT_VARIABLES {
            if get(name).is_some() {
                if !allowed {
                    return Err(ConfigError::EndpointOverrideRefused(name));
                }
                local_endpoints = true;
            }
        }
        let endpoint_override = get("AWS_ENDPOINT_URL");
        let health = crate::health::HealthSettings {
            concurrency: number(&get, "HEALTH_CHECK_CONCURRENCY", 16, 1..=256)?,
            per_destination_timeout: Duration::from_secs(number(
                &get,
                "HEALTH_CHECK_TIMEOUT_SECONDS",
                10,
                1..=300,
            )? as u64),
            parked_retention: Duration::from_secs(
                number(&get, "PARKED_RETENTION_DAYS", 30, 1..=3650)? as u64 * 86_400,
            ),
        };
        let backfill = crate::backfill::BackfillSettings {
            queue_url: get("BACKFILL_QUEUE_URL"),
            chunk_lines: number(
                &get,
                "BACKFILL_CHUNK_LINES",
                crate::backfill::CHUNK_LINES,
                1..=crate::backfill::CHUNK_LINES,
            )?,
            max_receives: number(&get, "BACKFILL_MAX_RECEIVES", 5, 1..=100)? as u32,
        };
        Ok(Self {
            backfill,
            health,
            control_bucket,
            role_name_prefix,
            vendor_principal_arn: get("VENDOR_PRINCIPAL_ARN"),
            staging_bucket,
            session_duration: Duration::from_secs(session_seconds as u64),
            max_in_flight,
            events_per_object,
            endpoint_override,
            local_endpoints,
            event_bus_name: get("EVENT_BUS_NAME"),
            credentials_secret_prefix,
            credentials_kms_key_id: get("CREDENTIALS_KMS_KEY_ID"),
        })
    }

    /// The base SDK configuration: region and credentials from the Lambda
    /// environment, one HTTP client shared by every client built from it, and
    /// timeouts so a stalled bucket cannot hold a whole batch.
    pub async fn sdk_config(&self) -> SdkConfig {
        self.sdk_loader().load().await
    }

    /// check-destinations' SDK configuration: each attempt gets a third of a
    /// destination's check time, so one stalled attempt still leaves the SDK
    /// time to retry within the check (CONTRACT section 6: "the probe retries
    /// within its timeout").
    pub async fn health_sdk_config(&self) -> SdkConfig {
        let attempt = (self.health.per_destination_timeout / 3).max(Duration::from_secs(1));
        self.sdk_loader()
            .timeout_config(Self::timeouts(attempt.min(ATTEMPT_TIMEOUT)))
            .load()
            .await
    }

    fn timeouts(attempt: Duration) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(attempt)
            .operation_timeout(Duration::from_secs(30))
            .build()
    }

    /// [`Settings::sdk_config`] before loading, for callers (the emulator
    /// harness) that bring their own credentials and region.
    pub fn sdk_loader(&self) -> aws_config::ConfigLoader {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(Self::http_client())
            .timeout_config(Self::timeouts(ATTEMPT_TIMEOUT));
        if let Some(url) = &self.endpoint_override {
            loader = loader.endpoint_url(url);
        }
        loader
    }

    /// The HTTP client every SDK client of a container shares. Left unset,
    /// every service client (one per customer role) would build its own
    /// connector and TLS pool; one shared client keeps connections warm.
    pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
        aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .build_https()
    }

    /// An S3 client configuration without credentials, for unsigned probes.
    pub fn anonymous_s3_config(&self, sdk: &SdkConfig) -> aws_sdk_s3::config::Builder {
        let mut anonymous = sdk.to_builder();
        anonymous.set_credentials_provider(None);
        self.s3_config(&anonymous.build()).allow_no_auth()
    }

    /// Where access-key destinations' secrets are kept.
    pub fn secret_store(&self, sdk: &SdkConfig) -> crate::secrets::SecretStore {
        crate::secrets::SecretStore::new(
            aws_sdk_secretsmanager::Client::new(sdk),
            self.credentials_kms_key_id.clone(),
        )
    }

    /// The queue of backfill work units, or None when `BACKFILL_QUEUE_URL`
    /// is unset (backfills are then refused, CONTRACT section 1).
    pub fn backfill_queue(&self, sdk: &SdkConfig) -> Option<crate::backfill::WorkQueue> {
        self.backfill
            .queue_url
            .as_ref()
            .map(|url| crate::backfill::WorkQueue::new(aws_sdk_sqs::Client::new(sdk), url.clone()))
    }

    /// Our own S3 client (control and staging buckets).
    pub fn s3_client(&self, sdk: &SdkConfig) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(self.s3_config(sdk).build())
    }

    /// S3 settings every client shares; path-style only under emulation,
    /// because the emulator serves all buckets at one host.
    pub fn s3_config(&self, sdk: &SdkConfig) -> aws_sdk_s3::config::Builder {
        aws_sdk_s3::config::Builder::from(sdk).force_path_style(self.local_endpoints)
    }
}

/// One attempt of any AWS call; the SDK retries throttling and 5xx within
/// the 30 s an operation may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// `ROLE_SESSION_DURATION_SECONDS` (CONTRACT section 1). A Lambda's own
/// credentials are a role session, and a role session assuming another role
/// is role chaining, which STS caps at one hour whatever the target role's
/// `MaxSessionDuration` (STS API reference, AssumeRole, DurationSeconds).
pub const SESSION_DURATION_SECONDS: std::ops::RangeInclusive<usize> = 900..=3600;

/// Our own account: the `ExpectedBucketOwner` of every request to our
/// control and staging buckets (CONTRACT section 7), so a bucket of ours
/// deleted and re-created by someone else never receives customer data.
/// Learnt once at cold start from the identity we run as, rather than
/// configured, so it cannot be set wrong.
pub async fn own_account(sts: &aws_sdk_sts::Client) -> Result<AccountId, ConfigError> {
    let identity = sts.get_caller_identity().send().await.map_err(|err| {
        ConfigError::OwnAccount(aws_sdk_sts::error::DisplayErrorContext(err).to_string())
    })?;
    identity
        .account()
        .and_then(AccountId::parse)
        .ok_or_else(|| ConfigError::OwnAccount("no account in the answer".to_owned()))
}

/// The endpoint variables the SDK reads for the services we call.
const ENDPOINT_VARIABLES: [&str; 6] = [
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_EVENTBRIDGE",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
];

fn number(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, ConfigError> {
    let Some(raw) = get(name) else {
        return Ok(default);
    };
    raw.parse::<usize>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or(ConfigError::Invalid {
            name,
            rule: "must be a whole number in the documented range",
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_contract() {
        let s = settings(&[("CONTROL_BUCKET", "sm-control")]).unwrap();
        assert_eq!(s.role_name_prefix, "stored-messages");
        assert_eq!(s.session_duration, Duration::from_secs(3600));
        assert_eq!(s.max_in_flight, 64);
        assert_eq!(s.events_per_object, 5_000);
        assert_eq!(s.endpoint_override, None);
        assert!(!s.local_endpoints);
        assert_eq!(s.vendor_principal_arn, None);
        assert_eq!(s.credentials_secret_prefix, "stored-messages/");
        assert_eq!(s.credentials_kms_key_id, None);
    }

    #[test]
    fn the_secret_prefix_is_a_secrets_manager_name() {
        let with = |prefix: &str| {
            settings(&[
                ("CONTROL_BUCKET", "c-b"),
                ("CREDENTIALS_SECRET_PREFIX", prefix),
            ])
        };
        assert_eq!(
            with("sm/creds/").unwrap().credentials_secret_prefix,
            "sm/creds/"
        );
        for bad in ["has space/", "star*/", &"a".repeat(257)] {
            assert!(
                matches!(
                    with(bad),
                    Err(ConfigError::Invalid {
                        name: "CREDENTIALS_SECRET_PREFIX",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn control_bucket_is_required() {
        assert!(matches!(
            settings(&[]),
            Err(ConfigError::Missing("CONTROL_BUCKET"))
        ));
        assert!(settings(&[("CONTROL_BUCKET", "Bad_Name")]).is_err());
    }

    #[test]
    fn endpoint_override_needs_explicit_permission() {
        let url = ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000");
        for name in ENDPOINT_VARIABLES {
            let var = (name, "http://127.0.0.1:5000");
            assert!(matches!(
                settings(&[("CONTROL_BUCKET", "c-b"), var]),
                Err(ConfigError::EndpointOverrideRefused(refused)) if refused == name
            ));
            assert!(matches!(
                settings(&[
                    ("CONTROL_BUCKET", "c-b"),
                    var,
                    ("STORED_MESSAGES_ALLOW_ENDPOINT_OVERRIDE", "true")
                ]),
                Err(ConfigError::EndpointOverrideRefused(_))
            ));
        }
        let per_service = settings(&[
            ("CONTROL_BUCKET", "c-b"),
            ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:5001"),
            ("STORED_MESSAGES_ALLOW_ENDPOINT_OVERRIDE", "1"),
        ])
        .unwrap();
        assert!(per_service.local_endpoints);
        assert_eq!(per_service.endpoint_override, None);
        let s = settings(&[
            ("CONTROL_BUCKET", "c-b"),
            url,
            ("STORED_MESSAGES_ALLOW_ENDPOINT_OVERRIDE", "1"),
        ])
        .unwrap();
        assert_eq!(
            s.endpoint_override.as_deref(),
            Some("http://127.0.0.1:5000")
        );
    }

    #[test]
    fn numbers_are_range_checked() {
        for (name, bad) in [
            ("ROLE_SESSION_DURATION_SECONDS", "899"),
            ("ROLE_SESSION_DURATION_SECONDS", "3601"),
            ("ROLE_SESSION_DURATION_SECONDS", "7200"),
            ("ROLE_SESSION_DURATION_SECONDS", "43200"),
            ("ROLE_SESSION_DURATION_SECONDS", "1h"),
            ("ARCHIVE_MAX_IN_FLIGHT", "0"),
            ("ARCHIVE_MAX_IN_FLIGHT", "-1"),
            ("ARCHIVE_EVENTS_PER_OBJECT", "0"),
            ("ARCHIVE_EVENTS_PER_OBJECT", "5001"),
        ] {
            assert!(
                settings(&[("CONTROL_BUCKET", "c-b"), (name, bad)]).is_err(),
                "{name}={bad}"
            );
        }
        let s = settings(&[
            ("CONTROL_BUCKET", "c-b"),
            ("ROLE_SESSION_DURATION_SECONDS", "900"),
            ("ARCHIVE_MAX_IN_FLIGHT", "8"),
        ])
        .unwrap();
        assert_eq!(s.session_duration, Duration::from_secs(900));
        assert_eq!(s.max_in_flight, 8);
    }

    #[test]
    fn a_session_longer_than_role_chaining_allows_refuses_to_start_and_says_why() {
        // Real-setups B09: 7200 would fail every AssumeRole from a Lambda.
        let err = settings(&[
            ("CONTROL_BUCKET", "c-b"),
            ("ROLE_SESSION_DURATION_SECONDS", "7200"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("ROLE_SESSION_DURATION_SECONDS"), "{err}");
        assert!(
            err.contains("role chaining") && err.contains("one hour"),
            "{err}"
        );
        let s = settings(&[
            ("CONTROL_BUCKET", "c-b"),
            ("ROLE_SESSION_DURATION_SECONDS", "3600"),
        ])
        .unwrap();
        assert_eq!(s.session_duration, Duration::from_secs(3600));
    }

    #[test]
    fn staging_bucket_is_optional_and_checked() {
        assert_eq!(
            settings(&[("CONTROL_BUCKET", "c-b")])
                .unwrap()
                .staging_bucket,
            None
        );
        assert_eq!(
            settings(&[("CONTROL_BUCKET", "c-b"), ("STAGING_BUCKET", "sm-staging")])
                .unwrap()
                .staging_bucket
                .map(String::from),
            Some("sm-staging".to_owned())
        );
        assert!(settings(&[
            ("CONTROL_BUCKET", "c-b"),
            ("STAGING_BUCKET", "Not A Bucket")
        ])
        .is_err());
        let same = settings(&[
            ("CONTROL_BUCKET", "sm-control"),
            ("STAGING_BUCKET", "sm-control"),
        ]);
        assert!(matches!(
            same,
            Err(ConfigError::Invalid {
                name: "STAGING_BUCKET",
                ..
            })
        ));
    }

    #[test]
    fn prefix_must_be_role_name_characters() {
        assert!(settings(&[("CONTROL_BUCKET", "c-b"), ("ROLE_NAME_PREFIX", "a/b")]).is_err());
        assert_eq!(
            settings(&[("CONTROL_BUCKET", "c-b"), ("ROLE_NAME_PREFIX", "sm-")])
                .unwrap()
                .role_name_prefix,
            "sm-"
        );
    }
}
