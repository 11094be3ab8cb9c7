//! Elasticsearch connection settings: where the cluster is, how to authenticate, and
//! how hard to push it (batch bounds, requests in flight, retry budget).
//!
//! Secrets live in [`Secret`], whose `Debug` prints a placeholder, and every `Debug` here
//! is written by hand so that logging a config (or an error that embeds one) can never
//! leak an API key or a password.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use elasticsearch::http::Url;

pub use crate::retry::RetryPolicy;
use crate::{Error, Result};

/// Default index prefix: events go to `tix-bookings-YYYY.MM.DD`.
pub const DEFAULT_INDEX_PREFIX: &str = "tix-bookings";

/// A credential that never shows itself in `Debug` or `Display` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it (the transport).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// How the client authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum EsAuth {
    /// No credentials (a local cluster with security off).
    None,
    /// An API key: either the base64 "encoded" form Kibana shows, or `id:api_key`.
    ApiKey(Secret),
    /// Username and password (HTTP basic).
    Basic { username: String, password: Secret },
    /// AWS Signature Version 4 (Amazon OpenSearch Service and OpenSearch Serverless):
    /// every request is signed with the credentials of the standard AWS chain, resolved
    /// when the first request is sent (see [`super::sigv4`]). No secret is stored here.
    SigV4 { region: String, service: SigV4Service },
}

/// The service name a SigV4 signature is scoped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigV4Service {
    /// `es`: an Amazon OpenSearch Service domain (the managed clusters).
    Es,
    /// `aoss`: an OpenSearch Serverless collection.
    Aoss,
}

impl SigV4Service {
    /// The name that goes into the credential scope (`.../REGION/es/aws4_request`).
    pub fn as_str(self) -> &'static str {
        match self {
            SigV4Service::Es => "es",
            SigV4Service::Aoss => "aoss",
        }
    }
}

impl fmt::Display for SigV4Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for EsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EsAuth::None => f.write_str("None"),
            EsAuth::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            // The username is not a secret and helps when a login is refused.
            EsAuth::Basic { username, .. } => write!(f, "Basic {{ username: {username:?}, password: <redacted> }}"),
            // Region and service are not secrets; the keys live in the AWS chain, not here.
            EsAuth::SigV4 { region, service } => write!(f, "SigV4 {{ region: {region:?}, service: {service} }}"),
        }
    }
}

/// Everything the Elasticsearch backend needs to connect and write.
#[derive(Clone, PartialEq, Eq)]
pub struct EsConfig {
    /// Cluster address, e.g. `https://es.example.com:9243` (no credentials in it).
    pub url: String,
    pub auth: EsAuth,
    /// Events go to `PREFIX-YYYY.MM.DD`, source checkpoints to `PREFIX-sources`.
    pub index_prefix: String,
    /// PEM file of a private CA to trust in addition to the public roots.
    pub ca_cert: Option<PathBuf>,
    /// Upper bound of one `_bulk` body in bytes (a single larger document goes alone).
    pub batch_bytes: usize,
    /// Upper bound of documents in one `_bulk` request.
    pub batch_docs: usize,
    /// `_bulk` requests sent concurrently. Memory stays below about
    /// `batch_bytes * max_in_flight` on top of the caller's batch.
    pub max_in_flight: usize,
    /// Timeout of one HTTP request, connection included.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    /// `TIX_ES_RETENTION_DAYS`: delete a daily index this many days after the date in its
    /// name (ILM on Elasticsearch; ISM on OpenSearch, counted from the index's creation).
    /// `None` installs no lifecycle policy and attaches none to new indices.
    pub retention_days: Option<u32>,
    /// `_refresh` after each flush, so a search right after it sees every document.
    /// Off by default: one refresh per Lambda invocation makes a new Lucene segment in
    /// every shard it touches, which the cluster must then merge (`TIX_ES_REFRESH=true`).
    pub refresh_on_flush: bool,
}

impl fmt::Debug for EsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EsConfig")
            .field("url", &self.url)
            .field("auth", &self.auth)
            .field("index_prefix", &self.index_prefix)
            .field("ca_cert", &self.ca_cert)
            .field("batch_bytes", &self.batch_bytes)
            .field("batch_docs", &self.batch_docs)
            .field("max_in_flight", &self.max_in_flight)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("retention_days", &self.retention_days)
            .field("refresh_on_flush", &self.refresh_on_flush)
            .finish()
    }
}

impl EsConfig {
    /// A config for `url` with the defaults: no auth, prefix `tix-bookings`, 5 MiB or
    /// 1,000 documents per request, 2 in flight, 30 s per request, 2 min retry budget.
    pub fn new(url: impl Into<String>) -> Self {
        EsConfig {
            url: url.into(),
            auth: EsAuth::None,
            index_prefix: DEFAULT_INDEX_PREFIX.to_string(),
            ca_cert: None,
            batch_bytes: 5 << 20,
            batch_docs: 1_000,
            max_in_flight: 2,
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            retention_days: None,
            refresh_on_flush: false,
        }
    }

    /// Reads `TIX_ES_URL`, `TIX_ES_API_KEY` or `TIX_ES_USERNAME`/`TIX_ES_PASSWORD`,
    /// `TIX_ES_INDEX_PREFIX`, `TIX_ES_CA_CERT` and `TIX_ES_RETENTION_DAYS` from the environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`EsConfig::from_env`] over any variable lookup (tests pass a map instead of
    /// mutating the process environment, which is racy across test threads).
    ///
    /// Authentication: `TIX_ES_AUTH=sigv4|apikey|basic|none`. When it is unset the mode is
    /// inferred: `apikey` if `TIX_ES_API_KEY` is set, `basic` if `TIX_ES_USERNAME` /
    /// `TIX_ES_PASSWORD` (or `user:password@` in the URL) are, else `sigv4` if the URL's
    /// host ends with `.es.amazonaws.com` (Amazon OpenSearch Service) or
    /// `.aoss.amazonaws.com` (OpenSearch Serverless), else `none`. SigV4 reads the region
    /// from `TIX_ES_REGION`, else `AWS_REGION`, else `AWS_DEFAULT_REGION`, and the service
    /// from `TIX_ES_SIGV4_SERVICE` (`es` or `aoss`; default `aoss` for an
    /// `.aoss.amazonaws.com` host, `es` otherwise). Settings that contradict each other
    /// (SigV4 with an API key, an `es` service on a Serverless host, ...) are refused
    /// with the variables named, never silently resolved.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let url = get("TIX_ES_URL").ok_or_else(|| {
            Error::config("TIX_ES_URL", "TIX_ES_URL is not set: point it at the cluster, e.g. http://127.0.0.1:9200")
        })?;
        let mut config = EsConfig::new(url);
        config.auth = auth_from_lookup(&get, &lookup, &config.url)?;
        if let Some(prefix) = get("TIX_ES_INDEX_PREFIX") {
            config.index_prefix = prefix;
        }
        config.ca_cert = get("TIX_ES_CA_CERT").map(PathBuf::from);
        config.retention_days = get("TIX_ES_RETENTION_DAYS").map(|days| parse_retention_days(&days)).transpose()?;
        config.refresh_on_flush = match get("TIX_ES_REFRESH").as_deref() {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => {
                return Err(Error::config(
                    "TIX_ES_REFRESH",
                    format!("TIX_ES_REFRESH={other:?}: expected true or false"),
                ));
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the prefix is a legal index name start and the URL parses; moves
    /// credentials written into the URL (`https://user:pass@host`) into `auth` so they
    /// are never echoed in an error message that quotes the URL.
    pub fn validate(&mut self) -> Result<()> {
        let mut url = self.parsed_url()?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::config(
                "TIX_ES_URL",
                format!("TIX_ES_URL must be http:// or https://, not {}://", url.scheme()),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            if self.auth == EsAuth::None {
                let username = percent_decode(url.username());
                let password = percent_decode(url.password().unwrap_or_default());
                self.auth = EsAuth::Basic { username, password: Secret::new(password) };
            }
            let _ = url.set_username("");
            let _ = url.set_password(None);
            self.url = url.to_string();
        }
        validate_prefix(&self.index_prefix)?;
        // The transport puts these into HTTP headers, where control characters or spaces
        // would make it panic; say which variable is wrong without echoing its value.
        let header_safe = |text: &str| text.bytes().all(|b| (0x21..=0x7e).contains(&b));
        match &self.auth {
            EsAuth::ApiKey(key) if !header_safe(key.expose()) => {
                return Err(Error::config(
                    "TIX_ES_API_KEY",
                    "TIX_ES_API_KEY contains spaces or characters that cannot go in an HTTP header",
                ))
            }
            EsAuth::Basic { username, password }
                if username.contains(':') || username.chars().chain(password.expose().chars()).any(char::is_control) =>
            {
                return Err(Error::config(
                    "TIX_ES_USERNAME",
                    "TIX_ES_USERNAME must not contain ':' and neither it nor TIX_ES_PASSWORD may contain control characters",
                ))
            }
            _ => {}
        }
        if self.batch_docs == 0 || self.batch_bytes == 0 || self.max_in_flight == 0 {
            return Err(Error::config("batch_docs", "batch_docs, batch_bytes and max_in_flight must be at least 1"));
        }
        Ok(())
    }

    /// The parsed cluster URL.
    pub fn parsed_url(&self) -> Result<Url> {
        Url::parse(&self.url).map_err(|e| Error::Config {
            setting: "TIX_ES_URL",
            message: "TIX_ES_URL is not a URL".into(),
            source: Some(e.into()),
        })
    }
}

/// The authentication mode of `TIX_ES_AUTH`, or the one inferred from the other variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthMode {
    SigV4,
    ApiKey,
    Basic,
    None,
}

impl AuthMode {
    fn name(self) -> &'static str {
        match self {
            AuthMode::SigV4 => "sigv4",
            AuthMode::ApiKey => "apikey",
            AuthMode::Basic => "basic",
            AuthMode::None => "none",
        }
    }
}

/// Host suffixes of the AWS-managed endpoints, which accept nothing but SigV4: a domain of
/// Amazon OpenSearch Service and a collection of OpenSearch Serverless.
const AWS_DOMAIN_HOST_SUFFIX: &str = ".es.amazonaws.com";
const AWS_SERVERLESS_HOST_SUFFIX: &str = ".aoss.amazonaws.com";

/// Which SigV4 service an AWS-managed endpoint's host name implies (`None` for any other
/// host, custom domain names of OpenSearch Service included).
fn aws_service_of_host(url: &str) -> Option<SigV4Service> {
    let url = Url::parse(url).ok()?;
    let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    if host.ends_with(AWS_SERVERLESS_HOST_SUFFIX) {
        Some(SigV4Service::Aoss)
    } else if host.ends_with(AWS_DOMAIN_HOST_SUFFIX) {
        Some(SigV4Service::Es)
    } else {
        None
    }
}

/// `TIX_ES_AUTH` and the credential variables into an [`EsAuth`]; see
/// [`EsConfig::from_lookup`] for the rules. `get` yields trimmed, non-empty values; `raw`
/// the untouched ones (a password may legitimately start or end with a space).
fn auth_from_lookup(
    get: &dyn Fn(&str) -> Option<String>,
    raw: &dyn Fn(&str) -> Option<String>,
    url: &str,
) -> Result<EsAuth> {
    let api_key = get("TIX_ES_API_KEY");
    let username = get("TIX_ES_USERNAME");
    let password = raw("TIX_ES_PASSWORD");
    let url_login = Url::parse(url).is_ok_and(|u| !u.username().is_empty() || u.password().is_some());
    let host_service = aws_service_of_host(url);
    let explicit = match get("TIX_ES_AUTH").map(|mode| mode.to_ascii_lowercase()).as_deref() {
        None => None,
        Some("sigv4") => Some(AuthMode::SigV4),
        Some("apikey") => Some(AuthMode::ApiKey),
        Some("basic") => Some(AuthMode::Basic),
        Some("none") => Some(AuthMode::None),
        Some(other) => {
            let message = format!(
                "TIX_ES_AUTH={other:?} is not an authentication mode: use sigv4 (AWS IAM), apikey, basic or none"
            );
            return Err(Error::config("TIX_ES_AUTH", message));
        }
    };
    let mode = explicit.unwrap_or(if api_key.is_some() {
        AuthMode::ApiKey
    } else if username.is_some() || password.is_some() || url_login {
        AuthMode::Basic
    } else if host_service.is_some() {
        AuthMode::SigV4
    } else {
        AuthMode::None
    });
    // How the mode was chosen, for messages: an explicit setting or an inference.
    let chosen = match explicit {
        Some(mode) => format!("TIX_ES_AUTH={}", mode.name()),
        None => format!("TIX_ES_AUTH (unset, inferred {})", mode.name()),
    };
    // Variables that belong to another mode: refused, so that a leftover key or a typo in
    // TIX_ES_AUTH never sends requests with credentials nobody meant to use.
    let set_names = |names: &[(&'static str, bool)]| -> Vec<&'static str> {
        names.iter().filter(|(_, set)| *set).map(|(name, _)| *name).collect()
    };
    let refuse_others = |others: Vec<&'static str>, hint: &str| -> Result<()> {
        if others.is_empty() {
            return Ok(());
        }
        Err(Error::config(others[0], format!("{chosen} cannot be combined with {}: {hint}", others.join(", "))))
    };
    if mode != AuthMode::SigV4 {
        let sigv4_only = set_names(&[
            ("TIX_ES_SIGV4_SERVICE", get("TIX_ES_SIGV4_SERVICE").is_some()),
            ("TIX_ES_REGION", get("TIX_ES_REGION").is_some()),
        ]);
        refuse_others(sigv4_only, "they only apply to AWS SigV4 signing; set TIX_ES_AUTH=sigv4 or unset them")?;
    }
    match mode {
        AuthMode::None => {
            let others = set_names(&[
                ("TIX_ES_API_KEY", api_key.is_some()),
                ("TIX_ES_USERNAME", username.is_some()),
                ("TIX_ES_PASSWORD", password.is_some()),
                ("credentials in TIX_ES_URL", url_login),
            ]);
            refuse_others(others, "unset them, or choose TIX_ES_AUTH=apikey or basic")?;
            Ok(EsAuth::None)
        }
        AuthMode::ApiKey => {
            let others = set_names(&[("TIX_ES_USERNAME", username.is_some()), ("TIX_ES_PASSWORD", password.is_some())]);
            refuse_others(others, "set either TIX_ES_API_KEY or TIX_ES_USERNAME/TIX_ES_PASSWORD, not both")?;
            let key = api_key.ok_or_else(|| {
                Error::config(
                    "TIX_ES_API_KEY",
                    "TIX_ES_AUTH=apikey but TIX_ES_API_KEY is not set: set it to the API key",
                )
            })?;
            Ok(EsAuth::ApiKey(Secret::new(key)))
        }
        AuthMode::Basic => {
            refuse_others(
                set_names(&[("TIX_ES_API_KEY", api_key.is_some())]),
                "set either TIX_ES_API_KEY or TIX_ES_USERNAME/TIX_ES_PASSWORD, not both",
            )?;
            match (username, password) {
                (Some(username), Some(password)) => Ok(EsAuth::Basic { username, password: Secret::new(password) }),
                (Some(_), None) => {
                    Err(Error::config("TIX_ES_PASSWORD", "TIX_ES_USERNAME is set but TIX_ES_PASSWORD is not"))
                }
                (None, Some(_)) => {
                    Err(Error::config("TIX_ES_USERNAME", "TIX_ES_PASSWORD is set but TIX_ES_USERNAME is not"))
                }
                // `user:password@` in the URL: `validate` moves it into `Basic`.
                (None, None) if url_login => Ok(EsAuth::None),
                (None, None) => Err(Error::config(
                    "TIX_ES_USERNAME",
                    "TIX_ES_AUTH=basic but neither TIX_ES_USERNAME/TIX_ES_PASSWORD nor user:password in TIX_ES_URL is set",
                )),
            }
        }
        AuthMode::SigV4 => {
            let others = set_names(&[
                ("TIX_ES_API_KEY", api_key.is_some()),
                ("TIX_ES_USERNAME", username.is_some()),
                ("TIX_ES_PASSWORD", password.is_some()),
                ("credentials in TIX_ES_URL", url_login),
            ]);
            refuse_others(
                others,
                "SigV4 signs with AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the IAM \
                 role); unset them, or choose TIX_ES_AUTH=apikey or basic",
            )?;
            let service = match get("TIX_ES_SIGV4_SERVICE").map(|s| s.to_ascii_lowercase()).as_deref() {
                None => host_service.unwrap_or(SigV4Service::Es),
                Some("es") => SigV4Service::Es,
                Some("aoss") => SigV4Service::Aoss,
                Some(other) => {
                    return Err(Error::config(
                        "TIX_ES_SIGV4_SERVICE",
                        format!(
                            "TIX_ES_SIGV4_SERVICE={other:?}: use es (Amazon OpenSearch Service domains) or aoss \
                             (OpenSearch Serverless collections)"
                        ),
                    ))
                }
            };
            // AWS refuses a signature scoped to the other service; say so before any request.
            if let Some(expected) = host_service.filter(|&expected| expected != service) {
                return Err(Error::config(
                    "TIX_ES_SIGV4_SERVICE",
                    format!(
                        "TIX_ES_SIGV4_SERVICE={service} does not match TIX_ES_URL, whose host is {} endpoint that \
                         accepts only service {expected}: set TIX_ES_SIGV4_SERVICE={expected} or unset it",
                        match expected {
                            SigV4Service::Es => "an Amazon OpenSearch Service",
                            SigV4Service::Aoss => "an OpenSearch Serverless",
                        }
                    ),
                ));
            }
            let region = ["TIX_ES_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"]
                .into_iter()
                .find_map(|name| get(name).map(|value| (name, value)));
            let Some((variable, region)) = region else {
                return Err(Error::config(
                    "TIX_ES_REGION",
                    format!(
                        "{chosen} needs the AWS region of the cluster: set TIX_ES_REGION (or AWS_REGION or \
                         AWS_DEFAULT_REGION), e.g. TIX_ES_REGION=eu-west-1"
                    ),
                ));
            };
            if !is_region_name(&region) {
                return Err(Error::config(
                    variable,
                    format!(
                        "{variable}={region:?} is not an AWS region name such as eu-west-1 (lowercase letters, digits and '-')"
                    ),
                ));
            }
            Ok(EsAuth::SigV4 { region, service })
        }
    }
}

/// An AWS region name as it goes into a SigV4 credential scope (`eu-west-1`,
/// `us-gov-west-1`, `cn-north-1`): anything else would be signed and then refused by AWS
/// with a bare signature mismatch.
pub(crate) fn is_region_name(region: &str) -> bool {
    region.len() <= 64
        && region.starts_with(|c: char| c.is_ascii_lowercase())
        && !region.ends_with('-')
        && region.contains('-')
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Longest retention accepted: a hundred years (a larger number is a typo, not a policy).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// `TIX_ES_RETENTION_DAYS`: whole days from 1 to [`MAX_RETENTION_DAYS`]. Zero is refused
/// rather than read as "off": it would delete every index as soon as it is created.
fn parse_retention_days(text: &str) -> Result<u32> {
    match text.parse::<u32>() {
        Ok(days @ 1..=MAX_RETENTION_DAYS) => Ok(days),
        _ => Err(Error::config(
            "TIX_ES_RETENTION_DAYS",
            format!(
                "TIX_ES_RETENTION_DAYS={text:?}: expected a whole number of days from 1 to {MAX_RETENTION_DAYS}; \
                 unset it to keep the indices until they are deleted by hand"
            ),
        )),
    }
}

/// Elasticsearch index names: lowercase, no `\ / * ? " < > | , # :` or spaces, not
/// starting with `-`, `_` or `+`. The prefix also must not be empty.
fn validate_prefix(prefix: &str) -> Result<()> {
    let bad = prefix.is_empty()
        || prefix.starts_with(['-', '_', '+', '.'])
        || prefix.chars().any(|c| c.is_uppercase() || " \\/*?\"<>|,#:".contains(c))
        || prefix.len() > 200;
    if bad {
        return Err(Error::config(
            "TIX_ES_INDEX_PREFIX",
            format!(
                "TIX_ES_INDEX_PREFIX {prefix:?} is not a valid index name prefix: use lowercase letters, digits, '-' and '_', not starting with '-', '_', '+' or '.'"
            ),
        ));
    }
    Ok(())
}

/// A URL's user or password as typed (`p%40ss` is `p@ss`); bytes that are not UTF-8 are
/// replaced rather than refused, the cluster then refuses the login.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let mut config = EsConfig::new("https://es.example.com:9243");
        config.auth = EsAuth::ApiKey(Secret::new("VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="));
        let text = format!("{config:?} {config:#?}");
        assert!(!text.contains("VnVhQ2"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");

        config.auth = EsAuth::Basic { username: "ingest".into(), password: Secret::new("hunter2-very-secret") };
        let text = format!("{config:?} {:?}", config.auth);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("ingest"), "{text}");
    }

    #[test]
    fn credentials_in_the_url_move_to_basic_auth_and_leave_the_url() {
        let config =
            EsConfig::from_lookup(lookup(&[("TIX_ES_URL", "https://elastic:p%40ss@es.example.com:9243/")])).unwrap();
        assert_eq!(config.url, "https://es.example.com:9243/");
        assert_eq!(config.auth, EsAuth::Basic { username: "elastic".into(), password: Secret::new("p@ss") });
        assert!(!format!("{config:?}").contains("p@ss"));
    }

    #[test]
    fn environment_selects_api_key_or_basic_auth() {
        let config =
            EsConfig::from_lookup(lookup(&[("TIX_ES_URL", "http://127.0.0.1:9200"), ("TIX_ES_API_KEY", "abc")]))
                .unwrap();
        assert_eq!(config.auth, EsAuth::ApiKey(Secret::new("abc")));
        assert_eq!(config.index_prefix, DEFAULT_INDEX_PREFIX);
        let config = EsConfig::from_lookup(lookup(&[
            ("TIX_ES_URL", "http://127.0.0.1:9200"),
            ("TIX_ES_USERNAME", "elastic"),
            ("TIX_ES_PASSWORD", "changeme"),
            ("TIX_ES_INDEX_PREFIX", "bookings-test"),
            ("TIX_ES_CA_CERT", "/etc/ca.pem"),
        ]))
        .unwrap();
        assert_eq!(config.auth, EsAuth::Basic { username: "elastic".into(), password: Secret::new("changeme") });
        assert_eq!(config.index_prefix, "bookings-test");
        assert_eq!(config.ca_cert, Some(PathBuf::from("/etc/ca.pem")));
    }

    #[test]
    fn bad_settings_are_refused_with_the_variable_named() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("TIX_ES_URL", "not a url")],
            &[("TIX_ES_URL", "ftp://host")],
            &[("TIX_ES_URL", "http://h:9200"), ("TIX_ES_USERNAME", "u")],
            &[
                ("TIX_ES_URL", "http://h:9200"),
                ("TIX_ES_API_KEY", "k"),
                ("TIX_ES_USERNAME", "u"),
                ("TIX_ES_PASSWORD", "p"),
            ],
            &[("TIX_ES_URL", "http://h:9200"), ("TIX_ES_INDEX_PREFIX", "Upper")],
            &[("TIX_ES_URL", "http://h:9200"), ("TIX_ES_INDEX_PREFIX", "_hidden")],
            &[("TIX_ES_URL", "http://h:9200"), ("TIX_ES_API_KEY", "secret with\nnewline")],
            &[("TIX_ES_URL", "http://h:9200"), ("TIX_ES_USERNAME", "a:b"), ("TIX_ES_PASSWORD", "p")],
        ];
        for pairs in cases {
            let err = EsConfig::from_lookup(lookup(pairs)).unwrap_err().to_string();
            assert!(err.contains("TIX_ES_"), "{pairs:?}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }

    #[test]
    fn retention_days_are_read_and_validated() {
        let url = ("TIX_ES_URL", "http://127.0.0.1:9200");
        assert_eq!(EsConfig::from_lookup(lookup(&[url])).unwrap().retention_days, None);
        assert_eq!(EsConfig::from_lookup(lookup(&[url, ("TIX_ES_RETENTION_DAYS", "")])).unwrap().retention_days, None);
        for (text, days) in [("30", 30), (" 7 ", 7), ("1", 1), ("36500", 36_500)] {
            let config = EsConfig::from_lookup(lookup(&[url, ("TIX_ES_RETENTION_DAYS", text)])).unwrap();
            assert_eq!(config.retention_days, Some(days), "{text:?}");
        }
        for text in ["0", "-3", "30d", "1.5", "36501", "forever"] {
            let err = EsConfig::from_lookup(lookup(&[url, ("TIX_ES_RETENTION_DAYS", text)])).unwrap_err().to_string();
            assert!(err.contains("TIX_ES_RETENTION_DAYS") && err.contains("unset it"), "{text:?}: {err}");
        }
    }

    /// `TIX_ES_AUTH`, its inference and the SigV4 settings: (variables, expected auth).
    #[test]
    fn auth_modes_are_chosen_or_inferred() {
        let es = |region: &str| EsAuth::SigV4 { region: region.into(), service: SigV4Service::Es };
        let aoss = |region: &str| EsAuth::SigV4 { region: region.into(), service: SigV4Service::Aoss };
        let domain = ("TIX_ES_URL", "https://search-tix-abc123.eu-west-1.es.amazonaws.com");
        let serverless = ("TIX_ES_URL", "https://k3x9q2.eu-west-1.aoss.amazonaws.com");
        let local = ("TIX_ES_URL", "http://127.0.0.1:9200");
        let region = ("AWS_REGION", "eu-west-1");
        let cases: Vec<(Vec<(&str, &str)>, EsAuth)> = vec![
            // Inferred exactly as before.
            (vec![local], EsAuth::None),
            (vec![local, ("TIX_ES_API_KEY", "k")], EsAuth::ApiKey(Secret::new("k"))),
            (
                vec![local, ("TIX_ES_USERNAME", "u"), ("TIX_ES_PASSWORD", "p")],
                EsAuth::Basic { username: "u".into(), password: Secret::new("p") },
            ),
            // An AWS-managed host without credentials: SigV4, the service from the host.
            (vec![domain, region], es("eu-west-1")),
            (vec![serverless, region], aoss("eu-west-1")),
            (vec![("TIX_ES_URL", "https://SEARCH-X.EU-WEST-1.ES.AMAZONAWS.COM."), region], es("eu-west-1")),
            // ... but an API key or a password on such a host keeps its mode.
            (vec![domain, ("TIX_ES_API_KEY", "k")], EsAuth::ApiKey(Secret::new("k"))),
            (
                vec![domain, ("TIX_ES_USERNAME", "master"), ("TIX_ES_PASSWORD", "p")],
                EsAuth::Basic { username: "master".into(), password: Secret::new("p") },
            ),
            // A host that only looks similar is not inferred.
            (vec![("TIX_ES_URL", "https://es.amazonaws.com.example.org"), region], EsAuth::None),
            // Explicit modes, case-insensitive.
            (vec![local, ("TIX_ES_AUTH", "sigv4"), region], es("eu-west-1")),
            (vec![local, ("TIX_ES_AUTH", "SigV4"), ("TIX_ES_SIGV4_SERVICE", "aoss"), region], aoss("eu-west-1")),
            (vec![domain, ("TIX_ES_AUTH", "none")], EsAuth::None),
            (vec![local, ("TIX_ES_AUTH", "apikey"), ("TIX_ES_API_KEY", "k")], EsAuth::ApiKey(Secret::new("k"))),
            (
                vec![local, ("TIX_ES_AUTH", "basic"), ("TIX_ES_USERNAME", "u"), ("TIX_ES_PASSWORD", "p")],
                EsAuth::Basic { username: "u".into(), password: Secret::new("p") },
            ),
            (
                vec![("TIX_ES_URL", "http://u:p@127.0.0.1:9200"), ("TIX_ES_AUTH", "basic")],
                EsAuth::Basic { username: "u".into(), password: Secret::new("p") },
            ),
            // Region: TIX_ES_REGION, then AWS_REGION, then AWS_DEFAULT_REGION.
            (
                vec![domain, ("TIX_ES_REGION", "us-east-2"), region, ("AWS_DEFAULT_REGION", "ap-south-1")],
                es("us-east-2"),
            ),
            (vec![domain, region, ("AWS_DEFAULT_REGION", "ap-south-1")], es("eu-west-1")),
            (vec![domain, ("AWS_DEFAULT_REGION", "ap-south-1")], es("ap-south-1")),
            (vec![domain, ("TIX_ES_REGION", " "), ("AWS_REGION", "us-gov-west-1")], es("us-gov-west-1")),
            // The service: explicit, or from the host, else es.
            (vec![serverless, ("TIX_ES_SIGV4_SERVICE", "aoss"), region], aoss("eu-west-1")),
            (vec![domain, ("TIX_ES_SIGV4_SERVICE", "ES"), region], es("eu-west-1")),
            (vec![("TIX_ES_URL", "https://search.example.com"), ("TIX_ES_AUTH", "sigv4"), region], es("eu-west-1")),
        ];
        for (pairs, expected) in cases {
            let config = EsConfig::from_lookup(lookup(&pairs)).unwrap_or_else(|e| panic!("{pairs:?}: {e}"));
            assert_eq!(config.auth, expected, "{pairs:?}");
        }
    }

    /// Contradicting or incomplete settings: (variables, words the message must contain).
    #[test]
    fn auth_mismatches_are_refused_with_the_variables_named() {
        let domain = ("TIX_ES_URL", "https://search-tix-abc123.eu-west-1.es.amazonaws.com");
        let serverless = ("TIX_ES_URL", "https://k3x9q2.eu-west-1.aoss.amazonaws.com");
        let local = ("TIX_ES_URL", "http://127.0.0.1:9200");
        let region = ("AWS_REGION", "eu-west-1");
        let secret = "very-secret-key-value";
        type Variables<'a> = Vec<(&'a str, &'a str)>;
        let cases: Vec<(Variables, &[&str])> = vec![
            (
                vec![local, ("TIX_ES_AUTH", "sigv4"), region, ("TIX_ES_API_KEY", secret)],
                &["TIX_ES_AUTH=sigv4", "TIX_ES_API_KEY"],
            ),
            (
                vec![domain, ("TIX_ES_AUTH", "sigv4"), region, ("TIX_ES_USERNAME", "u"), ("TIX_ES_PASSWORD", secret)],
                &["TIX_ES_AUTH=sigv4", "TIX_ES_USERNAME", "TIX_ES_PASSWORD"],
            ),
            (vec![("TIX_ES_URL", "https://u:pw@h.example"), ("TIX_ES_AUTH", "sigv4"), region], &["TIX_ES_URL"]),
            (vec![local, ("TIX_ES_AUTH", "sigv4")], &["TIX_ES_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"]),
            (vec![domain], &["TIX_ES_REGION", "AWS_REGION", "AWS_DEFAULT_REGION", "inferred sigv4"]),
            (vec![domain, ("TIX_ES_REGION", "EU West 1")], &["TIX_ES_REGION", "region"]),
            (vec![local, ("TIX_ES_AUTH", "sigv4"), ("AWS_REGION", "eu_west_1")], &["AWS_REGION"]),
            (vec![local, ("TIX_ES_AUTH", "kerberos")], &["TIX_ES_AUTH", "sigv4", "apikey", "basic", "none"]),
            (vec![domain, region, ("TIX_ES_SIGV4_SERVICE", "opensearch")], &["TIX_ES_SIGV4_SERVICE", "es", "aoss"]),
            (vec![serverless, region, ("TIX_ES_SIGV4_SERVICE", "es")], &["TIX_ES_SIGV4_SERVICE=es", "aoss"]),
            (vec![domain, region, ("TIX_ES_SIGV4_SERVICE", "aoss")], &["TIX_ES_SIGV4_SERVICE=aoss", "service es"]),
            (vec![local, ("TIX_ES_SIGV4_SERVICE", "aoss")], &["TIX_ES_SIGV4_SERVICE", "TIX_ES_AUTH=sigv4"]),
            (
                vec![local, ("TIX_ES_API_KEY", secret), ("TIX_ES_REGION", "eu-west-1")],
                &["TIX_ES_REGION", "TIX_ES_AUTH"],
            ),
            (vec![local, ("TIX_ES_AUTH", "none"), ("TIX_ES_API_KEY", secret)], &["TIX_ES_AUTH=none", "TIX_ES_API_KEY"]),
            (vec![local, ("TIX_ES_AUTH", "apikey")], &["TIX_ES_AUTH=apikey", "TIX_ES_API_KEY"]),
            (
                vec![local, ("TIX_ES_AUTH", "apikey"), ("TIX_ES_API_KEY", secret), ("TIX_ES_PASSWORD", "p")],
                &["TIX_ES_API_KEY", "TIX_ES_PASSWORD"],
            ),
            (vec![local, ("TIX_ES_AUTH", "basic"), ("TIX_ES_API_KEY", secret)], &["TIX_ES_API_KEY", "TIX_ES_USERNAME"]),
            (vec![local, ("TIX_ES_AUTH", "basic")], &["TIX_ES_AUTH=basic", "TIX_ES_USERNAME"]),
        ];
        for (pairs, words) in cases {
            let err = match EsConfig::from_lookup(lookup(&pairs)) {
                Ok(config) => panic!("{pairs:?} was accepted: {config:?}"),
                Err(e) => e.to_string(),
            };
            for word in words {
                assert!(err.contains(word), "{pairs:?}: {err:?} lacks {word:?}");
            }
            assert!(!err.contains(secret) && !err.contains("pw@"), "{err}");
        }
    }

    #[test]
    fn sigv4_debug_shows_region_and_service_only() {
        let auth = EsAuth::SigV4 { region: "eu-west-1".into(), service: SigV4Service::Aoss };
        assert_eq!(format!("{auth:?}"), r#"SigV4 { region: "eu-west-1", service: aoss }"#);
        let mut config = EsConfig::new("https://k3x9q2.eu-west-1.aoss.amazonaws.com");
        config.auth = auth;
        assert!(format!("{config:#?}").contains("service: aoss"));
        for (region, ok) in [("eu-west-1", true), ("us-gov-west-1", true), ("cn-north-1", true), ("", false)] {
            assert_eq!(is_region_name(region), ok, "{region:?}");
        }
        for region in ["EU-WEST-1", "eu west 1", "eu-west-1 ", "-eu", "eu-", "local", "1-eu"] {
            assert!(!is_region_name(region), "{region:?}");
        }
    }
}
