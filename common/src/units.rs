//! Human units used in scenario files: durations (`250ms`, `10s`, `2m`),
//! sizes (`100B`, `1KiB`, `4MB`) and rates (`20000/s`, `600/m`).
//!
//! Parsing is strict: a number without a unit is an error for durations and
//! rates, because `10` could mean seconds or milliseconds and guessing wrong
//! silently changes a benchmark.

use std::time::Duration;

/// Why a unit string was not accepted. The message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(pub String);

fn split_number(text: &str) -> Result<(f64, &str), UnitError> {
    let text = text.trim();
    let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_')).unwrap_or(text.len());
    let (number, unit) = text.split_at(end);
    let number: String = number.chars().filter(|c| *c != '_').collect();
    if number.is_empty() {
        return Err(UnitError(format!("`{text}` does not start with a number")));
    }
    let value: f64 = number.parse().map_err(|_| UnitError(format!("`{text}` does not start with a valid number")))?;
    if !value.is_finite() {
        return Err(UnitError(format!("`{text}` is not a finite number")));
    }
    Ok((value, unit.trim()))
}

/// Parses a duration such as `500us`, `250ms`, `10s`, `2m`, `1h` or `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let (value, unit) = split_number(text)?;
    let seconds = match unit {
        "ns" => value / 1e9,
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        "" => {
            return Err(UnitError(format!("`{text}` has no unit; write it like `10s`, `250ms` or `2m`")));
        }
        other => {
            return Err(UnitError(format!("`{other}` is not a duration unit (use ns, us, ms, s, m, h or d)")));
        }
    };
    if seconds > 100.0 * 365.0 * 86400.0 {
        return Err(UnitError(format!("`{text}` is longer than a century")));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a size in bytes: `100`, `100B`, `1KiB`, `4MB`, `1GiB`.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let (value, unit) = split_number(text)?;
    let factor: f64 = match unit {
        "" | "B" | "b" => 1.0,
        "KB" | "kB" | "kb" => 1e3,
        "MB" | "mb" => 1e6,
        "GB" | "gb" => 1e9,
        "KiB" | "K" | "k" => 1024.0,
        "MiB" | "M" => 1024.0 * 1024.0,
        "GiB" | "G" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(UnitError(format!("`{other}` is not a size unit (use B, KB, KiB, MB, MiB, GB or GiB)")));
        }
    };
    let bytes = value * factor;
    if bytes.fract() != 0.0 {
        return Err(UnitError(format!("`{text}` is not a whole number of bytes")));
    }
    if bytes > u64::MAX as f64 / 2.0 {
        return Err(UnitError(format!("`{text}` is too large")));
    }
    Ok(bytes as u64)
}

/// Parses a rate in operations per second: `20000/s`, `600/m`, `36000/h`.
pub fn parse_rate(text: &str) -> Result<f64, UnitError> {
    let Some((number, per)) = text.trim().split_once('/') else {
        return Err(UnitError(format!("`{text}` is not a rate; write it like `20000/s` or `600/m`")));
    };
    let (value, rest) = split_number(number)?;
    if !rest.is_empty() {
        return Err(UnitError(format!("`{text}` has extra text `{rest}` before `/`")));
    }
    let per_second = match per.trim() {
        "s" => value,
        "m" | "min" => value / 60.0,
        "h" => value / 3600.0,
        other => {
            return Err(UnitError(format!("`/{other}` is not a rate unit (use /s, /m or /h)")));
        }
    };
    Ok(per_second)
}

/// Formats microseconds for people: `850us`, `1.25ms`, `3.40s`.
pub fn format_micros(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0}us")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert!(parse_duration("10").unwrap_err().0.contains("no unit"));
        assert!(parse_duration("10parsecs").unwrap_err().0.contains("parsecs"));
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("4MB"), Ok(4_000_000));
        assert!(parse_size("1.5B").is_err());
        assert!(parse_size("3 bananas").is_err());
    }

    #[test]
    fn rates_parse_with_units() {
        assert_eq!(parse_rate("20000/s"), Ok(20000.0));
        assert_eq!(parse_rate("600/m"), Ok(10.0));
        assert_eq!(parse_rate("20_000/s"), Ok(20000.0));
        assert!(parse_rate("20000").is_err());
        assert!(parse_rate("20000/fortnight").is_err());
    }

    #[test]
    fn micros_format_for_people() {
        assert_eq!(format_micros(850.0), "850us");
        assert_eq!(format_micros(1250.0), "1.25ms");
        assert_eq!(format_micros(3_400_000.0), "3.40s");
    }
}
