//! The S3 `PutObject` every archived object and probe goes out as
//! (CONTRACT section 4), and what its failure means.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use super::{BucketName, Encryption};
use crate::arn::AccountId;
use crate::credentials::Identity;
use crate::failure::{classify_put, sdk_outcome, DeniedBy, FailureCode, PutFailure, SdkOutcome};
use crate::write::{Encoded, WriteError, Written};

/// Where and how to write.
#[derive(Debug, Clone, Copy)]
pub struct PutTarget<'a> {
    pub bucket: &'a BucketName,
    pub key: &'a str,
    /// The destination's account (the role ARN's, or the access key's): S3
    /// refuses the write if the bucket is anyone else's.
    pub owner: &'a AccountId,
    pub encryption: &'a Encryption,
    /// `If-None-Match: *`: archived objects are never overwritten.
    pub write_once: bool,
}

/// Writes one object with the session's identity.
///
/// Besides the SDK's retries of throttling and 5xx, at most one retry of our
/// own per write: credentials that expire between our cache check and S3
/// are refreshed; or credentials S3 refuses for the identity's own policies
/// are renewed, when [`crate::credentials::CachedCredentials::renew_after_denial`]
/// allows it (revoked sessions), before the denial is reported as permanent.
pub async fn put(
    session: &Identity,
    target: PutTarget<'_>,
    body: &Encoded,
) -> Result<Written, WriteError> {
    let expired_twice =
        || WriteError::transient(FailureCode::PutObjectFailed, "credentials expired twice");
    for attempt in 0..2 {
        let credentials = session.credentials.get().await?;
        match put_once(&session.s3, target, body).await {
            Ok(written) => return Ok(written),
            Err(PutAttempt::Expired) if attempt == 0 => session.credentials.invalidate().await,
            Err(PutAttempt::Expired) => return Err(expired_twice()),
            Err(PutAttempt::Failed(err))
                if attempt == 0
                    && err.may_pass_with_a_new_session()
                    && session
                        .credentials
                        .renew_after_denial(credentials.access_key_id())
                        .await => {}
            Err(PutAttempt::Failed(err)) => return Err(err),
        }
    }
    Err(expired_twice())
}

enum PutAttempt {
    Expired,
    Failed(WriteError),
}

async fn put_once(
    s3: &aws_sdk_s3::Client,
    target: PutTarget<'_>,
    body: &Encoded,
) -> Result<Written, PutAttempt> {
    let mut request = s3
        .put_object()
        .bucket(target.bucket.as_str())
        .key(target.key)
        .expected_bucket_owner(target.owner.as_str())
        .content_type(body.content_type.as_str())
        .set_content_encoding(body.content_encoding.map(str::to_owned))
        .body(ByteStream::from(body.body.clone()));
    if target.write_once {
        request = request.if_none_match("*");
    }
    request = match target.encryption {
        Encryption::BucketDefault => request,
        Encryption::Aes256 => request.server_side_encryption(ServerSideEncryption::Aes256),
        Encryption::Kms { kms_key_arn } => request
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(kms_key_arn.as_str()),
    };
    let err = match request.send().await {
        Ok(_) => return Ok(Written::Created),
        Err(err) => err,
    };
    let facts = match sdk_outcome(&err) {
        SdkOutcome::Service(facts) => facts,
        SdkOutcome::Transport => {
            return Err(PutAttempt::Failed(WriteError::transient(
                FailureCode::PutObjectFailed,
                "S3 did not answer in time",
            )))
        }
        SdkOutcome::Construction => {
            return Err(PutAttempt::Failed(WriteError {
                code: FailureCode::PutObjectFailed,
                message: "the request could not be built".into(),
                retryable: false,
                bucket_region: None,
                denied_by: None,
            }))
        }
    };
    let code_text = facts.code.unwrap_or("no error code").to_owned();
    match classify_put(&facts) {
        PutFailure::AlreadyPresent => Ok(Written::AlreadyPresent),
        PutFailure::ExpiredCredentials => Err(PutAttempt::Expired),
        PutFailure::Transient => Err(PutAttempt::Failed(WriteError::transient(
            FailureCode::PutObjectFailed,
            format!("S3 answered {code_text}"),
        ))),
        PutFailure::Permanent(code) => Err(PutAttempt::Failed(WriteError {
            code,
            message: format!("S3 answered {code_text}"),
            retryable: false,
            bucket_region: bucket_region(&err),
            denied_by: facts.message.and_then(DeniedBy::from_message),
        })),
    }
}

/// The bucket's real region from `x-amz-bucket-region`, or from the
/// `<Region>` of an `AuthorizationHeaderMalformed`/`PermanentRedirect` body.
fn bucket_region<E>(
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::http::Response,
    >,
) -> Option<String> {
    let raw = err.raw_response()?;
    let valid = |r: &str| crate::destination::Region::parse(r).ok().map(String::from);
    if let Some(region) = raw.headers().get("x-amz-bucket-region").and_then(valid) {
        return Some(region);
    }
    let body = std::str::from_utf8(raw.body().bytes()?).ok()?;
    let start = body.find("<Region>")? + "<Region>".len();
    let end = start + body[start..].find("</Region>")?;
    valid(&body[start..end])
}
