//! Run ids and environment names.
//!
//! Every run has one [`RunId`]: a ULID in lower case, so ids sort by start time and fit in
//! Kubernetes names. Each suite of a run gets an environment (a namespace on Kubernetes, a
//! sandbox directory locally) named by [`environment_name`]: a DNS-1123 label of at most 63
//! characters.

use std::fmt;
use std::str::FromStr;

use crate::pitfile::SuiteId;

/// Longest DNS-1123 label.
pub const MAX_LABEL_LEN: usize = 63;

/// A sortable run id: 26 lower-case Crockford base32 characters, time first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId(ulid::Ulid);

impl RunId {
    /// A new id for a run starting now.
    pub fn generate() -> Self {
        Self(ulid::Ulid::new())
    }

    /// When the run started, as milliseconds since the Unix epoch.
    pub fn timestamp_ms(&self) -> u64 {
        self.0.timestamp_ms()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_string().to_lowercase())
    }
}

/// A string that is not a run id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a run id (hint: a run id is a 26-character ULID such as `01jq3v5c2m8k4r6t9w0x1y2z3a`)")]
pub struct InvalidRunId(String);

impl FromStr for RunId {
    type Err = InvalidRunId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ulid::Ulid::from_string(&s.to_uppercase())
            .map(Self)
            .map_err(|_| InvalidRunId(s.to_owned()))
    }
}

impl serde::Serialize for RunId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The environment name of `suite` in run `run`: `pit-<suite>-<run id>`, a valid DNS-1123 label.
///
/// The suite id is lower-cased, every other character becomes `-`, and it is shortened to fit.
/// When that changed the id, a short hash of the original keeps distinct suites apart.
///
/// ```
/// use pit_core::naming::{environment_name, RunId};
/// let run: RunId = "01JQ3V5C2M8K4R6T9W0X1Y2Z3A".parse().unwrap();
/// assert_eq!(environment_name(&run, &"smoke".into()), "pit-smoke-01jq3v5c2m8k4r6t9w0x1y2z3a");
/// assert!(environment_name(&run, &"A very long Suite_Name that goes on and on".into()).len() <= 63);
/// ```
pub fn environment_name(run: &RunId, suite: &SuiteId) -> String {
    let run = run.to_string();
    let budget = MAX_LABEL_LEN - "pit-".len() - 1 - run.len();
    let mut slug = String::new();
    for c in suite.as_str().chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let mut slug = slug.trim_matches('-').to_owned();
    if slug != suite.as_str() || slug.len() > budget {
        let hash = fnv1a(suite.as_str().as_bytes());
        let tag = format!("{:06x}", hash & 0xff_ffff);
        slug.truncate(budget - tag.len() - 1);
        let slug_trimmed = slug.trim_end_matches('-');
        slug = if slug_trimmed.is_empty() {
            tag
        } else {
            format!("{slug_trimmed}-{tag}")
        };
    }
    format!("pit-{slug}-{run}")
}

/// FNV-1a: a stable hash (std's hashers may change between releases, names must not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether `s` is a DNS-1123 label (lower-case alphanumerics and `-`, alphanumeric at both ends,
/// 1–63 characters).
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LABEL_LEN
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// `url` without its password or token (`scheme://user:secret@host/…` → `scheme://host/…`),
/// for messages and logs.
///
/// ```
/// use pit_core::naming::redact_url;
/// assert_eq!(redact_url("postgres://pit:s3cret@db:5432/pit"), "postgres://db:5432/pit");
/// assert_eq!(redact_url("https://git.example.com/r.git"), "https://git.example.com/r.git");
/// ```
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}{}", &url[..scheme + 3], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn run_ids_round_trip_and_sort_by_time() {
        let a = RunId::generate();
        let b: RunId = a.to_string().parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string().len(), 26);
        assert!("not-a-run".parse::<RunId>().is_err());
    }

    #[test]
    fn lossy_slugs_keep_distinct_suites_apart() {
        let run = RunId::generate();
        assert_ne!(
            environment_name(&run, &"a_b".into()),
            environment_name(&run, &"a-b".into())
        );
        assert_ne!(environment_name(&run, &"A".into()), environment_name(&run, &"a".into()));
    }

    proptest! {
        #[test]
        fn environment_names_are_always_dns_labels(suite in ".{0,100}") {
            let name = environment_name(&RunId::generate(), &SuiteId(suite));
            prop_assert!(is_dns_label(&name), "{name}");
        }
    }
}
