//! [`Server`]: one server to clean, as settings (the CLI, the Python bindings and embedding
//! tools each build it from their own configuration), connected anew on each sweep.

use crate::rules::Rules;
use crate::{clean, elasticsearch, kafka, postgres, Live, Module, ModuleError, ModuleReport, Options};

/// One server to clean and how to reach it. Its `Debug` never shows a password.
#[derive(Debug, Clone)]
pub enum Server {
    /// A PostgreSQL server: its stale databases.
    Postgres {
        /// How to connect (the database named is never dropped).
        config: Box<tokio_postgres::Config>,
        /// Drop databases with their open connections (`WITH (FORCE)`).
        force: bool,
        /// Databases never dropped, whatever their names say.
        protected: Vec<String>,
    },
    /// A Kafka cluster: its stale topics.
    Kafka {
        /// `host:port` of one or more brokers.
        brokers: Vec<String>,
        /// The client id brownie connects as.
        client_id: String,
        /// How to log in, if at all.
        sasl: Option<kafka::Sasl>,
    },
    /// An Elasticsearch or OpenSearch cluster: its stale indices.
    Elasticsearch {
        /// The nodes' URLs, comma separated.
        url: String,
        /// Basic authentication, if any.
        auth: Option<elasticsearch::BasicAuth>,
        /// A CA certificate (PEM) to trust besides the system's.
        ca: Option<Vec<u8>>,
    },
}

impl Server {
    /// The module that cleans it: `postgresql`, `kafka` or `elasticsearch`.
    pub fn module(&self) -> &'static str {
        match self {
            Self::Postgres { .. } => postgres::NAME,
            Self::Kafka { .. } => kafka::NAME,
            Self::Elasticsearch { .. } => elasticsearch::NAME,
        }
    }

    /// Connects, with `parallel` connections where the module pools them (PostgreSQL's
    /// pool connects on first use).
    ///
    /// # Errors
    /// [`ModuleError`] when the server cannot be reached or refuses the login.
    pub async fn connect(&self, parallel: usize) -> Result<Box<dyn Module>, ModuleError> {
        Ok(match self {
            Self::Postgres {
                config,
                force,
                protected,
            } => Box::new(
                postgres::Postgres::new((**config).clone(), parallel, *force)?.protecting(protected.iter().cloned()),
            ),
            Self::Kafka {
                brokers,
                client_id,
                sasl,
            } => Box::new(kafka::Kafka::connect(brokers.clone(), client_id, sasl.clone()).await?),
            Self::Elasticsearch { url, auth, ca } => {
                Box::new(elasticsearch::Elasticsearch::connect(url, auth.clone(), ca.as_deref()).await?)
            }
        })
    }

    /// Connects and [`clean`]s: one sweep of this server.
    ///
    /// # Errors
    /// [`ModuleError`] when the server cannot be reached or listed; a failed delete is in the
    /// report.
    pub async fn clean(&self, rules: &Rules, live: &Live, options: &Options) -> Result<ModuleReport, ModuleError> {
        let module = self.connect(options.parallel).await?;
        clean(module.as_ref(), rules, live, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_password() {
        let mut config = tokio_postgres::Config::new();
        config.host("db").password("pg-s3cret");
        let servers = [
            Server::Postgres {
                config: Box::new(config),
                force: false,
                protected: vec![],
            },
            Server::Kafka {
                brokers: vec!["k:9092".into()],
                client_id: "c".into(),
                sasl: Some(kafka::Sasl::new("plain", "u".into(), "kafka-s3cret".into()).unwrap()),
            },
            Server::Elasticsearch {
                url: "http://es:9200".into(),
                auth: Some(elasticsearch::BasicAuth {
                    username: "u".into(),
                    password: "es-s3cret".into(),
                }),
                ca: None,
            },
        ];
        for s in &servers {
            let shown = format!("{s:?}");
            assert!(!shown.contains("s3cret"), "{shown}");
        }
        assert_eq!(servers.map(|s| s.module()), ["postgresql", "kafka", "elasticsearch"]);
    }
}
