//! [`ElasticsearchBackend`]: the client half of the Elasticsearch backend, which owns the
//! HTTP transport and the tokio runtime it runs on, and moves the bytes the pure sibling
//! modules prepare and read. Built with the `elasticsearch` feature.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use elasticsearch::http::transport::{SingleNodeConnectionPool, Transport, TransportBuilder};
use elasticsearch::http::Method;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

use super::bulk::{Action, BulkEncoder, BulkJob, EncodedBatch, Stop, Verdict};
use super::config::{EsAuth, EsConfig, RetryPolicy};
use super::{bulk, config, engine, mapping, query, report, sigv4};
use crate::backend::{Backend, IndexDoc, Outcome, SearchRequest, SearchResponse, SourceRecord, Store};
use crate::encode::JsonEncoder;
use crate::error::BoxError;
use crate::report::{BookingFacts, ReportWindow};
use crate::retry::{is_retryable_status, GiveUp, RequestKind};
use crate::{Error, Result};

const NDJSON: &str = "application/x-ndjson";
const JSON: &str = "application/json";
/// Retries of a query or setup call: a person is waiting, so an unreachable cluster is
/// reported within about a second rather than after the whole bulk retry budget.
const CALL_RETRIES: u32 = 3;

/// An Elasticsearch cluster as a [`Backend`].
pub struct ElasticsearchBackend {
    /// Always `Some` until dropped (see the `Drop` impl).
    runtime: Option<Runtime>,
    client: Client,
    config: EsConfig,
    /// Checkpoint records to write with the next flush (after the documents before them).
    pending_sources: Vec<SourceRecord>,
}

impl std::fmt::Debug for ElasticsearchBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The transport's own Debug would print the credentials: never include it.
        f.debug_struct("ElasticsearchBackend").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The cloneable part shared with in-flight bulk tasks.
#[derive(Clone)]
struct Client {
    transport: Transport,
    prefix: Arc<str>,
    retry: RetryPolicy,
    /// Timeout of one request (lowered near [`Client::hard_deadline`]).
    request_timeout: std::time::Duration,
    /// No request, retry or backoff may last past this instant (the Lambda's remaining
    /// time less its margin); see [`Backend::set_deadline`].
    hard_deadline: Option<Instant>,
    /// `TIX_ES_AUTH=sigv4`: signs every request in [`Client::send`] (shared by the clones,
    /// so the credential cache is too). `None` for the other modes.
    signer: Option<Arc<sigv4::SigV4Signer>>,
    /// What to check when the cluster refuses the credentials, for the mode in use.
    auth_hint: &'static str,
}

impl ElasticsearchBackend {
    /// Builds the client (no request is sent yet: [`Backend::ensure_ready`] is the first).
    pub fn connect(config: EsConfig) -> Result<Self> {
        let mut config = config;
        config.validate()?;
        let url = config.parsed_url()?;
        let mut builder =
            TransportBuilder::new(SingleNodeConnectionPool::new(url.clone())).timeout(config.request_timeout);
        builder = match &config.auth {
            EsAuth::None => builder,
            EsAuth::ApiKey(key) => match key.expose().split_once(':') {
                Some((id, secret)) => builder.auth(Credentials::ApiKey(id.to_string(), secret.to_string())),
                None => builder.auth(Credentials::EncodedApiKey(key.expose().to_string())),
            },
            EsAuth::Basic { username, password } => {
                builder.auth(Credentials::Basic(username.clone(), password.expose().to_string()))
            }
            // Signed per request in `Client::send`; the transport sends no credentials.
            EsAuth::SigV4 { .. } => builder,
        };
        let signer = match &config.auth {
            EsAuth::SigV4 { region, service } => {
                if !config::is_region_name(region) {
                    return Err(Error::config(
                        "TIX_ES_REGION",
                        format!(
                            "SigV4 region {region:?} is not an AWS region name such as eu-west-1: set TIX_ES_REGION"
                        ),
                    ));
                }
                Some(Arc::new(sigv4::SigV4Signer::new(region.clone(), *service, url.clone())))
            }
            _ => None,
        };
        if let Some(path) = &config.ca_cert {
            let ca_error = |message: String, source: BoxError| Error::Config {
                setting: "TIX_ES_CA_CERT",
                message,
                source: Some(source),
            };
            let pem =
                std::fs::read(path).map_err(|e| ca_error(format!("TIX_ES_CA_CERT {}", path.display()), e.into()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| ca_error(format!("TIX_ES_CA_CERT {}: not a PEM certificate", path.display()), e.into()))?;
            // Full validation: the private CA is trusted in addition to the public roots,
            // and host names are still checked. There is deliberately no way to turn
            // verification off.
            builder = builder.cert_validation(CertificateValidation::Full(cert));
        }
        // A proxy from the environment must not intercept a cluster on this machine.
        if url.host_str().is_some_and(is_loopback_host) {
            builder = builder.disable_proxy();
        }
        let transport = builder
            .build()
            .map_err(|e| Error::Client { what: "building the Elasticsearch client", source: e.into() })?;
        // One worker thread runs the in-flight requests while the calling thread (inside
        // `block_on`) encodes the next body, so encoding and sending overlap.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tix-es-client")
            .enable_all()
            .build()
            .map_err(|e| Error::Client { what: "starting the Elasticsearch client runtime", source: e.into() })?;
        let client = Client {
            transport,
            prefix: Arc::from(config.index_prefix.as_str()),
            retry: config.retry,
            request_timeout: config.request_timeout,
            hard_deadline: None,
            signer,
            auth_hint: auth_hint(&config.auth),
        };
        Ok(ElasticsearchBackend { runtime: Some(runtime), client, config, pending_sources: Vec::new() })
    }

    /// The settings in use (secrets redacted in its `Debug`).
    pub fn config(&self) -> &EsConfig {
        &self.config
    }

    /// Runs a request future to its end on the backend's own runtime.
    /// `POST <events>/_search` or `_count` (`endpoint`) with `body`: the answer parsed by
    /// `parse`, a 400 as the user's query error, anything else as an HTTP error.
    fn events_query<T: Send>(
        &self,
        endpoint: &'static str,
        body: Value,
        request: &SearchRequest,
        parse: impl FnOnce(&Value) -> Result<T> + Send,
    ) -> Result<T> {
        let client = self.client.clone();
        let path = format!("{}/_{endpoint}", mapping::events_pattern(&client.prefix));
        self.block_on(async move {
            let (status, response) = client.json_call(Method::Post, &path, &[], Some(&body), client.deadline()).await?;
            match status {
                200 => parse(&response),
                400 => Err(query::search_error(request, reason_of(&response))),
                _ => Err(http_error(endpoint, status, &response)),
            }
        })?
    }

    fn block_on<F>(&self, future: F) -> Result<F::Output>
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        let runtime = self.runtime.as_ref().expect("the runtime lives until the backend is dropped");
        if tokio::runtime::Handle::try_current().is_err() {
            return Ok(runtime.block_on(future));
        }
        // This thread is inside another runtime's context: a `spawn_blocking` closure (the
        // Lambda's handler) or an async task. It may not enter a second runtime, so the
        // future runs on a scoped plain thread while this one waits (in a task, that
        // blocks its worker: call the backend from `spawn_blocking`).
        std::thread::scope(|scope| scope.spawn(|| runtime.block_on(future)).join())
            .map_err(|_| Error::internal("internal error: an Elasticsearch request thread panicked"))
    }

    /// Posts a JSON body and answers the status and the JSON answer: one query call, with
    /// the retries, deadline and credential errors of [`Client::json_call`].
    fn post_json(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        let client = self.client.clone();
        self.block_on(async move { client.json_call(Method::Post, path, &[], Some(body), client.deadline()).await })?
    }

    /// Deletes every index under the prefix and the template (test clean-up). Index
    /// names are listed first because clusters refuse wildcard deletes by default.
    #[cfg(feature = "conformance")]
    pub fn delete_everything(&self) -> Result<()> {
        let client = self.client.clone();
        self.block_on(async move {
            let deadline = client.deadline();
            let pattern = mapping::all_pattern(&client.prefix);
            let (status, listed) = client
                .json_call(
                    Method::Get,
                    &format!("_cat/indices/{pattern}"),
                    &[("format", "json"), ("h", "index")],
                    None,
                    deadline,
                )
                .await?;
            if status == 200 {
                let names: Vec<&str> = listed
                    .as_array()
                    .map(|a| a.iter().filter_map(|i| i.get("index").and_then(Value::as_str)).collect())
                    .unwrap_or_default();
                for chunk in names.chunks(50) {
                    let (status, body) =
                        client.json_call(Method::Delete, &chunk.join(","), &[], None, deadline).await?;
                    if status != 200 && status != 404 {
                        return Err(Error::Http {
                            status,
                            message: format!("deleting indices: HTTP {status}: {body}"),
                        });
                    }
                }
            }
            let template = format!("_index_template/{}", mapping::template_name(&client.prefix));
            client.json_call(Method::Delete, &template, &[], None, deadline).await?;
            Ok(())
        })?
    }
}

impl ElasticsearchBackend {
    /// Signs with credentials from `provider` instead of the standard AWS chain: static
    /// credentials in tests, or the provider of an `SdkConfig` the program has already
    /// loaded (so the S3 client and the cluster share one credential cache). Refused
    /// unless the backend was configured with [`EsAuth::SigV4`].
    pub fn with_aws_credentials(mut self, provider: impl sigv4::ProvideAwsCredentials + 'static) -> Result<Self> {
        let EsAuth::SigV4 { region, service } = &self.config.auth else {
            return Err(Error::config(
                "TIX_ES_AUTH",
                "AWS credentials were given, but the backend does not sign with SigV4: set TIX_ES_AUTH=sigv4",
            ));
        };
        let base_url = self.config.parsed_url()?;
        self.client.signer =
            Some(Arc::new(sigv4::SigV4Signer::with_provider(region.clone(), *service, base_url, provider)));
        Ok(self)
    }
}

impl Drop for ElasticsearchBackend {
    /// Dropping a runtime blocks until its tasks end, which tokio forbids inside another
    /// runtime (where the Lambda binary may drop its backend): the client's runtime is shut
    /// down in the background instead. Nothing is pending by then: every call waits for
    /// its requests.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Every byte but RFC 3986's unreserved characters (`A-Z a-z 0-9 - _ . ~`) is escaped:
/// the strict form SigV4 canonicalizes a query to (see [`sigv4::path_and_query`]), and
/// safe anywhere in a path segment.
pub(super) const UNRESERVED_ONLY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Percent-encodes one URL path segment (checkpoint keys are hex, but a path must never
/// be built from unescaped data).
fn path_segment(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED_ONLY).to_string()
}

/// Why one HTTP exchange got no answer. A certificate that fails verification is told
/// apart (by the TLS library's error type) because no retry can change it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SendFailure {
    Certificate(String),
    /// Connect, reset, timeout, unreadable body, signing: worth another try.
    Transport(String),
}

impl Client {
    /// When the calls of one operation must end: its retry budget, or the hard
    /// deadline if that comes first.
    fn deadline(&self) -> Instant {
        let budget = Instant::now() + self.retry.budget;
        self.hard_deadline.map_or(budget, |hard| hard.min(budget))
    }

    /// The timeout of a request sent now: the configured one, cut to what is left
    /// before the hard deadline. `None` when nothing is left: the request is not sent.
    fn request_timeout_now(&self) -> Option<std::time::Duration> {
        match self.hard_deadline {
            None => Some(self.request_timeout),
            Some(hard) => {
                let left = hard.saturating_duration_since(Instant::now());
                (!left.is_zero()).then(|| left.min(self.request_timeout))
            }
        }
    }

    /// Why a retry is not attempted before `deadline` (from [`Client::deadline`]): the
    /// hard deadline, when that is what ends it, or the retry budget.
    fn out_of_time(&self, deadline: Instant) -> String {
        match self.hard_deadline {
            Some(hard) if hard <= deadline => {
                "Elasticsearch: stopped retrying before the invocation's deadline; the object will be redelivered"
                    .to_string()
            }
            _ => format!("Elasticsearch: retry budget of {:?} exhausted", self.retry.budget),
        }
    }

    /// One HTTP exchange. Transport failures (connect, reset, timeout, unreadable body)
    /// come back as `Err` with a description that holds no credentials: the URL never
    /// carries any (see [`EsConfig::validate`]) and headers are not printed.
    ///
    /// With SigV4 the query goes into the path already encoded and the transport gets no
    /// query of its own: the transport joins the connection URL with the path exactly as
    /// [`sigv4::SigV4Signer::request_url`] does, so the URL signed is the URL requested.
    /// The body is sent as given (no compression), so the hash signed is the body's.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<(Bytes, &'static str)>,
    ) -> std::result::Result<(u16, Bytes), SendFailure> {
        let mut headers = HeaderMap::new();
        let body = body.map(|(bytes, content_type)| {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            bytes
        });
        let timeout = self.request_timeout_now().ok_or_else(|| {
            SendFailure::Transport(format!("not sent: the invocation's deadline is reached ({method:?} {path})"))
        })?;
        let signed_path;
        let (path, query) = match &self.signer {
            None => (path, Some(query)),
            Some(signer) => {
                signed_path = sigv4::path_and_query(path, query);
                let url = signer.request_url(&signed_path).map_err(SendFailure::Transport)?;
                for header in signer
                    .sign(method, &url, body.as_deref().unwrap_or_default())
                    .await
                    .map_err(SendFailure::Transport)?
                {
                    let mut value = HeaderValue::from_str(&header.value).map_err(|_| {
                        SendFailure::Transport(format!("SigV4: the {} header is not a valid header value", header.name))
                    })?;
                    value.set_sensitive(header.is_sensitive());
                    headers.insert(HeaderName::from_static(header.name), value);
                }
                (signed_path.as_str(), None)
            }
        };
        let response = self
            .transport
            .send(method, path, headers, query, body, Some(timeout))
            .await
            .map_err(|e| transport_failure(&e, ""))?;
        let status = response.status_code().as_u16();
        let bytes = response.bytes().await.map_err(|e| transport_failure(&e, "reading the response: "))?;
        Ok((status, bytes))
    }

    /// A JSON request retried on transport errors and the statuses
    /// [`RequestKind::Call`] retries, within the budget and at most [`CALL_RETRIES`] times.
    /// 401/403 become [`Error::Auth`], a 403 write block [`Error::Blocked`]; other
    /// statuses are returned to the caller.
    async fn json_call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        deadline: Instant,
    ) -> Result<(u16, Value)> {
        let bytes = body.map(|b| Bytes::from(serde_json::to_vec(b).expect("a JSON value always serializes")));
        let policy = self.retry.with_max_retries(CALL_RETRIES);
        let mut retries = 0u32;
        loop {
            let result = self.send(method, path, query, bytes.clone().map(|b| (b, JSON))).await;
            let retry_reason = match result {
                Ok((status @ (401 | 403), body)) => {
                    return Err(stop_error(Stop::refusal(status, &body), &self.prefix, self.auth_hint))
                }
                Ok((status, body)) if is_retryable_status(status, RequestKind::Call) => {
                    (Some(status), format!("HTTP {status}: {}", bulk::error_reason(&body)))
                }
                Ok((status, body)) => return Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null))),
                Err(SendFailure::Certificate(reason)) => return Err(Error::Certificate(format!("{path}: {reason}"))),
                Err(SendFailure::Transport(reason)) => (None, reason),
            };
            retries += 1;
            match policy.next_delay(retries, Instant::now(), deadline, rand::random()) {
                Ok(delay) => {
                    tracing::debug!(path, retries, reason = %retry_reason.1, "retrying Elasticsearch request");
                    tokio::time::sleep(delay).await;
                }
                Err(_) => {
                    return Err(match retry_reason {
                        (None, reason) => Error::Unreachable(format!("{path}: {reason}")),
                        (Some(status), reason) => {
                            Error::Http { status, message: format!("{path}: gave up after {retries} tries: {reason}") }
                        }
                    })
                }
            }
        }
    }

    /// Sends one encoded batch to `_bulk` until every item has an outcome.
    async fn run_bulk(self, batch: EncodedBatch, deadline: Instant) -> Result<Vec<(usize, Outcome)>> {
        let mut job = BulkJob::new(batch.items.len());
        while let Some(attempt) = job.next_attempt() {
            let body = batch.body_for(&attempt.items);
            let verdict = {
                let ids: Vec<&str> = attempt.items.iter().map(|&i| batch.items[i].id.as_str()).collect();
                match self
                    .send(Method::Post, "_bulk", &[("filter_path", bulk::BULK_FILTER_PATH)], Some((body, NDJSON)))
                    .await
                {
                    Ok((status, bytes)) => bulk::classify_response(status, &bytes, batch.action, &ids),
                    Err(SendFailure::Certificate(reason)) => Verdict::FailAll(reason),
                    Err(SendFailure::Transport(reason)) => Verdict::RetryAll(reason),
                }
            };
            match job.record(attempt, verdict) {
                Err(stop) => return Err(stop_error(stop, &self.prefix, self.auth_hint)),
                Ok(None) => {}
                Ok(Some(retry)) if !retry.create_first.is_empty() => {
                    // The cluster does not create indices on write: create each missing
                    // daily index (the template applies) and send its items again at
                    // once. A second "missing" for the same index stops the job.
                    for index in &retry.create_first {
                        self.create_index(index, deadline).await?;
                        job.index_created(index);
                    }
                    job.retry(retry);
                }
                Ok(Some(retry)) => {
                    let delay = match self.retry.next_delay(retry.retries, Instant::now(), deadline, rand::random()) {
                        Ok(delay) => delay,
                        Err(give_up) => {
                            let why = match give_up {
                                GiveUp::Attempts => {
                                    format!("Elasticsearch: gave up after {} retries", self.retry.max_retries)
                                }
                                GiveUp::Deadline => self.out_of_time(deadline),
                            };
                            tracing::warn!(
                                items = retry.items.len(),
                                reason = retry.last_error.as_deref().unwrap_or(""),
                                "{why}"
                            );
                            job.give_up(retry, &why);
                            continue;
                        }
                    };
                    tracing::debug!(
                        items = retry.items.len(),
                        retries = retry.retries,
                        reason = retry.last_error.as_deref().unwrap_or(""),
                        "retrying bulk items"
                    );
                    tokio::time::sleep(delay).await;
                    job.retry(retry);
                }
            }
        }
        Ok(job.finish().into_iter().zip(&batch.items).map(|(outcome, item)| (item.doc, outcome)).collect())
    }

    /// Creates a daily index that a write found missing. The index template gives it
    /// its mappings and settings; another writer creating it first is success too.
    async fn create_index(&self, index: &str, deadline: Instant) -> Result<()> {
        let missing = |reason: String| Error::IndexMissing {
            index: index.to_string(),
            pattern: mapping::events_pattern(&self.prefix),
            reason,
        };
        let (status, body) = match self.json_call(Method::Put, &path_segment(index), &[], None, deadline).await {
            Ok(answer) => answer,
            // 401/403: the credentials may write documents but not create indices.
            Err(Error::Auth(reason)) => return Err(missing(format!("creating it was refused: {reason}"))),
            Err(error) => return Err(error),
        };
        if index_now_exists(status, &body) {
            tracing::info!(index, "created a missing daily index (the cluster does not create indices on write)");
            return Ok(());
        }
        let reason = format!("PUT {index}: HTTP {status}: {}", reason_of(&body));
        if bulk::is_cluster_state_error(body.get("error")) {
            return Err(Error::Cluster(reason));
        }
        Err(missing(reason))
    }
}

/// A transport error as a [`SendFailure`], described with its causes (after `context`).
fn transport_failure(error: &elasticsearch::Error, context: &str) -> SendFailure {
    let text = format!("{context}{}", describe_error_chain(error));
    if is_certificate_failure(error) {
        SendFailure::Certificate(format!(
            "{text}; the cluster's certificate is not trusted: set TIX_ES_CA_CERT to its CA (PEM) and check that it \
             names the host in TIX_ES_URL"
        ))
    } else {
        SendFailure::Transport(text)
    }
}

/// Whether a transport error is the server's certificate failing verification: a rustls
/// `InvalidCertificate` somewhere in its chain. Retrying cannot change a certificate, so
/// such errors fail at once (the source is retried later) instead of spending the retry
/// budget.
fn is_certificate_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    if matches!(error.downcast_ref::<rustls::Error>(), Some(rustls::Error::InvalidCertificate(_))) {
        return true;
    }
    // An I/O error answers `source()` with the source of the error it wraps rather than
    // with that error, which is where the TLS stream puts the handshake's (wrapped in
    // another I/O error on the way up): look inside. The wrapped error's own causes are
    // that `source()`, so the chain is walked from there and only once.
    if let Some(inner) = error.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
        return is_certificate_failure(inner);
    }
    error.source().is_some_and(is_certificate_failure)
}

fn describe_error_chain(error: &elasticsearch::Error) -> String {
    let text = crate::error::describe_chain(error);
    if error.is_timeout() {
        format!("timed out: {text}")
    } else {
        text
    }
}

fn stop_error(stop: Stop, prefix: &str, auth_hint: &str) -> Error {
    match stop {
        Stop::Auth(reason) => auth_message(reason, auth_hint),
        Stop::Blocked(reason) => blocked_message(reason),
        Stop::IndexMissing { index, reason } => {
            Error::IndexMissing { index, pattern: mapping::events_pattern(prefix), reason }
        }
        Stop::Cluster(reason) => Error::Cluster(format!(
            "{reason}; no document was rejected. Fix the cluster (open a closed index with POST <index>/_open, raise \
             cluster.max_shards_per_node or delete old daily indices, remove an alias or data stream that takes a \
             daily index name, or choose a valid TIX_ES_INDEX_PREFIX), then run again"
        )),
    }
}

fn blocked_message(reason: String) -> Error {
    Error::Blocked(format!(
        "Elasticsearch refuses writes ({reason}); no document was rejected, run again once the block is lifted. \
         Check the disk watermarks (GET _cat/allocation?v; the flood-stage watermark sets \
         index.blocks.read_only_allow_delete) and clear index.blocks.write / index.blocks.read_only / \
         index.blocks.read_only_allow_delete with PUT <index>/_settings (ILM's readonly action sets \
         index.blocks.write on older indices; cluster.blocks.read_only is in _cluster/settings)"
    ))
}

fn auth_message(reason: String, auth_hint: &str) -> Error {
    Error::Auth(format!("the cluster refused the request ({reason}); {auth_hint}"))
}

/// What a person should check when the cluster refuses the credentials of `auth`.
fn auth_hint(auth: &EsAuth) -> &'static str {
    match auth {
        EsAuth::None => {
            "the cluster wants credentials: set TIX_ES_API_KEY, TIX_ES_USERNAME/TIX_ES_PASSWORD, or TIX_ES_AUTH=sigv4 \
             for Amazon OpenSearch Service"
        }
        EsAuth::ApiKey(_) => "check TIX_ES_API_KEY and the key's privileges (README, \"Authentication\")",
        EsAuth::Basic { .. } => {
            "check TIX_ES_USERNAME/TIX_ES_PASSWORD and the user's roles (README, \"Authentication\")"
        }
        EsAuth::SigV4 { .. } => {
            "check the AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID, the Lambda's role) and the clock; the IAM \
             policy must allow es:ESHttp* (aoss:APIAccessAll on Serverless), and with fine-grained access control \
             the IAM role must be mapped to an OpenSearch role (README, \"Authentication\")"
        }
    }
}

impl Backend for ElasticsearchBackend {
    type Doc = IndexDoc;
    type Encoder = JsonEncoder;

    fn encoder(&self) -> JsonEncoder {
        JsonEncoder
    }

    /// Learns which engine answers (`GET /`, read by [`engine::Engine::from_root`]) and
    /// refuses one without composable index templates; installs the retention policy
    /// when `TIX_ES_RETENTION_DAYS` is set, then the index template chosen for that engine
    /// (idempotent: PUT replaces it), and creates the checkpoint index if it does not
    /// exist yet. Nothing depends on Elasticsearch's `X-Elastic-Product` header, which
    /// OpenSearch does not send.
    fn ensure_ready(&mut self) -> Result<()> {
        let client = self.client.clone();
        let retention_days = self.config.retention_days;
        self.block_on(async move {
            let deadline = client.deadline();
            let engine = detect_engine(&client, deadline).await?;
            tracing::info!(engine = %engine, "search cluster");
            engine.check_supported()?;
            // The policy first, so the first index the template attaches to it finds it.
            install_retention(&client, &engine, retention_days, deadline).await?;
            install_template(&client, &engine, retention_days, deadline).await?;
            let sources = mapping::sources_index(&client.prefix);
            let (status, body) =
                client.json_call(Method::Put, &sources, &[], Some(&mapping::sources_index_body()), deadline).await?;
            if !index_now_exists(status, &body) {
                return Err(http_error(format!("creating index {sources}"), status, &body));
            }
            let pattern = mapping::analyst_index_pattern(&client.prefix);
            let time_field = mapping::ANALYST_TIME_FIELD;
            tracing::info!(
                index_pattern = %pattern,
                time_field,
                "analysts: in Kibana (data view) or OpenSearch Dashboards (index pattern) use {pattern} with time field \
                 {time_field}; it matches the daily indices and not the checkpoint index {sources}"
            );
            Ok(())
        })?
    }

    fn index_batch(&mut self, docs: &[IndexDoc]) -> Result<Vec<Outcome>> {
        if docs.is_empty() {
            return Ok(vec![]);
        }
        let client = self.client.clone();
        let encoder = BulkEncoder {
            prefix: self.config.index_prefix.clone(),
            max_bytes: self.config.batch_bytes,
            max_docs: self.config.batch_docs,
        };
        let max_in_flight = self.config.max_in_flight.max(1);
        self.block_on(async move {
            let deadline = client.deadline();
            let mut outcomes: Vec<Option<Outcome>> = vec![None; docs.len()];
            let mut in_flight = JoinSet::new();
            let mut next = 0;
            loop {
                // Encode lazily: at most `max_in_flight` bodies exist at once, whatever
                // the size of `docs`.
                while in_flight.len() < max_in_flight && next < docs.len() {
                    let (batch, after) = encoder.encode_next(docs, next);
                    next = after;
                    in_flight.spawn(client.clone().run_bulk(batch, deadline));
                }
                match in_flight.join_next().await {
                    None => break,
                    Some(Ok(Ok(results))) => {
                        for (doc, outcome) in results {
                            outcomes[doc] = Some(outcome);
                        }
                    }
                    // Dropping the set aborts the other requests: the run stops.
                    Some(Ok(Err(error))) => return Err(error),
                    Some(Err(join)) => {
                        return Err(Error::Internal {
                            message: "bulk request task failed".into(),
                            source: Some(join.into()),
                        })
                    }
                }
            }
            Ok(outcomes
                .into_iter()
                .map(|o| o.unwrap_or(Outcome::Failed { reason: "bulk item never sent".into() }))
                .collect())
        })?
    }

    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.client.hard_deadline = deadline;
    }

    fn record_source(&mut self, record: &SourceRecord) -> Result<()> {
        self.pending_sources.retain(|r| r.key != record.key);
        self.pending_sources.push(record.clone());
        Ok(())
    }

    /// Writes pending checkpoints (after every document acknowledged before them, which
    /// Elasticsearch has already made durable once `_bulk` answered). No `_refresh`
    /// unless [`EsConfig::refresh_on_flush`] asks for one: durability does not need it
    /// (a `create` finds a duplicate and `GET _doc` a checkpoint in real time), and
    /// searches see new documents within the index's `refresh_interval` anyway.
    fn flush(&mut self) -> Result<()> {
        let refresh = self.config.refresh_on_flush;
        let client = self.client.clone();
        let index = mapping::sources_index(&client.prefix);
        let entries: Vec<(String, String, Value)> = self
            .pending_sources
            .iter()
            .map(|r| (index.clone(), r.key.clone(), serde_json::to_value(r).unwrap_or(Value::Null)))
            .collect();
        self.block_on(async move {
            let deadline = client.deadline();
            if !entries.is_empty() {
                let batch = bulk::encode_with(Action::Index, &entries);
                for (_, outcome) in client.clone().run_bulk(batch, deadline).await? {
                    match outcome {
                        Outcome::Indexed => {}
                        Outcome::Duplicate => {}
                        Outcome::Rejected { reason } | Outcome::Failed { reason } => {
                            return Err(Error::Checkpoint { index, reason })
                        }
                    }
                }
            }
            if !refresh {
                return Ok(());
            }
            let path = format!("{}/_refresh", mapping::all_pattern(&client.prefix));
            let (status, body) = client.json_call(Method::Post, &path, &[], None, deadline).await?;
            if status != 200 {
                return Err(http_error(format!("refreshing {path}"), status, &body));
            }
            Ok(())
        })??;
        self.pending_sources.clear();
        Ok(())
    }

    fn index_encoded(&mut self, docs: &mut [IndexDoc]) -> Result<Vec<Outcome>> {
        self.index_batch(docs)
    }
}

impl Store for ElasticsearchBackend {
    fn name(&self) -> &'static str {
        "elasticsearch"
    }

    fn source_record(&self, key: &str) -> Result<Option<SourceRecord>> {
        if let Some(pending) = self.pending_sources.iter().rev().find(|r| r.key == key) {
            return Ok(Some(pending.clone()));
        }
        let client = self.client.clone();
        let path = format!("{}/_doc/{}", mapping::sources_index(&client.prefix), path_segment(key));
        self.block_on(async move {
            let (status, body) = client.json_call(Method::Get, &path, &[], None, client.deadline()).await?;
            match status {
                200 if body.get("found") == Some(&Value::Bool(true)) => parse_source_record(&body["_source"]).map(Some),
                200 | 404 => Ok(None),
                _ => Err(http_error(format!("reading checkpoint {path}"), status, &body)),
            }
        })?
    }

    fn search(&self, request: &SearchRequest) -> Result<SearchResponse> {
        let body = query::search_body(request);
        self.events_query("search", body, request, |response| query::parse_search_response(response, request))
    }

    fn count(&self, request: &SearchRequest) -> Result<u64> {
        let body = query::count_body(request);
        self.events_query("count", body, request, query::parse_count_response)
    }

    /// Every checkpoint, paged with `search_after` so any number of sources is listed.
    fn sources(&self) -> Result<Vec<SourceRecord>> {
        let client = self.client.clone();
        let path = format!("{}/_search", mapping::sources_index(&client.prefix));
        let mut records = self.block_on(async move {
            let deadline = client.deadline();
            let mut records = Vec::new();
            let mut after: Option<Value> = None;
            loop {
                let mut body = json!({"size": 1000, "sort": [{"key": "asc"}], "query": {"match_all": {}}});
                if let Some(after) = &after {
                    body["search_after"] = after.clone();
                }
                let (status, response) = client.json_call(Method::Post, &path, &[], Some(&body), deadline).await?;
                match status {
                    200 => {}
                    404 => return Ok(records),
                    _ => return Err(http_error("listing sources", status, &response)),
                }
                let hits = response.pointer("/hits/hits").and_then(Value::as_array).cloned().unwrap_or_default();
                for hit in &hits {
                    records.push(parse_source_record(&hit["_source"])?);
                }
                match hits.last().and_then(|h| h.get("sort")) {
                    Some(sort) if hits.len() == 1000 => after = Some(sort.clone()),
                    _ => return Ok(records),
                }
            }
        })??;
        records.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| a.source.cmp(&b.source)));
        Ok(records)
    }

    /// Aggregations over the event indices, a page of bookings per request (see the
    /// `report` submodule); every page goes through the same retried, authenticated call
    /// as a search.
    fn booking_facts(&self, window: &ReportWindow) -> Result<Vec<BookingFacts>> {
        let path = format!("{}/_search", mapping::events_pattern(&self.client.prefix));
        report::gather(window, report::PAGE_SIZE, |body| self.post_json(&path, body))
    }
}

fn parse_source_record(source: &Value) -> Result<SourceRecord> {
    serde_json::from_value(source.clone())
        .map_err(|e| Error::Malformed { message: "unreadable source checkpoint".into(), source: Some(e) })
}

/// Whether a `PUT <index>` answered with the index in place: created (200), or created
/// before by another run or writer (`resource_already_exists_exception`).
fn index_now_exists(status: u16, body: &Value) -> bool {
    status == 200 || body.pointer("/error/type").and_then(Value::as_str) == Some("resource_already_exists_exception")
}

pub(super) fn reason_of(body: &Value) -> String {
    bulk::error_reason(body.to_string().as_bytes())
}

/// A status a call cannot go on from: `what` failed with `status` and the cluster's reason.
fn http_error(what: impl std::fmt::Display, status: u16, body: &Value) -> Error {
    Error::Http { status, message: format!("{what}: HTTP {status}: {}", reason_of(body)) }
}

/// The engine behind the URL. 401/403 stop here as credential errors, like every call;
/// any other answer without a version (OpenSearch Serverless has no `GET /`) is an
/// unknown engine, which takes the generic path.
async fn detect_engine(client: &Client, deadline: Instant) -> Result<engine::Engine> {
    let (status, body) = client.json_call(Method::Get, "", &[], None, deadline).await?;
    Ok(engine::Engine::from_root(status, &body))
}

/// Adds the privilege a refused lifecycle call needs to a credentials error.
fn with_privilege_hint(error: Error, hint: &str) -> Error {
    match error {
        Error::Auth(reason) => Error::Auth(format!("{reason}; the retention policy needs {hint}")),
        other => other,
    }
}

/// Installs (or updates) the lifecycle policy that deletes old daily indices, if
/// `TIX_ES_RETENTION_DAYS` asks for one. Without it nothing is installed or removed: a
/// policy of an earlier run stays, and so do the indices attached to it.
async fn install_retention(
    client: &Client,
    engine: &engine::Engine,
    days: Option<u32>,
    deadline: Instant,
) -> Result<()> {
    let id = engine::retention_policy_id(&client.prefix);
    let Some(days) = days else {
        tracing::info!(
            policy = %id,
            "TIX_ES_RETENTION_DAYS is not set: new daily indices get no lifecycle policy; a policy installed by an \
             earlier run, and the indices already attached to it, are left as they are"
        );
        return Ok(());
    };
    match engine.lifecycle() {
        engine::Lifecycle::Ilm => {
            let path = format!("_ilm/policy/{}", path_segment(&id));
            let (status, body) = client
                .json_call(Method::Put, &path, &[], Some(&engine::ilm_policy_body(days)), deadline)
                .await
                .map_err(|e| with_privilege_hint(e, "the manage_ilm cluster privilege"))?;
            if status != 200 {
                return Err(Error::Http {
                    status,
                    message: format!(
                        "installing the retention policy (PUT {path}): HTTP {status}: {}; ILM must be available \
                         ({engine}); unset TIX_ES_RETENTION_DAYS to run without retention",
                        reason_of(&body)
                    ),
                });
            }
            tracing::info!(
                policy = %id,
                days,
                "retention: ILM deletes each daily index {days} days after the date in its name (backfilled days too)"
            );
        }
        engine::Lifecycle::Ism { base } => install_ism_policy(client, base, &id, days, deadline).await?,
        engine::Lifecycle::Unavailable => tracing::warn!(
            engine = %engine,
            days,
            "TIX_ES_RETENTION_DAYS is set, but this cluster offers neither ILM nor ISM: tix-logs deletes nothing. On \
             OpenSearch Serverless set a data lifecycle policy on the collection for the indices {}",
            mapping::events_pattern(&client.prefix)
        ),
    }
    Ok(())
}

/// Creates the ISM policy, or updates it when its content differs. ISM refuses to
/// overwrite a policy without the `if_seq_no`/`if_primary_term` of the version read, so
/// the update is conditional; a concurrent writer's change (409) is read again.
async fn install_ism_policy(client: &Client, base: &str, id: &str, days: u32, deadline: Instant) -> Result<()> {
    let path = format!("{base}/policies/{}", path_segment(id));
    let hint = "the ISM permissions cluster:admin/opendistro/ism/policy/get and /write (e.g. the ism_full_access role)";
    let unavailable = |status: u16, body: &Value| Error::Http {
        status,
        message: format!(
            "installing the retention policy ({path}): HTTP {status}: {}; the cluster must have the Index State \
                 Management plugin at {base}; unset TIX_ES_RETENTION_DAYS to run without retention",
            reason_of(body)
        ),
    };
    let body = engine::ism_policy_body(&client.prefix, days);
    for _ in 0..3 {
        let (status, existing) = client
            .json_call(Method::Get, &path, &[], None, deadline)
            .await
            .map_err(|e| with_privilege_hint(e, hint))?;
        let condition = match status {
            200 if engine::ism_policy_is_current(&existing, &client.prefix, days) => {
                tracing::info!(policy = id, days, "retention: the ISM policy is already current");
                return Ok(());
            }
            200 => match (existing["_seq_no"].as_u64(), existing["_primary_term"].as_u64()) {
                (Some(seq_no), Some(primary_term)) => Some((seq_no.to_string(), primary_term.to_string())),
                _ => return Err(unavailable(status, &existing)),
            },
            404 => None,
            _ => return Err(unavailable(status, &existing)),
        };
        let query: Vec<(&str, &str)> = match &condition {
            Some((seq_no, primary_term)) => vec![("if_seq_no", seq_no), ("if_primary_term", primary_term)],
            None => vec![],
        };
        let (status, answer) = client
            .json_call(Method::Put, &path, &query, Some(&body), deadline)
            .await
            .map_err(|e| with_privilege_hint(e, hint))?;
        match status {
            200 | 201 => {
                tracing::info!(
                    policy = id,
                    days,
                    "retention: ISM deletes each daily index {days} days after it was created (index.creation_date): \
                     an index written by a backfill lives {days} days from the backfill, not from its date; indices \
                     created before this policy are not attached (POST {base}/add/<index> attaches them)"
                );
                return Ok(());
            }
            // Created or changed by another writer between the read and the write.
            409 => continue,
            _ => return Err(unavailable(status, &answer)),
        }
    }
    Err(Error::Http {
        status: 409,
        message: format!(
            "installing the retention policy ({path}): it changed under every attempt to update it (HTTP 409 three \
             times); another process is writing it, run again"
        ),
    })
}

/// Installs the index template this engine accepts. An engine that may not know
/// `ignore_dynamic_beyond_limit` is offered it and, when it refuses it, gets the template
/// without (new fields past the cap are then refused rather than left unindexed). A
/// refusal of ILM's settings means the engine has no ILM: that stops with what to do
/// rather than leaving the indices without the retention that was asked for.
async fn install_template(
    client: &Client,
    engine: &engine::Engine,
    retention_days: Option<u32>,
    deadline: Instant,
) -> Result<()> {
    let path = format!("_index_template/{}", mapping::template_name(&client.prefix));
    let mut features = engine.template_features(&client.prefix, retention_days);
    let body = mapping::index_template_with(&client.prefix, &features);
    let (mut status, mut answer) = client.json_call(Method::Put, &path, &[], Some(&body), deadline).await?;
    let refuses = |answer: &Value, setting: &str| status == 400 && answer.to_string().contains(setting);
    if features.ignore_dynamic_beyond_limit && refuses(&answer, "ignore_dynamic_beyond_limit") {
        if engine.accepts_ignore_dynamic_beyond_limit().is_some() {
            tracing::warn!(engine = %engine, "the cluster refused ignore_dynamic_beyond_limit although its version has it");
        }
        features.ignore_dynamic_beyond_limit = false;
        let body = mapping::index_template_with(&client.prefix, &features);
        (status, answer) = client.json_call(Method::Put, &path, &[], Some(&body), deadline).await?;
    }
    if features.ilm_policy.is_some() && status == 400 && answer.to_string().contains("index.lifecycle.") {
        return Err(Error::Http {
            status,
            message: format!(
            "installing index template {path}: the cluster ({engine}) refuses ILM's index.lifecycle settings ({}), so \
             it has no ILM (OpenSearch, or an Elasticsearch build without it) although it presents itself as \
             Elasticsearch. No template was installed. Unset TIX_ES_RETENTION_DAYS and set up retention with the \
             cluster's own tools (ISM: a policy with an ism_template for {}), then run again",
            reason_of(&answer),
            mapping::events_pattern(&client.prefix)
        ),
        });
    }
    if status != 200 {
        return Err(http_error(format!("installing index template {path}"), status, &answer));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elasticsearch::Secret;

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in ["localhost", "127.0.0.1", "127.8.9.1", "[::1]", "::1"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["es.example.com", "10.0.0.1", "192.168.1.2"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn no_request_waits_or_is_sent_past_the_hard_deadline() {
        let mut config = EsConfig::new("http://127.0.0.1:9");
        config.request_timeout = std::time::Duration::from_secs(30);
        config.retry.budget = std::time::Duration::from_secs(120);
        let mut backend = ElasticsearchBackend::connect(config).unwrap();
        assert_eq!(backend.client.request_timeout_now(), Some(std::time::Duration::from_secs(30)));
        assert!(backend.client.deadline() > Instant::now() + std::time::Duration::from_secs(100));

        let hard = Instant::now() + std::time::Duration::from_secs(2);
        backend.set_deadline(Some(hard));
        let timeout = backend.client.request_timeout_now().expect("time is left");
        assert!(timeout <= std::time::Duration::from_secs(2), "{timeout:?}");
        assert_eq!(backend.client.deadline(), hard, "the retry budget ends at the hard deadline");

        backend.set_deadline(Some(Instant::now()));
        assert_eq!(backend.client.request_timeout_now(), None, "nothing is sent once the deadline is reached");
        let deadline = backend.client.deadline();
        assert!(backend.client.out_of_time(deadline).contains("deadline"), "{}", backend.client.out_of_time(deadline));
        backend.set_deadline(None);
        assert_eq!(backend.client.request_timeout_now(), Some(std::time::Duration::from_secs(30)));
    }

    /// A cause above the TLS error, as the HTTP client layers put it.
    #[derive(Debug)]
    struct Layer(std::io::Error);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("error sending request")
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn certificate_failures_are_recognised_by_type_not_text() {
        let tls = |error: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, error);
        let untrusted = tls(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer));
        assert!(is_certificate_failure(&untrusted));
        let nested =
            std::io::Error::other(tls(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)));
        assert!(is_certificate_failure(&Layer(untrusted)), "found below other causes");
        assert!(is_certificate_failure(&Layer(nested)), "found inside an I/O error inside another");
        let wrong_name = tls(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName));
        assert!(is_certificate_failure(&Layer(wrong_name)));

        let other_tls = tls(rustls::Error::HandshakeNotComplete);
        assert!(!is_certificate_failure(&Layer(other_tls)));
        let text_only = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        assert!(!is_certificate_failure(&Layer(text_only)), "the words alone are not a certificate failure");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!is_certificate_failure(&Layer(refused)));
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_segment("0123abcdef"), "0123abcdef");
        assert_eq!(path_segment("a/b c?#"), "a%2Fb%20c%3F%23");
        assert_eq!(path_segment("é~-_.*%"), "%C3%A9~-_.%2A%25");
    }

    #[test]
    fn backend_debug_shows_no_secret() {
        let mut config = EsConfig::new("http://127.0.0.1:9");
        config.auth = EsAuth::Basic { username: "elastic".into(), password: Secret::new("s3cr3t-pass") };
        let backend = ElasticsearchBackend::connect(config).unwrap();
        let text = format!("{backend:?}");
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("127.0.0.1:9"), "{text}");
    }
}
