//! The `postgresql` module: drops stale databases. Identifiers are quoted; template databases,
//! the maintenance database and any database named as protected (the Lock Manager's) are never
//! touched; `force` drops a database with its open connections (`WITH (FORCE)`, PostgreSQL 13+).

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

use crate::{Module, ModuleError, Resource};

/// The module's name in `--enabled-modules`.
pub const NAME: &str = "postgresql";

/// A PostgreSQL server whose stale databases are dropped.
pub struct Postgres {
    pool: Pool,
    force: bool,
    protected: Vec<String>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("force", &self.force)
            .field("protected", &self.protected)
            .finish_non_exhaustive()
    }
}

/// `name` as a quoted SQL identifier.
///
/// ```
/// assert_eq!(pit_brownie::postgres::quote_ident(r#"a"b"#), r#""a""b""#);
/// ```
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn failed(e: &dyn std::error::Error) -> ModuleError {
    ModuleError::of(NAME, e)
}

impl Postgres {
    /// A module for the server `config` names (`host=… user=… dbname=…`, or a URL), with up
    /// to `connections` drops at once; `force` drops databases with open connections.
    ///
    /// # Errors
    /// [`ModuleError`] when the configuration cannot be read.
    pub fn new(config: tokio_postgres::Config, connections: usize, force: bool) -> Result<Self, ModuleError> {
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(connections.max(1))
            .build()
            .map_err(|e| failed(&e))?;
        Ok(Self {
            pool,
            force,
            protected: Vec::new(),
        })
    }

    /// [`Postgres::new`] from a connection string, with 8 connections.
    ///
    /// # Errors
    /// [`ModuleError`] when the string cannot be read.
    pub async fn connect(config: &str, force: bool) -> Result<Self, ModuleError> {
        let config: tokio_postgres::Config = config.parse().map_err(|e: tokio_postgres::Error| failed(&e))?;
        Self::new(config, 8, force)
    }

    /// The same, never touching the databases `names` (the Lock Manager's, say).
    #[must_use]
    pub fn protecting(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.protected.extend(names);
        self
    }
}

#[async_trait]
impl Module for Postgres {
    fn name(&self) -> &str {
        NAME
    }

    async fn list(&self) -> Result<Vec<Resource>, ModuleError> {
        let client = self.pool.get().await.map_err(|e| failed(&e))?;
        let rows = client
            .query(
                "SELECT datname, datistemplate, datname = current_database() FROM pg_catalog.pg_database ORDER BY datname",
                &[],
            )
            .await
            .map_err(|e| failed(&e))?;
        Ok(rows
            .iter()
            .map(|row| {
                let name: String = row.get(0);
                let protected = if row.get::<_, bool>(1) {
                    Some("a template database".to_owned())
                } else if row.get::<_, bool>(2) || name == "postgres" {
                    Some("the maintenance database".to_owned())
                } else if self.protected.contains(&name) {
                    Some("protected (the Lock Manager's database)".to_owned())
                } else {
                    None
                };
                Resource { name, protected }
            })
            .collect())
    }

    async fn delete(&self, name: &str) -> Result<(), String> {
        let client = self.pool.get().await.map_err(|e| pit_core::engine::error_chain(&e))?;
        let sql = format!(
            "DROP DATABASE IF EXISTS {}{}",
            quote_ident(name),
            if self.force { " WITH (FORCE)" } else { "" }
        );
        client.batch_execute(&sql).await.map_err(|e| {
            let text = pit_core::engine::error_chain(&e);
            if text.contains("being accessed by other users") {
                format!("{text} (hint: --force drops a database with its open connections)")
            } else {
                text
            }
        })
    }
}
