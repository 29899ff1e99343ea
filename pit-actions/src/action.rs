//! The actions and how one runs: render its body, then send it, or print it in a dry run.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::deliver::{self, Delivered, DeliveryError, Policy};
use crate::secret::{SecretError, SecretRef};
use crate::summary::Summary;
use crate::template::{self, TemplateError};

/// One action and its settings, as written under `postTestActions` in a pitfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
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
        let (Self::Teams { template, .. } | Self::Slack { template, .. } | Self::Webhook { template, .. }) = &mut self;
        if let Some(t) = template.as_mut().filter(|t| t.is_relative()) {
            *t = dir.join(&*t);
        }
        self
    }
}

impl std::str::FromStr for Action {
    type Err = String;

    /// An action as written on a command line: `teams:REF`, `slack:REF`, `webhook:REF` or
    /// `webhook:REF:REF` (the URL, then the signing secret), where `REF` is `env:NAME` or
    /// `file:PATH`. A URL written inline is refused: it would land in shell histories and CI
    /// logs.
    ///
    /// ```
    /// use pit_actions::{action::Action, secret::SecretRef};
    /// let a: Action = "teams:env:TEAMS_WEBHOOK".parse().unwrap();
    /// assert_eq!(a, Action::Teams { webhook: SecretRef::Env("TEAMS_WEBHOOK".into()), template: None });
    /// let e = "slack:https://hooks.slack.com/services/T/B/x".parse::<Action>().unwrap_err();
    /// assert!(e.contains("env:NAME"), "{e}");
    /// ```
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let (kind, rest) = spec.split_once(':').ok_or_else(|| {
            format!(
                "`{}` names no action: write teams:REF, slack:REF or webhook:REF[:REF]",
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
            ("teams" | "slack" | "webhook", _) => Err(format!("`{}` has too many parts", redact_spec(spec))),
            (other, _) => Err(format!("`{other}` is no action: teams, slack or webhook")),
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
    /// Its name: `teams`, `slack`, `webhook`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Teams { .. } => "teams",
            Self::Slack { .. } => "slack",
            Self::Webhook { .. } => "webhook",
        }
    }

    fn template(&self) -> Option<&std::path::Path> {
        match self {
            Self::Teams { template, .. } | Self::Slack { template, .. } | Self::Webhook { template, .. } => {
                template.as_deref()
            }
        }
    }
}

/// How an action went.
#[derive(Debug)]
pub enum Outcome {
    /// Sent and accepted.
    Sent(Delivered),
    /// A dry run: what would have been sent.
    DryRun {
        /// The body.
        body: serde_json::Value,
    },
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
}

/// Runs actions: the HTTP client, the delivery policy, the environment secrets are read from,
/// and whether this is a dry run.
pub struct Runner {
    client: reqwest::Client,
    policy: Policy,
    env: Box<crate::secret::Env>,
    dry_run: bool,
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
        }
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

    /// Runs `action` for `summary`.
    ///
    /// # Errors
    /// [`ActionError`]: a secret, the template, or the delivery.
    pub async fn run(&self, action: &Action, summary: &Summary) -> Result<Outcome, ActionError> {
        let body = template::render(action.name(), action.template(), summary)?;
        if self.dry_run {
            return Ok(Outcome::DryRun { body });
        }
        let bytes = serde_json::to_vec(&body).expect("a JSON value serialises");
        let (url, headers) = match action {
            Action::Teams { webhook, .. } | Action::Slack { webhook, .. } => (webhook.read(&*self.env)?, Vec::new()),
            Action::Webhook { url, secret, .. } => {
                let headers = match secret {
                    Some(secret) => crate::sign::headers(&secret.read(&*self.env)?, &bytes),
                    None => Vec::new(),
                };
                (url.read(&*self.env)?, headers)
            }
        };
        Ok(Outcome::Sent(
            deliver::post(&self.client, &url, &headers, &bytes, &self.policy).await?,
        ))
    }
}
