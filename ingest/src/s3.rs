//! S3 at the edge: the client (standard AWS configuration, `AWS_ENDPOINT_URL` for
//! S3-compatible servers), objects as [`SourceObject`]s streamed through `GetObject`,
//! `s3://bucket/prefix` listings, and the dead-letter store on an S3 prefix.
//!
//! The pipeline is synchronous and reads on its own thread, so every S3 call here
//! blocks on a Tokio runtime handle. Never call these from inside an async task: the
//! Lambda runs the pipeline under `spawn_blocking`, the CLI on its main thread.

use std::io::{BufWriter, Read, Write};
use std::time::Duration;

use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use indexer::aws_http::sdk_config;
use indexer::retry::RetryPolicy;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::runtime::Handle;

use crate::dead_letter::{segment_file_name, DeadLetterEntry, DeadLetterFile, DeadLetterStore};
use crate::error::{Error, Result};
use crate::events::ObjectRef;
use crate::id::SourceIdentity;
use crate::source::SourceObject;

/// How often a broken `GetObject` body is resumed (ranged, pinned to the same ETag or
/// version) before the object is reported failed, and the backoff before each resume.
/// Only the count bounds the resumes: each ranged read has its own idle timeout, so
/// `budget` is not used here.
const BODY_RESUMES: RetryPolicy = RetryPolicy {
    initial_backoff: Duration::from_millis(200),
    max_backoff: Duration::from_secs(1),
    max_retries: 3,
    budget: Duration::ZERO,
};

/// `s3://bucket/prefix`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// May be empty (the whole bucket).
    pub prefix: String,
}

impl S3Location {
    /// Parses `s3://bucket[/prefix]`; `None` when `text` is not an `s3://` URL.
    pub fn parse(text: &str) -> Option<std::result::Result<Self, String>> {
        crate::events::parse_s3_url(text).map(|parsed| parsed.map(|(bucket, prefix)| S3Location { bucket, prefix }))
    }

    /// Whether every key under `other` is also under `self` (or the two overlap so that
    /// writing under `other` would be seen under `self`).
    pub fn overlaps(&self, other: &S3Location) -> bool {
        self.bucket == other.bucket
            && (other.prefix.starts_with(&self.prefix) || self.prefix.starts_with(&other.prefix))
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// An S3 client and the runtime its calls block on. Cheap to clone.
#[derive(Clone)]
pub struct S3Context {
    client: Client,
    handle: Handle,
    body_idle_timeout: Duration,
}

/// How long a `GetObject` body may send nothing before the read counts as broken (and is
/// resumed). The SDK's read timeout covers only the wait for the response headers; a
/// body that stalls mid-object would otherwise hold the reader forever.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

impl std::fmt::Debug for S3Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client's configuration holds credentials: show nothing of it.
        f.debug_struct("S3Context").finish_non_exhaustive()
    }
}

impl S3Context {
    /// Loads the standard AWS configuration (environment, profiles, instance roles).
    /// With a custom endpoint (`AWS_ENDPOINT_URL`, an S3-compatible server) requests
    /// use path-style addressing, which such servers expect.
    pub async fn from_env(handle: Handle) -> Self {
        Self::from_config(&sdk_config().await, handle)
    }

    /// [`S3Context::from_env`] from an AWS configuration already loaded (the Lambda's
    /// start loads it once for SSM and S3).
    pub fn from_config(shared: &aws_config::SdkConfig, handle: Handle) -> Self {
        let mut builder = aws_sdk_s3::config::Builder::from(shared)
            // Only what S3 requires: S3-compatible servers differ on the newer defaults.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .read_timeout(Duration::from_secs(30))
                    .build(),
            );
        if shared.endpoint_url().is_some() || std::env::var_os("TIX_S3_PATH_STYLE").is_some() {
            builder = builder.force_path_style(true);
        }
        S3Context { client: Client::from_conf(builder.build()), handle, body_idle_timeout: BODY_IDLE_TIMEOUT }
    }

    /// [`S3Context::from_env`] for synchronous callers (not inside the runtime).
    pub fn from_env_blocking(handle: Handle) -> Self {
        handle.clone().block_on(Self::from_env(handle))
    }

    /// A context from an explicit client (tests with other credentials).
    pub fn with_client(client: Client, handle: Handle) -> Self {
        S3Context { client, handle, body_idle_timeout: BODY_IDLE_TIMEOUT }
    }

    /// The same context with another body idle timeout (default 30 s).
    pub fn with_body_idle_timeout(mut self, idle: Duration) -> Self {
        self.body_idle_timeout = idle;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// Every object under `location`, in key order, following pagination. Folder
    /// markers (keys ending in `/`) are left out: they hold no records.
    pub fn list(&self, location: &S3Location) -> Result<Vec<S3Object>> {
        let listed = self.list_with_times(location)?;
        Ok(listed.into_iter().filter(|l| !l.is_folder_marker()).map(|l| l.object).collect())
    }

    /// Every key under `location`, folder markers included, in key order, following
    /// pagination; each as the [`S3Object`] [`S3Context::list`] would ingest (so its
    /// identity and checkpoint key are the ones `tix-logs ingest s3://...` records) with
    /// the listing's `LastModified`. For `tix-logs reconcile`.
    pub fn list_with_times(&self, location: &S3Location) -> Result<Vec<ListedObject>> {
        self.list_with_times_until(location, &|| false)
    }

    /// [`S3Context::list_with_times`], giving up between pages once `stop` says so (the
    /// invocation's deadline): a partial listing would report the rest as nothing.
    pub fn list_with_times_until(&self, location: &S3Location, stop: &dyn Fn() -> bool) -> Result<Vec<ListedObject>> {
        let failure = |error: String| Error::Source { source_name: location.to_string(), error: io_error(error) };
        self.block_on(async {
            let mut objects = Vec::new();
            let mut pages =
                self.client.list_objects_v2().bucket(&location.bucket).prefix(&location.prefix).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    failure(format!(
                        "listing failed: {} (check the bucket name, AWS_REGION / AWS_ENDPOINT_URL, and that the \
                         credentials may s3:ListBucket)",
                        DisplayErrorContext(&e)
                    ))
                })?;
                if stop() {
                    return Err(failure(format!(
                        "listing stopped at the deadline after {} keys; give the run more time or a narrower prefix",
                        objects.len()
                    )));
                }
                for object in page.contents() {
                    let Some(key) = object.key() else { continue };
                    let etag = object.e_tag().unwrap_or_default();
                    let s3_object = S3Object::new(
                        self.clone(),
                        ObjectRef {
                            bucket: location.bucket.clone(),
                            key: key.to_string(),
                            version_id: None,
                            etag: Some(etag.to_string()),
                            size: object.size().and_then(|s| u64::try_from(s).ok()),
                        },
                    );
                    let last_modified_ms = object.last_modified().and_then(|t| t.to_millis().ok());
                    objects.push(ListedObject { object: s3_object, last_modified_ms });
                }
            }
            Ok(objects)
        })
    }

    /// The ETag of `key` (of its version `version_id` when given), from one `HeadObject`:
    /// an object's identity is its ETag, and some events carry only a version id.
    pub fn head_etag(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<String> {
        let failure = |message: String| Error::Source {
            source_name: format!(
                "s3://{bucket}/{key}{}",
                version_id.map(|v| format!("?versionId={v}")).unwrap_or_default()
            ),
            error: io_error(message),
        };
        let head = self.client.head_object().bucket(bucket).key(key).set_version_id(version_id.map(str::to_string));
        let output = self.block_on(head.send()).map_err(|e| {
            let not_found = e.as_service_error().is_some_and(|s| s.is_not_found());
            let what =
                if not_found { "the object or version does not exist (deleted before it was read?): " } else { "" };
            failure(format!("HeadObject failed: {what}{}", DisplayErrorContext(&e)))
        })?;
        match output.e_tag() {
            Some(etag) if !etag.is_empty() => Ok(etag.to_string()),
            _ => Err(failure("HeadObject answered without an ETag".into())),
        }
    }

    /// The object an event names, with the identity a listing of its bucket gives it:
    /// bucket, key, ETag. An event without an ETag costs one `HeadObject` (of the
    /// event's version, when it names one).
    pub fn resolve(&self, mut object: ObjectRef) -> Result<S3Object> {
        if object.etag.as_deref().is_none_or(str::is_empty) {
            object.etag = Some(self.head_etag(&object.bucket, &object.key, object.version_id.as_deref())?);
        }
        Ok(S3Object::new(self.clone(), object))
    }

    /// Uploads `body` (tests and benchmarks) and returns the ETag S3 gave it.
    pub fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<String> {
        self.block_on(self.client.put_object().bucket(bucket).key(key).body(ByteStream::from(body)).send())
            .map(|output| output.e_tag().unwrap_or_default().to_string())
            .map_err(|e| Error::Source {
                source_name: format!("s3://{bucket}/{key}"),
                error: io_error(format!("upload failed: {}", DisplayErrorContext(&e))),
            })
    }
}

/// One key of a listing ([`S3Context::list_with_times`]).
#[derive(Clone)]
pub struct ListedObject {
    /// The object as ingestion reads it; its identity is the listing's ETag identity.
    pub object: S3Object,
    /// `LastModified`, in milliseconds since the epoch, when the listing gave one.
    pub last_modified_ms: Option<i64>,
}

impl ListedObject {
    pub fn key(&self) -> &str {
        &self.object.object.key
    }

    /// A key ending in `/`: a folder marker, never ingested.
    pub fn is_folder_marker(&self) -> bool {
        self.key().ends_with('/')
    }
}

fn io_error(message: String) -> std::io::Error {
    std::io::Error::other(message)
}

/// One S3 object, identified by bucket, key and ETag (see [`SourceIdentity::S3`]).
#[derive(Clone)]
pub struct S3Object {
    s3: S3Context,
    object: ObjectRef,
    identity: SourceIdentity,
}

impl S3Object {
    /// The object with its ETag identity. The version id never enters the identity, so
    /// an object has one identity whether a notification (which carries a version id on
    /// a versioned bucket) or a listing (which does not) names it. An `object` without an
    /// ETag gets an empty one: use [`S3Context::resolve`] for events.
    pub fn new(s3: S3Context, object: ObjectRef) -> Self {
        let version = object.etag.clone().unwrap_or_default();
        let identity = SourceIdentity::S3 { bucket: object.bucket.clone(), key: object.key.clone(), version };
        S3Object { s3, object, identity }
    }

    pub fn object(&self) -> &ObjectRef {
        &self.object
    }

    async fn get(&self, from: u64) -> std::io::Result<ByteStream> {
        let request = self
            .s3
            .client
            .get_object()
            .bucket(&self.object.bucket)
            .key(&self.object.key)
            .set_version_id(self.object.version_id.clone())
            // Read exactly the bytes the identity (the ETag) names: a replaced object
            // has its own event and its own identity. With a version id too, this only
            // restates what the version pins, so a mismatch means a broken event.
            .set_if_match(self.object.etag.clone().filter(|etag| !etag.is_empty()))
            .set_range((from > 0).then(|| format!("bytes={from}-")));
        match request.send().await {
            Ok(output) => Ok(output.body),
            Err(e) => {
                let not_found = e.as_service_error().is_some_and(|s| s.is_no_such_key());
                let what = if not_found { "the object does not exist (deleted before it was read?): " } else { "" };
                Err(io_error(format!("GetObject failed: {what}{}", DisplayErrorContext(&e))))
            }
        }
    }

    fn bridge(&self, body: ByteStream) -> Box<dyn Read + Send> {
        Box::new(IdleGuardedBody {
            body: Box::pin(body.into_async_read()),
            handle: self.s3.handle.clone(),
            idle: self.s3.body_idle_timeout,
        })
    }
}

impl SourceObject for S3Object {
    fn identity(&self) -> &SourceIdentity {
        &self.identity
    }
    fn size_hint(&self) -> Option<u64> {
        self.object.size
    }
    fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
        let body = self.s3.block_on(self.get(0))?;
        Ok(Box::new(ResumingBody { object: self.clone(), inner: self.bridge(body), position: 0, resumes: 0 }))
    }
}

/// A body read synchronously, one blocking read at a time, that fails with `TimedOut`
/// when no byte arrives for `idle`.
struct IdleGuardedBody {
    body: std::pin::Pin<Box<dyn AsyncRead + Send>>,
    handle: Handle,
    idle: Duration,
}

impl Read for IdleGuardedBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let idle = self.idle;
        let body = &mut self.body;
        // The timer must be made inside the runtime, hence the async block.
        match self.handle.block_on(async move { tokio::time::timeout(idle, body.read(buf)).await }) {
            Ok(read) => read,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no data from S3 for {} s", idle.as_secs_f64()),
            )),
        }
    }
}

/// A `GetObject` body that, when the connection breaks mid-object, resumes with a
/// ranged request from the last byte read (pinned by ETag or version id).
struct ResumingBody {
    object: S3Object,
    inner: Box<dyn Read + Send>,
    position: u64,
    /// Resumes made so far.
    resumes: u32,
}

impl Read for ResumingBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Ok(n) => {
                    self.position += n as u64;
                    return Ok(n);
                }
                Err(error)
                    if self.resumes < BODY_RESUMES.max_retries && error.kind() != std::io::ErrorKind::Interrupted =>
                {
                    self.resumes += 1;
                    tracing::warn!(
                        object = %self.object.identity.display_name(),
                        offset = self.position,
                        error = %error,
                        "S3 body broke; resuming with a ranged GetObject"
                    );
                    std::thread::sleep(BODY_RESUMES.jittered_backoff(self.resumes));
                    match self.object.s3.block_on(self.object.get(self.position)) {
                        Ok(body) => self.inner = self.object.bridge(body),
                        Err(reopen) => {
                            return Err(io_error(format!(
                                "read broke at byte {} ({error}) and could not resume: {reopen}",
                                self.position
                            )))
                        }
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    return Err(io_error(format!(
                        "read broke at byte {} after {} resumes: {error}",
                        self.position, BODY_RESUMES.max_retries
                    )))
                }
            }
        }
    }
}

/// Dead-letter entries on an S3 prefix: one NDJSON object per source segment, named as
/// [`segment_file_name`] says, spooled to a local temporary file and uploaded when the
/// segment ends (a replay overwrites the same object, so entries are never doubled).
#[derive(Clone)]
pub struct S3DeadLetter {
    s3: S3Context,
    location: S3Location,
}

impl S3DeadLetter {
    pub fn new(s3: S3Context, location: S3Location) -> Self {
        S3DeadLetter { s3, location }
    }

    fn object_key(&self, source: &SourceIdentity, resume_after: u64) -> String {
        let separator = if self.location.prefix.is_empty() || self.location.prefix.ends_with('/') { "" } else { "/" };
        format!("{}{separator}{}", self.location.prefix, segment_file_name(source, resume_after))
    }

    /// Every entry under the prefix (tests and audits).
    pub fn read_all(&self) -> Result<Vec<DeadLetterEntry>> {
        let mut entries = Vec::new();
        for object in self.s3.list(&self.location)? {
            let mut text = String::new();
            object
                .open()
                .and_then(|mut body| body.read_to_string(&mut text))
                .map_err(|error| Error::DeadLetter { path: self.location.to_string(), error })?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let entry = serde_json::from_str(line).map_err(|e| Error::DeadLetter {
                    path: object.identity.display_name(),
                    error: io_error(e.to_string()),
                })?;
                entries.push(entry);
            }
        }
        Ok(entries)
    }
}

impl DeadLetterStore for S3DeadLetter {
    fn begin(&mut self, source: &SourceIdentity, resume_after: u64) -> Result<Box<dyn DeadLetterFile>> {
        Ok(Box::new(S3DeadLetterFile {
            s3: self.s3.clone(),
            bucket: self.location.bucket.clone(),
            key: self.object_key(source, resume_after),
            spool: None,
        }))
    }

    fn location(&self) -> String {
        self.location.to_string()
    }
}

struct S3DeadLetterFile {
    s3: S3Context,
    bucket: String,
    key: String,
    spool: Option<BufWriter<tempfile::NamedTempFile>>,
}

impl S3DeadLetterFile {
    fn error(&self, message: String) -> Error {
        Error::DeadLetter { path: format!("s3://{}/{}", self.bucket, self.key), error: io_error(message) }
    }
}

impl DeadLetterFile for S3DeadLetterFile {
    fn write(&mut self, entry: &DeadLetterEntry) -> Result<()> {
        if self.spool.is_none() {
            let file = tempfile::NamedTempFile::new().map_err(|e| self.error(format!("cannot spool entries: {e}")))?;
            self.spool = Some(BufWriter::new(file));
        }
        let line = serde_json::to_string(entry).map_err(|e| self.error(e.to_string()))?;
        let spool = self.spool.as_mut().expect("spool was just created");
        spool
            .write_all(line.as_bytes())
            .and_then(|_| spool.write_all(b"\n"))
            .map_err(|e| Error::DeadLetter { path: "local dead-letter spool".into(), error: e })
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        let Some(spool) = self.spool.take() else {
            // No entries this time: remove what an earlier attempt left (deleting a
            // missing key succeeds in S3).
            let deleted = self.s3.block_on(self.s3.client.delete_object().bucket(&self.bucket).key(&self.key).send());
            return deleted
                .map(|_| ())
                .map_err(|e| self.error(format!("DeleteObject failed: {}", DisplayErrorContext(&e))));
        };
        let file = spool.into_inner().map_err(|e| self.error(format!("cannot flush the spool: {}", e.error())))?;
        let path = file.path().to_path_buf();
        let uploaded = self.s3.block_on(async {
            let body = ByteStream::from_path(&path).await.map_err(|e| format!("cannot read the spool: {e}"))?;
            self.s3
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .content_type("application/x-ndjson")
                .body(body)
                .send()
                .await
                .map_err(|e| format!("PutObject failed: {}", DisplayErrorContext(&e)))
        });
        drop(file);
        uploaded.map(|_| ()).map_err(|message| self.error(message))
    }
}

/// The sources a CLI argument names: an `s3://` prefix listed in full, else `None`.
pub fn sources_for(arg: &str, s3: &S3Context) -> Option<Result<Vec<Box<dyn SourceObject>>>> {
    let location = S3Location::parse(arg)?;
    Some(
        location
            .map_err(Error::Config)
            .and_then(|location| s3.list(&location))
            .map(|objects| objects.into_iter().map(|o| Box::new(o) as Box<dyn SourceObject>).collect()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_parse_into_bucket_and_prefix() {
        let cases = [
            ("s3://logs", Some(("logs", ""))),
            ("s3://logs/", Some(("logs", ""))),
            ("s3://logs/2024/02/", Some(("logs", "2024/02/"))),
            ("s3://logs/a b+c", Some(("logs", "a b+c"))),
            ("/tmp/logs", None),
        ];
        for (text, expected) in cases {
            let parsed = S3Location::parse(text).map(|r| r.unwrap());
            assert_eq!(parsed.as_ref().map(|l| (l.bucket.as_str(), l.prefix.as_str())), expected, "{text}");
        }
        assert!(S3Location::parse("s3:///x").unwrap().is_err());
    }

    #[test]
    fn overlapping_prefixes_are_detected_both_ways() {
        let loc = |t: &str| S3Location::parse(t).unwrap().unwrap();
        assert!(loc("s3://b/logs/").overlaps(&loc("s3://b/logs/dead/")));
        assert!(loc("s3://b/logs/dead/").overlaps(&loc("s3://b/logs/")));
        assert!(loc("s3://b/").overlaps(&loc("s3://b/dead/")), "a whole-bucket trigger covers every prefix");
        assert!(!loc("s3://b/logs/").overlaps(&loc("s3://b/dead/")));
        assert!(!loc("s3://b/logs/").overlaps(&loc("s3://other/logs/")));
    }
}
