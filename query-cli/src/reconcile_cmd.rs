//! `tix-logs reconcile s3://bucket/prefix`: finds the objects a lost or never-configured
//! S3 notification left behind, and with `--ingest` ingests them. The comparison and the
//! ingest are [`ingest::reconcile`]'s (the Lambda's scheduled reconcile runs the same);
//! this module holds the flags' meaning, the progress bar and the printing.
//!
//! Works on versioned buckets too: an object's identity is its ETag whichever way it
//! arrived (see [`ingest::id::SourceIdentity::S3`]).

use std::io::{IsTerminal, Write};

use anyhow::{bail, Context, Result};
use indexer::{Backend, SourceStatus, Store};
use ingest::dead_letter::{DeadLetterStore, LocalDeadLetter};
use ingest::pipeline::{Pipeline, RunSummary};
use ingest::reconcile::{check_dead_letter, survey, Ingested, Reconciliation, Survey};
use ingest::s3::{S3DeadLetter, S3Location};
use ingest::source::SourceObject;

use crate::cli::ReconcileArgs;
use crate::ingest_cmd::{open_writer, redactor_from_env, remote_destination, S3Edge, Writer};
use crate::progress::BarProgress;
use crate::render::group_digits;

/// How many keys of each list the readable output shows (`--json` lists all).
const SHOWN_KEYS: usize = 10;

pub fn run(args: ReconcileArgs) -> Result<u8> {
    let location = match S3Location::parse(&args.location) {
        Some(parsed) => parsed.map_err(anyhow::Error::msg)?,
        None => bail!(
            "reconcile compares an S3 prefix with the index: expected s3://bucket/prefix, got {:?}",
            args.location
        ),
    };
    let since_ms = args
        .since
        .as_deref()
        .map(|since| crate::timespec::parse_time(since, chrono::Utc::now()))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let dead_letter_location = S3Location::parse(&args.pipeline.dead_letter).transpose().map_err(anyhow::Error::msg)?;
    if args.ingest {
        check_dead_letter(&location, &args.pipeline.dead_letter)?;
    }
    let s3 = S3Edge::start()?;

    // Open the backend before listing: a locked index or an unreachable cluster is
    // reported before any S3 call, and `--ingest` reads checkpoints from its writer.
    let (survey, ingested) = if args.ingest {
        let run = Run { s3: &s3, location: &location, since_ms, dead_letter_location, args: &args };
        match open_writer(&args.store, &args.pipeline)? {
            Writer::Tantivy(backend) => survey_and_ingest(backend, run)?,
            Writer::Elasticsearch(backend) => survey_and_ingest(backend, run)?,
        }
    } else {
        let store = crate::search_cmd::open_backend(&args.store)?;
        (survey_of(&s3, &location, store.as_ref(), since_ms)?, None)
    };

    let report = survey.report(ingested.as_ref().map(|(_, ingested)| ingested));
    let all_done = match &report.remaining {
        Some(remaining) => remaining.is_empty(),
        None => report.reconciliation.outstanding().next().is_none(),
    };
    if args.json {
        let mut out = serde_json::to_value(&report)?;
        if let Some((summary, _)) = &ingested {
            out["ingested"] = serde_json::to_value(summary)?;
        }
        writeln!(std::io::stdout().lock(), "{out}")?;
    } else {
        print_report(&location, args.since.as_deref(), &report.reconciliation, ingested.as_ref(), &args)?;
    }
    Ok(if all_done { 0 } else { 1 })
}

/// What `--ingest` takes besides the backend.
struct Run<'a> {
    s3: &'a S3Edge,
    location: &'a S3Location,
    since_ms: Option<i64>,
    dead_letter_location: Option<S3Location>,
    args: &'a ReconcileArgs,
}

/// The listing classified against the checkpoints of `store`.
fn survey_of(s3: &S3Edge, location: &S3Location, store: &dyn Store, since_ms: Option<i64>) -> Result<Survey> {
    survey(&s3.context, location, store, since_ms, &|| false)
        .with_context(|| format!("comparing {location} with the checkpoints"))
}

/// `--ingest`: the survey, then the missing and failed objects ingested into `backend`,
/// committed, and the backend closed.
fn survey_and_ingest<B: Backend>(mut backend: B, run: Run<'_>) -> Result<(Survey, Option<(RunSummary, Ingested)>)> {
    let Run { s3, location, since_ms, dead_letter_location, args } = run;
    let survey = survey_of(s3, location, &backend, since_ms)?;
    let ingested = if survey.outstanding().is_empty() {
        (RunSummary::default(), Ingested::default())
    } else {
        let redactor = redactor_from_env(args.json, remote_destination(&args.store, &args.pipeline, false))?;
        let mut dead_letter: Box<dyn DeadLetterStore> = match dead_letter_location {
            Some(dl) => Box::new(S3DeadLetter::new(s3.context.clone(), dl)),
            None => Box::new(LocalDeadLetter::new(std::path::Path::new(&args.pipeline.dead_letter))),
        };
        let total_bytes: u64 = survey.outstanding().iter().filter_map(|o| o.size_hint()).sum();
        let progress = BarProgress::new(total_bytes, !args.json && std::io::stderr().is_terminal());
        let config = args.pipeline.pipeline_config(redactor);
        let mut pipeline = Pipeline::new(&mut backend, dead_letter.as_mut(), config).with_progress(progress.clone());
        let ingested = survey.ingest(&mut pipeline).context("ingesting the missing and failed objects")?;
        let summary = pipeline.finish().context("committing the index")?;
        progress.finish();
        (summary, ingested)
    };
    backend.close().context("closing the index")?;
    Ok((survey, Some(ingested)))
}

fn print_report(
    location: &S3Location,
    since: Option<&str>,
    r: &Reconciliation,
    ingested: Option<&(RunSummary, Ingested)>,
    args: &ReconcileArgs,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let window = since.map(|s| format!(" modified since {s}")).unwrap_or_default();
    writeln!(out, "{location}: {} objects{window}", group_digits(r.listed))?;
    writeln!(out, "  completed  {:>8}", group_digits(r.completed))?;
    writeln!(
        out,
        "  missing    {:>8}   never ingested (a lost or missing notification)",
        group_digits(r.missing.len() as u64)
    )?;
    writeln!(out, "  failed     {:>8}   ingest failed or did not finish", group_digits(r.failed.len() as u64))?;
    if r.skipped > 0 {
        writeln!(out, "  skipped    {:>8}   folder markers and 0-byte objects", group_digits(r.skipped))?;
    }
    if r.before_since > 0 {
        writeln!(out, "  older      {:>8}   modified before --since, not compared", group_digits(r.before_since))?;
    }
    let more = |out: &mut dyn Write, total: usize| -> std::io::Result<()> {
        if total > SHOWN_KEYS {
            writeln!(out, "  ... and {} more (--json lists them all)", group_digits((total - SHOWN_KEYS) as u64))?;
        }
        Ok(())
    };
    if !r.missing.is_empty() {
        writeln!(out, "missing:")?;
        for key in r.missing.iter().take(SHOWN_KEYS) {
            writeln!(out, "  {key}")?;
        }
        more(&mut out, r.missing.len())?;
    }
    if !r.failures.is_empty() {
        writeln!(out, "failed:")?;
        for failed in r.failures.iter().take(SHOWN_KEYS) {
            let status = if failed.status == SourceStatus::InProgress { "unfinished" } else { "failed" };
            writeln!(out, "  {}: {status}: {}", failed.key, failed.reason.as_deref().unwrap_or("no reason recorded"))?;
        }
        more(&mut out, r.failures.len())?;
    }
    match ingested {
        None if r.outstanding().next().is_some() => {
            writeln!(out, "run again with --ingest to ingest the missing and failed objects")?;
        }
        None => {}
        Some((s, ingested)) => {
            writeln!(
                out,
                "ingested {} objects ({} failed): records {}: {} indexed, {} duplicates, {} rejected",
                group_digits(s.objects),
                group_digits(s.objects_failed),
                group_digits(s.records),
                group_digits(s.indexed),
                group_digits(s.duplicates),
                group_digits(s.rejected)
            )?;
            for report in ingested.reports.iter().filter(|r| !r.outcome.is_done()) {
                writeln!(
                    out,
                    "still failed: {}: {}",
                    report.source,
                    report.failure.as_deref().unwrap_or("unknown reason")
                )?;
            }
            if ingested.remaining.is_empty() {
                writeln!(out, "every missing and failed object is completed now")?;
            }
            if s.rejected > 0 || s.objects_failed > 0 {
                writeln!(out, "dead-letter entries are in {}", args.pipeline.dead_letter)?;
            }
        }
    }
    Ok(())
}
