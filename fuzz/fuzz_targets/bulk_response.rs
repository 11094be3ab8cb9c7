//! Any HTTP status and body as a `_bulk` answer: classified, never a panic; when it is
//! trusted item by item, there is exactly one class per item sent.
#![no_main]

use indexer::elasticsearch::bulk::{classify_response, Action, Verdict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let status = 100 + u16::from_le_bytes([data[0], data[1]]) % 500;
    let ids: Vec<String> = (0..data[2] % 16).map(|i| format!("id-{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    for action in [Action::Create, Action::Index] {
        if let Verdict::Items(classes) = classify_response(status, &data[3..], action, &ids) {
            assert_eq!(classes.len(), ids.len());
        }
    }
});
