//! The production path's test harness: the real Elasticsearch backend pointed at
//! `testkit`'s fake cluster, a faithful simulation of the SQS queue in front of the
//! trigger handler (a message is deleted only when an invocation answered without it in
//! `batchItemFailures`), and what a run left behind (stored documents, checkpoint
//! documents, dead letters in Garage) gathered for the conservation oracle.

use std::collections::BTreeMap;

use indexer::elasticsearch::config::Secret;
use indexer::{Backend, ElasticsearchBackend, EsAuth, EsConfig};
use ingest::dead_letter::DeadLetterEntry;
use ingest::pipeline::PipelineConfig;
use ingest::redact::Redactor;
use ingest::trigger::{handle_event, HandlerReport};
use serde_json::{Map, Value};
use testkit::es_server::{FakeCluster, StoredDoc};
use testkit::oracle::{self, Corpus, Observed};

pub use super::observed_dead_letters;
use super::{sqs_event, Garage};

/// The index prefix of every run (the default): daily indices `tix-bookings-YYYY.MM.DD`.
pub const PREFIX: &str = indexer::elasticsearch::DEFAULT_INDEX_PREFIX;
/// The API key the in-process backend sends (`id:secret`).
pub const API_KEY: &str = "tix-ingest:s3cr3t-api-key-value";
/// The PII key of every run, in-process and in the binaries (`TIX_PII_KEY`), so their
/// stored documents can be compared token for token.
pub const PII_KEY: &str = "test-pii-key-for-the-tests-0123456789";

/// `testkit`'s fast test settings with the API key.
pub fn es_config(url: &str) -> EsConfig {
    testkit::es::fast_config(url, EsAuth::ApiKey(Secret::new(API_KEY)))
}

/// A backend as a freshly started Lambda instance has it: connected and set up.
pub fn es_backend(cluster: &FakeCluster) -> ElasticsearchBackend {
    let mut backend = ElasticsearchBackend::connect(es_config(&cluster.url())).expect("connect");
    backend.ensure_ready().expect("ensure_ready against the fake cluster");
    backend
}

/// Small batches, so each 120-record object takes several `_bulk` requests.
pub fn es_pipeline_config() -> PipelineConfig {
    let mut config = PipelineConfig::new(Redactor::new(PII_KEY.as_bytes()));
    config.batch_records = 50;
    config
}

/// How one invocation ended, as SQS sees it.
#[derive(Debug)]
pub enum Round {
    /// The handler answered; these messages were reported failed (and stay queued).
    Answered { failures: Vec<String>, report: Box<HandlerReport> },
    /// The handler returned an operational error: nothing is acknowledged.
    Failed(String),
}

impl Round {
    pub fn failures(&self) -> Option<&[String]> {
        match self {
            Round::Answered { failures, .. } => Some(failures),
            Round::Failed(_) => None,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Round::Failed(error) => Some(error),
            Round::Answered { .. } => None,
        }
    }
}

/// An SQS queue in front of the handler: each round delivers every message still
/// queued as one event; an answer deletes exactly the messages not in its
/// `batchItemFailures`, an error (or a crash) deletes nothing.
pub struct Sqs {
    queued: Vec<(String, String)>,
    pub rounds: Vec<Round>,
}

impl Sqs {
    /// The messages of an SQS `event` (as `upload_corpus` returns it).
    pub fn from_event(event: &Value) -> Sqs {
        let queued = event["Records"]
            .as_array()
            .expect("an SQS event")
            .iter()
            .map(|r| (r["messageId"].as_str().unwrap().to_string(), r["body"].as_str().unwrap().to_string()))
            .collect();
        Sqs { queued, rounds: Vec::new() }
    }

    /// The ids of the messages still queued.
    pub fn queued(&self) -> Vec<String> {
        self.queued.iter().map(|(id, _)| id.clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// The event a delivery of every queued message carries.
    pub fn event(&self) -> Value {
        sqs_event(&self.queued)
    }

    /// One delivery through `invoke` (the handler's result for the event); returns the
    /// round's outcome after applying it to the queue.
    pub fn deliver(&mut self, invoke: impl FnOnce(&Value) -> Result<HandlerReport, ingest::Error>) -> &Round {
        let event = self.event();
        let round = match invoke(&event) {
            Ok(report) => {
                let failures = report.batch_item_failures();
                for id in &failures {
                    assert!(self.queued.iter().any(|(q, _)| q == id), "{id} is not in the delivered batch");
                }
                self.queued.retain(|(id, _)| failures.contains(id));
                Round::Answered { failures, report: Box::new(report) }
            }
            Err(error) => Round::Failed(format!("{error} | {error:?}")),
        };
        self.rounds.push(round);
        self.rounds.last().unwrap()
    }

    /// A delivery whose invocation crashed: nothing answered, nothing deleted.
    pub fn crashed(&mut self, why: String) {
        self.rounds.push(Round::Failed(format!("crash: {why}")));
    }
}

/// Runs the real trigger handler on `event` with the test pipeline settings.
pub fn handle(
    garage: &Garage,
    backend: &mut impl Backend,
    dl_prefix: &str,
    event: &Value,
) -> Result<HandlerReport, ingest::Error> {
    handle_with_config(garage, backend, dl_prefix, event, es_pipeline_config())
}

/// [`handle`] with other pipeline settings (a stop condition, other batches).
pub fn handle_with_config(
    garage: &Garage,
    backend: &mut impl Backend,
    dl_prefix: &str,
    event: &Value,
    config: PipelineConfig,
) -> Result<HandlerReport, ingest::Error> {
    let mut dead_letter = garage.dead_letter(dl_prefix);
    handle_event(event.to_string().as_bytes(), &garage.s3, backend, &mut dead_letter, config, None, None)
}

/// Delivers until the queue is empty or `cap` rounds ran; `between(round, &sqs)` runs
/// after each round (to lift a fault). Returns how many rounds ran.
pub fn drain(
    sqs: &mut Sqs,
    cap: usize,
    mut invoke: impl FnMut(&Value) -> Result<HandlerReport, ingest::Error>,
    mut between: impl FnMut(usize, &Sqs),
) -> usize {
    let mut rounds = 0;
    while !sqs.is_empty() && rounds < cap {
        sqs.deliver(&mut invoke);
        between(rounds, sqs);
        rounds += 1;
    }
    assert!(sqs.is_empty(), "still queued after {cap} rounds: {:?}; rounds: {:#?}", sqs.queued(), sqs.rounds);
    rounds
}

/// The dead-letter entries under `dl_prefix`, as the oracle reads them.
pub fn dead_letters(garage: &Garage, dl_prefix: &str) -> Vec<DeadLetterEntry> {
    garage.dead_letter(dl_prefix).read_all().expect("read the dead letters back")
}

/// What a run left: the events and checkpoints the cluster stored (default prefix) and
/// the dead letters in Garage.
pub fn observed(cluster: &FakeCluster, garage: &Garage, dl_prefix: &str) -> Observed {
    cluster.observed(PREFIX, observed_dead_letters(dead_letters(garage, dl_prefix)))
}

/// A fault-free run of a corpus, one message per delivery: what it stored (the
/// reference for every faulty run of the same objects) and which ids each message's
/// object produced.
pub struct Reference {
    pub docs: BTreeMap<String, Map<String, Value>>,
    pub stored: Vec<StoredDoc>,
    pub ids_by_message: BTreeMap<String, Vec<String>>,
}

impl Reference {
    /// The stored form (`@timestamp`, daily index) of the event `id`.
    pub fn stored(&self, id: &str) -> &StoredDoc {
        self.stored.iter().find(|d| d.id == id).unwrap_or_else(|| panic!("{id} is not in the reference"))
    }
}

/// Runs `event` fault-free on a cluster of its own, each message alone, and checks the
/// oracle on it.
pub fn reference(garage: &Garage, corpus: &Corpus, event: &Value, dl_prefix: &str) -> Reference {
    let cluster = FakeCluster::start();
    let mut backend = es_backend(&cluster);
    let mut ids_by_message = BTreeMap::new();
    for record in event["Records"].as_array().unwrap() {
        let before: Vec<String> = cluster.events(PREFIX).into_iter().map(|(id, _)| id).collect();
        let one = serde_json::json!({ "Records": [record] });
        let report = handle(garage, &mut backend, dl_prefix, &one).expect("the fault-free run");
        assert!(report.batch_item_failures().is_empty(), "the fault-free run fails nothing");
        let new: Vec<String> =
            cluster.events(PREFIX).into_iter().map(|(id, _)| id).filter(|id| !before.contains(id)).collect();
        assert!(!new.is_empty());
        ids_by_message.insert(record["messageId"].as_str().unwrap().to_string(), new);
    }
    let observed = observed(&cluster, garage, dl_prefix);
    oracle::check(corpus, &observed, None);
    Reference { docs: observed.docs, stored: cluster.docs(&format!("{PREFIX}-2*")), ids_by_message }
}
