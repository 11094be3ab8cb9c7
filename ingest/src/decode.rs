//! Streaming decompression of one object: detects gzip, zstd or plain input by its magic
//! bytes (never by its name), decompresses it as a bounded stream, and enforces the
//! per-object limits on decompressed size and compression ratio. It also owns the mapping
//! from a read error to the [`ObjectFailure`] that the no-loss rule records for the object.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::ObjectFailure;
use crate::limits::Limits;
use crate::source::CountingReader;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Read-buffer size on both sides of a decompressor. Large enough that most records sit
/// inside one buffer (the framer's fast path) and small enough to keep memory per object
/// flat; it also bounds how far the compressed byte count runs ahead of the decompressor.
const BUF_CAPACITY: usize = 64 * 1024;

/// The compression an object was found to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    Plain,
}

impl Compression {
    /// Detects the compression from an object's first bytes (up to four are looked at).
    pub fn detect(magic: &[u8]) -> Compression {
        if magic.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else if magic.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else {
            Compression::Plain
        }
    }

    /// Lower-case name used in failure reasons: `gzip`, `zstd` or `plain`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Plain => "plain",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Peeks the magic bytes and returns a buffered reader of the decompressed stream.
///
/// The reader enforces `limits.max_decompressed_bytes` and, for compressed input,
/// `limits.max_ratio` once more than `limits.ratio_grace_bytes` have been decompressed.
/// Every error it returns (apart from `Interrupted`) carries an [`ObjectFailure`] as its
/// inner error and is sticky: later reads return the same failure. Use [`object_failure`]
/// to turn it into the object's dead-letter reason.
pub fn decompress<R: Read + Send + 'static>(
    mut input: R,
    limits: &Limits,
) -> io::Result<(Compression, Box<dyn BufRead + Send>)> {
    let mut magic = [0u8; 4];
    let peeked = read_up_to(&mut input, &mut magic).map_err(|e| {
        let failure = ObjectFailure::decode(format!("read error: {e}"), None);
        io::Error::new(e.kind(), failure)
    })?;
    let compression = Compression::detect(&magic[..peeked]);

    // The bytes taken from the source, for the compression-ratio check: shared through an
    // atomic because the counter sits under the decoder, out of reach of the limiting
    // reader above it.
    let compressed = Arc::new(AtomicU64::new(0));
    let source = CountingReader::new(
        TagSourceErrors(io::Cursor::new(magic[..peeked].to_vec()).chain(input)),
        Arc::clone(&compressed),
    );
    let decoder: Box<dyn Read + Send> = match compression {
        Compression::Gzip => {
            Box::new(flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(BUF_CAPACITY, source)))
        }
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(BUF_CAPACITY, source)).map_err(|e| {
                let failure = ObjectFailure::decode(format!("zstd decoder: {e}"), None);
                io::Error::other(failure)
            })?,
        ),
        // Plain input is read straight into the outer buffer: no second copy.
        Compression::Plain => Box::new(source),
    };
    let limited = LimitedReader {
        inner: decoder,
        compression,
        max_decompressed: limits.max_decompressed_bytes,
        max_ratio: limits.max_ratio,
        ratio_grace: limits.ratio_grace_bytes,
        produced: 0,
        compressed,
        failed: None,
    };
    Ok((compression, Box::new(BufReader::with_capacity(BUF_CAPACITY, limited))))
}

/// Turns any error from reading an object into the object's failure, `offset` being the
/// position in the decompressed stream where reading stopped (used unless the error
/// already carries one).
///
/// Failures raised by [`decompress`]'s reader (limits, truncated or corrupt compressed
/// data, read errors of the source) pass through with their reason. Other errors are
/// classified by kind: corrupt data keeps the underlying message, a premature end becomes
/// "stream truncated", anything else "read error".
pub fn object_failure(err: &io::Error, offset: u64) -> ObjectFailure {
    let mut failure = classify(err, None);
    if failure.offset.is_none() {
        failure.offset = Some(offset);
    }
    failure
}

/// Maps an error to a failure reason. `compression` is known only inside the decompressing
/// reader; there a bare `UnexpectedEof` or corrupt-data error comes from the decoder
/// itself, because errors of the source are tagged with [`SourceError`] on their way in.
fn classify(err: &io::Error, compression: Option<Compression>) -> ObjectFailure {
    if let Some(inner) = err.get_ref() {
        if let Some(failure) = inner.downcast_ref::<ObjectFailure>() {
            return failure.clone();
        }
        if let Some(SourceError(source)) = inner.downcast_ref::<SourceError>() {
            return ObjectFailure::decode(format!("read error: {source}"), None);
        }
    }
    match (compression, err.kind()) {
        (Some(Compression::Plain), _) => ObjectFailure::decode(format!("read error: {err}"), None),
        (Some(c), io::ErrorKind::UnexpectedEof) => ObjectFailure::decode(
            format!("{c} stream truncated ({err}): the object ends before its compressed data does"),
            None,
        ),
        (Some(c), _) => ObjectFailure::decode(format!("{c} stream is corrupt: {err}"), None),
        (None, io::ErrorKind::UnexpectedEof) => ObjectFailure::decode(format!("stream truncated: {err}"), None),
        (None, io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput) => {
            ObjectFailure::decode(err.to_string(), None)
        }
        (None, _) => ObjectFailure::decode(format!("read error: {err}"), None),
    }
}

/// Reads until `buf` is full or the input ends; a short object is not an error here.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// An error of the object's source (network, disk), tagged so that it is reported as a
/// read error and not mistaken for corrupt or truncated compressed data after passing
/// through a decoder.
#[derive(Debug)]
struct SourceError(io::Error);

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SourceError {}

/// Tags the source's errors with [`SourceError`] on their way into a decoder.
struct TagSourceErrors<R>(R);

impl<R: Read> Read for TagSourceErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::Interrupted {
                // Retryable: decoders and buffers already know what to do with it.
                e
            } else {
                io::Error::new(e.kind(), SourceError(e))
            }
        })
    }
}

/// Enforces the object limits on the decompressed stream and turns every error into one
/// carrying an [`ObjectFailure`].
struct LimitedReader {
    inner: Box<dyn Read + Send>,
    compression: Compression,
    max_decompressed: u64,
    max_ratio: u64,
    ratio_grace: u64,
    produced: u64,
    compressed: Arc<AtomicU64>,
    /// Once failed, always failed: a decoder's state after an error is unspecified, and the
    /// object is failed anyway.
    failed: Option<(io::ErrorKind, ObjectFailure)>,
}

impl LimitedReader {
    fn fail(&mut self, kind: io::ErrorKind, failure: ObjectFailure) -> io::Error {
        self.failed = Some((kind, failure.clone()));
        io::Error::new(kind, failure)
    }

    fn check_limits(&self) -> Option<ObjectFailure> {
        if self.produced > self.max_decompressed {
            return Some(ObjectFailure::limit(
                format!(
                    "decompressed size passed the {}-byte limit; raise --max-decompressed-bytes \
                     if the object is genuine",
                    self.max_decompressed
                ),
                None,
            ));
        }
        if self.compression != Compression::Plain && self.produced > self.ratio_grace {
            let compressed = self.compressed.load(Ordering::Relaxed);
            if self.produced > compressed.saturating_mul(self.max_ratio) {
                return Some(ObjectFailure::limit(
                    format!(
                        "compression ratio above {}:1 after {} bytes ({} decompressed from {} \
                         {} bytes): treated as a decompression bomb",
                        self.max_ratio, self.ratio_grace, self.produced, compressed, self.compression
                    ),
                    None,
                ));
            }
        }
        None
    }
}

impl Read for LimitedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some((kind, failure)) = &self.failed {
            return Err(io::Error::new(*kind, failure.clone()));
        }
        match self.inner.read(buf) {
            Ok(n) => {
                self.produced = self.produced.saturating_add(n as u64);
                match self.check_limits() {
                    // The bytes of this read are withheld: everything handed out so far
                    // lies within the limits.
                    Some(failure) => Err(self.fail(io::ErrorKind::Other, failure)),
                    None => Ok(n),
                }
            }
            // Retryable, and the decoders leave their state intact on it.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let failure = classify(&e, Some(self.compression));
                let kind = e.kind();
                Err(self.fail(kind, failure))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RejectKind;
    use fixtures::samples::gzip;
    use proptest::prelude::*;
    use std::io::Write;

    fn zstd(data: &[u8]) -> Vec<u8> {
        zstd::stream::encode_all(data, 3).unwrap()
    }

    /// Reads everything, returning what was read before the first error and that error.
    fn read_all(mut reader: Box<dyn BufRead + Send>) -> (Vec<u8>, Option<io::Error>) {
        let mut out = Vec::new();
        loop {
            let buf = match reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return (out, Some(e)),
            };
            if buf.is_empty() {
                return (out, None);
            }
            out.extend_from_slice(buf);
            let n = buf.len();
            reader.consume(n);
        }
    }

    fn decode_all(input: Vec<u8>, limits: &Limits) -> (Compression, Vec<u8>, Option<io::Error>) {
        let (compression, reader) = decompress(io::Cursor::new(input), limits).unwrap();
        let (out, err) = read_all(reader);
        (compression, out, err)
    }

    use crate::test_support::Trickle;

    /// A source that delivers `good` and then fails like a dropped connection.
    struct Failing {
        good: io::Cursor<Vec<u8>>,
    }

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.good.read(buf)? {
                0 => Err(io::Error::new(io::ErrorKind::ConnectionReset, "connection reset by peer")),
                n => Ok(n),
            }
        }
    }

    const TEXT: &[u8] = b"{\"ts\":1,\"type\":\"a\"}\n{\"ts\":2,\"type\":\"b\"}\n";

    #[test]
    fn magic_bytes_decide_the_compression() {
        let cases: &[(&[u8], Compression)] = &[
            (b"", Compression::Plain),
            (b"\x1f", Compression::Plain),
            (b"\x1f\x8b", Compression::Gzip),
            (b"\x1f\x8b\x08\x00", Compression::Gzip),
            (b"\x28\xb5\x2f", Compression::Plain),
            (b"\x28\xb5\x2f\xfd", Compression::Zstd),
            (b"{\"a\"", Compression::Plain),
            (b"\xef\xbb\xbf{", Compression::Plain),
        ];
        for (magic, expected) in cases {
            assert_eq!(Compression::detect(magic), *expected, "{magic:?}");
        }
    }

    #[test]
    fn plain_input_passes_through_unchanged() {
        let (c, out, err) = decode_all(TEXT.to_vec(), &Limits::default());
        assert_eq!(c, Compression::Plain);
        assert_eq!(out, TEXT);
        assert!(err.is_none());
    }

    #[test]
    fn gzip_input_is_decompressed() {
        let (c, out, err) = decode_all(gzip(TEXT), &Limits::default());
        assert_eq!(c, Compression::Gzip);
        assert_eq!(out, TEXT);
        assert!(err.is_none());
    }

    #[test]
    fn gzip_named_nothing_is_detected_by_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["object", "records.ndjson", "looks-plain.txt"] {
            let path = dir.path().join(name);
            std::fs::write(&path, gzip(TEXT)).unwrap();
            let file = std::fs::File::open(&path).unwrap();
            let (c, reader) = decompress(file, &Limits::default()).unwrap();
            assert_eq!(c, Compression::Gzip, "{name}");
            let (out, err) = read_all(reader);
            assert_eq!(out, TEXT);
            assert!(err.is_none());
        }
    }

    #[test]
    fn multi_member_gzip_yields_every_member() {
        let mut input = gzip(b"{\"n\":1}\n");
        input.extend(gzip(b"{\"n\":2}\n"));
        input.extend(gzip(b""));
        input.extend(gzip(b"{\"n\":3}\n"));
        let (c, out, err) = decode_all(input, &Limits::default());
        assert_eq!(c, Compression::Gzip);
        assert_eq!(out, b"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
        assert!(err.is_none());
    }

    #[test]
    fn zstd_input_is_decompressed_including_several_frames() {
        let mut input = zstd(b"{\"n\":1}\n");
        input.extend(zstd(b"{\"n\":2}\n"));
        let (c, out, err) = decode_all(input, &Limits::default());
        assert_eq!(c, Compression::Zstd);
        assert_eq!(out, b"{\"n\":1}\n{\"n\":2}\n");
        assert!(err.is_none());
    }

    #[test]
    fn empty_input_is_plain_and_yields_nothing() {
        let (c, out, err) = decode_all(Vec::new(), &Limits::default());
        assert_eq!(c, Compression::Plain);
        assert!(out.is_empty());
        assert!(err.is_none());
    }

    #[test]
    fn empty_gzip_member_yields_nothing() {
        let (c, out, err) = decode_all(gzip(b""), &Limits::default());
        assert_eq!(c, Compression::Gzip);
        assert!(out.is_empty());
        assert!(err.is_none());
    }

    #[test]
    fn truncated_gzip_fails_with_a_decode_failure_naming_gzip_after_the_good_bytes() {
        let text: Vec<u8> = (0..2000).flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes()).collect();
        let full = gzip(&text);
        for cut in [2, 5, 12, full.len() / 2, full.len() - 4, full.len() - 1] {
            let (_, out, err) = decode_all(full[..cut].to_vec(), &Limits::default());
            assert!(text.starts_with(&out), "cut {cut}: output is not a prefix");
            let err = err.unwrap_or_else(|| panic!("cut {cut}: no error"));
            let failure = object_failure(&err, 7);
            assert_eq!(failure.kind, RejectKind::Decode);
            assert!(failure.reason.starts_with("gzip stream truncated"), "{}", failure.reason);
            assert_eq!(failure.offset, Some(7));
        }
    }

    #[test]
    fn truncated_zstd_fails_with_a_decode_failure_naming_zstd() {
        let full = zstd(TEXT);
        let (_, _, err) = decode_all(full[..full.len() - 3].to_vec(), &Limits::default());
        let failure = object_failure(&err.unwrap(), 0);
        assert_eq!(failure.kind, RejectKind::Decode);
        assert!(failure.reason.starts_with("zstd stream truncated"), "{}", failure.reason);
    }

    #[test]
    fn corrupted_gzip_crc_fails_with_the_checksum_message() {
        let mut input = gzip(TEXT);
        let crc_at = input.len() - 8;
        input[crc_at] ^= 0xff;
        let (_, _, err) = decode_all(input, &Limits::default());
        let failure = object_failure(&err.unwrap(), 0);
        assert_eq!(failure.kind, RejectKind::Decode);
        assert!(failure.reason.starts_with("gzip stream is corrupt"), "{}", failure.reason);
        assert!(failure.reason.contains("checksum"), "{}", failure.reason);
    }

    #[test]
    fn corrupted_deflate_data_fails_as_corrupt() {
        let text: Vec<u8> = (0..500).flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes()).collect();
        let mut input = gzip(&text);
        for b in &mut input[12..40] {
            *b = 0xff;
        }
        let (_, _, err) = decode_all(input, &Limits::default());
        let failure = object_failure(&err.unwrap(), 0);
        assert_eq!(failure.kind, RejectKind::Decode);
        assert!(failure.reason.starts_with("gzip stream is corrupt"), "{}", failure.reason);
    }

    #[test]
    fn errors_are_sticky_after_a_failure() {
        let full = gzip(TEXT);
        let (_, mut reader) = decompress(io::Cursor::new(full[..full.len() - 3].to_vec()), &Limits::default()).unwrap();
        let mut sink = Vec::new();
        let first = reader.read_to_end(&mut sink).unwrap_err();
        let second = reader.read_to_end(&mut sink).unwrap_err();
        assert_eq!(object_failure(&first, 0), object_failure(&second, 0));
    }

    #[test]
    fn decompression_bomb_fails_fast_with_a_limit_failure() {
        // About 1 MiB of gzip that inflates to 1 GiB of zeros.
        let zeros = vec![0u8; 1 << 20];
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for _ in 0..1024 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 4 << 20, "bomb is {} bytes", bomb.len());

        let (c, mut reader) = decompress(io::Cursor::new(bomb), &Limits::default()).unwrap();
        assert_eq!(c, Compression::Gzip);
        let mut total = 0u64;
        let err = loop {
            match reader.fill_buf() {
                Ok([]) => panic!("the bomb was read to its end"),
                Ok(buf) => {
                    let n = buf.len();
                    total += n as u64;
                    reader.consume(n);
                }
                Err(e) => break e,
            }
        };
        // Fails soon after the grace bytes, long before the gigabyte.
        assert!(total <= 64 << 20, "read {total} bytes before failing");
        let failure = object_failure(&err, total);
        assert_eq!(failure.kind, RejectKind::Limit);
        assert!(failure.reason.starts_with("compression ratio above 250:1"), "{}", failure.reason);
        assert!(failure.reason.contains("decompression bomb"), "{}", failure.reason);
        assert_eq!(failure.offset, Some(total));
    }

    #[test]
    fn compression_ratio_is_not_enforced_within_the_grace_bytes() {
        let zeros = vec![0u8; 100_000];
        let limits = Limits { ratio_grace_bytes: 200_000, ..Limits::default() };
        let (_, out, err) = decode_all(gzip(&zeros), &limits);
        assert!(err.is_none());
        assert_eq!(out.len(), zeros.len());

        let limits = Limits { ratio_grace_bytes: 1_000, max_ratio: 10, ..Limits::default() };
        let (_, out, err) = decode_all(zstd(&zeros), &limits);
        let failure = object_failure(&err.unwrap(), 0);
        assert_eq!(failure.kind, RejectKind::Limit);
        assert!(failure.reason.starts_with("compression ratio above 10:1"), "{}", failure.reason);
        assert!(out.len() < zeros.len());
    }

    #[test]
    fn plain_input_has_no_ratio_limit() {
        let zeros = vec![b' '; 100_000];
        let limits = Limits { ratio_grace_bytes: 0, max_ratio: 1, ..Limits::default() };
        let (_, out, err) = decode_all(zeros.clone(), &limits);
        assert!(err.is_none());
        assert_eq!(out, zeros);
    }

    #[test]
    fn max_decompressed_bytes_stops_every_compression() {
        let text: Vec<u8> = (0..5000).flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes()).collect();
        let limits = Limits { max_decompressed_bytes: 10_000, ..Limits::default() };
        for input in [text.clone(), gzip(&text), zstd(&text)] {
            let (c, out, err) = decode_all(input, &limits);
            assert!(out.len() <= 10_000, "{c}: read {} bytes", out.len());
            assert!(text.starts_with(&out));
            let failure = object_failure(&err.unwrap(), out.len() as u64);
            assert_eq!(failure.kind, RejectKind::Limit, "{c}");
            assert_eq!(
                failure.reason,
                "decompressed size passed the 10000-byte limit; raise --max-decompressed-bytes \
                 if the object is genuine"
            );
        }
    }

    #[test]
    fn an_object_exactly_at_the_size_limit_is_accepted() {
        let limits = Limits { max_decompressed_bytes: TEXT.len() as u64, ..Limits::default() };
        for input in [TEXT.to_vec(), gzip(TEXT), zstd(TEXT)] {
            let (_, out, err) = decode_all(input, &limits);
            assert!(err.is_none());
            assert_eq!(out, TEXT);
        }
    }

    #[test]
    fn source_errors_are_read_errors_even_inside_a_compressed_stream() {
        let full = gzip(TEXT);
        for input in [full[..full.len() / 2].to_vec(), TEXT.to_vec()] {
            let source = Failing { good: io::Cursor::new(input) };
            let (_, reader) = decompress(source, &Limits::default()).unwrap();
            let (_, err) = read_all(reader);
            let failure = object_failure(&err.unwrap(), 3);
            assert_eq!(failure.kind, RejectKind::Decode);
            assert_eq!(failure.reason, "read error: connection reset by peer");
        }
    }

    #[test]
    fn a_source_failing_before_the_magic_bytes_is_a_read_error() {
        let source = Failing { good: io::Cursor::new(Vec::new()) };
        let err = match decompress(source, &Limits::default()) {
            Err(e) => e,
            Ok(_) => panic!("decompress succeeded on a failing source"),
        };
        assert_eq!(object_failure(&err, 0).reason, "read error: connection reset by peer");
    }

    #[test]
    fn object_failure_classifies_foreign_errors() {
        let cases = [
            (io::Error::from(io::ErrorKind::UnexpectedEof), "stream truncated: "),
            (io::Error::new(io::ErrorKind::InvalidData, "bad bytes"), "bad bytes"),
            (io::Error::other("disk on fire"), "read error: disk on fire"),
        ];
        for (err, prefix) in cases {
            let failure = object_failure(&err, 42);
            assert_eq!(failure.kind, RejectKind::Decode);
            assert!(failure.reason.starts_with(prefix), "{}", failure.reason);
            assert_eq!(failure.offset, Some(42));
        }
        let limit = io::Error::other(ObjectFailure::limit("too big", Some(9)));
        assert_eq!(object_failure(&limit, 42), ObjectFailure::limit("too big", Some(9)));
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip_through_every_compression_with_tiny_reads(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            sizes in proptest::collection::vec(1usize..8, 1..16),
        ) {
            for (input, expected) in [
                (data.clone(), Compression::detect(&data)),
                (gzip(&data), Compression::Gzip),
                (zstd(&data), Compression::Zstd),
            ] {
                let source = Trickle { inner: io::Cursor::new(input), sizes: sizes.clone(), next: 0 };
                let (c, reader) = decompress(source, &Limits::default()).unwrap();
                prop_assert_eq!(c, expected);
                let (out, err) = read_all(reader);
                prop_assert!(err.is_none());
                prop_assert_eq!(&out, &data);
            }
        }

        #[test]
        fn arbitrary_bytes_after_a_gzip_magic_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut input = GZIP_MAGIC.to_vec();
            input.extend(tail);
            let (_, _, err) = decode_all(input, &Limits::default());
            if let Some(err) = err {
                let failure = object_failure(&err, 0);
                prop_assert_eq!(failure.kind, RejectKind::Decode);
            }
        }
    }
}
