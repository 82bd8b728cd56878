//! Name patterns: literal text with `*` (any run of characters) and `?` (one character).
//! Used for metric names, executable names and label values. Matching is linear in practice
//! (the classic two-pointer glob algorithm, no backtracking blow-up), and a pattern renders to
//! an anchored RE2 regular expression for the Collector's OTTL `IsMatch`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A glob pattern over whole strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pattern(String);

impl Pattern {
    /// The pattern `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The pattern text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when the pattern has no wildcard.
    #[must_use]
    pub fn is_literal(&self) -> bool {
        !self.0.contains(['*', '?'])
    }

    /// True when `text` matches the whole pattern.
    #[must_use]
    pub fn matches(&self, text: &str) -> bool {
        if self.is_literal() {
            return self.0 == text;
        }
        glob_match(&self.0, text)
    }

    /// An anchored RE2 expression (`^...\z`) equivalent to the pattern. `\z` rather than `$`
    /// keeps dollar signs out of rendered configs, where the Collector would expand them.
    #[must_use]
    pub fn to_regex(&self) -> String {
        let mut re = String::with_capacity(self.0.len() + 8);
        re.push('^');
        for c in self.0.chars() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                '\\' | '.' | '+' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$' => {
                    re.push('\\');
                    re.push(c);
                }
                c => re.push(c),
            }
        }
        re.push_str("\\z");
        re
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Pattern {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

/// Glob match without recursion: on a mismatch, retry from the last `*` one character later.
fn glob_match(pattern: &str, text: &str) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        glob_slices(pattern.as_bytes(), text.as_bytes(), b'*', b'?')
    } else {
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        glob_slices(&p, &t, '*', '?')
    }
}

fn glob_slices<T: PartialEq + Copy>(p: &[T], t: &[T], star_token: T, any_token: T) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == any_token || (p[pi] != star_token && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == star_token {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == star_token {
        pi += 1;
    }
    pi == p.len()
}

/// True when any of `patterns` matches `text`.
#[must_use]
pub fn any_match(patterns: &[Pattern], text: &str) -> bool {
    patterns.iter().any(|p| p.matches(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_strings() {
        let cases = [
            ("nginx", "nginx", true),
            ("nginx", "nginx2", false),
            ("post*", "postgres", true),
            ("post*", "pos", false),
            ("*worker*", "kworker/0:1", true),
            ("k?orker*", "kworker/0:1", true),
            ("process.*", "process.cpu.time", true),
            ("process.*", "system.cpu.time", false),
            ("*", "", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("", "", true),
            ("", "x", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(Pattern::new(p).matches(t), want, "{p} vs {t}");
        }
    }

    #[test]
    fn regex_escapes_metacharacters() {
        assert_eq!(Pattern::new("a.b*").to_regex(), "^a\\.b.*\\z");
        assert_eq!(Pattern::new("x$(y)?").to_regex(), "^x\\$\\(y\\).\\z");
    }
}
