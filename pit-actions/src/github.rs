//! The `github` action: a commit status through GitHub's REST API and, under GitHub Actions,
//! a Markdown summary appended to `$GITHUB_STEP_SUMMARY` and `::error` annotations for the
//! failing streams.

use crate::secret::Env;
use crate::summary::Summary;

/// The API's base URL when neither the action nor `GITHUB_API_URL` names one.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// Where a status goes: `{api}/repos/{owner}/{name}/statuses/{sha}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The API's base URL, without a trailing `/`.
    pub api_url: String,
    /// `owner/name`.
    pub repository: String,
    /// The commit.
    pub sha: String,
}

impl Target {
    /// The target from the action's settings, else GitHub Actions' variables
    /// (`GITHUB_REPOSITORY`, `GITHUB_API_URL`), and the report's commit, else `GITHUB_SHA`.
    ///
    /// # Errors
    /// What is missing or malformed, and where to set it.
    ///
    /// ```
    /// use pit_actions::github::Target;
    /// # let report = pit_report::Report::load("../pit-report/tests/testdata/existing-toolkit-report.json".as_ref()).unwrap();
    /// # let summary = pit_actions::summary::Summary::of(&report, None, Default::default());
    /// let env = |n: &str| (n == "GITHUB_SHA").then(|| "0123456789abcdef0123456789abcdef01234567".to_owned());
    /// let t = Target::resolve(Some("acme/shop"), None, &summary, &env).unwrap();
    /// assert_eq!(t.url(), "https://api.github.com/repos/acme/shop/statuses/0123456789abcdef0123456789abcdef01234567");
    /// assert!(Target::resolve(Some("acme/shop/../x"), None, &summary, &env).is_err());
    /// ```
    pub fn resolve(
        repository: Option<&str>,
        api_url: Option<&str>,
        summary: &Summary,
        env: &Env,
    ) -> Result<Self, String> {
        let repository = repository
            .map(str::to_owned)
            .or_else(|| env("GITHUB_REPOSITORY"))
            .ok_or("no repository: set `repository: owner/name` (GitHub Actions sets GITHUB_REPOSITORY)")?;
        let part_ok = |p: &str| {
            !p.is_empty() && p != "." && p != ".." && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        match repository.split_once('/') {
            Some((owner, name)) if part_ok(owner) && part_ok(name) => {}
            _ => return Err(format!("`{repository}` is not a repository: write `owner/name`")),
        }
        let sha = summary
            .commit
            .clone()
            .or_else(|| env("GITHUB_SHA"))
            .ok_or("no commit: the report names none (set PIT_COMMIT, or run under GitHub Actions)")?;
        if !(7..=64).contains(&sha.len()) || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("`{sha}` is not a commit id"));
        }
        let api_url = api_url
            .map(str::to_owned)
            .or_else(|| env("GITHUB_API_URL"))
            .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
        let api_url = api_url.trim_end_matches('/').to_owned();
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(format!("`{api_url}` is not an API URL: write https://…"));
        }
        Ok(Self {
            api_url,
            repository,
            sha,
        })
    }

    /// The statuses URL.
    pub fn url(&self) -> String {
        format!("{}/repos/{}/statuses/{}", self.api_url, self.repository, self.sha)
    }
}

/// The headers GitHub's REST API asks for, with the token.
pub fn headers(token: &str) -> Vec<(String, String)> {
    vec![
        ("authorization".into(), format!("Bearer {token}")),
        ("accept".into(), "application/vnd.github+json".into()),
        ("x-github-api-version".into(), "2022-11-28".into()),
        ("user-agent".into(), concat!("pit/", env!("CARGO_PKG_VERSION")).into()),
    ]
}

/// The `::error` workflow commands for the summary's failing streams (and its error), escaped
/// as GitHub's workflow commands require.
///
/// ```
/// # let report = pit_report::Report::load("../pit-report/tests/testdata/existing-toolkit-report.json".as_ref()).unwrap();
/// # let summary = pit_actions::summary::Summary::of(&report, None, Default::default());
/// let lines = pit_actions::github::annotations(&summary);
/// assert!(lines[0].starts_with("::error title=PIT "), "{}", lines[0]);
/// ```
pub fn annotations(summary: &Summary) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(error) = &summary.error {
        out.push(command(&format!("PIT {}", summary.suite), error));
    }
    for f in &summary.failing {
        let checks: Vec<String> = f
            .checks
            .iter()
            .map(|c| {
                format!(
                    "{} required {}, observed {}",
                    c.metric,
                    c.required,
                    c.observed.as_deref().unwrap_or("nothing")
                )
            })
            .collect();
        let message = if checks.is_empty() {
            "did not meet its requirements".to_owned()
        } else {
            checks.join("\n")
        };
        out.push(command(
            &format!("PIT {}: {} / {}", summary.suite, f.scenario, f.stream),
            &message,
        ));
    }
    out
}

/// A suite's section of the step summary, as Markdown (the built-in `github-summary`
/// template): its outcome, failing streams and regressions.
///
/// # Errors
/// [`TemplateError`](crate::template::TemplateError) if the built-in template fails (a bug).
///
/// ```
/// # let report = pit_report::Report::load("../pit-report/tests/testdata/existing-toolkit-report.json".as_ref()).unwrap();
/// # let summary = pit_actions::summary::Summary::of(&report, None, Default::default());
/// let markdown = pit_actions::github::step_summary(&summary).unwrap();
/// assert!(markdown.contains("#### Failing streams"), "{markdown}");
/// ```
pub fn step_summary(summary: &Summary) -> Result<String, crate::template::TemplateError> {
    crate::template::render_text("github-summary", None, minijinja::context! { summary => summary })
        .map(|(_, text)| text)
}

/// `::error title=TITLE::MESSAGE`, escaped.
fn command(title: &str, message: &str) -> String {
    let data = |s: &str| s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
    let property = |s: &str| data(s).replace(':', "%3A").replace(',', "%2C");
    format!("::error title={}::{}", property(title), data(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_commands_escape_what_would_end_them() {
        assert_eq!(
            command("a: b, c", "50% of\nrequests"),
            "::error title=a%3A b%2C c::50%25 of%0Arequests"
        );
    }
}
