//! Failure codes of the contract (section 5) and the classification of AWS
//! errors into them. One table serves the archive path, the API's checks and
//! the health checks, so a customer sees the same code everywhere.

use std::fmt;

use serde::Serialize;

/// A contract error code for a live failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    AccessKeyInvalid,
    AccessKeyRootNotAllowed,
    AssumeRoleDenied,
    AssumeRoleFailed,
    BucketNotFound,
    BucketWrongRegion,
    PutObjectDenied,
    KmsDenied,
    PutObjectFailed,
}

impl FailureCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessKeyInvalid => "access_key_invalid",
            Self::AccessKeyRootNotAllowed => "access_key_root_not_allowed",
            Self::AssumeRoleDenied => "assume_role_denied",
            Self::AssumeRoleFailed => "assume_role_failed",
            Self::BucketNotFound => "bucket_not_found",
            Self::BucketWrongRegion => "bucket_wrong_region",
            Self::PutObjectDenied => "put_object_denied",
            Self::KmsDenied => "kms_denied",
            Self::PutObjectFailed => "put_object_failed",
        }
    }
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an AWS error response told us, reduced to what classification needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsErrorFacts<'a> {
    pub status: Option<u16>,
    pub code: Option<&'a str>,
    pub message: Option<&'a str>,
}

impl AwsErrorFacts<'_> {
    /// Throttling and server-side errors: retrying later can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.code,
            Some(
                "Throttling"
                    | "ThrottlingException"
                    | "SlowDown"
                    | "RequestLimitExceeded"
                    | "TooManyRequestsException"
                    | "RequestTimeout"
                    | "InternalError"
                    | "ServiceUnavailable"
                    | "OperationAborted"
                    | "ConditionalRequestConflict"
                    | "IDPCommunicationError"
            )
        ) || self.status.is_some_and(|s| s == 429 || s >= 500)
    }

    /// Credentials that expired between our check and the call.
    pub fn is_expired_credentials(&self) -> bool {
        matches!(
            self.code,
            Some("ExpiredToken" | "ExpiredTokenException" | "TokenRefreshRequired")
        )
    }
}

/// The kind of policy an AWS access-denied message says refused a request.
///
/// S3 and KMS name it in the message since 2023 ("... with an explicit deny
/// in a resource-based policy", "... because no session policy allows the
/// kms:GenerateDataKey action"; IAM User Guide, "Access denied error
/// messages"). It decides whom the remediation addresses: a bucket policy is
/// the customer's bucket admin, a session policy is us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeniedBy {
    /// A bucket policy (or, for KMS, the key policy).
    ResourcePolicy,
    /// The role's own policies or permissions boundary, including the Deny
    /// that "Revoke active sessions" attaches.
    IdentityPolicy,
    /// Our session policy: a bug on our side, never the customer's to fix.
    SessionPolicy,
    /// An AWS Organizations service or resource control policy.
    OrganizationPolicy,
}

impl DeniedBy {
    /// Reads an AWS access-denied message; `None` for the bare "Access
    /// Denied" (for example an `ExpectedBucketOwner` mismatch).
    pub fn from_message(message: &str) -> Option<Self> {
        let (_, policy) = message
            .split_once("explicit deny in a")
            .or_else(|| message.split_once("because no "))?;
        let policy = policy.trim_start_matches('n').trim_start();
        if policy.starts_with("resource-based") {
            Some(Self::ResourcePolicy)
        } else if policy.starts_with("identity-based") || policy.starts_with("permissions boundary")
        {
            Some(Self::IdentityPolicy)
        } else if policy.starts_with("session policy") {
            Some(Self::SessionPolicy)
        } else if policy.starts_with("service control") || policy.starts_with("resource control") {
            Some(Self::OrganizationPolicy)
        } else {
            None
        }
    }
}

/// How AssumeRole went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StsFailure {
    Denied,
    Failed,
    Transient,
}

/// Classifies an STS error. A 403 without a parsed code counts as denied:
/// some emulators answer in a shape the SDK cannot parse.
pub fn classify_sts(facts: &AwsErrorFacts<'_>) -> StsFailure {
    if facts.is_transient() {
        StsFailure::Transient
    } else if facts.code == Some("AccessDenied") || facts.status == Some(403) {
        StsFailure::Denied
    } else {
        StsFailure::Failed
    }
}

/// How a PutObject went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutFailure {
    /// 412 on a write-once put: the object is already archived.
    AlreadyPresent,
    Transient,
    ExpiredCredentials,
    Permanent(FailureCode),
}

/// Classifies an S3 PutObject error.
pub fn classify_put(facts: &AwsErrorFacts<'_>) -> PutFailure {
    let code = facts.code.unwrap_or_default();
    let message = facts.message.unwrap_or_default();
    if facts.status == Some(412) || code == "PreconditionFailed" {
        return PutFailure::AlreadyPresent;
    }
    if facts.is_expired_credentials() {
        return PutFailure::ExpiredCredentials;
    }
    if code.starts_with("KMS.") || (code == "AccessDenied" && message.contains("kms:")) {
        return PutFailure::Permanent(FailureCode::KmsDenied);
    }
    if facts.is_transient() {
        return PutFailure::Transient;
    }
    let permanent = match code {
        "NoSuchBucket" => FailureCode::BucketNotFound,
        "PermanentRedirect"
        | "AuthorizationHeaderMalformed"
        | "IllegalLocationConstraintException" => FailureCode::BucketWrongRegion,
        "AccessDenied" | "AllAccessDisabled" => FailureCode::PutObjectDenied,
        // S3 does not know the key, or the secret does not match it: a
        // customer's access key deleted, deactivated or replaced (our role
        // sessions expire with ExpiredToken instead).
        "InvalidAccessKeyId" | "SignatureDoesNotMatch" => FailureCode::AccessKeyInvalid,
        _ => match facts.status {
            Some(301) => FailureCode::BucketWrongRegion,
            Some(403) => FailureCode::PutObjectDenied,
            Some(404) => FailureCode::BucketNotFound,
            _ => FailureCode::PutObjectFailed,
        },
    };
    PutFailure::Permanent(permanent)
}

/// What kind of failure an SDK call ended in.
pub(crate) enum SdkOutcome<'a> {
    /// The service answered with an error.
    Service(AwsErrorFacts<'a>),
    /// Timeouts, dropped connections, unreadable answers: worth retrying.
    Transport,
    /// The request could not even be built: a bug, not worth retrying.
    Construction,
}

/// An SDK failure reduced to the AWS error code (or our words for a
/// failure without one) and whether retrying can help: what every caller
/// that only reports and retries needs.
pub(crate) fn code_and_retry<E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::http::Response,
    >,
) -> (String, bool) {
    match sdk_outcome(err) {
        SdkOutcome::Service(facts) => (
            facts.code.unwrap_or("no error code").to_owned(),
            facts.is_transient(),
        ),
        SdkOutcome::Transport => ("no answer".to_owned(), true),
        SdkOutcome::Construction => ("request could not be built".to_owned(), false),
    }
}

pub(crate) fn sdk_outcome<E>(
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::http::Response,
    >,
) -> SdkOutcome<'_>
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    match err {
        SdkError::ServiceError(service) => SdkOutcome::Service(AwsErrorFacts {
            status: Some(service.raw().status().as_u16()),
            code: service.err().code(),
            message: service.err().message(),
        }),
        SdkError::ConstructionFailure(_) => SdkOutcome::Construction,
        _ => SdkOutcome::Transport,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(status: u16, code: &'static str, message: &'static str) -> AwsErrorFacts<'static> {
        AwsErrorFacts {
            status: Some(status),
            code: (!code.is_empty()).then_some(code),
            message: Some(message),
        }
    }

    #[test]
    fn put_errors_map_to_contract_codes() {
        use FailureCode::*;
        for (f, expect) in [
            (
                facts(412, "PreconditionFailed", ""),
                PutFailure::AlreadyPresent,
            ),
            (
                facts(404, "NoSuchBucket", ""),
                PutFailure::Permanent(BucketNotFound),
            ),
            (
                facts(301, "PermanentRedirect", ""),
                PutFailure::Permanent(BucketWrongRegion),
            ),
            (facts(301, "", ""), PutFailure::Permanent(BucketWrongRegion)),
            (
                facts(400, "AuthorizationHeaderMalformed", ""),
                PutFailure::Permanent(BucketWrongRegion),
            ),
            (
                facts(403, "AccessDenied", "Access Denied"),
                PutFailure::Permanent(PutObjectDenied),
            ),
            (facts(403, "", ""), PutFailure::Permanent(PutObjectDenied)),
            (
                facts(
                    403,
                    "AccessDenied",
                    "User is not authorized to perform: kms:GenerateDataKey",
                ),
                PutFailure::Permanent(KmsDenied),
            ),
            (
                facts(400, "KMS.DisabledException", ""),
                PutFailure::Permanent(KmsDenied),
            ),
            (
                facts(400, "KMS.NotFoundException", ""),
                PutFailure::Permanent(KmsDenied),
            ),
            (facts(503, "SlowDown", ""), PutFailure::Transient),
            (facts(500, "InternalError", ""), PutFailure::Transient),
            (facts(502, "", ""), PutFailure::Transient),
            (
                facts(409, "ConditionalRequestConflict", ""),
                PutFailure::Transient,
            ),
            (
                facts(400, "ExpiredToken", ""),
                PutFailure::ExpiredCredentials,
            ),
            (
                facts(400, "InvalidArgument", ""),
                PutFailure::Permanent(PutObjectFailed),
            ),
        ] {
            assert_eq!(classify_put(&f), expect, "{f:?}");
        }
    }

    #[test]
    fn denials_name_the_policy_that_refused() {
        let user = "User: arn:aws:sts::111122223333:assumed-role/stored-messages-acme/sm is not authorized to perform: s3:PutObject on resource: \"arn:aws:s3:::b/k\"";
        for (tail, expect) in [
            (
                " with an explicit deny in a resource-based policy",
                Some(DeniedBy::ResourcePolicy),
            ),
            (
                " with an explicit deny in an identity-based policy",
                Some(DeniedBy::IdentityPolicy),
            ),
            (
                " because no identity-based policy allows the s3:PutObject action",
                Some(DeniedBy::IdentityPolicy),
            ),
            (
                " because no session policy allows the s3:PutObject action",
                Some(DeniedBy::SessionPolicy),
            ),
            (
                " with an explicit deny in a session policy",
                Some(DeniedBy::SessionPolicy),
            ),
            (
                " with an explicit deny in a service control policy",
                Some(DeniedBy::OrganizationPolicy),
            ),
            (
                " because no resource-based policy allows the kms:GenerateDataKey action",
                Some(DeniedBy::ResourcePolicy),
            ),
            (
                " with an explicit deny in a permissions boundary",
                Some(DeniedBy::IdentityPolicy),
            ),
            ("", None),
        ] {
            assert_eq!(
                DeniedBy::from_message(&format!("{user}{tail}")),
                expect,
                "{tail}"
            );
        }
        assert_eq!(DeniedBy::from_message("Access Denied"), None);
    }

    #[test]
    fn throttling_that_mentions_kms_is_transient_not_kms_denied() {
        // Real-setups B08: KMS quota exhaustion surfaces as an S3 503.
        assert_eq!(
            classify_put(&facts(
                503,
                "SlowDown",
                "Please reduce your request rate for operations involving AWS KMS."
            )),
            PutFailure::Transient
        );
        assert_eq!(
            classify_put(&facts(
                429,
                "ServiceUnavailable",
                "Reduce your concurrent request rate for the same object."
            )),
            PutFailure::Transient
        );
    }

    #[test]
    fn sts_errors() {
        assert_eq!(
            classify_sts(&facts(403, "AccessDenied", "")),
            StsFailure::Denied
        );
        assert_eq!(classify_sts(&facts(403, "", "")), StsFailure::Denied);
        assert_eq!(
            classify_sts(&facts(400, "Throttling", "")),
            StsFailure::Transient
        );
        assert_eq!(classify_sts(&facts(500, "", "")), StsFailure::Transient);
        assert_eq!(
            classify_sts(&facts(403, "RegionDisabledException", "")),
            StsFailure::Denied
        );
        assert_eq!(
            classify_sts(&facts(400, "RegionDisabledException", "")),
            StsFailure::Failed
        );
        assert_eq!(
            classify_sts(&facts(400, "MalformedPolicyDocument", "")),
            StsFailure::Failed
        );
    }
}
