//! Test tools (feature `testing`): `git` as a command and `git daemon` on loopback, for tests
//! of code that talks to real repositories.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Runs `git args` in `dir` with a fixed identity.
///
/// # Panics
/// When git fails, with its error output.
pub fn git(dir: &Path, args: &[&str]) {
    git_output(dir, args);
}

/// Runs `git args` in `dir` with a fixed identity; its standard output.
///
/// # Panics
/// When git fails, with its error output.
pub fn git_output(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `git daemon` on a free loopback port, serving the repositories under a directory (reads and
/// pushes), stopped when dropped.
#[derive(Debug)]
pub struct GitDaemon {
    child: Child,
    /// Its port.
    pub port: u16,
}

impl GitDaemon {
    /// Serves the repositories under `base` at `git://127.0.0.1:<port>/<name>`.
    ///
    /// # Panics
    /// When git-daemon cannot start or does not listen within 10 s.
    pub fn start(base: &Path) -> Self {
        use std::os::unix::process::CommandExt;
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // Run git-daemon itself, not `git daemon`: the `git` wrapper would leave the real
        // daemon behind when killed. Its own process group and no inherited output, so nothing
        // outlives the test or holds the test runner's pipes open.
        let exec_path = Command::new("git")
            .arg("--exec-path")
            .output()
            .expect("git runs")
            .stdout;
        let daemon = Path::new(String::from_utf8_lossy(&exec_path).trim()).join("git-daemon");
        let child = Command::new(daemon)
            .args([
                "--reuseaddr",
                "--export-all",
                "--enable=receive-pack",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .expect("git-daemon starts (it comes with Debian's git package)");
        let daemon = Self { child, port };
        // Wait (bounded) until it accepts connections.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not listen on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    /// The URL of repository `name` (such as `reports.git`).
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        // Only signals: the whole group, so any connection handler it forked goes too.
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
