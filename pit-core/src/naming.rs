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

/// The suffix PIT gives every command as `PIT_RESOURCE_SUFFIX`, for the names of databases,
/// topics and indices a suite creates: `pit_<run id>_ts<yyyyMMddHHmmss>` (UTC, the run's start).
/// `pit brownie` reads the time back, and keeps the resource while the run's environments are
/// alive (their names end with the run id). 47 characters: PostgreSQL cuts names at 63, which
/// leaves 16 for a prefix (`pit_<environment>_…` would leave none).
///
/// ```
/// use pit_core::naming::{resource_suffix, RunId};
/// let run: RunId = "01kb8x3v4g0000000000000000".parse().unwrap();
/// assert_eq!(resource_suffix(&run), "pit_01kb8x3v4g0000000000000000_ts20251129225307");
/// ```
pub fn resource_suffix(run: &RunId) -> String {
    let at = jiff::Timestamp::from_millisecond(i64::try_from(run.timestamp_ms()).unwrap_or(i64::MAX))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("pit_{run}_ts{}", at.strftime("%Y%m%d%H%M%S"))
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

/// `url` without its password or token (`scheme://user:secret@host/…` → `scheme://host/…`), and
/// with the values of query parameters that carry secrets (`password`, `sslpassword`, `token`,
/// `secret`, … in any case) replaced by `REDACTED`, for messages and logs.
///
/// ```
/// use pit_core::naming::redact_url;
/// assert_eq!(redact_url("postgres://pit:s3cret@db:5432/pit"), "postgres://db:5432/pit");
/// assert_eq!(redact_url("https://git.example.com/r.git"), "https://git.example.com/r.git");
/// assert_eq!(
///     redact_url("postgres://db/pit?sslmode=require&password=s3cret"),
///     "postgres://db/pit?sslmode=require&password=REDACTED"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let (base, query) = match base.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (base, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}{}", &base[..scheme + 3], &base[at + 1..]),
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_secret_key(key) => format!("{key}=REDACTED"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// Whether a connection parameter or query key names a secret.
fn is_secret_key(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    ["password", "passwd", "pwd", "token", "secret", "apikey", "api_key"]
        .iter()
        .any(|s| key.contains(s))
}

/// A PostgreSQL connection string without its secrets, in either form libpq accepts: a URI
/// (see [`redact_url`]) or `key=value` pairs, where `password` and `sslpassword` values
/// (quoted or not) become `REDACTED`. A string that cannot be read as either is not shown.
///
/// ```
/// use pit_core::naming::redact_conninfo;
/// assert_eq!(
///     redact_conninfo(r"host=db password='it\'s a \\ secret' dbname=pit"),
///     "host=db password=REDACTED dbname=pit"
/// );
/// assert_eq!(redact_conninfo("postgresql://pit:s3cret@db/pit"), "postgresql://db/pit");
/// assert_eq!(redact_conninfo("host=db password='unterminated"), "<connection string not shown>");
/// ```
pub fn redact_conninfo(conninfo: &str) -> String {
    let trimmed = conninfo.trim_start();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        return redact_url(trimmed);
    }
    redact_key_values(conninfo).unwrap_or_else(|| "<connection string not shown>".to_owned())
}

/// libpq's `key = value` form: values plain, or single-quoted with `\'` and `\\` escapes.
fn redact_key_values(s: &str) -> Option<String> {
    let mut out: Vec<String> = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Some(out.join(" "));
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') || key.is_empty() {
            return None;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            value.push('\'');
            loop {
                match chars.next()? {
                    '\\' => {
                        value.push('\\');
                        value.push(chars.next()?);
                    }
                    '\'' => {
                        value.push('\'');
                        break;
                    }
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        if is_secret_key(&key) {
            value = "REDACTED".to_owned();
        }
        out.push(format!("{key}={value}"));
    }
}

/// Text that came from outside (a lock owner, an id, a report's name), shown with its control
/// characters escaped, so that it can neither move the cursor, clear a terminal nor forge a
/// line of output: `\n` shows as `\n`, ESC as `\u{1b}`. Tabs are kept.
///
/// ```
/// use pit_core::naming::Escaped;
/// assert_eq!(Escaped("ci\n[pit] forged\u{1b}[2J").to_string(), "ci\\n[pit] forged\\u{1b}[2J");
/// assert_eq!(Escaped("plain – text\twith tab").to_string(), "plain – text\twith tab");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        for c in self.0.chars() {
            if is_unsafe_for_terminal(c) {
                for e in c.escape_default() {
                    f.write_char(e)?;
                }
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// Control characters (but tab) and the Unicode characters that reorder text (bidirectional
/// overrides and isolates), which can make printed text read as something else.
pub fn is_unsafe_for_terminal(c: char) -> bool {
    (c.is_control() && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
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
