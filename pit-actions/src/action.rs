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
