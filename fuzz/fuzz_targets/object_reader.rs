//! Any bytes as an object: decompressed (gzip, zstd or plain) and framed (NDJSON, array,
//! Records) into records or one object failure, within the limits, never a panic; every
//! record then goes through validation and redaction.
#![no_main]

use ingest::framing::open_records;
use ingest::redact::Redactor;
use ingest::validate::parse_and_validate;
use ingest::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits =
        Limits { max_record_bytes: 64 * 1024, max_depth: 32, max_decompressed_bytes: 4 << 20, ..Limits::default() };
    let redactor = Redactor::new(b"fuzz");
    let Ok((_, mut records)) = open_records(std::io::Cursor::new(data.to_vec()), limits) else { return };
    let mut frames = 0u64;
    while let Some(frame) = records.next_frame() {
        frames += 1;
        assert!(frames <= 4 << 20, "more records than decompressed bytes");
        let Ok(frame) = frame else { break };
        if let ingest::framing::FrameBody::Record(raw) = &frame.body {
            if let Ok(mut event) = parse_and_validate(raw, &limits) {
                redactor.redact_event(&mut event.doc);
            }
        }
    }
});
