//! A YAML document tree that remembers where every node came from.
//!
//! `serde_yaml` forgets positions, and good diagnostics need them, so the pitfile loader first
//! reads the text into [`Node`]s with byte [`Span`]s (through `yaml-rust2`'s event parser), then
//! decodes the typed model from that tree.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};

use crate::diagnostic::{FieldPath, PathSegment};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Upper bound on nodes in one document, aliases expanded: stops "billion laughs" inputs.
const MAX_NODES: usize = 1_000_000;

/// A byte range in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Byte offset of the first byte.
    pub offset: usize,
    /// Length in bytes (at least 1 where the source has text there).
    pub len: usize,
}

/// How a scalar was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarStyle {
    /// Unquoted: `true`, `60` and `~` have their YAML meaning.
    Plain,
    /// Quoted or a block scalar: always a string.
    Quoted,
}

/// The value of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    /// A scalar with its text as written (after unescaping).
    Scalar(String, ScalarStyle),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order (keys are nodes so they carry spans).
    Map(Vec<(Node, Node)>),
}

/// A YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub value: NodeValue,
    /// Where it starts in the source.
    pub span: Span,
}

impl Node {
    /// The node at `path` below this one, if there is one.
    ///
    /// ```
    /// use pit_core::diagnostic::FieldPath;
    /// let root = pit_core::yaml::parse("a:\n  - x\n  - y\n").unwrap().unwrap();
    /// let y = root.lookup(&FieldPath::root().key("a").index(1)).unwrap();
    /// assert_eq!(y.span.offset, 13);
    /// ```
    pub fn lookup(&self, path: &FieldPath) -> Option<&Node> {
        path.segments()
            .iter()
            .try_fold(self, |node, seg| match (seg, &node.value) {
                (PathSegment::Key(k), NodeValue::Map(entries)) => entries
                    .iter()
                    .find(|(key, _)| matches!(&key.value, NodeValue::Scalar(s, _) if s == k))
                    .map(|(_, v)| v),
                (PathSegment::Index(i), NodeValue::Seq(items)) => items.get(*i),
                _ => None,
            })
    }

    /// A plain `null`, `~` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, NodeValue::Scalar(s, ScalarStyle::Plain)
            if s.is_empty() || s == "~" || s == "null" || s == "Null" || s == "NULL")
    }

    /// The YAML type name used in messages (`a mapping`, `a list`, `a number` …).
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            NodeValue::Map(_) => "a mapping",
            NodeValue::Seq(_) => "a list",
            NodeValue::Scalar(_, ScalarStyle::Quoted) => "a string",
            NodeValue::Scalar(s, ScalarStyle::Plain) => {
                if self.is_null() {
                    "null"
                } else if parse_bool(s).is_some() {
                    "a boolean"
                } else if s.parse::<f64>().is_ok() {
                    "a number"
                } else {
                    "a string"
                }
            }
        }
    }
}

/// Reads a YAML 1.2 core-schema boolean.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    /// What is wrong.
    pub kind: SyntaxErrorKind,
    /// What the parser said.
    pub message: String,
    /// Where.
    pub span: Span,
}

/// What kind of [`SyntaxError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyntaxErrorKind {
    /// Malformed YAML, an unknown alias, or a document too large once aliases are expanded.
    Invalid,
    /// A second document in one file (after `---`).
    SecondDocument,
}

impl SyntaxError {
    fn invalid(message: impl Into<String>, span: Span) -> Self {
        Self {
            kind: SyntaxErrorKind::Invalid,
            message: message.into(),
            span,
        }
    }
}

/// Parses the one document of `source`. An empty document gives `Ok(None)`.
///
/// # Errors
/// A [`SyntaxError`] for malformed YAML, unknown aliases, documents that expand to more than a
/// million nodes, or a second document ([`SyntaxErrorKind::SecondDocument`]).
pub fn parse(source: &str) -> Result<Option<Node>, SyntaxError> {
    let index = LineIndex::new(source);
    let mut builder = Builder {
        source,
        index: &index,
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        nodes: 0,
        error: None,
        seen_document: false,
    };
    let mut parser = Parser::new_from_str(source);
    // Every document is read, so that a second one is refused rather than ignored.
    if let Err(e) = parser.load(&mut builder, true) {
        return Err(SyntaxError::invalid(e.info(), index.span_at(e.marker(), 1, source)));
    }
    if let Some(e) = builder.error {
        return Err(e);
    }
    Ok(builder.root)
}

/// Converts `yaml-rust2` markers (line, column in characters) into byte offsets.
struct LineIndex {
    line_starts: Vec<usize>,
}

impl LineIndex {
    fn new(source: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        Self { line_starts }
    }

    fn offset(&self, mark: &Marker, source: &str) -> usize {
        let line = mark.line().max(1) - 1;
        let Some(&start) = self.line_starts.get(line) else {
            return source.len();
        };
        let rest = &source[start..];
        rest.char_indices()
            .nth(mark.col())
            .map_or(source.len(), |(i, _)| start + i)
    }

    fn span_at(&self, mark: &Marker, len: usize, source: &str) -> Span {
        let offset = self.offset(mark, source);
        Span {
            offset,
            len: len.min(source.len().saturating_sub(offset)),
        }
    }
}

enum Frame {
    Seq {
        anchor: usize,
        span: Span,
        items: Vec<Node>,
    },
    Map {
        anchor: usize,
        span: Option<Span>,
        fallback: Span,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

struct Builder<'a> {
    source: &'a str,
    index: &'a LineIndex,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    nodes: usize,
    error: Option<SyntaxError>,
    /// Whether a document has begun (a second one is an error).
    seen_document: bool,
}

impl Builder<'_> {
    fn scalar_span(&self, mark: &Marker, text: &str, style: TScalarStyle) -> Span {
        let offset = self.index.offset(mark, self.source);
        let rest = &self.source[offset..];
        let line_end = rest.find('\n').unwrap_or(rest.len());
        let len = match style {
            TScalarStyle::Plain if rest.starts_with(text) && !text.is_empty() => text.len(),
            TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => {
                let quote = if style == TScalarStyle::SingleQuoted { '\'' } else { '"' };
                rest[1..line_end.max(1)].find(quote).map_or(line_end, |i| i + 2)
            }
            _ => line_end,
        };
        Span {
            offset,
            len: len.max(1).min(rest.len()),
        }
    }

    fn push(&mut self, node: Node, anchor: usize) {
        self.nodes += 1;
        if self.nodes > MAX_NODES && self.error.is_none() {
            self.error = Some(SyntaxError::invalid(
                format!("the document has more than {MAX_NODES} nodes (aliases expanded)"),
                node.span,
            ));
        }
        if self.error.is_some() {
            return;
        }
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, span, .. }) => match key.take() {
                None => {
                    span.get_or_insert(node.span);
                    *key = Some(node);
                }
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let span = self.scalar_span(&mark, &text, style);
                let style = if style == TScalarStyle::Plain {
                    ScalarStyle::Plain
                } else {
                    ScalarStyle::Quoted
                };
                self.push(
                    Node {
                        value: NodeValue::Scalar(text, style),
                        span,
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, _) => {
                let span = self.index.span_at(&mark, 1, self.source);
                self.stack.push(Frame::Seq {
                    anchor,
                    span,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, _) => {
                let fallback = self.index.span_at(&mark, 1, self.source);
                self.stack.push(Frame::Map {
                    anchor,
                    span: None,
                    fallback,
                    entries: Vec::new(),
                    key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq { anchor, span, items }) => self.push(
                    Node {
                        value: NodeValue::Seq(items),
                        span,
                    },
                    anchor,
                ),
                Some(Frame::Map {
                    anchor,
                    span,
                    fallback,
                    entries,
                    ..
                }) => self.push(
                    Node {
                        value: NodeValue::Map(entries),
                        span: span.unwrap_or(fallback),
                    },
                    anchor,
                ),
                None => {}
            },
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(node) => {
                    let mut node = node.clone();
                    self.nodes += count(&node);
                    node.span = self.index.span_at(&mark, 1, self.source);
                    self.push(node, 0);
                }
                None => {
                    self.error = Some(SyntaxError::invalid(
                        "unknown alias",
                        self.index.span_at(&mark, 1, self.source),
                    ))
                }
            },
            // Every event after an error is ignored (above), so this fires once.
            Event::DocumentStart if self.seen_document => {
                self.error = Some(SyntaxError {
                    kind: SyntaxErrorKind::SecondDocument,
                    message: "a second YAML document starts here".into(),
                    span: self.index.span_at(&mark, 3, self.source),
                });
            }
            Event::DocumentStart => self.seen_document = true,
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
    }
}

fn count(node: &Node) -> usize {
    match &node.value {
        NodeValue::Scalar(..) => 1,
        NodeValue::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        NodeValue::Map(entries) => 1 + entries.iter().map(|(k, v)| count(k) + count(v)).sum::<usize>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_at(src: &str, span: Span) -> &str {
        &src[span.offset..span.offset + span.len]
    }

    #[test]
    fn spans_point_at_the_source_text_even_after_multibyte_characters() {
        let src = "bé: \"x y\"\nc:\n  - zed\n";
        let root = parse(src).unwrap().unwrap();
        let NodeValue::Map(entries) = &root.value else {
            panic!("not a map")
        };
        assert_eq!(text_at(src, entries[0].0.span), "bé");
        assert_eq!(text_at(src, entries[0].1.span), "\"x y\"");
        let NodeValue::Seq(items) = &entries[1].1.value else {
            panic!("not a seq")
        };
        assert_eq!(text_at(src, items[0].span), "zed");
    }

    #[test]
    fn aliases_are_expanded() {
        let root = parse("a: &x [1, 2]\nb: *x\n").unwrap().unwrap();
        let NodeValue::Map(entries) = &root.value else {
            panic!("not a map")
        };
        assert_eq!(entries[0].1.value, entries[1].1.value);
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&src).unwrap_err();
        assert!(err.message.contains("more than"), "{err}");
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let src = "a: [\n b: c";
        let err = parse(src).unwrap_err();
        assert!(err.span.offset <= src.len());
        assert!(!err.message.is_empty());
    }

    #[test]
    fn empty_documents_have_no_root() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
    }
}
