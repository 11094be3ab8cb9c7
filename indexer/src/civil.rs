//! Calendar arithmetic on event times, shared by the validator (canonical `ts` text)
//! and the Elasticsearch backend (daily index names). Runs once per record, so it is a
//! few integer operations instead of a general date library call.

/// Proleptic Gregorian date (year, month, day) of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`); exact for every `i64` millisecond timestamp's day.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_map_to_the_dates_chrono_gives() {
        for days in (-800_000i64..800_000).step_by(997) {
            let date = chrono::DateTime::from_timestamp(days * 86_400, 0).unwrap().date_naive();
            let expected = (
                i64::from(chrono::Datelike::year(&date)),
                chrono::Datelike::month(&date),
                chrono::Datelike::day(&date),
            );
            assert_eq!(civil_from_days(days), expected, "day {days}");
        }
    }
}
