//! SVG charts of a report, drawn with plotters: one line per model and peer against the
//! number of connections, or for the chat matrix the offered chat rate (log scale).

use crate::report::{mode_name, Phase, Report};
use crate::Error;
use plotters::prelude::*;
use std::path::Path;

/// One line of a chart: a name and its (connections, value) points.
pub type Series = (String, Vec<(f64, f64)>);

/// Draw every chart into `dir` (the echo charts when the echo matrix ran, the chat charts
/// when the chat matrix ran); returns the file names written.
pub fn draw_all(report: &Report, dir: &Path) -> Result<Vec<String>, Error> {
    let mut written = Vec::new();
    if !report.targets.is_empty() {
        written.extend(draw_echo(report, dir)?);
    }
    written.extend(crate::chat::draw_charts(report, dir)?);
    Ok(written)
}

/// The echo matrix's charts.
fn draw_echo(report: &Report, dir: &Path) -> Result<Vec<String>, Error> {
    let payload = report.settings.payloads.first().copied().unwrap_or(64);
    let mut written = Vec::new();
    for &pipeline in &report.settings.pipelines {
        let name = if pipeline <= 1 {
            "msgs_per_sec.svg".to_string()
        } else {
            format!("msgs_per_sec_pipelined_{pipeline}.svg")
        };
        let series = matrix_series(report, payload, pipeline, |bench| {
            Some(bench.messages_per_sec)
        });
        line_chart(
            &dir.join(&name),
            &format!(
                "messages/s by connections ({}, {payload} B)",
                mode_name(pipeline)
            ),
            "messages per second",
            &series,
            Axis::Rate,
        )?;
        written.push(name);
    }
    let series = matrix_series(report, payload, 1, |bench| {
        bench.server.as_ref().map(|server| server.cpu_us_per_msg)
    });
    line_chart(
        &dir.join("cpu_per_msg.svg"),
        &format!("server CPU microseconds per message (ping-pong, {payload} B)"),
        "server CPU us per message",
        &series,
        Axis::Plain,
    )?;
    written.push("cpu_per_msg.svg".to_string());

    let series = memory_series(report);
    line_chart(
        &dir.join("memory_per_connection.svg"),
        "server memory per connection (RSS delta / connections held, C >= 100)",
        "KiB per connection",
        &series,
        Axis::Plain,
    )?;
    written.push("memory_per_connection.svg".to_string());

    if report.settings.capacity_steps.len() > 1 {
        line_chart(
            &dir.join("capacity.svg"),
            "capacity ramp: connections held at each step (the line ends where the ramp stopped)",
            "connections held",
            &capacity_series(report),
            Axis::Rate,
        )?;
        written.push("capacity.svg".to_string());
    }
    let idle = idle_series(report);
    if idle.iter().any(|(_, points)| !points.is_empty()) {
        line_chart(
            &dir.join("idle_cpu.svg"),
            "idle cost: server CPU-s per second, connections open and silent",
            "server CPU-s per second",
            &idle,
            Axis::Plain,
        )?;
        written.push("idle_cpu.svg".to_string());
    }
    Ok(written)
}

/// One series per target, in the report's order: the points `points` finds for the
/// target's name, sorted by x.
fn per_target(report: &Report, points: impl Fn(&str) -> Vec<(f64, f64)>) -> Vec<Series> {
    report
        .targets
        .iter()
        .map(|target| {
            let mut line = points(&target.name);
            line.sort_by(|a, b| a.0.total_cmp(&b.0));
            (target.name.clone(), line)
        })
        .collect()
}

/// Per target: (connections asked, connections held) at every capacity step that produced
/// a result, so each line climbs to its server's ceiling and stops there.
pub fn capacity_series(report: &Report) -> Vec<Series> {
    per_target(report, |name| {
        report
            .rows_of(name, Phase::Capacity)
            .filter_map(|row| {
                let bench = row.bench.as_ref()?;
                Some((row.connections as f64, bench.connections_held as f64))
            })
            .collect()
    })
}

/// Per target: (connections held, idle server CPU-s per second) at every capacity step
/// with an idle hold.
pub fn idle_series(report: &Report) -> Vec<Series> {
    per_target(report, |name| {
        report
            .rows_of(name, Phase::Capacity)
            .filter_map(|row| {
                let idle = row.bench.as_ref()?.idle.as_ref()?;
                (idle.connections > 0).then_some((idle.connections as f64, idle.server_cpu_per_sec))
            })
            .collect()
    })
}

/// Per target: the matrix rows of one payload and pipeline depth that produced a result.
pub fn matrix_series(
    report: &Report,
    payload: u64,
    pipeline: u64,
    value: impl Fn(&crate::BenchResult) -> Option<f64>,
) -> Vec<Series> {
    per_target(report, |name| {
        report
            .rows_of(name, Phase::Matrix)
            .filter(|row| row.payload == payload && row.pipeline == pipeline)
            .filter_map(|row| {
                let bench = row.bench.as_ref()?;
                Some((row.connections as f64, value(bench)?))
            })
            .collect()
    })
}

/// Per target: memory per connection in KiB at every count of 100 or more (any phase,
/// ping-pong), one point per count.
pub fn memory_series(report: &Report) -> Vec<Series> {
    let mut series = per_target(report, |name| {
        report
            .rows
            .iter()
            .filter(|row| row.target == name && row.pipeline <= 1)
            .filter_map(|row| {
                let held = row.bench.as_ref()?.connections_held;
                (held >= 100).then_some((held as f64, row.memory_per_connection_bytes()? / 1024.0))
            })
            .collect()
    });
    for (_, points) in &mut series {
        points.dedup_by(|a, b| a.0 == b.0);
    }
    series
}

/// How the y axis labels its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// Rates: 950, 12.3k, 1.23M.
    Rate,
    /// Small numbers: up to two decimals.
    Plain,
}

/// A line chart with a log-scale x axis of connections.
pub fn line_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    series: &[Series],
    axis: Axis,
) -> Result<(), Error> {
    line_chart_over(path, title, "concurrent connections", y_label, series, axis)
}

/// A line chart with a log-scale x axis described by `x_label`.
pub fn line_chart_over(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    axis: Axis,
) -> Result<(), Error> {
    draw(path, title, x_label, y_label, series, axis).map_err(|error| Error::Chart {
        path: path.to_path_buf(),
        message: error.to_string(),
    })
}

fn draw(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    axis: Axis,
) -> Result<(), Box<dyn std::error::Error>> {
    let points = || series.iter().flat_map(|(_, points)| points.iter());
    let x_min = points().map(|p| p.0).fold(f64::INFINITY, f64::min).max(1.0);
    let x_max = points().map(|p| p.0).fold(0.0, f64::max);
    let (x_min, x_max) = if x_max > x_min {
        (x_min, x_max * 1.2)
    } else {
        (1.0, (x_min * 10.0).max(10.0))
    };
    let y_max = points().map(|p| p.1).fold(0.0, f64::max);
    // Headroom above the highest point keeps the legend (upper right) off the lines.
    let y_max = if y_max > 0.0 { y_max * 1.4 } else { 1.0 };

    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d((x_min..x_max).log_scale(), 0.0..y_max)?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| match axis {
            Axis::Rate => crate::report::format_rate(*y),
            Axis::Plain => format!("{:.2}", y)
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string(),
        })
        .draw()?;
    for (index, (name, points)) in series.iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            points
                .iter()
                .map(|&point| Circle::new(point, 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}
