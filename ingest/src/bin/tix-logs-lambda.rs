//! `tix-logs-lambda`: the S3-triggered ingester on the Lambda runtime.
//!
//! Cold start: secrets named by `*_PARAM` variables read once from SSM Parameter Store
//! (`ingest::secrets`), settings from the environment (refusing unsafe ones), the S3
//! client and the backend built once. Logs are JSON on stderr, by Lambda's logging
//! controls (`AWS_LAMBDA_LOG_FORMAT`, `AWS_LAMBDA_LOG_LEVEL`) and `RUST_LOG`. Each invocation runs the same handler as
//! `tix-logs ingest --event`, on a blocking thread (the pipeline and the backends are
//! synchronous), writes one EMF metrics line, and answers SQS with exactly the
//! messages to redeliver.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use indexer::{Backend, ElasticsearchBackend, EsConfig, TantivyBackend, TantivyConfig};
use ingest::events::is_sqs_event;
use ingest::lambda::{emf_record, invocation_budget, log_settings, InvocationBudget, LambdaBackend, LambdaSettings};
use ingest::pipeline::PipelineConfig;
use ingest::redact::Redactor;
use ingest::s3::{S3Context, S3DeadLetter};
use ingest::secrets::{self, Secrets};
use ingest::trigger::{handle_event, Deadline};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};

// As in `tix-logs`: records and documents are allocated on one thread and freed on
// another, which glibc's malloc serves poorly.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What lives from the cold start on. The mutex serialises invocations that a runtime
/// might overlap; a Lambda instance handles one at a time anyway.
struct Worker<B> {
    settings: LambdaSettings,
    s3: S3Context,
    backend: B,
    dead_letter: S3DeadLetter,
    pipeline: PipelineConfig,
}

/// When this process started (epoch ms): a deadline before it cannot be real.
static PROCESS_STARTED_MS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
/// The unknown-deadline warning is logged once per process, not per invocation.
static WARNED_UNKNOWN_DEADLINE: AtomicBool = AtomicBool::new(false);

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    PROCESS_STARTED_MS.get_or_init(|| epoch_ms() as u64);
    init_logging();
    let env = |name: &str| std::env::var(name).ok();
    // One AWS configuration (credentials, region, endpoints) for SSM and S3.
    let aws = indexer::aws_http::sdk_config().await;
    let secrets = refuse_unless(read_secrets(&aws, env).await)?;
    let lookup = secrets.lookup(env);
    let settings = refuse_unless(LambdaSettings::from_lookup(&lookup))?;
    // Read here, where the fetched secrets overlay the environment.
    let plan = match &settings.backend {
        LambdaBackend::Elasticsearch => {
            BackendPlan::Elasticsearch(Box::new(refuse_unless(EsConfig::from_lookup(&lookup))?))
        }
        LambdaBackend::Tantivy(path) => BackendPlan::Tantivy(path.clone()),
    };
    drop(lookup);
    drop(secrets);
    let s3 = S3Context::from_config(&aws, tokio::runtime::Handle::current());
    // The Elasticsearch client owns a runtime of its own: build it off this one.
    match plan {
        BackendPlan::Elasticsearch(config) => {
            let backend = tokio::task::spawn_blocking(move || ready(ElasticsearchBackend::connect(*config))).await??;
            serve(settings, s3, backend).await
        }
        BackendPlan::Tantivy(path) => {
            let open = move || ready(TantivyBackend::open_for_writing(&path, TantivyConfig::default()));
            let backend = tokio::task::spawn_blocking(open).await??;
            serve(settings, s3, backend).await
        }
    }
}

/// Answers invocations with `backend` until the runtime stops the process.
async fn serve<B: Backend + 'static>(
    settings: LambdaSettings,
    s3: S3Context,
    backend: B,
) -> Result<(), lambda_runtime::Error> {
    let pipeline = PipelineConfig::new(Redactor::new(&settings.pii_key));
    let dead_letter = S3DeadLetter::new(s3.clone(), settings.dead_letter.clone());
    tracing::info!(settings = ?settings, "ready");
    let worker = Arc::new(Mutex::new(Worker { settings, s3, backend, dead_letter, pipeline }));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| invoke(worker.clone(), event))).await
}

/// JSON lines on stderr (stdout carries the EMF metrics): the level from
/// `AWS_LAMBDA_LOG_LEVEL` (else a bare level in `RUST_LOG`, else info), refined per target
/// by `RUST_LOG` directives. Span fields (the runtime's `requestId`) ride on each line.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let settings = log_settings(|name| std::env::var(name).ok());
    let filter = EnvFilter::builder().with_default_directive(settings.level.into()).from_env_lossy();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if settings.json {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).init();
    } else {
        builder.with_ansi(false).init();
    }
}

/// The secrets the environment names by parameter, fetched once; none when it names none.
async fn read_secrets(aws: &aws_config::SdkConfig, env: impl Fn(&str) -> Option<String>) -> ingest::Result<Secrets> {
    let parameters = secrets::plan(env)?;
    if parameters.is_empty() {
        return Ok(Secrets::default());
    }
    let started = Instant::now();
    let secrets = secrets::fetch(aws, &parameters).await?;
    let names: Vec<&str> = parameters.iter().map(|p| p.name.as_str()).collect();
    tracing::info!(parameters = ?names, elapsed_ms = started.elapsed().as_millis() as u64, "secrets read from SSM");
    Ok(secrets)
}

/// A setting the function cannot start with: logged (the start's only trace in
/// CloudWatch), then the error the runtime reports as the init failure.
fn refuse_unless<T, E>(result: Result<T, E>) -> Result<T, lambda_runtime::Error>
where
    E: std::error::Error + Into<lambda_runtime::Error>,
{
    result.map_err(|error| {
        // The whole chain: CloudWatch shows only this line, and a typed error keeps its
        // cause (a PEM parse error, a bad URL) in its source, not in its message.
        let error_text = indexer::error::describe_chain(&error);
        tracing::error!(error = %error_text, "refusing to start");
        error.into()
    })
}

/// The backend to open, with its settings read.
enum BackendPlan {
    Elasticsearch(Box<EsConfig>),
    Tantivy(std::path::PathBuf),
}

/// The opened backend, made ready (template, index).
fn ready<B: Backend>(opened: indexer::Result<B>) -> Result<B, lambda_runtime::Error> {
    let mut backend = opened?;
    backend.ensure_ready()?;
    Ok(backend)
}

async fn invoke<B: Backend + 'static>(
    worker: Arc<Mutex<Worker<B>>>,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error> {
    let started = Instant::now();
    let deadline_ms = event.context.deadline;
    let process_started_ms = PROCESS_STARTED_MS.get().copied().unwrap_or(0);
    let budget = invocation_budget(deadline_ms, epoch_ms() as u64, process_started_ms);
    let request_id = event.context.request_id.clone();
    let payload = serde_json::to_vec(&event.payload)?;
    let report = tokio::task::spawn_blocking(move || {
        let mut worker = worker.lock().map_err(|_| "an earlier invocation panicked; restart the instance")?;
        let Worker { settings, s3, backend, dead_letter, pipeline } = &mut *worker;
        let remaining = match budget {
            InvocationBudget::Known(remaining) => Some(remaining),
            InvocationBudget::Unknown => {
                if !WARNED_UNKNOWN_DEADLINE.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        deadline_ms,
                        fallback_budget_ms = settings.fallback_budget.map(|b| b.as_millis() as u64),
                        "the runtime's deadline cannot be a real time (already past on arrival; cargo lambda's \
                         emulator sends a duration): using TIX_TIME_BUDGET_MS if set, else no deadline"
                    );
                }
                settings.fallback_budget
            }
        };
        let deadline = remaining.map(|remaining| Deadline::for_budget(started, remaining, settings.deadline_margin));
        let report = handle_event(&payload, s3, backend, dead_letter, pipeline.clone(), deadline, None)?;
        let metrics = emf_record(&report, &settings.function_name, started.elapsed(), epoch_ms());
        // EMF goes to stdout as one line, where CloudWatch picks it up.
        println!("{metrics}");
        Ok::<_, lambda_runtime::Error>(report)
    })
    .await??;
    tracing::info!(
        request_id,
        objects = report.summary.objects,
        records = report.summary.records,
        failed = report.failed.len(),
        "invocation done"
    );
    if report.must_fail_invocation() {
        // A direct S3 or EventBridge event has no partial answer: fail it to retry it.
        let reasons: Vec<&str> = report.failed.iter().map(|f| f.reason.as_str()).collect();
        return Err(format!("not every object completed: {}", reasons.join("; ")).into());
    }
    if is_sqs_event(&event.payload) {
        let mut response = SqsBatchResponse::default();
        for id in report.batch_item_failures() {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
        return Ok(serde_json::to_value(response)?);
    }
    let mut answer = json!({ "summary": report.summary, "acknowledged": report.acknowledged });
    if let Some(reconciliation) = &report.reconciliation {
        answer["reconciliation"] = serde_json::to_value(reconciliation)?;
    }
    Ok(answer)
}

fn epoch_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
