//! # pit-cli
//!
//! The `pit` command line. Its library part, [`driver`], is what `pit run` sets up before the
//! engine starts; the Python bindings use it too, so that `pit.run` behaves as `pit run`.
#![warn(missing_docs)]

pub mod driver;
