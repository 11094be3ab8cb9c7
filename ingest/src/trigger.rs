//! The trigger handler: one S3, SQS, SNS or EventBridge event in, the objects it names
//! ingested, and the answer the trigger needs out (SQS `batchItemFailures`). Or a
//! scheduled `{"reconcile": ...}` request in: the prefix compared with the checkpoints
//! (and, if asked, what is missing ingested) by [`crate::reconcile`].
//!
//! This is exactly what the Lambda runs and what `tix-logs ingest --event FILE` runs.
//! A message counts as done only when every object it names completed (or had already
//! completed) and the backend committed them; everything else is reported failed so the
//! queue redelivers it, and document ids make the redo safe.

use std::sync::Arc;
use std::time::{Duration, Instant};

use indexer::{Backend, Store};
use serde::Serialize;

use crate::dead_letter::DeadLetterStore;
use crate::error::{Error, Result};
use crate::events::{parse_trigger, Delivery, ReconcileRequest, Trigger, Work};
use crate::pipeline::{Pipeline, PipelineConfig, Progress, RunSummary, SourceReport};
use crate::reconcile::{ReconcileReport, Survey};
use crate::s3::{S3Context, S3Location};

/// Time kept back before the deadline by default (`TIX_DEADLINE_MARGIN_MS`).
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// When to stop taking new work: `deadline - margin`.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    /// Time kept back for the final commit, the dead-letter upload and the answer.
    pub margin: Duration,
}

impl Deadline {
    /// The deadline `budget` after `start`, keeping back `margin`, but never more than a
    /// quarter of the budget, so a short timeout (AWS's default is 3 s, the default
    /// margin 10 s) still gets three quarters of it for work.
    pub fn for_budget(start: Instant, budget: Duration, margin: Duration) -> Self {
        Deadline { at: start + budget, margin: margin.min(budget / 4) }
    }

    /// Whether to stop taking new objects and batches: the margin is all that is left.
    pub fn reached(&self) -> bool {
        Instant::now() + self.margin >= self.at
    }

    /// By when the backend's writes (with their retries) must be over: half the margin
    /// after new work stops, so a batch sent just before then still has time to finish.
    pub fn writes_end(&self) -> Instant {
        self.at.checked_sub(self.margin / 2).unwrap_or(self.at)
    }

    /// By when the final commit (checkpoints) must be over; the rest of the margin is
    /// for the answer.
    pub fn commit_end(&self) -> Instant {
        self.at.checked_sub(self.margin / 4).unwrap_or(self.at)
    }
}

/// One delivery the handler could not finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedDelivery {
    /// The SQS `messageId`; `None` for a direct S3 or EventBridge event.
    pub message_id: Option<String>,
    pub reason: String,
}

/// What one event came to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HandlerReport {
    pub summary: RunSummary,
    /// Notifications acknowledged without ingesting (test events, deletes, folder
    /// markers, 0-byte objects).
    pub acknowledged: u64,
    /// Deliveries (SQS messages, or the whole event) in the event.
    pub deliveries: u64,
    pub failed: Vec<FailedDelivery>,
    pub sources: Vec<SourceReport>,
    /// For a reconcile request: what the listing and the checkpoints say, and what
    /// stayed outstanding. Objects it leaves outstanding are not failures of the
    /// invocation: the next scheduled run takes them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconciliation: Option<ReconcileReport>,
}

impl HandlerReport {
    /// The SQS partial-batch answer: the ids of exactly the messages to redeliver.
    pub fn batch_item_failures(&self) -> Vec<String> {
        self.failed.iter().filter_map(|f| f.message_id.clone()).collect()
    }

    /// A failure without a message id (a direct S3 or EventBridge event) can only be
    /// retried by failing the whole invocation.
    pub fn must_fail_invocation(&self) -> bool {
        self.failed.iter().any(|f| f.message_id.is_none())
    }
}

/// Handles one event. `Err` is operational (the event is unreadable as a whole, the
/// backend or dead-letter store failed): nothing of it may be acknowledged.
pub fn handle_event<B: Backend>(
    event: &[u8],
    s3: &S3Context,
    backend: &mut B,
    dead_letter: &mut dyn DeadLetterStore,
    mut config: PipelineConfig,
    deadline: Option<Deadline>,
    progress: Option<Arc<dyn Progress>>,
) -> Result<HandlerReport> {
    let trigger = parse_trigger(event).map_err(Error::Event)?;
    if let Some(deadline) = deadline {
        let earlier = config.should_stop.take();
        config.should_stop = Some(Arc::new(move || deadline.reached() || earlier.as_ref().is_some_and(|stop| stop())));
    }
    let mut report = HandlerReport::default();
    // No backend request outlives the invocation: a batch that cannot finish in time
    // fails its object (redelivered), instead of timing out the whole invocation.
    backend.set_deadline(deadline.map(|d| d.writes_end()));
    let result = run_trigger(trigger, s3, &mut *backend, dead_letter, config, deadline, progress, &mut report);
    backend.set_deadline(None);
    report.summary = result?;
    if let Some(reconciliation) = &report.reconciliation {
        log_reconciliation(reconciliation);
    }
    #[cfg(feature = "failpoints")]
    fail::fail_point!("trigger.before_ack");
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn run_trigger<B: Backend>(
    trigger: Trigger,
    s3: &S3Context,
    backend: &mut B,
    dead_letter: &mut dyn DeadLetterStore,
    config: PipelineConfig,
    deadline: Option<Deadline>,
    progress: Option<Arc<dyn Progress>>,
    report: &mut HandlerReport,
) -> Result<RunSummary> {
    let pipeline = |backend, dead_letter, config| {
        let pipeline = Pipeline::new(backend, dead_letter, config);
        match progress {
            Some(progress) => pipeline.with_progress(progress),
            None => pipeline,
        }
    };
    // Acknowledge only what is durable: the commit comes before the answer.
    let commit = |mut pipeline: Pipeline<'_, B>| {
        pipeline.set_backend_deadline(deadline.map(|d| d.commit_end()));
        pipeline.finish()
    };
    match trigger {
        Trigger::Deliveries(deliveries) => {
            report.deliveries = deliveries.len() as u64;
            let mut pipeline = pipeline(backend, dead_letter, config);
            ingest_deliveries(&mut pipeline, deliveries, s3, report)?;
            commit(pipeline)
        }
        Trigger::Reconcile(request) => {
            report.deliveries = 1;
            // The survey reads the backend's checkpoints before the pipeline borrows it.
            let survey = survey(&request, s3, &*backend, &*dead_letter, &config)?;
            let mut pipeline = pipeline(backend, dead_letter, config);
            let ingested = if request.ingest { Some(survey.ingest(&mut pipeline)?) } else { None };
            report.sources.extend(ingested.iter().flat_map(|i| i.reports.iter().cloned()));
            report.reconciliation = Some(survey.report(ingested.as_ref()));
            commit(pipeline)
        }
    }
}

/// Lists the request's prefix and classifies it against the checkpoints. A listing
/// that the deadline cuts short is an error: half a listing would hide the other half.
fn survey(
    request: &ReconcileRequest,
    s3: &S3Context,
    backend: &dyn Store,
    dead_letter: &dyn DeadLetterStore,
    config: &PipelineConfig,
) -> Result<Survey> {
    let location = S3Location { bucket: request.bucket.clone(), prefix: request.prefix.clone() };
    if request.ingest {
        crate::reconcile::check_dead_letter(&location, &dead_letter.location())?;
    }
    let since_ms = request.since.map(|span| crate::reconcile::since_ms(chrono::Utc::now().timestamp_millis(), span));
    let stop = || config.should_stop.as_ref().is_some_and(|stop| stop());
    crate::reconcile::survey(s3, &location, backend, since_ms, &stop)
}

/// How many keys of each list the log line names; the counts are always complete.
const LOGGED_KEYS: usize = 50;

/// One log line a CloudWatch alarm or a person can find: counts and object keys only.
fn log_reconciliation(report: &ReconcileReport) {
    let r = &report.reconciliation;
    let first = |keys: &[String]| keys.iter().take(LOGGED_KEYS).cloned().collect::<Vec<_>>().join(", ");
    let remaining = report.remaining.as_deref().unwrap_or_default();
    if r.missing.is_empty() && r.failed.is_empty() {
        tracing::info!(location = %report.location, listed = r.listed, completed = r.completed, "reconcile: nothing missing");
        return;
    }
    tracing::warn!(
        location = %report.location,
        listed = r.listed,
        completed = r.completed,
        missing = r.missing.len(),
        failed = r.failed.len(),
        ingested = report.remaining.is_some(),
        remaining = remaining.len(),
        missing_keys = %first(&r.missing),
        failed_keys = %first(&r.failed),
        remaining_keys = %first(remaining),
        "reconcile: objects never ingested (lost notifications) or not completed"
    );
}

/// Ingests the objects of every delivery, and records the deliveries that did not
/// complete (to be redelivered).
fn ingest_deliveries<B: Backend>(
    pipeline: &mut Pipeline<'_, B>,
    deliveries: Vec<Delivery>,
    s3: &S3Context,
    report: &mut HandlerReport,
) -> Result<()> {
    for delivery in deliveries {
        let fail = |reason: String| FailedDelivery { message_id: delivery.message_id.clone(), reason };
        let works = match delivery.work {
            Ok(works) => works,
            Err(reason) => {
                tracing::warn!(message_id = ?delivery.message_id, %reason, "unreadable message");
                report.failed.push(fail(reason));
                continue;
            }
        };
        let mut unfinished: Option<String> = None;
        for work in works {
            let object = match work {
                Work::Acknowledge { reason } => {
                    tracing::info!(%reason, "acknowledged without ingesting");
                    report.acknowledged += 1;
                    continue;
                }
                Work::Ingest(object) => object,
            };
            if pipeline.stop_requested() {
                unfinished.get_or_insert_with(|| "not started before the deadline; it will be redelivered".into());
                continue;
            }
            // One identity per object however it arrives (ETag, as a listing names it).
            let source = match s3.resolve(object) {
                Ok(source) => source,
                Err(error) => {
                    tracing::warn!(%error, "cannot tell which object the event names");
                    unfinished.get_or_insert_with(|| error.to_string());
                    continue;
                }
            };
            let source_report = pipeline.ingest(&source)?;
            if !source_report.outcome.is_done() {
                let reason = source_report.failure.clone().unwrap_or_else(|| "unfinished".into());
                unfinished.get_or_insert_with(|| format!("{}: {reason}", source_report.source));
            }
            report.sources.push(source_report);
        }
        if let Some(reason) = unfinished {
            report.failed.push(fail(reason));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_reached_margin_early() {
        let soon = Deadline { at: Instant::now() + Duration::from_secs(5), margin: Duration::from_secs(10) };
        assert!(soon.reached());
        let later = Deadline { at: Instant::now() + Duration::from_secs(60), margin: Duration::from_secs(10) };
        assert!(!later.reached());
    }

    #[test]
    fn writes_end_half_a_margin_and_the_commit_a_quarter_margin_before_the_deadline() {
        let at = Instant::now() + Duration::from_secs(60);
        let deadline = Deadline { at, margin: Duration::from_secs(8) };
        assert_eq!(deadline.writes_end(), at - Duration::from_secs(4));
        assert_eq!(deadline.commit_end(), at - Duration::from_secs(2));
        // New work stops first, then writes, then the commit, then the answer is due.
        let stop_taking_work = at - deadline.margin;
        assert!(stop_taking_work < deadline.writes_end() && deadline.writes_end() < deadline.commit_end());
    }

    #[test]
    fn the_margin_is_at_most_a_quarter_of_the_budget() {
        let ten = Duration::from_secs(10);
        let start = Instant::now();
        let margin = |budget| Deadline::for_budget(start, budget, ten).margin;
        assert_eq!(margin(Duration::from_secs(900)), ten);
        assert_eq!(margin(Duration::from_secs(3)), Duration::from_millis(750), "AWS's default timeout");
        assert_eq!(margin(Duration::from_secs(40)), ten);
        assert_eq!(margin(Duration::ZERO), Duration::ZERO);
        assert_eq!(Deadline::for_budget(start, Duration::from_secs(3), ten).at, start + Duration::from_secs(3));
    }

    #[test]
    fn only_messages_with_ids_are_batch_item_failures() {
        let report = HandlerReport {
            failed: vec![
                FailedDelivery { message_id: Some("m-3".into()), reason: "bad body".into() },
                FailedDelivery { message_id: Some("m-7".into()), reason: "truncated".into() },
            ],
            ..HandlerReport::default()
        };
        assert_eq!(report.batch_item_failures(), vec!["m-3", "m-7"]);
        assert!(!report.must_fail_invocation());
        let direct = HandlerReport {
            failed: vec![FailedDelivery { message_id: None, reason: "truncated".into() }],
            ..HandlerReport::default()
        };
        assert!(direct.batch_item_failures().is_empty());
        assert!(direct.must_fail_invocation());
    }
}
