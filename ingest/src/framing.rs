//! Record framing: splits one object's decompressed stream into records, streaming and
//! with bounded memory. The framing (NDJSON, a JSON array, or a `{"Records": [...]}`
//! wrapper) is detected from the content. Framing works on bytes only: whether a record
//! is valid UTF-8 or JSON is validation's business.
//!
//! Memory per reader stays within `max(max_record_bytes, RAW_PREFIX_BYTES)` plus one read
//! buffer, whatever the input: a record over the limit is skipped while being read (up to
//! its newline or the end of its element), keeping only its first [`RAW_PREFIX_BYTES`].

use std::io::{self, BufRead, Read};
use std::iter::FusedIterator;

use memchr::{memchr, memchr2};

use crate::decode::{self, Compression};
use crate::error::{ObjectFailure, Rejection};
use crate::limits::Limits;

/// How much of a rejected record's start is kept for the dead-letter store.
pub const RAW_PREFIX_BYTES: usize = 64 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";
const RECORDS_KEY: &[u8] = b"\"Records\"";

/// Most bytes looked ahead to recognise `{"Records": [`. Past it the object is NDJSON: a
/// wrapper padded with that much whitespace is not worth buffering for.
const DETECT_CAP: usize = 4096;

/// How an object's records are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One record per line.
    Ndjson,
    /// A top-level JSON array; each element is a record.
    JsonArray,
    /// `{"Records": [...]}` (CloudTrail style); each element of the array is a record.
    RecordsWrapper,
}

/// One record of an object, or the rejection of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// 1-based record number within the object.
    pub ordinal: u64,
    /// Byte offset of the record's first byte (after leading whitespace) in the
    /// decompressed stream; a leading BOM counts.
    pub offset: u64,
    pub body: FrameBody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameBody {
    /// The record's bytes, trimmed, without line ending.
    Record(Vec<u8>),
    /// A record that framing already rejects (longer than the record limit).
    Rejected {
        rejection: Rejection,
        /// At most [`RAW_PREFIX_BYTES`] of the record's start.
        raw_prefix: Vec<u8>,
    },
}

/// Decompresses and frames an object.
pub fn open_records<R: Read + Send + 'static>(
    input: R,
    limits: Limits,
) -> io::Result<(Compression, RecordReader<Box<dyn BufRead + Send>>)> {
    let (compression, reader) = decode::decompress(input, &limits)?;
    Ok((compression, RecordReader::new(reader, limits)))
}

/// Streams the records of one decompressed object.
pub struct RecordReader<R: BufRead> {
    input: Input<R>,
    limits: Limits,
    framing: Option<Framing>,
    state: State,
    ordinal: u64,
    /// Holds a record that spans read buffers; reused from record to record.
    scratch: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Detect,
    Ndjson,
    Array(ArrayPhase),
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrayPhase {
    /// Just after `[`: an element or `]`.
    Open,
    /// After `,`: an element (or `]`, tolerating a trailing comma).
    AfterComma,
    /// After an element: `,` or `]`.
    AfterElement,
    /// After the top-level `]` of a JSON array: whitespace or another array.
    Closed,
}

impl<R: BufRead> RecordReader<R> {
    pub fn new(reader: R, limits: Limits) -> Self {
        RecordReader {
            input: Input { reader, lookahead: Vec::new(), lookahead_pos: 0, pos: 0 },
            limits,
            framing: None,
            state: State::Detect,
            ordinal: 0,
            scratch: Vec::new(),
        }
    }

    /// The detected framing; known after the first frame is read.
    pub fn framing(&self) -> Option<Framing> {
        self.framing
    }

    /// Decompressed bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.input.pos
    }

    /// The next record, `None` at the end of the object, or the object's failure. After a
    /// failure it returns `None` forever.
    pub fn next_frame(&mut self) -> Option<Result<Frame, ObjectFailure>> {
        let result = match self.state {
            State::Finished => return None,
            State::Detect => match self.detect() {
                Ok(()) => self.step(),
                Err(e) => Err(self.read_failure(&e)),
            },
            _ => self.step(),
        };
        match result {
            Ok(Some(frame)) => Some(Ok(frame)),
            Ok(None) => {
                self.state = State::Finished;
                None
            }
            Err(failure) => {
                self.state = State::Finished;
                Some(Err(failure))
            }
        }
    }

    fn step(&mut self) -> Result<Option<Frame>, ObjectFailure> {
        match self.state {
            State::Ndjson => self.next_line(),
            State::Array(_) => self.next_element(),
            State::Detect | State::Finished => Ok(None),
        }
    }

    fn read_failure(&self, err: &io::Error) -> ObjectFailure {
        decode::object_failure(err, self.input.pos)
    }

    fn frame(&mut self, offset: u64, body: FrameBody) -> Frame {
        self.ordinal += 1;
        Frame { ordinal: self.ordinal, offset, body }
    }

    /// Skips a BOM and leading whitespace, then decides the framing from the first byte
    /// and, for `{`, from a bounded look ahead. Only the framing's own syntax (`[` or
    /// `{"Records": [`) is consumed; an NDJSON record starts where detection stopped.
    fn detect(&mut self) -> io::Result<()> {
        while self.input.peeked().len() < BOM.len() && BOM.starts_with(self.input.peeked()) {
            let want = BOM.len() - self.input.peeked().len();
            if !self.input.peek_more(want)? {
                break;
            }
        }
        if self.input.peeked().starts_with(BOM) {
            self.input.consume(BOM.len());
        }

        let first = loop {
            let buf = self.input.fill()?;
            if buf.is_empty() {
                break None;
            }
            match buf.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(i) => {
                    let first = buf[i];
                    self.input.consume(i);
                    break Some(first);
                }
                None => {
                    let n = buf.len();
                    self.input.consume(n);
                }
            }
        };

        let framing = match first {
            Some(b'[') => {
                self.input.consume(1);
                Framing::JsonArray
            }
            Some(b'{') => loop {
                let peeked = self.input.peeked();
                let verdict = match peeked.split_first() {
                    Some((_, rest)) => records_prefix(rest),
                    None => Prefix::NeedMore,
                };
                match verdict {
                    Prefix::Match(len) => {
                        self.input.consume(1 + len);
                        break Framing::RecordsWrapper;
                    }
                    Prefix::NoMatch => break Framing::Ndjson,
                    Prefix::NeedMore => {
                        if peeked.len() >= DETECT_CAP || !self.input.peek_more(DETECT_CAP)? {
                            break Framing::Ndjson;
                        }
                    }
                }
            },
            _ => Framing::Ndjson,
        };
        self.framing = Some(framing);
        self.state = match framing {
            Framing::Ndjson => State::Ndjson,
            Framing::JsonArray | Framing::RecordsWrapper => State::Array(ArrayPhase::Open),
        };
        Ok(())
    }

    /// The next non-blank line. A line that fits in the current read buffer is copied out
    /// once; a longer one goes through `scratch`, which holds at most
    /// `max(max_record_bytes, RAW_PREFIX_BYTES)` bytes: past that the line is either too
    /// long or only trailing whitespace remains, so the rest is skipped up to the newline.
    fn next_line(&mut self) -> Result<Option<Frame>, ObjectFailure> {
        let max = self.limits.max_record_bytes as u64;
        let hold = self.limits.max_record_bytes.max(RAW_PREFIX_BYTES);
        let mut start = None;
        // Counted from the line's first non-whitespace byte, without the newline.
        let mut line_len: u64 = 0;
        let mut content_end: u64 = 0;
        self.scratch.clear();
        loop {
            let pos = self.input.pos;
            let buf = match self.input.fill() {
                Ok(buf) => buf,
                Err(e) => return Err(self.read_failure(&e)),
            };
            if buf.is_empty() {
                break;
            }
            let (end, used, complete) = match memchr(b'\n', buf) {
                Some(i) => (i, i + 1, true),
                None => (buf.len(), buf.len(), false),
            };
            let mut chunk = &buf[..end];
            if start.is_none() {
                let Some(lead) = chunk.iter().position(|b| !b.is_ascii_whitespace()) else {
                    self.input.consume(used);
                    continue;
                };
                let offset = pos + lead as u64;
                chunk = &chunk[lead..];
                if complete {
                    let body = trim_end(chunk);
                    let body = if body.len() as u64 > max {
                        too_long_body(max, body[..body.len().min(RAW_PREFIX_BYTES)].to_vec())
                    } else {
                        FrameBody::Record(body.to_vec())
                    };
                    self.input.consume(used);
                    return Ok(Some(self.frame(offset, body)));
                }
                start = Some(offset);
            }
            if let Some(last) = chunk.iter().rposition(|b| !b.is_ascii_whitespace()) {
                content_end = line_len + last as u64 + 1;
            }
            line_len += chunk.len() as u64;
            let cap = if content_end > max { RAW_PREFIX_BYTES } else { hold };
            let room = cap.saturating_sub(self.scratch.len()).min(chunk.len());
            self.scratch.extend_from_slice(&chunk[..room]);
            self.input.consume(used);
            if complete {
                break;
            }
        }
        let Some(offset) = start else {
            return Ok(None);
        };
        let held = |n: u64| n.min(self.scratch.len() as u64) as usize;
        let body = if content_end > max {
            let n = held(content_end.min(RAW_PREFIX_BYTES as u64));
            too_long_body(max, self.scratch[..n].to_vec())
        } else {
            FrameBody::Record(self.scratch[..held(content_end)].to_vec())
        };
        self.scratch.clear();
        Ok(Some(self.frame(offset, body)))
    }

    /// The next array element: skips separators, then scans the element with
    /// [`ElementScanner`] without parsing it.
    fn next_element(&mut self) -> Result<Option<Frame>, ObjectFailure> {
        let State::Array(mut phase) = self.state else {
            return Ok(None);
        };
        loop {
            let pos = self.input.pos;
            let buf = match self.input.fill() {
                Ok(buf) => buf,
                Err(e) => return Err(self.read_failure(&e)),
            };
            if buf.is_empty() {
                return match phase {
                    ArrayPhase::Closed => Ok(None),
                    _ => Err(self.truncated(pos, "between elements")),
                };
            }
            let Some(i) = buf.iter().position(|b| !b.is_ascii_whitespace()) else {
                let n = buf.len();
                self.input.consume(n);
                continue;
            };
            let byte = buf[i];
            self.input.consume(i);
            let at = pos + i as u64;
            match (phase, byte) {
                (ArrayPhase::Open | ArrayPhase::AfterComma | ArrayPhase::AfterElement, b']') => {
                    self.input.consume(1);
                    if self.framing == Some(Framing::RecordsWrapper) {
                        // The rest of the wrapper is ignored but still read, so that a
                        // truncated or corrupt end of the object is noticed.
                        self.state = State::Finished;
                        return self.drain().map(|()| None);
                    }
                    phase = ArrayPhase::Closed;
                    self.state = State::Array(phase);
                }
                (ArrayPhase::AfterElement, b',') => {
                    self.input.consume(1);
                    phase = ArrayPhase::AfterComma;
                    self.state = State::Array(phase);
                }
                (ArrayPhase::Open | ArrayPhase::AfterComma, b',') => {
                    return Err(ObjectFailure::decode(
                        format!("JSON array is broken: empty element at byte {at}"),
                        Some(at),
                    ));
                }
                (ArrayPhase::Open | ArrayPhase::AfterComma, _) => {
                    self.state = State::Array(ArrayPhase::AfterElement);
                    return self.scan_element(at).map(Some);
                }
                (ArrayPhase::AfterElement, other) => {
                    return Err(ObjectFailure::decode(
                        format!("JSON array is broken: unexpected {} between elements at byte {at}", describe(other)),
                        Some(at),
                    ));
                }
                // Concatenated arrays (`[...][...]`), as some shippers append batches.
                (ArrayPhase::Closed, b'[') => {
                    self.input.consume(1);
                    phase = ArrayPhase::Open;
                    self.state = State::Array(phase);
                }
                (ArrayPhase::Closed, other) => {
                    return Err(ObjectFailure::decode(
                        format!("unexpected {} after the JSON array's closing bracket at byte {at}", describe(other)),
                        Some(at),
                    ));
                }
            }
        }
    }

    /// Reads one element starting at the current position (its first byte).
    fn scan_element(&mut self, start: u64) -> Result<Frame, ObjectFailure> {
        let max = self.limits.max_record_bytes;
        let mut scanner: Option<ElementScanner> = None;
        let mut too_long = false;
        self.scratch.clear();
        loop {
            let buf = match self.input.fill() {
                Ok(buf) => buf,
                Err(e) => return Err(self.read_failure(&e)),
            };
            if buf.is_empty() {
                return Err(self.truncated(start, "inside an element"));
            }
            let (used, done) = scanner.get_or_insert_with(|| ElementScanner::new(buf[0])).scan(buf);
            if done && self.scratch.is_empty() && !too_long && used <= max {
                let body = FrameBody::Record(buf[..used].to_vec());
                self.input.consume(used);
                return Ok(self.frame(start, body));
            }
            let chunk = &buf[..used];
            if too_long {
                append_prefix(&mut self.scratch, chunk);
            } else if self.scratch.len() + chunk.len() > max {
                too_long = true;
                self.scratch.truncate(RAW_PREFIX_BYTES);
                append_prefix(&mut self.scratch, chunk);
            } else {
                self.scratch.extend_from_slice(chunk);
            }
            self.input.consume(used);
            if done {
                let body = if too_long {
                    too_long_body(max as u64, self.scratch.clone())
                } else {
                    FrameBody::Record(self.scratch.clone())
                };
                self.scratch.clear();
                return Ok(self.frame(start, body));
            }
        }
    }

    fn truncated(&self, offset: u64, where_: &str) -> ObjectFailure {
        let what = match self.framing {
            Some(Framing::RecordsWrapper) => "JSON array ends before its closing bracket (in the Records wrapper)",
            _ => "JSON array ends before its closing bracket",
        };
        ObjectFailure::decode(format!("{what}: the stream ends {where_} at byte {}", self.input.pos), Some(offset))
    }

    fn drain(&mut self) -> Result<(), ObjectFailure> {
        loop {
            let n = match self.input.fill() {
                Ok(buf) => buf.len(),
                Err(e) => return Err(self.read_failure(&e)),
            };
            if n == 0 {
                return Ok(());
            }
            self.input.consume(n);
        }
    }
}

impl<R: BufRead> Iterator for RecordReader<R> {
    type Item = Result<Frame, ObjectFailure>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_frame()
    }
}

impl<R: BufRead> FusedIterator for RecordReader<R> {}

/// The underlying reader plus a small look-ahead buffer that detection fills and that is
/// served before the reader; `pos` counts bytes consumed through either.
struct Input<R> {
    reader: R,
    lookahead: Vec<u8>,
    lookahead_pos: usize,
    pos: u64,
}

impl<R: BufRead> Input<R> {
    fn fill(&mut self) -> io::Result<&[u8]> {
        if self.lookahead_pos < self.lookahead.len() {
            return Ok(&self.lookahead[self.lookahead_pos..]);
        }
        // Retry interrupted reads without holding the borrow across the loop, which the
        // borrow checker rejects; the second `fill_buf` returns the buffered bytes.
        loop {
            match self.reader.fill_buf() {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.reader.fill_buf()
    }

    /// Consumes `n` bytes of what the last [`Input::fill`] returned.
    fn consume(&mut self, n: usize) {
        if self.lookahead_pos < self.lookahead.len() {
            self.lookahead_pos += n;
            if self.lookahead_pos >= self.lookahead.len() {
                self.lookahead.clear();
                self.lookahead_pos = 0;
            }
        } else {
            self.reader.consume(n);
        }
        self.pos += n as u64;
    }

    fn peeked(&self) -> &[u8] {
        &self.lookahead[self.lookahead_pos..]
    }

    /// Moves up to `max` more bytes from the reader into the look-ahead; false at the end.
    fn peek_more(&mut self, max: usize) -> io::Result<bool> {
        if self.lookahead_pos > 0 {
            self.lookahead.drain(..self.lookahead_pos);
            self.lookahead_pos = 0;
        }
        loop {
            match self.reader.fill_buf() {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let buf = self.reader.fill_buf()?;
        let take = buf.len().min(max);
        self.lookahead.extend_from_slice(&buf[..take]);
        self.reader.consume(take);
        Ok(take > 0)
    }
}

enum Prefix {
    /// `"Records" : [` matched; its length (with whitespace).
    Match(usize),
    NoMatch,
    NeedMore,
}

/// Matches `ws "Records" ws : ws [` at the start of `q` (the bytes after `{`).
fn records_prefix(q: &[u8]) -> Prefix {
    let mut i = skip_ws(q, 0);
    for &expected in RECORDS_KEY {
        match q.get(i) {
            None => return Prefix::NeedMore,
            Some(&b) if b != expected => return Prefix::NoMatch,
            Some(_) => i += 1,
        }
    }
    for expected in [b':', b'['] {
        i = skip_ws(q, i);
        match q.get(i) {
            None => return Prefix::NeedMore,
            Some(&b) if b != expected => return Prefix::NoMatch,
            Some(_) => i += 1,
        }
    }
    Prefix::Match(i)
}

fn skip_ws(q: &[u8], from: usize) -> usize {
    from + q.get(from..).unwrap_or_default().iter().take_while(|b| b.is_ascii_whitespace()).count()
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
    &bytes[..end]
}

fn too_long_body(max: u64, raw_prefix: Vec<u8>) -> FrameBody {
    FrameBody::Rejected {
        rejection: Rejection::limit(format!("record is longer than the {max}-byte limit (line size)")),
        raw_prefix,
    }
}

fn append_prefix(prefix: &mut Vec<u8>, chunk: &[u8]) {
    let room = RAW_PREFIX_BYTES.saturating_sub(prefix.len());
    prefix.extend_from_slice(&chunk[..room.min(chunk.len())]);
}

fn describe(byte: u8) -> String {
    if byte.is_ascii_graphic() {
        format!("'{}'", byte as char)
    } else {
        format!("byte 0x{byte:02x}")
    }
}

/// Finds where one array element ends without parsing it: tracks bracket depth, whether
/// it is inside a string, and escapes. Strings are skipped with `memchr2`, so the cost is
/// dominated by structural bytes.
#[derive(Debug)]
struct ElementScanner {
    kind: ElementKind,
    depth: usize,
    in_string: bool,
    escape: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElementKind {
    /// Starts with `{`, `[` or `"`: ends where its depth returns to zero.
    Delimited,
    /// A number, literal or garbage: ends before whitespace, `,` or `]`.
    Bare,
}

impl ElementScanner {
    fn new(first: u8) -> Self {
        let kind = match first {
            b'{' | b'[' | b'"' => ElementKind::Delimited,
            _ => ElementKind::Bare,
        };
        ElementScanner { kind, depth: 0, in_string: false, escape: false }
    }

    /// Returns how many bytes of `buf` belong to the element and whether it ended there.
    fn scan(&mut self, buf: &[u8]) -> (usize, bool) {
        if self.kind == ElementKind::Bare {
            return match buf.iter().position(|&b| b.is_ascii_whitespace() || b == b',' || b == b']') {
                Some(end) => (end, true),
                None => (buf.len(), false),
            };
        }
        let mut i = 0;
        while i < buf.len() {
            if self.in_string {
                if self.escape {
                    self.escape = false;
                    i += 1;
                    continue;
                }
                match memchr2(b'"', b'\\', &buf[i..]) {
                    None => return (buf.len(), false),
                    Some(j) => {
                        i += j;
                        if buf[i] == b'\\' {
                            self.escape = true;
                        } else {
                            self.in_string = false;
                            if self.depth == 0 {
                                return (i + 1, true);
                            }
                        }
                        i += 1;
                    }
                }
            } else {
                let byte = buf[i];
                i += 1;
                match byte {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            return (i, true);
                        }
                    }
                    _ => {}
                }
            }
        }
        (buf.len(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RejectKind;
    use fixtures::samples::gzip;
    use proptest::prelude::*;
    use std::io::{BufReader, Cursor};

    /// Everything a reader produces: frames, the failure if any, the framing and bytes read.
    #[derive(Debug, PartialEq)]
    struct Outcome {
        frames: Vec<Frame>,
        failure: Option<ObjectFailure>,
        framing: Option<Framing>,
        bytes_read: u64,
    }

    fn run<R: BufRead>(mut reader: RecordReader<R>) -> Outcome {
        let mut frames = Vec::new();
        let mut failure = None;
        for item in reader.by_ref() {
            match item {
                Ok(frame) => frames.push(frame),
                Err(f) => {
                    assert!(failure.is_none(), "two failures");
                    failure = Some(f);
                }
            }
        }
        assert!(reader.next_frame().is_none(), "the reader yields after its end");
        Outcome { frames, failure, framing: reader.framing(), bytes_read: reader.bytes_read() }
    }

    fn frame_bytes(input: &[u8], limits: Limits) -> Outcome {
        run(RecordReader::new(Cursor::new(input.to_vec()), limits))
    }

    fn frame_default(input: &[u8]) -> Outcome {
        frame_bytes(input, Limits::default())
    }

    /// The record bodies, asserting ordinals run 1..=n and nothing was rejected.
    fn bodies(outcome: &Outcome) -> Vec<String> {
        outcome
            .frames
            .iter()
            .enumerate()
            .map(|(i, frame)| {
                assert_eq!(frame.ordinal, i as u64 + 1);
                match &frame.body {
                    FrameBody::Record(bytes) => String::from_utf8(bytes.clone()).unwrap(),
                    FrameBody::Rejected { rejection, .. } => panic!("rejected: {rejection}"),
                }
            })
            .collect()
    }

    use crate::test_support::Trickle;

    fn frame_trickled(input: &[u8], sizes: &[usize], limits: Limits) -> Outcome {
        let trickle = Trickle { inner: Cursor::new(input.to_vec()), sizes: sizes.to_vec(), next: 0 };
        run(RecordReader::new(BufReader::new(trickle), limits))
    }

    /// Yields `head`, then `filler` repeated `count` times, then `tail`, without holding
    /// the filler in memory.
    struct Generated {
        head: Cursor<Vec<u8>>,
        filler: u8,
        count: u64,
        tail: Cursor<Vec<u8>>,
    }

    impl Read for Generated {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.head.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.count > 0 {
                let n = (buf.len() as u64).min(self.count) as usize;
                buf[..n].fill(self.filler);
                self.count -= n as u64;
                return Ok(n);
            }
            self.tail.read(buf)
        }
    }

    /// Delivers `good`, then fails like a dropped connection.
    struct Failing(Cursor<Vec<u8>>);

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(io::Error::new(io::ErrorKind::ConnectionReset, "connection reset")),
                n => Ok(n),
            }
        }
    }

    fn numbered_lines(n: usize) -> Vec<u8> {
        (1..=n).flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes()).collect()
    }

    #[test]
    fn ndjson_lines_become_records_in_order() {
        let out = frame_default(b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
        assert_eq!(out.framing, Some(Framing::Ndjson));
        assert_eq!(bodies(&out), ["{\"a\":1}", "{\"a\":2}", "{\"a\":3}"]);
        let offsets: Vec<u64> = out.frames.iter().map(|f| f.offset).collect();
        assert_eq!(offsets, [0, 8, 16]);
        assert_eq!(out.failure, None);
        assert_eq!(out.bytes_read, 24);
    }

    #[test]
    fn line_endings_and_surrounding_whitespace_are_trimmed() {
        let cases: &[(&[u8], &[&str])] = &[
            (b"{\"a\":1}\r\n{\"a\":2}\r\n", &["{\"a\":1}", "{\"a\":2}"]),
            (b"{\"a\":1}\r\n{\"a\":2}", &["{\"a\":1}", "{\"a\":2}"]),
            (b"  {\"a\":1} \t\r\n\t{\"a\":2}  ", &["{\"a\":1}", "{\"a\":2}"]),
            (b"{\"a\":1}\n{\"a\":2}", &["{\"a\":1}", "{\"a\":2}"]),
            (b"{\"a\": \"x y\" }\n", &["{\"a\": \"x y\" }"]),
        ];
        for (input, expected) in cases {
            assert_eq!(bodies(&frame_default(input)), *expected, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn final_line_without_newline_is_a_record() {
        let out = frame_default(b"{\"a\":1}\n{\"a\":2}");
        assert_eq!(bodies(&out), ["{\"a\":1}", "{\"a\":2}"]);
        assert_eq!(out.frames[1].offset, 8);
    }

    #[test]
    fn blank_and_whitespace_only_lines_are_not_records() {
        let out = frame_default(b"\n\n{\"a\":1}\n\n   \n\t\r\n{\"a\":2}\n \n");
        assert_eq!(bodies(&out), ["{\"a\":1}", "{\"a\":2}"]);
        let ordinals: Vec<u64> = out.frames.iter().map(|f| f.ordinal).collect();
        assert_eq!(ordinals, [1, 2]);
        assert_eq!(out.frames[0].offset, 2);
        assert_eq!(out.frames[1].offset, 18);
    }

    #[test]
    fn empty_and_whitespace_only_inputs_yield_nothing() {
        for input in [&b""[..], b"\n", b"  \r\n\t\n", b"\xEF\xBB\xBF", b"\xEF\xBB\xBF\n\n"] {
            let out = frame_default(input);
            assert!(out.frames.is_empty(), "{input:?}");
            assert_eq!(out.failure, None);
            assert_eq!(out.framing, Some(Framing::Ndjson));
            assert_eq!(out.bytes_read, input.len() as u64);
        }
    }

    #[test]
    fn utf8_bom_is_skipped_and_counted_in_offsets() {
        let out = frame_default(b"\xEF\xBB\xBF{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(bodies(&out), ["{\"a\":1}", "{\"a\":2}"]);
        assert_eq!(out.frames[0].offset, 3);
        assert_eq!(out.frames[1].offset, 11);

        let out = frame_default(b"\xEF\xBB\xBF [{\"a\":1}]");
        assert_eq!(out.framing, Some(Framing::JsonArray));
        assert_eq!(bodies(&out), ["{\"a\":1}"]);
        assert_eq!(out.frames[0].offset, 5);

        let out = frame_default(b"\xEF\xBB\xBF{\"Records\":[{\"a\":1}]}");
        assert_eq!(out.framing, Some(Framing::RecordsWrapper));
        assert_eq!(bodies(&out), ["{\"a\":1}"]);
    }

    #[test]
    fn a_bom_in_the_middle_is_part_of_the_record() {
        let out = frame_default(b"{\"a\":1}\n\xEF\xBB\xBF{\"a\":2}\n");
        assert_eq!(out.frames[1].body, FrameBody::Record(b"\xEF\xBB\xBF{\"a\":2}".to_vec()));
    }

    #[test]
    fn ndjson_lines_are_not_validated() {
        let out = frame_default(b"{\"a\":1}\nnot json\n[1,2]\n\xff\xfe\n{\"unclosed\":\n");
        assert_eq!(out.framing, Some(Framing::Ndjson));
        assert_eq!(out.frames.len(), 5);
        assert_eq!(out.frames[3].body, FrameBody::Record(b"\xff\xfe".to_vec()));
        assert_eq!(out.failure, None);
    }

    #[test]
    fn ten_megabyte_line_is_rejected_and_the_next_lines_are_fine() {
        let mut input = b"{\"a\":1}\n{\"big\":\"".to_vec();
        input.extend(std::iter::repeat_n(b'x', 10 << 20));
        input.extend(b"\"}\r\n{\"a\":2}\n{\"a\":3}");
        let out = frame_default(&input);
        assert_eq!(out.frames.len(), 4);
        assert_eq!(out.frames[0].body, FrameBody::Record(b"{\"a\":1}".to_vec()));
        match &out.frames[1].body {
            FrameBody::Rejected { rejection, raw_prefix } => {
                assert_eq!(rejection.kind, RejectKind::Limit);
                assert_eq!(rejection.reason, "record is longer than the 1048576-byte limit (line size)");
                assert_eq!(raw_prefix.len(), RAW_PREFIX_BYTES);
                assert!(raw_prefix.starts_with(b"{\"big\":\"xxx"));
            }
            other => panic!("not rejected: {other:?}"),
        }
        assert_eq!(out.frames[1].ordinal, 2);
        assert_eq!(out.frames[1].offset, 8);
        assert_eq!(out.frames[2].body, FrameBody::Record(b"{\"a\":2}".to_vec()));
        assert_eq!(out.frames[3].body, FrameBody::Record(b"{\"a\":3}".to_vec()));
        assert_eq!(out.frames[3].ordinal, 4);
        assert_eq!(out.failure, None);
    }

    #[test]
    fn one_gigabyte_line_is_skipped_with_bounded_memory() {
        let source = Generated {
            head: Cursor::new(b"{\"a\":1}\n{\"big\":\"".to_vec()),
            filler: b'x',
            count: 1 << 30,
            tail: Cursor::new(b"\"}\n{\"a\":2}\n".to_vec()),
        };
        let mut reader = RecordReader::new(BufReader::with_capacity(64 << 10, source), Limits::default());
        assert!(matches!(reader.next_frame(), Some(Ok(Frame { ordinal: 1, .. }))));
        let big = reader.next_frame().unwrap().unwrap();
        assert!(matches!(big.body, FrameBody::Rejected { .. }));
        assert!(reader.scratch.capacity() <= 2 << 20, "scratch grew to {} bytes", reader.scratch.capacity());
        let last = reader.next_frame().unwrap().unwrap();
        assert_eq!((last.ordinal, last.body), (3, FrameBody::Record(b"{\"a\":2}".to_vec())));
        assert!(reader.next_frame().is_none());
        assert!(reader.bytes_read() > 1 << 30);
    }

    #[test]
    fn record_limit_counts_trimmed_bytes() {
        let limits = Limits { max_record_bytes: 10, ..Limits::default() };
        let input = b"0123456789\n0123456789    \r\n   0123456789\n0123456789a\n012345678 9\n";
        for sizes in [&[usize::MAX][..], &[1], &[3, 5, 7]] {
            let out =
                if sizes[0] == usize::MAX { frame_bytes(input, limits) } else { frame_trickled(input, sizes, limits) };
            let kinds: Vec<bool> = out.frames.iter().map(|f| matches!(f.body, FrameBody::Record(_))).collect();
            assert_eq!(kinds, [true, true, true, false, false], "sizes {sizes:?}");
            assert_eq!(out.frames[1].body, FrameBody::Record(b"0123456789".to_vec()));
            assert_eq!(
                out.frames[3].body,
                FrameBody::Rejected {
                    rejection: Rejection::limit("record is longer than the 10-byte limit (line size)"),
                    raw_prefix: b"0123456789a".to_vec(),
                }
            );
        }
    }

    #[test]
    fn a_long_whitespace_tail_does_not_make_a_line_too_long() {
        let limits = Limits { max_record_bytes: 10, ..Limits::default() };
        let mut input = b"{\"a\":1}".to_vec();
        input.extend(std::iter::repeat_n(b' ', 200_000));
        input.extend(b"\n{\"a\":2}");
        input.extend(std::iter::repeat_n(b' ', 200_000));
        input.extend(b"x\n");
        for out in [frame_bytes(&input, limits), frame_trickled(&input, &[4096, 7], limits)] {
            assert_eq!(out.frames[0].body, FrameBody::Record(b"{\"a\":1}".to_vec()));
            match &out.frames[1].body {
                FrameBody::Rejected { raw_prefix, .. } => {
                    assert_eq!(raw_prefix.len(), RAW_PREFIX_BYTES);
                    assert!(raw_prefix.starts_with(b"{\"a\":2}   "));
                }
                other => panic!("not rejected: {other:?}"),
            }
        }
    }

    #[test]
    fn json_array_elements_become_records() {
        let input = br#"[
            {"a": [1, [2, "]"]], "s": "x,y]z"},
            {"q": "say \"hi\", ok]", "e": "\\", "n": {"m": {}}} ,
            {"t": "\\\"]"}
        ]"#;
        let out = frame_default(input);
        assert_eq!(out.framing, Some(Framing::JsonArray));
        assert_eq!(
            bodies(&out),
            [
                r#"{"a": [1, [2, "]"]], "s": "x,y]z"}"#,
                r#"{"q": "say \"hi\", ok]", "e": "\\", "n": {"m": {}}}"#,
                r#"{"t": "\\\"]"}"#,
            ]
        );
        assert_eq!(out.frames[0].offset, 14);
        assert_eq!(out.failure, None);
        assert_eq!(out.bytes_read, input.len() as u64);
    }

    #[test]
    fn json_array_elements_of_any_kind_are_framed_without_validation() {
        let out = frame_default(br#"[1, "two", [3], null,{"five":5}, tru]"#);
        assert_eq!(bodies(&out), ["1", "\"two\"", "[3]", "null", "{\"five\":5}", "tru"]);
        let out = frame_default(b"[]");
        assert!(out.frames.is_empty());
        assert_eq!(out.failure, None);
        let out = frame_default(b"  [ \n ]  \n");
        assert!(out.frames.is_empty());
        assert_eq!(out.failure, None);
    }

    #[test]
    fn a_trailing_comma_in_an_array_is_tolerated() {
        let out = frame_default(b"[{\"a\":1},]");
        assert_eq!(bodies(&out), ["{\"a\":1}"]);
        assert_eq!(out.failure, None);
    }

    #[test]
    fn concatenated_json_arrays_are_read_as_one() {
        let out = frame_default(b"[{\"a\":1}]\n[{\"a\":2},{\"a\":3}]\n");
        assert_eq!(bodies(&out), ["{\"a\":1}", "{\"a\":2}", "{\"a\":3}"]);
        assert_eq!(out.failure, None);
    }

    #[test]
    fn records_wrapper_elements_become_records_and_the_rest_is_ignored() {
        let input = br#"{ "Records" :
            [ {"a":1}, {"b":"]}"} ] , "NextToken": "abc", "junk": [}"#;
        let out = frame_default(input);
        assert_eq!(out.framing, Some(Framing::RecordsWrapper));
        assert_eq!(bodies(&out), ["{\"a\":1}", "{\"b\":\"]}\"}"]);
        assert_eq!(out.failure, None);
        assert_eq!(out.bytes_read, input.len() as u64);
    }

    #[test]
    fn objects_that_are_not_a_records_wrapper_are_ndjson() {
        let cases: &[&[u8]] = &[
            b"{\"records\":[{\"a\":1}]}\n{\"b\":2}",
            b"{\"x\":1,\"Records\":[{\"a\":1}]}\n{\"b\":2}",
            b"{\"Records\":5}\n{\"b\":2}",
            b"{\"Records\":{\"a\":1}}\n{\"b\":2}",
            b"{\"RecordsX\":[1]}\n{\"b\":2}",
            b"{\"Rec\n{\"b\":2}",
        ];
        for input in cases {
            let out = frame_default(input);
            assert_eq!(out.framing, Some(Framing::Ndjson), "{}", String::from_utf8_lossy(input));
            assert_eq!(out.frames.len(), 2);
            assert_eq!(out.frames[1].body, FrameBody::Record(b"{\"b\":2}".to_vec()));
        }
        let out = frame_default(b"{\"Rec");
        assert_eq!(bodies(&out), ["{\"Rec"]);
    }

    #[test]
    fn truncated_json_array_yields_the_complete_elements_then_a_failure() {
        let full = br#"[{"a":1},{"b":"x]"},{"c":[1,2]}]"#;
        let complete_before = |cut: usize| [8usize, 19, 31].iter().filter(|&&end| end <= cut).count();
        for cut in 1..full.len() {
            let out = frame_default(&full[..cut]);
            assert_eq!(out.frames.len(), complete_before(cut), "cut {cut}");
            let failure = out.failure.unwrap_or_else(|| panic!("cut {cut}: no failure"));
            assert_eq!(failure.kind, RejectKind::Decode);
            assert!(failure.reason.starts_with("JSON array ends before its closing bracket"), "{}", failure.reason);
            assert!(failure.offset.is_some_and(|o| o <= cut as u64));
        }
        let out = frame_default(b"{\"Records\":[{\"a\":1},{\"b\"");
        assert_eq!(out.frames.len(), 1);
        assert_eq!(out.failure.unwrap().offset, Some(20));
    }

    #[test]
    fn garbage_between_array_elements_fails_the_object() {
        let cases: &[(&[u8], usize, u64)] = &[
            (b"[{\"a\":1} x {\"a\":2}]", 1, 9),
            (b"[{\"a\":1}{\"a\":2}]", 1, 8),
            (b"[\"a\" \"b\"]", 1, 5),
            (b"[,{\"a\":1}]", 0, 1),
            (b"[{\"a\":1},,{\"a\":2}]", 1, 9),
            (b"[{\"a\":1}] trailing", 1, 10),
            (b"{\"Records\":[{\"a\":1};{\"a\":2}]}", 1, 19),
        ];
        for (input, good, at) in cases {
            let out = frame_default(input);
            assert_eq!(out.frames.len(), *good, "{}", String::from_utf8_lossy(input));
            let failure = out.failure.unwrap();
            assert_eq!(failure.kind, RejectKind::Decode);
            assert_eq!(failure.offset, Some(*at), "{}", failure.reason);
        }
    }

    #[test]
    fn oversized_array_element_is_rejected_and_the_next_is_fine() {
        let limits = Limits { max_record_bytes: 100, ..Limits::default() };
        let big = format!("{{\"big\":\"{}\",\"n\":[1,2]}}", "]".repeat(100_000));
        let input = format!("[{{\"a\":1}}, {big}, {{\"a\":2}}]");
        for out in [frame_bytes(input.as_bytes(), limits), frame_trickled(input.as_bytes(), &[5], limits)] {
            assert_eq!(out.frames.len(), 3);
            match &out.frames[1].body {
                FrameBody::Rejected { rejection, raw_prefix } => {
                    assert_eq!(rejection.kind, RejectKind::Limit);
                    assert_eq!(raw_prefix.as_slice(), &big.as_bytes()[..RAW_PREFIX_BYTES]);
                }
                other => panic!("not rejected: {other:?}"),
            }
            assert_eq!(out.frames[1].offset, 10);
            assert_eq!(out.frames[2].body, FrameBody::Record(b"{\"a\":2}".to_vec()));
            assert_eq!(out.failure, None);
        }
    }

    #[test]
    fn read_errors_fail_the_object_after_the_good_records() {
        let source = Failing(Cursor::new(b"{\"a\":1}\n{\"a\":2}\n{\"a\"".to_vec()));
        let out = run(RecordReader::new(BufReader::new(source), Limits::default()));
        assert_eq!(bodies(&out), ["{\"a\":1}", "{\"a\":2}"]);
        let failure = out.failure.unwrap();
        assert_eq!(failure.reason, "read error: connection reset");
        assert_eq!(failure.offset, Some(20));
    }

    #[test]
    fn framing_is_known_after_the_first_frame() {
        let mut reader = RecordReader::new(Cursor::new(b"[{\"a\":1}]".to_vec()), Limits::default());
        assert_eq!(reader.framing(), None);
        assert!(reader.next_frame().is_some());
        assert_eq!(reader.framing(), Some(Framing::JsonArray));
    }

    #[test]
    fn gzip_plain_and_zstd_objects_frame_alike() {
        let text = numbered_lines(1000);
        let mut multi = gzip(&text[..text.len() / 2]);
        multi.extend(gzip(&text[text.len() / 2..]));
        let inputs = [
            (text.clone(), Compression::Plain),
            (gzip(&text), Compression::Gzip),
            (multi, Compression::Gzip),
            (zstd::stream::encode_all(&text[..], 3).unwrap(), Compression::Zstd),
        ];
        for (input, expected) in inputs {
            let (compression, reader) = open_records(Cursor::new(input), Limits::default()).unwrap();
            assert_eq!(compression, expected);
            let out = run(reader);
            assert_eq!(out.frames.len(), 1000);
            assert_eq!(out.failure, None);
            assert_eq!(out.bytes_read, text.len() as u64);
        }
    }

    #[test]
    fn truncated_gzip_fails_after_the_good_records() {
        let text = numbered_lines(20_000);
        let full = gzip(&text);
        let (_, reader) = open_records(Cursor::new(full[..full.len() * 2 / 3].to_vec()), Limits::default()).unwrap();
        let out = run(reader);
        assert!(out.frames.len() > 1000 && out.frames.len() < 20_000, "{}", out.frames.len());
        for (i, body) in bodies(&out).iter().enumerate() {
            assert_eq!(*body, format!("{{\"n\":{}}}", i + 1));
        }
        let failure = out.failure.unwrap();
        assert_eq!(failure.kind, RejectKind::Decode);
        assert!(failure.reason.starts_with("gzip stream truncated"), "{}", failure.reason);
        assert_eq!(failure.offset, Some(out.bytes_read));
    }

    #[test]
    fn corrupted_gzip_crc_fails_the_object() {
        let text = numbered_lines(10);
        let mut input = gzip(&text);
        let crc_at = input.len() - 8;
        input[crc_at] ^= 0x55;
        let (_, reader) = open_records(Cursor::new(input), Limits::default()).unwrap();
        let out = run(reader);
        let failure = out.failure.unwrap();
        assert_eq!(failure.kind, RejectKind::Decode);
        assert!(failure.reason.contains("checksum"), "{}", failure.reason);
    }

    #[test]
    fn a_corrupt_end_after_a_records_wrapper_still_fails_the_object() {
        let mut input = gzip(b"{\"Records\":[{\"a\":1}]}  \n");
        input.truncate(input.len() - 2);
        let (_, reader) = open_records(Cursor::new(input), Limits::default()).unwrap();
        let out = run(reader);
        assert_eq!(bodies(&out), ["{\"a\":1}"]);
        assert!(out.failure.unwrap().reason.starts_with("gzip stream truncated"));
    }

    #[test]
    fn empty_input_and_empty_gzip_yield_nothing() {
        for (input, expected) in [(Vec::new(), Compression::Plain), (gzip(b""), Compression::Gzip)] {
            let (compression, reader) = open_records(Cursor::new(input), Limits::default()).unwrap();
            assert_eq!(compression, expected);
            let out = run(reader);
            assert!(out.frames.is_empty());
            assert_eq!(out.failure, None);
        }
    }

    #[test]
    fn decompressed_size_limit_fails_the_object_after_the_good_records() {
        let text = numbered_lines(30_000);
        let limits = Limits { max_decompressed_bytes: 200_000, ..Limits::default() };
        let (_, reader) = open_records(Cursor::new(gzip(&text)), limits).unwrap();
        let out = run(reader);
        assert!(!out.frames.is_empty());
        assert!(out.bytes_read <= 200_000);
        let failure = out.failure.unwrap();
        assert_eq!(failure.kind, RejectKind::Limit);
        assert!(failure.reason.starts_with("decompressed size passed the 200000-byte limit"));
    }

    #[test]
    fn decompression_bomb_fails_the_object_with_bounded_memory() {
        // Blanks with one record per MiB, as 1024 gzip members of the same MiB: about
        // 1 MiB of gzip that inflates to 1 GiB, built without compressing a gigabyte.
        let mut chunk = vec![b' '; 1 << 20];
        chunk[(1 << 20) - 9..].copy_from_slice(b"{\"a\":1}\n\n");
        let member = gzip(&chunk);
        let bomb = member.repeat(1024);
        assert!(bomb.len() < 8 << 20);
        let (_, mut reader) = open_records(Cursor::new(bomb), Limits::default()).unwrap();
        let mut records = 0;
        let failure = loop {
            match reader.next_frame() {
                Some(Ok(_)) => records += 1,
                Some(Err(f)) => break f,
                None => panic!("the bomb was read to its end"),
            }
        };
        assert_eq!(failure.kind, RejectKind::Limit);
        assert!(failure.reason.contains("decompression bomb"), "{}", failure.reason);
        assert!(reader.bytes_read() <= 64 << 20);
        assert!((16..64).contains(&records), "{records}");
        assert!(reader.scratch.capacity() <= 2 << 20);
    }

    /// A small JSON object with strings full of framing characters.
    fn small_object() -> impl Strategy<Value = Vec<u8>> {
        let text = "[a-z \\]\\[{},:\"\\\\\n\r\té]{0,12}";
        let value = prop_oneof![
            text.prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            proptest::collection::vec(text, 0..3).prop_map(serde_json::Value::from),
            Just(serde_json::json!({"nested": {"list": [[], [1, "]"], {}]}})),
        ];
        proptest::collection::btree_map(text, value, 0..4)
            .prop_map(|map| serde_json::to_vec(&map.into_iter().collect::<serde_json::Map<_, _>>()).unwrap())
    }

    fn whitespace() -> impl Strategy<Value = String> {
        "[ \t\r\n]{0,3}"
    }

    proptest! {
        #[test]
        fn ndjson_array_and_records_framings_yield_the_same_records(
            objects in proptest::collection::vec(small_object(), 0..12),
            gaps in proptest::collection::vec(whitespace(), 40),
            crlf in any::<bool>(),
            bom in any::<bool>(),
        ) {
            let bom: &[u8] = if bom { b"\xEF\xBB\xBF" } else { b"" };
            let newline: &[u8] = if crlf { b"\r\n" } else { b"\n" };
            let gap = |i: usize| gaps[i % gaps.len()].as_bytes();

            let mut ndjson = bom.to_vec();
            let mut array = bom.to_vec();
            array.extend(gap(0));
            array.push(b'[');
            for (i, object) in objects.iter().enumerate() {
                ndjson.extend(gap(i).iter().filter(|&&b| b != b'\n'));
                ndjson.extend(object);
                ndjson.extend(newline);
                if i % 3 == 1 {
                    ndjson.extend(newline);
                }
                if i > 0 {
                    array.push(b',');
                }
                array.extend(gap(i + 1));
                array.extend(object);
                array.extend(gap(i + 2));
            }
            array.push(b']');
            array.extend(gap(3));
            let mut records = bom.to_vec();
            records.extend(b"{");
            records.extend(gap(5));
            records.extend(b"\"Records\"");
            records.extend(gap(6));
            records.push(b':');
            records.extend(gap(7));
            records.extend(&array[bom.len()..]);
            records.extend(b", \"next\": [\"]\"]}");

            let expected: Vec<String> =
                objects.iter().map(|o| String::from_utf8(o.clone()).unwrap()).collect();
            for (input, framing) in [
                (&ndjson, Framing::Ndjson),
                (&array, Framing::JsonArray),
                (&records, Framing::RecordsWrapper),
            ] {
                let out = frame_default(input);
                prop_assert_eq!(out.framing, Some(framing));
                prop_assert_eq!(&out.failure, &None);
                prop_assert_eq!(&bodies(&out), &expected);
                prop_assert_eq!(out.bytes_read, input.len() as u64);
            }
        }

        #[test]
        fn tiny_reads_do_not_change_the_output(
            objects in proptest::collection::vec(small_object(), 0..8),
            noise in proptest::collection::vec(
                prop_oneof![
                    Just(b'{'), Just(b'}'), Just(b'['), Just(b']'), Just(b'"'), Just(b'\\'),
                    Just(b','), Just(b':'), Just(b' '), Just(b'\n'), Just(b'\r'), Just(b'a'),
                    Just(0xEF), Just(0xBB), Just(0xBF),
                ],
                0..200,
            ),
            shape in 0..4u8,
            sizes in proptest::collection::vec(1usize..8, 1..10),
            max_record_bytes in prop_oneof![Just(1usize << 20), 1usize..40],
        ) {
            let input: Vec<u8> = match shape {
                0 => objects.join(&b"\r\n"[..]),
                1 => [b"[".to_vec(), objects.join(&b" ,\n"[..]), b"]".to_vec()].concat(),
                2 => [b"{\"Records\": [".to_vec(), objects.join(&b","[..]), b"]}".to_vec()].concat(),
                _ => noise,
            };
            let limits = Limits { max_record_bytes, ..Limits::default() };
            let whole = frame_bytes(&input, limits);
            let trickled = frame_trickled(&input, &sizes, limits);
            prop_assert_eq!(whole, trickled);

            let source = Trickle { inner: Cursor::new(input.clone()), sizes, next: 0 };
            let (_, reader) = open_records(source, limits).unwrap();
            prop_assert_eq!(frame_bytes(&input, limits), run(reader));
        }
    }
}
