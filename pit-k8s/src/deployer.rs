//! The Kubernetes [`Deployer`]: a namespace per suite; the pitfile's commands run as local
//! processes against it (as the existing toolkit's deploy scripts do, with `kubectl`), with
//! `KUBECONFIG` and `PIT_NAMESPACE` set.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kube::Client;
use pit_core::deploy::{DeployError, Deployer, Environment, EnvironmentRequest, LocalDeployer, Step};
use pit_core::pitfile::ComponentId;
use pit_core::process::Finished;
use tokio_util::sync::CancellationToken;

use crate::access::{ApiProxy, ServiceAccess};
use crate::namespace::{self, NamespaceSpec};

/// Runs suites in namespaces of a cluster.
///
/// ```no_run
/// # async fn demo() -> Result<(), kube::Error> {
/// let client = kube::Client::try_default().await?;
/// let deployer = pit_k8s::K8sDeployer::new(client, "/tmp/pit/runs/01jq", None);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct K8sDeployer {
    local: LocalDeployer,
    client: Client,
    kubeconfig: Option<PathBuf>,
    ttl: Duration,
    timeout: Duration,
    parent: Option<String>,
    access: ServiceAccess,
    /// The API server proxies serving each environment's services, stopped when it is removed.
    proxies: Arc<Mutex<HashMap<String, Vec<ApiProxy>>>>,
}

impl std::fmt::Debug for K8sDeployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K8sDeployer")
            .field("run_dir", &self.local.root())
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

impl K8sDeployer {
    /// A deployer on `client`'s cluster, keeping logs and outputs under `run_dir`;
    /// `kubeconfig` is passed to the commands (`KUBECONFIG`) when given.
    pub fn new(client: Client, run_dir: impl Into<PathBuf>, kubeconfig: Option<PathBuf>) -> Self {
        Self {
            local: LocalDeployer::new(run_dir),
            client,
            kubeconfig,
            ttl: Duration::from_secs(6 * 3600),
            timeout: Duration::from_secs(120),
            parent: None,
            access: ServiceAccess::default(),
            proxies: Arc::default(),
        }
    }

    /// How to reach a test app (or a deployed Lock Manager) whose deploy publishes no URL
    /// (default: [`ServiceAccess::ApiProxy`] on port 80, as the existing toolkit).
    #[must_use]
    pub fn with_access(mut self, access: ServiceAccess) -> Self {
        self.access = access;
        self
    }

    /// How long a namespace may live before `pit brownie` deletes it (default 6 h), written
    /// in its `pit.dev/ttl` annotation.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Makes each suite's namespace a sub-namespace of `parent` through the Hierarchical
    /// Namespace Controller (an HNC `SubnamespaceAnchor` in the parent), as the existing
    /// toolkit's deployments do.
    #[must_use]
    pub fn with_parent_namespace(mut self, parent: Option<String>) -> Self {
        self.parent = parent;
        self
    }

    /// How long to wait for a namespace to become Active, or to be gone (default 120 s).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// The cluster's own error, kept as the source.
fn env_error(name: &str, action: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> DeployError {
    DeployError::Backend {
        name: name.to_owned(),
        action,
        source: Box::new(e),
    }
}

#[async_trait]
impl Deployer for K8sDeployer {
    async fn create_environment(&self, req: &EnvironmentRequest) -> Result<Environment, DeployError> {
        let env = self.local.create_environment(req).await?;
        let spec = NamespaceSpec {
            name: req.name.clone(),
            run_id: req.run_id.to_string(),
            project: req.project.clone(),
            suite: req.suite.to_string(),
            ttl: self.ttl,
            ci_job: req.ci_job.clone(),
        };
        match &self.parent {
            Some(parent) => namespace::create_under(&self.client, parent, &spec, self.timeout).await,
            None => namespace::create(&self.client, &spec, self.timeout).await,
        }
        .map_err(|e| env_error(&req.name, "creating", e))?;
        tracing::info!(namespace = %req.name, "namespace is Active");
        Ok(env)
    }

    async fn remove_environment(&self, env: &Environment) -> Result<(), DeployError> {
        let removed = match &self.parent {
            Some(parent) => namespace::delete_under(&self.client, parent, &env.name, self.timeout).await,
            None => namespace::delete(&self.client, &env.name, self.timeout).await,
        }
        .map_err(|e| env_error(&env.name, "removing", e));
        // Its services are no longer served.
        let proxies = self.proxies.lock().expect("no panics while held").remove(&env.name);
        for proxy in proxies.into_iter().flatten() {
            proxy.shutdown(Duration::from_secs(5)).await;
        }
        // The local part (workspace) goes whatever happened to the namespace.
        let local = self.local.remove_environment(env).await;
        removed.and(local)
    }

    async fn collect_forensics(&self, env: &Environment) -> Option<Result<String, DeployError>> {
        let dir = pit_core::deploy::forensics_dir(env);
        Some(
            crate::forensics::collect(&self.client, &env.name, &dir)
                .await
                .map_err(|source| DeployError::Environment {
                    name: env.name.clone(),
                    source,
                }),
        )
    }

    /// Follows the component's pods' containers (see [`crate::logs`]) into
    /// `logs/<component>.pods.log` and `out`.
    async fn stream_logs(
        &self,
        env: &Environment,
        component: &ComponentId,
        container: Option<&str>,
        out: tokio::sync::mpsc::UnboundedSender<String>,
        stop: &CancellationToken,
    ) -> Result<(), DeployError> {
        let file = env.logs.join(format!("{component}.pods.log"));
        crate::logs::follow(&self.client, &env.name, component.as_str(), container, &file, out, stop)
            .await
            .map_err(|source| DeployError::Environment {
                name: env.name.clone(),
                source,
            })
    }

    /// Derives the URL as [`ServiceAccess`] says: the ingress route, or a loopback port
    /// forwarding to the API server's service proxy for `service` (kept until the environment is
    /// removed).
    async fn service_url(&self, env: &Environment, service: &str, route: &str) -> Result<Option<String>, DeployError> {
        match &self.access {
            ServiceAccess::Published => Ok(None),
            ServiceAccess::Ingress { .. } => Ok(self.access.ingress_url(&env.name, route)),
            ServiceAccess::ApiProxy { port } => {
                let proxy = ApiProxy::start(self.client.clone(), &env.name, service, *port)
                    .await
                    .map_err(|source| DeployError::Environment {
                        name: env.name.clone(),
                        source,
                    })?;
                let url = proxy.url().to_owned();
                self.proxies
                    .lock()
                    .expect("no panics while held")
                    .entry(env.name.clone())
                    .or_default()
                    .push(proxy);
                Ok(Some(url))
            }
        }
    }

    async fn run(&self, env: &Environment, step: &Step, cancel: &CancellationToken) -> Result<Finished, DeployError> {
        let mut step = step.clone();
        step.env.insert("PIT_NAMESPACE".into(), env.name.clone());
        if let Some(kc) = &self.kubeconfig {
            step.env.insert("KUBECONFIG".into(), kc.display().to_string());
        }
        self.local.run(env, &step, cancel).await
    }
}
