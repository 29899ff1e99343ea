//! Inline SVG charts for the HTML pages: no scripts, no external requests.

use std::fmt::Write as _;

use pit_core::sink::TimelineEntry;
use quick_xml::escape::escape;

const W: f64 = 640.0;

fn fmt_num(x: f64) -> String {
    if x.abs() >= 1000.0 || x == x.trunc() {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// Where `v` lies between `lo` and `hi`, from 0 to 1, for any finite values: halved first, so
/// that `hi - lo` cannot overflow to infinity (which gave `NaN` coordinates for extreme samples).
fn unit(v: f64, lo: f64, hi: f64) -> f64 {
    let (v, lo, hi) = (v / 2.0, lo / 2.0, hi / 2.0);
    let range = hi - lo;
    if range > 0.0 && v.is_finite() {
        ((v - lo) / range).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// The value a fraction `t` of the way from `lo` to `hi`, without overflow.
fn between(lo: f64, hi: f64, t: f64) -> f64 {
    lo * (1.0 - t) + hi * t
}

/// A bar per `(label, value)`: percentiles of a distribution.
pub fn bars(title: &str, items: &[(String, f64)]) -> String {
    let h = 180.0;
    let max = items
        .iter()
        .map(|(_, v)| *v)
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let bw = (W - 60.0) / items.len().max(1) as f64;
    let mut s = format!(
        r#"<svg class="chart" viewBox="0 0 {W} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = escape(title)
    );
    for (i, (label, v)) in items.iter().enumerate() {
        let bh = unit(*v, 0.0, max) * (h - 50.0);
        let x = 40.0 + i as f64 * bw;
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{bh:.1}" class="bar"><title>{l}: {n}</title></rect><text x="{cx:.1}" y="{ly:.1}" class="label">{l}</text><text x="{cx:.1}" y="{vy:.1}" class="value">{n}</text>"#,
            y = h - 25.0 - bh,
            w = bw * 0.7,
            cx = x + bw * 0.35,
            ly = h - 8.0,
            vy = h - 30.0 - bh,
            l = escape(label.as_str()),
            n = fmt_num(*v)
        );
    }
    s.push_str("</svg>");
    s
}

/// A histogram of raw samples, with p50 and p99 marked.
pub fn histogram(title: &str, samples: &[f64]) -> String {
    let h = 180.0;
    let mut xs: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if xs.is_empty() {
        return String::new();
    }
    xs.sort_by(f64::total_cmp);
    let (lo, hi) = (xs[0], xs[xs.len() - 1]);
    let bins = 40usize;
    let mut counts = vec![0usize; bins];
    for x in &xs {
        let b = ((unit(*x, lo, hi) * bins as f64) as usize).min(bins - 1);
        counts[b] += 1;
    }
    let max = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let bw = (W - 60.0) / bins as f64;
    let mut s = format!(
        r#"<svg class="chart" viewBox="0 0 {W} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = escape(title)
    );
    for (i, c) in counts.iter().enumerate() {
        let bh = (*c as f64 / max) * (h - 50.0);
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{bh:.1}" class="bar"><title>{a}–{b}: {c}</title></rect>"#,
            x = 40.0 + i as f64 * bw,
            y = h - 25.0 - bh,
            w = bw * 0.9,
            a = fmt_num(between(lo, hi, i as f64 / bins as f64)),
            b = fmt_num(between(lo, hi, (i + 1) as f64 / bins as f64)),
        );
    }
    for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
        let v = crate::schema::quantile(&xs, q);
        let x = 40.0 + unit(v, lo, hi) * (W - 60.0);
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" x2="{x:.1}" y1="10" y2="{y2}" class="marker"/><text x="{x:.1}" y="10" class="value">{name} {n}</text>"#,
            y2 = h - 25.0,
            n = fmt_num(v)
        );
    }
    let _ = write!(
        s,
        r#"<text x="40" y="{y}" class="label">{a}</text><text x="{r}" y="{y}" class="label">{b}</text></svg>"#,
        y = h - 8.0,
        r = W - 20.0,
        a = fmt_num(lo),
        b = fmt_num(hi)
    );
    s
}

/// The run's steps as a Gantt chart, a row per step.
pub fn gantt(entries: &[TimelineEntry]) -> String {
    if entries.is_empty() {
        return String::new();
    }
    let start = entries.iter().map(|e| e.start_ms).min().unwrap_or(0);
    let end = entries.iter().map(|e| e.end_ms).max().unwrap_or(start).max(start + 1);
    let span = (end - start) as f64;
    let row = 18.0;
    let left = 200.0;
    let h = row * entries.len() as f64 + 30.0;
    let mut s = format!(
        r#"<svg class="chart gantt" viewBox="0 0 {W} {h}" role="img" aria-label="timeline"><title>The run's timeline</title>"#
    );
    for (i, e) in entries.iter().enumerate() {
        let y = 5.0 + i as f64 * row;
        let x = left + (e.start_ms - start) as f64 / span * (W - left - 10.0);
        let w = ((e.end_ms.saturating_sub(e.start_ms)) as f64 / span * (W - left - 10.0)).max(1.5);
        let label = match &e.component {
            Some(c) => format!("{} {c}", e.step),
            None => e.step.clone(),
        };
        let detail = e.detail.as_deref().unwrap_or("");
        let _ = write!(
            s,
            r#"<text x="{tx}" y="{ty:.1}" class="label" text-anchor="end">{l}</text><rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{bh}" class="step {o}"><title>{l}: {ms} ms, {o} {d}</title></rect>"#,
            tx = left - 6.0,
            ty = y + row * 0.7,
            bh = row - 4.0,
            l = escape(label.as_str()),
            o = escape(e.outcome.as_str()),
            d = escape(detail),
            ms = e.end_ms.saturating_sub(e.start_ms),
        );
    }
    let _ = write!(
        s,
        r#"<text x="{left}" y="{y}" class="label">0 s</text><text x="{r}" y="{y}" class="label" text-anchor="end">{total:.1} s</text></svg>"#,
        y = h - 6.0,
        r = W - 10.0,
        total = span / 1000.0
    );
    s
}

/// A metric over runs, with change points marked.
pub fn trend(title: &str, values: &[Option<f64>], change_points: &[usize]) -> String {
    let h = 120.0;
    let present: Vec<(usize, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.filter(|v| v.is_finite()).map(|v| (i, v)))
        .collect();
    if present.is_empty() {
        return String::new();
    }
    let lo = present.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = present.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let n = values.len().max(2) as f64 - 1.0;
    let px = |i: usize| 40.0 + i as f64 / n * (W - 60.0);
    let py = |v: f64| 10.0 + (1.0 - unit(v, lo, hi)) * (h - 35.0);
    let points: String = present
        .iter()
        .map(|(i, v)| format!("{:.1},{:.1}", px(*i), py(*v)))
        .collect::<Vec<_>>()
        .join(" ");
    let mut s = format!(
        r#"<svg class="chart trend" viewBox="0 0 {W} {h}" role="img" aria-label="{t}"><title>{t}</title><polyline points="{points}" class="line"/>"#,
        t = escape(title)
    );
    for c in change_points {
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" x2="{x:.1}" y1="5" y2="{y2}" class="marker"><title>change point</title></line>"#,
            x = px(*c),
            y2 = h - 25.0
        );
    }
    let _ = write!(
        s,
        r#"<text x="4" y="16" class="label">{hi}</text><text x="4" y="{ly}" class="label">{lo}</text><text x="40" y="{by}" class="label">{n} runs</text></svg>"#,
        hi = fmt_num(hi),
        lo = fmt_num(lo),
        ly = h - 25.0,
        by = h - 6.0,
        n = values.len()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every number in an attribute of `svg`.
    fn coordinates(svg: &str) -> Vec<String> {
        svg.split('"')
            .skip(1)
            .step_by(2)
            .flat_map(|v| v.split([' ', ',']))
            .filter(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || "-+.eEinfaNI".contains(c)))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn extreme_samples_draw_finite_coordinates() {
        // Issue 13: samples near f64's limits drew `NaN` coordinates.
        let extreme = [f64::MAX, -f64::MAX, 1.0, f64::MIN_POSITIVE, f64::INFINITY, f64::NAN];
        let charts = [
            histogram("h", &extreme),
            trend("t", &extreme.iter().map(|v| Some(*v)).collect::<Vec<_>>(), &[1]),
            bars("b", &extreme.iter().map(|v| ("x".to_owned(), *v)).collect::<Vec<_>>()),
        ];
        for svg in &charts {
            assert!(!svg.is_empty());
            for c in coordinates(svg) {
                let v: f64 = c.parse().unwrap_or(0.0);
                assert!(
                    v.is_finite() && !c.contains("NaN") && !c.contains("inf"),
                    "{c} in {svg}"
                );
            }
        }
    }
}
