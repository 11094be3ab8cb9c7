//! Shared by the CLI's S3-tier tests (`s3_cli`, `es_cli`, `reconcile`): the Garage
//! connection that `scripts/garage.sh` starts (configured through the standard AWS
//! variables) and key prefixes no other test or earlier run uses.

#![allow(dead_code)]

use ingest::s3::S3Context;

/// A Garage connection, with the runtime its client blocks on.
pub struct Garage {
    pub s3: S3Context,
    pub bucket: String,
    pub dl_bucket: String,
    // Declared last: dropped after the client that uses it.
    _runtime: tokio::runtime::Runtime,
}

pub fn garage() -> Garage {
    std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL is not set: run scripts/test.sh (starts Garage)");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let s3 = S3Context::from_env_blocking(runtime.handle().clone());
    Garage {
        s3,
        bucket: std::env::var("TIX_S3_TEST_BUCKET").unwrap_or_else(|_| "tix-logs-test".into()),
        dl_bucket: std::env::var("TIX_S3_TEST_DL_BUCKET").unwrap_or_else(|_| "tix-logs-dl".into()),
        _runtime: runtime,
    }
}

/// `cli-tests/TEST/NANOS-PID/`: a prefix of its own for each test run.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("cli-tests/{test}/{nanos}-{}/", std::process::id())
}
