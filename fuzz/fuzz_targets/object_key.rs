//! Any text as an S3 notification key: decoded or refused, never a panic; a decoded key
//! re-encoded the way S3 encodes it decodes to itself.
#![no_main]

use ingest::events::decode_key;
use libfuzzer_sys::fuzz_target;

fn encode(key: &str) -> String {
    let mut out = String::new();
    for byte in key.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(byte as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(key) = decode_key(text) {
        assert_eq!(decode_key(&encode(&key)).as_deref(), Ok(key.as_str()));
    }
});
