//! Escaping for rendered Collector configs.
//!
//! [`yaml_scalar`] is the handlebars escape function: every value a template emits becomes
//! one quoted YAML scalar, so no value can open a mapping, a sequence, a comment, an anchor,
//! an alias, a tag or a new line. Strings of printable characters are single-quoted (only `'`
//! needs doubling); anything else is double-quoted with YAML escapes. In both styles `$` is
//! doubled first: the Collector expands `${...}` in every string of its configuration and
//! reads `$$` as a literal `$`, so a value reaches the component byte-identical.

use std::fmt::Write;

/// The handlebars escape function: `s` as one quoted YAML scalar (see the module docs).
#[must_use]
pub fn yaml_scalar(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    if s.chars().all(single_quotable) {
        out.push('\'');
        for c in s.chars() {
            match c {
                '\'' => out.push_str("''"),
                '$' => out.push_str("$$"),
                c => out.push(c),
            }
        }
        out.push('\'');
        return out;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '$' => out.push_str("$$"),
            '\0' => out.push_str("\\0"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => {
                let code = u32::from(c);
                if code <= 0xff {
                    let _ = write!(out, "\\x{code:02X}");
                } else if code <= 0xffff {
                    let _ = write!(out, "\\u{code:04X}");
                } else {
                    let _ = write!(out, "\\U{code:08X}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Characters that are unsafe or invisible in a YAML document: controls, line separators
/// other than `\n` (YAML 1.1 parsers break lines on NEL, LS and PS), the byte-order mark,
/// non-characters, and bidirectional and zero-width format characters that would make the
/// config read differently from what it contains.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{a0}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{feff}'
                | '\u{fffe}'
                | '\u{ffff}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

fn single_quotable(c: char) -> bool {
    c == ' ' || c.is_ascii_graphic() || (!c.is_ascii() && !needs_escape(c))
}

/// `value` as flow-style YAML: scalars quoted by [`yaml_scalar`], numbers and booleans bare,
/// `[a, b]` sequences and `{k: v}` mappings. The `toYaml` helper writes this unescaped: it is
/// safe by construction.
#[must_use]
pub fn flow_yaml(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_flow(value, &mut out);
    out
}

fn write_flow(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&yaml_scalar(s)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_flow(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&yaml_scalar(k));
                out.push_str(": ");
                write_flow(v, out);
            }
            out.push('}');
        }
    }
}

/// `s` as an OTTL string literal: `"` and `\` escaped, controls as Go escapes.
#[must_use]
pub fn ottl_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_always_quoted() {
        assert_eq!(yaml_scalar("hostmetrics"), "'hostmetrics'");
        assert_eq!(yaml_scalar(""), "''");
        assert_eq!(
            yaml_scalar("it's: #1 {{x}} &a *a"),
            "'it''s: #1 {{x}} &a *a'"
        );
        assert_eq!(yaml_scalar("${env:SECRET}"), "'$${env:SECRET}'");
        assert_eq!(yaml_scalar("a\nb\"\\\0"), "\"a\\nb\\\"\\\\\\0\"");
        assert_eq!(yaml_scalar("x\u{2028}y\u{85}"), "\"x\\u2028y\\x85\"");
        assert_eq!(yaml_scalar("café"), "'café'");
    }

    #[test]
    fn flow_yaml_quotes_every_string() {
        let v = serde_json::json!({"a": [1, "b: c", true, null], "n": 2.5});
        assert_eq!(flow_yaml(&v), "{'a': [1, 'b: c', true, null], 'n': 2.5}");
    }

    #[test]
    fn ottl_strings_escape_quotes_and_backslashes() {
        assert_eq!(ottl_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(ottl_string("a\nb"), r#""a\nb""#);
    }
}
