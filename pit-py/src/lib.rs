//! # pit-py
//!
//! Python bindings of PIT (issue 8): `import pit` exposes pitfile validation, planning and runs
//! through pyo3, built with maturin, with docstrings and type stubs.
//!
//! It holds no code yet; the APIs it will wrap are in [`pit_core`].
#![warn(missing_docs)]
