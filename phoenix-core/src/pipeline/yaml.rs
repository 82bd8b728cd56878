//! A bounded YAML loader for Collector configs.
//!
//! Parsing is done by `saphyr-parser`, a maintained, pure-Rust (no `unsafe-libyaml`), YAML
//! 1.2 event parser from the project that continues yaml-rust2; it is a pull parser with an
//! explicit state stack (no recursion to overflow) and reports a line and column for every
//! event. `serde_yaml` is deprecated and unmaintained, and its forks either wrap libyaml
//! through unsafe code or have no track record yet. Working on events lets this module own
//! the limits: the document size, the nesting depth, the number of nodes **counting every
//! alias expansion** (so a billion-laughs document is refused after a bounded amount of work
//! and memory, never expanded), the number of aliases, one document per stream, core-schema
//! tags only, and unique mapping keys.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Bounds on what the loader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YamlLimits {
    /// Largest document, bytes.
    pub max_bytes: usize,
    /// Deepest nesting of sequences and mappings.
    pub max_depth: usize,
    /// Most nodes, alias expansions included.
    pub max_nodes: usize,
    /// Most alias references.
    pub max_aliases: usize,
}

impl Default for YamlLimits {
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024,
            max_depth: 48,
            max_nodes: 50_000,
            max_aliases: 64,
        }
    }
}

/// A YAML node with its position (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The content.
    pub value: NodeValue,
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
}

/// The content of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    /// A scalar; `quoted` when it was written single- or double-quoted or as a block.
    Scalar {
        /// The text.
        text: String,
        /// Written quoted (so `true` or `10` are strings).
        quoted: bool,
    },
    /// A sequence.
    Sequence(Vec<Node>),
    /// A mapping, in document order.
    Mapping(Vec<(Node, Node)>),
}

impl Node {
    /// The scalar text.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The sequence items.
    #[must_use]
    pub fn as_sequence(&self) -> Option<&[Node]> {
        match &self.value {
            NodeValue::Sequence(items) => Some(items),
            _ => None,
        }
    }

    /// The mapping entries.
    #[must_use]
    pub fn as_mapping(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            NodeValue::Mapping(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value of mapping key `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_mapping()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// A plain `null`, `~` or empty scalar.
    #[must_use]
    pub fn is_null(&self) -> bool {
        matches!(&self.value, NodeValue::Scalar { text, quoted: false } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// A plain integer scalar.
    #[must_use]
    pub fn as_i64(&self) -> Option<i64> {
        match &self.value {
            NodeValue::Scalar {
                text,
                quoted: false,
            } => text.parse().ok(),
            _ => None,
        }
    }

    /// Every scalar below (and including) this node, depth first.
    pub fn scalars<'a>(&'a self, out: &mut Vec<&'a Node>) {
        match &self.value {
            NodeValue::Scalar { .. } => out.push(self),
            NodeValue::Sequence(items) => items.iter().for_each(|i| i.scalars(out)),
            NodeValue::Mapping(entries) => entries.iter().for_each(|(k, v)| {
                k.scalars(out);
                v.scalars(out);
            }),
        }
    }
}

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at line {line}, column {column}")]
pub struct YamlError {
    /// What is wrong.
    pub kind: YamlErrorKind,
    /// Line, from 1 (0 when the whole document is concerned).
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
}

/// What is wrong with a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlErrorKind {
    /// Larger than the byte limit.
    #[error("document is larger than {0} bytes")]
    TooLarge(usize),
    /// Nested deeper than the limit.
    #[error("nesting is deeper than {0}")]
    TooDeep(usize),
    /// More nodes (alias expansions included) than the limit.
    #[error("document expands to more than {0} nodes")]
    TooManyNodes(usize),
    /// More aliases than the limit.
    #[error("more than {0} aliases")]
    TooManyAliases(usize),
    /// An alias to an anchor not defined before it.
    #[error("alias to an undefined anchor")]
    UnknownAnchor,
    /// More than one document.
    #[error("only one document is allowed")]
    MultipleDocuments,
    /// No content.
    #[error("document is empty")]
    Empty,
    /// A tag outside the YAML core schema.
    #[error("tag `{0}` is not allowed")]
    Tag(String),
    /// A mapping key that is not a scalar.
    #[error("mapping keys must be scalars")]
    ComplexKey,
    /// A key that appears twice in one mapping.
    #[error("duplicate key `{0}`")]
    DuplicateKey(String),
    /// The parser's own error.
    #[error("{0}")]
    Syntax(String),
}

enum Frame {
    Sequence {
        start: (u32, u32),
        anchor: usize,
        nodes_before: usize,
        items: Vec<Node>,
    },
    Mapping {
        start: (u32, u32),
        anchor: usize,
        nodes_before: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

struct Loader {
    limits: YamlLimits,
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
    aliases: usize,
    root: Option<Node>,
}

fn position(span: &Span) -> (u32, u32) {
    let m = span.start;
    (
        u32::try_from(m.line()).unwrap_or(u32::MAX),
        u32::try_from(m.col() + 1).unwrap_or(u32::MAX),
    )
}

/// Parses one YAML document within `limits`.
///
/// # Errors
/// The first limit exceeded or syntax error, with its position.
pub fn parse(text: &str, limits: &YamlLimits) -> Result<Node, YamlError> {
    if text.len() > limits.max_bytes {
        return Err(YamlError {
            kind: YamlErrorKind::TooLarge(limits.max_bytes),
            line: 0,
            column: 0,
        });
    }
    let mut loader = Loader {
        limits: *limits,
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        aliases: 0,
        root: None,
    };
    let mut documents = 0;
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| YamlError {
            kind: YamlErrorKind::Syntax(e.info().to_owned()),
            line: u32::try_from(e.marker().line()).unwrap_or(u32::MAX),
            column: u32::try_from(e.marker().col() + 1).unwrap_or(u32::MAX),
        })?;
        let at = position(&span);
        let fail = |kind| YamlError {
            kind,
            line: at.0,
            column: at.1,
        };
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(fail(YamlErrorKind::MultipleDocuments));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                if let Some(tag) = tag
                    && !tag.is_yaml_core_schema()
                {
                    return Err(fail(YamlErrorKind::Tag(format!(
                        "{}{}",
                        tag.handle, tag.suffix
                    ))));
                }
                loader.count(1, at)?;
                let node = Node {
                    value: NodeValue::Scalar {
                        text: text.into_owned(),
                        quoted: style != ScalarStyle::Plain,
                    },
                    line: at.0,
                    column: at.1,
                };
                if anchor > 0 {
                    loader.anchors.insert(anchor, (node.clone(), 1));
                }
                loader.attach(node)?;
            }
            Event::SequenceStart(anchor, ref tag) | Event::MappingStart(anchor, ref tag) => {
                if let Some(tag) = tag
                    && !tag.is_yaml_core_schema()
                {
                    return Err(fail(YamlErrorKind::Tag(format!(
                        "{}{}",
                        tag.handle, tag.suffix
                    ))));
                }
                loader.count(1, at)?;
                if loader.stack.len() >= loader.limits.max_depth {
                    return Err(fail(YamlErrorKind::TooDeep(loader.limits.max_depth)));
                }
                let nodes_before = loader.nodes - 1;
                let frame = if matches!(event, Event::SequenceStart(..)) {
                    Frame::Sequence {
                        start: at,
                        anchor,
                        nodes_before,
                        items: Vec::new(),
                    }
                } else {
                    Frame::Mapping {
                        start: at,
                        anchor,
                        nodes_before,
                        entries: Vec::new(),
                        key: None,
                    }
                };
                loader.stack.push(frame);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor, nodes_before) = match loader.stack.pop() {
                    Some(Frame::Sequence {
                        start,
                        anchor,
                        nodes_before,
                        items,
                    }) => (
                        Node {
                            value: NodeValue::Sequence(items),
                            line: start.0,
                            column: start.1,
                        },
                        anchor,
                        nodes_before,
                    ),
                    Some(Frame::Mapping {
                        start,
                        anchor,
                        nodes_before,
                        entries,
                        ..
                    }) => (
                        Node {
                            value: NodeValue::Mapping(entries),
                            line: start.0,
                            column: start.1,
                        },
                        anchor,
                        nodes_before,
                    ),
                    None => {
                        return Err(fail(YamlErrorKind::Syntax(
                            "unbalanced collection".to_owned(),
                        )));
                    }
                };
                if anchor > 0 {
                    let size = loader.nodes - nodes_before;
                    loader.anchors.insert(anchor, (node.clone(), size));
                }
                loader.attach(node)?;
            }
            Event::Alias(anchor) => {
                loader.aliases += 1;
                if loader.aliases > loader.limits.max_aliases {
                    return Err(fail(YamlErrorKind::TooManyAliases(
                        loader.limits.max_aliases,
                    )));
                }
                let Some(size) = loader.anchors.get(&anchor).map(|(_, size)| *size) else {
                    return Err(fail(YamlErrorKind::UnknownAnchor));
                };
                // Count the expansion before copying anything.
                loader.count(size, at)?;
                let Some(mut node) = loader.anchors.get(&anchor).map(|(node, _)| node.clone())
                else {
                    return Err(fail(YamlErrorKind::UnknownAnchor));
                };
                node.line = at.0;
                node.column = at.1;
                loader.attach(node)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
    }
    loader.root.ok_or(YamlError {
        kind: YamlErrorKind::Empty,
        line: 0,
        column: 0,
    })
}

impl Loader {
    fn count(&mut self, n: usize, at: (u32, u32)) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.limits.max_nodes {
            return Err(YamlError {
                kind: YamlErrorKind::TooManyNodes(self.limits.max_nodes),
                line: at.0,
                column: at.1,
            });
        }
        Ok(())
    }

    fn attach(&mut self, node: Node) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Frame::Sequence { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Mapping { entries, key, .. }) => match key.take() {
                None => {
                    let Some(text) = node.as_str() else {
                        return Err(YamlError {
                            kind: YamlErrorKind::ComplexKey,
                            line: node.line,
                            column: node.column,
                        });
                    };
                    if entries.iter().any(|(k, _)| k.as_str() == Some(text)) {
                        return Err(YamlError {
                            kind: YamlErrorKind::DuplicateKey(text.chars().take(64).collect()),
                            line: node.line,
                            column: node.column,
                        });
                    }
                    *key = Some(node);
                    Ok(())
                }
                Some(k) => {
                    entries.push((k, node));
                    Ok(())
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn kind(text: &str) -> YamlErrorKind {
        parse(text, &YamlLimits::default()).unwrap_err().kind
    }

    #[test]
    fn loads_mappings_sequences_and_positions() {
        let doc = parse("a: 1\nb:\n  - 'x'\n  - {c: d}\n", &YamlLimits::default()).unwrap();
        assert_eq!(doc.get("a").unwrap().as_i64(), Some(1));
        let b = doc.get("b").unwrap().as_sequence().unwrap();
        assert_eq!(b[0].as_str(), Some("x"));
        assert_eq!(b[0].line, 3);
        assert_eq!(b[0].column, 5);
        assert_eq!(b[1].get("c").unwrap().as_str(), Some("d"));
    }

    #[test]
    fn small_aliases_are_expanded() {
        let doc = parse("a: &x [1, 2]\nb: *x\n", &YamlLimits::default()).unwrap();
        assert_eq!(doc.get("b").unwrap().as_sequence().unwrap().len(), 2);
    }

    #[test]
    fn billion_laughs_is_refused_fast_without_expanding() {
        let mut doc = String::from(
            "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 9].join(",");
            doc.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let started = Instant::now();
        let err = parse(&doc, &YamlLimits::default()).unwrap_err();
        assert!(matches!(
            err.kind,
            YamlErrorKind::TooManyNodes(_) | YamlErrorKind::TooManyAliases(_)
        ));
        // Bounded work: far below a second even in debug builds (a full expansion would be
        // 10^9 nodes). Not a timing test of the parser, a guard against expansion.
        assert!(started.elapsed().as_secs() < 5);
        // The same with a generous alias budget still stops on the node budget.
        let limits = YamlLimits {
            max_aliases: 10_000,
            ..YamlLimits::default()
        };
        assert!(matches!(
            parse(&doc, &limits).unwrap_err().kind,
            YamlErrorKind::TooManyNodes(_)
        ));
    }

    #[test]
    fn limits_and_malformed_documents_are_refused() {
        assert_eq!(kind(&"[".repeat(200)), kind(&"[".repeat(200)));
        assert!(matches!(
            kind(&format!("{}{}", "[".repeat(100), "]".repeat(100))),
            YamlErrorKind::TooDeep(_) | YamlErrorKind::Syntax(_)
        ));
        assert_eq!(kind("a: 1\n---\nb: 2\n"), YamlErrorKind::MultipleDocuments);
        assert_eq!(kind(""), YamlErrorKind::Empty);
        assert_eq!(
            kind("a: !custom x\n"),
            YamlErrorKind::Tag("!custom".to_owned())
        );
        assert_eq!(
            kind("a: 1\na: 2\n"),
            YamlErrorKind::DuplicateKey("a".to_owned())
        );
        assert_eq!(kind("? [a]\n: 1\n"), YamlErrorKind::ComplexKey);
        assert!(matches!(
            kind("a: *nope\n"),
            YamlErrorKind::UnknownAnchor | YamlErrorKind::Syntax(_)
        ));
        assert!(matches!(kind("a: [1\n"), YamlErrorKind::Syntax(_)));
        let big = "x".repeat(300 * 1024);
        assert_eq!(kind(&big), YamlErrorKind::TooLarge(256 * 1024));
        assert!(parse("a: !!str 1\n", &YamlLimits::default()).is_ok());
    }
}
