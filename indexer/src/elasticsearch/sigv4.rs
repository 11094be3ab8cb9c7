//! AWS Signature Version 4 for Amazon OpenSearch Service (`es`) and OpenSearch
//! Serverless (`aoss`): `TIX_ES_AUTH=sigv4`.
//!
//! The signature itself is computed by the AWS SDK's own `aws-sigv4` crate, never by hand:
//! [`sign_request`] is a pure function of the credentials, the time and the request
//! (method, the full URL exactly as sent, body bytes) and returns the headers to add
//! (`authorization`, `x-amz-date`, `x-amz-content-sha256`, and `x-amz-security-token`
//! with temporary credentials). It is checked against AWS's published SigV4 test suite
//! below, and end to end against botocore (`testkit/sigv4_gate.py`, `tests/es_sigv4.rs`).
//!
//! [`SigV4Signer`] adds the credentials: by default the standard AWS chain of `aws-config`
//! (environment variables, which is what a Lambda function's role gives it, then
//! profiles, web identity, ECS and EC2 instance metadata), resolved when the first request
//! is signed and resolved again a few minutes before they expire.
//!
//! What is signed must be byte for byte what is sent, so the transport is handed a path
//! with the query already encoded ([`path_and_query`]) and no separate query; the query
//! uses the strict RFC 3986 form SigV4 canonicalizes to (`*` is `%2A`, a space `%20`), so
//! the signer, AWS and any other SigV4 implementation read the same canonical request.

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings};
use aws_smithy_runtime_api::client::identity::Identity;
use elasticsearch::http::{Method, Url};
use percent_encoding::utf8_percent_encode;
use tokio::sync::{Mutex, OnceCell};

pub use aws_credential_types::provider::ProvideCredentials as ProvideAwsCredentials;
/// AWS credentials, for [`super::ElasticsearchBackend::with_aws_credentials`] (static keys).
pub use aws_credential_types::Credentials as AwsCredentials;

use super::client::UNRESERVED_ONLY;
use super::config::SigV4Service;

/// Credentials are fetched again this long before they expire, so a request signed just
/// before the expiry is not refused in flight (the AWS SDKs use the same margin).
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// Credentials that expire sooner than this are not used even when refreshing them
/// failed: the request would reach AWS after they are no longer valid.
const STILL_USABLE: Duration = Duration::from_secs(15);

/// One header the signature adds to the request. `Debug` hides the values of the
/// `authorization` and `x-amz-security-token` headers.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedHeader {
    /// Lowercase header name.
    pub name: &'static str,
    pub value: String,
}

impl SignedHeader {
    /// Whether the value must not be logged: the session token is a credential, and the
    /// authorization header carries the access key id.
    pub fn is_sensitive(&self) -> bool {
        matches!(self.name, "authorization" | "x-amz-security-token")
    }
}

impl fmt::Debug for SignedHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = if self.is_sensitive() { "<redacted>" } else { self.value.as_str() };
        write!(f, "{}: {value}", self.name)
    }
}

/// The headers that sign `method url` with `body` at `time` for `service` in `region`:
/// `x-amz-date`, `authorization`, `x-amz-content-sha256` (always: OpenSearch Serverless
/// requires it, and it lets the cluster check the body) and, with temporary credentials,
/// `x-amz-security-token` (signed too).
///
/// `url` is the full URL exactly as it will be sent: scheme, host, port, the path as
/// encoded on the wire and the query as encoded on the wire. The host header is signed
/// as HTTP clients send it (the port only when it is not the scheme's default).
pub fn sign_request(
    credentials: &Credentials,
    region: &str,
    service: SigV4Service,
    method: &str,
    url: &str,
    body: &[u8],
    time: SystemTime,
) -> std::result::Result<Vec<SignedHeader>, String> {
    sign_with(credentials, region, service.as_str(), method, url, &[], body, time, true)
}

/// [`sign_request`] with extra request headers to sign and the content hash header
/// optional: the shape of AWS's test suite, whose requests sign other headers and mostly
/// carry no `x-amz-content-sha256`.
#[allow(clippy::too_many_arguments)]
fn sign_with(
    credentials: &Credentials,
    region: &str,
    service: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
    content_sha256_header: bool,
) -> std::result::Result<Vec<SignedHeader>, String> {
    let cannot = |what: &dyn fmt::Display| format!("SigV4: cannot sign {method} {url}: {what}");
    // The defaults are SigV4 for every service but S3: the path is normalized and encoded
    // once more (each segment "URI-encoded twice"), the session token is signed.
    let mut settings = SigningSettings::default();
    if content_sha256_header {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let identity: Identity = credentials.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| cannot(&e))?
        .into();
    let request = SignableRequest::new(method, url, headers.iter().copied(), SignableBody::Bytes(body))
        .map_err(|e| cannot(&e))?;
    let (instructions, _signature) = sign(request, &params).map_err(|e| cannot(&e))?.into_parts();
    let (headers, _query) = instructions.into_parts();
    Ok(headers.into_iter().map(|h| SignedHeader { name: h.name(), value: h.value().to_string() }).collect())
}

/// The path with the query appended, encoded the way SigV4 canonicalizes a query (every
/// byte but `A-Z a-z 0-9 - _ . ~` as `%XX`), to hand to the transport as its path with
/// no separate query: then the URL the transport requests is the URL that was signed.
pub fn path_and_query(path: &str, query: &[(&str, &str)]) -> String {
    let mut out = path.to_string();
    for (i, (name, value)) in query.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.extend(utf8_percent_encode(name, UNRESERVED_ONLY));
        out.push('=');
        out.extend(utf8_percent_encode(value, UNRESERVED_ONLY));
    }
    out
}

/// The method's name on the wire.
pub fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Put => "PUT",
        Method::Post => "POST",
        Method::Delete => "DELETE",
        Method::Head => "HEAD",
    }
}

/// Where the credentials come from.
enum Source {
    /// `aws-config`'s default chain, built at the first request (building it reads the
    /// profile files and the region, which a config that is never used should not).
    DefaultChain(OnceCell<SharedCredentialsProvider>),
    /// A provider the embedding program chose ([`super::ElasticsearchBackend::with_aws_credentials`]).
    Given(SharedCredentialsProvider),
}

/// Signs the requests of one backend: region, service, the cluster's base URL and the
/// credentials, cached until [`REFRESH_BEFORE_EXPIRY`] before they expire.
pub struct SigV4Signer {
    region: String,
    service: SigV4Service,
    base_url: Url,
    source: Source,
    cached: Mutex<Option<Credentials>>,
}

impl fmt::Debug for SigV4Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the cached credentials (their own Debug redacts the secret, but the access
        // key id is not for logs either).
        f.debug_struct("SigV4Signer")
            .field("region", &self.region)
            .field("service", &self.service)
            .field("base_url", &self.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl SigV4Signer {
    /// A signer for requests to `base_url`, with credentials from the standard AWS chain.
    pub fn new(region: impl Into<String>, service: SigV4Service, base_url: Url) -> Self {
        Self::with_source(region.into(), service, base_url, Source::DefaultChain(OnceCell::new()))
    }

    /// A signer whose credentials come from `provider` (static test credentials, or the
    /// provider of an `SdkConfig` the program already loaded).
    pub fn with_provider(
        region: impl Into<String>,
        service: SigV4Service,
        base_url: Url,
        provider: impl ProvideCredentials + 'static,
    ) -> Self {
        Self::with_source(region.into(), service, base_url, Source::Given(SharedCredentialsProvider::new(provider)))
    }

    fn with_source(region: String, service: SigV4Service, base_url: Url, source: Source) -> Self {
        SigV4Signer { region, service, base_url, source, cached: Mutex::new(None) }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn service(&self) -> SigV4Service {
        self.service
    }

    /// The URL the transport requests for `path_and_query`: it joins the connection URL
    /// with the path the same way (`Url::join` after trimming the leading `/`).
    pub fn request_url(&self, path_and_query: &str) -> std::result::Result<Url, String> {
        self.base_url
            .join(path_and_query.trim_start_matches('/'))
            .map_err(|e| format!("SigV4: cannot build the URL of {path_and_query:?}: {e}"))
    }

    /// The headers that sign this request now, with the current credentials.
    pub async fn sign(&self, method: Method, url: &Url, body: &[u8]) -> std::result::Result<Vec<SignedHeader>, String> {
        let credentials = self.credentials().await?;
        sign_request(
            &credentials,
            &self.region,
            self.service,
            method_name(method),
            url.as_str(),
            body,
            SystemTime::now(),
        )
    }

    /// The cached credentials, or new ones from the source when there are none yet or
    /// they expire within [`REFRESH_BEFORE_EXPIRY`]. One caller resolves at a time (the
    /// others wait for its result instead of asking the chain again).
    async fn credentials(&self) -> std::result::Result<Credentials, String> {
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        if let Some(credentials) = cached.as_ref().filter(|c| !needs_refresh(c, now)) {
            return Ok(credentials.clone());
        }
        let provider = match &self.source {
            Source::Given(provider) => provider.clone(),
            Source::DefaultChain(chain) => chain
                .get_or_init(|| async {
                    let chain = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                        .region(aws_config::Region::new(self.region.clone()))
                        .configure(
                            aws_config::provider_config::ProviderConfig::default()
                                .with_http_client(crate::aws_http::https_client()),
                        )
                        .build()
                        .await;
                    SharedCredentialsProvider::new(chain)
                })
                .await
                .clone(),
        };
        match provider.provide_credentials().await {
            Ok(fresh) => {
                tracing::debug!(expiry = ?fresh.expiry(), "SigV4: resolved AWS credentials");
                *cached = Some(fresh.clone());
                Ok(fresh)
            }
            Err(error) => {
                let reason = crate::error::describe_chain(&error);
                match cached.as_ref().filter(|c| still_usable(c, now)) {
                    Some(previous) => {
                        tracing::warn!(%reason, "SigV4: refreshing the AWS credentials failed; using the current ones until they expire");
                        Ok(previous.clone())
                    }
                    None => Err(format!(
                        "SigV4: no AWS credentials ({reason}); the standard AWS chain was searched: \
                         AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, web identity \
                         (AWS_WEB_IDENTITY_TOKEN_FILE), ECS and EC2 instance metadata. Give the process an \
                         IAM role or set credentials, or choose another TIX_ES_AUTH"
                    )),
                }
            }
        }
    }
}

/// Whether cached credentials must be fetched again at `now`: they expire within
/// [`REFRESH_BEFORE_EXPIRY`]. Credentials without an expiry (long-term keys) never do.
pub fn needs_refresh(credentials: &Credentials, now: SystemTime) -> bool {
    credentials.expiry().is_some_and(|expiry| expiry <= now + REFRESH_BEFORE_EXPIRY)
}

fn still_usable(credentials: &Credentials, now: SystemTime) -> bool {
    credentials.expiry().is_none_or(|expiry| expiry > now + STILL_USABLE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    // AWS's SigV4 test suite ("aws-sig-v4-test-suite", published by AWS and vendored in
    // the aws-sigv4 crate as `aws-signing-test-suite/v4/<case>/`): the credentials,
    // region, service and time of its `context.json`, and the expected `Signature=` of
    // each case's `header-signed-request.txt`.
    const SUITE_ACCESS_KEY: &str = "AKIDEXAMPLE";
    const SUITE_SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const SUITE_REGION: &str = "us-east-1";
    const SUITE_SERVICE: &str = "service";
    /// 2015-08-30T12:36:00Z.
    const SUITE_TIME_UNIX: u64 = 1_440_938_160;
    /// v4/get-vanilla: `GET /`, signed headers `host;x-amz-date`.
    const GET_VANILLA: &str = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
    /// v4/get-vanilla-query-order-encoded: `GET /?Param-3=Value3&Param=Value2&%E1%88%B4=Value1`.
    const GET_VANILLA_QUERY_ORDER_ENCODED: &str = "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac";
    /// v4/get-vanilla-with-session-token: `GET /` with a session token, signed headers
    /// `host;x-amz-date;x-amz-security-token`.
    const GET_VANILLA_WITH_SESSION_TOKEN: &str = "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8";
    const SUITE_SESSION_TOKEN: &str = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
    /// v4/post-x-www-form-urlencoded: `POST /` with body `Param1=value1`, signed headers
    /// `content-length;content-type;host;x-amz-content-sha256;x-amz-date`.
    const POST_X_WWW_FORM_URLENCODED: &str = "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b";

    fn suite_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(SUITE_TIME_UNIX)
    }

    fn suite_credentials(token: Option<&str>) -> Credentials {
        Credentials::new(SUITE_ACCESS_KEY, SUITE_SECRET_KEY, token.map(str::to_string), None, "aws-sig-v4-test-suite")
    }

    fn header<'a>(headers: &'a [SignedHeader], name: &str) -> Option<&'a str> {
        headers.iter().find(|h| h.name == name).map(|h| h.value.as_str())
    }

    /// A GET of the test suite's (no body, no extra headers, no content hash header).
    fn sign_suite_get(url: &str, session_token: Option<&str>) -> Vec<SignedHeader> {
        sign_with(
            &suite_credentials(session_token),
            SUITE_REGION,
            SUITE_SERVICE,
            "GET",
            url,
            &[],
            b"",
            suite_time(),
            false,
        )
        .unwrap()
    }

    fn signature_of(headers: &[SignedHeader]) -> &str {
        let authorization = header(headers, "authorization").expect("an authorization header");
        authorization.rsplit_once("Signature=").expect("a signature").1
    }

    #[test]
    fn aws_test_suite_get_vanilla() {
        let headers = sign_suite_get("https://example.amazonaws.com/", None);
        assert_eq!(header(&headers, "x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(
            header(&headers, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
        assert_eq!(signature_of(&headers), GET_VANILLA);
        assert_eq!(header(&headers, "x-amz-content-sha256"), None);
    }

    #[test]
    fn aws_test_suite_get_vanilla_query_order_encoded() {
        let headers =
            sign_suite_get("https://example.amazonaws.com/?Param-3=Value3&Param=Value2&%E1%88%B4=Value1", None);
        assert_eq!(signature_of(&headers), GET_VANILLA_QUERY_ORDER_ENCODED);
    }

    #[test]
    fn aws_test_suite_get_vanilla_with_session_token() {
        let headers = sign_suite_get("https://example.amazonaws.com/", Some(SUITE_SESSION_TOKEN));
        assert_eq!(header(&headers, "x-amz-security-token"), Some(SUITE_SESSION_TOKEN));
        assert!(header(&headers, "authorization")
            .unwrap()
            .contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"));
        assert_eq!(signature_of(&headers), GET_VANILLA_WITH_SESSION_TOKEN);
    }

    #[test]
    fn aws_test_suite_post_x_www_form_urlencoded() {
        let body = b"Param1=value1";
        let headers = sign_with(
            &suite_credentials(None),
            SUITE_REGION,
            SUITE_SERVICE,
            "POST",
            "https://example.amazonaws.com/",
            &[("content-type", "application/x-www-form-urlencoded"), ("content-length", "13")],
            body,
            suite_time(),
            true,
        )
        .unwrap();
        assert_eq!(
            header(&headers, "x-amz-content-sha256"),
            Some("9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e")
        );
        assert!(header(&headers, "authorization")
            .unwrap()
            .contains("SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date,"));
        assert_eq!(signature_of(&headers), POST_X_WWW_FORM_URLENCODED);
    }

    #[test]
    fn requests_always_carry_the_content_hash_and_the_service_scope() {
        let credentials = suite_credentials(None);
        for (service, scope) in
            [(SigV4Service::Es, "/us-east-1/es/aws4_request"), (SigV4Service::Aoss, "/us-east-1/aoss/aws4_request")]
        {
            let headers = sign_request(
                &credentials,
                SUITE_REGION,
                service,
                "POST",
                "https://search-x.us-east-1.es.amazonaws.com/tix-bookings-*/_search",
                b"{}",
                suite_time(),
            )
            .unwrap();
            let names: Vec<&str> = headers.iter().map(|h| h.name).collect();
            assert_eq!(names.len(), 3, "{names:?}");
            assert_eq!(
                header(&headers, "x-amz-content-sha256"),
                Some("44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"),
                "SHA-256 of {{}}"
            );
            let authorization = header(&headers, "authorization").unwrap();
            assert!(authorization.contains(scope), "{authorization}");
            assert!(authorization.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date,"), "{authorization}");
        }
    }

    #[test]
    fn a_different_path_query_body_or_secret_changes_the_signature() {
        let sign_one = |secret: &str, url: &str, body: &[u8]| {
            let credentials = Credentials::new(SUITE_ACCESS_KEY, secret, None, None, "test");
            let headers =
                sign_request(&credentials, SUITE_REGION, SigV4Service::Es, "POST", url, body, suite_time()).unwrap();
            signature_of(&headers).to_string()
        };
        let base = sign_one(SUITE_SECRET_KEY, "https://h.example/_bulk?filter_path=items.%2A._id", b"x");
        assert_ne!(base, sign_one("other-secret", "https://h.example/_bulk?filter_path=items.%2A._id", b"x"));
        assert_ne!(base, sign_one(SUITE_SECRET_KEY, "https://h.example/_bulk?filter_path=items.%2A.status", b"x"));
        assert_ne!(base, sign_one(SUITE_SECRET_KEY, "https://h.example/_bulk2?filter_path=items.%2A._id", b"x"));
        assert_ne!(base, sign_one(SUITE_SECRET_KEY, "https://h.example/_bulk?filter_path=items.%2A._id", b"y"));
        assert_eq!(base, sign_one(SUITE_SECRET_KEY, "https://h.example/_bulk?filter_path=items.%2A._id", b"x"));
    }

    #[test]
    fn queries_are_encoded_the_way_sigv4_canonicalizes_them() {
        assert_eq!(path_and_query("_bulk", &[]), "_bulk");
        assert_eq!(
            path_and_query("_bulk", &[("filter_path", "items.*._id,items.*.status,errors")]),
            "_bulk?filter_path=items.%2A._id%2Citems.%2A.status%2Cerrors"
        );
        assert_eq!(
            path_and_query("_cat/indices/tix-bookings-*", &[("format", "json"), ("h", "index")]),
            "_cat/indices/tix-bookings-*?format=json&h=index"
        );
        assert_eq!(path_and_query("p", &[("a b", "c+d/é~")]), "p?a%20b=c%2Bd%2F%C3%A9~");
    }

    #[test]
    fn the_signed_url_is_the_transport_url() {
        let signer = SigV4Signer::with_provider(
            "eu-west-1",
            SigV4Service::Es,
            Url::parse("https://search-d.eu-west-1.es.amazonaws.com:443/").unwrap(),
            suite_credentials(None),
        );
        let url = signer.request_url("/tix-bookings-*/_search?filter_path=a.%2A").unwrap();
        assert_eq!(
            url.as_str(),
            "https://search-d.eu-west-1.es.amazonaws.com/tix-bookings-*/_search?filter_path=a.%2A"
        );
        let with_prefix =
            SigV4Signer::new("eu-west-1", SigV4Service::Es, Url::parse("http://127.0.0.1:9200/es/").unwrap());
        assert_eq!(with_prefix.request_url("_bulk?x=1").unwrap().as_str(), "http://127.0.0.1:9200/es/_bulk?x=1");
    }

    #[test]
    fn debug_never_shows_credentials() {
        let headers = sign_request(
            &suite_credentials(Some("session-token-value")),
            SUITE_REGION,
            SigV4Service::Es,
            "GET",
            "https://h.example/",
            b"",
            suite_time(),
        )
        .unwrap();
        let text = format!("{headers:?}");
        assert!(!text.contains("session-token-value") && !text.contains(SUITE_ACCESS_KEY), "{text}");
        let signer = SigV4Signer::with_provider(
            "eu-west-1",
            SigV4Service::Aoss,
            Url::parse("https://x.eu-west-1.aoss.amazonaws.com").unwrap(),
            suite_credentials(Some("session-token-value")),
        );
        let text = format!("{signer:?}");
        assert!(
            !text.contains("session-token-value") && !text.contains("EXAMPLEKEY") && text.contains("Aoss"),
            "{text}"
        );
    }

    #[test]
    fn credentials_are_refreshed_before_they_expire() {
        let now = SystemTime::now();
        let with_expiry = |expiry: Option<SystemTime>| Credentials::new("AKID", "secret", None, expiry, "test");
        assert!(!needs_refresh(&with_expiry(None), now), "long-term keys are kept");
        assert!(!needs_refresh(&with_expiry(Some(now + Duration::from_secs(3600))), now));
        assert!(needs_refresh(&with_expiry(Some(now + Duration::from_secs(240))), now), "4 minutes left");
        assert!(needs_refresh(&with_expiry(Some(now - Duration::from_secs(1))), now), "expired");
    }

    /// Counts how often the chain is asked, handing out credentials that expire `lifetime`
    /// from now.
    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        lifetime: Duration,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let expiry = SystemTime::now() + self.lifetime;
            aws_credential_types::provider::future::ProvideCredentials::ready(Ok(Credentials::new(
                format!("AKID{n}"),
                "secret",
                None,
                Some(expiry),
                "counting",
            )))
        }
    }

    #[test]
    fn the_credential_cache_asks_the_chain_once_until_near_expiry() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let url = Url::parse("http://127.0.0.1:9200").unwrap();
        for (lifetime, expected_calls) in [(Duration::from_secs(3600), 1), (Duration::from_secs(120), 3)] {
            let calls = Arc::new(AtomicUsize::new(0));
            let signer = SigV4Signer::with_provider(
                "eu-west-1",
                SigV4Service::Es,
                url.clone(),
                Counting { calls: calls.clone(), lifetime },
            );
            runtime.block_on(async {
                for _ in 0..3 {
                    let headers = signer.sign(Method::Get, &url, b"").await.unwrap();
                    assert!(header(&headers, "authorization").unwrap().contains("Credential=AKID"));
                }
            });
            assert_eq!(calls.load(Ordering::SeqCst), expected_calls, "lifetime {lifetime:?}");
        }
    }
}
