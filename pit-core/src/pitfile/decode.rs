//! Decoding the spanned YAML tree into the typed model, collecting every problem on the way.

use std::collections::HashMap;

use regex::Regex;

use super::model::*;
use super::LoadOptions;
use crate::diagnostic::{Diagnostic, FieldPath, Severity};
use crate::yaml::{parse_bool, Node, NodeValue, ScalarStyle, Span};

/// `trigger` (top level and per suite) is the existing toolkit's CI trigger: part of its
/// format, read by its pipelines, ignored by PIT, so known and no warning.
pub(crate) const TOP_KEYS: &[&str] = &[
    "version",
    "projectName",
    "lockManager",
    "testSuites",
    "trigger",
    "postTestActions",
];
pub(crate) const POST_TEST_ACTIONS_KEYS: &[&str] = &["onPass", "onFail", "onRegression"];
pub(crate) const ACTION_KEYS: &[&str] = &[
    "action",
    "webhook",
    "url",
    "secret",
    "token",
    "repository",
    "apiUrl",
    "context",
    "ref",
    "passTag",
    "failTag",
    "template",
];

pub(crate) const SECRET_KEYS: &[&str] = &["env", "file"];
/// The actions, with the settings each takes (beside `action`) and which of them are required.
const ACTIONS: &[(&str, &[&str], &[&str])] = &[
    ("teams", &["webhook", "template"], &["webhook"]),
    ("slack", &["webhook", "template"], &["webhook"]),
    ("webhook", &["url", "secret", "template"], &["url"]),
    ("github", &["repository", "token", "apiUrl", "context", "template"], &[]),
    ("git-tag", &["repository", "ref", "passTag", "failTag", "token"], &[]),
];
pub(crate) const LOCK_MANAGER_KEYS: &[&str] =
    &["enabled", "name", "id", "location", "deploy", "undeploy", "logTailing"];
pub(crate) const SUITE_KEYS: &[&str] = &[
    "name",
    "id",
    "timeoutSeconds",
    "location",
    "lock",
    "deployment",
    "testSuiteIds",
    "trigger",
];
pub(crate) const LOCK_KEYS: &[&str] = &["timeout", "ids"];
pub(crate) const DEPLOYMENT_KEYS: &[&str] = &["graph"];
pub(crate) const GRAPH_KEYS: &[&str] = &["testApp", "components"];
pub(crate) const COMPONENT_KEYS: &[&str] = &[
    "name",
    "id",
    "location",
    "deploy",
    "undeploy",
    "logTailing",
    "dependsOn",
];
pub(crate) const DEPLOY_KEYS: &[&str] = &["timeoutSeconds", "command", "params", "statusCheck", "parallel"];
pub(crate) const STATUS_CHECK_KEYS: &[&str] = &["timeoutSeconds", "command", "params"];
pub(crate) const LOG_TAILING_KEYS: &[&str] = &["enabled", "containerName"];
pub(crate) const LOCATION_KEYS: &[&str] = &["type", "path", "gitRepository", "gitRef", "pitFile"];

pub(crate) struct Decoder<'a> {
    opts: &'a LoadOptions,
    /// Every value a placeholder was replaced with, to show the placeholder instead.
    pub(crate) redactions: super::Redactions,
    env_pattern: Regex,
    source: &'a str,
    pub(crate) diags: Vec<Diagnostic>,
    /// Where secrets are written inline: masked wherever the source is shown.
    pub(crate) secrets: Vec<Span>,
}

/// A mapping being decoded.
struct Obj<'n> {
    entries: &'n [(Node, Node)],
    span: Span,
    path: FieldPath,
}

impl<'n> Obj<'n> {
    /// The value under `key`, unless absent or null.
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| scalar_text(k) == Some(key))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    fn has_key(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| scalar_text(k) == Some(key))
    }
}

fn scalar_text(node: &Node) -> Option<&str> {
    match &node.value {
        NodeValue::Scalar(s, _) => Some(s),
        _ => None,
    }
}

/// Whether `unknown` looks like a misspelling of `known`.
fn is_close(unknown: &str, known: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .collect::<String>()
            .to_lowercase()
    };
    let (u, k) = (norm(unknown), norm(known));
    if u == k {
        return true;
    }
    let limit = match k.len() {
        0..=4 => 1,
        5..=10 => 2,
        _ => 3,
    };
    strsim::damerau_levenshtein(&u, &k) <= limit
}

/// The known name closest to `unknown`, if it is close enough to be a likely typo.
pub(crate) fn suggest<'k>(unknown: &str, known: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    known
        .into_iter()
        .filter(|k| is_close(unknown, k))
        .min_by_key(|k| strsim::damerau_levenshtein(&unknown.to_lowercase(), &k.to_lowercase()))
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(source: &'a str, opts: &'a LoadOptions) -> Self {
        Self {
            opts,
            env_pattern: Regex::new(r"\$\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}").expect("the pattern is valid"),
            source,
            diags: Vec::new(),
            redactions: super::Redactions::default(),
            secrets: Vec::new(),
        }
    }

    fn error(
        &mut self,
        code: &'static str,
        path: &FieldPath,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.diags.push(Diagnostic::error(code, path.clone(), span, message));
        self.diags.last_mut().expect("just pushed")
    }

    fn wrong_type(&mut self, node: &Node, path: &FieldPath, expected: &str) {
        let found = node.kind_name();
        let d = self.error(
            "pit::wrong-type",
            path,
            node.span,
            format!("expected {expected}, found {found}"),
        );
        d.label = Some(format!("this is {found}"));
        d.help = Some(match path.last_key() {
            Some(key) => format!("write {expected} for `{key}` (see docs/pitfile.md)"),
            None if path.segments().is_empty() => {
                format!("the pitfile must be {expected} of keys such as `version`, `projectName` and `testSuites`")
            }
            None => format!("write {expected} here (see docs/pitfile.md)"),
        });
    }

    /// Opens a mapping and reports its unknown and duplicate keys.
    fn map<'n>(&mut self, node: &'n Node, path: &FieldPath, known: &[&'static str]) -> Option<Obj<'n>> {
        let NodeValue::Map(entries) = &node.value else {
            self.wrong_type(node, path, "a mapping");
            return None;
        };
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for (k, _) in entries {
            let Some(key) = scalar_text(k) else {
                self.error("pit::wrong-type", path, k.span, "mapping keys must be plain text")
                    .label = Some("this key is not text".into());
                continue;
            };
            if let Some(first) = seen.insert(key, k.span) {
                let line = self.source[..first.offset].matches('\n').count() + 1;
                let d = self.error(
                    "pit::duplicate-key",
                    &path.key(key.to_owned()),
                    k.span,
                    format!("key `{key}` appears twice"),
                );
                d.help = Some(format!("remove one of them; the first is on line {line}"));
                continue;
            }
            if known.contains(&key) {
                continue;
            }
            let absent = known
                .iter()
                .copied()
                .filter(|k| !entries.iter().any(|(e, _)| scalar_text(e) == Some(*k)));
            let suggestion = suggest(key, absent).or_else(|| suggest(key, known.iter().copied()));
            let key_path = path.key(key.to_owned());
            let d = match suggestion {
                Some(s) => Diagnostic::error("pit::unknown-key", key_path, k.span, format!("unknown key `{key}`"))
                    .with_label(format!("did you mean `{s}`?"))
                    .with_help(format!("rename it to `{s}`")),
                None => {
                    let severity = if self.opts.strict {
                        Severity::Error
                    } else {
                        Severity::Warning
                    };
                    let here = if path.segments().is_empty() {
                        "at the top level".to_owned()
                    } else {
                        format!("in `{path}`")
                    };
                    Diagnostic::new(
                        severity,
                        "pit::unknown-key",
                        key_path,
                        k.span,
                        format!("unknown key `{key}`"),
                    )
                    .with_label("PIT ignores this key")
                    .with_help(format!("known keys {here}: {}", known.join(", ")))
                }
            };
            self.diags.push(d);
        }
        Some(Obj {
            entries,
            span: node.span,
            path: path.clone(),
        })
    }

    /// Reports a required key that is absent or null, unless an unknown key already suggests it.
    fn missing(&mut self, obj: &Obj<'_>, key: &'static str, hint: &str) {
        let path = obj.path.key(key);
        let suggestion = format!("did you mean `{key}`?");
        let already = self.diags.iter().any(|d| {
            d.code == "pit::unknown-key"
                && d.label.as_deref() == Some(suggestion.as_str())
                && d.path.parent() == obj.path
        });
        if already {
            return;
        }
        let (span, msg, label) = match obj.entries.iter().find(|(k, _)| scalar_text(k) == Some(key)) {
            Some((k, _)) => (k.span, format!("`{key}` has no value"), "empty here".to_owned()),
            None => {
                let msg = if obj.path.segments().is_empty() {
                    format!("missing required key `{key}`")
                } else {
                    format!("missing required key `{key}` in `{}`", obj.path)
                };
                (obj.span, msg, format!("`{key}` is missing here"))
            }
        };
        let d = Diagnostic::error("pit::missing-field", path, span, msg)
            .with_label(label)
            .with_help(hint.to_owned());
        self.diags.push(d);
    }

    /// Expands `${{ env.NAME }}` placeholders in a string scalar.
    fn expand_env(&mut self, text: &str, node: &Node, path: &FieldPath) -> String {
        if !text.contains("${{") {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for caps in self.env_pattern.captures_iter(text) {
            let whole = caps.get(0).expect("group 0 always matches");
            let name = &caps[1];
            out.push_str(&text[last..whole.start()]);
            last = whole.end();
            let value = match &self.opts.env {
                Some(map) => map.get(name).cloned(),
                None => std::env::var(name).ok(),
            };
            match value {
                Some(v) => {
                    self.redactions.add(&v, whole.as_str());
                    out.push_str(&v);
                }
                None => {
                    out.push_str(whole.as_str());
                    // Point at the placeholder itself when it appears verbatim in the source.
                    let window_end = (node.span.offset + node.span.len + 256).min(self.source.len());
                    let span = self
                        .source
                        .get(node.span.offset..window_end)
                        .and_then(|w| w.find(whole.as_str()))
                        .map_or(node.span, |i| Span {
                            offset: node.span.offset + i,
                            len: whole.len(),
                        });
                    let d = Diagnostic::new(
                        self.opts.unset_env,
                        "pit::unset-env",
                        path.clone(),
                        span,
                        format!("environment variable `{name}` is not set"),
                    )
                    .with_label("left as written")
                    .with_help(format!("export {name}=… before running PIT, or write the value here"));
                    self.diags.push(d);
                }
            }
        }
        out.push_str(&text[last..]);
        out
    }

    /// A string scalar (plain numbers are accepted as text, as YAML users expect).
    fn scalar_string(&mut self, node: &Node, path: &FieldPath) -> Option<String> {
        match &node.value {
            NodeValue::Scalar(s, ScalarStyle::Quoted) => Some(self.expand_env(s, node, path)),
            NodeValue::Scalar(s, ScalarStyle::Plain) if !node.is_null() && parse_bool(s).is_none() => {
                Some(self.expand_env(s, node, path))
            }
            _ => {
                self.wrong_type(node, path, "a string");
                None
            }
        }
    }

    fn string(&mut self, obj: &Obj<'_>, key: &'static str) -> Option<String> {
        let node = obj.get(key)?;
        self.scalar_string(node, &obj.path.key(key))
    }

    /// A required, non-empty string.
    fn required_string(&mut self, obj: &Obj<'_>, key: &'static str, hint: &str) -> String {
        if obj.get(key).is_none() {
            self.missing(obj, key, hint);
            return String::new();
        }
        let value = self.string(obj, key).unwrap_or_default();
        if value.trim().is_empty() && obj.get(key).is_some_and(|n| matches!(n.value, NodeValue::Scalar(..))) {
            let node = obj.get(key).expect("checked above");
            let d = self.error(
                "pit::empty-value",
                &obj.path.key(key),
                node.span,
                format!("`{key}` is empty"),
            );
            d.help = Some(hint.to_owned());
        }
        value
    }

    fn string_list(&mut self, obj: &Obj<'_>, key: &'static str) -> Option<Vec<String>> {
        let node = obj.get(key)?;
        let path = obj.path.key(key);
        let NodeValue::Seq(items) = &node.value else {
            self.wrong_type(node, &path, "a list of strings");
            return None;
        };
        Some(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.scalar_string(item, &path.index(i)))
                .collect(),
        )
    }

    fn timeout_seconds(&mut self, obj: &Obj<'_>) -> u64 {
        let Some(node) = obj.get("timeoutSeconds") else {
            return DEFAULT_TIMEOUT_SECONDS;
        };
        let path = obj.path.key("timeoutSeconds");
        match &node.value {
            NodeValue::Scalar(s, ScalarStyle::Plain) => match s.parse::<u64>() {
                Ok(0) => {
                    let d = self.error(
                        "pit::bad-timeout",
                        &path,
                        node.span,
                        "`timeoutSeconds` must be at least 1",
                    );
                    d.help = Some("give the number of seconds to wait, for example `timeoutSeconds: 120`".into());
                    DEFAULT_TIMEOUT_SECONDS
                }
                Ok(n) => n,
                Err(_) if s.parse::<f64>().is_ok() => {
                    let d = self.error(
                        "pit::bad-timeout",
                        &path,
                        node.span,
                        format!("`timeoutSeconds` must be a whole positive number, found `{s}`"),
                    );
                    d.help = Some("use whole seconds, for example `timeoutSeconds: 120`".into());
                    DEFAULT_TIMEOUT_SECONDS
                }
                Err(_) => {
                    self.wrong_type(node, &path, "a whole number of seconds");
                    DEFAULT_TIMEOUT_SECONDS
                }
            },
            _ => {
                self.wrong_type(node, &path, "a whole number of seconds");
                DEFAULT_TIMEOUT_SECONDS
            }
        }
    }

    fn bool(&mut self, obj: &Obj<'_>, key: &'static str) -> Option<bool> {
        let node = obj.get(key)?;
        match &node.value {
            NodeValue::Scalar(s, ScalarStyle::Plain) if parse_bool(s).is_some() => parse_bool(s),
            _ => {
                self.wrong_type(node, &obj.path.key(key), "`true` or `false`");
                None
            }
        }
    }

    /// Decodes the whole document.
    pub(crate) fn pitfile(&mut self, root: &Node) -> Pitfile {
        let path = FieldPath::root();
        let mut pitfile = Pitfile {
            version: SchemaVersion::V1_0,
            project_name: String::new(),
            lock_manager: None,
            test_suites: Vec::new(),
            post_test_actions: None,
        };
        let Some(obj) = self.map(root, &path, TOP_KEYS) else {
            return pitfile;
        };
        self.version(&obj);
        pitfile.project_name = self.required_string(
            &obj,
            "projectName",
            "name the project, for example `projectName: my-service`",
        );
        pitfile.lock_manager = obj
            .get("lockManager")
            .map(|n| self.lock_manager(n, &path.key("lockManager")));
        pitfile.post_test_actions = obj
            .get("postTestActions")
            .map(|n| self.post_test_actions(n, &path.key("postTestActions")));
        match obj.get("testSuites") {
            None => self.missing(&obj, "testSuites", "list at least one test suite under `testSuites:`"),
            Some(node) => {
                let suites_path = path.key("testSuites");
                match &node.value {
                    NodeValue::Seq(items) if items.is_empty() => {
                        let d = self.error(
                            "pit::empty-test-suites",
                            &suites_path,
                            node.span,
                            "`testSuites` is empty",
                        );
                        d.help = Some("a pitfile needs at least one test suite".into());
                    }
                    NodeValue::Seq(items) => {
                        pitfile.test_suites = items
                            .iter()
                            .enumerate()
                            .map(|(i, n)| self.suite(n, &suites_path.index(i)))
                            .collect();
                    }
                    _ => self.wrong_type(node, &suites_path, "a list of test suites"),
                }
            }
        }
        pitfile
    }

    fn version(&mut self, obj: &Obj<'_>) {
        let Some(node) = obj.get("version") else {
            let d = Diagnostic::warning(
                "pit::missing-version",
                FieldPath::root().key("version"),
                obj.span,
                "no `version`; assuming \"1.0\"",
            )
            .with_help("add `version: \"1.0\"` at the top of the file");
            self.diags.push(d);
            return;
        };
        let ok = match &node.value {
            NodeValue::Scalar(s, ScalarStyle::Quoted) => s == "1.0",
            NodeValue::Scalar(s, ScalarStyle::Plain) => s.parse::<f64>() == Ok(1.0) && s.contains('.'),
            _ => false,
        };
        if !ok {
            let shown = scalar_text(node).map_or_else(|| node.kind_name().to_owned(), |s| format!("`{s}`"));
            let d = self.error(
                "pit::unsupported-version",
                &FieldPath::root().key("version"),
                node.span,
                format!("unsupported pitfile version {shown}"),
            );
            d.label = Some("this version".into());
            d.help = Some("this PIT reads pitfile version \"1.0\": write `version: \"1.0\"`".into());
        }
    }

    fn post_test_actions(&mut self, node: &Node, path: &FieldPath) -> PostTestActions {
        let Some(obj) = self.map(node, path, POST_TEST_ACTIONS_KEYS) else {
            return PostTestActions::default();
        };
        let mut list = |key: &'static str| -> Vec<ActionSpec> {
            let Some(node) = obj.get(key) else {
                return Vec::new();
            };
            let list_path = path.key(key);
            match &node.value {
                NodeValue::Seq(items) => items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| self.action(n, &list_path.index(i)))
                    .collect(),
                _ => {
                    self.wrong_type(node, &list_path, "a list of actions");
                    Vec::new()
                }
            }
        };
        PostTestActions {
            on_pass: list("onPass"),
            on_fail: list("onFail"),
            on_regression: list("onRegression"),
        }
    }

    fn action(&mut self, node: &Node, path: &FieldPath) -> Option<ActionSpec> {
        let obj = self.map(node, path, ACTION_KEYS)?;
        let name = self.required_string(
            &obj,
            "action",
            "name the action: `action: teams`, `slack`, `webhook`, `github` or `git-tag`",
        );
        let Some((_, settings, required)) = ACTIONS.iter().find(|(a, _, _)| *a == name) else {
            if let Some(n) = obj.get("action") {
                let known: Vec<&str> = ACTIONS.iter().map(|(a, _, _)| *a).collect();
                let help = match suggest(&name, known.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? The actions are {}", known.join(", ")),
                    None => format!("the actions are {}", known.join(", ")),
                };
                let d = self.error(
                    "pit::unknown-action",
                    &path.key("action"),
                    n.span,
                    format!("unknown action `{name}`"),
                );
                d.help = Some(help);
            }
            return None;
        };
        for &key in &ACTION_KEYS[1..] {
            if let (false, Some(n)) = (settings.contains(&key), obj.get(key)) {
                let d = self.error(
                    "pit::action-setting",
                    &path.key(key),
                    n.span,
                    format!("`{key}` is not a setting of the {name} action"),
                );
                d.help = Some(format!("{name} takes {}", settings.join(", ")));
            }
        }
        for key in *required {
            if obj.get(key).is_none() {
                self.missing(
                    &obj,
                    key,
                    &format!("name the secret: `{key}: {{env: VARIABLE}}` or `{{file: PATH}}`"),
                );
            }
        }
        // A repository URL with credentials in it is a secret written inline.
        if let Some(n) = obj.get("repository") {
            let text = scalar_text(n).unwrap_or_default();
            if crate::naming::redact_url(text) != text {
                self.inline_secret(
                    &path.key("repository"),
                    n.span,
                    "`repository` carries credentials, but they are a secret".into(),
                    "credentials written in the pitfile",
                    "write the URL without them and name the token: `token: {env: VARIABLE}` (git-tag's default is PIT_GIT_TOKEN)"
                        .into(),
                );
            }
        }
        let secret = |this: &mut Self, key: &'static str| obj.get(key).and_then(|n| this.secret(n, &path.key(key)));
        Some(ActionSpec {
            webhook: secret(self, "webhook"),
            url: secret(self, "url"),
            secret: secret(self, "secret"),
            token: secret(self, "token"),
            repository: self.string(&obj, "repository"),
            api_url: self.string(&obj, "apiUrl"),
            context: self.string(&obj, "context"),
            git_ref: self.string(&obj, "ref"),
            pass_tag: self.string(&obj, "passTag"),
            fail_tag: self.string(&obj, "failTag"),
            template: self.string(&obj, "template"),
            action: name,
        })
    }

    /// A secret's name: `{env: NAME}` or `{file: PATH}`. A value written inline is refused: it
    /// would be in the repository, and in every log that shows the pitfile.
    /// `pit::inline-secret` at `span`, whose text is masked wherever the file is quoted.
    fn inline_secret(&mut self, path: &FieldPath, span: Span, message: String, label: &str, help: String) {
        self.secrets.push(span);
        let d = self.error("pit::inline-secret", path, span, message);
        d.label = Some(label.into());
        d.help = Some(help);
    }

    fn secret(&mut self, node: &Node, path: &FieldPath) -> Option<SecretRef> {
        if let NodeValue::Scalar(..) = node.value {
            let key = path.last_key().unwrap_or("the secret").to_owned();
            self.inline_secret(
                path,
                node.span,
                format!("`{key}` is written inline, but it is a secret"),
                "a secret written in the pitfile",
                format!(
                    "name it instead, and keep the value in the CI's secrets: `{key}: {{env: VARIABLE}}` or `{key}: {{file: /run/secrets/NAME}}`"
                ),
            );
            return None;
        }
        let obj = self.map(node, path, SECRET_KEYS)?;
        match (obj.get("env"), obj.get("file")) {
            (Some(n), None) => {
                let name = scalar_text(n).unwrap_or_default().to_owned();
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    let d = self.error(
                        "pit::bad-variable-name",
                        &path.key("env"),
                        n.span,
                        "not an environment variable's name",
                    );
                    d.help = Some("write the variable's name, letters, digits and `_`: `env: TEAMS_WEBHOOK`".into());
                    return None;
                }
                Some(SecretRef::Env(name))
            }
            (None, Some(_)) => self.string(&obj, "file").map(|file| SecretRef::File(file.into())),
            _ => {
                let d = self.error(
                    "pit::secret-source",
                    path,
                    node.span,
                    "a secret comes from one place: `env` or `file`",
                );
                d.help = Some("write `{env: VARIABLE}` or `{file: PATH}`".into());
                None
            }
        }
    }

    fn lock_manager(&mut self, node: &Node, path: &FieldPath) -> LockManager {
        let Some(obj) = self.map(node, path, LOCK_MANAGER_KEYS) else {
            return LockManager::default();
        };
        LockManager {
            enabled: self.bool(&obj, "enabled").unwrap_or(false),
            name: self.string(&obj, "name"),
            id: self.string(&obj, "id").map(ComponentId),
            location: obj
                .get("location")
                .map(|n| self.location(n, &path.key("location"), false)),
            deploy: obj.get("deploy").map(|n| self.deploy(n, &path.key("deploy"))),
            undeploy: obj.get("undeploy").map(|n| self.deploy(n, &path.key("undeploy"))),
            log_tailing: obj
                .get("logTailing")
                .map(|n| self.log_tailing(n, &path.key("logTailing"))),
        }
    }

    fn suite(&mut self, node: &Node, path: &FieldPath) -> TestSuite {
        let mut suite = TestSuite {
            name: String::new(),
            id: SuiteId::default(),
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            location: Location::default(),
            lock: None,
            deployment: None,
            test_suite_ids: None,
        };
        let Some(obj) = self.map(node, path, SUITE_KEYS) else {
            return suite;
        };
        suite.name = self.required_string(
            &obj,
            "name",
            "give the suite a display name, for example `name: Smoke tests`",
        );
        suite.id = SuiteId(self.required_string(&obj, "id", "give the suite a unique id, for example `id: smoke`"));
        suite.timeout_seconds = self.timeout_seconds(&obj);
        if let Some(n) = obj.get("location") {
            suite.location = self.location(n, &path.key("location"), true);
        }
        suite.lock = obj.get("lock").map(|n| self.lock(n, &path.key("lock")));
        suite.test_suite_ids = self
            .string_list(&obj, "testSuiteIds")
            .map(|ids| ids.into_iter().map(SuiteId).collect());
        match (suite.location.kind, obj.get("deployment")) {
            (LocationType::Local, None) => {
                self.missing(&obj, "deployment", "a LOCAL suite defines its components under `deployment.graph`; for a suite defined in another repository set `location.type: REMOTE`")
            }
            (LocationType::Local, Some(n)) => suite.deployment = self.deployment(n, &path.key("deployment")),
            (LocationType::Remote, Some(n)) => {
                let d = Diagnostic::warning("pit::ignored-deployment", path.key("deployment"), n.span, "a REMOTE suite's `deployment` is ignored")
                    .with_help("the graph comes from the remote pitfile; remove `deployment` here");
                self.diags.push(d);
            }
            (LocationType::Remote, None) => {}
        }
        if suite.location.kind == LocationType::Local && obj.has_key("testSuiteIds") {
            let span = obj.get("testSuiteIds").map_or(obj.span, |n| n.span);
            let d = Diagnostic::warning(
                "pit::ignored-test-suite-ids",
                path.key("testSuiteIds"),
                span,
                "`testSuiteIds` only applies to REMOTE suites",
            )
            .with_help("remove it, or set `location.type: REMOTE` with a `gitRepository`");
            self.diags.push(d);
        }
        suite
    }

    fn location(&mut self, node: &Node, path: &FieldPath, is_suite: bool) -> Location {
        let mut location = Location::default();
        let Some(obj) = self.map(node, path, LOCATION_KEYS) else {
            return location;
        };
        if let Some(t) = obj.get("type") {
            match scalar_text(t) {
                Some("LOCAL") => location.kind = LocationType::Local,
                Some("REMOTE") => location.kind = LocationType::Remote,
                other => {
                    let shown = other.map_or_else(|| t.kind_name().to_owned(), |s| format!("`{s}`"));
                    let d = self.error(
                        "pit::bad-location-type",
                        &path.key("type"),
                        t.span,
                        format!("unknown location type {shown}"),
                    );
                    d.help = Some(match other.map(str::to_uppercase).as_deref() {
                        Some(upper @ ("LOCAL" | "REMOTE")) => {
                            format!("location types are written in capitals: `type: {upper}`")
                        }
                        _ => "write `type: LOCAL` (this repository) or `type: REMOTE` (another git repository)"
                            .to_owned(),
                    });
                }
            }
        }
        location.path = self.string(&obj, "path");
        location.git_repository = self.string(&obj, "gitRepository");
        if let Some(r) = self.string(&obj, "gitRef") {
            location.git_ref = r;
        }
        if let Some(f) = self.string(&obj, "pitFile") {
            location.pit_file = f;
        }
        if location.kind == LocationType::Remote
            && location.git_repository.is_none()
            && obj.get("gitRepository").is_none()
        {
            self.missing(&obj, "gitRepository", "a REMOTE location names the repository to fetch, for example `gitRepository: https://git.example.com/team/app.git`");
        }
        if !is_suite && obj.has_key("pitFile") {
            let span = obj.get("pitFile").map_or(obj.span, |n| n.span);
            let d = Diagnostic::warning(
                "pit::ignored-pit-file",
                path.key("pitFile"),
                span,
                "`pitFile` only applies to a test suite's location",
            )
            .with_help("remove it");
            self.diags.push(d);
        }
        location
    }

    fn lock(&mut self, node: &Node, path: &FieldPath) -> Lock {
        let mut lock = Lock {
            timeout: LockTimeout {
                duration: std::time::Duration::ZERO,
                text: String::new(),
            },
            ids: Vec::new(),
        };
        let Some(obj) = self.map(node, path, LOCK_KEYS) else {
            return lock;
        };
        match obj.get("timeout") {
            None => self.missing(
                &obj,
                "timeout",
                "say how long to wait for the locks, for example `timeout: 10m`",
            ),
            Some(n) => {
                let tpath = path.key("timeout");
                if let Some(text) = self.scalar_string(n, &tpath) {
                    match text.parse::<LockTimeout>() {
                        Ok(t) if t.duration.is_zero() => {
                            let d = self.error(
                                "pit::bad-duration",
                                &tpath,
                                n.span,
                                "the lock timeout must be longer than zero",
                            );
                            d.help = Some("for example `timeout: 10m`".into());
                        }
                        Ok(t) => lock.timeout = t,
                        Err(e) => {
                            let d = self.error(
                                "pit::bad-duration",
                                &tpath,
                                n.span,
                                format!("`{text}` is not a duration: {e}"),
                            );
                            d.label = Some("not a duration".into());
                            d.help = Some("write a number with a unit: `500ms`, `90s`, `10m`, `1h`, `1h 30m`".into());
                        }
                    }
                }
            }
        }
        match obj.get("ids") {
            None => self.missing(
                &obj,
                "ids",
                "list the locks to take, for example `ids: [shared-db]`, or remove `lock`",
            ),
            Some(n) => {
                if let Some(ids) = self.string_list(&obj, "ids") {
                    if ids.is_empty() {
                        let d = self.error("pit::empty-lock-ids", &path.key("ids"), n.span, "the lock has no ids");
                        d.help =
                            Some("list the locks to take, for example `ids: [shared-db]`, or remove `lock`".into());
                    }
                    lock.ids = ids.into_iter().map(LockId).collect();
                }
            }
        }
        lock
    }

    fn deployment(&mut self, node: &Node, path: &FieldPath) -> Option<Deployment> {
        let obj = self.map(node, path, DEPLOYMENT_KEYS)?;
        let Some(graph_node) = obj.get("graph") else {
            self.missing(
                &obj,
                "graph",
                "describe the components under `deployment.graph` with a `testApp` and `components`",
            );
            return None;
        };
        let gpath = path.key("graph");
        let gobj = self.map(graph_node, &gpath, GRAPH_KEYS)?;
        let test_app = match gobj.get("testApp") {
            None => {
                self.missing(&gobj, "testApp", "every graph has a Test Runner App under `testApp`");
                None
            }
            Some(n) => Some(self.component(n, &gpath.key("testApp"))),
        };
        let mut components = Vec::new();
        if let Some(n) = gobj.get("components") {
            let cpath = gpath.key("components");
            match &n.value {
                NodeValue::Seq(items) => {
                    components = items
                        .iter()
                        .enumerate()
                        .map(|(i, c)| self.component(c, &cpath.index(i)))
                        .collect();
                }
                _ => self.wrong_type(n, &cpath, "a list of components"),
            }
        }
        Some(Deployment {
            graph: Graph {
                test_app: test_app?,
                components,
            },
        })
    }

    fn component(&mut self, node: &Node, path: &FieldPath) -> Component {
        let empty = DeployInstructions {
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            command: String::new(),
            params: Vec::new(),
            status_check: None,
            parallel: None,
        };
        let mut c = Component {
            name: String::new(),
            id: ComponentId::default(),
            location: Location::default(),
            deploy: empty,
            undeploy: None,
            log_tailing: None,
            depends_on: Vec::new(),
        };
        let Some(obj) = self.map(node, path, COMPONENT_KEYS) else {
            return c;
        };
        c.name = self.required_string(&obj, "name", "give the component a display name");
        c.id = ComponentId(self.required_string(&obj, "id", "give the component an id, unique within its graph"));
        if let Some(n) = obj.get("location") {
            c.location = self.location(n, &path.key("location"), false);
        }
        match obj.get("deploy") {
            Some(n) => c.deploy = self.deploy(n, &path.key("deploy")),
            None => self.missing(
                &obj,
                "deploy",
                "say how to deploy it: `deploy: { command: deployment/pit/deploy.sh }`",
            ),
        }
        c.undeploy = obj.get("undeploy").map(|n| self.deploy(n, &path.key("undeploy")));
        c.log_tailing = obj
            .get("logTailing")
            .map(|n| self.log_tailing(n, &path.key("logTailing")));
        c.depends_on = self
            .string_list(&obj, "dependsOn")
            .unwrap_or_default()
            .into_iter()
            .map(ComponentId)
            .collect();
        c
    }

    fn deploy(&mut self, node: &Node, path: &FieldPath) -> DeployInstructions {
        let mut d = DeployInstructions {
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            command: String::new(),
            params: Vec::new(),
            status_check: None,
            parallel: None,
        };
        let Some(obj) = self.map(node, path, DEPLOY_KEYS) else {
            return d;
        };
        d.timeout_seconds = self.timeout_seconds(&obj);
        d.command = self.required_string(&obj, "command", "name the program to run, relative to the component's location, for example `command: deployment/pit/deploy.sh`");
        d.params = self.string_list(&obj, "params").unwrap_or_default();
        d.parallel = self.bool(&obj, "parallel");
        if let Some(n) = obj.get("statusCheck") {
            let spath = path.key("statusCheck");
            if let Some(sobj) = self.map(n, &spath, STATUS_CHECK_KEYS) {
                let timeout_seconds = self.timeout_seconds(&sobj);
                let command = self.required_string(
                    &sobj,
                    "command",
                    "name the program that exits 0 once the component is healthy",
                );
                let params = self.string_list(&sobj, "params").unwrap_or_default();
                d.status_check = Some(StatusCheck {
                    timeout_seconds,
                    command,
                    params,
                });
            }
        }
        d
    }

    fn log_tailing(&mut self, node: &Node, path: &FieldPath) -> LogTailing {
        let Some(obj) = self.map(node, path, LOG_TAILING_KEYS) else {
            return LogTailing::default();
        };
        LogTailing {
            enabled: self.bool(&obj, "enabled").unwrap_or(false),
            container_name: self.string(&obj, "containerName"),
        }
    }
}
