//! UTC calendar dates for the sales report and the operator screen, without a date crate:
//! the two conversions lnvend needs (a date to UNIX days and back), by the well-known
//! civil-calendar arithmetic.

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses "YYYY-MM-DD" into microseconds since the epoch at 00:00 UTC.
pub fn parse_date_us(s: &str) -> Option<i64> {
    let mut parts = s.trim().split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // Refuse 2026-02-31 and the like: it must come back as itself.
    (civil_from_days(days) == (y, m, d)).then_some(days * 86_400_000_000)
}

/// "2026-11-21 06:30:12Z" for microseconds since the epoch.
pub fn format_us(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Microseconds since the epoch at the start of the current UTC day.
pub fn today_start_us(now_us: i64) -> i64 {
    now_us.div_euclid(86_400_000_000) * 86_400_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_nonsense_is_refused() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for days in [-1000, 0, 59, 60, 11_016, 20_000, 20_778] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(
            parse_date_us("2026-11-21"),
            Some(days_from_civil(2026, 11, 21) * 86_400_000_000)
        );
        assert_eq!(parse_date_us("2024-02-29").map(|u| u > 0), Some(true));
        for bad in [
            "2026-02-31",
            "2025-02-29",
            "2026-13-01",
            "21.11.2026",
            "2026-11",
            "",
        ] {
            assert_eq!(parse_date_us(bad), None, "{bad}");
        }
        assert_eq!(format_us(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_us(1_795_237_931_000_000), "2026-11-21 05:12:11Z");
        assert_eq!(today_start_us(86_400_000_000 + 5), 86_400_000_000);
    }
}
