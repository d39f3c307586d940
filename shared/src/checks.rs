//! The checks of a destination (CONTRACT section 5): static checks on the
//! request, then live checks against AWS in order, stopping at the first
//! failure. Used by the API ("Test Credentials", create) and by the
//! scheduled health checks, so a customer sees the same codes everywhere.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::arn::{KmsKeyArn, RoleArn};
use crate::credentials::{assume_role, AssumeSpec, CredentialsError, ExternalId, Identities};
use crate::destination::*;
use crate::failure::{DeniedBy, FailureCode};
use crate::ids::{Channel, OrgId, ProjectId};
use crate::keys::probe_key;
use crate::writer::{encode, put, PutTarget, WriteError, Written};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Fail,
    Skip,
}

/// One check result as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: CheckStatus,
    pub code: Option<&'static str>,
    pub message: String,
    pub remediation: Option<String>,
    /// A failure that retrying can fix (throttling, 5xx, timeouts, our own
    /// control bucket): recorded, but never a reason to move a destination
    /// to `failing` (CONTRACT section 6). Not part of the API answer.
    #[serde(skip)]
    pub transient: bool,
}

impl Check {
    fn pass(name: &'static str, message: impl Into<String>) -> Self {
        Self {
            name,
            status: CheckStatus::Pass,
            code: None,
            message: message.into(),
            remediation: None,
            transient: false,
        }
    }

    pub(crate) fn fail(
        name: &'static str,
        code: &'static str,
        message: impl Into<String>,
        remediation: impl Into<String>,
    ) -> Self {
        Self {
            name,
            status: CheckStatus::Fail,
            code: Some(code),
            message: message.into(),
            remediation: Some(remediation.into()),
            transient: false,
        }
    }

    /// Marks a failure retrying can fix, when it is one; see [`Check::transient`].
    pub(crate) fn transient_if(mut self, transient: bool) -> Self {
        self.transient = transient;
        self
    }

    pub(crate) fn skip(name: &'static str, message: impl Into<String>) -> Self {
        Self {
            name,
            status: CheckStatus::Skip,
            code: None,
            message: message.into(),
            remediation: None,
            transient: false,
        }
    }
}

/// The live checks (CONTRACT section 5), in the order they run; each
/// failure stops the rest. A name the API shows is [`LiveCheck::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveCheck {
    AssumeRole,
    ExternalIdEnforced,
    PutObject,
    NotPublic,
}

impl LiveCheck {
    /// Every live check, in order: validation and "Test Credentials".
    pub const ALL: [Self; 4] = [
        Self::AssumeRole,
        Self::ExternalIdEnforced,
        Self::PutObject,
        Self::NotPublic,
    ];
    /// What a health check runs (CONTRACT section 6).
    pub const HEALTH: [Self; 2] = [Self::AssumeRole, Self::PutObject];

    pub fn name(self) -> &'static str {
        match self {
            Self::AssumeRole => "assume_role",
            Self::ExternalIdEnforced => "external_id_enforced",
            Self::PutObject => "put_object",
            Self::NotPublic => "not_public",
        }
    }
}

/// The outcome of the static checks: the destination when all passed.
pub struct StaticOutcome {
    pub checks: Vec<Check>,
    pub destination: Option<Destination>,
}

fn get_str<'a>(
    body: &'a Map<String, Value>,
    field: &'static str,
    problems: &mut Vec<String>,
) -> Option<&'a str> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            problems.push(format!("{field} must be a string"));
            None
        }
    }
}

/// Runs every static check on a request body (already known to be a JSON
/// object without `external_id`). Never echoes values back: the message
/// names the field and the rule.
pub fn static_checks(
    org: &OrgId,
    body: &Map<String, Value>,
    role_name_prefix: &str,
) -> StaticOutcome {
    let mut problems: Vec<String> = Vec::new();
    let mut checks = Vec::with_capacity(8);

    let project_id = match get_str(body, "project_id", &mut problems) {
        Some(p) => ProjectId::parse(p)
            .map_err(|e| problems.push(e.to_string()))
            .ok(),
        None => {
            if body.get("project_id").is_none_or(Value::is_null) {
                problems.push("project_id is required".into());
            }
            None
        }
    };
    let session_name = match get_str(body, "role_session_name", &mut problems) {
        Some(s) => SessionName::parse(s)
            .map_err(|e| problems.push(format!("role_session_name {e}")))
            .ok(),
        None => Some(SessionName::default()),
    };
    let channels = match body.get("channels") {
        None | Some(Value::Null) => Some(Channel::ALL.to_vec()),
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut channels = Vec::new();
            for item in items {
                match item.as_str().and_then(Channel::parse) {
                    Some(c) if !channels.contains(&c) => channels.push(c),
                    Some(_) => {}
                    None => {
                        problems.push("channels may contain only email, sms, push, in_app, web_push, whatsapp".into());
                        break;
                    }
                }
            }
            Some(channels)
        }
        Some(_) => {
            problems.push("channels must be a non-empty list of channels".into());
            None
        }
    };
    let layout = enum_field::<Layout>(body, "layout", "by_recipient or by_date", &mut problems);
    let compression = enum_field::<Compression>(body, "compression", "gzip or none", &mut problems);
    let encryption_mode = match body.get("encryption") {
        None | Some(Value::Null) => Some(("bucket_default", None)),
        Some(Value::Object(e)) => {
            match (e.get("mode").and_then(Value::as_str), e.get("kms_key_arn")) {
                (Some(m @ ("bucket_default" | "aes256")), _) => Some((m, None)),
                (Some("kms"), key) => {
                    Some(("kms", Some(key.and_then(Value::as_str).unwrap_or_default())))
                }
                _ => {
                    problems.push("encryption.mode must be bucket_default, aes256 or kms".into());
                    None
                }
            }
        }
        Some(_) => {
            problems.push("encryption must be an object with a mode".into());
            None
        }
    };
    let role_arn_text = get_str(body, "role_arn", &mut problems);
    let region_text = get_str(body, "region", &mut problems);
    let bucket_text = get_str(body, "bucket", &mut problems);
    let folder_text = get_str(body, "folder_path", &mut problems).filter(|f| !f.is_empty());
    let confirmed = match body.get("bucket_private_confirmed") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            problems.push("bucket_private_confirmed must be a boolean".into());
            None
        }
    };

    checks.push(if problems.is_empty() {
        Check::pass("request", "The request is well-formed.")
    } else {
        Check::fail(
            "request",
            "invalid_request",
            problems.join("; "),
            "Correct the fields named in the message and retry.",
        )
    });

    let role_arn = required(
        &mut checks,
        Required {
            name: "role_arn",
            code: "role_arn_invalid",
            field: "role_arn",
            text: role_arn_text,
            parse: RoleArn::parse,
            passed: "The role ARN is well-formed.",
            remediation: "Copy the role's ARN from the IAM console (Roles > your role > ARN).",
        },
    );
    checks.push(match &role_arn {
        Some(arn) if arn.has_name_prefix(role_name_prefix) => Check::pass("role_name_prefix", format!("The role name starts with {role_name_prefix}.")),
        Some(_) => Check::fail(
            "role_name_prefix",
            "role_name_prefix_mismatch",
            format!("The role name (the part after the last '/') must start with '{role_name_prefix}'; a prefix in the role's path does not count."),
            format!("Create the role with a name starting with '{role_name_prefix}', for example '{role_name_prefix}-archive'. We can only assume roles named this way."),
        ),
        None => Check::skip("role_name_prefix", "Skipped: the role ARN is invalid."),
    });

    let bucket = required(&mut checks, Required {
        name: "bucket_name",
        code: "bucket_name_invalid",
        field: "bucket",
        text: bucket_text,
        parse: BucketName::parse,
        passed: "The bucket name follows S3's naming rules.",
        remediation: "Enter the bucket's name exactly as the S3 console shows it, without s3:// or a path.",
    });
    let region = required(&mut checks, Required {
        name: "region",
        code: "region_invalid",
        field: "region",
        text: region_text,
        parse: Region::parse,
        passed: "The region code is well-formed.",
        remediation: "Use the bucket's region code as shown in the S3 console's bucket list, such as eu-west-1.",
    });
    let folder_path = match folder_text.map(FolderPath::parse) {
        None => {
            checks.push(Check::pass(
                "folder_path",
                "No folder: objects go to the bucket root.",
            ));
            Some(None)
        }
        Some(Ok(f)) => {
            checks.push(Check::pass("folder_path", "The folder path is valid."));
            Some(Some(f))
        }
        Some(Err(e)) => {
            checks.push(Check::fail("folder_path", "folder_path_invalid", format!("folder_path {e}."), "Use a path like archive/prod: segments of letters, digits and !_.'()- separated by single slashes (no '*': IAM policies would read it as a wildcard)."));
            None
        }
    };
    let encryption = match encryption_mode {
        Some(("aes256", _)) => {
            checks.push(Check::pass(
                "encryption",
                "Objects are encrypted with SSE-S3 (AES256).",
            ));
            Some(Encryption::Aes256)
        }
        Some(("kms", Some(key))) => match KmsKeyArn::parse(key) {
            Ok(kms_key_arn) => {
                checks.push(Check::pass(
                    "encryption",
                    "Objects are encrypted with your KMS key.",
                ));
                Some(Encryption::Kms { kms_key_arn })
            }
            Err(e) => {
                checks.push(Check::fail("encryption", "kms_key_arn_invalid", format!("encryption.kms_key_arn {e}."), "Copy the key's ARN from the KMS console (Customer managed keys > your key > ARN), or an alias ARN."));
                None
            }
        },
        Some(_) => {
            checks.push(Check::pass(
                "encryption",
                "Objects use the bucket's default encryption.",
            ));
            Some(Encryption::BucketDefault)
        }
        None => {
            checks.push(Check::skip(
                "encryption",
                "Skipped: encryption is malformed (see the request check).",
            ));
            None
        }
    };
    checks.push(if confirmed == Some(true) {
        Check::pass("bucket_private_confirmed", "You confirmed the bucket is private.")
    } else {
        Check::fail(
            "bucket_private_confirmed",
            "bucket_private_not_confirmed",
            "bucket_private_confirmed must be true.",
            "Turn on S3 Block Public Access for the bucket, then confirm that the bucket is private.",
        )
    });

    let all_passed = checks.iter().all(|c| c.status == CheckStatus::Pass);
    let destination = match (
        all_passed,
        project_id,
        role_arn,
        session_name,
        region,
        bucket,
        folder_path,
        channels,
        layout,
        compression,
        encryption,
    ) {
        (
            true,
            Some(project_id),
            Some(role_arn),
            Some(role_session_name),
            Some(region),
            Some(bucket),
            Some(folder_path),
            Some(channels),
            Some(layout),
            Some(compression),
            Some(encryption),
        ) => DestinationId::generate().ok().map(|id| Destination {
            id,
            org_id: org.clone(),
            project_id,
            account_id: role_arn.account().clone(),
            role_arn,
            role_session_name,
            region,
            bucket,
            folder_path,
            channels,
            layout,
            compression,
            encryption,
            bucket_private_confirmed: true,
            created_at: Utc::now(),
            status: Status::Active,
            health: Health::default(),
        }),
        _ => None,
    };
    StaticOutcome {
        checks,
        destination,
    }
}

/// A required field with its own check: pass when it parses, fail with the
/// rule (never the value) when it does not, or when it is missing.
struct Required<'a, T, E> {
    name: &'static str,
    code: &'static str,
    field: &'static str,
    text: Option<&'a str>,
    parse: fn(&str) -> Result<T, E>,
    passed: &'static str,
    remediation: &'static str,
}

fn required<T, E: std::fmt::Display>(checks: &mut Vec<Check>, r: Required<'_, T, E>) -> Option<T> {
    let (check, value) = match r.text.map(r.parse) {
        Some(Ok(value)) => (Check::pass(r.name, r.passed), Some(value)),
        Some(Err(e)) => (
            Check::fail(r.name, r.code, format!("{} {e}.", r.field), r.remediation),
            None,
        ),
        None => (
            Check::fail(
                r.name,
                r.code,
                format!("{} is required.", r.field),
                r.remediation,
            ),
            None,
        ),
    };
    checks.push(check);
    value
}

fn enum_field<T: serde::de::DeserializeOwned + Default>(
    body: &Map<String, Value>,
    field: &'static str,
    allowed: &'static str,
    problems: &mut Vec<String>,
) -> Option<T> {
    match body.get(field) {
        None | Some(Value::Null) => Some(T::default()),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| problems.push(format!("{field} must be {allowed}")))
            .ok(),
    }
}

/// Why the live checks are being run; named in the probe object.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    Validation,
    HealthCheck,
}

/// The connection probe written by `put_object`.
pub fn probe_body(purpose: Purpose, at: DateTime<Utc>) -> Vec<u8> {
    let check = match purpose {
        Purpose::Validation => "validation",
        Purpose::HealthCheck => "health_check",
    };
    json!({
        "stored_messages": "connection-test",
        "check": check,
        "checked_at": at.to_rfc3339_opts(SecondsFormat::Millis, true),
    })
    .to_string()
    .into_bytes()
}

/// What the live checks need from AWS.
pub struct LiveContext<'a> {
    pub sessions: &'a Identities,
    pub sts: &'a aws_sdk_sts::Client,
    /// Unsigned S3 client settings (no credentials) for the `not_public` probe.
    pub anonymous_s3: &'a aws_sdk_s3::config::Builder,
    pub session_duration: std::time::Duration,
}

fn assume_role_failure(err: &CredentialsError) -> Check {
    match err {
        CredentialsError::Denied => Check::fail(
            LiveCheck::AssumeRole.name(),
            "assume_role_denied",
            "We could not assume the role: AWS denied AssumeRole.",
            "Check the role's trust policy: it must allow sts:AssumeRole for the principal shown on the setup page, with a StringEquals condition on sts:ExternalId equal to your External ID (copy both from GET /v1/setup). A role created or changed in the last minute may not have propagated yet: wait a minute and retry.",
        ),
        other => {
            Check::fail(
                LiveCheck::AssumeRole.name(),
                "assume_role_failed",
                format!("We could not assume the role: {other}."),
                "Retry in a minute. If it persists, check that STS is enabled in the role's account for our region and that the role exists.",
            )
            .transient_if(other.is_retryable())
        }
    }
}

fn put_failure(err: &WriteError, destination: &Destination) -> Check {
    let bucket = destination.bucket.as_str();
    let account = &destination.account_id;
    let folder = crate::policy::object_resource(
        destination.role_arn.partition(),
        bucket,
        destination.folder_path.as_ref().map(FolderPath::as_str),
    );
    let (message, remediation) = match (err.code, err.denied_by) {
        (FailureCode::BucketNotFound, _) => (
            format!("The bucket '{bucket}' does not exist."),
            format!("Create the bucket '{bucket}' in account {account}, or correct the bucket name."),
        ),
        (FailureCode::BucketWrongRegion, _) => (
            match &err.bucket_region {
                Some(real) => format!("The bucket is in {real}, not {}.", destination.region),
                None => format!("The bucket is not in {}.", destination.region),
            },
            format!(
                "Set region to {} (the bucket's region), or point the destination at a bucket in {}.",
                err.bucket_region.as_deref().unwrap_or("the bucket's region"),
                destination.region
            ),
        ),
        // Real-setups B05: the role is fine; the bucket's own policy refuses
        // the write, most often because it demands an encryption header.
        (FailureCode::PutObjectDenied, Some(DeniedBy::ResourcePolicy)) => (
            format!("A bucket policy on '{bucket}' denies the probe write (an explicit Deny in a resource-based policy); the role's own permissions are not the problem."),
            format!(
                "Read the Deny statements of the bucket policy of '{bucket}'. Policies that demand an encryption header (a condition on s3:x-amz-server-side-encryption) need the matching encryption.mode: aes256 for AES256, or kms with the key the policy names (its key ARN, not an alias) for aws:kms; bucket_default sends no header. Otherwise exempt the role {} from the Deny.",
                destination.role_arn
            ),
        ),
        (FailureCode::PutObjectDenied, Some(DeniedBy::IdentityPolicy)) => (
            "S3 denied the probe write: the role's policies do not allow s3:PutObject here, or a Deny in them refuses it.".to_owned(),
            format!("Give the role a permissions policy statement allowing s3:PutObject on {folder} (copy the permissions policy from GET /v1/setup) and remove any Deny that covers it. If you just revoked the role's active sessions, retry in a minute: we start a new session."),
        ),
        (FailureCode::PutObjectDenied | FailureCode::KmsDenied, Some(DeniedBy::SessionPolicy)) => (
            "Our own session policy refused the write: this is a fault on our side, not in your account.".to_owned(),
            "Nothing to change on your side; contact support with the destination id.".to_owned(),
        ),
        (FailureCode::PutObjectDenied | FailureCode::KmsDenied, Some(DeniedBy::OrganizationPolicy)) => (
            "An AWS Organizations policy (a service or resource control policy) denies the write.".to_owned(),
            "Ask the administrators of your AWS organization to allow the role to write to the bucket (and use its KMS key).".to_owned(),
        ),
        (FailureCode::PutObjectDenied, None) => (
            "S3 denied the probe write (s3:PutObject).".to_owned(),
            format!("Check that the bucket belongs to account {account} (the role's account; we refuse to write to a bucket anyone else owns), that the role allows s3:PutObject on {folder} (the permissions policy from GET /v1/setup), and that no bucket policy denies the role."),
        ),
        // Not a denial: the key itself cannot be used. Sending the admin to
        // the KMS statement again would be a loop (real-setups B02).
        (FailureCode::KmsDenied, None) if err.message.contains("KMS.NotFoundException") => (
            "S3 could not encrypt the probe: the KMS key does not exist in the bucket's region (or the alias points nowhere).".to_owned(),
            format!("Check the key ARN (for encryption.mode kms) or the bucket's default encryption key: it must be an existing key in {}, the bucket's region.", destination.region),
        ),
        (FailureCode::KmsDenied, None) if err.message.contains("KMS.DisabledException") || err.message.contains("KMS.KMSInvalidStateException") => (
            "S3 could not encrypt the probe: the KMS key is disabled or pending deletion.".to_owned(),
            "Enable the key (or cancel its deletion) in the KMS console, or point the destination at a key in use.".to_owned(),
        ),
        (FailureCode::KmsDenied, Some(DeniedBy::ResourcePolicy)) => (
            "S3 could not encrypt the probe: the KMS key's policy does not allow the role to use the key.".to_owned(),
            "Add the role to the key policy (or keep the default key policy statement that delegates to IAM in the key's own account), allowing kms:GenerateDataKey and kms:Decrypt.".to_owned(),
        ),
        (FailureCode::KmsDenied, _) => (
            "S3 could not encrypt the probe with the KMS key: the role may not use the key.".to_owned(),
            "Add the KMS statement from GET /v1/setup (kms_policy_statement, with the key your bucket encrypts with: for encryption.mode bucket_default, the bucket's default key) to the role's permissions policy. If the key policy does not delegate to IAM, also allow the role in the key policy.".to_owned(),
        ),
        _ => (
            format!("The probe write failed: {}.", err.message),
            "Retry in a minute; if it persists, check the bucket's policy and S3 Object Lock or ownership settings.".to_owned(),
        ),
    };
    Check::fail(
        LiveCheck::PutObject.name(),
        err.code.as_str(),
        message,
        remediation,
    )
    .transient_if(err.retryable)
}

/// Runs the live checks in order; the first failure skips the rest.
pub async fn live_checks(
    ctx: &LiveContext<'_>,
    destination: &Destination,
    external_id: &ExternalId,
    purpose: Purpose,
    checks_to_run: &[LiveCheck],
) -> Vec<Check> {
    let mut results = Vec::new();
    let mut failed = false;
    let session = ctx.sessions.for_destination(destination, external_id);
    let now = Utc::now();
    let probe = probe_key(destination.folder_path.as_ref(), now);
    for live in LiveCheck::ALL
        .into_iter()
        .filter(|c| checks_to_run.contains(c))
    {
        let name = live.name();
        if failed {
            results.push(Check::skip(name, "Skipped: an earlier check failed."));
            continue;
        }
        let check = match live {
            LiveCheck::AssumeRole => match session.credentials.get().await {
                Ok(_) => Check::pass(name, "We assumed the role with your External ID."),
                Err(err) => assume_role_failure(&err),
            },
            LiveCheck::ExternalIdEnforced => {
                let spec = AssumeSpec {
                    role_arn: destination.role_arn.clone(),
                    external_id: None,
                    session_name: destination.role_session_name.clone(),
                    policy: None,
                    duration: ctx.session_duration,
                };
                match assume_role(ctx.sts, &spec).await {
                    Err(CredentialsError::Denied) => Check::pass(name, "The role refuses AssumeRole without your External ID."),
                    Ok(_) => Check::fail(
                        name,
                        "external_id_not_enforced",
                        "The role can be assumed without your External ID, so anyone using our service could write to your bucket (the confused deputy problem).",
                        "Add a Condition to the trust policy statement: \"StringEquals\": {\"sts:ExternalId\": \"<your External ID from GET /v1/setup>\"}.",
                    ),
                    Err(err) => {
                        Check::fail(
                            name,
                            "assume_role_failed",
                            format!("We could not verify that the External ID is enforced: {err}."),
                            "Retry in a minute.",
                        )
                        .transient_if(err.is_retryable())
                    }
                }
            }
            LiveCheck::PutObject => {
                let body = encode(&probe_body(purpose, now), Compression::None);
                let target = PutTarget {
                    bucket: &destination.bucket,
                    key: &probe,
                    owner: destination.expected_owner(),
                    encryption: &destination.encryption,
                    write_once: true,
                };
                match put(&session, target, &body).await {
                    Ok(Written::Created) => Check::pass(
                        name,
                        format!("We wrote s3://{}/{probe}.", destination.bucket),
                    ),
                    Ok(Written::AlreadyPresent) => Check::pass(
                        name,
                        format!("S3 authorised our write of s3://{}/{probe} (today's probe was already there).", destination.bucket),
                    ),
                    Err(err) => put_failure(&err, destination),
                }
            }
            LiveCheck::NotPublic => not_public(ctx, destination, &probe).await,
        };
        failed = check.status == CheckStatus::Fail;
        results.push(check);
    }
    results
}

async fn not_public(ctx: &LiveContext<'_>, destination: &Destination, probe: &str) -> Check {
    let anonymous = aws_sdk_s3::Client::from_conf(
        ctx.anonymous_s3
            .clone()
            .region(aws_sdk_s3::config::Region::new(
                destination.region.as_str().to_owned(),
            ))
            .build(),
    );
    let answer = anonymous
        .get_object()
        .bucket(destination.bucket.as_str())
        .key(probe)
        // Never read a bucket someone else re-created under the same name.
        .expected_bucket_owner(destination.expected_owner().as_str())
        .send()
        .await;
    let name = LiveCheck::NotPublic.name();
    match answer {
        Ok(_) => Check::fail(
            name,
            "bucket_public",
            "Anyone on the internet can read objects in this bucket: an unsigned GET of our probe object succeeded.",
            "Turn on S3 Block Public Access for the bucket and remove any bucket policy or ACL that grants access to everyone (Principal \"*\"), then retry.",
        ),
        // S3 refuses any unsigned read of an SSE-KMS object with 400
        // InvalidArgument ("... require AWS Signature Version 4"), whatever
        // the bucket policy: our objects cannot leak that way, but the answer
        // says nothing about the rest of the bucket, and the message says so.
        Err(err) if err.raw_response().is_some_and(|r| r.status().as_u16() == 400)
            && err.as_service_error().and_then(|e| aws_sdk_s3::error::ProvideErrorMetadata::code(e)) == Some("InvalidArgument") => {
            Check::pass(name, "An unsigned GET of the probe object was refused because it is encrypted with KMS, as every object we write here will be: S3 never serves those unsigned. This does not show that the rest of the bucket is private; keep S3 Block Public Access on.")
        }
        Err(err) if err.raw_response().is_some_and(|r| (400..500).contains(&r.status().as_u16())) => {
            Check::pass(name, "An unsigned GET of the probe object was refused: the bucket is not public.")
        }
        Err(_) => Check::fail(
            name,
            "bucket_public",
            "We could not confirm that the bucket is private: the unsigned GET got no clear answer.",
            "Retry in a minute. Make sure S3 Block Public Access is on for the bucket.",
        ),
    }
}

/// The organisation of a validation response: `valid` only when every check passed.
pub fn all_passed(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status == CheckStatus::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> OrgId {
        OrgId::parse("acme").unwrap()
    }

    fn valid() -> Map<String, Value> {
        json!({
            "project_id": "12345",
            "role_arn": "arn:aws:iam::111122223333:role/stored-messages-acme",
            "region": "eu-west-1",
            "bucket": "acme-message-archive",
            "folder_path": "archive/prod",
            "channels": ["email", "sms", "push"],
            "layout": "by_date",
            "compression": "none",
            "encryption": { "mode": "kms", "kms_key_arn": "arn:aws:kms:eu-west-1:111122223333:key/abc-1" },
            "bucket_private_confirmed": true
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn run(body: &Map<String, Value>) -> StaticOutcome {
        static_checks(&org(), body, "stored-messages")
    }

    fn failed(outcome: &StaticOutcome) -> Vec<(&'static str, &'static str)> {
        outcome
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .map(|c| (c.name, c.code.unwrap_or_default()))
            .collect()
    }

    fn with(field: &str, value: Value) -> Map<String, Value> {
        let mut body = valid();
        body.insert(field.to_owned(), value);
        body
    }

    #[test]
    fn a_valid_request_passes_every_static_check_in_order() {
        let outcome = run(&valid());
        let names: Vec<&str> = outcome.checks.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "request",
                "role_arn",
                "role_name_prefix",
                "bucket_name",
                "region",
                "folder_path",
                "encryption",
                "bucket_private_confirmed"
            ]
        );
        assert!(outcome.checks.iter().all(|c| c.status == CheckStatus::Pass));
        let d = outcome.destination.unwrap();
        assert_eq!(d.account_id.as_str(), "111122223333");
        assert_eq!(
            d.channels,
            vec![Channel::Email, Channel::Sms, Channel::Push]
        );
        assert_eq!(d.layout, Layout::ByDate);
        assert_eq!(d.compression, Compression::None);
        assert_eq!(d.status, Status::Active);
    }

    #[test]
    fn defaults_apply_to_optional_fields() {
        let mut body = valid();
        for field in [
            "folder_path",
            "channels",
            "layout",
            "compression",
            "encryption",
            "role_session_name",
        ] {
            body.remove(field);
        }
        let d = run(&body).destination.unwrap();
        assert_eq!(d.channels, Channel::ALL.to_vec());
        assert_eq!(
            (d.layout, d.compression),
            (Layout::ByRecipient, Compression::Gzip)
        );
        assert_eq!(d.encryption, Encryption::BucketDefault);
        assert_eq!(d.role_session_name.as_str(), "stored-messages");
        assert_eq!(d.folder_path, None);
    }

    #[test]
    fn each_static_rule_fails_with_its_code() {
        let cases: Vec<(&str, Value, (&str, &str))> = vec![
            (
                "role_arn",
                json!("arn:aws:iam::111122223333:user/stored-messages"),
                ("role_arn", "role_arn_invalid"),
            ),
            (
                "role_arn",
                json!("arn:aws:iam::111122223333:role/other-name"),
                ("role_name_prefix", "role_name_prefix_mismatch"),
            ),
            (
                "role_arn",
                json!("arn:aws:iam::111122223333:role/stored-messages/evil"),
                ("role_name_prefix", "role_name_prefix_mismatch"),
            ),
            (
                "role_arn",
                json!("arn:aws:iam::111122223333:role/ѕtored-messages"),
                ("role_arn", "role_arn_invalid"),
            ),
            (
                "bucket",
                json!("Acme_Archive"),
                ("bucket_name", "bucket_name_invalid"),
            ),
            (
                "bucket",
                json!("аcme-archive"),
                ("bucket_name", "bucket_name_invalid"),
            ),
            (
                "bucket",
                json!("10.0.0.1"),
                ("bucket_name", "bucket_name_invalid"),
            ),
            (
                "bucket",
                json!("x".repeat(100_000)),
                ("bucket_name", "bucket_name_invalid"),
            ),
            ("region", json!("eu-west"), ("region", "region_invalid")),
            ("region", json!(""), ("region", "region_invalid")),
            (
                "folder_path",
                json!("../other-tenant"),
                ("folder_path", "folder_path_invalid"),
            ),
            (
                "folder_path",
                json!("a/../../b"),
                ("folder_path", "folder_path_invalid"),
            ),
            (
                "folder_path",
                json!("/archive"),
                ("folder_path", "folder_path_invalid"),
            ),
            (
                "folder_path",
                json!("archive\u{2215}evil"),
                ("folder_path", "folder_path_invalid"),
            ),
            (
                "folder_path",
                json!("a%2e%2e"),
                ("folder_path", "folder_path_invalid"),
            ),
            (
                "encryption",
                json!({"mode": "kms"}),
                ("encryption", "kms_key_arn_invalid"),
            ),
            (
                "encryption",
                json!({"mode": "kms", "kms_key_arn": "alias/foo"}),
                ("encryption", "kms_key_arn_invalid"),
            ),
            (
                "bucket_private_confirmed",
                json!(false),
                ("bucket_private_confirmed", "bucket_private_not_confirmed"),
            ),
            ("project_id", json!("a/b"), ("request", "invalid_request")),
            ("project_id", json!(12345), ("request", "invalid_request")),
            ("channels", json!([]), ("request", "invalid_request")),
            (
                "channels",
                json!(["email", "fax"]),
                ("request", "invalid_request"),
            ),
            ("channels", json!("email"), ("request", "invalid_request")),
            ("layout", json!("by_month"), ("request", "invalid_request")),
            ("compression", json!("zstd"), ("request", "invalid_request")),
            (
                "encryption",
                json!({"mode": "sse-c"}),
                ("request", "invalid_request"),
            ),
            (
                "encryption",
                json!("aes256"),
                ("request", "invalid_request"),
            ),
            (
                "role_session_name",
                json!("a b"),
                ("request", "invalid_request"),
            ),
            (
                "role_session_name",
                json!("x"),
                ("request", "invalid_request"),
            ),
            (
                "bucket_private_confirmed",
                json!("true"),
                ("request", "invalid_request"),
            ),
            (
                "role_arn",
                json!({"nested": ["deep"]}),
                ("request", "invalid_request"),
            ),
        ];
        for (field, value, expect) in cases {
            let outcome = run(&with(field, value.clone()));
            assert!(
                failed(&outcome).contains(&expect),
                "{field}={value}: {:?}",
                failed(&outcome)
            );
            assert!(outcome.destination.is_none(), "{field}={value}");
        }
    }

    #[test]
    fn missing_required_fields_are_each_reported() {
        let outcome = run(&Map::new());
        let failed = failed(&outcome);
        for expect in [
            ("request", "invalid_request"),
            ("role_arn", "role_arn_invalid"),
            ("bucket_name", "bucket_name_invalid"),
            ("region", "region_invalid"),
            ("bucket_private_confirmed", "bucket_private_not_confirmed"),
        ] {
            assert!(failed.contains(&expect), "{expect:?} in {failed:?}");
        }
        let skipped: Vec<&str> = outcome
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Skip)
            .map(|c| c.name)
            .collect();
        assert_eq!(skipped, ["role_name_prefix"]);
        assert_eq!(outcome.checks.len(), 8, "static checks always all run");
    }

    #[test]
    fn messages_do_not_echo_values() {
        let hostile = "<script>alert(1)</script>";
        for field in [
            "project_id",
            "role_arn",
            "bucket",
            "region",
            "folder_path",
            "role_session_name",
        ] {
            let outcome = run(&with(field, json!(hostile)));
            for check in &outcome.checks {
                assert!(
                    !check.message.contains(hostile),
                    "{field}: {}",
                    check.message
                );
            }
        }
    }

    #[test]
    fn probe_failures_address_whoever_can_fix_them() {
        let d = run(&valid()).destination.unwrap();
        let failure = |code, denied_by, message: &str, retryable| {
            put_failure(
                &WriteError {
                    code,
                    message: message.to_owned(),
                    retryable,
                    bucket_region: Some("us-west-2".to_owned()),
                    denied_by,
                },
                &d,
            )
        };
        use FailureCode::*;
        // (failure, words the message must hold, words the remediation must hold)
        let cases = [
            (
                failure(
                    PutObjectDenied,
                    Some(DeniedBy::ResourcePolicy),
                    "S3 answered AccessDenied",
                    false,
                ),
                "bucket policy",
                "encryption.mode",
            ),
            (
                failure(
                    PutObjectDenied,
                    Some(DeniedBy::IdentityPolicy),
                    "S3 answered AccessDenied",
                    false,
                ),
                "role's policies",
                "s3:PutObject on arn:aws:s3:::acme-message-archive/archive/prod/*",
            ),
            (
                failure(
                    PutObjectDenied,
                    Some(DeniedBy::SessionPolicy),
                    "S3 answered AccessDenied",
                    false,
                ),
                "our side",
                "Nothing to change on your side",
            ),
            (
                failure(
                    KmsDenied,
                    Some(DeniedBy::SessionPolicy),
                    "S3 answered AccessDenied",
                    false,
                ),
                "our side",
                "Nothing to change on your side",
            ),
            (
                failure(
                    PutObjectDenied,
                    Some(DeniedBy::OrganizationPolicy),
                    "S3 answered AccessDenied",
                    false,
                ),
                "Organizations",
                "organization",
            ),
            (
                failure(PutObjectDenied, None, "S3 answered AccessDenied", false),
                "s3:PutObject",
                "belongs to account 111122223333",
            ),
            (
                failure(KmsDenied, None, "S3 answered KMS.NotFoundException", false),
                "does not exist",
                "eu-west-1",
            ),
            (
                failure(KmsDenied, None, "S3 answered KMS.DisabledException", false),
                "disabled",
                "Enable the key",
            ),
            (
                failure(
                    KmsDenied,
                    Some(DeniedBy::ResourcePolicy),
                    "S3 answered AccessDenied",
                    false,
                ),
                "key's policy",
                "key policy",
            ),
            (
                failure(
                    KmsDenied,
                    Some(DeniedBy::IdentityPolicy),
                    "S3 answered AccessDenied",
                    false,
                ),
                "may not use the key",
                "kms_policy_statement",
            ),
            (
                failure(BucketNotFound, None, "S3 answered NoSuchBucket", false),
                "does not exist",
                "account 111122223333",
            ),
            (
                failure(
                    BucketWrongRegion,
                    None,
                    "S3 answered PermanentRedirect",
                    false,
                ),
                "us-west-2",
                "Set region to us-west-2",
            ),
            (
                failure(PutObjectFailed, None, "S3 answered SlowDown", true),
                "SlowDown",
                "Retry in a minute",
            ),
        ];
        for (check, message, remediation) in &cases {
            assert!(
                check.message.contains(message),
                "{message:?} in {:?}",
                check.message
            );
            let text = check.remediation.as_deref().unwrap_or_default();
            assert!(text.contains(remediation), "{remediation:?} in {text:?}");
            assert_eq!(check.status, CheckStatus::Fail);
        }
        assert!(
            cases.last().unwrap().0.transient,
            "a retryable failure is transient"
        );
        assert!(cases.iter().rev().skip(1).all(|(c, _, _)| !c.transient));
    }

    #[test]
    fn live_checks_are_the_contracts_in_its_order() {
        let names: Vec<&str> = LiveCheck::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "assume_role",
                "external_id_enforced",
                "put_object",
                "not_public"
            ]
        );
        let health: Vec<&str> = LiveCheck::HEALTH.iter().map(|c| c.name()).collect();
        assert_eq!(health, ["assume_role", "put_object"], "CONTRACT section 6");
    }

    #[test]
    fn probe_body_names_the_check_and_time() {
        let at = Utc::now();
        let body: Value = serde_json::from_slice(&probe_body(Purpose::HealthCheck, at)).unwrap();
        assert_eq!(body["check"], "health_check");
        assert_eq!(body["stored_messages"], "connection-test");
        assert!(body["checked_at"].as_str().unwrap().ends_with('Z'));
    }
}
