//! `tix-logs ingest`: expand sources (local or S3) or read a saved trigger event, run
//! the pipeline, print the summary.

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use indexer::{Backend, ElasticsearchBackend, TantivyBackend};
use ingest::dead_letter::{DeadLetterStore, LocalDeadLetter};
use ingest::pipeline::{Pipeline, PipelineConfig, RunSummary, SourceOutcome, SourceReport};
use ingest::redact::Redactor;
use ingest::s3::{S3Context, S3DeadLetter, S3Location};
use ingest::source::SourceObject;
use ingest::trigger::{handle_event, Deadline, HandlerReport, DEFAULT_DEADLINE_MARGIN};

use crate::cli::{BackendKind, IngestArgs, PipelineArgs, StoreArgs};
use crate::progress::BarProgress;
use crate::render::group_digits;

/// The S3 client and the runtime its blocking calls run on, made only when needed.
pub struct S3Edge {
    // Kept alive for the client's connections; dropped after everything using it.
    _runtime: tokio::runtime::Runtime,
    pub context: S3Context,
}

impl S3Edge {
    pub fn start() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the S3 client's runtime")?;
        let context = S3Context::from_env_blocking(runtime.handle().clone());
        Ok(S3Edge { _runtime: runtime, context })
    }
}

fn expand_sources(args: &[String], s3: Option<&S3Context>) -> Result<Vec<Box<dyn SourceObject>>> {
    let mut sources = Vec::new();
    for arg in args {
        match s3.and_then(|s3| ingest::s3::sources_for(arg, s3)) {
            Some(listed) => sources.extend(listed.with_context(|| format!("listing {arg}"))?),
            None => sources.extend(ingest::source::local_sources(std::slice::from_ref(arg))?),
        }
    }
    Ok(sources)
}

/// The first destination of a run that is not a local directory, as the user wrote it:
/// there a missing `TIX_PII_KEY` is refused instead of replaced by the development key.
pub fn remote_destination(store: &StoreArgs, pipeline: &PipelineArgs, event: bool) -> Option<&'static str> {
    if store.backend == BackendKind::Elasticsearch {
        Some("--backend elasticsearch")
    } else if pipeline.dead_letter.starts_with("s3://") {
        Some("--dead-letter s3://...")
    } else if event {
        Some("--event")
    } else {
        None
    }
}

/// The PII redactor from `TIX_PII_KEY` (at least 32 bytes). Unset, the development key
/// stands in for a local run only, with one warning where the user will see it (stderr
/// for people, the log for scripts); for a `remote` destination it is an error (exit 2).
pub fn redactor_from_env(json: bool, remote: Option<&str>) -> Result<Redactor> {
    let key = ingest::pii_key::for_ingest_from_env(remote).map_err(anyhow::Error::msg)?;
    if key.development {
        if json {
            tracing::warn!(
                "TIX_PII_KEY is not set: e-mail and phone tokens and document ids use the public development key"
            );
        } else {
            eprintln!("warning: TIX_PII_KEY is not set; PII tokens and document ids use the public development key (fine for local tests, not for real data)");
        }
    }
    Ok(key.redactor)
}

/// A store opened for writing. The write paths are generic over [`Backend`], so each
/// command matches on this and runs its body with the concrete backend.
#[allow(clippy::large_enum_variant)] // One per run, moved once into that body.
pub enum Writer {
    Tantivy(TantivyBackend),
    Elasticsearch(ElasticsearchBackend),
}

/// The store to ingest into, opened for writing and ready (template, index).
pub fn open_writer(store: &StoreArgs, flags: &PipelineArgs) -> Result<Writer> {
    let mut writer = match store.backend {
        BackendKind::Tantivy => {
            Writer::Tantivy(TantivyBackend::open_for_writing(&store.index, flags.tantivy_config())?)
        }
        BackendKind::Elasticsearch => Writer::Elasticsearch(crate::search_cmd::connect_elasticsearch()?),
    };
    match &mut writer {
        Writer::Tantivy(backend) => backend.ensure_ready(),
        Writer::Elasticsearch(backend) => backend.ensure_ready(),
    }
    .context("preparing the backend")?;
    Ok(writer)
}

pub fn run(args: IngestArgs) -> Result<u8> {
    if args.sources.is_empty() && args.event.is_none() {
        bail!("nothing to ingest: name files, directories, s3://bucket/prefix, - for stdin, or --event FILE (see tix-logs ingest --help)");
    }
    // Before anything is read or opened: a refused key is a usage error.
    let redactor = redactor_from_env(args.json, remote_destination(&args.store, &args.pipeline, args.event.is_some()))?;
    let needs_s3 = args.event.is_some()
        || args.pipeline.dead_letter.starts_with("s3://")
        || args.sources.iter().any(|s| s.starts_with("s3://"));
    let s3 = if needs_s3 { Some(S3Edge::start()?) } else { None };
    let s3_context = s3.as_ref().map(|edge| &edge.context);
    let event = args
        .event
        .as_ref()
        .map(|path| std::fs::read(path).with_context(|| format!("reading the event {}", path.display())))
        .transpose()?;
    let sources = expand_sources(&args.sources, s3_context)?;
    let writer = open_writer(&args.store, &args.pipeline)?;
    let mut dead_letter: Box<dyn DeadLetterStore> = match S3Location::parse(&args.pipeline.dead_letter) {
        Some(location) => {
            let location = location.map_err(anyhow::Error::msg)?;
            Box::new(S3DeadLetter::new(s3_context.expect("S3 is started for an s3:// dead-letter").clone(), location))
        }
        None => Box::new(LocalDeadLetter::new(std::path::Path::new(&args.pipeline.dead_letter))),
    };
    let config = args.pipeline.pipeline_config(redactor);
    let run = Run { dead_letter: dead_letter.as_mut(), config, event, sources: &sources, s3: s3_context, args: &args };
    match writer {
        Writer::Tantivy(backend) => ingest_into(backend, run),
        Writer::Elasticsearch(backend) => ingest_into(backend, run),
    }
}

/// What an ingest run takes besides the backend.
struct Run<'a> {
    dead_letter: &'a mut dyn DeadLetterStore,
    config: PipelineConfig,
    event: Option<Vec<u8>>,
    sources: &'a [Box<dyn SourceObject>],
    s3: Option<&'a S3Context>,
    args: &'a IngestArgs,
}

/// Ingests the event or the sources into `backend`, commits and closes it.
fn ingest_into<B: Backend>(mut backend: B, run: Run<'_>) -> Result<u8> {
    let Run { dead_letter, config, event, sources, s3, args } = run;
    if let (Some(event), Some(s3)) = (event, s3) {
        let deadline = args
            .time_budget
            .as_deref()
            .map(crate::timespec::parse_duration)
            .transpose()
            .map_err(anyhow::Error::msg)?
            .map(|budget| Deadline::for_budget(std::time::Instant::now(), budget, DEFAULT_DEADLINE_MARGIN));
        let report = handle_event(&event, s3, &mut backend, dead_letter, config, deadline, None)
            .context("handling the event")?;
        backend.close().context("closing the index")?;
        print_event_report(&report, args)?;
        return Ok(if report.failed.is_empty() { 0 } else { 1 });
    }
    let total_bytes: u64 = sources.iter().filter_map(|s| s.size_hint()).sum();
    let progress = BarProgress::new(total_bytes, !args.json && std::io::stderr().is_terminal());
    let mut reports: Vec<SourceReport> = Vec::new();
    let summary: RunSummary = {
        let mut pipeline = Pipeline::new(&mut backend, dead_letter, config).with_progress(progress.clone());
        for source in sources {
            let report = pipeline
                .ingest(source.as_ref())
                .with_context(|| format!("ingesting {}", source.identity().display_name()))?;
            reports.push(report);
        }
        pipeline.finish().context("committing the index")?
    };
    backend.close().context("closing the index")?;
    progress.finish();
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_summary(&summary, &reports, args);
    }
    Ok(if summary.objects_failed > 0 || summary.objects_paused > 0 { 1 } else { 0 })
}

/// `--event`: the run summary plus exactly what the Lambda would answer.
fn print_event_report(report: &HandlerReport, args: &IngestArgs) -> Result<()> {
    let failures: Vec<serde_json::Value> =
        report.batch_item_failures().into_iter().map(|id| serde_json::json!({ "itemIdentifier": id })).collect();
    if args.json {
        let mut out = serde_json::to_value(&report.summary)?;
        out["acknowledged"] = report.acknowledged.into();
        out["batch_item_failures"] = failures.into();
        if let Some(reconciliation) = &report.reconciliation {
            out["reconciliation"] = serde_json::to_value(reconciliation)?;
        }
        println!("{out}");
        return Ok(());
    }
    print_summary(&report.summary, &report.sources, args);
    println!(
        "event: {} deliveries, {} notifications acknowledged without ingesting, {} failed",
        report.deliveries,
        report.acknowledged,
        report.failed.len()
    );
    for failed in &report.failed {
        println!("  redeliver {}: {}", failed.message_id.as_deref().unwrap_or("(whole event)"), failed.reason);
    }
    Ok(())
}

fn print_summary(summary: &RunSummary, reports: &[SourceReport], args: &IngestArgs) {
    let seconds = summary.elapsed_ms as f64 / 1000.0;
    println!(
        "ingested {} objects ({} skipped as already done, {} failed{}) in {:.1} s",
        group_digits(summary.objects),
        group_digits(summary.objects_skipped),
        group_digits(summary.objects_failed),
        match summary.objects_paused {
            0 => String::new(),
            paused => format!(", {} paused", group_digits(paused)),
        },
        seconds
    );
    println!(
        "records {}: {} indexed, {} duplicates, {} rejected",
        group_digits(summary.records),
        group_digits(summary.indexed),
        group_digits(summary.duplicates),
        group_digits(summary.rejected)
    );
    if seconds > 0.0 {
        println!(
            "{:.0} records/s, {:.1} MB/s of input read",
            summary.records as f64 / seconds,
            summary.bytes_read as f64 / 1e6 / seconds
        );
    }
    if summary.rejected > 0 || summary.objects_failed > 0 {
        println!("dead-letter entries are in {}", args.pipeline.dead_letter);
    }
    for report in reports.iter().filter(|r| !r.outcome.is_done()) {
        let label = if report.outcome == SourceOutcome::Paused { "paused" } else { "failed" };
        println!("{label}: {}: {}", report.source, report.failure.as_deref().unwrap_or("unknown reason"));
    }
    println!("index: {}", args.store.index.display());
}
