//! Any bytes as a Lambda trigger event: an answer (deliveries or a reason), never a panic;
//! folder markers and 0-byte objects are never sent to ingest.
#![no_main]

use ingest::events::{parse_event, Work};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(deliveries) = parse_event(data) {
        for delivery in deliveries {
            for work in delivery.work.into_iter().flatten() {
                if let Work::Ingest(object) = work {
                    assert!(!object.key.ends_with('/'), "folder markers are acknowledged, not ingested");
                    assert_ne!(object.size, Some(0), "0-byte objects are acknowledged, not ingested");
                }
            }
        }
    }
});
