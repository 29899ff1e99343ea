//! Secrets (webhook URLs, tokens, signing keys) are named, never written: an environment
//! variable or a file. Their values never reach logs, errors or reports.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where a secret is: `{env: NAME}` or `{file: PATH}` in a pitfile (a map in YAML and JSON
/// alike).
///
/// ```
/// use pit_core::secret::SecretRef;
/// let r: SecretRef = serde_yaml::from_str("{file: /run/secrets/hook}").unwrap();
/// assert_eq!(r, SecretRef::File("/run/secrets/hook".into()));
/// assert_eq!(serde_yaml::to_string(&SecretRef::Env("HOOK".into())).unwrap(), "env: HOOK\n");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "SecretMap", into = "SecretMap")]
pub enum SecretRef {
    /// An environment variable.
    Env(String),
    /// A file (its first line; surrounding white space is dropped).
    File(PathBuf),
}

/// [`SecretRef`] as written: one key, `env` or `file`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum SecretMap {
    Env { env: String },
    File { file: PathBuf },
}

impl From<SecretMap> for SecretRef {
    fn from(m: SecretMap) -> Self {
        match m {
            SecretMap::Env { env } => Self::Env(env),
            SecretMap::File { file } => Self::File(file),
        }
    }
}

impl From<SecretRef> for SecretMap {
    fn from(r: SecretRef) -> Self {
        match r {
            SecretRef::Env(env) => Self::Env { env },
            SecretRef::File(file) => Self::File { file },
        }
    }
}

/// Where secrets are looked up: a variable's value by name (a frontend gives the process
/// environment; tests give a map).
pub type Env = dyn Fn(&str) -> Option<String> + Send + Sync;

/// A secret's value. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A value given directly (by a program, or a test).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(REDACTED)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("REDACTED")
    }
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The variable is not set (or empty).
    #[error("the environment variable `{0}` is not set (hint: set it in the CI job's secrets)")]
    Unset(String),
    /// The file cannot be read.
    #[error("cannot read the secret file {}", .0.display())]
    File(PathBuf, #[source] std::io::Error),
    /// The file is empty.
    #[error("the secret file {} is empty", .0.display())]
    Empty(PathBuf),
}

impl SecretRef {
    /// Reads the secret, with `env` as the environment (the frontend passes its own).
    ///
    /// # Errors
    /// [`SecretError`] naming the variable or file, never a value.
    pub fn read(&self, env: &Env) -> Result<Secret, SecretError> {
        match self {
            Self::Env(name) => env(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| Secret(v.trim().to_owned()))
                .ok_or_else(|| SecretError::Unset(name.clone())),
            Self::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| SecretError::File(path.clone(), e))?;
                let first = text.lines().next().unwrap_or_default().trim();
                if first.is_empty() {
                    return Err(SecretError::Empty(path.clone()));
                }
                Ok(Secret(first.to_owned()))
            }
        }
    }
}
