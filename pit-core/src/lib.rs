//! # pit-core
//!
//! The heart of PIT, the toolkit that deploys and runs performance and integration tests.
//! This crate has no Kubernetes, database or git dependency; the backends live in `pit-k8s`,
//! `pit-lock` and `pit-report`.
//!
//! Where to start:
//! - [`pitfile`]: the pitfile v1.0 model and [`pitfile::load_file`], which validates a file and
//!   reports every problem at once as a [`diagnostic::Diagnostics`];
//! - [`plan`]: [`plan::Plan::build`] computes what a run would do, without side effects;
//! - [`graph`]: deployment waves and dependency cycles;
//! - [`naming`]: run ids and environment (namespace) names.
//!
//! Later additions (issue 4): the orchestration engine, the traits `Deployer`, `LockStore`,
//! `ReportSink` and `TestRunnerClient`, and their local implementations.
//!
//! ```
//! use pit_core::pitfile::{load_str, LoadOptions};
//!
//! let report = load_str("pitfile.yml", "version: '1.0'\nprojectName: x\ntestSuites: []\n", &LoadOptions::default())
//!     .unwrap_err();
//! assert_eq!(report.diagnostics()[0].code, "pit::empty-test-suites");
//! assert_eq!(report.diagnostics()[0].path.to_string(), "testSuites");
//! ```
#![warn(missing_docs)]

pub mod deploy;
pub mod diagnostic;
pub mod engine;
pub mod exit;
pub mod graph;
pub mod http;
pub mod lock;
pub mod naming;
pub mod pitfile;
pub mod plan;
pub mod process;
pub mod protocol;
pub mod resolve;
pub mod runner;
pub mod secret;
pub mod sink;
#[cfg(feature = "testing")]
pub mod testing;
pub mod yaml;

/// The README's Rust examples, compiled and run as doc tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
