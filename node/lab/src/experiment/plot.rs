//! `--plot FILE.svg`: measured points with their 95 % bars and the theory curve, as a
//! hand-written SVG (a few dozen elements do not justify a plotting crate's build time).

use super::{Experiment, Report};
use anyhow::Context;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

const W: f64 = 640.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// One series: `(x, measured, [low, high], theory)` per point.
type Series = Vec<(f64, f64, [f64; 2], f64)>;

/// The series of a report: split by `q` for double-spend, one series otherwise.
fn series(experiment: &Experiment, report: &Report) -> Vec<(String, Series)> {
    let mut out: Vec<(String, Series)> = Vec::new();
    for p in &report.points {
        let x = p
            .params
            .get(experiment.varies)
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let label = p
            .params
            .get("q")
            .map(|q| format!("q = {q}"))
            .unwrap_or_else(|| "measured".into());
        let entry = (x, p.measured, p.ci95, p.reference);
        match out.iter_mut().find(|(l, _)| *l == label) {
            Some((_, s)) => s.push(entry),
            None => out.push((label, vec![entry])),
        }
    }
    for (_, s) in &mut out {
        s.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// Renders the report as an SVG document.
pub fn render(experiment: &Experiment, report: &Report) -> String {
    let all = series(experiment, report);
    let xs: Vec<f64> = all
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.0))
        .collect();
    let (xmin, xmax) = xs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(*x), b.max(*x))
        });
    let (xmin, xmax) = if xmin < xmax {
        (xmin, xmax)
    } else {
        (xmin - 1.0, xmin + 1.0)
    };
    let ymax = all
        .iter()
        .flat_map(|(_, s)| s.iter().flat_map(|p| [p.2[1], p.3, p.1]))
        .fold(0.0f64, f64::max)
        .max(0.01)
        * 1.1;
    let px = |x: f64| LEFT + (x - xmin) / (xmax - xmin) * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - y / ymax * (H - TOP - BOTTOM);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">cairn experiment {}: {} (points, 95 % bars) vs {} (dashed)</text>"#,
        W / 2.0,
        experiment.name,
        experiment.measures,
        experiment.theory
    );
    let (x0, y0, x1, y1) = (LEFT, H - BOTTOM, W - RIGHT, TOP);
    let _ = writeln!(
        svg,
        r#"<path d="M{x0} {y1} L{x0} {y0} L{x1} {y0}" stroke="black" fill="none"/>"#
    );
    for i in 0..=5 {
        let y = ymax * i as f64 / 5.0;
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end">{y:.3}</text><line x1="{x0}" x2="{x1}" y1="{2}" y2="{2}" stroke="#eee"/>"##,
            x0 - 6.0,
            py(y) + 4.0,
            py(y)
        );
        let x = xmin + (xmax - xmin) * i as f64 / 5.0;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            px(x),
            y0 + 18.0,
            trim(x)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (x0 + x1) / 2.0,
        H - 18.0,
        experiment.varies
    );
    for (i, (label, s)) in all.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let theory: Vec<String> = s
            .iter()
            .map(|p| format!("{:.1},{:.1}", px(p.0), py(p.3)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-dasharray="6 4"/>"#,
            theory.join(" ")
        );
        for (x, m, ci, _) in s {
            let _ = writeln!(
                svg,
                r#"<line x1="{0:.1}" x2="{0:.1}" y1="{1:.1}" y2="{2:.1}" stroke="{colour}"/><circle cx="{0:.1}" cy="{3:.1}" r="4" fill="{colour}" data-measured="{m}"/>"#,
                px(*x),
                py(ci[0]),
                py(ci[1]),
                py(*m)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" fill="{colour}">{label}</text>"#,
            x0 + 10.0,
            y1 + 16.0 * (i as f64 + 1.0)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Writes the plot of `report` to `path`.
pub fn write(path: &Path, experiment: &Experiment, report: &Report) -> anyhow::Result<()> {
    std::fs::write(path, render(experiment, report))
        .with_context(|| format!("writing the plot {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::super::{EXPERIMENTS, Point, params};
    use super::*;
    use serde_json::json;

    #[test]
    fn a_plot_has_one_dot_per_point_and_a_theory_line() {
        let point = |z: u32, m: f64| Point {
            params: params(&[("q", json!(0.1)), ("z", json!(z))]),
            measured: m,
            theory: json!({"nakamoto": 0.2, "rosenfeld": 0.2}),
            ci95: [m - 0.05, m + 0.05],
            reference: 0.2,
            replay: None,
            note: None,
        };
        let report = Report {
            experiment: "double-spend",
            seed: 1,
            method: String::new(),
            wall_secs: 1.0,
            points: vec![point(1, 0.2), point(2, 0.05)],
        };
        let e = EXPERIMENTS
            .iter()
            .find(|e| e.name == "double-spend")
            .unwrap();
        let svg = render(e, &report);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("q = 0.1"));
    }
}
