//! A backfill's manifest: the NDJSON (or `.ndjson.gz`) objects the sending
//! platform exported under `{org_id}/...` in `STAGING_BUCKET` (CONTRACT
//! section 5), and how one is read: as a stream, in bounded chunks of whole
//! lines, from a checkpoint, never whole.

use std::io::Write;

use bytes::Bytes;
use flate2::write::MultiGzDecoder;
use serde::{Deserialize, Serialize};

use crate::ids::OrgId;

/// Why a manifest prefix was refused. Names the rule, not the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ManifestPrefixError {
    #[error("manifest_prefix must start with your organisation's folder, \"{{org_id}}/\"")]
    OutsideOrg,
    #[error("manifest_prefix must be at most 1024 bytes without control characters or \".\"/\"..\" segments")]
    Shape,
}

/// A key prefix in `STAGING_BUCKET` inside one org's folder: the only way
/// a tenant names what a backfill reads. It starts with `{org_id}/` of the
/// authorizer's org, so it never reaches another org's exports (org ids
/// are `[A-Za-z0-9_-]`: `acme/` is never a prefix of `acme-2/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ManifestPrefix(String);

impl ManifestPrefix {
    /// S3 keys are at most 1024 bytes (S3 User Guide, "Naming objects").
    const MAX_BYTES: usize = 1024;

    /// # Errors
    /// [`ManifestPrefixError`] when `value` is outside `org`'s folder or not
    /// a usable key prefix.
    pub fn parse(org: &OrgId, value: &str) -> Result<Self, ManifestPrefixError> {
        let inside = value
            .strip_prefix(org.as_str())
            .is_some_and(|rest| rest.starts_with('/'));
        if !inside {
            return Err(ManifestPrefixError::OutsideOrg);
        }
        let shape = value.len() <= Self::MAX_BYTES
            && !value.chars().any(char::is_control)
            && !value.split('/').any(|s| s == "." || s == "..");
        if !shape {
            return Err(ManifestPrefixError::Shape);
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the prefix lies in `org`'s folder (a stored job is checked
    /// again on load).
    pub fn belongs_to(&self, org: &OrgId) -> bool {
        Self::parse(org, &self.0).is_ok()
    }

    /// Whether `key` is under this prefix.
    pub fn contains(&self, key: &str) -> bool {
        key.starts_with(&self.0)
    }
}

/// How a manifest object is encoded, from its name: `.ndjson.gz` is gzip
/// (one or several members), `.ndjson` is plain; anything else under the
/// prefix is not part of the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestEncoding {
    Plain,
    Gzip,
}

impl ManifestEncoding {
    pub fn of(key: &str) -> Option<Self> {
        if key.ends_with(".ndjson.gz") {
            Some(Self::Gzip)
        } else if key.ends_with(".ndjson") {
            Some(Self::Plain)
        } else {
            None
        }
    }
}

/// How much one chunk holds: what a backfill reads, writes and commits
/// at once. A line longer than `max_line_bytes` is never held whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkBounds {
    pub max_lines: usize,
    pub max_bytes: usize,
    pub max_line_bytes: usize,
}

/// One line of a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A record's text, for the archive pipeline to parse.
    Text(String),
    /// Longer than [`ChunkBounds::max_line_bytes`]: counted as malformed,
    /// its bytes dropped as they stream by.
    TooLong,
    /// Not UTF-8, so not JSON: counted as malformed.
    NotUtf8,
}

/// Whole lines of one manifest object and where they end.
#[derive(Debug, Default)]
pub struct Chunk {
    /// Each non-blank line with its number in the object (from 0).
    pub lines: Vec<(u64, Line)>,
    /// The checkpoint after this chunk: bytes of the object's text consumed.
    pub end_offset: u64,
    /// Lines (blank ones too) consumed after this chunk.
    pub end_lines: u64,
    /// Nothing follows: the object is done once this chunk is committed.
    pub end_of_file: bool,
}

/// Why a manifest object could not be read on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The stream broke (a reset, a timeout): retrying can fix it.
    #[error("the manifest object stopped streaming")]
    Stream,
    /// The gzip data is corrupt or truncated: no retry will read past it.
    #[error("the manifest object is not valid gzip")]
    Corrupt,
}

/// Compressed bytes fed to the gzip decoder at once: deflate expands at
/// most about 1,032 times, so one step is at most about 8 MiB of text.
const GZIP_STEP: usize = 8 * 1024;

/// Where the bytes come from: an S3 body as it streams, or (in tests)
/// pieces in memory.
pub enum Source {
    S3(aws_sdk_s3::primitives::ByteStream),
    #[cfg(test)]
    Pieces(std::collections::VecDeque<Bytes>),
}

impl Source {
    async fn next(&mut self) -> Option<Result<Bytes, ReadError>> {
        match self {
            Self::S3(stream) => stream
                .next()
                .await
                .map(|piece| piece.map_err(|_| ReadError::Stream)),
            #[cfg(test)]
            Self::Pieces(pieces) => pieces.pop_front().map(Ok),
        }
    }
}

/// Reads one manifest object as chunks of whole lines, from a checkpoint.
///
/// A plain object is fetched from its checkpoint (an S3 `Range`); a gzip
/// object is decompressed from its start and the text before the checkpoint
/// dropped as it streams by (a gzip stream cannot be entered midway), so
/// resuming costs CPU, never memory. At most one network piece's text, one
/// chunk and one line are held at once.
pub struct ManifestReader {
    source: Source,
    gzip: Option<MultiGzDecoder<Vec<u8>>>,
    /// Compressed bytes of the current piece not fed to the decoder yet.
    unfed: Bytes,
    /// Whether the decoder was given any byte (an empty `.ndjson.gz` is
    /// an empty export, not corrupt gzip).
    fed: bool,
    /// Text not yet consumed starts at `pending[start]`.
    pending: Vec<u8>,
    start: usize,
    /// Text offset of `pending[start]`.
    offset: u64,
    /// Lines consumed before `pending[start]`.
    lines: u64,
    /// Text still to drop before the checkpoint (gzip resumes).
    to_skip: u64,
    source_done: bool,
    /// Inside an over-long line, dropping its bytes until its newline.
    dropping: bool,
}

impl ManifestReader {
    /// A reader of `source`, which starts at text offset `source_offset`
    /// (where a `Range` request began; 0 for gzip), positioned at the
    /// checkpoint `(offset, lines)`.
    pub fn new(
        source: Source,
        encoding: ManifestEncoding,
        source_offset: u64,
        offset: u64,
        lines: u64,
    ) -> Self {
        Self {
            source,
            gzip: (encoding == ManifestEncoding::Gzip).then(|| MultiGzDecoder::new(Vec::new())),
            unfed: Bytes::new(),
            fed: false,
            pending: Vec::new(),
            start: 0,
            offset,
            lines,
            to_skip: offset.saturating_sub(source_offset),
            source_done: false,
            dropping: false,
        }
    }

    /// The checkpoint after the last chunk returned.
    pub fn position(&self) -> (u64, u64) {
        (self.offset, self.lines)
    }

    /// The next chunk: up to `bounds` of whole lines. At the end of the
    /// object a chunk (possibly empty) says `end_of_file`.
    ///
    /// # Errors
    /// [`ReadError`]; the checkpoint is unchanged by a chunk that fails.
    pub async fn next_chunk(&mut self, bounds: ChunkBounds) -> Result<Chunk, ReadError> {
        let mut chunk = Chunk::default();
        let mut bytes = 0usize;
        let mut scan = self.start;
        while chunk.lines.len() < bounds.max_lines && bytes < bounds.max_bytes {
            if let Some(found) = self.pending[scan..].iter().position(|b| *b == b'\n') {
                let end = scan + found;
                bytes += end - self.start;
                self.take_line(end, end + 1, bounds, &mut chunk);
                scan = self.start;
                continue;
            }
            scan = self.pending.len();
            if self.pending.len() - self.start > bounds.max_line_bytes {
                // An over-long line: drop what is held, and the rest of it
                // as it streams by; it is counted when its newline comes.
                self.offset += (self.pending.len() - self.start) as u64;
                self.pending.clear();
                self.start = 0;
                scan = 0;
                self.dropping = true;
            }
            if self.source_done {
                let end = self.pending.len();
                if end > self.start || self.dropping {
                    self.take_line(end, end, bounds, &mut chunk);
                }
                chunk.end_of_file = true;
                break;
            }
            // Room for the next piece: drop the consumed text first.
            self.pending.drain(..self.start);
            scan -= self.start;
            self.start = 0;
            self.fill().await?;
        }
        chunk.end_offset = self.offset;
        chunk.end_lines = self.lines;
        Ok(chunk)
    }

    /// Consumes the line `pending[start..end]` (`next` is where the next
    /// one starts), adding it to the chunk unless it is blank.
    fn take_line(&mut self, end: usize, next: usize, bounds: ChunkBounds, chunk: &mut Chunk) {
        let raw = &self.pending[self.start..end];
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let number = self.lines;
        let line = if std::mem::take(&mut self.dropping) || raw.len() > bounds.max_line_bytes {
            Some(Line::TooLong)
        } else if raw.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(match std::str::from_utf8(raw) {
                Ok(text) => Line::Text(text.to_owned()),
                Err(_) => Line::NotUtf8,
            })
        };
        if let Some(line) = line {
            chunk.lines.push((number, line));
        }
        self.offset += (next - self.start) as u64;
        self.lines += 1;
        self.start = next;
    }

    /// Appends more text to `pending` (minus what is skipped or dropped):
    /// a plain piece whole, or what [`GZIP_STEP`] compressed bytes of a
    /// gzip piece decompress to, so text held at once stays bounded
    /// whatever the compression ratio; at the end of the source, finishes
    /// the gzip stream.
    async fn fill(&mut self) -> Result<(), ReadError> {
        if self.gzip.is_some() && self.unfed.is_empty() {
            match self.source.next().await {
                Some(piece) => self.unfed = piece?,
                None => self.source_done = true,
            }
        }
        let text = match &mut self.gzip {
            Some(decoder) if !self.unfed.is_empty() => {
                let step = self.unfed.split_to(self.unfed.len().min(GZIP_STEP));
                self.fed = true;
                decoder.write_all(&step).map_err(|_| ReadError::Corrupt)?;
                std::mem::take(decoder.get_mut())
            }
            Some(decoder) => {
                if self.fed {
                    decoder.try_finish().map_err(|_| ReadError::Corrupt)?;
                }
                std::mem::take(decoder.get_mut())
            }
            None => match self.source.next().await {
                Some(piece) => piece?.to_vec(),
                None => {
                    self.source_done = true;
                    Vec::new()
                }
            },
        };
        let mut text = &text[..];
        if self.to_skip > 0 {
            let skipped = text
                .len()
                .min(usize::try_from(self.to_skip).unwrap_or(usize::MAX));
            text = &text[skipped..];
            self.to_skip -= skipped as u64;
        }
        if self.dropping {
            match text.iter().position(|b| *b == b'\n') {
                // The newline stays: `next_chunk` ends the line there.
                Some(at) => {
                    self.offset += at as u64;
                    text = &text[at..];
                }
                None => {
                    self.offset += text.len() as u64;
                    return Ok(());
                }
            }
        }
        self.pending.extend_from_slice(text);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use flate2::write::GzEncoder;

    use super::*;

    const BOUNDS: ChunkBounds = ChunkBounds {
        max_lines: 3,
        max_bytes: 1 << 20,
        max_line_bytes: 64,
    };

    fn pieces(bytes: &[u8], size: usize) -> Source {
        Source::Pieces(
            bytes
                .chunks(size.max(1))
                .map(Bytes::copy_from_slice)
                .collect::<VecDeque<_>>(),
        )
    }

    fn gzip(text: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(text).unwrap();
        encoder.finish().unwrap()
    }

    /// Every chunk of a reader, resuming each from the last checkpoint in a
    /// new reader, as a new invocation would.
    async fn read_resuming(
        object: &[u8],
        encoding: ManifestEncoding,
        piece: usize,
    ) -> Vec<(u64, Line)> {
        let (mut offset, mut lines) = (0, 0);
        let mut all = Vec::new();
        loop {
            let (source, source_offset) = match encoding {
                ManifestEncoding::Plain => (pieces(&object[offset as usize..], piece), offset),
                ManifestEncoding::Gzip => (pieces(object, piece), 0),
            };
            let mut reader = ManifestReader::new(source, encoding, source_offset, offset, lines);
            let chunk = reader.next_chunk(BOUNDS).await.unwrap();
            all.extend(chunk.lines);
            (offset, lines) = (chunk.end_offset, chunk.end_lines);
            if chunk.end_of_file {
                return all;
            }
        }
    }

    fn text(lines: &[(u64, Line)]) -> Vec<(u64, String)> {
        lines
            .iter()
            .map(|(n, l)| {
                let shown = match l {
                    Line::Text(t) => t.clone(),
                    other => format!("{other:?}"),
                };
                (*n, shown)
            })
            .collect()
    }

    #[test]
    fn prefixes_stay_in_the_org_folder() {
        let org = OrgId::parse("acme").unwrap();
        assert!(ManifestPrefix::parse(&org, "acme/").is_ok());
        assert!(ManifestPrefix::parse(&org, "acme/exports/2026-11-").is_ok());
        for outside in ["acme", "acme-2/x", "other/acme/", "/acme/", "", "acm/"] {
            assert_eq!(
                ManifestPrefix::parse(&org, outside),
                Err(ManifestPrefixError::OutsideOrg),
                "{outside}"
            );
        }
        for bad in [
            "acme/../other/",
            "acme/./x",
            "acme/a\nb",
            &format!("acme/{}", "x".repeat(1100)),
        ] {
            assert_eq!(
                ManifestPrefix::parse(&org, bad),
                Err(ManifestPrefixError::Shape)
            );
        }
        let prefix = ManifestPrefix::parse(&org, "acme/exp").unwrap();
        assert!(prefix.contains("acme/exp/part-1.ndjson"));
        assert!(!prefix.contains("acme/other.ndjson"));
        assert!(!prefix.belongs_to(&OrgId::parse("acme-2").unwrap()));
        assert_eq!(
            ManifestEncoding::of("a/b.ndjson.gz"),
            Some(ManifestEncoding::Gzip)
        );
        assert_eq!(
            ManifestEncoding::of("a/b.ndjson"),
            Some(ManifestEncoding::Plain)
        );
        assert_eq!(ManifestEncoding::of("a/b.json"), None);
        assert_eq!(ManifestEncoding::of("a/_SUCCESS"), None);
    }

    #[tokio::test]
    async fn chunks_resume_from_their_checkpoint_plain_and_gzip() {
        let object = b"{\"a\":1}\n\n{\"a\":2}\r\n{\"a\":3}\n{\"a\":4}\n  \n{\"a\":5}\n{\"a\":6}";
        let expected: Vec<(u64, String)> = [(0, 1), (2, 2), (3, 3), (4, 4), (6, 5), (7, 6)]
            .iter()
            .map(|(n, a)| (*n, format!("{{\"a\":{a}}}")))
            .collect();
        for piece in [1, 2, 5, 7, 1000] {
            let plain = read_resuming(object, ManifestEncoding::Plain, piece).await;
            assert_eq!(text(&plain), expected, "plain, pieces of {piece}");
            let zipped = gzip(object);
            let gz = read_resuming(&zipped, ManifestEncoding::Gzip, piece).await;
            assert_eq!(text(&gz), expected, "gzip, pieces of {piece}");
        }
    }

    #[tokio::test]
    async fn concatenated_gzip_members_are_one_object() {
        let mut object = gzip(b"{\"a\":1}\n{\"a\":2}\n");
        object.extend(gzip(b"{\"a\":3}\n"));
        let lines = read_resuming(&object, ManifestEncoding::Gzip, 4).await;
        assert_eq!(lines.len(), 3);
    }

    #[tokio::test]
    async fn long_lines_are_dropped_as_they_stream_and_counted() {
        let long = "x".repeat(200);
        let object = format!("{{\"a\":1}}\n{long}\n{{\"a\":2}}\n{long}");
        for piece in [3, 50, 1000] {
            let lines = read_resuming(object.as_bytes(), ManifestEncoding::Plain, piece).await;
            assert_eq!(
                text(&lines),
                vec![
                    (0, "{\"a\":1}".to_owned()),
                    (1, "TooLong".to_owned()),
                    (2, "{\"a\":2}".to_owned()),
                    (3, "TooLong".to_owned()),
                ],
                "pieces of {piece}"
            );
        }
    }

    #[tokio::test]
    async fn bad_bytes_are_lines_and_bad_gzip_is_an_error() {
        let object = b"{\"a\":1}\n\xff\xfe\n";
        let lines = read_resuming(object, ManifestEncoding::Plain, 100).await;
        assert_eq!(lines[1], (1, Line::NotUtf8));
        let mut truncated = gzip(b"{\"a\":1}\n{\"a\":2}\n");
        truncated.truncate(truncated.len() - 6);
        let mut reader =
            ManifestReader::new(pieces(&truncated, 8), ManifestEncoding::Gzip, 0, 0, 0);
        let mut result = Ok(Chunk::default());
        for _ in 0..3 {
            result = reader.next_chunk(BOUNDS).await;
            if result.as_ref().map_or(true, |c| c.end_of_file) {
                break;
            }
        }
        assert_eq!(result.err(), Some(ReadError::Corrupt));
    }

    #[tokio::test]
    async fn a_chunk_ends_at_its_byte_bound_on_a_line_boundary() {
        let object = "{\"a\":11}\n".repeat(10);
        let bounds = ChunkBounds {
            max_lines: 100,
            max_bytes: 20,
            max_line_bytes: 64,
        };
        let mut reader = ManifestReader::new(
            pieces(object.as_bytes(), 7),
            ManifestEncoding::Plain,
            0,
            0,
            0,
        );
        let chunk = reader.next_chunk(bounds).await.unwrap();
        assert_eq!(
            chunk.lines.len(),
            3,
            "stops at the first line past 20 bytes"
        );
        assert_eq!((chunk.end_offset, chunk.end_lines), (27, 3));
        assert!(!chunk.end_of_file);
    }
}
