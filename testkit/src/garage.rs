//! The Garage harness of the S3 tier: where the local Garage that `scripts/garage.sh`
//! starts is (the standard AWS variables it writes to `target/garage/env`), its test
//! buckets, the runtime an S3 client blocks on, key prefixes no other test or earlier run
//! uses, and the notifications AWS sends about objects (S3 records inside SQS messages,
//! keys URL-encoded as S3 encodes them).
//!
//! It knows nothing of ingest: each crate's test support builds its own S3 client on
//! [`Garage::runtime`], the way the code under test builds it.

use serde_json::{json, Value};

/// What a test without Garage says.
pub const HOW_TO_RUN: &str =
    "the S3 tier needs Garage: run `scripts/test.sh` (installs and starts it), or `scripts/garage.sh start` and \
     `. target/garage/env` before `cargo test -- --ignored`";

/// The local Garage: its endpoint and test buckets, and the runtime a client blocks on.
pub struct Garage {
    /// `AWS_ENDPOINT_URL`, always on the loopback interface.
    pub endpoint: String,
    /// Where the tests' objects go (`TIX_S3_TEST_BUCKET`, default `tix-logs-test`).
    pub bucket: String,
    /// Where dead letters go (`TIX_S3_TEST_DL_BUCKET`, default `tix-logs-dl`).
    pub dl_bucket: String,
    pub runtime: tokio::runtime::Runtime,
}

impl Garage {
    /// The Garage the environment names; panics with [`HOW_TO_RUN`] when none is set,
    /// and refuses an endpoint off the loopback interface (tests write and delete).
    pub fn from_env() -> Garage {
        let endpoint =
            std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| panic!("AWS_ENDPOINT_URL is not set: {HOW_TO_RUN}"));
        assert!(
            endpoint.contains("127.0.0.1") || endpoint.contains("localhost"),
            "refusing a non-loopback S3: {endpoint}"
        );
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        Garage { endpoint, bucket: bucket(), dl_bucket: dl_bucket(), runtime }
    }
}

/// The test bucket (`TIX_S3_TEST_BUCKET`, default `tix-logs-test`).
pub fn bucket() -> String {
    std::env::var("TIX_S3_TEST_BUCKET").unwrap_or_else(|_| "tix-logs-test".into())
}

/// The dead-letter bucket (`TIX_S3_TEST_DL_BUCKET`, default `tix-logs-dl`).
pub fn dl_bucket() -> String {
    std::env::var("TIX_S3_TEST_DL_BUCKET").unwrap_or_else(|_| "tix-logs-dl".into())
}

/// `AREA/TEST/NANOS-PID/`: a key prefix no other test (or earlier run) uses.
pub fn unique_prefix(area: &str, test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{area}/{test}/{nanos}-{}/", std::process::id())
}

/// One S3 notification record for an uploaded object, as S3 sends it (the key
/// URL-encoded, `+` for spaces).
pub fn s3_record(bucket: &str, key: &str, etag: &str, size: usize) -> Value {
    json!({
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "garage",
        "eventTime": "2024-02-06T00:00:11.407Z",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "tix-logs-ingest",
            "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": fixtures::samples::aws_encode_key(key), "size": size, "eTag": etag.trim_matches('"'), "sequencer": "0065C1000000A0000B"}
        }
    })
}

/// An SQS event whose messages carry the given (message id, body) pairs.
pub fn sqs_event(messages: &[(String, String)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("receipt-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:garage:000000000000:tix-logs-ingest",
                "awsRegion": "garage"
            })
        })
        .collect();
    json!({ "Records": records })
}
