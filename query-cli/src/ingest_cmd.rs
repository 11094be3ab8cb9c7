//! `tix-logs ingest`: expand sources, run the pipeline, print the summary.

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use indexer::{Backend, TantivyBackend, TantivyConfig};
use ingest::dead_letter::LocalDeadLetter;
use ingest::pipeline::{Pipeline, PipelineConfig, RunSummary, SourceOutcome, SourceReport};
use ingest::redact::Redactor;
use ingest::Limits;

use crate::cli::{BackendKind, IngestArgs};
use crate::progress::BarProgress;
use crate::render::group_digits;

pub fn run(args: IngestArgs) -> Result<u8> {
    if args.sources.is_empty() {
        bail!("nothing to ingest: name files, directories or - for stdin (see tix-logs ingest --help)");
    }
    let sources = ingest::source::local_sources(&args.sources)?;
    let (redactor, development_key) = Redactor::from_env();
    if development_key {
        // One warning, where the user will see it: stderr for people, the log for scripts.
        if args.json {
            tracing::warn!("TIX_PII_KEY is not set: e-mail and phone tokens use the public development key");
        } else {
            eprintln!("warning: TIX_PII_KEY is not set; PII tokens use the development key (fine for local tests, not for real data)");
        }
    }
    let mut backend: Box<dyn Backend> = match args.store.backend {
        BackendKind::Tantivy => {
            let mut config = TantivyConfig {
                heap_bytes: args.heap_mb << 20,
                max_merge_docs: args.max_merge_docs,
                ..TantivyConfig::default()
            };
            if let Some(threads) = args.threads {
                config.threads = threads.max(1);
            }
            Box::new(TantivyBackend::open_for_writing(&args.store.index, config)?)
        }
        BackendKind::Elasticsearch => crate::search_cmd::connect_elasticsearch()?,
    };
    backend.ensure_ready().context("preparing the backend")?;
    let mut dead_letter = LocalDeadLetter::new(&args.dead_letter);
    let mut config = PipelineConfig::new(redactor);
    config.commit_every_docs = args.commit_every.max(1);
    config.limits = Limits {
        max_record_bytes: args.max_record_bytes,
        max_depth: args.max_depth,
        max_decompressed_bytes: args.max_decompressed_bytes,
        max_ratio: args.max_ratio,
        ..Limits::default()
    };
    let total_bytes: u64 = sources.iter().filter_map(|s| s.size_hint()).sum();
    let progress = BarProgress::new(total_bytes, !args.json && std::io::stderr().is_terminal());
    let mut reports: Vec<SourceReport> = Vec::new();
    let summary: RunSummary = {
        let mut pipeline = Pipeline::new(backend.as_mut(), &mut dead_letter, config).with_progress(progress.clone());
        for source in &sources {
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
        print_summary(&summary, &reports, &args);
    }
    Ok(if summary.objects_failed > 0 { 1 } else { 0 })
}

fn print_summary(summary: &RunSummary, reports: &[SourceReport], args: &IngestArgs) {
    let seconds = summary.elapsed_ms as f64 / 1000.0;
    println!(
        "ingested {} objects ({} skipped as already done, {} failed) in {:.1} s",
        group_digits(summary.objects),
        group_digits(summary.objects_skipped),
        group_digits(summary.objects_failed),
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
        println!("dead-letter entries are in {}", args.dead_letter.display());
    }
    for report in reports.iter().filter(|r| r.outcome == SourceOutcome::Failed) {
        println!("failed: {}: {}", report.source, report.failure.as_deref().unwrap_or("unknown reason"));
    }
    println!("index: {}", args.store.index.display());
}
