//! The `kafka` module: deletes stale topics with rskafka (pure Rust, `default-features =
//! false`: no librdkafka to build or install, and listing and deleting topics is all it needs).
//! Topics starting with `_` (Kafka's own, `__consumer_offsets`; Connect's, Schema Registry's)
//! are never touched.

use async_trait::async_trait;
use rskafka::client::{Client, ClientBuilder, SaslConfig};

use crate::{Module, ModuleError, Resource};

/// The module's name in `--enabled-modules`.
pub const NAME: &str = "kafka";

/// How brownie logs in to the brokers.
#[derive(Clone)]
pub enum Sasl {
    /// PLAIN.
    Plain {
        /// The user.
        username: String,
        /// The password.
        password: String,
    },
    /// SCRAM-SHA-256.
    ScramSha256 {
        /// The user.
        username: String,
        /// The password.
        password: String,
    },
    /// SCRAM-SHA-512.
    ScramSha512 {
        /// The user.
        username: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for Sasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (mechanism, username) = match self {
            Self::Plain { username, .. } => ("PLAIN", username),
            Self::ScramSha256 { username, .. } => ("SCRAM-SHA-256", username),
            Self::ScramSha512 { username, .. } => ("SCRAM-SHA-512", username),
        };
        write!(f, "Sasl({mechanism}, {username}, password: REDACTED)")
    }
}

impl Sasl {
    /// The mechanism as the existing toolkit's `--kafka-sasl-mechanism` names it (`plain`,
    /// `scram-sha-256`, `scram-sha-512`, any case).
    ///
    /// # Errors
    /// An unknown mechanism, named.
    pub fn new(mechanism: &str, username: String, password: String) -> Result<Self, String> {
        match mechanism.to_ascii_lowercase().replace('_', "-").as_str() {
            "plain" => Ok(Self::Plain { username, password }),
            "scram-sha-256" => Ok(Self::ScramSha256 { username, password }),
            "scram-sha-512" => Ok(Self::ScramSha512 { username, password }),
            other => Err(format!(
                "`{other}` is not a SASL mechanism brownie speaks: plain, scram-sha-256 or scram-sha-512"
            )),
        }
    }

    fn config(&self) -> SaslConfig {
        use rskafka::client::Credentials as C;
        match self.clone() {
            Self::Plain { username, password } => SaslConfig::Plain(C::new(username, password)),
            Self::ScramSha256 { username, password } => SaslConfig::ScramSha256(C::new(username, password)),
            Self::ScramSha512 { username, password } => SaslConfig::ScramSha512(C::new(username, password)),
        }
    }
}

/// A Kafka cluster whose stale topics are deleted.
pub struct Kafka {
    client: Client,
    timeout_ms: i32,
}

impl std::fmt::Debug for Kafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kafka").finish_non_exhaustive()
    }
}

fn failed(e: &dyn std::error::Error) -> ModuleError {
    ModuleError::of(NAME, e)
}

impl Kafka {
    /// Connects to the cluster through `brokers` (`host:port`), as `client_id`, with `sasl`
    /// when given.
    ///
    /// # Errors
    /// [`ModuleError`] when no broker answers.
    pub async fn connect(brokers: Vec<String>, client_id: &str, sasl: Option<Sasl>) -> Result<Self, ModuleError> {
        // Retries end after 10 s: a refused login must not look like a broker that is down.
        let backoff = rskafka::BackoffConfig {
            deadline: Some(std::time::Duration::from_secs(10)),
            ..rskafka::BackoffConfig::default()
        };
        let mut builder = ClientBuilder::new(brokers)
            .client_id(client_id.to_owned())
            .backoff_config(backoff);
        if let Some(sasl) = sasl {
            builder = builder.sasl_config(sasl.config());
        }
        let client = tokio::time::timeout(std::time::Duration::from_secs(30), builder.build())
            .await
            .map_err(|_| ModuleError {
                module: NAME.into(),
                message: "no broker answered within 30 s".into(),
            })?
            .map_err(|e| failed(&e))?;
        Ok(Self {
            client,
            timeout_ms: 30_000,
        })
    }
}

#[async_trait]
impl Module for Kafka {
    fn name(&self) -> &str {
        NAME
    }

    async fn list(&self) -> Result<Vec<Resource>, ModuleError> {
        let topics = self.client.list_topics().await.map_err(|e| failed(&e))?;
        let mut out: Vec<Resource> = topics
            .into_iter()
            .map(|t| Resource {
                protected: t
                    .name
                    .starts_with('_')
                    .then(|| "an internal topic (its name starts with `_`)".to_owned()),
                name: t.name,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn delete(&self, name: &str) -> Result<(), String> {
        let controller = self
            .client
            .controller_client()
            .map_err(|e| pit_core::engine::error_chain(&e))?;
        controller
            .delete_topic(name, self.timeout_ms)
            .await
            .map_err(|e| pit_core::engine::error_chain(&e))
    }
}
