//! The checks of a destination (CONTRACT section 5): static checks on the
//! request, then live checks against AWS in order, stopping at the first
//! failure. Used by the API ("Test Credentials", create) and by the
//! scheduled health checks, so a customer sees the same codes everywhere.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::arn::{AccountId, RoleArn};
use crate::credentials::access_key::{
    caller_identity, AccessKeyId, AccessKeyPair, KeyCheckError, SecretAccessKey,
};
use crate::credentials::{assume_role, AssumeSpec, CredentialsError, Identity};
use crate::destination::{
    messages_only, Auth, Destination, DestinationId, Health, SessionName, Status, StoredAccessKey,
    Target, UNKNOWN_ACCOUNT,
};
use crate::ids::{Channel, EventType, OrgId, ProjectId, RecordKind};

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
    pub(crate) fn pass(name: &'static str, message: impl Into<String>) -> Self {
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
    AccessKey,
    AssumeRole,
    ExternalIdEnforced,
    PutObject,
    NotPublic,
}

impl LiveCheck {
    /// Every live check, in order: validation and "Test Credentials".
    pub const ALL: [Self; 5] = [
        Self::AccessKey,
        Self::AssumeRole,
        Self::ExternalIdEnforced,
        Self::PutObject,
        Self::NotPublic,
    ];
    /// What a health check runs (CONTRACT section 6): `assume_role` or
    /// `access_key` (the other is `skip`), then the probe.
    pub const HEALTH: [Self; 3] = [Self::AccessKey, Self::AssumeRole, Self::PutObject];

    pub fn name(self) -> &'static str {
        match self {
            Self::AccessKey => "access_key",
            Self::AssumeRole => "assume_role",
            Self::ExternalIdEnforced => "external_id_enforced",
            Self::PutObject => "put_object",
            Self::NotPublic => "not_public",
        }
    }
}

/// The outcome of the static checks: the destination when all passed, and
/// the key pair the request gave (kept apart: a [`Destination`] is what the
/// registry stores, and the secret never goes there).
pub struct StaticOutcome {
    pub checks: Vec<Check>,
    pub destination: Option<Destination>,
    pub new_keys: Option<AccessKeyPair>,
}

/// What a request's `auth` (CONTRACT section 3) chose.
enum AuthChoice {
    Role,
    NewKeys(AccessKeyPair),
    /// The destination's stored key, kept (a `PATCH` without `auth`).
    Stored(StoredAccessKey),
}

/// The `auth` static check. `stored`: the key of the access-key
/// destination a `PATCH` edits, kept when the body has no `auth`. Messages
/// name fields and rules, never values.
fn auth_check(
    body: &Map<String, Value>,
    stored: Option<&StoredAccessKey>,
) -> (Check, Option<AuthChoice>) {
    let has = |field: &str| body.get(field).is_some_and(|v| !v.is_null());
    let fail = |message: &str| {
        (
            Check::fail(
                "auth",
                "auth_invalid",
                message,
                "Send auth as {\"mode\": \"role\"} with role_arn, or as {\"mode\": \"access_key\", \"access_key_id\": \"AKIA...\", \"secret_access_key\": \"...\"} without role_arn and role_session_name. Roles are the safer choice: no long-lived secret changes hands.",
            ),
            None,
        )
    };
    let with_keys = |choice: AuthChoice| {
        if has("role_arn") || has("role_session_name") {
            fail("role_arn and role_session_name must be absent with access keys.")
        } else {
            (
                Check::pass(
                    "auth",
                    "The destination signs with an IAM user's access key.",
                ),
                Some(choice),
            )
        }
    };
    let auth = match body.get("auth") {
        None | Some(Value::Null) => {
            return match stored {
                Some(stored) => with_keys(AuthChoice::Stored(stored.clone())),
                None => (
                    Check::pass("auth", "The destination assumes a role."),
                    Some(AuthChoice::Role),
                ),
            }
        }
        Some(Value::Object(auth)) => auth,
        Some(_) => return fail("auth must be an object with a mode."),
    };
    let only = |allowed: &[&str]| auth.keys().all(|k| allowed.contains(&k.as_str()));
    match auth.get("mode").and_then(Value::as_str) {
        Some("role") if only(&["mode"]) => (
            Check::pass("auth", "The destination assumes a role."),
            Some(AuthChoice::Role),
        ),
        Some("role") => fail("auth with mode role takes no other field."),
        Some("access_key") if only(&["mode", "access_key_id", "secret_access_key"]) => {
            let id = auth
                .get("access_key_id")
                .and_then(Value::as_str)
                .map(AccessKeyId::parse);
            let secret = auth
                .get("secret_access_key")
                .and_then(Value::as_str)
                .map(SecretAccessKey::parse);
            match (id, secret) {
                (Some(Ok(id)), Some(Ok(secret))) => {
                    with_keys(AuthChoice::NewKeys(AccessKeyPair { id, secret }))
                }
                (Some(Err(err)), _) | (_, Some(Err(err))) => fail(&err.to_string()),
                _ => fail("auth with mode access_key needs access_key_id and secret_access_key, as strings."),
            }
        }
        Some("access_key") => {
            fail("auth with mode access_key takes only access_key_id and secret_access_key.")
        }
        _ => fail("auth.mode must be role or access_key."),
    }
}

pub(crate) fn get_str<'a>(
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
    static_checks_keeping(org, body, role_name_prefix, None)
}

/// [`static_checks`] of a `PATCH` on an access-key destination: `stored`,
/// its key, is kept when the body has no `auth`.
pub fn static_checks_keeping(
    org: &OrgId,
    body: &Map<String, Value>,
    role_name_prefix: &str,
    stored: Option<&StoredAccessKey>,
) -> StaticOutcome {
    let mut problems: Vec<String> = Vec::new();
    let mut checks = Vec::with_capacity(9);

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
    let channels = unique_list(
        body,
        "channels",
        None,
        Channel::parse,
        ListRules {
            list: "channels must be a non-empty list of channels",
            item: "channels may contain only email, sms, push, in_app, web_push, whatsapp",
        },
        &mut problems,
    )
    .map(|found| found.unwrap_or_else(|| Channel::ALL.to_vec()));
    let record_kinds = record_kinds(body, &mut problems);
    let event_types = event_types(body, &mut problems);
    let role_arn_text = get_str(body, "role_arn", &mut problems);
    // The kind's fields: S3, the one kind the contract has so far.
    let s3_fields = crate::s3::checks::Fields::parse(body, &mut problems);
    let (auth, auth_choice) = auth_check(body, stored);

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

    let role_arn = match &auth_choice {
        Some(AuthChoice::Role) => role_checks(&mut checks, role_arn_text, role_name_prefix),
        other => {
            let why = if other.is_some() {
                "Not applicable: the destination signs with an access key."
            } else {
                "Skipped: auth is invalid."
            };
            checks.push(Check::skip("role_arn", why));
            checks.push(Check::skip("role_name_prefix", why));
            None
        }
    };
    let target = s3_fields.check(&mut checks).map(Target::S3);
    checks.push(auth);

    let all_passed = all_passed(&checks);
    let identity = match (auth_choice, role_arn, session_name) {
        (Some(AuthChoice::Role), Some(role_arn), Some(role_session_name)) => Some((
            role_arn.account().clone(),
            Auth::Role {
                role_arn,
                role_session_name,
            },
            None,
        )),
        (Some(AuthChoice::NewKeys(pair)), _, _) => {
            AccountId::parse(UNKNOWN_ACCOUNT).map(|account| {
                let stored = StoredAccessKey {
                    access_key_id: pair.id.masked(),
                    credentials_updated_at: Utc::now(),
                    secret_version_id: None,
                };
                (account, Auth::AccessKey(stored), Some(pair))
            })
        }
        (Some(AuthChoice::Stored(stored)), _, _) => AccountId::parse(UNKNOWN_ACCOUNT)
            .map(|account| (account, Auth::AccessKey(stored), None)),
        _ => None,
    };
    let mut new_keys = None;
    let destination = match (
        all_passed,
        project_id,
        identity,
        (channels, record_kinds, event_types),
        target,
    ) {
        (
            true,
            Some(project_id),
            Some((account_id, auth, keys)),
            (Some(channels), Some(record_kinds), Some(event_types)),
            Some(target),
        ) => DestinationId::generate().ok().map(|id| {
            new_keys = keys;
            Destination {
                id,
                org_id: org.clone(),
                project_id,
                account_id,
                auth,
                channels,
                record_kinds,
                event_types,
                created_at: Utc::now(),
                updated_at: None,
                status: Status::Active,
                health: Health::default(),
                target,
            }
        }),
        _ => None,
    };
    StaticOutcome {
        checks,
        destination,
        new_keys,
    }
}

/// The `role_arn` and `role_name_prefix` checks of a role destination.
fn role_checks(
    checks: &mut Vec<Check>,
    role_arn_text: Option<&str>,
    role_name_prefix: &str,
) -> Option<RoleArn> {
    let role_arn = required(
        checks,
        Required {
            name: "role_arn",
            code: "role_arn_invalid",
            field: "role_arn",
            text: role_arn_text,
            parse: RoleArn::parse,
            passed: "The role ARN is well-formed.",
            remediation: "Copy the role's ARN from the IAM console (Roles > your role > ARN), or connect with an access key (auth).",
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
    role_arn
}

/// `record_kinds` (CONTRACT section 3): a non-empty list of `message` and
/// `event`, each once; absent or `null` is messages only.
fn record_kinds(body: &Map<String, Value>, problems: &mut Vec<String>) -> Option<Vec<RecordKind>> {
    let rule = "record_kinds must be a non-empty list of message and event";
    let rules = ListRules {
        list: rule,
        item: rule,
    };
    unique_list(
        body,
        "record_kinds",
        None,
        RecordKind::parse,
        rules,
        problems,
    )
    .map(|found| found.unwrap_or_else(messages_only))
}

/// The most `event_types` a destination may list: every standard type
/// several times over, and a bound on what one record can hold.
pub const MAX_EVENT_TYPES: usize = 64;

/// `event_types` (CONTRACT section 3): absent or `null` keeps every type;
/// else a non-empty list of event types (section 2b's shape), each once.
fn event_types(
    body: &Map<String, Value>,
    problems: &mut Vec<String>,
) -> Option<Option<Vec<EventType>>> {
    let rule = format!(
        "event_types must be a non-empty list of at most {MAX_EVENT_TYPES} event types of [a-z0-9_], starting with a letter, or null for all"
    );
    let rules = ListRules {
        list: &rule,
        item: &rule,
    };
    let parse = |item: &str| EventType::parse(item).ok();
    unique_list(
        body,
        "event_types",
        Some(MAX_EVENT_TYPES),
        parse,
        rules,
        problems,
    )
}

/// What a list field's problems say: about the list as a whole, and about
/// one of its items.
struct ListRules<'a> {
    list: &'a str,
    item: &'a str,
}

/// A list field of CONTRACT section 3 (`channels`, `record_kinds`,
/// `event_types`): `Some(None)` when absent or `null` (the caller's
/// default); `Some(Some(values))` for 1..=`max` strings that each parse,
/// each kept once in the order given; `None`, with the rule broken added
/// to `problems`, for anything else.
fn unique_list<T: PartialEq>(
    body: &Map<String, Value>,
    field: &str,
    max: Option<usize>,
    parse: impl Fn(&str) -> Option<T>,
    rules: ListRules<'_>,
    problems: &mut Vec<String>,
) -> Option<Option<Vec<T>>> {
    let items = match body.get(field) {
        None | Some(Value::Null) => return Some(None),
        Some(Value::Array(items))
            if !items.is_empty() && max.is_none_or(|max| items.len() <= max) =>
        {
            items
        }
        Some(_) => {
            problems.push(rules.list.to_owned());
            return None;
        }
    };
    let mut values = Vec::new();
    for item in items {
        match item.as_str().and_then(&parse) {
            Some(value) if !values.contains(&value) => values.push(value),
            Some(_) => {}
            None => {
                problems.push(rules.item.to_owned());
                return None;
            }
        }
    }
    Some(Some(values))
}

/// A required field with its own check: pass when it parses, fail with the
/// rule (never the value) when it does not, or when it is missing.
pub(crate) struct Required<'a, T, E> {
    pub(crate) name: &'static str,
    pub(crate) code: &'static str,
    pub(crate) field: &'static str,
    pub(crate) text: Option<&'a str>,
    pub(crate) parse: fn(&str) -> Result<T, E>,
    pub(crate) passed: &'static str,
    pub(crate) remediation: &'static str,
}

pub(crate) fn required<T, E: std::fmt::Display>(
    checks: &mut Vec<Check>,
    r: Required<'_, T, E>,
) -> Option<T> {
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

pub(crate) fn enum_field<T: serde::de::DeserializeOwned + Default>(
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
    /// Validate and create (`POST /v1/destinations[/validate]`, `PATCH`).
    Validation,
    HealthCheck,
    /// `POST /v1/destinations/{id}/test`.
    OnDemandTest,
}

/// The connection probe written by `put_object`.
pub fn probe_body(purpose: Purpose, at: DateTime<Utc>) -> Vec<u8> {
    let check = match purpose {
        Purpose::Validation => "validation",
        Purpose::HealthCheck => "health_check",
        Purpose::OnDemandTest => "on_demand_test",
    };
    json!({
        "stored_messages": "connection-test",
        "check": check,
        "checked_at": at.to_rfc3339_opts(SecondsFormat::Millis, true),
    })
    .to_string()
    .into_bytes()
}

/// The `assume_role` check from the session's first fetch.
pub(crate) fn assume_role_failure(err: &CredentialsError) -> Check {
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

/// The `external_id_enforced` check: the same AssumeRole without the
/// External ID must be refused (the confused-deputy guard, CONTRACT 5).
pub(crate) async fn external_id_enforced(
    sts: &aws_sdk_sts::Client,
    destination: &Destination,
    duration: std::time::Duration,
) -> Check {
    let name = LiveCheck::ExternalIdEnforced.name();
    let Auth::Role {
        role_arn,
        role_session_name,
    } = &destination.auth
    else {
        return Check::skip(name, "Not applicable: no role, so no External ID.");
    };
    let spec = AssumeSpec {
        role_arn: role_arn.clone(),
        external_id: None,
        session_name: role_session_name.clone(),
        policy: None,
        duration,
    };
    match assume_role(sts, &spec).await {
        Err(CredentialsError::Denied) => Check::pass(name, "The role refuses AssumeRole without your External ID."),
        Ok(_) => Check::fail(
            name,
            "external_id_not_enforced",
            "The role can be assumed without your External ID, so anyone using our service could write to your bucket (the confused deputy problem).",
            "Add a Condition to the trust policy statement: \"StringEquals\": {\"sts:ExternalId\": \"<your External ID from GET /v1/setup>\"}.",
        ),
        Err(err) => Check::fail(
            name,
            "assume_role_failed",
            format!("We could not verify that the External ID is enforced: {err}."),
            "Retry in a minute.",
        )
        .transient_if(err.is_retryable()),
    }
}

/// A failed write as the `put_object` check would report it, whatever the
/// destination kind: how archive's immediate detection words the failure it
/// records (CONTRACT section 6).
pub fn write_failure(destination: &Destination, err: &crate::write::WriteError) -> Check {
    match &destination.target {
        Target::S3(s3) => crate::s3::checks::put_failure(err, destination, s3),
    }
}

/// `valid` (CONTRACT section 5): no check failed. A `skip` is either after
/// a failure or a check that does not apply to the destination's `auth`
/// (`access_key` for a role, `assume_role` for a key).
pub fn all_passed(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status != CheckStatus::Fail)
}

/// The `access_key` check (CONTRACT section 5): `sts:GetCallerIdentity`
/// signed with the destination's key. Answers the key's account when the
/// key is usable.
pub(crate) async fn access_key_check(
    sts: &aws_sdk_sts::Client,
    identity: &Identity,
    destination: &Destination,
) -> (Check, Option<AccountId>) {
    let name = LiveCheck::AccessKey.name();
    // The contract has one code for this check; the words say whose turn it is.
    let invalid = |message: String, transient: bool| {
        let remediation = if transient {
            "Nothing to change on your side: this failure is ours or AWS's, and the next check retries it (or press Test Credentials)."
        } else {
            "Check that the key is Active on the IAM user (IAM console > Users > Security credentials) and that the secret was copied whole; or create a new key and send it with PUT /v1/destinations/{id}/credentials. If you just created the key, wait a few seconds and retry."
        };
        Check::fail(name, "access_key_invalid", message, remediation).transient_if(transient)
    };
    if let Err(err) = identity.credentials.get().await {
        return (
            invalid(
                format!("We could not use the key: {err}."),
                err.is_retryable(),
            ),
            None,
        );
    }
    let client = aws_sdk_sts::Client::from_conf(
        sts.config()
            .to_builder()
            .region(aws_sdk_sts::config::Region::new(
                destination.region().as_str().to_owned(),
            ))
            .credentials_provider(identity.credentials.clone())
            // The identity's cache is the cache: the shared one would keep
            // the customer's key too.
            .identity_cache(aws_sdk_sts::config::IdentityCache::no_cache())
            .build(),
    );
    match caller_identity(&client).await {
        Ok(caller) if caller.is_root() => (
            Check::fail(
                name,
                "access_key_root_not_allowed",
                format!("The key belongs to the root user of account {}: it can do anything in the account, and cannot be limited to one bucket.", caller.account),
                "Create an IAM user that may only s3:PutObject into the bucket (the permissions policy from GET /v1/setup), create an access key for it, and use that key; then delete the root user's key. Better still, connect with a role.",
            ),
            None,
        ),
        Ok(caller) => (
            Check::pass(
                name,
                format!("The key is an IAM user's, in account {}.", caller.account),
            ),
            Some(caller.account),
        ),
        Err(KeyCheckError::Rejected(code)) => (
            invalid(format!("AWS does not accept the key ({code}): it was deleted or deactivated, or the secret does not match the key id."), false),
            None,
        ),
        Err(err @ KeyCheckError::Failed { retryable, .. }) => {
            (invalid(format!("We could not check the key: {err}."), retryable), None)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::s3::{Encryption, Layout};
    use crate::write::Compression;

    fn org() -> OrgId {
        OrgId::parse("acme").unwrap()
    }

    pub(crate) fn valid() -> Map<String, Value> {
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

    pub(crate) fn run(body: &Map<String, Value>) -> StaticOutcome {
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

    const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn with_keys() -> Map<String, Value> {
        let mut body = valid();
        body.remove("role_arn");
        body.insert(
            "auth".into(),
            json!({ "mode": "access_key", "access_key_id": KEY_ID, "secret_access_key": SECRET }),
        );
        body
    }

    #[test]
    fn an_access_key_request_skips_the_role_checks_and_keeps_the_pair_apart() {
        let outcome = run(&with_keys());
        let by_name = |name: &str| {
            outcome
                .checks
                .iter()
                .find(|c| c.name == name)
                .unwrap()
                .status
        };
        assert_eq!(by_name("auth"), CheckStatus::Pass);
        assert_eq!(by_name("role_arn"), CheckStatus::Skip);
        assert_eq!(by_name("role_name_prefix"), CheckStatus::Skip);
        assert!(
            all_passed(&outcome.checks),
            "a skip that does not apply is no failure"
        );
        let d = outcome.destination.unwrap();
        let Auth::AccessKey(stored) = &d.auth else {
            panic!("{:?}", d.auth)
        };
        assert_eq!(stored.access_key_id.as_str(), "AKIA************MPLE");
        assert_eq!(stored.secret_version_id, None);
        assert_eq!(
            d.account_id.as_str(),
            "000000000000",
            "unknown until access_key runs"
        );
        let pair = outcome.new_keys.unwrap();
        assert_eq!((pair.id.as_str(), pair.secret.expose()), (KEY_ID, SECRET));
        // What the registry would store holds neither the id nor the secret.
        let stored_text = serde_json::to_string(&d).unwrap();
        assert!(
            !stored_text.contains(SECRET) && !stored_text.contains(KEY_ID),
            "{stored_text}"
        );
        assert!(!stored_text.contains("role_arn"));
    }

    #[test]
    fn a_malformed_auth_is_auth_invalid_and_never_echoes_the_secret() {
        let keys = |extra: Value| {
            let mut auth = json!({ "mode": "access_key", "access_key_id": KEY_ID, "secret_access_key": SECRET });
            for (k, v) in extra.as_object().unwrap() {
                if v.is_null() {
                    auth.as_object_mut().unwrap().remove(k);
                } else {
                    auth[k] = v.clone();
                }
            }
            auth
        };
        let cases = [
            (Some(json!("access_key")), None),
            (Some(json!({})), None),
            (Some(json!({ "mode": "password" })), None),
            (Some(json!({ "mode": "role", "role_arn": "x" })), None),
            (Some(keys(json!({ "secret_access_key": null }))), None),
            (Some(keys(json!({ "access_key_id": 7 }))), None),
            (
                Some(keys(json!({ "access_key_id": "ASIAIOSFODNN7EXAMPLE" }))),
                None,
            ),
            (
                Some(keys(json!({ "secret_access_key": &SECRET[1..] }))),
                None,
            ),
            (Some(keys(json!({ "session_token": "t" }))), None),
            // Keys and a role at once: which one would we use?
            (
                Some(keys(json!({}))),
                Some((
                    "role_arn",
                    json!("arn:aws:iam::111122223333:role/stored-messages-acme"),
                )),
            ),
            (
                Some(keys(json!({}))),
                Some(("role_session_name", json!("me"))),
            ),
        ];
        for (auth, extra) in cases {
            let mut body = valid();
            body.remove("role_arn");
            if let Some(auth) = &auth {
                body.insert("auth".into(), auth.clone());
            }
            if let Some((field, value)) = &extra {
                body.insert((*field).into(), value.clone());
            }
            let outcome = run(&body);
            assert!(
                failed(&outcome).contains(&("auth", "auth_invalid")),
                "{auth:?} {extra:?}: {:?}",
                failed(&outcome)
            );
            assert!(outcome.destination.is_none() && outcome.new_keys.is_none());
            let text = serde_json::to_string(&outcome.checks).unwrap();
            assert!(!text.contains(&SECRET[1..]), "{text}");
        }
        // A role, said explicitly, is the default.
        let mut body = valid();
        body.insert("auth".into(), json!({ "mode": "role" }));
        assert!(matches!(
            run(&body).destination.unwrap().auth,
            Auth::Role { .. }
        ));
    }

    #[test]
    fn a_patch_without_auth_keeps_the_stored_key_and_refuses_a_role_beside_it() {
        let stored = StoredAccessKey {
            access_key_id: crate::credentials::access_key::MaskedKeyId::parse(
                "AKIA************MPLE",
            )
            .unwrap(),
            credentials_updated_at: Utc::now(),
            secret_version_id: Some("v1".into()),
        };
        let mut body = valid();
        body.remove("role_arn");
        body.remove("role_session_name");
        let outcome = static_checks_keeping(&org(), &body, "stored-messages", Some(&stored));
        assert_eq!(
            outcome.destination.unwrap().auth,
            Auth::AccessKey(stored.clone())
        );
        assert!(outcome.new_keys.is_none());
        let outcome = static_checks_keeping(&org(), &valid(), "stored-messages", Some(&stored));
        assert!(failed(&outcome).contains(&("auth", "auth_invalid")));
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
                "bucket_private_confirmed",
                "auth"
            ]
        );
        assert!(outcome.checks.iter().all(|c| c.status == CheckStatus::Pass));
        let d = outcome.destination.unwrap();
        assert_eq!(d.account_id.as_str(), "111122223333");
        assert_eq!(
            d.channels,
            vec![Channel::Email, Channel::Sms, Channel::Push]
        );
        assert_eq!(d.s3().unwrap().layout, Layout::ByDate);
        assert_eq!(d.s3().unwrap().compression, Compression::None);
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
        assert_eq!(d.record_kinds, [RecordKind::Message]);
        assert_eq!(d.event_types, None);
        body.insert("record_kinds".into(), json!(["event", "message", "event"]));
        body.insert(
            "event_types".into(),
            json!(["open", "click", "open", "custom_one"]),
        );
        let d = run(&body).destination.unwrap();
        assert_eq!(d.record_kinds, [RecordKind::Event, RecordKind::Message]);
        let kept: Vec<&str> = d
            .event_types
            .iter()
            .flatten()
            .map(EventType::as_str)
            .collect();
        assert_eq!(kept, ["open", "click", "custom_one"]);
        body.insert("event_types".into(), Value::Null);
        assert_eq!(run(&body).destination.unwrap().event_types, None);
        for field in ["record_kinds", "event_types"] {
            body.remove(field);
        }
        assert_eq!(
            (d.s3().unwrap().layout, d.s3().unwrap().compression),
            (Layout::ByRecipient, Compression::Gzip)
        );
        assert_eq!(d.s3().unwrap().encryption, Encryption::BucketDefault);
        assert!(
            matches!(&d.auth, Auth::Role { role_session_name, .. } if role_session_name.as_str() == "stored-messages")
        );
        assert_eq!(d.s3().unwrap().folder_path, None);
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
            ("record_kinds", json!([]), ("request", "invalid_request")),
            (
                "record_kinds",
                json!(["events"]),
                ("request", "invalid_request"),
            ),
            (
                "record_kinds",
                json!("event"),
                ("request", "invalid_request"),
            ),
            ("event_types", json!([]), ("request", "invalid_request")),
            (
                "event_types",
                json!(["Open"]),
                ("request", "invalid_request"),
            ),
            (
                "event_types",
                json!(["open", 7]),
                ("request", "invalid_request"),
            ),
            ("event_types", json!("open"), ("request", "invalid_request")),
            (
                "event_types",
                json!(vec!["open"; MAX_EVENT_TYPES + 1]),
                ("request", "invalid_request"),
            ),
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
        assert_eq!(outcome.checks.len(), 9, "static checks always all run");
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
    fn live_checks_are_the_contracts_in_its_order() {
        let names: Vec<&str> = LiveCheck::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "access_key",
                "assume_role",
                "external_id_enforced",
                "put_object",
                "not_public"
            ]
        );
        let health: Vec<&str> = LiveCheck::HEALTH.iter().map(|c| c.name()).collect();
        assert_eq!(
            health,
            ["access_key", "assume_role", "put_object"],
            "CONTRACT section 6"
        );
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
