//! The actions and how one runs: render its body, then send it, or print it in a dry run.

use std::io::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::deliver::{self, Delivered, DeliveryError, Policy};
use crate::git_tag::{TagError, TagPlan};
use crate::secret::{SecretError, SecretRef};
use crate::summary::Summary;
use crate::template::{self, TemplateError};

/// One action and its settings, as written under `postTestActions` in a pitfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "action",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Action {
    /// An Adaptive Card to a Microsoft Teams Workflows webhook.
    Teams {
        /// The webhook URL (a secret).
        webhook: SecretRef,
        /// A template file in place of the built-in card.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<PathBuf>,
    },
    /// Block Kit to a Slack incoming webhook.
    Slack {
        /// The webhook URL (a secret).
        webhook: SecretRef,
        /// A template file in place of the built-in message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<PathBuf>,
    },
    /// PIT's JSON payload to any URL, signed per Standard Webhooks when a secret is given.
    Webhook {
        /// The URL (a secret: it may carry a token).
        url: SecretRef,
        /// The signing secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<SecretRef>,
        /// A template file in place of the built-in payload.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<PathBuf>,
    },
    /// A GitHub commit status; under GitHub Actions also a step summary and annotations.
    Github {
        /// `owner/name` (default: `GITHUB_REPOSITORY`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repository: Option<String>,
        /// The token (default: `GITHUB_TOKEN`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<SecretRef>,
        /// The API's base URL (default: `GITHUB_API_URL`, else `https://api.github.com`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_url: Option<String>,
        /// The status's name (default `pit/<suite>`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
        /// A template file in place of the built-in status body.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<PathBuf>,
    },
    /// A git tag on the tested commit (`dpt-pass-<sha7>` / `dpt-fail-<sha7>`), the opposite
    /// one moved away.
    GitTag {
        /// The repository's URL or path (default: the `origin` of the repository PIT runs in).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repository: Option<String>,
        /// What to tag (default: the report's commit).
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        git_ref: Option<String>,
        /// The tag of a pass, a template (default `dpt-pass-{{ sha7 }}`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pass_tag: Option<String>,
        /// The tag of a failure, a template (default `dpt-fail-{{ sha7 }}`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fail_tag: Option<String>,
        /// The token for HTTPS (default: `PIT_GIT_TOKEN`, when set).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<SecretRef>,
    },
}

impl TryFrom<&pit_core::pitfile::ActionSpec> for Action {
    type Error = String;

    /// An action of a pitfile's `postTestActions` (validated when the pitfile was loaded).
    fn try_from(spec: &pit_core::pitfile::ActionSpec) -> Result<Self, Self::Error> {
        serde_json::to_value(spec)
            .and_then(serde_json::from_value)
            .map_err(|e| format!("action `{}`: {e}", spec.action))
    }
}

impl Action {
    /// The same, with a relative template path taken from `dir` (the pitfile's folder).
    #[must_use]
    pub fn relative_to(mut self, dir: &std::path::Path) -> Self {
        if let Self::Teams { template, .. }
        | Self::Slack { template, .. }
        | Self::Webhook { template, .. }
        | Self::Github { template, .. } = &mut self
        {
            if let Some(t) = template.as_mut().filter(|t| t.is_relative()) {
                *t = dir.join(&*t);
            }
        }
        self
    }
}

impl std::str::FromStr for Action {
    type Err = String;

    /// An action as written on a command line: `teams:REF`, `slack:REF`, `webhook:REF`,
    /// `webhook:REF:REF` (the URL, then the signing secret), `github[:REF]` (the token) or
    /// `git-tag[:REF]` (the token), where `REF` is `env:NAME` or `file:PATH`. A URL written
    /// inline is refused: it would land in shell histories and CI logs.
    ///
    /// ```
    /// use pit_actions::{action::Action, secret::SecretRef};
    /// let a: Action = "teams:env:TEAMS_WEBHOOK".parse().unwrap();
    /// assert_eq!(a, Action::Teams { webhook: SecretRef::Env("TEAMS_WEBHOOK".into()), template: None });
    /// let e = "slack:https://hooks.slack.com/services/T/B/x".parse::<Action>().unwrap_err();
    /// assert!(e.contains("env:NAME"), "{e}");
    /// ```
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        match spec {
            "github" => return Ok(Self::github(None)),
            "git-tag" => return Ok(Self::git_tag(None)),
            _ => {}
        }
        let (kind, rest) = spec.split_once(':').ok_or_else(|| {
            format!(
                "`{}` names no action: write teams:REF, slack:REF, webhook:REF[:REF], github[:REF] or git-tag[:REF]",
                redact_spec(spec)
            )
        })?;
        let refs =
            parse_refs(rest).map_err(|why| format!("`{}`: {why} (write env:NAME or file:PATH)", redact_spec(spec)))?;
        match (kind, refs.as_slice()) {
            ("teams", [webhook]) => Ok(Self::Teams {
                webhook: webhook.clone(),
                template: None,
            }),
            ("slack", [webhook]) => Ok(Self::Slack {
                webhook: webhook.clone(),
                template: None,
            }),
            ("webhook", [url]) => Ok(Self::Webhook {
                url: url.clone(),
                secret: None,
                template: None,
            }),
            ("webhook", [url, secret]) => Ok(Self::Webhook {
                url: url.clone(),
                secret: Some(secret.clone()),
                template: None,
            }),
            ("github", [token]) => Ok(Self::github(Some(token.clone()))),
            ("git-tag", [token]) => Ok(Self::git_tag(Some(token.clone()))),
            ("teams" | "slack" | "webhook" | "github" | "git-tag", _) => {
                Err(format!("`{}` has too many parts", redact_spec(spec)))
            }
            (other, _) => Err(format!(
                "`{other}` is no action: teams, slack, webhook, github or git-tag"
            )),
        }
    }
}

/// `env:NAME` and `file:PATH` references, one after another.
fn parse_refs(mut rest: &str) -> Result<Vec<SecretRef>, String> {
    let mut refs = Vec::new();
    while !rest.is_empty() {
        let (kind, tail) = rest
            .split_once(':')
            .ok_or_else(|| "a secret is named, never written".to_owned())?;
        match kind {
            "env" => {
                let (name, next) = tail.split_once(':').unwrap_or((tail, ""));
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("`{name}` is no variable name"));
                }
                refs.push(SecretRef::Env(name.to_owned()));
                rest = next;
            }
            // A path may hold `:`: a file reference is the last part.
            "file" if !tail.is_empty() => {
                refs.push(SecretRef::File(tail.into()));
                rest = "";
            }
            _ => return Err("a secret is named, never written".to_owned()),
        }
    }
    if refs.is_empty() {
        return Err("no secret named".to_owned());
    }
    Ok(refs)
}

/// A spec as shown in errors: a URL in it (a mistake) is cut to its scheme and host.
fn redact_spec(spec: &str) -> String {
    match spec.find("://") {
        Some(i) => {
            let after = &spec[i + 3..];
            let host = after.split('/').next().unwrap_or_default();
            format!("{}://{host}/…", &spec[..i])
        }
        None => spec.to_owned(),
    }
}

impl Action {
    /// The `github` action with its defaults (and `token`, when given).
    pub fn github(token: Option<SecretRef>) -> Self {
        Self::Github {
            repository: None,
            token,
            api_url: None,
            context: None,
            template: None,
        }
    }

    /// The `git-tag` action with its defaults (and `token`, when given).
    pub fn git_tag(token: Option<SecretRef>) -> Self {
        Self::GitTag {
            repository: None,
            git_ref: None,
            pass_tag: None,
            fail_tag: None,
            token,
        }
    }

    /// Its name: `teams`, `slack`, `webhook`, `github`, `git-tag`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Teams { .. } => "teams",
            Self::Slack { .. } => "slack",
            Self::Webhook { .. } => "webhook",
            Self::Github { .. } => "github",
            Self::GitTag { .. } => "git-tag",
        }
    }

    fn template(&self) -> Option<&std::path::Path> {
        match self {
            Self::Teams { template, .. }
            | Self::Slack { template, .. }
            | Self::Webhook { template, .. }
            | Self::Github { template, .. } => template.as_deref(),
            Self::GitTag { .. } => None,
        }
    }
}

/// How an action went.
#[derive(Debug)]
pub enum Outcome {
    /// Sent and accepted.
    Sent(Delivered),
    /// A dry run: what would have been sent (for `git-tag`, what would be tagged).
    DryRun {
        /// The body.
        body: serde_json::Value,
    },
    /// A GitHub status was set.
    Github {
        /// The API's answer.
        delivered: Delivered,
        /// The step summary appended to (under GitHub Actions).
        step_summary: Option<PathBuf>,
        /// The `::error` lines printed on stdout (under GitHub Actions).
        annotations: Vec<String>,
    },
    /// A commit was tagged.
    Tagged(TagPlan),
}

impl Outcome {
    /// One line for a log: what happened, without any secret.
    pub fn describe(&self) -> String {
        match self {
            Self::Sent(d) => format!("sent (HTTP {}, {} call(s))", d.status, d.attempts),
            Self::DryRun { .. } => "dry run".to_owned(),
            Self::Github {
                delivered,
                step_summary,
                annotations,
            } => format!(
                "status set (HTTP {}){}{}",
                delivered.status,
                if step_summary.is_some() {
                    ", step summary written"
                } else {
                    ""
                },
                if annotations.is_empty() {
                    String::new()
                } else {
                    format!(", {} annotation(s)", annotations.len())
                }
            ),
            Self::Tagged(plan) => {
                let mut s = match &plan.tag {
                    None => format!("no tag for {}", &plan.commit[..7]),
                    Some(tag) if plan.unchanged => format!("{tag} already on {}", &plan.commit[..7]),
                    Some(tag) => format!("tagged {} as {tag}", &plan.commit[..7]),
                };
                if let Some(old) = &plan.delete {
                    s.push_str(&format!(", deleted {old}"));
                }
                s
            }
        }
    }
}

/// Why an action failed. Never shows a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActionError {
    /// A secret could not be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The body could not be made.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The body was not accepted.
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// A setting is missing or wrong (the `github` action's repository or commit).
    #[error("{0}")]
    Setting(String),
    /// Tagging failed.
    #[error(transparent)]
    Tag(#[from] TagError),
    /// The GitHub step summary could not be written.
    #[error("cannot append to the step summary {}", .0.display())]
    StepSummary(PathBuf, #[source] std::io::Error),
}

/// Runs actions: the HTTP client, the delivery policy, the environment secrets are read from,
/// and whether this is a dry run.
pub struct Runner {
    client: reqwest::Client,
    policy: Policy,
    env: Box<crate::secret::Env>,
    dry_run: bool,
    workdir: PathBuf,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("policy", &self.policy)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// A runner reading secrets through `env` (a frontend passes the process environment).
    pub fn new(env: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self {
            client: reqwest::Client::new(),
            policy: Policy::default(),
            env: Box::new(env),
            dry_run: false,
            workdir: PathBuf::from("."),
        }
    }

    /// A runner reading secrets from the process environment, as `pit run` and `import pit` do.
    pub fn from_env() -> Self {
        Self::new(|name| std::env::var(name).ok())
    }

    /// The same, delivering as `policy` says.
    #[must_use]
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The same, rendering bodies without sending them (secrets are not read either).
    #[must_use]
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// The same, with `dir` as the folder whose git repository `git-tag` tags when it names
    /// none (default: the current folder).
    #[must_use]
    pub fn with_workdir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workdir = dir.into();
        self
    }

    /// Runs `action` for `summary`.
    ///
    /// # Errors
    /// [`ActionError`]: a secret, the template, or the delivery.
    pub async fn run(&self, action: &Action, summary: &Summary) -> Result<Outcome, ActionError> {
        match action {
            Action::Teams { webhook, .. } | Action::Slack { webhook, .. } => {
                self.post(action, webhook, None, summary).await
            }
            Action::Webhook { url, secret, .. } => self.post(action, url, secret.as_ref(), summary).await,
            Action::Github {
                repository,
                token,
                api_url,
                context,
                ..
            } => {
                self.github(
                    action,
                    repository.as_deref(),
                    token.as_ref(),
                    api_url.as_deref(),
                    context.as_deref(),
                    summary,
                )
                .await
            }
            Action::GitTag {
                repository,
                git_ref,
                pass_tag,
                fail_tag,
                token,
            } => {
                let tags = (pass_tag.as_deref(), fail_tag.as_deref());
                self.git_tag(repository.as_deref(), git_ref.as_deref(), tags, token.as_ref(), summary)
                    .await
            }
        }
    }

    /// The actions that post their body to a URL (`teams`, `slack`, `webhook`), signed with
    /// `signing` when given.
    async fn post(
        &self,
        action: &Action,
        url: &SecretRef,
        signing: Option<&SecretRef>,
        summary: &Summary,
    ) -> Result<Outcome, ActionError> {
        let body = template::render(action.name(), action.template(), summary)?;
        if self.dry_run {
            return Ok(Outcome::DryRun { body });
        }
        let bytes = serde_json::to_vec(&body).expect("a JSON value serialises");
        let headers = match signing {
            Some(secret) => crate::sign::headers(&secret.read(&*self.env)?, &bytes),
            None => Vec::new(),
        };
        let url = url.read(&*self.env)?;
        Ok(Outcome::Sent(
            deliver::post(&self.client, &url, &headers, &bytes, &self.policy).await?,
        ))
    }

    /// The `github` action: the status, then (under GitHub Actions) the step summary and the
    /// annotations.
    async fn github(
        &self,
        action: &Action,
        repository: Option<&str>,
        token: Option<&SecretRef>,
        api_url: Option<&str>,
        context: Option<&str>,
        summary: &Summary,
    ) -> Result<Outcome, ActionError> {
        let target =
            crate::github::Target::resolve(repository, api_url, summary, &*self.env).map_err(ActionError::Setting)?;
        let context = context.map_or_else(|| format!("pit/{}", summary.suite), str::to_owned);
        let body = template::render_with(
            action.name(),
            action.template(),
            minijinja::context! { summary => summary, context => context },
        )?;
        if self.dry_run {
            // Both of its payloads, and what it would print.
            let markdown = crate::github::step_summary(summary)?;
            return Ok(Outcome::DryRun {
                body: serde_json::json!({
                    "status": body,
                    "stepSummary": markdown,
                    "annotations": crate::github::annotations(summary),
                }),
            });
        }
        let token = token
            .cloned()
            .unwrap_or_else(|| SecretRef::Env("GITHUB_TOKEN".into()))
            .read(&*self.env)?;
        let bytes = serde_json::to_vec(&body).expect("a JSON value serialises");
        let delivered = deliver::post(
            &self.client,
            &crate::secret::Secret::new(target.url()),
            &crate::github::headers(token.expose()),
            &bytes,
            &self.policy,
        )
        .await?;
        let step_summary = match (self.env)("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
            Some(path) => {
                let path = PathBuf::from(path);
                let markdown = crate::github::step_summary(summary)?;
                append(&path, &markdown).map_err(|e| ActionError::StepSummary(path.clone(), e))?;
                Some(path)
            }
            None => None,
        };
        let annotations = if (self.env)("GITHUB_ACTIONS").as_deref() == Some("true") {
            let lines = crate::github::annotations(summary);
            let mut out = std::io::stdout().lock();
            for line in &lines {
                // Workflow commands are read from stdout; a closed stdout only loses them.
                let _ = writeln!(out, "{line}");
            }
            lines
        } else {
            Vec::new()
        };
        Ok(Outcome::Github {
            delivered,
            step_summary,
            annotations,
        })
    }

    /// The `git-tag` action, off the async threads (git2 blocks).
    async fn git_tag(
        &self,
        repository: Option<&str>,
        git_ref: Option<&str>,
        (pass_tag, fail_tag): (Option<&str>, Option<&str>),
        token: Option<&SecretRef>,
        summary: &Summary,
    ) -> Result<Outcome, ActionError> {
        let repository = crate::git_tag::repository_or_origin(repository, &self.workdir)?;
        let git_ref = git_ref
            .map(str::to_owned)
            .or_else(|| summary.commit.clone())
            .ok_or_else(|| {
                ActionError::Setting(
                    "nothing to tag: the report names no commit (set `ref`, --git-ref or PIT_COMMIT)".into(),
                )
            })?;
        let token = match token {
            Some(t) => Some(t.read(&*self.env)?.expose().to_owned()),
            // The default token is optional: SSH and local repositories need none.
            None => (self.env)(pit_git::TOKEN_ENV).filter(|t| !t.is_empty()),
        };
        let credentials = pit_git::Credentials {
            username: (self.env)(pit_git::USERNAME_ENV).filter(|u| !u.is_empty()),
            token,
        };
        let (pass_tag, fail_tag) = (
            pass_tag.unwrap_or(crate::git_tag::DEFAULT_PASS_TAG).to_owned(),
            fail_tag.unwrap_or(crate::git_tag::DEFAULT_FAIL_TAG).to_owned(),
        );
        let (summary, dry_run) = (summary.clone(), self.dry_run);
        let plan = tokio::task::spawn_blocking(move || {
            let tagging = crate::git_tag::Tagging {
                repository: &repository,
                git_ref: &git_ref,
                pass_tag: &pass_tag,
                fail_tag: &fail_tag,
                credentials: &credentials,
            };
            crate::git_tag::tag(&tagging, &summary, dry_run)
        })
        .await
        .map_err(|e| ActionError::Setting(format!("the tagging task failed: {e}")))??;
        Ok(if self.dry_run {
            Outcome::DryRun {
                body: serde_json::to_value(&plan).expect("a plan serialises"),
            }
        } else {
            Outcome::Tagged(plan)
        })
    }
}

/// Appends `text` to the file at `path`.
fn append(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(text.as_bytes())
}
