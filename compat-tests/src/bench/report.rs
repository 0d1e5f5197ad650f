//! Printing results: latency rows, side-by-side tables, ratios, and numbers
//! and times formatted as the shell scripts print them.

use super::Histogram;

// ------------------------------------------------------------------- report

/// Latency quantiles of a histogram of nanoseconds, in microseconds.
#[derive(Debug, Default, Clone, Copy)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Latency {
    pub fn of(h: &Histogram) -> Latency {
        let us = |ns: u64| ns as f64 / 1e3;
        Latency {
            p50_us: us(h.quantile(0.50)),
            p99_us: us(h.quantile(0.99)),
            p999_us: us(h.quantile(0.999)),
            max_us: us(h.max),
        }
    }
}

/// One line of a report table: its name and a result's cell.
pub type Row<T> = (&'static str, Box<dyn Fn(&T) -> String>);

/// The p50, p99, p99.9 and max latency lines of a report table.
pub fn latency_rows<T: 'static>(lat: fn(&T) -> Latency) -> Vec<Row<T>> {
    let row = |name: &'static str, q: fn(Latency) -> f64| -> Row<T> {
        (name, Box::new(move |r: &T| format!("{:.0} us", q(lat(r)))))
    };
    vec![
        row("p50 latency", |l| l.p50_us),
        row("p99 latency", |l| l.p99_us),
        row("p99.9 latency", |l| l.p999_us),
        row("max latency", |l| l.max_us),
    ]
}

/// Prints a Markdown table: one column per result (headed by `label`), one
/// line per row; the first column `w0` wide, the others `w`.
pub fn print_table<T>(
    results: &[T],
    label: impl Fn(&T) -> &str,
    rows: &[Row<T>],
    w0: usize,
    w: usize,
) {
    print!("| {:<w0$} |", "");
    for r in results {
        print!(" {:<w$} |", label(r));
    }
    println!();
    print!("|{}|", "-".repeat(w0 + 2));
    for _ in results {
        print!("{}|", "-".repeat(w + 2));
    }
    println!();
    for (name, f) in rows {
        print!("| {name:<w0$} |");
        for r in results {
            print!(" {:<w$} |", f(r));
        }
        println!();
    }
}

/// Per-round rates as `123 / 456`.
pub fn per_round(rates: &[f64]) -> String {
    rates
        .iter()
        .map(|q| format!("{q:.0}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The median of the finite values of `v`; NaN when there are none.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `a / b`; NaN unless `b` is positive.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

/// The per-round ratios `ours / theirs` of paired rounds, sorted, as
/// `1.23, 2.34`.
pub fn round_ratios(ours: &[f64], theirs: &[f64]) -> String {
    let mut per_round: Vec<f64> = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| ratio(*a, *b))
        .collect();
    per_round.sort_by(f64::total_cmp);
    per_round
        .iter()
        .map(|q| format!("{q:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn goal(ok: bool) -> &'static str {
    if ok {
        "meets goal"
    } else {
        "MISSES goal"
    }
}

// ----------------------------------------------------------------- printing

/// The current UTC time as `date -u '+%Y-%m-%d %H:%M UTC'` prints it.
pub fn utc_minute() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_minute_of(secs)
}

fn utc_minute_of(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
}

/// `printf("%.<precision>g", x)` as C (and awk) print it.
pub fn format_g(x: f64, precision: usize) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let p = precision.max(1);
    if x == 0.0 {
        return "0".into();
    }
    // The exponent after rounding to p significant digits.
    let sci = format!("{:.*e}", p - 1, x);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    if exp < -4 || exp >= p as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip(mant), exp.abs())
    } else {
        strip(&format!("{:.*}", (p as i32 - 1 - exp) as usize, x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn format_g_prints_like_c() {
        for (x, want) in [
            (1.0, "1"),
            (2.5, "2.5"),
            (0.123456, "0.123"),
            (12.345, "12.3"),
            (123.4, "123"),
            (1234.5, "1.23e+03"),
            (999.7, "1e+03"),
            (0.00012345, "0.000123"),
            (0.000012345, "1.23e-05"),
            (0.0, "0"),
        ] {
            assert_eq!(format_g(x, 3), want, "{x}");
        }
    }

    #[test]
    fn utc_minute_of_known_instants() {
        assert_eq!(utc_minute_of(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute_of(951_782_400 + 3_661), "2000-02-29 01:01 UTC");
        assert_eq!(utc_minute_of(1_796_640_000), "2026-12-07 10:40 UTC");
    }
}
