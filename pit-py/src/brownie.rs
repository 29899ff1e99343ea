//! `pit.brownie`: the janitor's modules from Python: a [`BrownieServer`] per server to clean
//! (PostgreSQL, Kafka, Elasticsearch/OpenSearch), and `brownie_clean` for one sweep of it,
//! through `pit_brownie` as `pit brownie` uses it.

use pit_brownie::{Live, Options, Server};
use pit_core::secret::SecretRef;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<BrownieServer>()?;
    m.add_function(wrap_pyfunction!(brownie_clean, m)?)?;
    m.add("BrownieError", m.py().get_type::<errors::BrownieError>())?;
    Ok(())
}

fn value_error(e: impl std::fmt::Display) -> PyErr {
    pyo3::exceptions::PyValueError::new_err(e.to_string())
}

/// A password: `{"env": "NAME"}` or `{"file": "PATH"}`, read now (never a literal: a
/// literal in a script ends up in its repository).
fn secret(value: Option<&Bound<'_, PyDict>>, what: &str) -> PyResult<Option<String>> {
    let Some(value) = value else {
        return Ok(None);
    };
    let reference: SecretRef = crate::from_py(value.as_any(), what)?;
    reference
        .read(&|n| std::env::var(n).ok())
        .map(|s| Some(s.expose().to_owned()))
        .map_err(|e| value_error(format!("{what}: {}", pit_core::engine::error_chain(&e))))
}

/// One server to clean: build it with `postgres`, `kafka` or `elasticsearch`. Nothing is
/// connected until `brownie_clean`; its `repr` never shows a password.
#[pyclass(module = "pit", frozen, name = "BrownieServer")]
pub struct BrownieServer {
    inner: Server,
}

#[pymethods]
impl BrownieServer {
    /// A PostgreSQL server from a connection string (`host=db port=5432 user=brownie
    /// dbname=postgres` or `postgres://brownie@db/postgres`, without a password).
    #[staticmethod]
    #[pyo3(signature = (dsn, *, password=None, force=false, protect=Vec::new()))]
    fn postgres(dsn: &str, password: Option<&Bound<'_, PyDict>>, force: bool, protect: Vec<String>) -> PyResult<Self> {
        let mut config: tokio_postgres::Config = dsn
            .parse()
            .map_err(|e: tokio_postgres::Error| value_error(format!("postgres: {e}")))?;
        if config.get_password().is_some() {
            return Err(value_error(
                "postgres: the connection string has a password: pass password={'env': NAME} or {'file': PATH}",
            ));
        }
        if let Some(p) = secret(password, "postgres password")? {
            config.password(p);
        }
        config.application_name("pit-brownie");
        Ok(Self {
            inner: Server::Postgres {
                config: Box::new(config),
                force,
                protected: protect,
            },
        })
    }

    /// A Kafka cluster through `brokers` (`host:port`), with SASL when `username` is given.
    #[staticmethod]
    #[pyo3(signature = (brokers, *, client_id="pit-brownie".to_owned(), username=None, password=None, sasl_mechanism="plain".to_owned()))]
    fn kafka(
        brokers: Vec<String>,
        client_id: String,
        username: Option<String>,
        password: Option<&Bound<'_, PyDict>>,
        sasl_mechanism: String,
    ) -> PyResult<Self> {
        if brokers.is_empty() {
            return Err(value_error("kafka: give at least one broker, `host:port`"));
        }
        let sasl = match (username, secret(password, "kafka password")?) {
            (Some(user), Some(p)) => {
                Some(pit_brownie::kafka::Sasl::new(&sasl_mechanism, user, p).map_err(value_error)?)
            }
            (Some(_), None) => {
                return Err(value_error(
                    "kafka: a username needs password={'env': NAME} or {'file': PATH}",
                ))
            }
            (None, _) => None,
        };
        Ok(Self {
            inner: Server::Kafka {
                brokers,
                client_id,
                sasl,
            },
        })
    }

    /// An Elasticsearch or OpenSearch cluster at `url` (comma separated nodes allowed).
    #[staticmethod]
    #[pyo3(signature = (url, *, username=None, password=None, ca_file=None))]
    fn elasticsearch(
        url: String,
        username: Option<String>,
        password: Option<&Bound<'_, PyDict>>,
        ca_file: Option<std::path::PathBuf>,
    ) -> PyResult<Self> {
        let auth = match (username, secret(password, "elasticsearch password")?) {
            (Some(username), Some(password)) => Some(pit_brownie::elasticsearch::BasicAuth { username, password }),
            (None, None) => None,
            _ => {
                return Err(value_error(
                    "elasticsearch: give both username and password={'env': NAME} or {'file': PATH}, or neither",
                ))
            }
        };
        let ca = match ca_file {
            Some(path) => Some(
                std::fs::read(&path)
                    .map_err(|e| value_error(format!("elasticsearch: ca_file {}: {e}", path.display())))?,
            ),
            None => None,
        };
        Ok(Self {
            inner: Server::Elasticsearch { url, auth, ca },
        })
    }

    /// `postgresql`, `kafka` or `elasticsearch`.
    #[getter]
    fn module(&self) -> &'static str {
        self.inner.module()
    }

    fn __repr__(&self) -> String {
        match &self.inner {
            Server::Postgres { config, .. } => format!(
                "BrownieServer.postgres(host={:?}, port={:?}, user={:?})",
                config.get_hosts(),
                config.get_ports(),
                config.get_user().unwrap_or_default()
            ),
            Server::Kafka { brokers, .. } => format!("BrownieServer.kafka({brokers:?})"),
            Server::Elasticsearch { auth, .. } => format!(
                "BrownieServer.elasticsearch(user={:?})",
                auth.as_ref().map(|a| a.username.as_str())
            ),
        }
    }
}

/// One sweep of `server`: its report as a dict (see `pit.brownie.clean`).
#[pyfunction]
#[pyo3(signature = (server, *, retention="3days", pattern=None, live=Vec::new(), dry_run=false, parallel=32))]
fn brownie_clean(
    py: Python<'_>,
    server: &Bound<'_, BrownieServer>,
    retention: &str,
    pattern: Option<&str>,
    live: Vec<String>,
    dry_run: bool,
    parallel: usize,
) -> PyResult<Py<PyAny>> {
    let retention = pit_brownie::rules::parse_retention(retention).map_err(value_error)?;
    let rules = pit_brownie::rules::Rules::new(pattern.unwrap_or(pit_brownie::rules::DEFAULT_PATTERN), retention)
        .map_err(value_error)?;
    let server = server.get().inner.clone();
    let live = Live { environments: live };
    let options = Options {
        dry_run,
        parallel: parallel.max(1),
    };
    let (cancel, force) = (
        tokio_util::sync::CancellationToken::new(),
        tokio_util::sync::CancellationToken::new(),
    );
    let report = crate::block_on(
        py,
        async move { server.clean(&rules, &live, &options).await },
        &cancel,
        &force,
        None::<tokio::sync::mpsc::UnboundedReceiver<()>>,
        |_, ()| Ok(()),
    )?
    .map_err(|e| {
        errors::with_attrs(
            py,
            errors::BrownieError::new_err(e.to_string()),
            pit_core::exit::INFRASTRUCTURE,
            &[],
        )
    })?;
    crate::to_py(py, &report)
}
