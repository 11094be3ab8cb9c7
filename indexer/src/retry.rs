//! When to try a failed request again, and after how long: one policy for every retry
//! loop (the Elasticsearch `_bulk` and query calls, the S3 body resumes in `ingest`).
//!
//! The rules are pure functions of the retry count, the time and a random number (the
//! caller measures the time and sleeps), so each is tested here without a clock. Backoff
//! is capped exponential with "equal jitter" (half the delay fixed, half random):
//! concurrent clients spread out, and none retries at once.

use std::time::{Duration, Instant};

/// Capped exponential backoff with jitter, bounded by a time budget and an attempt count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry; doubles on each further attempt.
    pub initial_backoff: Duration,
    /// Upper bound of one delay.
    pub max_backoff: Duration,
    /// Retries of the same request after the first attempt.
    pub max_retries: u32,
    /// Wall-clock budget of one operation including all retries (one `index_batch`, one
    /// query). When it runs out, the items still unwritten are reported as failed, never
    /// as rejected.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_retries: 8,
            budget: Duration::from_secs(120),
        }
    }
}

/// Why a request is not tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// [`RetryPolicy::max_retries`] retries were made already.
    Attempts,
    /// The backoff would end after the deadline (the budget, or a harder one).
    Deadline,
}

impl RetryPolicy {
    /// The delay before retry number `retry` (counted from 1). `unit_random` is in
    /// `[0, 1)`; values outside are clamped.
    pub fn backoff(&self, retry: u32, unit_random: f64) -> Duration {
        let exponent = retry.saturating_sub(1).min(30);
        let base = self.initial_backoff.saturating_mul(1u32 << exponent).min(self.max_backoff);
        let half = base / 2;
        half + half.mul_f64(unit_random.clamp(0.0, 1.0))
    }

    /// [`RetryPolicy::backoff`] with a fresh random number.
    pub fn jittered_backoff(&self, retry: u32) -> Duration {
        self.backoff(retry, rand::random())
    }

    /// Whether retry number `retry` (from 1) may be made at `now`, and after which delay:
    /// at most [`RetryPolicy::max_retries`] of them, and none whose backoff would end past
    /// `deadline` (sleeping into the deadline only to give up there wastes the time left).
    pub fn next_delay(
        &self,
        retry: u32,
        now: Instant,
        deadline: Instant,
        unit_random: f64,
    ) -> Result<Duration, GiveUp> {
        let delay = self.backoff(retry, unit_random);
        if retry > self.max_retries {
            Err(GiveUp::Attempts)
        } else if now + delay > deadline {
            Err(GiveUp::Deadline)
        } else {
            Ok(delay)
        }
    }

    /// The same policy with at most `max_retries` retries.
    pub fn with_max_retries(self, max_retries: u32) -> Self {
        RetryPolicy { max_retries: self.max_retries.min(max_retries), ..self }
    }
}

/// What kind of HTTP request failed: the two retry different statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// A `_bulk` write. Resending is safe (events are `create`d by id, checkpoints
    /// overwritten), and every item must end with an outcome, so any answer that says the
    /// server failed rather than the request (408, 429, 5xx) is worth another try.
    Write,
    /// A query or setup call, with a person waiting. Only "busy, come back later" is
    /// retried (429, 502, 503, 504): a 500 there is most often the request's own doing (a
    /// failing aggregation or script) and would fail again, and a 408 came after a full
    /// request timeout already.
    Call,
}

/// Whether an HTTP answer with `status` may succeed when the same request is sent again.
pub fn is_retryable_status(status: u16, kind: RequestKind) -> bool {
    match status {
        429 | 502 | 503 | 504 => true,
        408 | 500..=599 => kind == RequestKind::Write,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_retries: 5,
            budget: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_grows_exponentially_is_capped_and_jittered() {
        let policy = policy();
        assert_eq!(policy.backoff(1, 0.0), Duration::from_millis(50));
        assert_eq!(policy.backoff(1, 1.0), Duration::from_millis(100));
        assert_eq!(policy.backoff(3, 1.0), Duration::from_millis(400));
        assert_eq!(policy.backoff(20, 1.0), Duration::from_secs(2));
        assert_eq!(policy.backoff(20, 0.0), Duration::from_secs(1));
        assert!(policy.backoff(u32::MAX, 0.5) <= Duration::from_secs(2));
        assert_eq!(policy.backoff(2, -3.0), Duration::from_millis(100), "randomness is clamped");
    }

    #[test]
    fn retries_stop_at_the_attempt_count_or_before_the_deadline() {
        let policy = policy();
        let now = Instant::now();
        let far = now + Duration::from_secs(60);
        assert_eq!(policy.next_delay(1, now, far, 1.0), Ok(Duration::from_millis(100)));
        assert_eq!(policy.next_delay(5, now, far, 0.0), Ok(Duration::from_millis(800)));
        assert_eq!(policy.next_delay(6, now, far, 0.0), Err(GiveUp::Attempts));
        let near = now + Duration::from_millis(99);
        assert_eq!(policy.next_delay(1, now, near, 1.0), Err(GiveUp::Deadline), "the sleep would pass it");
        assert_eq!(policy.next_delay(1, now, near, 0.0), Ok(Duration::from_millis(50)));
        assert_eq!(policy.with_max_retries(3).next_delay(4, now, far, 0.0), Err(GiveUp::Attempts));
        assert_eq!(policy.with_max_retries(30).max_retries, 5, "a lower configured count stays");
    }

    #[test]
    fn writes_retry_every_server_failure_calls_only_the_busy_ones() {
        for status in [429, 502, 503, 504] {
            assert!(is_retryable_status(status, RequestKind::Write), "{status}");
            assert!(is_retryable_status(status, RequestKind::Call), "{status}");
        }
        for status in [408, 500, 501, 507, 599] {
            assert!(is_retryable_status(status, RequestKind::Write), "{status}");
            assert!(!is_retryable_status(status, RequestKind::Call), "{status}");
        }
        for status in [200, 201, 400, 401, 403, 404, 409, 413] {
            assert!(!is_retryable_status(status, RequestKind::Write), "{status}");
            assert!(!is_retryable_status(status, RequestKind::Call), "{status}");
        }
    }
}
