//! `chart`: an SVG bar chart (requests/s, p99 and CPU per request, HTTP/1.1 and HTTP/2, per proxy) from the JSON lines compare.sh collects.
//!
//! Hand-written SVG: a few rectangles and labels need no plotting crate.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::Value;

#[derive(Args, Debug)]
pub(crate) struct ChartArgs {
    /// JSON lines: one object per run with `proxy`, `run` (`h1` or `h2`), `requests_per_s`,
    /// `p99_us` and optionally `cpu_us_each` (what compare.sh writes).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the SVG.
    #[arg(long)]
    pub out: PathBuf,
    /// A line under the heading (date, machine, versions).
    #[arg(long, default_value = "")]
    pub subtitle: String,
}

/// One measured run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Point {
    pub proxy: String,
    /// `h1` or `h2`.
    pub run: String,
    pub rate: Option<f64>,
    pub p99_us: Option<f64>,
    pub cpu_us: Option<f64>,
}

const RUNS: [(&str, &str, &str); 2] = [("h1", "HTTP/1.1", "#4e79a7"), ("h2", "HTTP/2", "#f28e2b")];

pub(crate) fn run(args: ChartArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("--input {}: cannot read", args.input.display()))?;
    let points = parse(&text)?;
    if points.is_empty() {
        bail!(
            "--input {}: no line with \"run\": \"h1\" or \"h2\"; expected compare.sh's results.json",
            args.input.display()
        );
    }
    let svg = svg(&points, &args.subtitle);
    std::fs::write(&args.out, svg)
        .with_context(|| format!("--out {}: cannot write", args.out.display()))?;
    println!("{}", args.out.display());
    Ok(())
}

/// The h1/h2 request runs in `text` (JSON lines; other lines and blank lines are skipped).
pub(crate) fn parse(text: &str) -> Result<Vec<Point>> {
    let mut points = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("line {}: not a JSON object", i + 1))?;
        let run = v.get("run").and_then(Value::as_str).unwrap_or_default();
        if !RUNS.iter().any(|(r, _, _)| *r == run) {
            continue;
        }
        let Some(proxy) = v.get("proxy").and_then(Value::as_str) else {
            bail!("line {}: no \"proxy\" field", i + 1);
        };
        let num = |k: &str| {
            v.get(k)
                .and_then(Value::as_f64)
                .filter(|x| x.is_finite() && *x >= 0.0)
        };
        points.push(Point {
            proxy: proxy.to_string(),
            run: run.to_string(),
            rate: num("requests_per_s"),
            p99_us: num("p99_us"),
            cpu_us: num("cpu_us_each"),
        });
    }
    Ok(points)
}

/// The smallest 1, 2 or 5 times a power of ten at or above `v` (an axis top).
pub(crate) fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v * (1.0 - 1e-12) {
            return m * p;
        }
    }
    10.0 * p
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt_value(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

const WIDTH: f64 = 760.0;
const PANEL_H: f64 = 230.0;
const TOP: f64 = 84.0;
const LEFT: f64 = 70.0;
const PLOT_H: f64 = 150.0;

/// The chart: one panel per metric that any point has, a group of bars per proxy.
pub(crate) fn svg(points: &[Point], subtitle: &str) -> String {
    let mut proxies: Vec<&str> = Vec::new();
    for p in points {
        if !proxies.contains(&p.proxy.as_str()) {
            proxies.push(&p.proxy);
        }
    }
    type Get = fn(&Point) -> Option<f64>;
    let metrics: [(&str, Get); 3] = [
        ("requests/s (higher is better)", |p| p.rate),
        ("p99 latency, µs (lower is better)", |p| p.p99_us),
        ("proxy CPU per request, µs (lower is better)", |p| p.cpu_us),
    ];
    let panels: Vec<&(&str, Get)> = metrics
        .iter()
        .filter(|(_, get)| points.iter().any(|p| get(p).is_some()))
        .collect();
    let height = TOP + PANEL_H * panels.len() as f64 + 10.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="22" font-size="16" font-weight="bold">certfront, nginx and HAProxy: keep-alive requests through the proxy</text>"#
    );
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="40" fill="#555">{}</text>"##,
        esc(subtitle)
    );
    // Legend.
    for (i, (_, label, color)) in RUNS.iter().enumerate() {
        let x = LEFT + 100.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="52" width="12" height="12" fill="{color}"/><text x="{}" y="63">{label}</text>"#,
            x + 16.0
        );
    }
    let group_w = (WIDTH - LEFT - 20.0) / proxies.len().max(1) as f64;
    let bar_w = (group_w * 0.3).min(60.0);
    for (k, (title, get)) in panels.iter().enumerate() {
        let y0 = TOP + PANEL_H * k as f64;
        let base = y0 + 24.0 + PLOT_H;
        let top = nice_ceiling(points.iter().filter_map(get).fold(0.0, f64::max));
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="{}" font-size="13" font-weight="bold">{}</text>"#,
            y0 + 14.0,
            esc(title)
        );
        for t in 0..=4 {
            let v = top * f64::from(t) / 4.0;
            let y = base - PLOT_H * f64::from(t) / 4.0;
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end" fill="#555">{}</text>"##,
                WIDTH - 20.0,
                LEFT - 6.0,
                y + 4.0,
                fmt_value(v)
            );
        }
        for (g, proxy) in proxies.iter().enumerate() {
            let gx = LEFT + group_w * g as f64;
            for (r, (run, label, color)) in RUNS.iter().enumerate() {
                let value = points
                    .iter()
                    .find(|p| p.proxy == *proxy && p.run == *run)
                    .and_then(get);
                let Some(v) = value else { continue };
                let h = PLOT_H * v / top;
                let x = gx + group_w / 2.0 - bar_w + bar_w * r as f64;
                let _ = writeln!(
                    s,
                    r#"<rect class="bar" x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{color}"><title>{} {label}: {}</title></rect>"#,
                    base - h,
                    bar_w - 2.0,
                    esc(proxy),
                    fmt_value(v)
                );
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                    x + bar_w / 2.0 - 1.0,
                    base - h - 3.0,
                    fmt_value(v)
                );
            }
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                gx + group_w / 2.0,
                base + 16.0,
                esc(proxy)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that every tag is closed in order and attributes are quoted; returns the
    /// element names in document order.
    fn elements(xml: &str) -> Vec<String> {
        let mut stack: Vec<String> = Vec::new();
        let mut seen = Vec::new();
        let mut rest = xml;
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            assert!(!text.contains('>'), "stray '>' in text {text:?}");
            // Every '&' starts one of the entities the writer emits.
            for (i, _) in text.match_indices('&') {
                let entity = &text[i..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;"]
                        .iter()
                        .any(|e| entity.starts_with(e)),
                    "bare '&' in text {text:?}"
                );
            }
            let close = rest[open..].find('>').expect("unclosed tag") + open;
            let tag = &rest[open + 1..close];
            assert!(!tag.contains('<'), "'<' inside a tag: {tag:?}");
            assert_eq!(
                tag.matches('"').count() % 2,
                0,
                "unbalanced quotes: {tag:?}"
            );
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
            } else {
                let name = tag
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_end_matches('/')
                    .to_string();
                seen.push(name.clone());
                if !tag.ends_with('/') {
                    stack.push(name);
                }
            }
            rest = &rest[close + 1..];
        }
        assert!(stack.is_empty(), "unclosed elements {stack:?}");
        assert!(rest.trim().is_empty());
        seen
    }

    fn point(proxy: &str, run: &str, rate: f64, p99: f64, cpu: Option<f64>) -> Point {
        Point {
            proxy: proxy.into(),
            run: run.into(),
            rate: Some(rate),
            p99_us: Some(p99),
            cpu_us: cpu,
        }
    }

    #[test]
    fn one_bar_per_proxy_run_and_metric_in_well_formed_svg() {
        let mut points = Vec::new();
        for (i, proxy) in ["nginx", "haproxy", "certfront <dev> & co"]
            .iter()
            .enumerate()
        {
            points.push(point(proxy, "h1", 50_000.0 + i as f64, 1200.0, Some(13.5)));
            points.push(point(proxy, "h2", 60_000.0, 9000.0, Some(10.0)));
        }
        let text = svg(&points, "2026-11-23, 2 cores \"quiet\"");
        let els = elements(&text);
        assert_eq!(els[0], "svg");
        assert_eq!(text.matches(r#"class="bar""#).count(), 3 * 3 * 2);
        assert!(text.contains("certfront &lt;dev&gt; &amp; co"));
        // Without CPU figures there is no CPU panel: 2 metrics × 3 proxies × 2 runs.
        for p in &mut points {
            p.cpu_us = None;
        }
        let text = svg(&points, "");
        elements(&text);
        assert_eq!(text.matches(r#"class="bar""#).count(), 2 * 3 * 2);
        assert!(!text.contains("CPU per request"));
    }

    #[test]
    fn bars_scale_to_a_nice_axis_top() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(10.0), 10.0);
        assert_eq!(nice_ceiling(11.0), 20.0);
        assert_eq!(nice_ceiling(72_573.0), 100_000.0);
        assert_eq!(nice_ceiling(13_184.0), 20_000.0);
        assert_eq!(nice_ceiling(0.3), 0.5);
        let points = vec![
            point("a", "h1", 50.0, 1.0, None),
            point("b", "h1", 100.0, 1.0, None),
        ];
        let text = svg(&points, "");
        // Axis top 100: the larger bar is the full plot height, the smaller half of it.
        assert!(
            text.contains(&format!(
                r##"height="{PLOT_H:.1}" fill="#4e79a7"><title>b HTTP/1.1: 100"##
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                r##"height="{:.1}" fill="#4e79a7"><title>a HTTP/1.1: 50.0"##,
                PLOT_H / 2.0
            )),
            "{text}"
        );
    }

    #[test]
    fn parse_keeps_request_runs_and_names_bad_lines() {
        let text = concat!(
            r#"{"proxy":"nginx","run":"h1","work":"requests HTTP/1.1","requests_per_s":56899.2,"p99_us":1422,"cpu_us_each":13.7}"#,
            "\n",
            "\n",
            r#"{"proxy":"nginx","run":"hs","handshakes_per_s":3363}"#,
            "\n",
            r#"{"proxy":"certfront","run":"h2","requests_per_s":54860,"p99_us":13184}"#,
            "\n",
        );
        let points = parse(text).unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(points[0], point("nginx", "h1", 56899.2, 1422.0, Some(13.7)));
        assert_eq!(points[1].cpu_us, None);
        let e = parse("{\"run\":\"h1\"}\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 1: no \"proxy\""), "{e:#}");
        let e = parse("not json\n").unwrap_err();
        assert!(
            format!("{e:#}").contains("line 1: not a JSON object"),
            "{e:#}"
        );
    }
}
