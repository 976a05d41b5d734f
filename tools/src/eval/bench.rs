//! Pure pieces of `pddflow-bench`: timing statistics, memory readings from `/proc/self/status`,
//! the RSS trend of a long run, and Markdown tables.

use std::fmt::Write as _;
use std::time::Duration;

/// Statistics of repeated timings, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timings {
    pub n: usize,
    pub mean_ms: f64,
    pub median_ms: f64,
    pub min_ms: f64,
}

impl Timings {
    pub fn of(samples: &[Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        let median = if n % 2 == 1 {
            ms[n / 2]
        } else {
            (ms[n / 2 - 1] + ms[n / 2]) / 2.0
        };
        Some(Self {
            n,
            mean_ms: ms.iter().sum::<f64>() / n as f64,
            median_ms: median,
            min_ms: ms[0],
        })
    }
}

/// A `VmXXX:   1234 kB` field of `/proc/<pid>/status`, in kB.
pub fn status_kb(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// This process's (current RSS, peak RSS) in kB, from `/proc/self/status` (Linux).
pub fn rss_kb() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    Some((status_kb(&s, "VmRSS")?, status_kb(&s, "VmHWM")?))
}

/// How the resident set evolved over a long run: samples of (frame, kB).
#[derive(Clone, Debug, PartialEq)]
pub struct RssTrend {
    /// RSS at the first sample after the warm-up fraction, kB.
    pub start_kb: u64,
    pub end_kb: u64,
    pub max_kb: u64,
    /// Least-squares slope after the warm-up, kB per 1000 frames.
    pub slope_kb_per_1000: f64,
    /// Whether growth after the warm-up stays under the tolerance.
    pub flat: bool,
}

/// Trend of `samples` (frame, kB) ignoring the first `warmup` fraction of frames. Flat when the
/// RSS grows by less than `tolerance_kb` from the first to the last sample after the warm-up
/// and the slope would add less than that over the run.
pub fn rss_trend(samples: &[(u64, u64)], warmup: f64, tolerance_kb: u64) -> Option<RssTrend> {
    let last_frame = samples.last()?.0;
    let after: Vec<(u64, u64)> = samples
        .iter()
        .copied()
        .filter(|(f, _)| *f as f64 >= warmup * last_frame as f64)
        .collect();
    if after.len() < 2 {
        return None;
    }
    let n = after.len() as f64;
    let mx = after.iter().map(|p| p.0 as f64).sum::<f64>() / n;
    let my = after.iter().map(|p| p.1 as f64).sum::<f64>() / n;
    let sxx: f64 = after.iter().map(|p| (p.0 as f64 - mx).powi(2)).sum();
    let sxy: f64 = after
        .iter()
        .map(|p| (p.0 as f64 - mx) * (p.1 as f64 - my))
        .sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let (start, end) = (after[0].1, after[after.len() - 1].1);
    let span = (after[after.len() - 1].0 - after[0].0) as f64;
    let flat = end.saturating_sub(start) < tolerance_kb && slope * span < tolerance_kb as f64;
    Some(RssTrend {
        start_kb: start,
        end_kb: end,
        max_kb: after.iter().map(|p| p.1).max().unwrap_or(0),
        slope_kb_per_1000: slope * 1000.0,
        flat,
    })
}

/// A Markdown table.
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "| {} |", header.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(header.len()));
    for r in rows {
        let _ = writeln!(md, "| {} |", r.join(" | "));
    }
    md
}

/// The same table as aligned plain text for the terminal.
pub fn text_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// `WIDTHxHEIGHT`.
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("size {s:?} is not WIDTHxHEIGHT"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| format!("size {s:?} is not WIDTHxHEIGHT with positive numbers"))
    };
    Ok((parse(w)?, parse(h)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_statistics() {
        let d = |ms: u64| Duration::from_millis(ms);
        let t = Timings::of(&[d(4), d(1), d(3), d(2)]).unwrap();
        assert_eq!((t.n, t.mean_ms, t.median_ms, t.min_ms), (4, 2.5, 2.5, 1.0));
        assert_eq!(Timings::of(&[d(5), d(1), d(9)]).unwrap().median_ms, 5.0);
        assert!(Timings::of(&[]).is_none());
    }

    #[test]
    fn reads_proc_status_fields() {
        let s = "Name:\tx\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kb(s, "VmHWM"), Some(20480));
        assert_eq!(status_kb(s, "VmRSS"), Some(10240));
        assert_eq!(status_kb(s, "VmSwap"), None);
        assert!(rss_kb().is_some_and(|(rss, hwm)| rss > 0 && hwm >= rss));
    }

    #[test]
    fn flat_and_growing_rss() {
        let flat: Vec<(u64, u64)> = (0..=10).map(|i| (i * 100, 50_000 + (i % 2) * 10)).collect();
        let t = rss_trend(&flat, 0.1, 1024).unwrap();
        assert!(t.flat, "{t:?}");
        assert_eq!(t.start_kb, 50_010);
        let leak: Vec<(u64, u64)> = (0..=10).map(|i| (i * 100, 50_000 + i * 500)).collect();
        let t = rss_trend(&leak, 0.1, 1024).unwrap();
        assert!(!t.flat);
        assert!((t.slope_kb_per_1000 - 5000.0).abs() < 1e-6, "{t:?}");
        assert!(rss_trend(&[(0, 1)], 0.1, 1).is_none());
    }

    #[test]
    fn tables_and_sizes() {
        let md = markdown_table(&["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(md, "| a | b |\n|---|---|\n| 1 | 2 |\n");
        let txt = text_table(&["name", "v"], &[vec!["x".into(), "10".into()]]);
        assert_eq!(txt, "name   v\n   x  10\n");
        assert_eq!(parse_size("640x480"), Ok((640, 480)));
        assert!(parse_size("640").is_err() && parse_size("0x4").is_err());
    }
}
