//! Comparison with earlier runs: a verdict per metric, and change points over history.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::schema::{Figure, Report};

/// Which way a metric gets worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Latency, durations, errors.
    LowerIsBetter,
    /// Throughput, rates.
    HigherIsBetter,
    /// Not known: a change beyond the threshold is reported, never called a regression.
    Unknown,
}

impl Direction {
    /// Guesses from a metric's name and statistic: latencies, durations, times, errors and
    /// percentiles are better lower; throughput, rates and operations per second higher.
    pub fn guess(metric: &str, stat: Option<&str>) -> Self {
        let m = metric.to_ascii_lowercase();
        const HIGHER: [&str; 9] = [
            "throughput",
            "tps",
            "rps",
            "qps",
            "ops",
            "rate",
            "success",
            "bandwidth",
            "per_s",
        ];
        const LOWER: [&str; 9] = [
            "latency", "duration", "time", "error", "fail", "elapsed", "_ms", "wait", "memory",
        ];
        if HIGHER.iter().any(|h| m.contains(h)) && !m.contains("error") {
            return Self::HigherIsBetter;
        }
        if LOWER.iter().any(|l| m.contains(l)) {
            return Self::LowerIsBetter;
        }
        match stat {
            Some(s) if s.starts_with('p') || s == "mean" || s == "max" => Self::LowerIsBetter,
            _ => Self::Unknown,
        }
    }
}

/// When a change counts: a relative threshold (per metric where set) and a direction.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Thresholds {
    /// Relative change, in percent, beyond which a metric has changed (default 10).
    pub default_pct: f64,
    /// Thresholds for metrics matched by name: `metric`, `metric.stat`, or a whole key
    /// `scenario/stream/metric.stat`.
    pub per_metric: BTreeMap<String, f64>,
    /// Directions for metrics matched the same way, where the guess is wrong.
    pub directions: BTreeMap<String, Direction>,
    /// The significance level of the statistical tests (default 0.05).
    pub alpha: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            default_pct: 10.0,
            per_metric: BTreeMap::new(),
            directions: BTreeMap::new(),
            alpha: 0.05,
        }
    }
}

fn matches(pattern: &str, f: &Figure) -> bool {
    let with_stat = match &f.stat {
        Some(s) => format!("{}.{s}", f.metric),
        None => f.metric.clone(),
    };
    pattern == f.key || pattern == with_stat || pattern == f.metric
}

impl Thresholds {
    /// Parses `metric=15%` (or `15`) into a per-metric threshold.
    ///
    /// ```
    /// let mut t = pit_report::compare::Thresholds::default();
    /// t.set("latency.p99=5%").unwrap();
    /// assert_eq!(t.per_metric["latency.p99"], 5.0);
    /// assert!(t.set("latency").is_err());
    /// ```
    ///
    /// # Errors
    /// A message saying what the form is.
    pub fn set(&mut self, spec: &str) -> Result<(), String> {
        let (name, pct) = spec
            .split_once('=')
            .ok_or_else(|| format!("`{spec}`: write METRIC=PERCENT, such as latency.p99=5%"))?;
        let pct: f64 = pct
            .trim()
            .trim_end_matches('%')
            .parse()
            .map_err(|_| format!("`{spec}`: `{pct}` is not a percentage"))?;
        if !(pct.is_finite() && pct >= 0.0) {
            return Err(format!("`{spec}`: the percentage must be zero or more"));
        }
        self.per_metric.insert(name.trim().to_owned(), pct);
        Ok(())
    }

    fn threshold(&self, f: &Figure) -> f64 {
        // The most specific match wins: key, then metric.stat, then metric.
        let mut best: Option<(usize, f64)> = None;
        for (p, v) in &self.per_metric {
            if matches(p, f) && best.is_none_or(|(len, _)| p.len() > len) {
                best = Some((p.len(), *v));
            }
        }
        best.map_or(self.default_pct, |(_, v)| v)
    }

    fn direction(&self, f: &Figure) -> Direction {
        self.directions
            .iter()
            .filter(|(p, _)| matches(p, f))
            .max_by_key(|(p, _)| p.len())
            .map_or_else(|| Direction::guess(&f.metric, f.stat.as_deref()), |(_, d)| *d)
    }
}

/// What happened to a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Worse beyond its threshold (and significant, where a test was possible).
    Regression,
    /// Better beyond its threshold.
    Improvement,
    /// Changed beyond its threshold, in a direction not known to be better or worse.
    Changed,
    /// Within its threshold, or not significant.
    Unchanged,
    /// Not in the baseline.
    New,
    /// In the baseline, not in this report.
    Missing,
}

/// One metric's comparison.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricComparison {
    /// `scenario/stream/metric[.stat]`.
    pub key: String,
    /// This run's value (`None` when missing).
    pub current: Option<f64>,
    /// The baseline: the median over the baseline runs.
    pub baseline: Option<f64>,
    /// Relative change from the baseline, in percent.
    pub delta_pct: Option<f64>,
    /// The threshold applied, in percent.
    pub threshold_pct: f64,
    /// Which way is worse.
    pub direction: Direction,
    /// The test used: `mann-whitney` (samples on both sides) or `z-score` (history of 5 runs
    /// or more); none with fewer.
    pub test: Option<&'static str>,
    /// Its two-sided p-value.
    pub p_value: Option<f64>,
    /// The verdict.
    pub change: Change,
}

/// A report against its baseline.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// The run compared.
    pub run_id: Option<String>,
    /// The baseline runs.
    pub baseline_runs: Vec<String>,
    /// Every metric, in key order.
    pub metrics: Vec<MetricComparison>,
}

impl Comparison {
    /// How many metrics regressed.
    pub fn regressions(&self) -> usize {
        self.metrics.iter().filter(|m| m.change == Change::Regression).count()
    }

    /// The comparison of `key`.
    pub fn get(&self, key: &str) -> Option<&MetricComparison> {
        self.metrics.iter().find(|m| m.key == key)
    }
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    crate::schema::quantile(xs, 0.5)
}

/// The standard normal's two-sided tail beyond `|z|`.
fn two_sided(z: f64) -> f64 {
    libm::erfc(z.abs() / std::f64::consts::SQRT_2)
}

/// Mann-Whitney U test (normal approximation with tie correction): the two-sided p-value that
/// `a` and `b` come from one distribution.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Option<f64> {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.len() < 3 || b.len() < 3 {
        return None;
    }
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|x| (*x, true))
        .chain(b.iter().map(|x| (*x, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    let mut rank_a = 0.0;
    let mut ties = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        rank_a += all[i..=j].iter().filter(|(_, in_a)| *in_a).count() as f64 * rank;
        i = j + 1;
    }
    let u = rank_a - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let nn = n1 + n2;
    let var = n1 * n2 / 12.0 * ((nn + 1.0) - ties / (nn * (nn - 1.0)));
    if var <= 0.0 {
        return Some(1.0);
    }
    Some(two_sided((u - mean) / var.sqrt()))
}

fn z_test(current: f64, history: &[f64]) -> Option<f64> {
    if history.len() < 5 {
        return None;
    }
    let n = history.len() as f64;
    let mean = history.iter().sum::<f64>() / n;
    let sd = (history.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    if sd == 0.0 {
        return Some(if current == mean { 1.0 } else { 0.0 });
    }
    Some(two_sided((current - mean) / sd))
}

/// Compares `current` with `baselines` (one earlier run, or the last N on the same branch and
/// spec): each figure against the median of its baseline values.
///
/// ```
/// use pit_report::compare::{compare, Change, Thresholds};
/// # fn report(run: &str, latency: f64) -> pit_report::Report {
/// #     serde_json::from_value(serde_json::json!({"schemaVersion":"1.0","name":"s","startTime":"2026-01-01T00:00:00Z","endTime":"2026-01-01T00:01:00Z","runId":run,
/// #         "scenarios":[{"name":"sc","streams":[{"name":"st","requirements":[],"observations":[{"name":"latency","type":"SCALAR","value":latency}],"outcome":"PASS"}]}]})).unwrap()
/// # }
/// let c = compare(&report("b", 130.0), &[report("a", 100.0)], &Thresholds::default());
/// assert_eq!(c.metrics[0].change, Change::Regression);
/// ```
pub fn compare(current: &Report, baselines: &[Report], thresholds: &Thresholds) -> Comparison {
    let mine: BTreeMap<String, Figure> = current.figures().into_iter().map(|f| (f.key.clone(), f)).collect();
    let mut theirs: BTreeMap<String, Vec<Figure>> = BTreeMap::new();
    for b in baselines {
        for f in b.figures() {
            theirs.entry(f.key.clone()).or_default().push(f);
        }
    }
    let mut keys: Vec<&String> = mine.keys().chain(theirs.keys()).collect();
    keys.sort();
    keys.dedup();
    let metrics = keys
        .into_iter()
        .map(|key| {
            let here = mine.get(key);
            let there = theirs.get(key);
            let any = here
                .or_else(|| there.and_then(|t| t.first()))
                .expect("the key came from one side");
            let threshold_pct = thresholds.threshold(any);
            let direction = thresholds.direction(any);
            let mut m = MetricComparison {
                key: key.clone(),
                current: here.map(|f| f.value),
                baseline: None,
                delta_pct: None,
                threshold_pct,
                direction,
                test: None,
                p_value: None,
                change: Change::Unchanged,
            };
            let (Some(here), Some(there)) = (here, there) else {
                m.change = if here.is_some() { Change::New } else { Change::Missing };
                if let Some(t) = there {
                    m.baseline = Some(median(&mut t.iter().map(|f| f.value).collect::<Vec<_>>()));
                }
                return m;
            };
            let mut values: Vec<f64> = there.iter().map(|f| f.value).collect();
            let base = median(&mut values);
            m.baseline = Some(base);
            let delta = if base == 0.0 {
                if here.value == 0.0 {
                    0.0
                } else {
                    f64::INFINITY.copysign(here.value)
                }
            } else {
                (here.value - base) / base.abs() * 100.0
            };
            m.delta_pct = Some(delta);
            let pooled: Vec<f64> = there.iter().filter_map(|f| f.samples.clone()).flatten().collect();
            if let (Some(s), false) = (&here.samples, pooled.is_empty()) {
                m.p_value = mann_whitney(s, &pooled);
                m.test = m.p_value.map(|_| "mann-whitney");
            }
            if m.test.is_none() {
                m.p_value = z_test(here.value, &values);
                m.test = m.p_value.map(|_| "z-score");
            }
            let significant = m.p_value.is_none_or(|p| p < thresholds.alpha);
            if delta.abs() <= threshold_pct || !significant {
                m.change = Change::Unchanged;
            } else {
                m.change = match (direction, delta > 0.0) {
                    (Direction::LowerIsBetter, true) | (Direction::HigherIsBetter, false) => Change::Regression,
                    (Direction::LowerIsBetter, false) | (Direction::HigherIsBetter, true) => Change::Improvement,
                    (Direction::Unknown, _) => Change::Changed,
                };
            }
            m
        })
        .collect();
    Comparison {
        run_id: current.run_id.clone(),
        baseline_runs: baselines.iter().filter_map(|b| b.run_id.clone()).collect(),
        metrics,
    }
}

/// `current` compared with its baseline among `earlier` (the last
/// [`crate::store::BASELINE_RUNS`] fair runs, default thresholds), as every stored report and
/// page is; `None` without earlier runs.
pub fn against_earlier(current: &Report, earlier: &[Report]) -> Option<Comparison> {
    let base: Vec<Report> = baseline_of(current, earlier, crate::store::BASELINE_RUNS)
        .into_iter()
        .cloned()
        .collect();
    (!base.is_empty()).then(|| compare(current, &base, &Thresholds::default()))
}

/// The reports among `history` that are a fair baseline for `current`: other runs on the same
/// branch with the same spec hash (where those are known), the last `n` of them.
pub fn baseline_of<'a>(current: &Report, history: &'a [Report], n: usize) -> Vec<&'a Report> {
    let same = |a: &Option<String>, b: &Option<String>| a.is_none() || b.is_none() || a == b;
    let mut picked: Vec<&Report> = history
        .iter()
        .filter(|r| r.run_id != current.run_id || r.run_id.is_none())
        .filter(|r| same(&r.branch, &current.branch) && same(&r.spec_hash, &current.spec_hash))
        .filter(|r| r.start_ms() <= current.start_ms())
        .collect();
    let skip = picked.len().saturating_sub(n);
    picked.drain(..skip);
    picked
}

/// Where a series changed level.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangePoint {
    /// The first run at the new level (an index into the series).
    pub index: usize,
    /// The mean before.
    pub before: f64,
    /// The mean after.
    pub after: f64,
}

/// Change points of `series` by binary segmentation: a split is kept where the two sides'
/// means differ by more than `min_pct` percent and by more than 4 pooled standard errors,
/// with at least 3 points on each side.
///
/// ```
/// let series = [10.0, 10.2, 9.9, 10.1, 10.0, 13.0, 13.1, 12.9, 13.2, 13.0];
/// let cps = pit_report::compare::change_points(&series, 5.0);
/// assert_eq!(cps.len(), 1);
/// assert_eq!(cps[0].index, 5);
/// ```
pub fn change_points(series: &[f64], min_pct: f64) -> Vec<ChangePoint> {
    let mut out = Vec::new();
    segment(series, 0, min_pct, &mut out);
    out.sort_by_key(|c| c.index);
    out
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn segment(xs: &[f64], offset: usize, min_pct: f64, out: &mut Vec<ChangePoint>) {
    const MIN: usize = 3;
    if xs.len() < 2 * MIN {
        return;
    }
    let mut best: Option<(usize, f64)> = None;
    for split in MIN..=xs.len() - MIN {
        let (l, r) = xs.split_at(split);
        let (ml, mr) = (mean(l), mean(r));
        let var = |s: &[f64], m: f64| s.iter().map(|x| (x - m).powi(2)).sum::<f64>();
        let pooled = ((var(l, ml) + var(r, mr)) / (xs.len() - 2) as f64).sqrt();
        let se = pooled * (1.0 / l.len() as f64 + 1.0 / r.len() as f64).sqrt();
        let score = if se == 0.0 {
            if ml == mr {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            (ml - mr).abs() / se
        };
        let pct = if ml == 0.0 {
            0.0
        } else {
            (mr - ml).abs() / ml.abs() * 100.0
        };
        if score > 4.0 && pct > min_pct && best.is_none_or(|(_, s)| score > s) {
            best = Some((split, score));
        }
    }
    if let Some((split, _)) = best {
        let (l, r) = xs.split_at(split);
        out.push(ChangePoint {
            index: offset + split,
            before: mean(l),
            after: mean(r),
        });
        segment(l, offset, min_pct, out);
        segment(r, offset + split, min_pct, out);
    }
}

/// Runs of one project and suite in order, with each figure as a series.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// The runs, oldest first.
    pub runs: Vec<RunPoint>,
    /// Each figure's value per run (`None` where a run lacks it).
    pub series: BTreeMap<String, Vec<Option<f64>>>,
    /// Each figure's change points.
    pub change_points: BTreeMap<String, Vec<ChangePoint>>,
}

/// One run in a [`History`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunPoint {
    /// The run.
    pub run_id: String,
    /// When it started (RFC 3339).
    pub start_time: String,
    /// Its verdict.
    pub verdict: crate::schema::Verdict,
    /// The commit it tested.
    pub git_commit: Option<String>,
}

/// The history of `reports` (sorted by start time here), with change points beyond `min_pct`.
pub fn history(reports: &[Report], min_pct: f64) -> History {
    let mut sorted: Vec<&Report> = reports.iter().collect();
    sorted.sort_by_key(|r| (r.start_ms(), r.run_id.clone()));
    let mut series: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    for (i, r) in sorted.iter().enumerate() {
        for f in r.figures() {
            let s = series.entry(f.key).or_insert_with(|| vec![None; sorted.len()]);
            s[i] = Some(f.value);
        }
    }
    let change_points = series
        .iter()
        .map(|(k, s)| {
            // Over the runs that have the figure, mapped back to run indexes.
            let present: Vec<(usize, f64)> = s.iter().enumerate().filter_map(|(i, v)| v.map(|v| (i, v))).collect();
            let values: Vec<f64> = present.iter().map(|(_, v)| *v).collect();
            let cps = change_points(&values, min_pct)
                .into_iter()
                .map(|c| ChangePoint {
                    index: present[c.index].0,
                    ..c
                })
                .collect();
            (k.clone(), cps)
        })
        .filter(|(_, c): &(String, Vec<ChangePoint>)| !c.is_empty())
        .collect();
    History {
        runs: sorted
            .iter()
            .map(|r| RunPoint {
                run_id: r.run_id.clone().unwrap_or_default(),
                start_time: r.start_time.clone(),
                verdict: r.verdict(),
                git_commit: r.git_commit.clone(),
            })
            .collect(),
        series,
        change_points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mann_whitney_separates_shifted_samples_and_not_equal_ones() {
        let a: Vec<f64> = (0..50).map(|i| 100.0 + f64::from(i % 10)).collect();
        let b: Vec<f64> = (0..50).map(|i| 130.0 + f64::from(i % 10)).collect();
        assert!(mann_whitney(&a, &b).unwrap() < 1e-6);
        let c: Vec<f64> = (0..50).map(|i| 100.0 + f64::from((i * 7) % 10)).collect();
        assert!(mann_whitney(&a, &c).unwrap() > 0.5);
        assert_eq!(mann_whitney(&a[..2], &b), None, "too few samples for a test");
    }

    #[test]
    fn directions_are_guessed_from_names() {
        assert_eq!(Direction::guess("latency", Some("p99")), Direction::LowerIsBetter);
        assert_eq!(Direction::guess("throughput", None), Direction::HigherIsBetter);
        assert_eq!(Direction::guess("error_rate", None), Direction::LowerIsBetter);
        assert_eq!(Direction::guess("widgets", None), Direction::Unknown);
    }

    #[test]
    fn a_flat_series_has_no_change_point_and_two_steps_have_two() {
        assert!(change_points(&[5.0; 20], 1.0).is_empty());
        let mut s = vec![10.0; 8];
        s.extend([20.0; 8]);
        s.extend([15.0; 8]);
        let idx: Vec<usize> = change_points(&s, 5.0).iter().map(|c| c.index).collect();
        assert_eq!(idx, vec![8, 16]);
    }
}
