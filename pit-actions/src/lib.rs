//! # pit-actions
//!
//! What PIT does once a suite's report is stored: tell people and systems what the run found.
//! Each action renders its body from a minijinja template (built in, or a file of the user's)
//! and sends it with a timeout and retries; a dry run prints it instead.
//!
//! - [`summary::Summary`]: the facts every message shows, from a stored report and its
//!   comparison with the baseline.
//! - [`action::Action`]: `teams` (an Adaptive Card), `slack` (Block Kit), `webhook` (PIT's
//!   payload, signed per Standard Webhooks); [`action::Runner`] runs them.
//! - [`secret`]: webhook URLs and tokens are named (an environment variable, a file), never
//!   written; their values never reach logs, errors or reports.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use pit_actions::{action::{Action, Runner}, secret::SecretRef, summary::{Links, Summary}};
//! let report = pit_report::Report::load("report.json".as_ref())?;
//! let summary = Summary::of(&report, None, Links::default());
//! let teams = Action::Teams { webhook: SecretRef::Env("TEAMS_WEBHOOK".into()), template: None };
//! Runner::from_env().run(&teams, &summary).await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod action;
pub mod deliver;
pub mod git_tag;
pub mod github;
pub mod hook;
/// Secrets, named in pitfiles and flags (pit-core's, so the pitfile model shares them).
pub use pit_core::secret;
pub mod sign;
pub mod summary;
pub mod template;
#[cfg(feature = "testing")]
pub mod testing;
