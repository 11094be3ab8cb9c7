//! `tix-logs redrive`: dead-lettered records back into the store once their cause is
//! fixed. The judging, the ids and the order of writes are [`ingest::redrive`]'s; this
//! module opens the stores from the flags and prints.

use anyhow::{Context, Result};
use indexer::{Backend, TantivyBackend};
use ingest::dead_letter::{LocalDeadLetter, SegmentStore};
use ingest::redrive::{redrive, RedriveConfig, RedriveSummary, S3Segments};
use ingest::s3::S3Location;

use crate::cli::RedriveArgs;
use crate::ingest_cmd::{open_writer, redactor_from_env, remote_destination, S3Edge, Writer};
use crate::render::group_digits;

pub fn run(args: RedriveArgs) -> Result<u8> {
    // Before anything is opened: a refused key is a usage error, exactly as for ingest.
    let redactor = redactor_from_env(args.json, remote_destination(&args.store, &args.pipeline, false))?;
    let location = args.pipeline.dead_letter.clone();
    let s3_location = S3Location::parse(&location).transpose().map_err(anyhow::Error::msg)?;
    let s3 = if s3_location.is_some() { Some(S3Edge::start()?) } else { None };
    let store: Box<dyn SegmentStore> = match (s3_location, &s3) {
        (Some(parsed), Some(edge)) => Box::new(S3Segments::new(edge.context.clone(), parsed)),
        _ => Box::new(LocalDeadLetter::new(std::path::Path::new(&location))),
    };
    let pipeline = args.pipeline.pipeline_config(redactor);
    let config = RedriveConfig {
        limits: pipeline.limits,
        redactor: pipeline.redactor.clone(),
        dry_run: args.dry_run,
        batch_records: pipeline.batch_records,
    };
    let summary = if args.dry_run {
        // No backend: a dry run neither takes the index's lock nor needs the cluster. The
        // type parameter only names the backend there is none of.
        redrive::<TantivyBackend>(store.as_ref(), None, &config)
            .with_context(|| format!("redriving the dead-letter store {location}"))?
    } else {
        match open_writer(&args.store, &args.pipeline)? {
            Writer::Tantivy(backend) => redrive_into(backend, store.as_ref(), &config, &location)?,
            Writer::Elasticsearch(backend) => redrive_into(backend, store.as_ref(), &config, &location)?,
        }
    };
    if args.json {
        let mut out = serde_json::to_value(&summary)?;
        out["location"] = location.into();
        out["remaining"] = summary.remaining().into();
        println!("{out}");
    } else {
        print_summary(&summary, &location);
    }
    Ok(if summary.remaining() > 0 { 1 } else { 0 })
}

/// Redrives `store` into `backend`, then closes it.
fn redrive_into<B: Backend>(
    mut backend: B,
    store: &dyn SegmentStore,
    config: &RedriveConfig,
    location: &str,
) -> Result<RedriveSummary> {
    let summary = redrive(store, Some(&mut backend), config)
        .with_context(|| format!("redriving the dead-letter store {location}"))?;
    backend.close().context("closing the index")?;
    Ok(summary)
}

fn print_summary(summary: &RedriveSummary, location: &str) {
    let n = |count: u64| group_digits(count);
    println!(
        "redrive of {location}{}: {} entries in {} segments",
        if summary.dry_run { " (dry run, nothing changed)" } else { "" },
        n(summary.entries),
        n(summary.segments)
    );
    if summary.dry_run {
        println!(
            "{} would pass, {} would fail again, {} cannot be redriven, {} failed objects (ingest them again)",
            n(summary.passed),
            n(summary.failed),
            n(summary.kept),
            n(summary.failed_objects)
        );
    } else {
        println!(
            "{} passed ({} indexed, {} already indexed), {} failed again, {} cannot be redriven, {} failed objects \
             (ingest them again){}",
            n(summary.passed),
            n(summary.indexed),
            n(summary.duplicates),
            n(summary.failed),
            n(summary.kept),
            n(summary.failed_objects),
            match summary.unfinished {
                0 => String::new(),
                unfinished => format!(", {} not taken by the backend (run again)", n(unfinished)),
            }
        );
    }
    if summary.unreadable_lines > 0 {
        println!("{} lines are not entries; they were left as they are", n(summary.unreadable_lines));
    }
    if !summary.reasons.is_empty() {
        let width = summary.reasons.iter().map(|r| n(r.entries).len()).max().unwrap_or(1).max("entries".len());
        println!("{:<13} {:>width$}  reason", "outcome", "entries");
        for row in &summary.reasons {
            let outcome = match (row.outcome, summary.dry_run) {
                ("passed", true) => "would pass",
                ("failed", true) => "would fail",
                (outcome, _) => outcome,
            };
            println!("{outcome:<13} {:>width$}  {}", n(row.entries), row.reason);
        }
    }
    let remaining = summary.remaining();
    println!(
        "{} {} in the dead-letter store",
        n(remaining),
        if summary.dry_run { "would stay" } else { "entries stay" }
    );
}
