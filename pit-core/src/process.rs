//! Running one pitfile command: no shell, its own process group, a time limit, a log file.
//!
//! Every deploy, status check and undeploy command goes through [`run`]. The command's stdout
//! and stderr go straight to its log file (not through pipes, so a service it starts in the
//! background cannot hold PIT waiting for the pipe to close). On timeout or cancellation the
//! whole process group gets SIGTERM, then SIGKILL after [`CommandSpec::grace`].

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio_util::sync::CancellationToken;

/// How many bytes of a log's end error messages quote.
const TAIL_BYTES: u64 = 2048;

/// A command to run.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// Program and arguments. A program with a `/` is resolved against `cwd`; a bare name is
    /// looked up on `PATH`.
    pub argv: Vec<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Variables added to PIT's own environment.
    pub env: BTreeMap<String, String>,
    /// Time limit.
    pub timeout: Duration,
    /// Time between SIGTERM and SIGKILL when the command must be stopped.
    pub grace: Duration,
    /// File that receives stdout and stderr (appended).
    pub log: PathBuf,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Exit code (`None` when a signal ended it).
    pub code: Option<i32>,
    /// How long it ran.
    pub elapsed: Duration,
    /// The end of what it printed.
    pub tail: String,
}

impl Finished {
    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Why a command did not finish on its own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// It could not be started.
    #[error("cannot start `{program}` in `{}` (hint: check that it exists and is executable)", cwd.display())]
    Spawn {
        /// The program.
        program: String,
        /// Where.
        cwd: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The log file could not be written.
    #[error("cannot write log `{}`", path.display())]
    Log {
        /// The log.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It ran past its time limit and was stopped with its whole process group.
    #[error("`{program}` did not finish within {}s and was stopped", timeout.as_secs_f64())]
    TimedOut {
        /// The program.
        program: String,
        /// The limit.
        timeout: Duration,
        /// The end of what it printed.
        tail: String,
    },
    /// The run was cancelled (Ctrl-C, SIGTERM, or another failure) and the command stopped.
    #[error("`{program}` was stopped because the run is ending")]
    Cancelled {
        /// The program.
        program: String,
    },
    /// The argv was empty.
    #[error("empty command")]
    Empty,
}

/// Runs `spec` to its end, its time limit, or `cancel`.
///
/// # Errors
/// [`ProcessError`] when the command cannot start, runs too long, or is cancelled. A command
/// that exits non-zero is not an error here: see [`Finished::success`].
#[tracing::instrument(skip_all, fields(program = spec.argv.first().map(String::as_str), cwd = %spec.cwd.display()))]
pub async fn run(spec: &CommandSpec, cancel: &CancellationToken) -> Result<Finished, ProcessError> {
    let program = spec.argv.first().ok_or(ProcessError::Empty)?;
    // Arguments and variables may hold secrets: only the program and directory are logged.
    tracing::debug!(timeout_s = spec.timeout.as_secs_f64(), "starting command");
    if let Some(dir) = spec.log.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ProcessError::Log {
            path: spec.log.clone(),
            source,
        })?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(|source| ProcessError::Log {
            path: spec.log.clone(),
            source,
        })?;
    let start_len = log.metadata().map(|m| m.len()).unwrap_or(0);
    let err_log = log.try_clone().map_err(|source| ProcessError::Log {
        path: spec.log.clone(),
        source,
    })?;
    let resolved = if program.contains('/') {
        spec.cwd.join(program)
    } else {
        PathBuf::from(program)
    };
    let mut child = tokio::process::Command::new(&resolved)
        .args(&spec.argv[1..])
        .current_dir(&spec.cwd)
        .envs(&spec.env)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .process_group(0)
        .spawn()
        .map_err(|source| ProcessError::Spawn {
            program: program.clone(),
            cwd: spec.cwd.clone(),
            source,
        })?;
    let pgid = child.id().and_then(|id| i32::try_from(id).ok()).map(Pid::from_raw);
    let started = Instant::now();
    let outcome = tokio::select! {
        status = child.wait() => Ok(status),
        () = tokio::time::sleep(spec.timeout) => Err(true),
        () = cancel.cancelled() => Err(false),
    };
    match outcome {
        Ok(status) => {
            let status = status.map_err(|source| ProcessError::Spawn {
                program: program.clone(),
                cwd: spec.cwd.clone(),
                source,
            })?;
            Ok(Finished {
                code: status.code(),
                elapsed: started.elapsed(),
                tail: tail(&spec.log, start_len),
            })
        }
        Err(timed_out) => {
            stop_group(&mut child, pgid, spec.grace).await;
            if timed_out {
                Err(ProcessError::TimedOut {
                    program: program.clone(),
                    timeout: spec.timeout,
                    tail: tail(&spec.log, start_len),
                })
            } else {
                Err(ProcessError::Cancelled {
                    program: program.clone(),
                })
            }
        }
    }
}

/// SIGTERM to the group, then SIGKILL to whatever is left after `grace`.
async fn stop_group(child: &mut tokio::process::Child, pgid: Option<Pid>, grace: Duration) {
    let Some(pgid) = pgid else { return };
    let _ = killpg(pgid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    // The leader may exit before its children: wait for the whole group to be gone.
    let _ = tokio::time::timeout(grace, child.wait()).await;
    while group_alive(pgid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if group_alive(pgid) {
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = child.wait().await;
        // SIGKILL cannot be ignored; the kernel needs a moment to end every member.
        let deadline = Instant::now() + Duration::from_secs(2);
        while group_alive(pgid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let _ = child.wait().await;
}

/// Whether any live process (not a zombie waiting to be reaped) is in the group.
///
/// Reads `/proc`, so it is Linux-specific; elsewhere it falls back to a signal-0 probe, which
/// also counts zombies.
pub fn group_alive(pgid: Pid) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return killpg(pgid, None).is_ok();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter_map(ProcStat::of)
        .any(|s| s.pgrp == pgid.as_raw() && s.is_running())
}

/// What `/proc/PID/stat` says of a process (Linux only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Its state: `R`, `S`, `Z` (a zombie), …
    pub state: char,
    /// Its process group.
    pub pgrp: i32,
    /// When it started, in clock ticks since boot: with the pid, it tells a process from a
    /// later one that reused the pid.
    pub start: u64,
}

impl ProcStat {
    /// The process `pid`, if there is one (and `/proc` to read).
    pub fn of(pid: i32) -> Option<Self> {
        Self::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// Reads a `/proc/PID/stat` line: "pid (comm) state ppid pgrp …", where comm may hold
    /// spaces and parentheses, so fields are counted from the last `)`.
    fn parse(stat: &str) -> Option<Self> {
        let (_, rest) = stat.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(Self {
            state: fields.first()?.chars().next()?,
            pgrp: fields.get(2)?.parse().ok()?,
            start: fields.get(19)?.parse().ok()?,
        })
    }

    /// Whether it still runs: a zombie (`Z`) or a dead task (`X`) has ended.
    pub fn is_running(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

/// Whether the process `pid` exists and has not ended (a zombie has).
pub fn is_running(pid: i32) -> bool {
    ProcStat::of(pid).is_some_and(|s| s.is_running())
}

/// The variable every command of a suite gets, naming the suite's run: processes that carry it
/// and are still alive at teardown were left behind by the suite's commands (a background
/// child, even one that left the process group with `setsid`), and are ended.
pub const PROCESS_TAG_ENV: &str = "PIT_PROCESS_TAG";

/// The tag of `suite`'s commands in run `run`: `run/suite`.
pub fn process_tag(run: &str, suite: &str) -> String {
    format!("{run}/{suite}")
}

/// The file in a run's directory naming the `pit` process that runs it.
pub const RUN_OWNER_FILE: &str = "pit-process.json";

/// Records this process as the one running the run in `run_dir`, so that a later run can
/// tell whether it was killed (see [`end_left_by_dead_runs`]).
///
/// # Errors
/// When the file cannot be written.
pub fn claim_run_dir(run_dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(run_dir)?;
    let me = crate::lock::HolderProcess::current();
    std::fs::write(
        run_dir.join(RUN_OWNER_FILE),
        serde_json::to_vec(&me).map_err(std::io::Error::other)?,
    )
}

/// After a `pit` was killed (SIGKILL, a lost CI runner), what its suites' commands started
/// keeps running. For every run directory under `runs_dir` whose recorded `pit` process is
/// gone (on this host), ends the processes tagged with that run, then marks the directory as
/// checked (the owner file is renamed `pit-process.done.json`). The runs and the pids ended.
pub async fn end_left_by_dead_runs(runs_dir: &Path, grace: Duration) -> Vec<(String, Vec<i32>)> {
    let here = crate::lock::HolderProcess::current();
    let Ok(entries) = std::fs::read_dir(runs_dir) else {
        return Vec::new();
    };
    let mut dead: Vec<(String, PathBuf)> = Vec::new();
    for e in entries.flatten() {
        let owner_file = e.path().join(RUN_OWNER_FILE);
        let Ok(bytes) = std::fs::read(&owner_file) else {
            continue;
        };
        let Ok(owner) = serde_json::from_slice::<crate::lock::HolderProcess>(&bytes) else {
            continue;
        };
        if owner.is_gone(&here) {
            dead.push((e.file_name().to_string_lossy().into_owned(), owner_file));
        }
    }
    let mut out = Vec::new();
    for (run, owner_file) in dead {
        let prefix = format!("{run}/");
        let ended = end_tagged(|tag| tag.starts_with(&prefix), grace).await;
        let _ = std::fs::rename(&owner_file, owner_file.with_file_name("pit-process.done.json"));
        if !ended.is_empty() {
            out.push((run, ended));
        }
    }
    out
}

/// The processes (other than this one) whose environment holds [`PROCESS_TAG_ENV`] with a
/// value for which `matches` holds. Linux only (`/proc/PID/environ`); elsewhere none. A
/// process that cleared its environment, or that runs as another user, is not seen.
pub fn tagged_processes(matches: impl Fn(&str) -> bool) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    let prefix = format!("{PROCESS_TAG_ENV}=");
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|b| *b == 0).any(|var| {
                    var.strip_prefix(prefix.as_bytes())
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .is_some_and(&matches)
                })
            })
        })
        .filter_map(|pid| i32::try_from(pid).ok())
        .collect()
}

/// Ends every process tagged for which `matches` holds: SIGTERM, then SIGKILL to those still
/// there after `grace`. The pids it found.
pub async fn end_tagged(matches: impl Fn(&str) -> bool, grace: Duration) -> Vec<i32> {
    use nix::sys::signal::kill;
    let found = tagged_processes(&matches);
    if found.is_empty() {
        return found;
    }
    for pid in &found {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while found.iter().any(|p| is_running(*p)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for pid in found.iter().filter(|p| is_running(**p)) {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    tracing::info!(count = found.len(), "ended processes left behind");
    found
}

/// The last 2 KiB written to `log` since `from`, on whole lines.
pub fn tail(log: &Path, from: u64) -> String {
    let Ok(mut f) = std::fs::File::open(log) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = from.max(len.saturating_sub(TAIL_BYTES));
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let text = if start > from {
        text.split_once('\n').map_or(&*text, |(_, rest)| rest)
    } else {
        &text
    };
    text.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_from_the_last_parenthesis() {
        // A command name with spaces and parentheses must not shift the fields.
        let line = "4242 (a (b) c) Z 1 4240 4240 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 987654 0 0";
        let s = ProcStat::parse(line).unwrap();
        assert_eq!((s.state, s.pgrp, s.start), ('Z', 4240, 987_654));
        assert!(!s.is_running());
        let me = ProcStat::of(i32::try_from(std::process::id()).unwrap()).unwrap();
        assert!(me.is_running());
        assert_eq!(
            Some(me.start),
            ProcStat::of(i32::try_from(std::process::id()).unwrap()).map(|s| s.start)
        );
    }

    fn spec(dir: &Path, argv: &[&str], timeout_ms: u64) -> CommandSpec {
        CommandSpec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cwd: dir.to_path_buf(),
            env: BTreeMap::from([("GREETING".into(), "hello; rm -rf /".into())]),
            timeout: Duration::from_millis(timeout_ms),
            grace: Duration::from_millis(300),
            log: dir.join("logs/cmd.log"),
        }
    }

    /// A fresh directory, removed with the returned guard (also when the test fails).
    fn tempdir(name: &str) -> (tempfile::TempDir, PathBuf) {
        let guard = tempfile::Builder::new()
            .prefix(&format!("pit-process-{name}-"))
            .tempdir()
            .unwrap();
        let path = guard.path().to_path_buf();
        (guard, path)
    }

    #[tokio::test]
    async fn arguments_and_environment_reach_the_command_without_a_shell() {
        let (_guard, dir) = tempdir("args");
        let s = spec(
            &dir,
            &[
                "sh",
                "-c",
                "printf '%s|%s\\n' \"$1\" \"$GREETING\"",
                "sh",
                "$(whoami) `id`",
            ],
            5000,
        );
        let done = run(&s, &CancellationToken::new()).await.unwrap();
        assert!(done.success());
        assert_eq!(done.tail, "$(whoami) `id`|hello; rm -rf /");
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_stopped_with_its_whole_group() {
        let (_guard, dir) = tempdir("timeout");
        // The child ignores SIGTERM and starts a grandchild: both must be gone afterwards.
        let script = "trap '' TERM; sleep 30 & echo started; echo $$ > pid; wait";
        let s = spec(&dir, &["sh", "-c", script], 300);
        let err = run(&s, &CancellationToken::new()).await.unwrap_err();
        let ProcessError::TimedOut { tail, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(tail, "started");
        let pid: i32 = std::fs::read_to_string(dir.join("pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(!group_alive(Pid::from_raw(pid)), "no process of the group is left");
    }

    #[tokio::test]
    async fn cancelling_stops_the_command() {
        let (_guard, dir) = tempdir("cancel");
        let cancel = CancellationToken::new();
        let s = spec(&dir, &["sleep", "30"], 60_000);
        let c = cancel.clone();
        let run = tokio::spawn(async move { run(&s, &c).await });
        cancel.cancel();
        let err = run.await.unwrap().unwrap_err();
        assert!(matches!(err, ProcessError::Cancelled { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error_naming_it() {
        let (_guard, dir) = tempdir("missing");
        let err = run(&spec(&dir, &["./no-such-script.sh"], 1000), &CancellationToken::new())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("./no-such-script.sh"), "{err}");
    }

    #[tokio::test]
    async fn a_background_service_does_not_hold_the_command_open() {
        let (_guard, dir) = tempdir("background");
        let s = spec(&dir, &["sh", "-c", "sleep 5 & echo $! > bg.pid; echo deployed"], 3000);
        let done = run(&s, &CancellationToken::new()).await.unwrap();
        assert!(done.success());
        assert!(done.elapsed < Duration::from_secs(3));
        let pid: i32 = std::fs::read_to_string(dir.join("bg.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}
