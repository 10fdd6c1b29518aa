//! The dashboard's chart: events per domain per UTC hour over the last 24 hours, as an
//! inline SVG of stacked bars (no script, no external asset). Every bar segment carries
//! `data-domain`, `data-hour` and `data-count`, and a `<title>` tooltip.

use crate::data::VolumeRow;
use crate::html::escape;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Hours shown (the current hour and the 23 before it).
pub const HOURS: usize = 24;

/// Domains in legend order with their colours; events of unknown types go to `other`.
pub const DOMAINS: [(&str, &str); 4] = [
    ("expense", "#4e79a7"),
    ("asset", "#f28e2b"),
    ("finance", "#59a14f"),
    ("other", "#9c755f"),
];

/// Counts per (hour slot 0..24, oldest first) and domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Start of the first (oldest) hour, Unix seconds.
    pub first_hour: i64,
    /// `slots[h][domain index]`.
    pub slots: Vec<[i64; 4]>,
}

impl Volume {
    /// Buckets rows by hour (relative to `hour_now`, the current hour's start) and domain;
    /// rows outside the 24 h window are ignored.
    pub fn from_rows(hour_now: i64, rows: &[VolumeRow]) -> Self {
        let first_hour = hour_now - (HOURS as i64 - 1) * 3600;
        let mut slots = vec![[0i64; 4]; HOURS];
        for r in rows {
            let offset = r.hour - first_hour;
            if offset < 0 || offset % 3600 != 0 || offset / 3600 >= HOURS as i64 {
                continue;
            }
            let domain = ipai_core::taxonomy::domain_of(&r.event_type).map_or("other", |d| d.name);
            let di = DOMAINS.iter().position(|(d, _)| *d == domain).unwrap_or(3);
            slots[(offset / 3600) as usize][di] += r.count;
        }
        Self { first_hour, slots }
    }

    /// Total events per domain over the window.
    pub fn totals(&self) -> BTreeMap<&'static str, i64> {
        let mut t = BTreeMap::new();
        for (i, (d, _)) in DOMAINS.iter().enumerate() {
            t.insert(*d, self.slots.iter().map(|s| s[i]).sum());
        }
        t
    }

    /// The largest hourly total.
    pub fn peak(&self) -> i64 {
        self.slots
            .iter()
            .map(|s| s.iter().sum::<i64>())
            .max()
            .unwrap_or(0)
    }
}

/// `HH:00` of a Unix time, in UTC.
pub fn hour_label(unix: i64) -> String {
    format!("{:02}:00", unix.rem_euclid(86_400) / 3600)
}

/// An ISO 8601 UTC hour (`2026-11-26T14:00Z`) of a Unix time.
pub fn iso_hour(unix: i64) -> String {
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let days = unix.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:00Z",
        unix.rem_euclid(86_400) / 3600
    )
}

/// A "nice" axis maximum ≥ `peak` (1, 2, 5 × 10^n) and its tick step.
pub fn axis(peak: i64) -> (i64, i64) {
    let peak = peak.max(1);
    let mut step = 1i64;
    loop {
        for m in [1, 2, 5] {
            let s = step * m;
            if s * 4 >= peak {
                let max = ((peak + s - 1) / s) * s;
                return (max, s);
            }
        }
        step *= 10;
    }
}

const W: f64 = 960.0;
const H: f64 = 280.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 56.0;

/// The chart as an `<svg>` element.
pub fn render(volume: &Volume) -> String {
    let mut s = String::new();
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let (max, step) = axis(volume.peak());
    let slot_w = plot_w / HOURS as f64;
    let bar_w = (slot_w * 0.72).max(1.0);
    let y_of = |v: i64| TOP + plot_h - plot_h * (v as f64) / (max as f64);
    let _ = write!(
        s,
        "<svg id=\"volume-chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" \
         width=\"100%\" role=\"img\" aria-labelledby=\"volume-chart-title\" \
         data-first-hour=\"{}\" data-total=\"{}\">\
         <title id=\"volume-chart-title\">Events per domain per hour (UTC), last 24 hours</title>",
        iso_hour(volume.first_hour),
        volume.totals().values().sum::<i64>()
    );
    // Grid and y axis labels.
    let mut v = 0;
    while v <= max {
        let y = y_of(v);
        let _ = write!(
            s,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\" fill=\"#555\">{v}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
        v += step;
    }
    // Bars.
    for (h, slot) in volume.slots.iter().enumerate() {
        let hour = volume.first_hour + h as i64 * 3600;
        let x = LEFT + h as f64 * slot_w + (slot_w - bar_w) / 2.0;
        let mut base = 0i64;
        for (di, (domain, colour)) in DOMAINS.iter().enumerate() {
            let n = slot[di];
            if n == 0 {
                continue;
            }
            let (y0, y1) = (y_of(base), y_of(base + n));
            let _ = write!(
                s,
                "<rect class=\"bar\" data-domain=\"{domain}\" data-hour=\"{}\" data-count=\"{n}\" \
                 x=\"{x:.1}\" y=\"{y1:.1}\" width=\"{bar_w:.1}\" height=\"{:.1}\" fill=\"{colour}\">\
                 <title>{domain} {} UTC: {n} event{}</title></rect>",
                iso_hour(hour),
                (y0 - y1).max(0.5),
                hour_label(hour),
                if n == 1 { "" } else { "s" }
            );
            base += n;
        }
        if h % 3 == 0 || h == HOURS - 1 {
            let _ = write!(
                s,
                "<text class=\"xlabel\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#555\">{}</text>",
                x + bar_w / 2.0,
                TOP + plot_h + 16.0,
                hour_label(hour)
            );
        }
    }
    let _ = write!(
        s,
        "<line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#888\"/>",
        TOP + plot_h,
        W - RIGHT,
        TOP + plot_h
    );
    // Legend with totals.
    let totals = volume.totals();
    let mut lx = LEFT;
    for (domain, colour) in DOMAINS {
        let n = totals.get(domain).copied().unwrap_or(0);
        let label = format!("{domain} ({n})");
        let _ = write!(
            s,
            "<g class=\"legend\" data-domain=\"{domain}\" data-total=\"{n}\">\
             <rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"#222\">{}</text></g>",
            H - 22.0,
            lx + 16.0,
            H - 12.0,
            escape(&label)
        );
        lx += 28.0 + 8.0 * label.len() as f64;
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_600_800; // an hour start

    fn row(hours_ago: i64, t: &str, n: i64) -> VolumeRow {
        VolumeRow {
            hour: NOW - hours_ago * 3600,
            event_type: t.into(),
            count: n,
        }
    }

    #[test]
    fn rows_are_bucketed_by_hour_and_domain_within_the_window() {
        let v = Volume::from_rows(
            NOW,
            &[
                row(0, "expense.submitted", 3),
                row(0, "expense.approved", 1),
                row(0, "asset.reserved", 2),
                row(23, "finance_task.created", 5),
                row(24, "finance_task.created", 7), // outside
                row(2, "invoice.created", 1),       // unknown type → other
            ],
        );
        assert_eq!(v.slots[HOURS - 1], [4, 2, 0, 0]);
        assert_eq!(v.slots[0], [0, 0, 5, 0]);
        assert_eq!(v.slots[HOURS - 3], [0, 0, 0, 1]);
        assert_eq!(v.totals()["finance"], 5);
        assert_eq!(v.peak(), 6);
    }

    #[test]
    fn the_svg_has_one_segment_per_non_empty_domain_hour_with_data_attributes() {
        let v = Volume::from_rows(
            NOW,
            &[
                row(0, "expense.submitted", 3),
                row(0, "asset.reserved", 2),
                row(5, "expense.paid", 1),
            ],
        );
        let svg = render(&v);
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 3);
        assert!(svg.contains(&format!(
            "data-domain=\"expense\" data-hour=\"{}\" data-count=\"3\"",
            iso_hour(NOW)
        )));
        assert!(svg.contains("data-total=\"6\""));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("<g class=\"legend\" data-domain=\"asset\" data-total=\"2\">"));
    }

    #[test]
    fn an_empty_window_still_draws_axes_and_legend() {
        let svg = render(&Volume::from_rows(NOW, &[]));
        assert!(!svg.contains("class=\"bar\""));
        assert!(svg.contains("class=\"legend\""));
        assert!(svg.contains("class=\"xlabel\""));
    }

    #[test]
    fn axis_maximum_is_nice_and_covers_the_peak() {
        assert_eq!(axis(0), (1, 1));
        assert_eq!(axis(3), (3, 1));
        assert_eq!(axis(7), (8, 2));
        assert_eq!(axis(18), (20, 5));
        assert_eq!(axis(130), (150, 50));
    }

    #[test]
    fn hours_are_formatted_in_utc() {
        assert_eq!(iso_hour(0), "1970-01-01T00:00Z");
        assert_eq!(iso_hour(951_782_400), "2000-02-29T00:00Z");
        assert_eq!(iso_hour(1_795_600_800), "2026-11-25T10:00Z");
        assert_eq!(hour_label(1_795_600_800), "10:00");
    }
}
