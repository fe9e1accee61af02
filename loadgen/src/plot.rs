//! `--plot FILE.svg`: the latency percentile curve per command (x: percentile on the usual
//! "number of nines" scale) above the throughput over time.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

use crate::stats::Report;

const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Percentile `p` (0..1) as "nines": 0.9 -> 1, 0.99 -> 2, 0.999 -> 3.
fn nines(p: f64) -> f64 {
    -(1.0 - p).max(1e-9).log10()
}

pub fn write_svg(report: &Report, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1000, 900)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(560);
    let max_nines = 5.0;
    let y_max_ms = report
        .totals
        .commands
        .values()
        .map(|h| h.max() as f64 / 1e3)
        .fold(0.1f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!("{} latency by percentile", report.mode),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..max_nines + 0.05, 0f64..y_max_ms)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_labels(6)
        .x_label_formatter(&|x| {
            let p = format!("{:.4}", 100.0 * (1.0 - 10f64.powf(-x)));
            format!("{}%", p.trim_end_matches('0').trim_end_matches('.'))
        })
        .draw()?;
    for (i, (name, h)) in report.totals.commands.iter().enumerate() {
        if h.is_empty() {
            continue;
        }
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, f64)> = (0..=500)
            .map(|k| {
                let x = max_nines * f64::from(k) / 500.0;
                let q = (1.0 - 10f64.powf(-x)).min(1.0);
                (x, h.value_at_quantile(q) as f64 / 1e3)
            })
            .filter(|(x, _)| *x <= nines(1.0 - 1.0 / h.len() as f64).max(0.5))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let t_max = report.timeline.last().map_or(1.0, |s| s.t_s).max(1.0);
    let ops_max = report
        .timeline
        .iter()
        .map(|s| s.ops_per_s)
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&bottom)
        .caption("throughput over time", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..t_max, 0f64..ops_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("ops/s")
        .draw()?;
    chart.draw_series(LineSeries::new(
        report.timeline.iter().map(|s| (s.t_s, s.ops_per_s)),
        COLORS[0].stroke_width(2),
    ))?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Sample, Snapshot};

    #[test]
    fn writes_an_svg() {
        let mut totals = Snapshot::default();
        for us in 1..2000 {
            totals.record("noop", us);
            totals.record("fetch_body", us * 3);
        }
        let report = Report {
            mode: "imap".into(),
            elapsed_s: 2.0,
            totals,
            timeline: vec![
                Sample {
                    t_s: 1.0,
                    ops_per_s: 1000.0,
                    errors: 0,
                    p99_us: 100,
                },
                Sample {
                    t_s: 2.0,
                    ops_per_s: 1200.0,
                    errors: 0,
                    p99_us: 120,
                },
            ],
            abandoned: 0,
            extra: serde_json::Map::new(),
        };
        let dir = std::env::temp_dir().join(format!("loadgen-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("p.svg");
        write_svg(&report, &path).expect("plot");
        let svg = std::fs::read_to_string(&path).expect("svg");
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("fetch_body"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
