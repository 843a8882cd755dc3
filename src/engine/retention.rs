//! Retention: which restore points to keep. Rules are the ones people write
//! in their plans — "keep the last 14", "7 daily, 4 weekly, 12 monthly" —
//! with restic's meaning: for each of the last N hours/days/weeks/months/
//! years that have restore points, keep the newest one in it. A restore
//! point is kept if any rule keeps it, and every survivor says which rules
//! kept it. Calendar periods are UTC (ISO weeks), so the result does not
//! depend on the machine's time zone.

use serde::Serialize;
use std::time::SystemTime;

pub use crate::model::Retention as Policy;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub id: String,
    pub keep: bool,
    /// The rules that keep it ("daily 2026-11-21", "last 3"); empty when
    /// it goes.
    pub reasons: Vec<String>,
}

/// Civil date (UTC) of a Unix time: (year, month, day, hour).
fn civil(secs: i64) -> (i64, u32, u32, u32) {
    let days = secs.div_euclid(86400);
    let hour = (secs.rem_euclid(86400) / 3600) as u32;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, hour)
}

/// ISO week (year, week) of a Unix time.
fn iso_week(secs: i64) -> (i64, u32) {
    let days = secs.div_euclid(86400);
    // 1970-01-01 was a Thursday; ISO weeks start on Monday.
    let weekday = (days + 3).rem_euclid(7); // 0 = Monday
    let thursday = days - weekday + 3;
    let (y, _, _, _) = civil(thursday * 86400);
    (y, ((thursday - days_from_civil(y, 1, 1)) / 7 + 1) as u32)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Decides for each restore point (id, time), in the order given.
pub fn apply(points: &[(String, SystemTime)], policy: &Policy) -> Vec<Decision> {
    let secs = |t: &SystemTime| match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    // Newest first; ties broken by id for a stable answer.
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| {
        points[b]
            .1
            .cmp(&points[a].1)
            .then(points[a].0.cmp(&points[b].0))
    });
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); points.len()];
    if policy.is_empty() {
        for r in reasons.iter_mut() {
            r.push("no retention policy".into());
        }
    }
    for (rank, &i) in order.iter().enumerate() {
        if rank < policy.last as usize {
            reasons[i].push(format!("last {}", rank + 1));
        }
    }
    type Bucket = fn(i64) -> String;
    let rules: [(&str, u32, Bucket); 5] = [
        ("hourly", policy.hourly, |s| {
            let (y, m, d, h) = civil(s);
            format!("{y:04}-{m:02}-{d:02} {h:02}h")
        }),
        ("daily", policy.daily, |s| {
            let (y, m, d, _) = civil(s);
            format!("{y:04}-{m:02}-{d:02}")
        }),
        ("weekly", policy.weekly, |s| {
            let (y, w) = iso_week(s);
            format!("{y:04}-W{w:02}")
        }),
        ("monthly", policy.monthly, |s| {
            let (y, m, _, _) = civil(s);
            format!("{y:04}-{m:02}")
        }),
        ("yearly", policy.yearly, |s| format!("{:04}", civil(s).0)),
    ];
    for (name, n, bucket) in rules {
        let mut seen: Vec<String> = Vec::new();
        for &i in &order {
            if seen.len() >= n as usize {
                break;
            }
            let b = bucket(secs(&points[i].1));
            if !seen.contains(&b) {
                // The newest point of a period it has not seen yet.
                reasons[i].push(format!("{name} {b}"));
                seen.push(b);
            }
        }
    }
    points
        .iter()
        .zip(reasons)
        .map(|((id, _), reasons)| Decision {
            id: id.clone(),
            keep: !reasons.is_empty(),
            reasons,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// 2026-01-01T02:00:00Z
    const START: u64 = 1_767_232_800;

    fn history(days: u64, per_day: u64) -> Vec<(String, SystemTime)> {
        (0..days * per_day)
            .map(|i| {
                let t = UNIX_EPOCH
                    + Duration::from_secs(
                        START + (i / per_day) * 86400 + (i % per_day) * (86400 / per_day),
                    );
                (format!("s{i:04}"), t)
            })
            .collect()
    }

    fn kept(points: &[(String, SystemTime)], p: &Policy) -> Vec<String> {
        apply(points, p)
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| d.id)
            .collect()
    }

    #[test]
    fn calendar_helpers_agree_with_known_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0));
        assert_eq!(civil(START as i64), (2026, 1, 1, 2));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0));
        // 2026-01-01 is a Thursday: ISO week 1 of 2026. 2027-01-01 is a
        // Friday: ISO week 53 of 2026.
        assert_eq!(iso_week(START as i64), (2026, 1));
        assert_eq!(iso_week(1_798_761_600), (2026, 53));
        assert_eq!(days_from_civil(2026, 1, 1) * 86400, (START - 7200) as i64);
    }

    #[test]
    fn keep_last_14_of_a_daily_history() {
        let h = history(30, 1);
        let k = kept(
            &h,
            &Policy {
                last: 14,
                ..Policy::default()
            },
        );
        let expected: Vec<String> = (16..30).map(|i| format!("s{i:04}")).collect();
        assert_eq!(k, expected);
    }

    #[test]
    fn seven_daily_four_weekly_twelve_monthly_over_a_year_of_nightly_backups() {
        // 400 nights from 2026-01-01, one backup a night at 02:00 UTC.
        let h = history(400, 1);
        let decisions = apply(&h, &Policy::seed_default());
        let k: Vec<&Decision> = decisions.iter().filter(|d| d.keep).collect();
        let day = |id: &str| id[1..].parse::<u64>().unwrap();
        // Newest is night 399 = 2027-02-04 (a Thursday).
        // 7 daily: nights 393..=399.
        for n in 393..=399 {
            assert!(k.iter().any(|d| day(&d.id) == n), "daily night {n}");
        }
        // 4 weekly: the newest of ISO weeks 2027-W05 (399, Thu 4 Feb), W04
        // (395, Sun 31 Jan), W03 (388, Sun 24 Jan), W02 (381, Sun 17 Jan).
        for (n, w) in [
            (399, "2027-W05"),
            (395, "2027-W04"),
            (388, "2027-W03"),
            (381, "2027-W02"),
        ] {
            let d = decisions.iter().find(|d| day(&d.id) == n).unwrap();
            assert!(
                d.reasons.contains(&format!("weekly {w}")),
                "{n}: {:?}",
                d.reasons
            );
        }
        // 12 monthly: the last night of each of the 12 newest months,
        // 2027-02 (399) back to 2026-03 (night 89 = 31 March).
        let monthly: Vec<u64> = decisions
            .iter()
            .filter(|d| d.reasons.iter().any(|r| r.starts_with("monthly")))
            .map(|d| day(&d.id))
            .collect();
        assert_eq!(monthly.len(), 12);
        assert!(
            monthly.contains(&399) && monthly.contains(&395) && monthly.contains(&89),
            "{monthly:?}"
        );
        assert!(
            !monthly.contains(&58),
            "February 2026 is the 13th month back: {monthly:?}"
        );
        // Everything else goes: 7 daily, 2 more weekly (395 and 399 are
        // daily already), 10 more monthly (February and January are too).
        assert_eq!(
            k.len(),
            7 + 2 + 10,
            "{:?}",
            k.iter().map(|d| (&d.id, &d.reasons)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn several_backups_a_day_keep_the_newest_of_each_day() {
        let h = history(10, 4);
        let k = kept(
            &h,
            &Policy {
                daily: 3,
                ..Policy::default()
            },
        );
        assert_eq!(k, vec!["s0031", "s0035", "s0039"]);
    }

    #[test]
    fn an_empty_policy_keeps_everything_and_says_why() {
        let h = history(5, 1);
        let d = apply(&h, &Policy::default());
        assert!(d
            .iter()
            .all(|d| d.keep && d.reasons == ["no retention policy"]));
    }
}
