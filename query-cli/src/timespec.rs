//! Parses `--since`/`--until` values: RFC 3339, a date, or a span back from now.

use chrono::{DateTime, NaiveDate, Utc};

/// `--since`/`--until` as epoch milliseconds, both read against the same `now`.
pub fn parse_window(since: Option<&str>, until: Option<&str>) -> Result<(Option<i64>, Option<i64>), String> {
    let now = Utc::now();
    Ok((since.map(|t| parse_time(t, now)).transpose()?, until.map(|t| parse_time(t, now)).transpose()?))
}

/// Milliseconds since the epoch for `text`, relative spans counted back from `now`.
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        if let Some(midnight) = date.and_hms_opt(0, 0, 0) {
            return Ok(midnight.and_utc().timestamp_millis());
        }
    }
    if let Some(span) = ingest::reconcile::parse_span(text) {
        return Ok(ingest::reconcile::since_ms(now.timestamp_millis(), span));
    }
    Err(format!(
        "cannot read time {text:?}: use RFC 3339 (2024-02-05T10:00:00Z), a date (2024-02-05) or a span back from now (30m, 2h, 7d)"
    ))
}

/// A positive duration: a number and `ms`, `s`, `m` or `h` (`--time-budget`); the span
/// grammar is [`ingest::reconcile::parse_span`]'s, without days and weeks, which no
/// time budget needs.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    match ingest::reconcile::parse_span(text) {
        Some(span) if !span.is_zero() && !text.ends_with('d') && !text.ends_with('w') => Ok(span),
        _ => Err(format!("cannot read duration {text:?}: use a number and ms, s, m or h (500ms, 30s, 2m)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_in_ms_s_m_and_h() {
        use std::time::Duration;
        let table = [
            ("500ms", Ok(Duration::from_millis(500))),
            ("30s", Ok(Duration::from_secs(30))),
            ("2m", Ok(Duration::from_secs(120))),
            ("1h", Ok(Duration::from_secs(3600))),
        ];
        for (text, expected) in table {
            assert_eq!(parse_duration(text), expected, "{text}");
        }
        for bad in ["0s", "", "5", "-3s", "2d", "1.5s", "ms"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_are_read_as_rfc3339_dates_or_spans() {
        let now = DateTime::parse_from_rfc3339("2024-02-05T12:00:00Z").unwrap().with_timezone(&Utc);
        let table = [
            ("2024-02-05T10:00:00Z", 1_707_127_200_000),
            ("2024-02-05T11:00:00+01:00", 1_707_127_200_000),
            ("2024-02-05", 1_707_091_200_000),
            ("2h", 1_707_127_200_000),
            ("1d", 1_707_048_000_000),
        ];
        for (text, expected) in table {
            assert_eq!(parse_time(text, now), Ok(expected), "{text}");
        }
    }

    #[test]
    fn unreadable_times_are_refused_with_the_accepted_forms() {
        let err = parse_time("yesterday", Utc::now()).unwrap_err();
        assert!(err.contains("RFC 3339") && err.contains("yesterday"), "{err}");
    }
}
