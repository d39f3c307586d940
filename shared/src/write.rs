//! One write to a destination, whatever its kind: the encoded object and
//! how the write ended. A destination kind (`crate::s3`) sends it; the
//! archive and health flows decide on the outcome alone.

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Compress, Crc, FlushCompress, Status};
use serde::{Deserialize, Serialize};

use crate::credentials::CredentialsError;
use crate::failure::{DeniedBy, FailureCode};

/// How an object's bytes are encoded (CONTRACT section 3, `compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    Gzip,
    None,
}

/// What an object holds (its `Content-Type`): one JSON document (a
/// message, a probe), or one JSON document per line (an events object,
/// CONTRACT section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentType {
    #[default]
    Json,
    Ndjson,
}

impl ContentType {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Json => "application/json",
            ContentType::Ndjson => "application/x-ndjson",
        }
    }

    /// The type an object was stored with (a parked object read back):
    /// anything but NDJSON's is JSON, what every object before events had.
    pub fn from_header(value: Option<&str>) -> Self {
        match value {
            Some(v) if v == ContentType::Ndjson.as_str() => ContentType::Ndjson,
            _ => ContentType::Json,
        }
    }
}

/// The bytes of one object and the `Content-Type` and `Content-Encoding`
/// they need.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub body: Bytes,
    pub content_type: ContentType,
    pub content_encoding: Option<&'static str>,
}

impl Encoded {
    /// An object as stored with these headers (a parked object read back):
    /// `gzip` is the one encoding we write.
    pub fn stored(body: Bytes, content_type: Option<&str>, content_encoding: Option<&str>) -> Self {
        Self {
            body,
            content_type: ContentType::from_header(content_type),
            content_encoding: (content_encoding == Some("gzip")).then_some("gzip"),
        }
    }
}

/// Encodes a JSON document for a destination's compression setting. Level 1:
/// JSON and HTML shrink 5-10x even there, and CPU is our cost per message.
pub fn encode(json: &[u8], compression: Compression) -> Encoded {
    encode_as(json, ContentType::Json, compression)
}

/// Encodes an object of `content_type` for a destination's compression.
pub fn encode_as(bytes: &[u8], content_type: ContentType, compression: Compression) -> Encoded {
    match compression {
        Compression::None => Encoded {
            body: Bytes::copy_from_slice(bytes),
            content_type,
            content_encoding: None,
        },
        Compression::Gzip => Encoded {
            body: Bytes::from(gzip(bytes).unwrap_or_else(|| gzip_fresh(bytes))),
            content_type,
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

    /// The code as the destination's `auth` reads it: S3's
    /// `InvalidAccessKeyId`/`SignatureDoesNotMatch` is `access_key_invalid`
    /// for a customer's key, but a role session S3 refuses is the role's
    /// write denied (`put_object_denied`): a role customer has no key to fix.
    pub fn for_auth(mut self, role: bool) -> Self {
        if role && self.code == FailureCode::AccessKeyInvalid {
            self.code = FailureCode::PutObjectDenied;
        }
        self
    }

    pub(crate) fn transient(code: FailureCode, message: impl Into<String>) -> Self {
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
            CredentialsError::SecretUnavailable(_) => FailureCode::PutObjectFailed,
            CredentialsError::SecretGone => FailureCode::AccessKeyInvalid,
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
