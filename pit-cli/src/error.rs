//! The one error type of the CLI, and its exit codes.

use std::io;

pub use pit_core::exit;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The pitfile has errors; they were already printed.
    #[error("the pitfile is invalid")]
    InvalidPitfile,
    /// The pitfile could not be read.
    #[error(transparent)]
    Load(pit_core::pitfile::LoadError),
    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// A lock operation failed.
    #[error(transparent)]
    Lock(#[from] pit_core::lock::LockError),
    /// The Lock Manager could not start.
    #[error(transparent)]
    Serve(#[from] pit_lock::serve::ServeError),
    /// A report could not be read.
    #[error(transparent)]
    Report(#[from] pit_report::ReportError),
    /// A report store failed.
    #[error(transparent)]
    Store(#[from] pit_core::sink::SinkError),
    /// The cluster could not be reached.
    #[error(transparent)]
    Cluster(#[from] pit_k8s::ConnectError),
    /// The Kubernetes API failed.
    #[error("Kubernetes API failed")]
    Kube(#[from] pit_k8s::kube::Error),
    /// The run could not start.
    #[error(transparent)]
    Driver(#[from] pit_run::DriverError),
    /// A built-in template failed: a bug in PIT, not in the input.
    #[error("{0} (this is a bug in PIT: please report it with the report file)")]
    Render(#[from] pit_report::html::RenderError),
    /// A janitor module failed as a whole (it could not list).
    #[error(transparent)]
    Brownie(#[from] pit_brownie::ModuleError),
    /// The arguments make no sense together.
    #[error("{0}")]
    Usage(String),
    /// Writing the output failed.
    #[error("cannot write the output")]
    Output(#[source] io::Error),
    /// Writing a file the user asked for failed.
    #[error("cannot write {}", .0.display())]
    WriteFile(std::path::PathBuf, #[source] io::Error),
    /// A built-in message template failed: a bug in PIT, not in the input.
    #[error("{0} (this is a bug in PIT: please report it)")]
    Template(#[from] pit_actions::template::TemplateError),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::InvalidPitfile | CliError::Load(_) => exit::INVALID,
            // As when the flag was required: a usage error.
            CliError::Serve(pit_lock::serve::ServeError::NoDatabase) => exit::INVALID,
            CliError::Output(_) | CliError::Runtime(_) | CliError::Serve(_) => exit::INFRASTRUCTURE,
            CliError::Report(_) | CliError::Usage(_) => exit::INVALID,
            CliError::Store(_) | CliError::Cluster(_) | CliError::Kube(_) => exit::INFRASTRUCTURE,
            CliError::Render(_) | CliError::Brownie(_) | CliError::Template(_) => exit::INFRASTRUCTURE,
            CliError::WriteFile(..) => exit::INFRASTRUCTURE,
            CliError::Lock(pit_core::lock::LockError::Invalid(_)) => exit::INVALID,
            CliError::Lock(pit_core::lock::LockError::Cancelled { .. }) => exit::INTERRUPTED,
            CliError::Lock(_) => exit::INFRASTRUCTURE,
            CliError::Driver(e) => e.exit_code(),
        }
    }

    /// Whether stdout was closed by its reader (`pit plan | head`): exit quietly.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}
