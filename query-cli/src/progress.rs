//! The ingest progress bar: bytes read across all sources, drawn on stderr only when
//! it is a terminal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ingest::pipeline::{Progress, SourceReport};

/// Tracks the bytes of the current source on top of the finished ones.
pub struct BarProgress {
    bar: ProgressBar,
    visible: bool,
    finished_bytes: AtomicU64,
    current: Mutex<Option<Arc<AtomicU64>>>,
    current_name: Mutex<String>,
    records: AtomicU64,
    rejected: AtomicU64,
}

impl BarProgress {
    pub fn new(total_bytes: u64, visible: bool) -> Arc<Self> {
        let target = if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(Some(total_bytes), target);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}",
        ) {
            bar.set_style(style);
        }
        let progress = Arc::new(BarProgress {
            bar,
            visible,
            finished_bytes: AtomicU64::new(0),
            current: Mutex::new(None),
            current_name: Mutex::new(String::new()),
            records: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        });
        if visible {
            let ticker = Arc::downgrade(&progress);
            std::thread::spawn(move || {
                while let Some(progress) = ticker.upgrade() {
                    progress.tick();
                    drop(progress);
                    std::thread::sleep(Duration::from_millis(150));
                }
            });
        }
        progress
    }

    fn tick(&self) {
        let current = self.current.lock().ok().and_then(|c| c.as_ref().map(|c| c.load(Ordering::Relaxed))).unwrap_or(0);
        self.bar.set_position(self.finished_bytes.load(Ordering::Relaxed) + current);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for BarProgress {
    fn source_started(&self, name: &str, _size: Option<u64>, bytes_read: Arc<AtomicU64>) {
        if let Ok(mut current) = self.current.lock() {
            *current = Some(bytes_read);
        }
        let short = name.rsplit('/').next().unwrap_or(name).to_string();
        if let Ok(mut current_name) = self.current_name.lock() {
            current_name.clone_from(&short);
        }
        self.bar.set_message(format!(
            "{short} · {} records, {} rejected",
            self.records.load(Ordering::Relaxed),
            self.rejected.load(Ordering::Relaxed)
        ));
    }

    fn batch_done(&self, records: u64, rejected: u64) {
        let name = self.current_name.lock().map(|n| n.clone()).unwrap_or_default();
        self.bar.set_message(format!(
            "{name} · {} records, {} rejected",
            self.records.load(Ordering::Relaxed) + records,
            self.rejected.load(Ordering::Relaxed) + rejected
        ));
    }

    fn source_finished(&self, report: &SourceReport) {
        if let Ok(mut current) = self.current.lock() {
            *current = None;
        }
        self.finished_bytes.fetch_add(report.bytes_read, Ordering::Relaxed);
        self.records.fetch_add(report.records, Ordering::Relaxed);
        self.rejected.fetch_add(report.rejected, Ordering::Relaxed);
        // The summary lists failures too; on a terminal they also show as they happen.
        if let Some(failure) = report.failure.as_ref().filter(|_| self.visible) {
            self.bar.suspend(|| eprintln!("failed: {}: {failure}", report.source));
        }
        self.tick();
    }
}
