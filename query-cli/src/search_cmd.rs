//! `tix-logs search` and `tix-logs audit`.

use std::io::Write;

use anyhow::{bail, Result};
use indexer::{AggSpec, Backend, ElasticsearchBackend, EsConfig, SearchRequest, SortSpec, TantivyBackend};

use crate::cli::{AuditArgs, BackendKind, SearchArgs, StoreArgs};
use crate::render::{self, Format};
use crate::timespec::parse_time;

fn open_backend(store: &StoreArgs) -> Result<Box<dyn Backend>> {
    match store.backend {
        BackendKind::Tantivy => Ok(Box::new(TantivyBackend::open_for_reading(&store.index)?)),
        BackendKind::Elasticsearch => connect_elasticsearch(),
    }
}

/// The Elasticsearch backend from `TIX_ES_URL` and friends.
pub fn connect_elasticsearch() -> Result<Box<dyn Backend>> {
    if std::env::var_os("TIX_ES_URL").is_none() {
        bail!("--backend elasticsearch needs TIX_ES_URL (e.g. http://127.0.0.1:9200; see README, \"Elasticsearch\")");
    }
    let config = EsConfig::from_env()?;
    Ok(Box::new(ElasticsearchBackend::connect(config)?))
}

pub fn run(args: SearchArgs) -> Result<u8> {
    let now = chrono::Utc::now();
    let since_ms = args.since.as_deref().map(|t| parse_time(t, now)).transpose().map_err(anyhow::Error::msg)?;
    let until_ms = args.until.as_deref().map(|t| parse_time(t, now)).transpose().map_err(anyhow::Error::msg)?;
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

pub fn audit(args: AuditArgs) -> Result<u8> {
    let backend = open_backend(&args.store)?;
    let records = backend.sources()?;
    let mut stdout = std::io::stdout().lock();
    match args.format {
        Format::Json => writeln!(stdout, "{}", serde_json::to_string_pretty(&records)?)?,
        Format::Ndjson => {
            for record in &records {
                writeln!(stdout, "{}", serde_json::to_string(record)?)?;
            }
        }
        Format::Table | Format::Csv => stdout.write_all(render::audit_table(&records).as_bytes())?,
    }
    Ok(0)
}
