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
}

impl fmt::Debug for EsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EsAuth::None => f.write_str("None"),
            EsAuth::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            // The username is not a secret and helps when a login is refused.
            EsAuth::Basic { username, .. } => write!(f, "Basic {{ username: {username:?}, password: <redacted> }}"),
        }
    }
}

/// Capped exponential backoff with jitter, bounded by a time budget and an attempt count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry; doubles on each further attempt.
    pub initial_backoff: Duration,
    /// Upper bound of one delay.
    pub max_backoff: Duration,
    /// Retries of the same items after the first attempt.
    pub max_retries: u32,
    /// Wall-clock budget of one `index_batch` (or one query) including all retries. When
    /// it runs out, the items still unwritten are reported as failed, never as rejected.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_retries: 8,
            budget: Duration::from_secs(120),
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
        }
    }

    /// Reads `TIX_ES_URL`, `TIX_ES_API_KEY` or `TIX_ES_USERNAME`/`TIX_ES_PASSWORD`,
    /// `TIX_ES_INDEX_PREFIX` and `TIX_ES_CA_CERT` from the environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`EsConfig::from_env`] over any variable lookup (tests pass a map instead of
    /// mutating the process environment, which is racy across test threads).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let url = get("TIX_ES_URL").ok_or_else(|| {
            Error::Other("TIX_ES_URL is not set: point it at the cluster, e.g. http://127.0.0.1:9200".into())
        })?;
        let mut config = EsConfig::new(url);
        config.auth = match (get("TIX_ES_API_KEY"), get("TIX_ES_USERNAME"), lookup("TIX_ES_PASSWORD")) {
            (Some(_), Some(_), _) => {
                return Err(Error::Other(
                    "set either TIX_ES_API_KEY or TIX_ES_USERNAME/TIX_ES_PASSWORD, not both".into(),
                ))
            }
            (Some(key), None, _) => EsAuth::ApiKey(Secret::new(key)),
            (None, Some(username), Some(password)) => EsAuth::Basic { username, password: Secret::new(password) },
            (None, Some(_), None) => {
                return Err(Error::Other("TIX_ES_USERNAME is set but TIX_ES_PASSWORD is not".into()))
            }
            (None, None, Some(_)) => {
                return Err(Error::Other("TIX_ES_PASSWORD is set but TIX_ES_USERNAME is not".into()))
            }
            (None, None, None) => EsAuth::None,
        };
        if let Some(prefix) = get("TIX_ES_INDEX_PREFIX") {
            config.index_prefix = prefix;
        }
        config.ca_cert = get("TIX_ES_CA_CERT").map(PathBuf::from);
        config.validate()?;
        Ok(config)
    }

    /// Checks the prefix is a legal index name start and the URL parses; moves
    /// credentials written into the URL (`https://user:pass@host`) into `auth` so they
    /// are never echoed in an error message that quotes the URL.
    pub fn validate(&mut self) -> Result<()> {
        let mut url = Url::parse(&self.url).map_err(|e| Error::Other(format!("TIX_ES_URL is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Other(format!("TIX_ES_URL must be http:// or https://, not {}://", url.scheme())));
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
                return Err(Error::Other(
                    "TIX_ES_API_KEY contains spaces or characters that cannot go in an HTTP header".into(),
                ))
            }
            EsAuth::Basic { username, password }
                if username.contains(':') || username.chars().chain(password.expose().chars()).any(char::is_control) =>
            {
                return Err(Error::Other(
                    "TIX_ES_USERNAME must not contain ':' and neither it nor TIX_ES_PASSWORD may contain control characters"
                        .into(),
                ))
            }
            _ => {}
        }
        if self.batch_docs == 0 || self.batch_bytes == 0 || self.max_in_flight == 0 {
            return Err(Error::Other("batch_docs, batch_bytes and max_in_flight must be at least 1".into()));
        }
        Ok(())
    }

    /// The parsed cluster URL.
    pub fn parsed_url(&self) -> Result<Url> {
        Url::parse(&self.url).map_err(|e| Error::Other(format!("TIX_ES_URL is not a URL: {e}")))
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
        return Err(Error::Other(format!(
            "TIX_ES_INDEX_PREFIX {prefix:?} is not a valid index name prefix: use lowercase letters, digits, '-' and '_', not starting with '-', '_', '+' or '.'"
        )));
    }
    Ok(())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(high << 4 | low);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
}
