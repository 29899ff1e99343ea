//! # pit-k8s
//!
//! The Kubernetes backend of PIT (issue 7): a `Deployer` built on kube-rs that gives each suite
//! its own namespace (named by [`pit_core::naming::environment_name`]), runs the pitfile's
//! deploy, status-check and undeploy commands against it, streams logs, and removes the
//! namespace at teardown; and the janitor behind `pit brownie`, which deletes what crashed runs
//! left behind.
//!
//! It holds no code yet; the pitfile model and planning it builds on are in [`pit_core`].
#![warn(missing_docs)]
