//! # pit-report
//!
//! PIT's reports: the report schema (version 1.0 of the existing PIT toolkit, with optional
//! additions), JUnit XML, self-contained HTML pages, the directory and git report stores, comparison with
//! earlier runs, and the pages of a directory store over HTTP ([`serve::router`]).
#![warn(missing_docs)]

pub mod compare;
pub mod html;
mod junit;
pub mod schema;
pub mod serve;
pub mod store;
mod svg;

pub use junit::{to_junit, to_junit_all};
pub use schema::{Report, ReportError, Verdict};
