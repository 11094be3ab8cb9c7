//! SigV4 (`TIX_ES_AUTH=sigv4`, Amazon OpenSearch Service and Serverless) end to end: the
//! real backend against the scripted Elasticsearch server of `testkit::es_server`, through
//! `testkit/sigv4_gate.py`, a reverse proxy that recomputes every request's signature with
//! botocore (the AWS CLI's own signer) and answers a mismatch the way AWS does (403 with
//! AWS's message). So every signature here is judged by an implementation independent of
//! the one that made it, on the bytes that actually crossed the socket.
//!
//! Needs `python3` with `botocore` (`scripts/test.sh` installs it); without it these tests
//! fail with that said, they are never skipped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use indexer::conformance::{sample_docs, sample_source_record};
use indexer::elasticsearch::config::SigV4Service;
use indexer::elasticsearch::sigv4::AwsCredentials;
use indexer::{Backend, ElasticsearchBackend, Error, EsAuth, EsConfig, Outcome, SearchRequest, Store};
use serde_json::{json, Value};
use testkit::es_server::{bulk_ok, Reply, Request, Scripted};
use testkit::sigv4_gate::{Gate, GateCredentials, REGION};

const ACCESS_KEY: &str = "AKIDTIXLOGSSIGV4TEST";
/// With `/` and `+`, as real secret keys have.
const SECRET_KEY: &str = "tixLogs/SigV4+TestSecret/wJalrXUtnFEMIK7MDENG";
const WRONG_SECRET_KEY: &str = "tixLogs/WRONG+TestSecret/wJalrXUtnFEMIK7MDENG";
/// What the gate accepts (without a session token).
const TEST_KEYS: GateCredentials<'static> =
    GateCredentials { access_key: ACCESS_KEY, secret_key: SECRET_KEY, session_token: None };
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEJr//////////wEaCWV1LXdlc3QtMSJHMEUCIQ+tix/test/session/token==";

// ---------------------------------------------------------------------------------------
// The cluster behind it
// ---------------------------------------------------------------------------------------

/// What the scripted OpenSearch node holds: documents created, checkpoint records.
#[derive(Default)]
struct Held {
    documents: usize,
    sources: Vec<Value>,
}

/// An Amazon OpenSearch Service 2.x domain, scripted: every call the backend makes is
/// answered with what OpenSearch documents, and `_bulk` keeps count of what it stored.
fn opensearch_domain() -> (Scripted, Arc<Mutex<Held>>) {
    let held = Arc::new(Mutex::new(Held::default()));
    let state = held.clone();
    let shards = json!({"total": 1, "successful": 1, "skipped": 0, "failed": 0});
    let server = Scripted::start(move |_, r: &Request| {
        let mut held = state.lock().unwrap();
        let ack = || Reply::Json(200, r#"{"acknowledged":true}"#.into());
        match (r.method.as_str(), r.path()) {
            ("GET", "/") => Reply::Json(
                200,
                json!({"name": "a1b2c3", "cluster_name": "123456789012:tix-logs", "version": {
                    "distribution": "opensearch", "number": "2.13.0", "build_type": "tar",
                    "minimum_wire_compatibility_version": "7.10.0", "minimum_index_compatibility_version": "7.0.0"
                }, "tagline": "The OpenSearch Project: https://opensearch.org/"})
                .to_string(),
            ),
            ("PUT", "/_index_template/tix-bookings") => ack(),
            ("PUT", "/tix-bookings-sources") => Reply::Json(
                200,
                r#"{"acknowledged":true,"shards_acknowledged":true,"index":"tix-bookings-sources"}"#.into(),
            ),
            ("POST", "/_bulk") => {
                for (action, source) in r.bulk_lines() {
                    if action.get("index").is_some() {
                        held.sources.push(source);
                    } else {
                        held.documents += 1;
                    }
                }
                bulk_ok(r)
            }
            ("POST", "/tix-bookings-2*/_search") => Reply::Json(
                200,
                json!({"took": 2, "timed_out": false, "_shards": shards, "hits": {
                    "total": {"value": held.documents, "relation": "eq"}, "max_score": null, "hits": []}})
                .to_string(),
            ),
            ("POST", "/tix-bookings-2*/_count") => {
                Reply::Json(200, json!({"count": held.documents, "_shards": shards}).to_string())
            }
            ("POST", "/tix-bookings-sources/_search") => {
                let hits: Vec<Value> = held
                    .sources
                    .iter()
                    .map(|s| json!({"_index": "tix-bookings-sources", "_id": s["key"], "_source": s, "sort": [s["key"]]}))
                    .collect();
                Reply::Json(
                    200,
                    json!({"took": 1, "timed_out": false, "_shards": shards,
                           "hits": {"total": {"value": hits.len(), "relation": "eq"}, "hits": hits}})
                    .to_string(),
                )
            }
            ("GET", path) if path.starts_with("/tix-bookings-sources/_doc/") => Reply::Json(
                404,
                json!({"_index": "tix-bookings-sources", "_id": path.rsplit('/').next(), "found": false}).to_string(),
            ),
            ("GET", "/_cat/indices/tix-bookings-*") => {
                Reply::Json(200, r#"[{"index":"tix-bookings-2024.02.05"},{"index":"tix-bookings-sources"}]"#.into())
            }
            ("DELETE", _) => ack(),
            _ => Reply::Json(404, r#"{"error":"no handler"}"#.into()),
        }
    });
    (server, held)
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn sigv4_config(url: &str, service: SigV4Service) -> EsConfig {
    let mut config =
        indexer::conformance::es_settings::fast_config(url, EsAuth::SigV4 { region: REGION.into(), service });
    config.request_timeout = Duration::from_secs(5);
    config.retry.max_retries = 2;
    config.retry.budget = Duration::from_secs(10);
    config
}

fn credentials(secret: &str, token: Option<&str>) -> AwsCredentials {
    AwsCredentials::new(ACCESS_KEY, secret, token.map(str::to_string), None, "es_sigv4 test")
}

fn backend(gate: &Gate, service: SigV4Service, credentials: AwsCredentials) -> ElasticsearchBackend {
    ElasticsearchBackend::connect(sigv4_config(&gate.url(), service))
        .expect("connect")
        .with_aws_credentials(credentials)
        .expect("a SigV4 backend takes credentials")
}

/// Every backend call once, in the order a run makes them; returns the number of
/// documents indexed.
fn run_every_call(es: &mut ElasticsearchBackend) -> usize {
    es.ensure_ready().expect("ensure_ready");
    let docs = sample_docs();
    let outcomes = es.index_batch(&docs).expect("index_batch");
    assert!(outcomes.iter().all(|o| *o == Outcome::Indexed), "{outcomes:?}");
    es.record_source(&sample_source_record()).unwrap();
    es.flush().expect("flush");
    let total = es.search(&SearchRequest { query: "type:booking.confirmed".into(), ..SearchRequest::default() });
    assert_eq!(total.expect("search").total, docs.len() as u64);
    assert_eq!(es.count(&SearchRequest::default()).expect("count"), docs.len() as u64);
    let sources = es.sources().expect("sources");
    assert_eq!(sources, vec![sample_source_record()]);
    assert_eq!(es.source_record("ffffffffffffffffffffffffffffffff").expect("source_record"), None);
    docs.len()
}

fn targets(stats: &Value) -> Vec<String> {
    stats["requests"].as_array().unwrap().iter().map(|r| format!("{} {}", r["method"], r["target"])).collect()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

/// ensure_ready, index_batch, flush, search, count, sources, source_record and the clean-up
/// (`_cat/indices?format=json&h=index`, a comma-separated DELETE) are all signed so that
/// botocore computes the same signature, and reach the cluster unchanged.
#[test]
fn every_backend_call_is_signed_and_verified_by_botocore() {
    let (server, held) = opensearch_domain();
    let gate = Gate::start(&server.url(), "es", TEST_KEYS);
    let mut es = backend(&gate, SigV4Service::Es, credentials(SECRET_KEY, None));
    let indexed = run_every_call(&mut es);
    es.delete_everything().expect("delete_everything");
    assert_eq!(held.lock().unwrap().documents, indexed);

    let seen = server.requests();
    let stats = gate.assert_all_verified(seen.len() as u64);
    assert_eq!(stats["verified"].as_u64().unwrap(), seen.len() as u64, "every request reached the cluster");
    let targets = targets(&stats);
    // Queries with characters that need escaping, encoded as SigV4 canonicalizes them.
    for expected in [
        "\"POST\" \"/_bulk?filter_path=items.%2A._id%2Citems.%2A.status%2Citems.%2A.error%2Cerror%2Cstatus\"",
        "\"GET\" \"/_cat/indices/tix-bookings-*?format=json&h=index\"",
        "\"DELETE\" \"/tix-bookings-2024.02.05,tix-bookings-sources\"",
        "\"POST\" \"/tix-bookings-2*/_search\"",
        "\"GET\" \"/\"",
    ] {
        assert!(targets.iter().any(|t| t == expected), "{expected} not among {targets:#?}");
    }
    for request in stats["requests"].as_array().unwrap() {
        assert_eq!(request["service"], "es");
        assert_eq!(request["region"], REGION);
        assert_eq!(request["signed_headers"], json!(["host", "x-amz-content-sha256", "x-amz-date"]));
        assert_eq!(request["session_token"], false);
    }
    // No other credentials travel along, and nothing carries the secret key.
    for request in &seen {
        assert!(request
            .header("authorization")
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256 Credential=AKIDTIXLOGSSIGV4TEST/"));
        assert!(request.header("x-amz-content-sha256").is_some());
        let text = format!("{request:?}");
        assert!(!text.contains(SECRET_KEY), "{text}");
    }
}

/// A wrong secret key: AWS's 403 becomes `Error::Auth` (no retry, the run stops), and the
/// secret is nowhere in the error or the backend's `Debug`.
#[test]
fn a_wrong_secret_key_is_refused_as_an_auth_error_without_showing_it() {
    let (server, _) = opensearch_domain();
    let gate = Gate::start(&server.url(), "es", TEST_KEYS);
    let mut es = backend(&gate, SigV4Service::Es, credentials(WRONG_SECRET_KEY, None));

    let err = es.ensure_ready().unwrap_err();
    assert!(matches!(err, Error::Auth(_)), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(text.contains("HTTP 403") && text.contains("signature"), "{text}");
    // The advice fits the mode: AWS credentials and IAM, not an API key.
    assert!(text.contains("es:ESHttp") && text.contains("role") && !text.contains("TIX_ES_API_KEY"), "{text}");
    let err = es.index_batch(&sample_docs()).unwrap_err();
    assert!(matches!(err, Error::Auth(_)), "{err:?}");
    let err = es.count(&SearchRequest::default()).unwrap_err();
    assert!(matches!(err, Error::Auth(_)), "{err:?}");
    for text in [format!("{err} {err:?}"), format!("{es:?}"), format!("{:?}", es.config())] {
        assert!(!text.contains(WRONG_SECRET_KEY) && !text.contains("WRONG+TestSecret"), "{text}");
    }

    let stats = gate.stats();
    assert_eq!(stats["verified"], 0, "{stats:#}");
    assert_eq!(stats["refused"], 3, "one refusal per call, no retries: {stats:#}");
    assert!(server.requests().is_empty(), "nothing passed the gate");
}

/// Temporary credentials (a Lambda role's): the session token is sent and signed. A
/// client that leaves it out, or sends another one, is refused.
#[test]
fn a_session_token_is_sent_and_signed() {
    let (server, _) = opensearch_domain();
    let gate = Gate::start(&server.url(), "es", GateCredentials { session_token: Some(SESSION_TOKEN), ..TEST_KEYS });
    let mut es = backend(&gate, SigV4Service::Es, credentials(SECRET_KEY, Some(SESSION_TOKEN)));
    run_every_call(&mut es);
    let seen = server.requests();
    let stats = gate.assert_all_verified(seen.len() as u64);
    for request in stats["requests"].as_array().unwrap() {
        assert_eq!(request["session_token"], true);
        assert_eq!(
            request["signed_headers"],
            json!(["host", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token"])
        );
    }
    assert!(seen.iter().all(|r| r.header("x-amz-security-token") == Some(SESSION_TOKEN)));

    for wrong in [credentials(SECRET_KEY, None), credentials(SECRET_KEY, Some("another-token"))] {
        let mut es = backend(&gate, SigV4Service::Es, wrong);
        let err = es.ensure_ready().unwrap_err();
        assert!(matches!(err, Error::Auth(_)), "{err:?}");
        assert!(!format!("{err:?}").contains(SESSION_TOKEN));
    }
    assert_eq!(gate.stats()["refused"], 2);
}

/// OpenSearch Serverless: signed for service `aoss` (and the content hash it requires);
/// a signature for `es` is refused there.
#[test]
fn serverless_collections_are_signed_for_aoss() {
    let (server, _) = opensearch_domain();
    let gate = Gate::start(&server.url(), "aoss", TEST_KEYS);
    let mut es = backend(&gate, SigV4Service::Aoss, credentials(SECRET_KEY, None));
    run_every_call(&mut es);
    let stats = gate.assert_all_verified(server.requests().len() as u64);
    assert!(stats["requests"].as_array().unwrap().iter().all(|r| r["service"] == "aoss"), "{stats:#}");

    let mut es = backend(&gate, SigV4Service::Es, credentials(SECRET_KEY, None));
    let err = es.ensure_ready().unwrap_err();
    assert!(matches!(err, Error::Auth(_)), "{err:?}");
    let stats = gate.stats();
    assert_eq!(stats["refused"], 1);
    assert!(stats["refusals"][0]["reason"].as_str().unwrap().contains("scope eu-west-1/es"), "{stats:#}");
}

/// Credentials can only be given to a backend that signs: the mistake is reported, not
/// ignored.
#[test]
fn credentials_for_a_backend_that_does_not_sign_are_refused() {
    let es = ElasticsearchBackend::connect(EsConfig::new("http://127.0.0.1:9")).unwrap();
    let err = es.with_aws_credentials(credentials(SECRET_KEY, None)).unwrap_err();
    assert!(err.to_string().contains("TIX_ES_AUTH=sigv4"), "{err}");
    assert!(!err.to_string().contains(SECRET_KEY));
}
