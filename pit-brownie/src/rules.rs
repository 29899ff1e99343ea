//! Which resources are stale: the creation time written in their names, against a retention
//! period, with the existing toolkit's settings (`--timestamp-pattern`, `--retention-period`)
//! and PIT's safer defaults.

use std::time::Duration;

use regex::Regex;
use serde::Serialize;

/// PIT's default pattern: `pit` as a word (between separators, not inside `spitfire`), then
/// the *first* `ts` and 14 digits after it (the existing toolkit's greedy `.*` takes the last).
pub const DEFAULT_PATTERN: &str = r"(?:^|[^A-Za-z0-9])pit[^A-Za-z0-9](?:.*?[^A-Za-z0-9])??(ts[0-9]{14})(?:[^0-9]|$)";

/// The existing toolkit's default, for comparison and for configurations that name it.
pub const TOOLKIT_PATTERN: &str = r"^.*pit.*(ts[0-9]{14,14}).*";

/// The default retention (the existing toolkit's `3days`).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3 * 24 * 3600);

/// What the rules say of one name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// The pattern does not match: not PIT's, never touched.
    NotOurs,
    /// The pattern matches but no creation time can be read from it: kept, with why.
    Unreadable {
        /// Why.
        reason: String,
    },
    /// Younger than the retention: kept.
    Young {
        /// Its age, in seconds (negative ages, from clocks ahead, count as 0).
        age_secs: u64,
    },
    /// Older than the retention: a candidate for deletion.
    Stale {
        /// Its age, in seconds.
        age_secs: u64,
    },
}

/// The pattern and the retention.
#[derive(Debug, Clone)]
pub struct Rules {
    pattern: Regex,
    retention: Duration,
}

/// Why the rules cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The pattern is not a regular expression.
    #[error("--timestamp-pattern is not a regular expression: {0}")]
    Pattern(String),
    /// The pattern has no group for the timestamp.
    #[error("--timestamp-pattern `{0}` has no group: write the timestamp as a group, such as `(ts[0-9]{{14}})`")]
    NoGroup(String),
    /// The retention cannot be read.
    #[error("--retention-period `{0}` cannot be read: write `3days`, `12hours`, `30minutes` (or `72h`)")]
    Retention(String),
}

impl Rules {
    /// Rules from a pattern (its first group holds `ts` and 14 digits, `yyyyMMddHHmmss` in UTC)
    /// and a retention.
    ///
    /// # Errors
    /// [`RuleError`] for a pattern that is no regular expression or has no group.
    pub fn new(pattern: &str, retention: Duration) -> Result<Self, RuleError> {
        let re = Regex::new(pattern).map_err(|e| RuleError::Pattern(e.to_string()))?;
        if re.captures_len() < 2 {
            return Err(RuleError::NoGroup(pattern.to_owned()));
        }
        Ok(Self { pattern: re, retention })
    }

    /// PIT's defaults: [`DEFAULT_PATTERN`], three days.
    pub fn defaults() -> Self {
        Self::new(DEFAULT_PATTERN, DEFAULT_RETENTION).expect("the default pattern is valid")
    }

    /// The retention.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// The pattern.
    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }

    /// What the rules say of `name` at `now_secs` (Unix seconds).
    ///
    /// ```
    /// use pit_brownie::rules::{Rules, Verdict};
    /// let rules = Rules::defaults();
    /// let now = 1_767_225_600; // 2026-01-01T00:00:00Z
    /// assert_eq!(rules.evaluate("orders_pit_shop-ci_ts20251225000000", now), Verdict::Stale { age_secs: 7 * 86_400 });
    /// assert_eq!(rules.evaluate("orders_pit_shop-ci_ts20251231230000", now), Verdict::Young { age_secs: 3_600 });
    /// assert_eq!(rules.evaluate("spitfire_ts20251225000000", now), Verdict::NotOurs);
    /// assert!(matches!(rules.evaluate("pit_x_ts20251345000000", now), Verdict::Unreadable { .. }));
    /// ```
    pub fn evaluate(&self, name: &str, now_secs: i64) -> Verdict {
        let Some(caps) = self.pattern.captures(name) else {
            return Verdict::NotOurs;
        };
        let Some(group) = caps.get(1) else {
            return Verdict::Unreadable {
                reason: "the pattern's group did not take part in the match".into(),
            };
        };
        let created = match created_at(group.as_str()) {
            Ok(t) => t,
            Err(reason) => return Verdict::Unreadable { reason },
        };
        let age_secs = u64::try_from(now_secs - created).unwrap_or(0);
        if age_secs > self.retention.as_secs() {
            Verdict::Stale { age_secs }
        } else {
            Verdict::Young { age_secs }
        }
    }
}

/// The Unix time of `ts20240501220100` (or the 14 digits alone), read as UTC.
fn created_at(stamp: &str) -> Result<i64, String> {
    let digits = stamp.strip_prefix("ts").unwrap_or(stamp);
    if digits.len() != 14 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{stamp}` is not `ts` and 14 digits"));
    }
    let dt = jiff::civil::DateTime::strptime("%Y%m%d%H%M%S", digits)
        .map_err(|e| format!("`{stamp}` is not a date and time (yyyyMMddHHmmss): {e}"))?;
    let zoned = dt
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|e| format!("`{stamp}`: {e}"))?;
    Ok(zoned.timestamp().as_second())
}

/// A retention as the existing toolkit writes it (`1day`, `3days`, `1hour`, `12hours`,
/// `1minute`, `30minutes`), or as any duration humantime reads (`72h`, `90m`, `1day 12h`).
///
/// # Errors
/// [`RuleError::Retention`], also for a retention too long to count in seconds.
///
/// ```
/// use std::time::Duration;
/// use pit_brownie::rules::parse_retention;
/// assert_eq!(parse_retention("3days").unwrap(), Duration::from_secs(3 * 86_400));
/// assert_eq!(parse_retention("1hour").unwrap(), Duration::from_secs(3_600));
/// assert_eq!(parse_retention("90m").unwrap(), Duration::from_secs(5_400));
/// assert!(parse_retention("soon").is_err());
/// assert!(parse_retention("99999999999999999days").is_err(), "too long to count in seconds");
/// ```
pub fn parse_retention(text: &str) -> Result<Duration, RuleError> {
    humantime::parse_duration(text.trim()).map_err(|_| RuleError::Retention(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    #[test]
    fn the_first_timestamp_after_pit_counts_not_the_last() {
        let rules = Rules::defaults();
        // The toolkit's greedy pattern reads the last `ts…` (a young one) here.
        let name = "pit_shop_ts20251201000000_copy_ts20251231235959";
        assert_eq!(rules.evaluate(name, NOW), Verdict::Stale { age_secs: 31 * 86_400 });
        let toolkit = Rules::new(TOOLKIT_PATTERN, DEFAULT_RETENTION).unwrap();
        assert_eq!(toolkit.evaluate(name, NOW), Verdict::Young { age_secs: 1 });
    }

    #[test]
    fn pit_must_be_a_word() {
        let rules = Rules::defaults();
        for theirs in [
            "spitfire_ts20240101000000",
            "pitstop_ts20240101000000",
            "capital_pit2_ts20240101000000",
        ] {
            assert_eq!(rules.evaluate(theirs, NOW), Verdict::NotOurs, "{theirs}");
        }
        for ours in [
            "pit_ts20240101000000",
            "orders-pit-shop-ts20240101000000",
            "a.pit.b_ts20240101000000x",
        ] {
            assert!(matches!(rules.evaluate(ours, NOW), Verdict::Stale { .. }), "{ours}");
        }
    }

    #[test]
    fn an_unreadable_time_keeps_the_resource_and_says_why() {
        let rules = Rules::defaults();
        for (name, why) in [
            ("pit_x_ts20241301000000", "not a date"),
            ("pit_x_ts20240230000000", "not a date"),
            ("pit_x_ts20240101250000", "not a date"),
        ] {
            match rules.evaluate(name, NOW) {
                Verdict::Unreadable { reason } => assert!(reason.contains(why), "{name}: {reason}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        // A pattern whose group is optional: matched without it.
        let optional = Rules::new(r"^pit_(ts[0-9]{14})?", DEFAULT_RETENTION).unwrap();
        assert!(matches!(optional.evaluate("pit_db", NOW), Verdict::Unreadable { .. }));
        // A pattern without a group is refused up front.
        assert!(matches!(
            Rules::new("^pit_.*", DEFAULT_RETENTION),
            Err(RuleError::NoGroup(_))
        ));
    }

    #[test]
    fn the_toolkits_retention_forms_are_read_and_nonsense_is_refused() {
        for (text, secs) in [
            ("1day", 86_400),
            ("3days", 3 * 86_400),
            ("1hour", 3_600),
            ("12hours", 12 * 3_600),
            ("1minute", 60),
            ("30minutes", 1_800),
            ("72h", 72 * 3_600),
            (" 2d ", 2 * 86_400),
        ] {
            assert_eq!(parse_retention(text).unwrap(), Duration::from_secs(secs), "{text}");
        }
        for text in ["", "3", "days", "-1day", "3 fortnights", "18446744073709551616s"] {
            let err = parse_retention(text).unwrap_err().to_string();
            assert!(err.contains("write `3days`"), "{text}: {err}");
        }
    }

    #[test]
    fn a_time_in_the_future_is_young() {
        let rules = Rules::defaults();
        assert_eq!(
            rules.evaluate("pit_x_ts20260102000000", NOW),
            Verdict::Young { age_secs: 0 }
        );
    }
}

#[cfg(test)]
mod suffix_tests {
    use super::*;

    #[test]
    fn the_suffix_pit_gives_commands_is_read_back_by_the_default_rules() {
        let run: pit_core::naming::RunId = "01kb8x3v4g0000000000000000".parse().unwrap();
        let name = format!("orders_{}", pit_core::naming::resource_suffix(&run));
        let created = 1_764_456_787; // 2025-11-29T22:53:07Z, the run id's time
        let rules = Rules::defaults();
        assert_eq!(rules.evaluate(&name, created + 60), Verdict::Young { age_secs: 60 });
        assert_eq!(
            rules.evaluate(&name, created + 4 * 86_400),
            Verdict::Stale { age_secs: 4 * 86_400 }
        );
        let env = "pit-smoke-01kb8x3v4g0000000000000000";
        let live = crate::Live {
            environments: vec![env.into()],
        };
        assert_eq!(live.owner_of(&name), Some(env));
        assert!(name.len() <= 63, "PostgreSQL keeps it whole: {name}");
    }
}
