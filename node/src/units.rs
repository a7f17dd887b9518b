//! Sizes and ages as Docker prints them ("5.3MB", "2 weeks ago").

pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        return format!("{n}B");
    }
    // Three significant digits, as Docker's `%.3g`.
    let decimals = match v {
        v if v < 10.0 => 2,
        v if v < 100.0 => 1,
        _ => 0,
    };
    let digits = format!("{v:.decimals$}");
    let digits = if digits.contains('.') {
        digits.trim_end_matches('0').trim_end_matches('.')
    } else {
        &digits
    };
    format!("{digits}{}", UNITS[u])
}

/// `64m`, `1g`, `512k`, `64MiB` or plain bytes, as `docker run -m` takes them (binary
/// multiples, as Docker's `RAMInBytes`).
pub fn parse_bytes(s: &str) -> anyhow::Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches('b').trim_end_matches('i');
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('p') => (&t[..t.len() - 1], 1 << 50),
        _ => (t, 1),
    };
    num.trim_end()
        .parse::<f64>()
        .ok()
        .filter(|n| *n >= 0.0 && n.is_finite() && n * (mul as f64) < i64::MAX as f64)
        .map(|n| (n * mul as f64) as i64)
        .ok_or_else(|| {
            anyhow::anyhow!("invalid size: {s:?}: expected a number with an optional k, m or g")
        })
}

/// A Go duration (`5s`, `1m30s`, `1.5h`, `300ms`) in nanoseconds, as the docker CLI's
/// duration flags take them; the error is Go's own.
pub fn parse_duration(s: &str) -> anyhow::Result<i64> {
    let invalid = || anyhow::anyhow!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    // Summed in u128: no sum of an i64's worth of units overflows it.
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(invalid());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(anyhow::anyhow!("time: missing unit in duration {s:?}")),
            u => {
                return Err(anyhow::anyhow!(
                    "time: unknown unit {u:?} in duration {s:?}"
                ))
            }
        };
        let whole: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| invalid())?
        };
        // Fractions beyond a nanosecond are dropped, as Go does.
        let digits = &frac[..frac.len().min(18)];
        let part = if digits.is_empty() {
            0
        } else {
            let scale = 10u128.pow(digits.len() as u32);
            digits.parse::<u128>().map_err(|_| invalid())? * nanos / scale
        };
        total = whole
            .checked_mul(nanos)
            .and_then(|w| w.checked_add(part))
            .and_then(|w| w.checked_add(total))
            .filter(|t| *t <= i64::MAX as u128)
            .ok_or_else(invalid)?;
        rest = after;
    }
    let total = total as i64;
    Ok(if neg { -total } else { total })
}

/// Bytes as docker's `BytesSize`: binary units, four significant digits ("64MiB").
pub fn bytes_size(n: i64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    // Go's %.4g: four significant digits, trailing zeros dropped.
    let int_digits = if v < 1.0 {
        1
    } else {
        (v.log10().floor() as usize) + 1
    };
    let decimals = 4usize.saturating_sub(int_digits);
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", UNITS[u])
}

/// Nanoseconds as Go's `time.Duration` prints them (the inverse of [`parse_duration`]): `0s`, `1.5s`, `1m30s`, `500ms`.
pub fn format_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let body = if n < 1_000 {
        format!("{n}ns")
    } else if n < 1_000_000 {
        format!("{}µs", decimal(n, 1_000))
    } else if n < 1_000_000_000 {
        format!("{}ms", decimal(n, 1_000_000))
    } else {
        let (h, rest) = (n / 3_600_000_000_000, n % 3_600_000_000_000);
        let (m, rest) = (rest / 60_000_000_000, rest % 60_000_000_000);
        let s = format!("{}s", decimal(rest, 1_000_000_000));
        match (h, m) {
            (0, 0) => s,
            (0, m) => format!("{m}m{s}"),
            (h, m) => format!("{h}h{m}m{s}"),
        }
    };
    format!("{sign}{body}")
}

/// `n / unit` with its fraction, trailing zeros dropped.
fn decimal(n: u64, unit: u64) -> String {
    let (whole, frac) = (n / unit, n % unit);
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let frac = format!("{frac:0width$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A span as Docker's `Status` column says it: "5 seconds", "About a minute", "3 hours"
/// (go-units' `HumanDuration`, whose hours are rounded and whose other units are not).
pub fn duration(secs: i64) -> String {
    let hours = (secs + 1800) / 3600;
    match secs {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        s => format!("{} years", s / 3600 / 24 / 365),
    }
}

/// "3 hours ago" from a unix time; "N/A" for none (Docker's zero time).
pub fn ago(unix: i64) -> String {
    if unix <= 0 {
        return "N/A".into();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(unix);
    let s = (now - unix).max(0);
    let (n, unit) = match s {
        0..=59 => return "Less than a minute ago".into(),
        60..=3599 => (s / 60, "minute"),
        3600..=172_799 => (s / 3600, "hour"),
        172_800..=1_209_599 => (s / 86_400, "day"),
        1_209_600..=5_183_999 => (s / 604_800, "week"),
        5_184_000..=63_071_999 => (s / 2_592_000, "month"),
        _ => (s / 31_536_000, "year"),
    };
    let plural = if n == 1 { "" } else { "s" };
    if n == 1 && unit == "hour" {
        return "About an hour ago".into();
    }
    format!("{n} {unit}{plural} ago")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_982_000), "1.98MB");
        assert_eq!(human_size(51_400_000), "51.4MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(1_500), "1.5kB");
        assert_eq!(human_size(4_300_000), "4.3MB");
        assert_eq!(human_size(2_000_000_000), "2GB");
    }

    #[test]
    fn binary_sizes_as_docker_prints_them() {
        assert_eq!(bytes_size(64 << 20), "64MiB");
        assert_eq!(bytes_size(10 * 1024 * 1024), "10MiB");
        assert_eq!(bytes_size(1536 << 20), "1.5GiB");
        assert_eq!(bytes_size(1000), "1000B");
        assert_eq!(bytes_size(0), "0B");
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("64M").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("512").unwrap(), 512);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("-1m").is_err());
    }

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(1_500_000_000), "1.5s");
        assert_eq!(format_duration(90_000_000_000), "1m30s");
        assert_eq!(format_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(format_duration(500_000_000), "500ms");
        assert_eq!(format_duration(1_500), "1.5µs");
        assert_eq!(format_duration(-2_000_000_000), "-2s");
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5s").unwrap(), 5_000_000_000);
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("1.5h").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_duration("300ms").unwrap(), 300_000_000);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert_eq!(parse_duration("-2us").unwrap(), -2_000);
        assert_eq!(
            parse_duration("5").unwrap_err().to_string(),
            "time: missing unit in duration \"5\""
        );
        assert_eq!(
            parse_duration("x").unwrap_err().to_string(),
            "time: invalid duration \"x\""
        );
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("9999999999h").is_err());
    }

    #[test]
    fn spans_as_go_units_says_them() {
        assert_eq!(duration(0), "Less than a second");
        assert_eq!(duration(5), "5 seconds");
        assert_eq!(duration(90), "About a minute");
        assert_eq!(duration(600), "10 minutes");
        assert_eq!(duration(3700), "About an hour");
        assert_eq!(duration(5400), "2 hours");
        assert_eq!(duration(3 * 86_400), "3 days");
        assert_eq!(duration(20 * 86_400), "2 weeks");
        assert_eq!(duration(90 * 86_400), "3 months");
        assert_eq!(duration(800 * 86_400), "2 years");
    }
}
