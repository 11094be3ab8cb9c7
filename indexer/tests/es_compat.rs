//! Engine compatibility (issue #14): the real client's `ensure_ready` against the scripted
//! server (`testkit::es_server`) answering `GET /` as each engine documents it
//! (`tests/golden/engines/`, written from the documented shapes, never captured from a
//! live cluster), with `TIX_ES_RETENTION_DAYS=30` unless a case says otherwise.
//!
//! Each case asserts the calls in order, the template body (only settings that engine
//! knows), the lifecycle calls (ILM on Elasticsearch, `_opendistro/_ism` on Amazon's
//! Elasticsearch 7.10, `_plugins/_ism` on OpenSearch, none on OpenSearch Serverless) and,
//! for the engines that are not Elasticsearch, that the answers carry no
//! `X-Elastic-Product` header: they go through [`NoProductHeader`], a relay that removes it
//! and counts what it removed.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use indexer::conformance::sample_docs;
use indexer::elasticsearch::config::Secret;
use indexer::elasticsearch::engine::{self, ism_policy_body, ism_policy_description, retention_policy_id};
use indexer::elasticsearch::mapping::{self, daily_index, index_template_with, sources_index, TemplateFeatures};
use indexer::{Backend, ElasticsearchBackend, Error, EsAuth, EsConfig, Outcome, SearchRequest, Store};
use serde_json::{json, Value};
use testkit::es_server::{bulk_ok, error_body, Reply, Request, Scripted};

const PREFIX: &str = "tix-bookings";
const PRODUCT_HEADER: &[u8] = b"x-elastic-product: Elasticsearch\r\n";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A recorded `GET /` answer.
fn golden(name: &str) -> String {
    let path = format!("{}/tests/golden/engines/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Fast retries so every case runs in well under a second.
fn config(url: &str, retention_days: Option<u32>) -> EsConfig {
    let mut config =
        indexer::conformance::es_settings::fast_config(url, EsAuth::ApiKey(Secret::new("tix-ingest:s3cr3t")));
    config.retry.max_retries = 2;
    config.retention_days = retention_days;
    config
}

fn ack() -> Reply {
    Reply::Json(200, r#"{"acknowledged":true}"#.into())
}

/// ISM's answer to reading a policy that does not exist.
fn ism_policy_not_found() -> Reply {
    Reply::Json(404, error_body(404, "status_exception", "Policy not found"))
}

/// ISM's answer to writing a policy: the stored document, as `PUT .../policies/ID` returns it.
fn ism_policy_written(request: &Request, status: u16, seq_no: u64) -> Reply {
    let id = request.path().rsplit('/').next().unwrap_or_default().to_string();
    let mut policy = request.json()["policy"].clone();
    policy["policy_id"] = json!(id);
    policy["last_updated_time"] = json!(1_707_091_200_000_i64);
    policy["schema_version"] = json!(21);
    Reply::Json(
        status,
        json!({"_id": id, "_version": seq_no + 1, "_primary_term": 1, "_seq_no": seq_no, "policy": {"policy": policy}})
            .to_string(),
    )
}

/// What `GET .../policies/ID` returns for a stored policy body, with the fields ISM adds.
fn ism_policy_stored(body: &Value, seq_no: u64, primary_term: u64) -> String {
    let mut policy = body["policy"].clone();
    policy["policy_id"] = json!(retention_policy_id(PREFIX));
    policy["last_updated_time"] = json!(1_707_091_200_000_i64);
    policy["schema_version"] = json!(21);
    policy["error_notification"] = Value::Null;
    let template = policy["ism_template"].take();
    policy["ism_template"] = json!([{"index_patterns": template["index_patterns"], "priority": template["priority"],
        "last_updated_time": 1_707_091_200_000_i64}]);
    json!({"_id": retention_policy_id(PREFIX), "_version": seq_no + 1, "_seq_no": seq_no, "_primary_term": primary_term,
        "policy": policy})
    .to_string()
}

/// A healthy cluster that answers `GET /` with `root`, stores nothing and acknowledges
/// every setup call this client makes.
fn cluster(root: (u16, String)) -> Scripted {
    Scripted::start(move |_, r| setup_reply(&root, r))
}

fn setup_reply(root: &(u16, String), r: &Request) -> Reply {
    let ism_policy = format!("/{}", retention_policy_id(PREFIX));
    match (r.method.as_str(), r.path()) {
        ("GET", "/") => Reply::Json(root.0, root.1.clone()),
        ("PUT", "/_index_template/tix-bookings") => ack(),
        ("PUT", "/tix-bookings-sources") => Reply::Json(
            200,
            r#"{"acknowledged":true,"shards_acknowledged":true,"index":"tix-bookings-sources"}"#.into(),
        ),
        ("PUT", path) if path.starts_with("/_ilm/policy/") => ack(),
        ("GET", path) if path.contains("/_ism/policies/") && path.ends_with(&ism_policy) => ism_policy_not_found(),
        ("PUT", path) if path.contains("/_ism/policies/") => ism_policy_written(r, 201, 0),
        ("POST", "/_bulk") => bulk_ok(r),
        ("POST", "/tix-bookings-2*/_count") => {
            Reply::Json(200, r#"{"count":3,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0}}"#.into())
        }
        _ => Reply::Json(404, error_body(404, "not_found", "no handler")),
    }
}

fn calls(server: &Scripted) -> Vec<String> {
    server.requests().iter().map(|r| format!("{} {}", r.method, r.target)).collect()
}

fn request<'a>(requests: &'a [Request], method: &str, path: &str) -> &'a Request {
    requests.iter().find(|r| r.method == method && r.path() == path).unwrap_or_else(|| panic!("no {method} {path}"))
}

/// Whether an index pattern of the `PREFIX-2*` kind (one trailing `*`) matches a name.
fn pattern_matches(pattern: &str, index: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(head) => index.starts_with(head),
        None => index == pattern,
    }
}

/// A TCP relay in front of a [`Scripted`] server that removes the `X-Elastic-Product`
/// header from every answer, as OpenSearch (which never sends it) would answer.
struct NoProductHeader {
    addr: std::net::SocketAddr,
    removed: Arc<AtomicUsize>,
}

impl NoProductHeader {
    fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let removed = Arc::new(AtomicUsize::new(0));
        let counter = removed.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else { continue };
                let (mut client_read, mut server_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut client_read, &mut server_write);
                    let _ = server_write.shutdown(Shutdown::Write);
                });
                let counter = counter.clone();
                std::thread::spawn(move || strip_product_header(server, client, &counter));
            }
        });
        NoProductHeader { addr, removed }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn removed(&self) -> usize {
        self.removed.load(Ordering::SeqCst)
    }
}

/// Copies `from` to `to` without the header line, which may arrive split across reads:
/// the last bytes that could start it are held back until the next read decides.
fn strip_product_header(mut from: TcpStream, mut to: TcpStream, removed: &AtomicUsize) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(at) = pending.windows(PRODUCT_HEADER.len()).position(|w| w == PRODUCT_HEADER) {
            pending.drain(at..at + PRODUCT_HEADER.len());
            removed.fetch_add(1, Ordering::SeqCst);
        }
        let keep = (1..PRODUCT_HEADER.len())
            .rev()
            .find(|&k| k <= pending.len() && pending.ends_with(&PRODUCT_HEADER[..k]))
            .unwrap_or(0);
        let send = pending.len() - keep;
        if to.write_all(&pending[..send]).is_err() {
            break;
        }
        pending.drain(..send);
    }
    let _ = to.write_all(&pending);
    let _ = to.shutdown(Shutdown::Write);
}

// ---------------------------------------------------------------------------------------
// Each engine
// ---------------------------------------------------------------------------------------

/// What one engine must be sent.
struct Case {
    name: &'static str,
    root: (u16, String),
    /// Elasticsearch sends the header; the others go through [`NoProductHeader`].
    product_header: bool,
    template: TemplateFeatures,
    /// The calls between `GET /` and the template.
    lifecycle_calls: Vec<String>,
}

fn cases() -> Vec<Case> {
    let ilm_features = |dynamic| TemplateFeatures {
        ignore_dynamic_beyond_limit: dynamic,
        ilm_policy: Some(retention_policy_id(PREFIX)),
    };
    let ilm_calls = vec![format!("PUT /_ilm/policy/{}", retention_policy_id(PREFIX))];
    let ism_calls = |base: &str| {
        let path = format!("/{base}/policies/{}", retention_policy_id(PREFIX));
        vec![format!("GET {path}"), format!("PUT {path}")]
    };
    let plain = |dynamic| TemplateFeatures { ignore_dynamic_beyond_limit: dynamic, ilm_policy: None };
    vec![
        Case {
            name: "Elasticsearch 7.10.2",
            root: (200, golden("es-7.10.2.json")),
            product_header: true,
            template: ilm_features(false),
            lifecycle_calls: ilm_calls.clone(),
        },
        Case {
            name: "Elasticsearch 7.10.2 on Amazon OpenSearch Service (oss)",
            root: (200, golden("aws-es-7.10.2-oss.json")),
            product_header: false,
            template: plain(false),
            lifecycle_calls: ism_calls("_opendistro/_ism"),
        },
        Case {
            name: "Elasticsearch 8.15.0",
            root: (200, golden("es-8.15.0.json")),
            product_header: true,
            template: ilm_features(true),
            lifecycle_calls: ilm_calls.clone(),
        },
        Case {
            name: "Elasticsearch 9.1.0",
            root: (200, golden("es-9.1.0.json")),
            product_header: true,
            template: ilm_features(true),
            lifecycle_calls: ilm_calls,
        },
        Case {
            name: "OpenSearch 1.3.19",
            root: (200, golden("opensearch-1.3.19.json")),
            product_header: false,
            template: plain(false),
            lifecycle_calls: ism_calls("_plugins/_ism"),
        },
        Case {
            name: "OpenSearch 2.17.1",
            root: (200, golden("opensearch-2.17.1.json")),
            product_header: false,
            template: plain(false),
            lifecycle_calls: ism_calls("_plugins/_ism"),
        },
        Case {
            name: "OpenSearch Serverless (GET / answers 404)",
            root: (404, golden("aoss-root-404.json")),
            product_header: false,
            // Unknown engine: offered the newest template (this cluster takes it), no lifecycle.
            template: plain(true),
            lifecycle_calls: vec![],
        },
    ]
}

#[test]
fn each_engine_gets_its_template_and_its_lifecycle_calls() {
    for case in cases() {
        let server = cluster(case.root.clone());
        let relay = (!case.product_header).then(|| NoProductHeader::start(server.addr()));
        let url = relay.as_ref().map_or_else(|| server.url(), NoProductHeader::url);
        let mut es = ElasticsearchBackend::connect(config(&url, Some(30))).unwrap();
        es.ensure_ready().unwrap_or_else(|e| panic!("{}: {e}", case.name));

        let mut expected = vec!["GET /".to_string()];
        expected.extend(case.lifecycle_calls.iter().cloned());
        expected.push("PUT /_index_template/tix-bookings".into());
        expected.push("PUT /tix-bookings-sources".into());
        assert_eq!(calls(&server), expected, "{}", case.name);

        let requests = server.requests();
        let template = request(&requests, "PUT", "/_index_template/tix-bookings").json();
        assert_eq!(template, index_template_with(PREFIX, &case.template), "{}", case.name);
        let settings = template["template"]["settings"].as_object().unwrap();
        let is_ilm = case.template.ilm_policy.is_some();
        assert_eq!(settings.contains_key("index.lifecycle.name"), is_ilm, "{}", case.name);
        assert_eq!(
            settings.get("index.lifecycle.parse_origination_date"),
            is_ilm.then_some(&json!(true)),
            "{}",
            case.name
        );
        for r in &requests {
            // OpenSearch answers 406 to Elasticsearch's versioned media types.
            assert_eq!(r.header("accept"), Some("application/json"), "{}: {}", case.name, r.target);
            if !r.body.is_empty() {
                assert_eq!(r.header("content-type"), Some("application/json"), "{}: {}", case.name, r.target);
            }
        }
        if is_ilm {
            let policy = request(&requests, "PUT", &format!("/_ilm/policy/{}", retention_policy_id(PREFIX))).json();
            assert_eq!(policy, engine::ilm_policy_body(30), "{}", case.name);
            assert_eq!(policy["policy"]["phases"]["delete"]["min_age"], "30d");
        }
        if let Some(put) = requests.iter().find(|r| r.method == "PUT" && r.path().contains("/_ism/policies/")) {
            assert_eq!(put.json(), ism_policy_body(PREFIX, 30), "{}", case.name);
            assert_eq!(put.query(), "", "{}: a new policy is created without a version condition", case.name);
            assert_eq!(put.json()["policy"]["ism_template"]["index_patterns"], json!(["tix-bookings-2*"]));
        }
        if let Some(relay) = relay {
            assert!(relay.removed() >= expected.len(), "{}: every answer went without the header", case.name);
        }
    }
}

#[test]
fn without_retention_no_policy_is_installed_or_attached() {
    for case in cases() {
        let server = cluster(case.root.clone());
        let mut es = ElasticsearchBackend::connect(config(&server.url(), None)).unwrap();
        es.ensure_ready().unwrap();
        assert_eq!(
            calls(&server),
            ["GET /", "PUT /_index_template/tix-bookings", "PUT /tix-bookings-sources"],
            "{}",
            case.name
        );
        let template = request(&server.requests(), "PUT", "/_index_template/tix-bookings").json();
        let features = TemplateFeatures { ilm_policy: None, ..case.template };
        assert_eq!(template, index_template_with(PREFIX, &features), "{}", case.name);
    }
}

#[test]
fn no_elastic_product_header_is_needed_to_ingest_and_count() {
    let server = cluster((200, golden("opensearch-2.17.1.json")));
    let relay = NoProductHeader::start(server.addr());
    let mut es = ElasticsearchBackend::connect(config(&relay.url(), Some(30))).unwrap();
    es.ensure_ready().unwrap();
    let docs: Vec<_> = sample_docs().into_iter().take(3).collect();
    let outcomes = es.index_batch(&docs).unwrap();
    assert!(outcomes.iter().all(|o| *o == Outcome::Indexed), "{outcomes:?}");
    assert_eq!(es.count(&SearchRequest::default()).unwrap(), 3);
    let requests = server.requests();
    assert_eq!(relay.removed(), requests.len(), "not one answer carried the header");
    let bulk = request(&requests, "POST", "/_bulk");
    assert_eq!(bulk.header("content-type"), Some("application/x-ndjson"));
}

// ---------------------------------------------------------------------------------------
// ISM policy updates
// ---------------------------------------------------------------------------------------

/// An OpenSearch 2.x cluster whose ISM policy store answers `policy_get` for reads and
/// `policy_put(attempt, request)` for writes.
fn opensearch_with_policy(
    policy_get: impl Fn(usize) -> Reply + Send + Sync + 'static,
    policy_put: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static,
) -> Scripted {
    let root = (200, golden("opensearch-2.17.1.json"));
    let (gets, puts) = (Arc::new(Mutex::new(0)), Arc::new(Mutex::new(0)));
    Scripted::start(move |_, r| {
        if r.path() == format!("/_plugins/_ism/policies/{}", retention_policy_id(PREFIX)) {
            let counter = if r.method == "GET" { &gets } else { &puts };
            let attempt = {
                let mut n = counter.lock().unwrap();
                *n += 1;
                *n - 1
            };
            return if r.method == "GET" { policy_get(attempt) } else { policy_put(attempt, r) };
        }
        setup_reply(&root, r)
    })
}

#[test]
fn a_current_ism_policy_is_left_alone() {
    let stored = ism_policy_stored(&ism_policy_body(PREFIX, 30), 4, 1);
    let server =
        opensearch_with_policy(move |_| Reply::Json(200, stored.clone()), |_, r| ism_policy_written(r, 200, 5));
    let mut es = ElasticsearchBackend::connect(config(&server.url(), Some(30))).unwrap();
    es.ensure_ready().unwrap();
    es.ensure_ready().unwrap();
    let policy_calls: Vec<String> = calls(&server).into_iter().filter(|c| c.contains("_ism")).collect();
    assert_eq!(
        policy_calls, ["GET /_plugins/_ism/policies/tix-bookings-retention"; 2],
        "read, found current, not written"
    );
}

#[test]
fn an_outdated_ism_policy_is_updated_with_the_version_it_was_read_at() {
    // Installed by an earlier run with 7 days.
    let stored = ism_policy_stored(&ism_policy_body(PREFIX, 7), 12, 3);
    let server =
        opensearch_with_policy(move |_| Reply::Json(200, stored.clone()), |_, r| ism_policy_written(r, 200, 13));
    let mut es = ElasticsearchBackend::connect(config(&server.url(), Some(30))).unwrap();
    es.ensure_ready().unwrap();
    let requests = server.requests();
    let put = request(&requests, "PUT", "/_plugins/_ism/policies/tix-bookings-retention");
    assert_eq!(put.query(), "if_seq_no=12&if_primary_term=3");
    assert_eq!(put.json(), ism_policy_body(PREFIX, 30));
    assert_eq!(put.json()["policy"]["description"], ism_policy_description(PREFIX, 30));
}

#[test]
fn an_ism_policy_changed_by_another_writer_is_read_again_before_it_is_written() {
    let first = ism_policy_stored(&ism_policy_body(PREFIX, 7), 12, 3);
    let second = ism_policy_stored(&ism_policy_body(PREFIX, 14), 13, 3);
    let server = opensearch_with_policy(
        move |attempt| Reply::Json(200, if attempt == 0 { first.clone() } else { second.clone() }),
        |attempt, r| {
            if attempt == 0 {
                let reason = "[tix-bookings-retention]: version conflict, required seqNo [12], primary term [3]. current document has seqNo [13] and primary term [3]";
                Reply::Json(409, error_body(409, "version_conflict_engine_exception", reason))
            } else {
                ism_policy_written(r, 200, 14)
            }
        },
    );
    let mut es = ElasticsearchBackend::connect(config(&server.url(), Some(30))).unwrap();
    es.ensure_ready().unwrap();
    let puts: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path().contains("_ism"))
        .map(|r| r.query().to_string())
        .collect();
    assert_eq!(puts, ["if_seq_no=12&if_primary_term=3", "if_seq_no=13&if_primary_term=3"]);
}

#[test]
fn a_cluster_without_the_ism_plugin_is_reported_with_what_to_do() {
    let reason = "no handler found for uri [/_plugins/_ism/policies/tix-bookings-retention] and method [GET]";
    let server = opensearch_with_policy(
        move |_| Reply::Json(400, json!({"error": reason, "status": 400}).to_string()),
        |_, r| ism_policy_written(r, 201, 0),
    );
    let mut es = ElasticsearchBackend::connect(config(&server.url(), Some(30))).unwrap();
    let err = es.ensure_ready().unwrap_err().to_string();
    assert!(err.contains("Index State Management") && err.contains("TIX_ES_RETENTION_DAYS"), "{err}");
    assert!(!calls(&server).iter().any(|c| c.contains("_index_template")), "nothing installed without retention");
}

#[test]
fn ilm_policies_are_replaced_on_every_run() {
    let server = cluster((200, golden("es-8.15.0.json")));
    let mut es = ElasticsearchBackend::connect(config(&server.url(), Some(30))).unwrap();
    es.ensure_ready().unwrap();
    let mut es = ElasticsearchBackend::connect(config(&server.url(), Some(90))).unwrap();
    es.ensure_ready().unwrap();
    let policies: Vec<Value> = server
        .requests()
        .iter()
        .filter(|r| r.path() == "/_ilm/policy/tix-bookings-retention")
        .map(|r| r.json()["policy"]["phases"]["delete"]["min_age"].clone())
        .collect();
    assert_eq!(policies, [json!("30d"), json!("90d")]);
}

// ---------------------------------------------------------------------------------------
// Refusals and fallbacks
// ---------------------------------------------------------------------------------------

#[test]
fn versions_without_composable_templates_are_refused_before_anything_is_written() {
    for (number, flavor) in [("7.9.3", "default"), ("6.8.23", "default"), ("7.4.2", "oss")] {
        let root = json!({"name": "n", "cluster_name": "c", "cluster_uuid": "u", "tagline": "You Know, for Search",
            "version": {"number": number, "build_flavor": flavor, "build_type": "tar", "build_snapshot": false}});
        let server = cluster((200, root.to_string()));
        let mut es = ElasticsearchBackend::connect(config(&server.url(), Some(30))).unwrap();
        let err = es.ensure_ready().unwrap_err();
        assert!(matches!(&err, Error::UnsupportedEngine { found } if found.contains(number)), "{err:?}");
        assert!(err.to_string().contains("upgrade the cluster"), "{err}");
        assert_eq!(calls(&server), ["GET /"], "{number}");
    }
}

#[test]
fn a_refused_get_root_stops_as_a_credentials_error() {
    let server = cluster((403, golden("aoss-root-403.json")));
    let mut es = ElasticsearchBackend::connect(config(&server.url(), Some(30))).unwrap();
    let err = es.ensure_ready().unwrap_err();
    assert!(matches!(&err, Error::Auth(m) if m.contains("HTTP 403")), "{err:?}");
    assert_eq!(calls(&server), ["GET /"]);
}

#[test]
fn an_unknown_engine_falls_back_when_it_refuses_the_newer_setting() {
    let server = Scripted::start(|_, r| {
        if r.path() == "/_index_template/tix-bookings" && r.json().to_string().contains("ignore_dynamic_beyond_limit") {
            let reason = "unknown setting [index.mapping.total_fields.ignore_dynamic_beyond_limit] please check that any required plugins are installed, or check the breaking changes documentation for removed settings";
            return Reply::Json(400, error_body(400, "illegal_argument_exception", reason));
        }
        setup_reply(&(404, golden("aoss-root-404.json")), r)
    });
    let mut es = ElasticsearchBackend::connect(config(&server.url(), Some(30))).unwrap();
    es.ensure_ready().unwrap();
    let requests = server.requests();
    let templates: Vec<Value> =
        requests.iter().filter(|r| r.path() == "/_index_template/tix-bookings").map(Request::json).collect();
    assert_eq!(templates, [mapping::index_template(PREFIX, true), mapping::index_template(PREFIX, false)]);
    assert!(!calls(&server).iter().any(|c| c.contains("_ilm") || c.contains("_ism")), "no lifecycle API on aoss");
}

/// A cluster that calls itself Elasticsearch 7.10.2 but has no ILM (OpenSearch, or a
/// fork) refuses the template's ILM settings as OpenSearch does: the run stops, says why
/// and what to do, and creates nothing else.
#[test]
fn a_refusal_of_the_ilm_settings_is_reported_with_what_to_do() {
    let server = Scripted::start(|_, r| {
        if r.path() == "/_index_template/tix-bookings" && r.json().to_string().contains("index.lifecycle.name") {
            let reason = "unknown setting [index.lifecycle.name] please check that any required plugins are installed, or check the breaking changes documentation for removed settings";
            return Reply::Json(400, error_body(400, "illegal_argument_exception", reason));
        }
        setup_reply(&(200, golden("es-7.10.2.json")), r)
    });
    let mut es = ElasticsearchBackend::connect(config(&server.url(), Some(30))).unwrap();
    let err = es.ensure_ready().unwrap_err().to_string();
    assert!(err.contains("unknown setting [index.lifecycle.name]"), "{err}");
    assert!(err.contains("unset TIX_ES_RETENTION_DAYS") || err.contains("Unset TIX_ES_RETENTION_DAYS"), "{err}");
    assert!(!calls(&server).contains(&"PUT /tix-bookings-sources".to_string()), "stopped before the sources index");
}

// ---------------------------------------------------------------------------------------
// The template's reach
// ---------------------------------------------------------------------------------------

#[test]
fn the_template_never_applies_to_the_sources_index() {
    for case in cases() {
        let template = index_template_with(PREFIX, &case.template);
        let patterns: Vec<&str> =
            template["index_patterns"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(!patterns.is_empty());
        for pattern in &patterns {
            assert!(!pattern_matches(pattern, &sources_index(PREFIX)), "{}: {pattern}", case.name);
            assert!(pattern_matches(pattern, &daily_index(PREFIX, 1_707_091_200_000)), "{}: {pattern}", case.name);
        }
        // With ILM's origination date read from the name, every index the template can
        // get from this client must carry a date ILM parses, or its creation would fail.
        if case.template.ilm_policy.is_some() {
            for ms in [946_684_800_000_i64, 1_707_091_200_000, 4_102_444_799_999] {
                let name = daily_index(PREFIX, ms);
                assert!(engine::ilm_origination_date(&name).is_some(), "{name}");
            }
        }
    }
    assert_eq!(mapping::analyst_index_pattern(PREFIX), "tix-bookings-2*");
    assert!(!pattern_matches(&mapping::analyst_index_pattern(PREFIX), &sources_index(PREFIX)));
}
