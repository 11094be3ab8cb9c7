//! Calendar arithmetic on event times and their one RFC 3339 writer, shared by the
//! validator (canonical `ts` text), the backends (`@timestamp`, daily index names) and
//! the report. Runs once per record, so it is a few integer operations instead of a
//! general date library call.

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

/// RFC 3339 UTC with millisecond precision: `"2024-02-05T10:11:12.345Z"`, what chrono's
/// `to_rfc3339_opts(SecondsFormat::Millis, true)` writes. Total over `i64`: years outside
/// 0..=9999 are written with a sign, ISO 8601 style (`"+10000-01-01T00:00:00.000Z"`).
pub fn rfc3339_millis(ts_millis: i64) -> String {
    let days = ts_millis.div_euclid(86_400_000);
    let ms_of_day = ts_millis.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let secs = ms_of_day / 1000;
    let (hour, min, sec, ms) = (secs / 3600, secs / 60 % 60, secs % 60, ms_of_day % 1000);
    if !(0..=9999).contains(&year) {
        return format!("{year:+05}-{month:02}-{day:02}T{hour:02}:{min:02}:{sec:02}.{ms:03}Z");
    }
    // Hot path (once per record): fixed-width digits without the formatting machinery.
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, i64::from(month));
    put(8, 2, i64::from(day));
    put(11, 2, hour);
    put(14, 2, min);
    put(17, 2, sec);
    put(20, 3, ms);
    out.iter().map(|&b| b as char).collect()
}

/// As [`rfc3339_millis`], without the fraction on a whole second:
/// `"2024-02-05T00:00:00Z"`, `"2024-02-05T10:11:12.345Z"` (chrono's `SecondsFormat::AutoSi`
/// for a millisecond time). For times people type, such as a report's window.
pub fn rfc3339_auto(ts_millis: i64) -> String {
    let mut text = rfc3339_millis(ts_millis);
    if ts_millis.rem_euclid(1000) == 0 {
        let z = text.len() - 1;
        text.replace_range(z - 4..z, "");
    }
    text
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

    #[test]
    fn rfc3339_writes_utc_with_milliseconds_or_whole_seconds() {
        for (millis, want, auto) in [
            (0, "1970-01-01T00:00:00.000Z", "1970-01-01T00:00:00Z"),
            (1_707_127_872_345, "2024-02-05T10:11:12.345Z", "2024-02-05T10:11:12.345Z"),
            (1_707_127_872_300, "2024-02-05T10:11:12.300Z", "2024-02-05T10:11:12.300Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z", "2000-02-29T00:00:00Z"),
            (4_133_980_799_999, "2100-12-31T23:59:59.999Z", "2100-12-31T23:59:59.999Z"),
            (-1, "1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999Z"),
            (-1000, "1969-12-31T23:59:59.000Z", "1969-12-31T23:59:59Z"),
            (253_402_300_800_000, "+10000-01-01T00:00:00.000Z", "+10000-01-01T00:00:00Z"),
            (-62_167_219_200_001, "-0001-12-31T23:59:59.999Z", "-0001-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(rfc3339_millis(millis), want, "{millis}");
            assert_eq!(rfc3339_auto(millis), auto, "{millis}");
        }
        // Total: no panic at the extremes.
        rfc3339_millis(i64::MIN);
        rfc3339_auto(i64::MAX);
    }

    #[test]
    fn rfc3339_agrees_with_chrono_over_its_whole_range() {
        use chrono::SecondsFormat::{AutoSi, Millis};
        let min = chrono::DateTime::<chrono::Utc>::MIN_UTC.timestamp_millis();
        let max = chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp_millis();
        // An odd stride, so every field takes many values; each sample also on its whole
        // second (the fraction AutoSi leaves out), and the years where the sign appears.
        let stride = ((max - min) / 200_003) | 1;
        let signs = [-62_167_219_200_000i64, 253_402_300_800_000];
        let samples = (min..=max)
            .step_by(stride as usize)
            .flat_map(|ms| [ms, ms - ms.rem_euclid(1000)])
            .chain([min, max])
            .chain(signs.iter().flat_map(|&b| [b - 1000, b - 1, b, b + 1000]))
            .filter(|&ms| ms >= min);
        for millis in samples {
            let t = chrono::DateTime::from_timestamp_millis(millis).unwrap();
            assert_eq!(rfc3339_millis(millis), t.to_rfc3339_opts(Millis, true), "{millis}");
            assert_eq!(rfc3339_auto(millis), t.to_rfc3339_opts(AutoSi, true), "{millis}");
        }
    }
}
