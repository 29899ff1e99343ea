//! Configuration and start-up of the service, shared by `pit lock-manager serve` and the
//! `pit-lock-manager` binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::server::{serve_on, AppState, Auth, Timeouts};
use crate::store::ServiceStore;
use crate::{MemoryStore, PgLockStore};

/// How the Lock Manager is configured: flags, each with an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on. Loopback by default; use 0.0.0.0:8080 in a container.
    #[arg(long, env = "PIT_LOCK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where locks are kept: `postgres` (shared by every instance on the database, kept
    /// across restarts) or `memory` (this process only, gone when it exits: for tests).
    #[arg(long, env = "PIT_LOCK_STORE", value_enum, default_value_t = StoreKind::Postgres)]
    pub store: StoreKind,
    /// PostgreSQL connection URL (its password never reaches the log); needed with
    /// `--store postgres`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// File of bearer tokens for the lock routes, one per line (`#` starts a comment). A line
    /// `name:token` names the principal its leases belong to; a token alone is its own.
    #[arg(long, env = "PIT_LOCK_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// File of admin tokens (force-release), one per line.
    #[arg(long, env = "PIT_LOCK_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Most pooled database connections (and one more, shared by all waiting requests, to hear releases).
    #[arg(long, env = "PIT_LOCK_POOL_SIZE", default_value_t = 16)]
    pub pool_size: usize,
    /// Once listening, write the service's base URL (`http://ADDR`) and a newline to this file
    /// or FIFO: how a deploy script learns the port of `--listen 127.0.0.1:0`.
    #[arg(long)]
    pub url_file: Option<PathBuf>,
    /// A client must send a request's header within this time of connecting or of its
    /// previous answer (closes slow and idle connections).
    #[arg(long, env = "PIT_LOCK_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// A request's body must arrive within this time of its header (else 408).
    #[arg(long, env = "PIT_LOCK_BODY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,
    /// After SIGTERM, requests in progress get this long to finish before their connections
    /// are closed.
    #[arg(long, env = "PIT_LOCK_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
}

/// Where the service keeps its locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// PostgreSQL ([`PgLockStore`]).
    Postgres,
    /// This process's memory ([`MemoryStore`]): not shared, not kept.
    Memory,
}

/// What `--store memory` says at start-up, loudly.
pub const MEMORY_WARNING: &str = "the lock store is in memory (--store memory): locks are NOT shared with other \
     Lock Manager instances and vanish when this process exits; use it for tests only, and --store postgres \
     (the default) for CI";

impl ServeArgs {
    /// The timeouts these flags give.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            header: self.header_timeout,
            body: self.body_timeout,
            shutdown_grace: self.shutdown_grace,
        }
    }
}

/// Tokens given in the environment, comma-separated: `PIT_LOCK_TOKENS` and
/// `PIT_LOCK_ADMIN_TOKENS` (read in addition to the files).
pub const TOKENS_ENV: &str = "PIT_LOCK_TOKENS";
/// See [`TOKENS_ENV`].
pub const ADMIN_TOKENS_ENV: &str = "PIT_LOCK_ADMIN_TOKENS";

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A token file could not be read.
    #[error("cannot read the token file {}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--store postgres` without a database.
    #[error(
        "no database: set DATABASE_URL or --database-url (or use --store memory for a throwaway Lock Manager in tests)"
    )]
    NoDatabase,
    /// The database could not be reached or migrated.
    #[error(transparent)]
    Store(#[from] pit_core::lock::LockError),
    /// `--url-file` could not be written.
    #[error("cannot write the URL to {}", path.display())]
    UrlFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The address could not be bound, or serving failed.
    #[error("cannot serve on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn read_tokens(file: Option<&PathBuf>, env: &str) -> Result<Vec<String>, ServeError> {
    let mut tokens: Vec<String> = std::env::var(env)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ServeError::TokenFile {
            path: path.clone(),
            source,
        })?;
        tokens.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    Ok(tokens)
}

/// The tokens `args` and the environment give.
///
/// # Errors
/// [`ServeError::TokenFile`] when a file cannot be read.
pub fn auth_from(args: &ServeArgs) -> Result<Auth, ServeError> {
    Ok(Auth {
        tokens: read_tokens(args.token_file.as_ref(), TOKENS_ENV)?,
        admin_tokens: read_tokens(args.admin_token_file.as_ref(), ADMIN_TOKENS_ENV)?,
    })
}

/// Connects, migrates, and serves until SIGTERM or Ctrl-C, then shuts down gracefully.
///
/// # Errors
/// [`ServeError`] when it cannot start.
pub async fn run(args: ServeArgs) -> Result<(), ServeError> {
    let auth = auth_from(&args)?;
    let store: Arc<dyn ServiceStore> = match (args.store, &args.database_url) {
        (StoreKind::Memory, _) => {
            tracing::warn!("{MEMORY_WARNING}");
            Arc::new(MemoryStore::new())
        }
        (StoreKind::Postgres, Some(url)) => Arc::new(PgLockStore::connect_with_pool_size(url, args.pool_size).await?),
        (StoreKind::Postgres, None) => return Err(ServeError::NoDatabase),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: args.listen,
        source,
    })?;
    if let Some(file) = &args.url_file {
        std::fs::write(file, format!("http://{addr}\n")).map_err(|source| ServeError::UrlFile {
            path: file.clone(),
            source,
        })?;
    }
    if auth.is_open() {
        tracing::warn!("no token configured: the Lock Manager is open to anyone who can reach it (set PIT_LOCK_TOKENS or --token-file)");
    }
    tracing::info!(%addr, store = store.name(), auth = if auth.is_open() { "open" } else { "bearer-token" }, "Lock Manager listening");
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            stop.cancel();
        }
    });
    serve_on(listener, AppState::with_timeouts(store, auth, args.timeouts()), stop)
        .await
        .map_err(|source| ServeError::Listen { addr, source })?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Sets up logging: JSON lines (the default, for log collectors) or text, filtered by
/// `PIT_LOG` (default `info`).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_skip_comments_and_blank_lines_and_a_missing_one_is_named() {
        let dir = tempfile::Builder::new().prefix("pit-tokens-").tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, "# CI runners\nabc123\n\n  def456  \n").unwrap();
        let tokens = read_tokens(Some(&file), "PIT_TEST_NO_SUCH_TOKENS_VAR").unwrap();
        assert_eq!(tokens, ["abc123", "def456"]);
        let err = read_tokens(Some(&dir.path().join("missing")), "PIT_TEST_NO_SUCH_TOKENS_VAR").unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
