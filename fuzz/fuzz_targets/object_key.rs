//! Any text as an S3 notification key: decoded or refused, never a panic; a decoded key
//! re-encoded the way S3 encodes it decodes to itself.
#![no_main]

use fixtures::samples::aws_encode_key;
use ingest::events::decode_key;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(key) = decode_key(text) {
        assert_eq!(decode_key(&aws_encode_key(&key)).as_deref(), Ok(key.as_str()));
    }
});
