//! What the modules' tests share: names with times in them, rules that see only one test's
//! resources (the servers are shared), and a clean in a dry run or for real.

#![allow(dead_code)] // each test file uses its part

pub mod kafka;

use std::time::Duration;

use pit_brownie::rules::Rules;
use pit_brownie::{clean, Live, Module, ModuleReport, Options};

/// `yyyyMMddHHmmss` of `days_ago` days ago, in UTC.
pub fn stamp(days_ago: i64) -> String {
    let t = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * days_ago);
    t.strftime("%Y%m%d%H%M%S").to_string()
}

/// PIT's rules (three days), for names starting with `prefix` (a regular expression) only.
pub fn rules_for(prefix: &str) -> Rules {
    let pattern =
        format!(r"^{prefix}(?:.*?[^A-Za-z0-9])??pit[^A-Za-z0-9](?:.*?[^A-Za-z0-9])??(ts[0-9]{{14}})(?:[^0-9]|$)");
    Rules::new(&pattern, Duration::from_secs(3 * 86_400)).unwrap()
}

/// Cleans `module` as `rules` and `live` say, four deletes at once.
pub async fn run(module: &dyn Module, rules: &Rules, live: &Live, dry_run: bool) -> ModuleReport {
    clean(module, rules, live, &Options { dry_run, parallel: 4 })
        .await
        .unwrap()
}
