//! Any bytes as one record: validated (accepted or rejected with a reason), then
//! redacted; the redacted event keeps its time and type and serialises.
#![no_main]

use ingest::redact::Redactor;
use ingest::validate::parse_and_validate;
use ingest::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let redactor = Redactor::new(b"fuzz");
    match parse_and_validate(data, &Limits::default()) {
        Ok(mut event) => {
            let ts = event.doc.get("ts").cloned();
            redactor.redact_event(&mut event.doc);
            assert_eq!(event.doc.get("ts").cloned(), ts, "redaction never touches the time");
            serde_json::to_string(&event.doc).expect("a redacted event serialises");
        }
        Err(rejection) => assert!(!rejection.reason.is_empty()),
    }
});
