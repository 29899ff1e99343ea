//! Diagnostics: what is wrong with a pitfile, where, and what to do about it.
//!
//! Every problem found while loading a pitfile becomes a [`Diagnostic`] with a stable
//! [`code`](Diagnostic::code), the [`FieldPath`] of the value at fault, its line and column, and a
//! hint. A [`Diagnostics`] holds them all with the source text, renders them as a compiler would (a
//! source excerpt with a caret, through `miette`), and serialises them as JSON.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;

use crate::yaml::Span;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; the pitfile still loads.
    Warning,
    /// The pitfile cannot be used until this is fixed.
    Error,
}

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    /// A mapping key (borrowed for the pitfile's own keys, so paths are cheap to extend).
    Key(Cow<'static, str>),
    /// A list index.
    Index(usize),
}

/// Where a value sits in the document: `testSuites[1].deployment.graph.components[2].dependsOn[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(Vec<PathSegment>);

impl FieldPath {
    /// The document root (displayed as an empty string).
    pub fn root() -> Self {
        Self::default()
    }

    /// This path with a key appended.
    #[must_use]
    pub fn key(&self, key: impl Into<Cow<'static, str>>) -> Self {
        let mut p = self.clone();
        p.0.push(PathSegment::Key(key.into()));
        p
    }

    /// This path with a list index appended.
    #[must_use]
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(PathSegment::Index(i));
        p
    }

    /// The segments, root first.
    pub fn segments(&self) -> &[PathSegment] {
        &self.0
    }

    /// The path without its last segment (the root stays the root).
    #[must_use]
    pub fn parent(&self) -> Self {
        Self(self.0[..self.0.len().saturating_sub(1)].to_vec())
    }

    /// The last key of the path, if it ends in one.
    pub fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(PathSegment::Key(k)) => Some(k),
            _ => None,
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSegment::Key(k) if i == 0 => write!(f, "{k}")?,
                PathSegment::Key(k) => write!(f, ".{k}")?,
                PathSegment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

impl Serialize for FieldPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One problem in a pitfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable identifier, such as `pit::unknown-key` (see `docs/diagnostics.md`).
    pub code: &'static str,
    /// What is wrong, in one lowercase sentence.
    pub message: String,
    /// The value at fault.
    pub path: FieldPath,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What the caret under the source excerpt says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Byte range in the source.
    #[serde(skip)]
    pub span: Span,
}

impl Diagnostic {
    /// A diagnostic at `span`; line and column are filled in by [`Diagnostics::new`].
    pub fn new(
        severity: Severity,
        code: &'static str,
        path: FieldPath,
        span: Span,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            code,
            message: message.into(),
            path,
            line: 0,
            column: 0,
            label: None,
            help: None,
            span,
        }
    }

    /// An error.
    pub fn error(code: &'static str, path: FieldPath, span: Span, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, path, span, message)
    }

    /// A warning.
    pub fn warning(code: &'static str, path: FieldPath, span: Span, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, path, span, message)
    }

    /// Adds a hint.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds the text shown under the caret.
    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// All diagnostics of one pitfile, with its source for rendering.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    file: String,
    source: Arc<str>,
    diagnostics: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Sorts the diagnostics by position and fills in their line and column.
    pub fn new(file: impl Into<String>, source: impl Into<Arc<str>>, mut diagnostics: Vec<Diagnostic>) -> Self {
        let source: Arc<str> = source.into();
        for d in &mut diagnostics {
            let offset = d.span.offset.min(source.len());
            let before = &source[..offset];
            d.line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            d.column = before[line_start..].chars().count() + 1;
        }
        diagnostics.sort_by(|a, b| (a.span.offset, b.severity, a.code).cmp(&(b.span.offset, a.severity, b.code)));
        diagnostics.dedup();
        Self {
            file: file.into(),
            source,
            diagnostics,
        }
    }

    /// The file name shown in messages.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// All diagnostics, in source order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    /// Number of warnings.
    pub fn warning_count(&self) -> usize {
        self.diagnostics.len() - self.error_count()
    }

    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.error_count() > 0
    }

    /// Renders every diagnostic with a source excerpt and caret, `width` columns wide.
    ///
    /// ```
    /// let report = pit_core::pitfile::load_str("pitfile.yml", "version: 2\n", &Default::default()).unwrap_err();
    /// let text = report.render(false, 100);
    /// assert!(text.contains("pitfile.yml:1:10"));
    /// ```
    pub fn render(&self, color: bool, width: usize) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(width)
            .with_context_lines(1);
        let mut out = String::new();
        for d in &self.diagnostics {
            let rendered = Rendered {
                d,
                file: &self.file,
                source: NamedSource::new(&self.file, self.source.to_string()),
            };
            // Writing into a String cannot fail.
            let _ = handler.render_report(&mut out, &rendered);
        }
        out
    }

    /// The diagnostics as a JSON document (`pit.diagnostics/v1`, see `docs/cli.md`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "schema": "pit.diagnostics/v1",
            "file": self.file,
            "valid": !self.has_errors(),
            "errors": self.error_count(),
            "warnings": self.warning_count(),
            "diagnostics": self.diagnostics,
        })
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false, 100))
    }
}

impl std::error::Error for Diagnostics {}

/// Adapter that lets miette draw one diagnostic.
struct Rendered<'a> {
    d: &'a Diagnostic,
    file: &'a str,
    source: NamedSource<String>,
}

impl fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.d, f)
    }
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.d;
        if d.path.segments().is_empty() {
            write!(f, "{}:{}:{}: {}", self.file, d.line, d.column, d.message)
        } else {
            write!(f, "{}:{}:{}: {}: {}", self.file, d.line, d.column, d.path, d.message)
        }
    }
}

impl std::error::Error for Rendered<'_> {}

impl Rendered<'_> {
    /// Longest line shown in an excerpt: a pitfile written as one line of JSON would otherwise
    /// print whole. Longer lines get no excerpt; the header still gives line and column.
    const MAX_EXCERPT_LINE: usize = 400;

    fn has_excerpt(&self) -> bool {
        let text = self.source.inner();
        let at = self.d.span.offset.min(text.len());
        let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        !text.is_empty() && end - start <= Self::MAX_EXCERPT_LINE
    }
}

impl miette::Diagnostic for Rendered<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.d.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.d.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.has_excerpt().then_some(&self.source as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if !self.has_excerpt() {
            return None;
        }
        let len = self.source.inner().len();
        let offset = self.d.span.offset.min(len.saturating_sub(1));
        let span = SourceSpan::new(offset.into(), self.d.span.len.min(len - offset));
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            self.d.label.clone(),
            span,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_print_like_accessors() {
        let p = FieldPath::root()
            .key("testSuites")
            .index(1)
            .key("deployment")
            .key("dependsOn")
            .index(0);
        assert_eq!(p.to_string(), "testSuites[1].deployment.dependsOn[0]");
    }

    #[test]
    fn reports_compute_line_and_column_in_characters() {
        let src = "a: é\nbb: x\n";
        let d = Diagnostic::error(
            "pit::test",
            FieldPath::root().key("bb"),
            Span { offset: 10, len: 1 },
            "bad",
        );
        let r = Diagnostics::new("f.yml", src, vec![d]);
        assert_eq!((r.diagnostics()[0].line, r.diagnostics()[0].column), (2, 5));
        assert!(r.render(false, 80).contains("f.yml:2:5"));
    }

    #[test]
    fn very_long_lines_get_no_excerpt_but_keep_their_position() {
        let src = format!("a: [{}x]\n", "1, ".repeat(500));
        let d = Diagnostic::error(
            "pit::test",
            FieldPath::root().key("a"),
            Span {
                offset: src.len() - 3,
                len: 1,
            },
            "bad",
        );
        let text = Diagnostics::new("f.yml", src.as_str(), vec![d]).render(false, 80);
        assert!(text.contains("f.yml:1:1505"), "{text}");
        assert!(text.len() < 300, "the line is not printed: {text}");
    }
}
