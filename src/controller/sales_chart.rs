//! The operator's sales chart: the poured sales of the last [`CHART_DAYS`] UTC days (count
//! and sats per day, empty days included, so the bars stand on a calendar) and the
//! per-product totals of the same days, from two read-only ledger queries.

use super::*;

impl Controller {
    /// The chart and the per-product lines for the Sales tab, as of `now_us`.
    pub(super) fn sales_chart(&self, now_us: i64) -> (Vec<ChartDay>, Vec<String>) {
        let Ok(l) = &self.ledger else {
            return (Vec::new(), Vec::new());
        };
        let today = crate::timefmt::today_start_us(now_us).div_euclid(DAY_US);
        let first = today - (CHART_DAYS as i64 - 1);
        let days = match l.poured_per_day(first * DAY_US) {
            Ok(per_day) => calendar(&per_day, today),
            Err(e) => {
                tracing::warn!(error = %e, "no sales chart");
                Vec::new()
            }
        };
        let products = l
            .poured_per_product(first * DAY_US)
            .map(|rows| {
                rows.into_iter()
                    .map(|(name, count, msat)| {
                        format!(
                            "{name}: {count} sales, {}",
                            Msat::from_msat(msat).display_sats()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        (days, products)
    }
}

const DAY_US: i64 = 86_400_000_000;

/// The [`CHART_DAYS`] days ending with `today` (days since the epoch), oldest first, from
/// the ledger's (day, count, msat) rows; days without a row are zero.
pub fn calendar(per_day: &[(i64, u64, u64)], today: i64) -> Vec<ChartDay> {
    (0..CHART_DAYS as i64)
        .map(|k| today - (CHART_DAYS as i64 - 1) + k)
        .map(|day| {
            let (_, m, d) = crate::timefmt::civil_from_days(day);
            let (count, msat) = per_day
                .iter()
                .find(|(d, _, _)| *d == day)
                .map_or((0, 0), |(_, c, m)| (*c, *m));
            ChartDay {
                date: format!("{m:02}-{d:02}"),
                count,
                msat,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_is_fourteen_calendar_days_ending_today_with_gaps_as_zero() {
        let today = crate::timefmt::days_from_civil(2026, 12, 2);
        let rows = [
            (today - 20, 9, 9_000_000), // too old: not shown
            (today - 13, 2, 4_200_000),
            (today, 3, 6_300_000),
        ];
        let days = calendar(&rows, today);
        assert_eq!(days.len(), 14);
        assert_eq!(
            days[0],
            ChartDay {
                date: "11-19".into(),
                count: 2,
                msat: 4_200_000
            }
        );
        assert_eq!((days[1].count, days[1].msat), (0, 0));
        assert_eq!(
            days[13],
            ChartDay {
                date: "12-02".into(),
                count: 3,
                msat: 6_300_000
            }
        );
        assert_eq!(days.iter().map(|d| d.count).sum::<u64>(), 5);
    }
}
