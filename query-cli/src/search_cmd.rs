//! `tix-logs search`, and the backend opening shared with `tix-logs audit`.

use std::io::Write;

use anyhow::{bail, Result};
use indexer::{AggSpec, ElasticsearchBackend, EsConfig, SearchRequest, SortSpec, Store, TantivyBackend};

use crate::cli::{BackendKind, SearchArgs, StoreArgs};
use crate::render;
use crate::timespec::parse_window;

/// The store to read (a tantivy index opened for reading takes no writer lock). tantivy
/// answers `event_id:X` through the keyed document id, so it gets the id key of
/// `TIX_PII_KEY` when that is set; without it such queries are refused with a message
/// saying to set it. Elasticsearch matches `event_id` as a stored keyword and needs no key.
pub fn open_backend(store: &StoreArgs) -> Result<Box<dyn Store>> {
    match store.backend {
        BackendKind::Tantivy => {
            let backend = TantivyBackend::open_for_reading(&store.index)?;
            Ok(Box::new(match ingest::pii_key::event_id_key_from_env() {
                Some(key) => backend.with_event_id_key(key),
                None => backend,
            }))
        }
        BackendKind::Elasticsearch => Ok(Box::new(connect_elasticsearch()?)),
    }
}

/// The Elasticsearch backend from `TIX_ES_URL` and friends.
pub fn connect_elasticsearch() -> Result<ElasticsearchBackend> {
    if std::env::var_os("TIX_ES_URL").is_none() {
        bail!("--backend elasticsearch needs TIX_ES_URL (e.g. http://127.0.0.1:9200; see README, \"Elasticsearch\")");
    }
    let config = EsConfig::from_env()?;
    Ok(ElasticsearchBackend::connect(config)?)
}

pub fn run(args: SearchArgs) -> Result<u8> {
    let (since_ms, until_ms) =
        parse_window(args.since.as_deref(), args.until.as_deref()).map_err(anyhow::Error::msg)?;
    let aggs = args.aggs.iter().map(|spec| AggSpec::parse(spec)).collect::<Result<Vec<_>, _>>()?;
    let request = SearchRequest {
        query: args.query.clone(),
        since_ms,
        until_ms,
        limit: args.limit,
        sort: args.sort.as_deref().map(SortSpec::parse),
        aggs: aggs.clone(),
    };
    let backend = open_backend(&args.store)?;
    let mut stdout = std::io::stdout().lock();
    if args.count {
        let count = backend.count(&request)?;
        writeln!(stdout, "{count}")?;
        return Ok(0);
    }
    let response = backend.search(&request)?;
    let fields: Vec<String> =
        args.fields.clone().unwrap_or_else(|| render::DEFAULT_FIELDS.iter().map(|s| s.to_string()).collect());
    stdout.write_all(render::render(&response, &aggs, &fields, args.format).as_bytes())?;
    Ok(0)
}
