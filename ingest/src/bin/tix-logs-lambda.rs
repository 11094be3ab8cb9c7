//! `tix-logs-lambda`: the S3-triggered ingester on the Lambda runtime.
//!
//! Cold start: settings from the environment (refusing unsafe ones), the S3 client and
//! the backend built once. Each invocation runs the same handler as
//! `tix-logs ingest --event`, on a blocking thread (the pipeline and the backends are
//! synchronous), writes one EMF metrics line, and answers SQS with exactly the
//! messages to redeliver.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use indexer::{Backend, ElasticsearchBackend, EsConfig, TantivyBackend, TantivyConfig};
use ingest::events::is_sqs_event;
use ingest::lambda::{emf_record, LambdaBackend, LambdaSettings};
use ingest::pipeline::PipelineConfig;
use ingest::redact::Redactor;
use ingest::s3::{S3Context, S3DeadLetter};
use ingest::trigger::{handle_event, Deadline};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};

// As in `tix-logs`: records and documents are allocated on one thread and freed on
// another, which glibc's malloc serves poorly.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What lives from the cold start on. The mutex serialises invocations that a runtime
/// might overlap; a Lambda instance handles one at a time anyway.
struct Worker {
    settings: LambdaSettings,
    s3: S3Context,
    backend: Box<dyn Backend>,
    dead_letter: S3DeadLetter,
    pipeline: PipelineConfig,
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .with_writer(std::io::stderr)
        .init();
    let settings = match LambdaSettings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            tracing::error!(%error, "refusing to start");
            return Err(error.into());
        }
    };
    let s3 = S3Context::from_env(tokio::runtime::Handle::current()).await;
    let backend_choice = settings.backend.clone();
    // The Elasticsearch client owns a runtime of its own: build it off this one.
    let backend = tokio::task::spawn_blocking(move || open_backend(&backend_choice)).await??;
    let pipeline = PipelineConfig::new(Redactor::new(&settings.pii_key));
    let dead_letter = S3DeadLetter::new(s3.clone(), settings.dead_letter.clone());
    tracing::info!(settings = ?settings, "ready");
    let worker = Arc::new(Mutex::new(Worker { settings, s3, backend, dead_letter, pipeline }));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| invoke(worker.clone(), event))).await
}

fn open_backend(choice: &LambdaBackend) -> Result<Box<dyn Backend>, lambda_runtime::Error> {
    let mut backend: Box<dyn Backend> = match choice {
        LambdaBackend::Elasticsearch => Box::new(ElasticsearchBackend::connect(EsConfig::from_env()?)?),
        LambdaBackend::Tantivy(path) => Box::new(TantivyBackend::open_for_writing(path, TantivyConfig::default())?),
    };
    backend.ensure_ready()?;
    Ok(backend)
}

async fn invoke(worker: Arc<Mutex<Worker>>, event: LambdaEvent<Value>) -> Result<Value, lambda_runtime::Error> {
    let started = Instant::now();
    let remaining = Duration::from_millis(event.context.deadline.saturating_sub(epoch_ms() as u64));
    let request_id = event.context.request_id.clone();
    let payload = serde_json::to_vec(&event.payload)?;
    let report = tokio::task::spawn_blocking(move || {
        let mut worker = worker.lock().map_err(|_| "an earlier invocation panicked; restart the instance")?;
        let Worker { settings, s3, backend, dead_letter, pipeline } = &mut *worker;
        let deadline = Deadline { at: started + remaining, margin: settings.deadline_margin };
        let report = handle_event(&payload, s3, backend.as_mut(), dead_letter, pipeline.clone(), Some(deadline), None)?;
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
    Ok(json!({ "summary": report.summary, "acknowledged": report.acknowledged }))
}

fn epoch_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
