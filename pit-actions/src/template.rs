//! Message bodies from minijinja templates: one built in per action, each replaceable by a
//! file. A body must be JSON; a template that renders anything else is refused, saying where.
//! A file named `*.json.j2` (or `*.json`) escapes every `{{ value }}` as JSON on its own;
//! otherwise write values with `| tojson`.

use std::path::{Path, PathBuf};

use crate::summary::Summary;

/// The built-in templates, by name: one body per action, and the Markdown of the `github`
/// action's step summary (`github-summary`).
pub const BUILT_IN: &[(&str, &str)] = &[
    ("teams", include_str!("../templates/teams.json.j2")),
    ("slack", include_str!("../templates/slack.json.j2")),
    ("webhook", include_str!("../templates/webhook.json.j2")),
    ("github", include_str!("../templates/github.json.j2")),
    ("github-summary", include_str!("../templates/github-summary.md.j2")),
];

/// Why a body could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The override file cannot be read.
    #[error("cannot read the template {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    /// The template is wrong (syntax, an unknown filter, a missing value).
    #[error("the {name} template failed: {message}")]
    Render {
        /// The template: a file, or `built-in <action>`.
        name: String,
        /// minijinja's message, with the line.
        message: String,
    },
    /// It rendered something that is not JSON.
    #[error("the {name} template did not make JSON: {source} (hint: write values with `| tojson`)")]
    NotJson {
        /// The template.
        name: String,
        /// Where the JSON broke.
        #[source]
        source: serde_json::Error,
    },
}

/// Renders `action`'s body for `summary`, from `file` when given, else the built-in template.
///
/// # Errors
/// [`TemplateError`] naming the template and where it broke.
pub fn render(action: &str, file: Option<&Path>, summary: &Summary) -> Result<serde_json::Value, TemplateError> {
    render_with(action, file, minijinja::context! { summary => summary })
}

/// Renders `action`'s body from `file` or the built-in template, with `context` (which holds
/// `summary` and whatever else the action gives its template).
///
/// # Errors
/// [`TemplateError`] naming the template and where it broke.
pub fn render_with(
    action: &str,
    file: Option<&Path>,
    context: minijinja::Value,
) -> Result<serde_json::Value, TemplateError> {
    let (name, text) = render_text(action, file, context)?;
    serde_json::from_str(&text).map_err(|source| TemplateError::NotJson { name, source })
}

/// Renders the template `name` (built in, or `file`) as text: its name as shown in errors,
/// and the text.
///
/// # Errors
/// [`TemplateError`] naming the template and where it broke.
pub fn render_text(
    name: &str,
    file: Option<&Path>,
    context: minijinja::Value,
) -> Result<(String, String), TemplateError> {
    let (name, source) = match file {
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path).map_err(|e| TemplateError::Read(path.to_owned(), e))?,
        ),
        None => (
            format!("built-in {name}"),
            BUILT_IN
                .iter()
                .find(|(a, _)| *a == name)
                .map(|(_, t)| (*t).to_owned())
                .unwrap_or_default(),
        ),
    };
    let text = render_str(&name, source, context)?;
    Ok((name, text))
}

/// How many instructions a template may run: far more than a message for the largest report
/// needs, and a second or so of work, so a template from a pitfile or a file that loops
/// without end fails instead of hanging the run.
pub const TEMPLATE_FUEL: u64 = 5_000_000;

/// Renders `source` (a template called `name` in errors; `*.json.j2` escapes as JSON), with at
/// most [`TEMPLATE_FUEL`] instructions.
///
/// # Errors
/// [`TemplateError::Render`].
pub fn render_str(name: &str, source: String, context: minijinja::Value) -> Result<String, TemplateError> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_fuel(Some(TEMPLATE_FUEL));
    // `md`: a value inside a Markdown table cell (no `|`, no line breaks).
    env.add_filter("md", |v: String| v.replace('|', "\\|").replace(['\r', '\n'], " "));
    let failed = |e: minijinja::Error| {
        let hint = if e.kind() == minijinja::ErrorKind::OutOfFuel {
            format!(" (hint: it ran {TEMPLATE_FUEL} instructions without finishing; look for a loop without end)")
        } else {
            String::new()
        };
        TemplateError::Render {
            name: name.to_owned(),
            message: match e.line() {
                Some(line) => format!("line {line}: {e}{hint}"),
                None => format!("{e}{hint}"),
            },
        }
    };
    env.add_template_owned(name.to_owned(), source).map_err(failed)?;
    env.get_template(name).and_then(|t| t.render(context)).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::{render_str, TemplateError};

    #[test]
    fn a_template_that_loops_without_end_runs_out_of_fuel() {
        let endless = "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}";
        let started = std::time::Instant::now();
        let err = render_str("tag name", endless.to_owned(), minijinja::context! {}).unwrap_err();
        let TemplateError::Render { name, message } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(name, "tag name");
        assert!(message.contains("line 1: engine ran out of fuel"), "{message}");
        assert!(message.contains("hint: it ran 5000000 instructions"), "{message}");
        // What a message for a large report needs still renders.
        let many = "{% for i in range(20000) %}{{ i }},{% endfor %}";
        let text = render_str("card", many.to_owned(), minijinja::context! {}).unwrap();
        assert_eq!(text.matches(',').count(), 20_000);
        eprintln!("out of fuel after {:?}", started.elapsed());
        // minijinja's own bounds hold too.
        for huge in ["{{ 'x' * 2000000000 }}", "{{ range(2000000000) | length }}"] {
            let err = render_str("tag name", huge.to_owned(), minijinja::context! {}).unwrap_err();
            assert!(err.to_string().contains("too "), "{huge}: {err}");
        }
    }
}
