//! Command-line flags of `tix-logs`, as the README's "Using it" section documents them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::render::Format;

#[derive(Debug, Parser)]
#[command(name = "tix-logs", version, about = "Ingest booking-event logs and search them", long_about = None)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug); TIX_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read log objects (files, directories, stdin, S3 prefixes, saved Lambda events) into the index.
    #[command(after_help = INGEST_EXAMPLES)]
    Ingest(IngestArgs),
    /// Search indexed events: hits, counts and aggregations.
    #[command(after_help = SEARCH_EXAMPLES)]
    Search(SearchArgs),
    /// List what happened to each source: records, indexed, duplicates, rejected, failures.
    #[command(after_help = AUDIT_EXAMPLES)]
    Audit(AuditArgs),
    /// Compare an S3 prefix with the checkpoints: objects never ingested (a lost
    /// notification) or failed; --ingest ingests them.
    #[command(after_help = RECONCILE_EXAMPLES)]
    Reconcile(ReconcileArgs),
    /// The booking report: bookings requested, confirmed, cancelled, expired, failed and
    /// refunded per day, venue or show, with conversion and integrity checks.
    #[command(after_help = REPORT_EXAMPLES)]
    Report(ReportArgs),
    /// Put dead-lettered records back once their cause is fixed: validated and redacted
    /// again, indexed under the ids they would have had; the rest stay with their reason.
    #[command(after_help = REDRIVE_EXAMPLES)]
    Redrive(RedriveArgs),
}

const INGEST_EXAMPLES: &str = "Examples:
  tix-logs ingest ./logs/                         # a directory, recursively
  tix-logs ingest day.ndjson.gz day.json.zst      # gzip, zstd or plain; NDJSON, arrays, {\"Records\":[...]}
  zcat big.gz | tix-logs ingest -                 # stdin
  tix-logs ingest s3://booking-logs/2024/02/      # every object under an S3 prefix
  tix-logs ingest --event saved-sqs-event.json    # a saved Lambda event, through the Lambda's handler
  tix-logs ingest --json ./logs/ | jq .indexed    # one JSON summary on stdout

Exit status: 0 every object completed, 1 some object failed or was stopped at the
--time-budget deadline (run again: it continues where it stopped), 2 usage or operational error.
Rejected records go to the dead-letter directory, one NDJSON entry each, with the reason.
S3 uses the standard AWS configuration (AWS_REGION, AWS_PROFILE, credentials, and
AWS_ENDPOINT_URL for S3-compatible servers, which are then addressed path-style).";

const SEARCH_EXAMPLES: &str = "Examples:
  tix-logs search 'type:booking.cancelled AND venue:\"Olympic Hall\"' --since 2024-02-01 --limit 20
  tix-logs search 'amount:[100000 TO 200000]' --count
  tix-logs search 'NOT level:info' --since 2h
  tix-logs search 'booking_id:BK-20240205-000123' --format json
  tix-logs search --agg terms:type --agg date_histogram:ts:1h --limit 0
  tix-logs search 'payment.method:card' --agg stats:amount --fields ts,type,amount

Query syntax: field:value, field:\"a phrase\", ranges field:[A TO B] / {A TO B}, AND, OR, NOT, (...);
bare words search `message`. Unknown fields are searchable by their path (client.app:ios).";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    Tantivy,
    Elasticsearch,
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Index directory of the tantivy backend.
    #[arg(long, env = "TIX_INDEX", default_value = "./tix-index")]
    pub index: PathBuf,
    /// Where events are stored.
    #[arg(long, env = "TIX_BACKEND", value_enum, default_value = "tantivy")]
    pub backend: BackendKind,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Print one JSON summary on stdout instead of a progress bar and a readable summary.
    #[arg(long)]
    pub json: bool,
    /// Run a saved S3, SQS, SNS or EventBridge event through the Lambda's handler
    /// (the objects it names are read from S3).
    #[arg(long, value_name = "FILE", conflicts_with = "sources")]
    pub event: Option<PathBuf>,
    /// With --event: play the Lambda's remaining time (e.g. 30s, 2m, 500ms). The handler
    /// stops taking work a margin before it (10 s, at most a quarter of the budget) and
    /// reports what is left for redelivery, exactly as the Lambda would: an object stopped
    /// midway is checkpointed, and the next run continues it where it stopped.
    #[arg(long, value_name = "DURATION", requires = "event")]
    pub time_budget: Option<String>,
    /// Files, directories (recursively), `-` for stdin, or s3://bucket/prefix.
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,
}

/// The flags of the ingest pipeline, shared by `ingest` and `reconcile --ingest`.
#[derive(Debug, Clone, Args)]
pub struct PipelineArgs {
    /// Where rejected records and failed objects go: a directory, or s3://bucket/prefix.
    #[arg(long, default_value = "./tix-dead-letter")]
    pub dead_letter: String,
    /// Indexing threads of the tantivy writer (default: CPUs, at most 4).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Threads that parse, validate, redact and encode records (default: CPUs, at most 4).
    #[arg(long)]
    pub prepare_threads: Option<usize>,
    /// Indexing memory budget of the tantivy writer, in MB.
    #[arg(long, default_value_t = indexer::DEFAULT_HEAP_MB)]
    pub heap_mb: usize,
    /// Segments larger than this many documents are not merged further; merges map their
    /// inputs into memory, so this caps ingest memory. 0 disables merging.
    #[arg(long, default_value_t = indexer::DEFAULT_MAX_MERGE_DOCS)]
    pub max_merge_docs: usize,
    /// Commit (make durable, checkpoint progress) at least every N new documents.
    #[arg(long, default_value_t = ingest::pipeline::DEFAULT_COMMIT_EVERY_DOCS)]
    pub commit_every: usize,
    /// Longest record accepted, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_record_bytes: usize,
    /// Deepest JSON nesting accepted in a record.
    #[arg(long, default_value_t = 64)]
    pub max_depth: usize,
    /// Most decompressed bytes read from one object.
    #[arg(long, default_value_t = 4 << 30)]
    pub max_decompressed_bytes: u64,
    /// Highest compression ratio accepted (decompression-bomb guard).
    #[arg(long, default_value_t = 250)]
    pub max_ratio: u64,
}

impl PipelineArgs {
    /// The tantivy writer's settings from these flags.
    pub fn tantivy_config(&self) -> indexer::TantivyConfig {
        let mut config = indexer::TantivyConfig {
            heap_bytes: self.heap_mb << 20,
            max_merge_docs: self.max_merge_docs,
            ..indexer::TantivyConfig::default()
        };
        if let Some(threads) = self.threads {
            config.threads = threads.max(1);
        }
        config
    }

    /// The pipeline's settings from these flags.
    pub fn pipeline_config(&self, redactor: ingest::redact::Redactor) -> ingest::pipeline::PipelineConfig {
        let mut config = ingest::pipeline::PipelineConfig::new(redactor);
        config.commit_every_docs = self.commit_every.max(1);
        if let Some(threads) = self.prepare_threads {
            config.prepare_threads = threads.max(1);
        }
        config.limits = ingest::Limits {
            max_record_bytes: self.max_record_bytes,
            max_depth: self.max_depth,
            max_decompressed_bytes: self.max_decompressed_bytes,
            max_ratio: self.max_ratio,
            ..ingest::Limits::default()
        };
        config
    }
}

const RECONCILE_EXAMPLES: &str = "Examples:
  tix-logs reconcile s3://booking-logs/2024/02/             # what under the prefix never landed?
  tix-logs reconcile s3://booking-logs/ --since 2d --json   # the last two days, for scripts
  tix-logs reconcile s3://booking-logs/ --since 2d --ingest # and ingest what is missing or failed

Each object's checkpoint key is derived as `tix-logs ingest s3://...` and the Lambda derive it
(bucket, key, ETag), so versioned buckets work too; folder markers and 0-byte objects are
skipped. --json prints one object:
{\"location\": \"s3://...\", \"listed\": N, \"completed\": N, \"missing\": [keys], \"failed\": [keys], ...}.
The Lambda runs the same from a schedule: {\"reconcile\": {\"prefix\": \"s3://B/P\", \"since\": \"2d\", \"ingest\": true}}.
Exit status: 0 nothing missing or failed (or --ingest completed it all), 1 some object is
missing or failed (after --ingest: still failed), 2 usage or operational error.";

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The S3 prefix to check: s3://bucket/prefix.
    #[arg(value_name = "S3_PREFIX")]
    pub location: String,
    /// Only objects modified at or after this time: a span back from now (2d, 12h), a
    /// date or RFC 3339.
    #[arg(long)]
    pub since: Option<String>,
    /// Print one JSON object on stdout instead of a readable summary.
    #[arg(long)]
    pub json: bool,
    /// Ingest the missing and failed objects through the normal pipeline, then report.
    #[arg(long)]
    pub ingest: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

const REDRIVE_EXAMPLES: &str = "Examples:
  tix-logs redrive --dry-run                                  # how many would pass now, and why the rest fail
  tix-logs redrive --max-record-bytes 4194304                 # after raising a limit the records broke
  tix-logs redrive --dead-letter s3://tix-dl/ --backend elasticsearch --json

Takes the store options of `ingest` (--index, --backend, the TIX_ES_* settings, --dead-letter,
the limits) and must run with the TIX_PII_KEY the entries were written with. A record that passes
is indexed under the id it would have had (its event_id's, or its position in its source), so
running redrive twice, or again after a crash, doubles nothing; its entry is removed. A record
that fails again stays, with its new reason. Failed-object entries (record: null) are left:
ingest those objects again. Entries cut at 64 KiB, and entries written before tix-logs kept the
source's identity whose record has no event_id, cannot be redriven and are left as they are.
Do not run it while an ingest writes to the same dead-letter store.
--json prints one object: {\"dry_run\", \"entries\", \"passed\", \"indexed\", \"duplicates\", \"failed\",
\"kept\", \"failed_objects\", \"remaining\", \"reasons\": [{\"outcome\", \"reason\", \"entries\"}], ...}.
Exit status: 0 nothing is left in the dead-letter store (with --dry-run: nothing would be),
1 some entry stays, 2 usage or operational error.";

#[derive(Debug, Args)]
pub struct RedriveArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Judge every entry and report, changing nothing (the backend is not opened).
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object on stdout instead of a readable summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Lucene-style query; empty means every event.
    #[arg(value_name = "QUERY", default_value = "")]
    pub query: String,
    /// Events at or after this time: RFC 3339, a date, or a span back from now (2h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Events before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Most hits to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Sort by FIELD ascending or -FIELD descending (default: -ts, newest first).
    #[arg(long, allow_hyphen_values = true)]
    pub sort: Option<String>,
    /// Columns of table and CSV output, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub fields: Option<Vec<String>>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Print the number of matching events alone.
    #[arg(long)]
    pub count: bool,
    /// Aggregations to compute (see the help text).
    #[arg(
        long = "agg",
        value_name = "SPEC",
        help = "terms:FIELD[:SIZE][:min=N], date_histogram:FIELD:INTERVAL[:min=N] (1m, 1h, 1d), stats:FIELD or \
                cardinality:FIELD; `>` nests into each bucket, `,` lists siblings of the last level \
                (terms:venue>date_histogram:ts:1d, terms:type:5>stats:amount,cardinality:booking_id); repeatable"
    )]
    pub aggs: Vec<String>,
}

const AUDIT_EXAMPLES: &str = "Examples:
  tix-logs audit --since 1d                       # did the last day's logs all land?
  tix-logs audit --since 2024-02-05 --until 2024-02-06 --status failed
  tix-logs audit --format json | jq '.[] | select(.rejected > 0)'

A source is shown when its events (or, without events, its last ingest) fall in the
--since/--until window. Exit status: 0 every source shown completed, 1 some source shown
failed or is unfinished, 2 usage or operational error.";

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Sources with events at or after this time (same forms as search --since).
    #[arg(long)]
    pub since: Option<String>,
    /// Sources with events before this time.
    #[arg(long)]
    pub until: Option<String>,
    /// Only sources in this state.
    #[arg(long, value_enum)]
    pub status: Option<AuditStatus>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// `--status` of `tix-logs audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditStatus {
    Completed,
    Failed,
    InProgress,
}

const REPORT_EXAMPLES: &str = "Examples:
  tix-logs report --since 2024-02-05 --until 2024-02-12          # a week, one row per request day
  tix-logs report --since 7d --by venue                          # the last seven days per venue
  tix-logs report --by show --format json | jq .integrity        # for scripts
  tix-logs report --format html --output report.html             # one self-contained page with charts

A booking belongs to the group of its booking.requested event (its UTC day, venue or show_id)
and is counted when that request is in [--since, --until). Each count is the number of distinct
bookings with at least one event of the type; conversion is confirmed / requested.
Integrity checks: seats_sold_twice (a show's seat confirmed by two or more bookings that were
neither cancelled nor refunded), captured_not_confirmed (payment captured, never confirmed nor
refunded), confirmed_not_captured (confirmed without a captured payment). Without --since and
--until, bookings with no request event are in no group, but their integrity problems are listed.
Exit status: 0 the report was written, 2 usage or operational error.";

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Bookings requested at or after this time: RFC 3339, a date, or a span back from now (2h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Bookings requested before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// What one row of the report is: the request's UTC day, its venue or its show.
    #[arg(long, value_enum, default_value = "day")]
    pub by: ReportBy,
    /// table for people, json for scripts, html for one self-contained page with charts.
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
    /// Write the report to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `--by` of `tix-logs report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportBy {
    Day,
    Venue,
    Show,
}

impl From<ReportBy> for indexer::report::GroupBy {
    fn from(by: ReportBy) -> Self {
        match by {
            ReportBy::Day => indexer::report::GroupBy::Day,
            ReportBy::Venue => indexer::report::GroupBy::Venue,
            ReportBy::Show => indexer::report::GroupBy::Show,
        }
    }
}

/// `--format` of `tix-logs report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Html,
}
