//! Small syntaxes the Collector parses: Go durations, `host:port` endpoints and HTTP URLs.
//! Shared by the spec validator, the template parameter schema and the YAML validator, so a
//! value accepted in one place is accepted in all three.

/// Parses a Go `time.ParseDuration` string (`300ms`, `1m30s`, `1.5h`) into nanoseconds.
/// Negative durations are refused: nothing Phoenix configures can be negative.
#[must_use]
pub fn parse_go_duration(s: &str) -> Option<u128> {
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    // Go's limit is i64 nanoseconds (about 292 years).
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "checked finite, non-negative and below 2^63 just before"
    )]
    (total.is_finite() && total < 9.2e18).then_some(total as u128)
}

/// Parses a duration string into whole seconds (rounded down), for parameters.
#[must_use]
pub fn parse_duration_secs(s: &str) -> Option<u64> {
    parse_go_duration(s).and_then(|n| u64::try_from(n / 1_000_000_000).ok())
}

/// Formats whole seconds the way Go prints short durations (`90s` → `1m30s`).
#[must_use]
pub fn format_duration_secs(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Checks a Go `host:port` listen or dial address: `:4317`, `localhost:9464`,
/// `10.0.0.1:80`, `[::1]:13133`.
///
/// # Errors
/// What is wrong, for a human.
pub fn check_host_port(s: &str) -> Result<(), &'static str> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed `[` in IPv6 address")?;
        let port = after.strip_prefix(':').ok_or("missing `:port`")?;
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err("invalid IPv6 address");
        }
        (None, port)
    } else {
        let (host, port) = s.rsplit_once(':').ok_or("missing `:port`")?;
        (Some(host), port)
    };
    if let Some(host) = host {
        check_host(host, true)?;
    }
    check_port(port)
}

fn check_port(port: &str) -> Result<(), &'static str> {
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err("port must be a number from 0 to 65535");
    }
    port.parse::<u16>()
        .map(|_| ())
        .map_err(|_| "port must be a number from 0 to 65535")
}

fn check_host(host: &str, allow_empty: bool) -> Result<(), &'static str> {
    if host.is_empty() {
        return if allow_empty {
            Ok(())
        } else {
            Err("missing host")
        };
    }
    if host.len() > 253
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err("host may only contain letters, digits, `.`, `-` and `_`");
    }
    Ok(())
}

/// Checks an `http://` or `https://` URL with a host, an optional port and an optional path.
///
/// # Errors
/// What is wrong, for a human.
pub fn check_http_url(s: &str) -> Result<(), &'static str> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or("URL must start with http:// or https://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err("credentials in URLs are not allowed");
    }
    if authority.starts_with('[') {
        check_host_port(authority).or_else(|_| {
            let inner = authority.trim_start_matches('[').trim_end_matches(']');
            if !inner.is_empty() && inner.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
                Ok(())
            } else {
                Err("invalid IPv6 host")
            }
        })?;
    } else if let Some((host, port)) = authority.rsplit_once(':') {
        check_host(host, false)?;
        check_port(port)?;
    } else {
        check_host(authority, false)?;
    }
    if path
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '<' | '>' | '\\'))
    {
        return Err("URL path has characters that must be percent-encoded");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10s"), Some(10_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(parse_go_duration("300ms"), Some(300_000_000));
        assert_eq!(parse_go_duration("0"), Some(0));
        for bad in [
            "",
            "10",
            "s",
            "10x",
            "-1s",
            "1..5s",
            "1s2",
            "ten seconds",
            "1e3s",
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
        assert_eq!(format_duration_secs(90), "1m30s");
        assert_eq!(format_duration_secs(0), "0s");
        assert_eq!(format_duration_secs(3600), "1h");
        assert_eq!(parse_duration_secs(&format_duration_secs(3725)), Some(3725));
    }

    #[test]
    fn endpoints() {
        for ok in [
            ":4317",
            "localhost:9464",
            "0.0.0.0:13133",
            "[::1]:8888",
            "node-1.local:9100",
        ] {
            assert_eq!(check_host_port(ok), Ok(()), "{ok}");
        }
        for bad in [
            "localhost",
            "host:99999",
            "host:",
            "ho st:1",
            "[::1]",
            "a:b",
            "h\n:1",
        ] {
            assert!(check_host_port(bad).is_err(), "{bad}");
        }
        for ok in [
            "http://localhost:4318",
            "https://otlp.example.com/v1/metrics",
            "http://[::1]:4318",
        ] {
            assert_eq!(check_http_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "localhost:4318",
            "ftp://x",
            "http://",
            "http://u:p@h",
            "http://h/a b",
        ] {
            assert!(check_http_url(bad).is_err(), "{bad}");
        }
    }
}
