//! # pit-report
//!
//! PIT's reports (issue 6): the report schema (version 1.0 of the existing PIT toolkit, with
//! optional additions), HTML rendering (minijinja), JUnit XML, the directory and git report
//! stores (`ReportSink`s), and comparison with earlier runs.
//!
//! It holds no code yet.
#![warn(missing_docs)]
