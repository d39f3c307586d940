//! One write to a customer bucket: the request every object and probe goes
//! out as, and what its failure means.

use std::cell::RefCell;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use bytes::Bytes;
use flate2::{Compress, Crc, FlushCompress, Status};

use crate::arn::AccountId;
use crate::credentials::{CredentialsError, Identity};
use crate::destination::{BucketName, Compression, Encryption};
use crate::failure::{classify_put, sdk_outcome, DeniedBy, FailureCode, PutFailure, SdkOutcome};

/// The bytes of one object and the `Content-Encoding` they need.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub body: Bytes,
    pub content_encoding: Option<&'static str>,
}

/// Encodes a JSON document for a destination's compression setting. Level 1:
/// JSON and HTML shrink 5-10x even there, and CPU is our cost per message.
pub fn encode(json: &[u8], compression: Compression) -> Encoded {
    match compression {
        Compression::None => Encoded {
            body: Bytes::copy_from_slice(json),
            content_encoding: None,
        },
        Compression::Gzip => Encoded {
            body: Bytes::from(gzip(json).unwrap_or_else(|| gzip_fresh(json))),
            content_encoding: Some("gzip"),
        },
    }
}

thread_local! {
    /// One deflate state per thread, reset between objects. A fresh one
    /// allocates and zeroes some 300 KB: for an 8 KB message that was most of
    /// our CPU per message (see the README's performance section).
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(flate2::Compression::fast(), false));
}

/// RFC 1952 framing around a raw deflate stream: a fixed 10-byte header
/// (no name, no time; XFL 4 = fastest; OS unknown), then CRC-32 and length.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255];

fn gzip(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() / 3 + 64);
    out.extend_from_slice(&GZIP_HEADER);
    let finished = DEFLATE.with(|deflate| {
        let mut deflate = deflate.try_borrow_mut().ok()?;
        deflate.reset();
        loop {
            let consumed = usize::try_from(deflate.total_in()).ok()?;
            // Writes only into spare capacity; Finish until the stream ends.
            match deflate.compress_vec(input.get(consumed..)?, &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => return Some(()),
                Ok(_) => out.reserve(out.capacity().max(64)),
                Err(_) => return None,
            }
        }
    });
    finished?;
    let mut crc = Crc::new();
    crc.update(input);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(input.len() as u32).to_le_bytes());
    Some(out)
}

/// A fresh encoder: only if the reused state is somehow unusable, so an
/// object is never shipped truncated.
fn gzip_fresh(input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(input);
    gz.finish().unwrap_or_default()
}

/// Where and how to write.
#[derive(Debug, Clone, Copy)]
pub struct PutTarget<'a> {
    pub bucket: &'a BucketName,
    pub key: &'a str,
    /// The role ARN's account: S3 refuses the write if the bucket is anyone else's.
    pub owner: &'a AccountId,
    pub encryption: &'a Encryption,
    /// `If-None-Match: *`: archived objects are never overwritten.
    pub write_once: bool,
}

/// A successful write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    /// The object was already there (a redelivery): nothing was rewritten.
    AlreadyPresent,
}

/// A failed write, with the contract code and whether a retry can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct WriteError {
    pub code: FailureCode,
    pub message: String,
    pub retryable: bool,
    /// The bucket's real region, when S3 named it.
    pub bucket_region: Option<String>,
    /// For a denial, the policy S3 said refused it.
    pub denied_by: Option<DeniedBy>,
}

impl WriteError {
    /// Whether a fresh session might be allowed what this one was refused:
    /// a denial by the identity's own policies (where "Revoke active
    /// sessions" puts its Deny), or one S3 does not explain. A bucket,
    /// organisation or session policy, a missing bucket or a missing KMS key
    /// refuses a new session just the same.
    pub fn may_pass_with_a_new_session(&self) -> bool {
        let denied = match self.code {
            FailureCode::PutObjectDenied => true,
            // A KMS.NotFoundException is no denial; a kms: action refused is.
            FailureCode::KmsDenied => self.denied_by.is_some(),
            _ => false,
        };
        denied && matches!(self.denied_by, None | Some(DeniedBy::IdentityPolicy))
    }

    fn transient(code: FailureCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retryable: true,
            bucket_region: None,
            denied_by: None,
        }
    }
}

impl From<CredentialsError> for WriteError {
    fn from(err: CredentialsError) -> Self {
        let code = match err {
            CredentialsError::Denied => FailureCode::AssumeRoleDenied,
            _ => FailureCode::AssumeRoleFailed,
        };
        Self {
            code,
            retryable: err.is_retryable(),
            message: err.to_string(),
            bucket_region: None,
            denied_by: None,
        }
    }
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
        .content_type("application/json")
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn gzip_round_trips_and_is_labelled() {
        let json = br#"{"message":{"html_body":"<p>hello hello hello hello</p>"}}"#;
        let encoded = encode(json, Compression::Gzip);
        assert_eq!(encoded.content_encoding, Some("gzip"));
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&encoded.body[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, json);
        let plain = encode(json, Compression::None);
        assert_eq!(plain.content_encoding, None);
        assert_eq!(&plain.body[..], json);
    }

    #[test]
    fn reused_deflate_state_gives_whole_independent_streams() {
        // Large, incompressible-ish and empty inputs, in turn on one thread:
        // each must decode alone, so no state leaks between objects.
        let big: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for input in [&big[..], b"", br#"{"a":"short"}"#, &big[..1000]] {
            let encoded = encode(input, Compression::Gzip);
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&encoded.body[..])
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, input);
        }
    }
}
