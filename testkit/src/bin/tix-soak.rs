//! The soak test's driver (`scripts/soak.sh`, not part of CI): continuous ingestion by the
//! real `tix-logs` binary for a number of minutes under random faults, with the ingesters'
//! memory and file descriptors sampled throughout and the conservation oracle
//! (`testkit::oracle`) judging everything sent at the end.
//!
//! Three lanes run side by side, each with its own store and its own corpus
//! ([`Corpus::generate`]: every record's fate known, every 53rd record bad), whose objects
//! arrive at a steady rate:
//! - `files-tantivy`: files into a local tantivy index;
//! - `files-es`: files into the scripted Elasticsearch node ([`FakeCluster`]) behind a
//!   [`FaultProxy`];
//! - `s3-es`: objects uploaded to Garage, read through a second [`FaultProxy`], into the
//!   same node under another index prefix (skipped, and said so, without Garage).
//!
//! A lane runs `tix-logs ingest` over its whole input (completed sources are skipped by
//! their checkpoints) whenever new objects arrived or the previous run did not complete.
//! Faults come in windows at random: proxy cuts and stalls on new Elasticsearch
//! connections, 429 storms ([`FakeCluster::storm`]), S3 cuts, stalls and `503 SlowDown`;
//! independently, `kill -9` of a running ingester at a random moment of its run, after
//! which the lane simply runs again. Dead letters are local directories on every lane.
//!
//! Usage: `tix-soak --binary PATH [--minutes N] [--out DIR] [--rate R] [--object-records N] [--seed S]`.
//! S3 settings come from the standard variables `scripts/garage.sh` writes
//! (`AWS_ENDPOINT_URL`, keys, `AWS_REGION`, `TIX_S3_TEST_BUCKET`). Writes `report.md`,
//! `runs.csv`, `samples.csv` and `windows.csv` into the output directory, prints the
//! report, and exits 1 when the oracle fails on any lane.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use testkit::es_server::FakeCluster;
use testkit::fault_proxy::{Fault, FaultProxy};
use testkit::oracle::{self, Corpus, Observed, ObservedDeadLetter, ObservedSource};

const PII_KEY: &str = "soak-test-pii-key-0123456789abcdef-0123";
const ES_API_KEY: &str = "tix-soak:soak-api-key-value";

// ---- settings ------------------------------------------------------------------------

struct Settings {
    binary: PathBuf,
    minutes: f64,
    out: PathBuf,
    /// Records per second arriving on each lane.
    rate: f64,
    object_records: u64,
    seed: u64,
}

fn settings() -> Settings {
    let mut s = Settings {
        binary: PathBuf::new(),
        minutes: 30.0,
        out: PathBuf::from("soak-out"),
        rate: 200.0,
        object_records: 1_000,
        seed: 0x50a4,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_else(|| usage(&format!("{} needs a value", args[i])));
        let number = |v: &str| v.parse::<f64>().unwrap_or_else(|_| usage(&format!("{}: not a number: {v}", args[i])));
        match args[i].as_str() {
            "--binary" => s.binary = PathBuf::from(value),
            "--minutes" => s.minutes = number(&value),
            "--out" => s.out = PathBuf::from(value),
            "--rate" => s.rate = number(&value),
            "--object-records" => s.object_records = number(&value) as u64,
            "--seed" => s.seed = number(&value) as u64,
            other => usage(&format!("unknown argument {other}")),
        }
        i += 2;
    }
    if s.binary.as_os_str().is_empty() {
        usage("--binary is required");
    }
    if s.minutes <= 0.0 || s.rate <= 0.0 || s.object_records == 0 {
        usage("--minutes, --rate and --object-records must be positive");
    }
    s
}

fn usage(message: &str) -> ! {
    eprintln!(
        "tix-soak: {message}\nusage: tix-soak --binary PATH [--minutes N] [--out DIR] [--rate RECORDS_PER_S_PER_LANE] \
         [--object-records N] [--seed S]"
    );
    std::process::exit(2);
}

// ---- randomness without a dependency -------------------------------------------------

/// SplitMix64: good enough to place faults, and reproducible from the seed.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        mix(self.0)
    }
    /// Uniform in `[low, high)`.
    fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (self.next() >> 11) as f64 / (1u64 << 53) as f64 * (high - low)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

// ---- faults --------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FaultKind {
    EsCut = 1,
    EsStall,
    Storm,
    S3Cut,
    S3Stall,
    S3SlowDown,
}

impl FaultKind {
    fn name(self) -> &'static str {
        match self {
            FaultKind::EsCut => "es-proxy-cut",
            FaultKind::EsStall => "es-proxy-stall",
            FaultKind::Storm => "es-429-storm",
            FaultKind::S3Cut => "s3-proxy-cut",
            FaultKind::S3Stall => "s3-proxy-stall",
            FaultKind::S3SlowDown => "s3-503-slowdown",
        }
    }
    fn from_u8(v: u8) -> Option<FaultKind> {
        [
            FaultKind::EsCut,
            FaultKind::EsStall,
            FaultKind::Storm,
            FaultKind::S3Cut,
            FaultKind::S3Stall,
            FaultKind::S3SlowDown,
        ]
        .into_iter()
        .find(|k| *k as u8 == v)
    }
    fn hits(self, lane: LaneKind) -> bool {
        match self {
            FaultKind::EsCut | FaultKind::EsStall | FaultKind::Storm => lane != LaneKind::FilesTantivy,
            FaultKind::S3Cut | FaultKind::S3Stall | FaultKind::S3SlowDown => lane == LaneKind::S3Es,
        }
    }
}

#[derive(Debug, Clone)]
struct Window {
    kind: FaultKind,
    start: f64,
    end: f64,
}

/// What the proxies apply to each new connection, and how often they did.
struct FaultState {
    current: AtomicU8,
    es_cut: AtomicU64,
    es_stalled: AtomicU64,
    s3_cut: AtomicU64,
    s3_stalled: AtomicU64,
    s3_slowed: AtomicU64,
}

impl FaultState {
    /// The fault for connection `i` of a proxy (`s3`: the Garage proxy) while `current`
    /// is on: every other connection, at a random byte.
    fn connection(&self, s3: bool, i: usize, seed: u64) -> Fault {
        let Some(kind) = FaultKind::from_u8(self.current.load(Ordering::SeqCst)) else { return Fault::Pass };
        let r = mix(seed ^ (((i as u64) << 1) | s3 as u64));
        if r.is_multiple_of(2) {
            return Fault::Pass;
        }
        let at = ((r >> 8) % if s3 { 64 * 1024 } else { 1_500 }) as usize;
        let count = |c: &AtomicU64| c.fetch_add(1, Ordering::SeqCst);
        match (s3, kind) {
            (false, FaultKind::EsCut) => {
                count(&self.es_cut);
                Fault::CutResponseAfter(at)
            }
            (false, FaultKind::EsStall) => {
                count(&self.es_stalled);
                Fault::StallAfter(at)
            }
            (true, FaultKind::S3Cut) => {
                count(&self.s3_cut);
                Fault::CutResponseAfter(at)
            }
            (true, FaultKind::S3Stall) => {
                count(&self.s3_stalled);
                Fault::StallAfter(at)
            }
            (true, FaultKind::S3SlowDown) => {
                count(&self.s3_slowed);
                Fault::s3_slow_down()
            }
            _ => Fault::Pass,
        }
    }
}

// ---- S3 uploads ----------------------------------------------------------------------

/// Uploads to Garage with the AWS SDK: the endpoint, region and keys `scripts/garage.sh`
/// exports, path-style addressing.
struct Garage {
    /// `host:port` of the endpoint, for the fault proxy in front of it.
    host: String,
    client: aws_sdk_s3::Client,
    runtime: tokio::runtime::Runtime,
    bucket: String,
}

impl Garage {
    fn from_env() -> Option<Garage> {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").ok()?;
        let host = endpoint.trim_start_matches("http://").trim_end_matches('/').to_string();
        std::env::var("AWS_ACCESS_KEY_ID").ok()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let config = runtime.block_on(aws_config::from_env().http_client(http).load());
        let client =
            aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build());
        Some(Garage { host, client, runtime, bucket: testkit::garage::bucket() })
    }

    /// Writes `body` under `key`; the error says what S3 answered.
    fn put(&self, key: &str, body: &[u8]) -> Result<(), String> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(body.to_vec()))
            .send();
        self.runtime
            .block_on(request)
            .map(|_| ())
            .map_err(|e| format!("PUT s3://{}/{key}: {}", self.bucket, aws_sdk_s3::error::DisplayErrorContext(e)))
    }

    /// Removes `key` (cleanup at the end; failures only leave litter in the test bucket).
    fn delete(&self, key: &str) {
        let _ = self.runtime.block_on(self.client.delete_object().bucket(&self.bucket).key(key).send());
    }
}

// ---- lanes ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LaneKind {
    FilesTantivy,
    FilesEs,
    S3Es,
}

impl LaneKind {
    fn name(self) -> &'static str {
        match self {
            LaneKind::FilesTantivy => "files-tantivy",
            LaneKind::FilesEs => "files-es",
            LaneKind::S3Es => "s3-es",
        }
    }
    fn es_prefix(self) -> &'static str {
        match self {
            LaneKind::S3Es => "soak-s3",
            _ => "soak-files",
        }
    }
}

/// One `tix-logs ingest` run.
#[derive(Debug, Clone, Default)]
struct Run {
    lane: &'static str,
    number: usize,
    start: f64,
    end: f64,
    /// `Some(code)`, or `None` when killed.
    exit: Option<i32>,
    records: u64,
    peak_rss_kb: u64,
    max_fds: u64,
    faulted: bool,
    drain: bool,
}

/// A running ingester as the sampler sees it.
struct Alive {
    pid: u32,
    peak_rss_kb: u64,
    max_fds: u64,
}

struct Shared {
    start: Instant,
    soak_over: AtomicBool,
    faults: Arc<FaultState>,
    windows: Mutex<Vec<Window>>,
    alive: Mutex<BTreeMap<&'static str, Alive>>,
    runs: Mutex<Vec<Run>>,
    kills: Mutex<BTreeMap<&'static str, u64>>,
}

impl Shared {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

struct Lane {
    kind: LaneKind,
    corpus: Corpus,
    dir: PathBuf,
    revealed: usize,
    /// Objects revealed when the last completed run started.
    covered: usize,
    runs: usize,
    kill_pending: Arc<AtomicBool>,
    s3_prefix: String,
}

struct Context {
    settings: Settings,
    shared: Arc<Shared>,
    es_url: String,
    s3_proxy_url: Option<String>,
    garage: Option<Arc<Garage>>,
}

impl Lane {
    fn input(&self) -> PathBuf {
        self.dir.join("input")
    }
    fn dead_letter(&self) -> PathBuf {
        self.dir.join("dead-letter")
    }
    fn index(&self) -> PathBuf {
        self.dir.join("index")
    }

    /// Makes object `self.revealed` arrive (a hard link into the input, or an upload).
    fn reveal_next(&mut self, ctx: &Context) -> Result<(), String> {
        let file = &self.corpus.files()[self.revealed];
        let name = file.file_name().expect("corpus file name").to_string_lossy().into_owned();
        match self.kind {
            LaneKind::S3Es => {
                let garage = ctx.garage.as_ref().expect("the S3 lane runs with Garage");
                let body = std::fs::read(file).map_err(|e| e.to_string())?;
                garage.put(&format!("{}{name}", self.s3_prefix), &body)?;
            }
            _ => {
                let to = self.input().join(&name);
                if std::fs::hard_link(file, &to).is_err() {
                    std::fs::copy(file, &to).map_err(|e| format!("{}: {e}", to.display()))?;
                }
            }
        }
        self.revealed += 1;
        Ok(())
    }

    fn reveal_due(&mut self, ctx: &Context, all: bool) {
        let every = ctx.settings.object_records as f64 / ctx.settings.rate;
        while self.revealed < self.corpus.files().len() && (all || self.revealed as f64 * every <= ctx.shared.now()) {
            if let Err(e) = self.reveal_next(ctx) {
                eprintln!("tix-soak: {}: an object could not arrive, retrying: {e}", self.kind.name());
                std::thread::sleep(Duration::from_secs(1));
                if !all {
                    return;
                }
            }
        }
    }

    fn command(&self, ctx: &Context) -> Command {
        let mut cmd = Command::new(&ctx.settings.binary);
        for (name, _) in std::env::vars() {
            if name.starts_with("TIX_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("TIX_PII_KEY", PII_KEY).args(["ingest", "--json", "--dead-letter"]).arg(self.dead_letter());
        match self.kind {
            LaneKind::FilesTantivy => {
                cmd.arg("--index").arg(self.index()).arg(self.input());
            }
            LaneKind::FilesEs | LaneKind::S3Es => {
                cmd.env("TIX_ES_URL", &ctx.es_url)
                    .env("TIX_ES_API_KEY", ES_API_KEY)
                    .env("TIX_ES_INDEX_PREFIX", self.kind.es_prefix())
                    .args(["--backend", "elasticsearch"]);
                if self.kind == LaneKind::S3Es {
                    let garage = ctx.garage.as_ref().expect("Garage");
                    cmd.env("AWS_ENDPOINT_URL", ctx.s3_proxy_url.as_deref().expect("S3 proxy"))
                        .arg(format!("s3://{}/{}", garage.bucket, self.s3_prefix));
                } else {
                    cmd.arg(self.input());
                }
            }
        }
        cmd
    }

    /// One ingest run to its end (or its `kill -9`); true when it exited 0.
    fn run(&mut self, ctx: &Context, drain: bool, rng: &mut Rng) -> bool {
        let name = self.kind.name();
        let stdout_path = self.dir.join("last-stdout.json");
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("stderr.log"));
        let (Ok(stdout), Ok(stderr)) = (std::fs::File::create(&stdout_path), stderr) else {
            eprintln!("tix-soak: {name}: cannot open the run's output files in {}", self.dir.display());
            return false;
        };
        let start = ctx.shared.now();
        let revealed = self.revealed;
        let mut child: Child = match self
            .command(ctx)
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .stdin(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                eprintln!("tix-soak: {name}: cannot start {}: {e}", ctx.settings.binary.display());
                std::thread::sleep(Duration::from_secs(1));
                return false;
            }
        };
        self.runs += 1;
        ctx.shared.alive.lock().unwrap().insert(name, Alive { pid: child.id(), peak_rss_kb: 0, max_fds: 0 });
        let mut kill_at: Option<Instant> = None;
        let mut killed = false;
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Some(status);
            }
            if !drain && self.kill_pending.load(Ordering::SeqCst) {
                let at =
                    *kill_at.get_or_insert_with(|| Instant::now() + Duration::from_secs_f64(rng.between(0.05, 2.0)));
                if Instant::now() >= at {
                    // SIGKILL: no chance to flush, commit or clean up.
                    if child.kill().is_ok() {
                        killed = true;
                        self.kill_pending.store(false, Ordering::SeqCst);
                        *ctx.shared.kills.lock().unwrap().entry(name).or_default() += 1;
                    }
                    let _ = child.wait();
                    break None;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let seen = ctx.shared.alive.lock().unwrap().remove(name);
        let end = ctx.shared.now();
        let exit = if killed { None } else { status.and_then(|s| s.code()) };
        let summary: Value = std::fs::read(&stdout_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(Value::Null);
        let windows = ctx.shared.windows.lock().unwrap().clone();
        let current = FaultKind::from_u8(ctx.shared.faults.current.load(Ordering::SeqCst));
        let faulted = windows.iter().any(|w| w.kind.hits(self.kind) && w.start < end && w.end > start)
            || current.is_some_and(|k| k.hits(self.kind));
        ctx.shared.runs.lock().unwrap().push(Run {
            lane: name,
            number: self.runs,
            start,
            end,
            exit,
            records: summary["records"].as_u64().unwrap_or(0),
            peak_rss_kb: seen.as_ref().map_or(0, |a| a.peak_rss_kb),
            max_fds: seen.as_ref().map_or(0, |a| a.max_fds),
            faulted,
            drain,
        });
        let ok = exit == Some(0);
        if ok {
            self.covered = revealed;
        }
        ok
    }

    /// The soak phase: run whenever objects arrived or the last run did not complete.
    fn soak(&mut self, ctx: &Context) {
        let mut rng = Rng(ctx.settings.seed ^ mix(self.kind as u64 + 11));
        let mut last_ok = true;
        while !ctx.shared.soak_over.load(Ordering::SeqCst) {
            self.reveal_due(ctx, false);
            if self.revealed > self.covered || !last_ok {
                last_ok = self.run(ctx, false, &mut rng);
                if !last_ok {
                    std::thread::sleep(Duration::from_secs(1));
                }
            } else {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    /// After the faults: every object arrives, and the lane runs until a run completes.
    fn drain(&mut self, ctx: &Context) -> Result<f64, String> {
        let mut rng = Rng(ctx.settings.seed);
        let began = ctx.shared.now();
        self.reveal_due(ctx, true);
        for _ in 0..30 {
            if self.run(ctx, true, &mut rng) {
                return Ok(ctx.shared.now() - began);
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        Err(format!("{}: no run completed in 30 tries after the faults stopped", self.kind.name()))
    }

    /// What the lane's store and dead-letter directory hold, for the oracle.
    fn observed(&self, ctx: &Context, cluster: &FakeCluster) -> Result<Observed, String> {
        let dead_letters = read_dead_letters(&self.dead_letter())?;
        if self.kind != LaneKind::FilesTantivy {
            return Ok(cluster.observed(self.kind.es_prefix(), dead_letters));
        }
        let tix = |args: &[&str]| -> Result<Value, String> {
            let out = Command::new(&ctx.settings.binary)
                .env("TIX_PII_KEY", PII_KEY)
                .args(args)
                .arg("--index")
                .arg(self.index())
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!("tix-logs {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
            }
            serde_json::from_slice(&out.stdout).map_err(|e| format!("tix-logs {args:?}: {e}"))
        };
        let response = tix(&["search", "--format", "json", "--limit", "100000000"])?;
        let hits = response["hits"].as_array().cloned().unwrap_or_default().into_iter().filter_map(|hit| {
            let mut doc = hit.as_object()?.clone();
            let id = doc.remove("_id")?.as_str()?.to_string();
            Some((id, doc))
        });
        let docs = Observed::docs_by_id(hits);
        let sources = tix(&["audit", "--format", "json"])?
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|s| ObservedSource {
                source: s["source"].as_str().unwrap_or_default().to_string(),
                completed: s["status"] == "completed",
            })
            .collect();
        Ok(Observed { docs, dead_letters, sources })
    }
}

fn read_dead_letters(dir: &Path) -> Result<Vec<ObservedDeadLetter>, String> {
    let mut out = Vec::new();
    let Ok(listing) = std::fs::read_dir(dir) else { return Ok(out) };
    for entry in listing.flatten() {
        let path = entry.path();
        // Published segments only: a `.ndjson.partial-PID` is an unfinished write.
        if path.extension().is_none_or(|x| x != "ndjson") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let entry: Value = serde_json::from_str(line).map_err(|e| format!("{}: {e}", path.display()))?;
            out.push(ObservedDeadLetter {
                source: entry["source"].as_str().unwrap_or_default().to_string(),
                record: entry["record"].as_u64(),
                reason: entry["reason"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    Ok(out)
}

// ---- sampling ------------------------------------------------------------------------

/// A `kB` field of `/proc/PID/status` (`None` once the process is gone).
fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix(field).and_then(|v| v.split_whitespace().next()?.parse().ok()))
}

fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// Every 250 ms: each running ingester's RSS, high-water RSS and open descriptors.
fn sample(shared: Arc<Shared>, csv: PathBuf, done: Arc<AtomicBool>) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(csv).expect("samples.csv"));
    let _ = writeln!(out, "t_s,lane,pid,rss_kb,hwm_kb,fds");
    while !done.load(Ordering::SeqCst) {
        let t = shared.now();
        let mut alive = shared.alive.lock().unwrap();
        for (lane, a) in alive.iter_mut() {
            let (Some(rss), Some(hwm), Some(fds)) =
                (proc_status_kb(a.pid, "VmRSS:"), proc_status_kb(a.pid, "VmHWM:"), open_fds(a.pid))
            else {
                continue;
            };
            a.peak_rss_kb = a.peak_rss_kb.max(hwm);
            a.max_fds = a.max_fds.max(fds);
            let _ = writeln!(out, "{t:.2},{lane},{},{rss},{hwm},{fds}", a.pid);
        }
        drop(alive);
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = out.flush();
}

/// Fault windows one after another, with quiet gaps between them, until the soak ends.
fn inject(shared: Arc<Shared>, cluster: Arc<FakeCluster>, kinds: Vec<FaultKind>, seed: u64) {
    let mut rng = Rng(seed ^ 0xfa17);
    let pause = |secs: f64| {
        let until = Instant::now() + Duration::from_secs_f64(secs);
        while Instant::now() < until && !shared.soak_over.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    loop {
        pause(rng.between(8.0, 20.0));
        if shared.soak_over.load(Ordering::SeqCst) {
            return;
        }
        let kind = kinds[rng.below(kinds.len() as u64) as usize];
        let start = shared.now();
        if kind == FaultKind::Storm {
            cluster.storm(true);
        }
        shared.faults.current.store(kind as u8, Ordering::SeqCst);
        pause(rng.between(5.0, 15.0));
        shared.faults.current.store(0, Ordering::SeqCst);
        cluster.storm(false);
        shared.windows.lock().unwrap().push(Window { kind, start, end: shared.now() });
    }
}

/// Asks a random lane to kill its ingester, every 15 to 45 s.
fn killer(shared: Arc<Shared>, lanes: Vec<Arc<AtomicBool>>, seed: u64) {
    let mut rng = Rng(seed ^ 0x4111);
    loop {
        let until = Instant::now() + Duration::from_secs_f64(rng.between(15.0, 45.0));
        while Instant::now() < until {
            if shared.soak_over.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        lanes[rng.below(lanes.len() as u64) as usize].store(true, Ordering::SeqCst);
    }
}

// ---- report --------------------------------------------------------------------------

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[values.len() / 2])
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.digits$}"))
}

struct LaneResult {
    kind: LaneKind,
    objects: usize,
    records: u64,
    drain: Result<f64, String>,
    oracle: Result<(), String>,
}

fn report(ctx: &Context, results: &[LaneResult], cluster: &FakeCluster, soak_secs: f64, notes: &[String]) -> String {
    let shared = &ctx.shared;
    let runs = shared.runs.lock().unwrap().clone();
    let windows = shared.windows.lock().unwrap().clone();
    let kills = shared.kills.lock().unwrap().clone();
    let mut md = String::new();
    let s = &ctx.settings;
    let _ = writeln!(md, "# tix-logs soak report\n");
    let _ = writeln!(
        md,
        "{:.1} minutes of faults ({:.0} s), then a fault-free drain; {} records/s arriving per lane in objects of {} \
         records (every 53rd record bad, every 7th without event_id); seed {}; binary `{}`.\n",
        soak_secs / 60.0,
        soak_secs,
        s.rate,
        s.object_records,
        s.seed,
        s.binary.display()
    );
    let _ = writeln!(md, "## Conservation oracle\n");
    let _ = writeln!(md, "| lane | objects | records | drain after faults | oracle |\n|---|---|---|---|---|");
    for r in results {
        let drain = match &r.drain {
            Ok(secs) => format!("{secs:.1} s"),
            Err(e) => format!("FAILED: {e}"),
        };
        let oracle = match &r.oracle {
            Ok(()) => "holds: every good record indexed once, every bad one dead-lettered once, every object completed"
                .to_string(),
            Err(e) => format!("**FAILED**: {e}"),
        };
        let _ = writeln!(md, "| {} | {} | {} | {drain} | {oracle} |", r.kind.name(), r.objects, r.records);
    }

    let _ = writeln!(md, "\n## Memory and file descriptors of the ingester\n");
    let _ = writeln!(
        md,
        "Each run is a fresh `tix-logs ingest` process over the lane's whole input (completed sources skipped), so \
         growth shows as later runs peaking higher. Peak RSS is the kernel's high-water mark (`VmHWM`) and fds the \
         most open descriptors, both sampled every 250 ms; first/last are the first and last runs of the soak phase, \
         early/late the medians of its first and last fifth of runs.\n"
    );
    let _ = writeln!(
        md,
        "| lane | runs sampled | peak RSS MB first / last / max | early / late median | fds first / last / max | early / late median | flat? |\n|---|---|---|---|---|---|---|"
    );
    for r in results {
        let lane: Vec<&Run> =
            runs.iter().filter(|x| x.lane == r.kind.name() && !x.drain && x.peak_rss_kb > 0).collect();
        if lane.is_empty() {
            let _ = writeln!(md, "| {} | 0 | - | - | - | - | - |", r.kind.name());
            continue;
        }
        let fifth = (lane.len() / 5).max(1);
        let mb = |kb: u64| kb as f64 / 1024.0;
        let rss: Vec<f64> = lane.iter().map(|x| mb(x.peak_rss_kb)).collect();
        let fds: Vec<f64> = lane.iter().map(|x| x.max_fds as f64).collect();
        let early_rss = median(rss[..fifth].to_vec());
        let late_rss = median(rss[rss.len() - fifth..].to_vec());
        let early_fds = median(fds[..fifth].to_vec());
        let late_fds = median(fds[fds.len() - fifth..].to_vec());
        let flat_rss = matches!((early_rss, late_rss), (Some(e), Some(l)) if l <= e * 1.25 + 10.0);
        let flat_fds = matches!((early_fds, late_fds), (Some(e), Some(l)) if l <= e + 4.0);
        let verdict = match (flat_rss, flat_fds) {
            (true, true) => "flat".to_string(),
            (a, b) => format!("RSS {}, fds {}", if a { "flat" } else { "GROWS" }, if b { "flat" } else { "GROW" }),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} / {:.0} / {:.0} | {} / {} | {} / {} / {} | {} / {} | {verdict} |",
            r.kind.name(),
            lane.len(),
            rss[0],
            rss[rss.len() - 1],
            rss.iter().cloned().fold(0.0, f64::max),
            fmt_opt(early_rss, 0),
            fmt_opt(late_rss, 0),
            fds[0],
            fds[fds.len() - 1],
            fds.iter().cloned().fold(0.0, f64::max),
            fmt_opt(early_fds, 0),
            fmt_opt(late_fds, 0),
        );
    }

    let _ = writeln!(md, "\n## Throughput\n");
    let total: u64 = results.iter().map(|r| r.records).sum();
    let _ = writeln!(
        md,
        "Overall: {total} records through {} lanes in {:.0} s including the drain, {:.0} records/s (the arrival rate \
         bounds it: {} records/s per lane). Per run: records read by runs that exited (0 or 1) divided by their wall \
         time, startup and skipping of completed sources included; a run is *under faults* when a fault window that \
         reaches its lane overlapped it.\n",
        results.len(),
        shared.now(),
        total as f64 / shared.now(),
        s.rate
    );
    let _ = writeln!(
        md,
        "| lane | runs ok / failed (exit 1 or 2) / killed | records/s, runs without faults | records/s, runs under faults | runs under faults |\n|---|---|---|---|---|"
    );
    for r in results {
        let lane: Vec<&Run> = runs.iter().filter(|x| x.lane == r.kind.name() && !x.drain).collect();
        let ok = lane.iter().filter(|x| x.exit == Some(0)).count();
        let killed = lane.iter().filter(|x| x.exit.is_none()).count();
        let failed = lane.len() - ok - killed;
        let rate = |faulted: bool| {
            let chosen: Vec<&&Run> =
                lane.iter().filter(|x| x.faulted == faulted && matches!(x.exit, Some(0) | Some(1))).collect();
            let records: u64 = chosen.iter().map(|x| x.records).sum();
            let secs: f64 = chosen.iter().map(|x| x.end - x.start).sum();
            if secs > 0.0 {
                format!("{:.0} ({} runs, {records} records)", records as f64 / secs, chosen.len())
            } else {
                "-".to_string()
            }
        };
        let under = lane.iter().filter(|x| x.faulted).count();
        let _ = writeln!(
            md,
            "| {} | {ok} / {failed} / {killed} | {} | {} | {under} |",
            r.kind.name(),
            rate(false),
            rate(true)
        );
    }

    let _ = writeln!(md, "\n## Faults injected\n");
    let _ = writeln!(md, "| fault | windows | seconds | evidence |\n|---|---|---|---|");
    let f = &shared.faults;
    let mut by_kind: BTreeMap<FaultKind, (usize, f64)> = BTreeMap::new();
    for w in &windows {
        let e = by_kind.entry(w.kind).or_default();
        e.0 += 1;
        e.1 += w.end - w.start;
    }
    for (kind, (count, secs)) in &by_kind {
        let evidence = match kind {
            FaultKind::EsCut => format!("{} connections cut", f.es_cut.load(Ordering::SeqCst)),
            FaultKind::EsStall => format!("{} connections stalled", f.es_stalled.load(Ordering::SeqCst)),
            FaultKind::Storm => {
                format!(
                    "{} bulk items answered 429",
                    cluster.items_answered(429, Some("es_rejected_execution_exception"))
                )
            }
            FaultKind::S3Cut => format!("{} connections cut", f.s3_cut.load(Ordering::SeqCst)),
            FaultKind::S3Stall => format!("{} connections stalled", f.s3_stalled.load(Ordering::SeqCst)),
            FaultKind::S3SlowDown => format!("{} connections answered 503", f.s3_slowed.load(Ordering::SeqCst)),
        };
        let _ = writeln!(md, "| {} | {count} | {secs:.0} | {evidence} |", kind.name());
    }
    let kill_list: Vec<String> = kills.iter().map(|(lane, n)| format!("{lane} {n}")).collect();
    let _ = writeln!(
        md,
        "| kill -9 of the ingester | {} | - | mid-run, by lane: {} |",
        kills.values().sum::<u64>(),
        if kill_list.is_empty() { "none".to_string() } else { kill_list.join(", ") }
    );
    let _ = writeln!(md, "\n## Notes\n");
    for note in notes {
        let _ = writeln!(md, "- {note}");
    }
    let _ = writeln!(
        md,
        "- The driver's own RSS at the end (the scripted Elasticsearch node keeps every document and request body in \
         memory): {:.0} MB.",
        proc_status_kb(std::process::id(), "VmRSS:").unwrap_or(0) as f64 / 1024.0
    );
    md
}

// ---- main ----------------------------------------------------------------------------

fn main() {
    let settings = settings();
    std::fs::create_dir_all(&settings.out).unwrap_or_else(|e| usage(&format!("{}: {e}", settings.out.display())));
    let work = tempfile::Builder::new().prefix("tix-soak-").tempdir().expect("a work directory");
    let mut notes = vec![
        "Fault reach: `files-tantivy` has no network, so only `kill -9` reaches it; the Elasticsearch faults (proxy \
         cuts and stalls, 429 storms) reach `files-es` and `s3-es`; the S3 faults (cuts, stalls, 503 SlowDown on the \
         Garage proxy) reach `s3-es`. Proxy faults apply to connections opened during a window (kept-alive \
         connections carry on), to every other one at a random byte."
            .to_string(),
        "Dead letters go to local directories on every lane (S3 dead letters are covered by the S3 test tier, not \
         here)."
            .to_string(),
    ];
    let garage = Garage::from_env().map(Arc::new);
    let garage = match garage {
        Some(g) => match g.put("soak-probe", b"probe") {
            Ok(()) => Some(g),
            Err(other) => {
                notes.push(format!(
                    "**The S3 lane did not run**: Garage at {} did not take an upload ({other}).",
                    g.host
                ));
                None
            }
        },
        None => {
            notes.push(
                "**The S3 lane did not run**: AWS_ENDPOINT_URL and keys are not set (scripts/garage.sh start)."
                    .to_string(),
            );
            None
        }
    };
    let mut kinds = vec![LaneKind::FilesTantivy, LaneKind::FilesEs];
    if garage.is_some() {
        kinds.push(LaneKind::S3Es);
    }

    let soak_secs = settings.minutes * 60.0;
    let every = settings.object_records as f64 / settings.rate;
    let objects = ((soak_secs / every).floor() as u64).max(1);
    eprintln!("tix-soak: generating {} lanes x {objects} objects x {} records", kinds.len(), settings.object_records);
    let cluster = Arc::new(FakeCluster::start());
    let faults = Arc::new(FaultState {
        current: AtomicU8::new(0),
        es_cut: AtomicU64::new(0),
        es_stalled: AtomicU64::new(0),
        s3_cut: AtomicU64::new(0),
        s3_stalled: AtomicU64::new(0),
        s3_slowed: AtomicU64::new(0),
    });
    let seed = settings.seed;
    let es_proxy = {
        let faults = faults.clone();
        FaultProxy::start_with(&cluster.url(), move |i| faults.connection(false, i, seed))
    };
    let s3_proxy = garage.as_ref().map(|g| {
        let faults = faults.clone();
        FaultProxy::start_with(&g.host, move |i| faults.connection(true, i, seed))
    });
    let run_id = format!(
        "{}-{}",
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs(),
        std::process::id()
    );
    let mut lanes: Vec<Lane> = kinds
        .iter()
        .enumerate()
        .map(|(i, &kind)| {
            let dir = work.path().join(kind.name());
            std::fs::create_dir_all(dir.join("input")).expect("lane input directory");
            Lane {
                kind,
                corpus: Corpus::generate(objects, settings.object_records, seed + (i as u64 + 1) * 1_000_000),
                dir,
                revealed: 0,
                covered: 0,
                runs: 0,
                kill_pending: Arc::new(AtomicBool::new(false)),
                s3_prefix: format!("soak/{run_id}/"),
            }
        })
        .collect();

    let shared = Arc::new(Shared {
        start: Instant::now(),
        soak_over: AtomicBool::new(false),
        faults,
        windows: Mutex::new(Vec::new()),
        alive: Mutex::new(BTreeMap::new()),
        runs: Mutex::new(Vec::new()),
        kills: Mutex::new(BTreeMap::new()),
    });
    let ctx = Context {
        settings,
        shared: shared.clone(),
        es_url: es_proxy.url(),
        s3_proxy_url: s3_proxy.as_ref().map(|p| p.url()),
        garage: garage.clone(),
    };
    eprintln!(
        "tix-soak: {:.1} minutes of faults start; work directory {}",
        ctx.settings.minutes,
        work.path().display()
    );

    let sampling_done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (shared, done, csv) = (shared.clone(), sampling_done.clone(), ctx.settings.out.join("samples.csv"));
        std::thread::spawn(move || sample(shared, csv, done))
    };
    let mut fault_kinds = vec![FaultKind::EsCut, FaultKind::EsStall, FaultKind::Storm];
    if garage.is_some() {
        fault_kinds.extend([FaultKind::S3Cut, FaultKind::S3Stall, FaultKind::S3SlowDown]);
    }
    let injector = {
        let (shared, cluster) = (shared.clone(), cluster.clone());
        std::thread::spawn(move || inject(shared, cluster, fault_kinds, seed))
    };
    let kill_flags: Vec<Arc<AtomicBool>> = lanes.iter().map(|l| l.kill_pending.clone()).collect();
    let killer_thread = {
        let shared = shared.clone();
        std::thread::spawn(move || killer(shared, kill_flags, seed))
    };
    let stopper = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            while shared.now() < soak_secs {
                std::thread::sleep(Duration::from_millis(200));
            }
            shared.soak_over.store(true, Ordering::SeqCst);
        })
    };

    let ctx_ref = &ctx;
    let drains: Vec<Result<f64, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = lanes
            .iter_mut()
            .map(|lane| {
                scope.spawn(move || {
                    lane.soak(ctx_ref);
                    eprintln!("tix-soak: {}: faults over, draining", lane.kind.name());
                    lane.drain(ctx_ref)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("the lane thread panicked".into()))).collect()
    });
    let _ = (stopper.join(), injector.join(), killer_thread.join());
    let results: Vec<LaneResult> = lanes
        .iter()
        .zip(drains)
        .map(|(lane, drain)| {
            eprintln!("tix-soak: {}: checking the oracle", lane.kind.name());
            let oracle = lane.observed(ctx_ref, &cluster).and_then(|observed| {
                std::panic::catch_unwind(AssertUnwindSafe(|| oracle::check(&lane.corpus, &observed, None))).map_err(
                    |panic| {
                        panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "the oracle failed".into())
                            .replace('\n', " ")
                    },
                )
            });
            LaneResult {
                kind: lane.kind,
                objects: lane.corpus.files().len(),
                records: lane.corpus.records(),
                drain,
                oracle,
            }
        })
        .collect();
    sampling_done.store(true, Ordering::SeqCst);
    let _ = sampler.join();

    let md = report(&ctx, &results, &cluster, soak_secs, &notes);
    write_csvs(&ctx);
    if let Some(g) = &garage {
        // Best effort: the uploaded objects are not needed after the oracle.
        for i in 0..objects {
            g.delete(&format!("soak/{run_id}/part-{i}.ndjson"));
        }
        g.delete("soak-probe");
    }
    let _ = std::fs::write(ctx.settings.out.join("report.md"), &md);
    print!("{md}");
    let ok = results.iter().all(|r| r.oracle.is_ok() && r.drain.is_ok());
    std::process::exit(if ok { 0 } else { 1 });
}

fn write_csvs(ctx: &Context) {
    let mut runs = String::from("lane,run,start_s,end_s,exit,records,peak_rss_kb,max_fds,faulted,drain\n");
    for r in ctx.shared.runs.lock().unwrap().iter() {
        let exit = r.exit.map_or("killed".to_string(), |c| c.to_string());
        let _ = writeln!(
            runs,
            "{},{},{:.2},{:.2},{exit},{},{},{},{},{}",
            r.lane, r.number, r.start, r.end, r.records, r.peak_rss_kb, r.max_fds, r.faulted, r.drain
        );
    }
    let _ = std::fs::write(ctx.settings.out.join("runs.csv"), runs);
    let mut windows = String::from("kind,start_s,end_s\n");
    for w in ctx.shared.windows.lock().unwrap().iter() {
        let _ = writeln!(windows, "{},{:.2},{:.2}", w.kind.name(), w.start, w.end);
    }
    let _ = std::fs::write(ctx.settings.out.join("windows.csv"), windows);
}
