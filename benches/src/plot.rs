//! SVG plots of benchmark results with `plotters` (SVG backend, no system fonts needed):
//! throughput against frame size and latency CDFs, one line per system.
//!
//! Owns the two chart layouts ([`throughput_vs_size`], [`latency_cdf`]) and turning raw latency
//! samples into CDF points ([`cdf`]). Guarantees: every chart carries a title and a subtitle line
//! with the context the numbers depend on (frame size, burst, cores and their roles, as the
//! caller words it), labelled axes with units, and a legend naming every series; the file is
//! written completely or an error is returned (series must be non-empty and finite).

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use plotters::prelude::*;

/// One system's throughput: (name, [(frame length in bytes, Mpps)]).
pub type SizeSeries = (String, Vec<(usize, f64)>);

/// One system's latency CDF: (name, [(latency in ns, cumulative fraction 0..=1)]).
pub type CdfSeries = (String, Vec<(f64, f64)>);

const W: u32 = 960;
const H: u32 = 600;

fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0x8c, 0x56, 0x4b),
        RGBColor(0xe3, 0x77, 0xc2),
        RGBColor(0x7f, 0x7f, 0x7f),
    ];
    C[i % C.len()]
}

fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting: {e:?}")
}

/// "850 ns", "12 µs", "3.5 ms" for an axis tick.
fn ns_label(ns: f64) -> String {
    let (v, unit) = match ns {
        x if x >= 1e9 => (x / 1e9, "s"),
        x if x >= 1e6 => (x / 1e6, "ms"),
        x if x >= 1e3 => (x / 1e3, "µs"),
        x => (x, "ns"),
    };
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// Splits the canvas into a two-line header (title, subtitle) and the plot area below.
fn header<'a>(
    root: &DrawingArea<SVGBackend<'a>, plotters::coord::Shift>,
    title: &str,
    subtitle: &str,
) -> Result<DrawingArea<SVGBackend<'a>, plotters::coord::Shift>> {
    root.fill(&WHITE).map_err(draw_err)?;
    let (top, body) = root.split_vertically(64);
    top.draw(&Text::new(title.to_string(), (16, 8), ("sans-serif", 24).into_font())).map_err(draw_err)?;
    top.draw(&Text::new(subtitle.to_string(), (16, 38), ("sans-serif", 16).into_font().color(&RGBColor(80, 80, 80))))
        .map_err(draw_err)?;
    Ok(body)
}

fn check<T>(series: &[(String, Vec<T>)], finite: impl Fn(&T) -> bool) -> Result<()> {
    if series.is_empty() || series.iter().all(|(_, v)| v.is_empty()) {
        bail!("nothing to plot");
    }
    for (name, v) in series {
        if !v.iter().all(&finite) {
            bail!("series {name:?} has non-finite points");
        }
    }
    Ok(())
}

/// Throughput (Mpps, y) against frame size on the wire (bytes with FCS, x; IMIX at its mean), one line with markers per
/// system, written as SVG to `path`. `subtitle` carries the context (burst, cores, mode, …).
pub fn throughput_vs_size(path: &Path, title: &str, subtitle: &str, series: &[SizeSeries]) -> Result<()> {
    check(series, |p| p.1.is_finite())?;
    let pts = series.iter().flat_map(|(_, v)| v.iter());
    let (xmin, xmax) = pts.clone().fold((usize::MAX, 0), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let ymax = pts.map(|p| p.1).fold(0.0f64, f64::max);
    let (x0, x1) = (xmin as f64, if xmax > xmin { xmax as f64 } else { xmin as f64 + 1.0 });
    let pad = (x1 - x0) * 0.04;
    let root = SVGBackend::new(path, (W, H)).into_drawing_area();
    let body = header(&root, title, subtitle)?;
    let mut chart = ChartBuilder::on(&body)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d((x0 - pad)..(x1 + pad), 0.0..(ymax * 1.15).max(1e-3))
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("frame size on the wire (bytes, with FCS; IMIX at its mean)")
        .y_desc("throughput (Mpps)")
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(draw_err)?;
    for (i, (name, v)) in series.iter().enumerate() {
        let c = color(i);
        let mut v = v.clone();
        v.sort_by_key(|p| p.0);
        let xy: Vec<(f64, f64)> = v.iter().map(|&(x, y)| (x as f64, y)).collect();
        chart
            .draw_series(LineSeries::new(xy.clone(), c.stroke_width(2)))
            .map_err(draw_err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(xy.into_iter().map(|p| Circle::new(p, 4, c.filled()))).map_err(draw_err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(draw_err)?;
    root.present().map_err(draw_err)?;
    Ok(())
}

/// Latency CDFs: cumulative fraction (y, 0..1) against latency in ns on a logarithmic x axis,
/// one line per system, written as SVG to `path`. Latencies must be > 0.
pub fn latency_cdf(path: &Path, title: &str, subtitle: &str, series: &[CdfSeries]) -> Result<()> {
    check(series, |p| p.0.is_finite() && p.1.is_finite() && p.0 > 0.0)?;
    let pts = series.iter().flat_map(|(_, v)| v.iter());
    let (xmin, xmax) = pts.fold((f64::INFINITY, 0.0f64), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (x0, x1) = (xmin / 1.5, if xmax > xmin { xmax * 1.5 } else { xmin * 10.0 });
    let root = SVGBackend::new(path, (W, H)).into_drawing_area();
    let body = header(&root, title, subtitle)?;
    let mut chart = ChartBuilder::on(&body)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d((x0..x1).log_scale(), 0.0..1.02)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|x| ns_label(*x))
        .x_desc("latency (log scale)")
        .y_desc("cumulative fraction of packets")
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(draw_err)?;
    for (i, (name, v)) in series.iter().enumerate() {
        let c = color(i);
        let mut v = v.clone();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(v, c.stroke_width(2)))
            .map_err(draw_err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(draw_err)?;
    root.present().map_err(draw_err)?;
    Ok(())
}

/// Empirical CDF of latency samples (ns): sorted values with their cumulative fraction, thinned
/// to at most `max_points` points (the largest sample is always kept).
pub fn cdf(samples_ns: &[f64], max_points: usize) -> Vec<(f64, f64)> {
    let mut s: Vec<f64> = samples_ns.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 || max_points == 0 {
        return Vec::new();
    }
    let step = n.div_ceil(max_points).max(1);
    let mut out: Vec<(f64, f64)> =
        (0..n).filter(|i| (i + 1) % step == 0).map(|i| (s[i], (i + 1) as f64 / n as f64)).collect();
    if out.last().map(|p| p.1) != Some(1.0) {
        out.push((s[n - 1], 1.0));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("xskd-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn writes_both_plots_with_series_names() {
        let d = tempdir();
        let sizes = vec![
            ("xskd relay io".to_string(), vec![(60, 0.71), (512, 0.68), (1514, 0.61)]),
            ("dpdk-testpmd io".to_string(), vec![(1514, 0.60), (60, 0.67)]),
            ("kernel forwarding".to_string(), vec![(60, 0.55), (1514, 0.37)]),
        ];
        let p1 = d.join("tput.svg");
        throughput_vs_size(&p1, "Forwarding throughput vs frame size", "burst 64, gen CPU0, fwd CPU1", &sizes).unwrap();
        let svg = std::fs::read_to_string(&p1).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..60.min(svg.len())]);
        for (n, _) in &sizes {
            assert!(svg.contains(n.as_str()), "missing {n}");
        }
        assert!(svg.contains("burst 64, gen CPU0, fwd CPU1"));
        assert!(svg.contains("frame size on the wire (bytes, with FCS; IMIX at its mean)"));

        let lat_a: Vec<f64> = (1..=1000).map(|i| 2_000.0 + i as f64 * 10.0).collect();
        let lat_b: Vec<f64> = (1..=500).map(|i| 20_000.0 * (1.0 + i as f64 / 100.0)).collect();
        let series = vec![("xskd".to_string(), cdf(&lat_a, 200)), ("testpmd".to_string(), cdf(&lat_b, 200))];
        let p2 = d.join("lat.svg");
        latency_cdf(&p2, "Latency CDF", "60 B frames, 0.5 Mpps offered, burst 32", &series).unwrap();
        let svg = std::fs::read_to_string(&p2).unwrap();
        for n in ["xskd", "testpmd", "60 B frames, 0.5 Mpps offered, burst 32", "latency (log scale)"] {
            assert!(svg.contains(n), "missing {n}");
        }
        assert!(latency_cdf(&d.join("x.svg"), "t", "s", &[]).is_err());
        assert!(latency_cdf(&d.join("x.svg"), "t", "s", &[("z".into(), vec![(0.0, 1.0)])]).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn tick_labels() {
        assert_eq!(ns_label(850.0), "850 ns");
        assert_eq!(ns_label(10_000.0), "10 µs");
        assert_eq!(ns_label(3_500_000.0), "3.5 ms");
        assert_eq!(ns_label(2e9), "2 s");
    }

    #[test]
    fn cdf_points() {
        let c = cdf(&[3.0, 1.0, 2.0, 4.0], 10);
        assert_eq!(c, vec![(1.0, 0.25), (2.0, 0.5), (3.0, 0.75), (4.0, 1.0)]);
        let c = cdf(&(1..=1000).map(f64::from).collect::<Vec<_>>(), 100);
        assert!(c.len() <= 101);
        assert_eq!(c.last(), Some(&(1000.0, 1.0)));
        assert!(cdf(&[], 10).is_empty());
    }
}
