//! # pit-k8s
//!
//! The Kubernetes backend of PIT:
//!
//! - [`K8sDeployer`]: a `pit_core::deploy::Deployer` that gives each suite its own namespace
//!   (named by [`pit_core::naming::environment_name`], labelled with the run, project and suite,
//!   annotated with its creation time, TTL and CI job), waits until it is Active, runs the
//!   pitfile's commands against it with `KUBECONFIG` and `PIT_NAMESPACE`, and at teardown
//!   deletes it and waits until it is gone, saying what blocks it when it is not;
//! - [`logs`]: `logTailing`, following a component's pods' containers while the suite runs;
//! - [`janitor`]: `pit brownie`, which deletes the namespaces crashed runs left behind;
//! - [`access`]: reaching a test app that publishes no URL, through the ingress or the API
//!   server's service proxy, as the existing toolkit's deployer does.
//!
//! Both are tested against a real control plane (`scripts/k8s up`).
#![warn(missing_docs)]

pub mod access;
mod deployer;
pub mod forensics;
pub mod janitor;
pub mod logs;
pub mod namespace;
pub mod rollout;

pub use access::ServiceAccess;
pub use deployer::K8sDeployer;
pub use kube;

pub(crate) use pit_core::engine::error_chain;

/// Why PIT could not talk to a cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The kubeconfig could not be read.
    #[error("cannot read the kubeconfig {}", path.display())]
    Kubeconfig {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No configuration was found, or it was unusable.
    #[error("no usable Kubernetes configuration (hint: pass --kubeconfig or set KUBECONFIG)")]
    Config(#[source] kube::Error),
}

/// A client for the cluster of `kubeconfig`, or of the environment (`KUBECONFIG`,
/// `~/.kube/config`, or in-cluster) when none is given.
///
/// # Errors
/// [`ConnectError`] when the configuration cannot be read.
pub async fn client(kubeconfig: Option<&std::path::Path>) -> Result<kube::Client, ConnectError> {
    match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|source| ConnectError::Kubeconfig {
                path: path.to_owned(),
                source,
            })?;
            let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|source| ConnectError::Kubeconfig {
                    path: path.to_owned(),
                    source,
                })?;
            kube::Client::try_from(config).map_err(ConnectError::Config)
        }
        None => kube::Client::try_default().await.map_err(ConnectError::Config),
    }
}
