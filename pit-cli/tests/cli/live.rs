//! `pit run`'s live view under a real pseudo-terminal (portable-pty), read back through a
//! terminal emulator (vt100): the assertions are on the screen a person sees, including a
//! failure and a Ctrl-C.

use std::io::{Read, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{native_pty_system, Child, CommandBuilder, PtySize};

use crate::repo;

const ROWS: u16 = 30;
const COLS: u16 = 110;

/// `pit` running on a pseudo-terminal, its output drawn on an emulated screen.
struct Terminal {
    screen: Arc<(Mutex<(vt100::Parser, bool)>, Condvar)>,
    keys: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
}

impl Terminal {
    fn run(args: &[&str], env: &[(&str, &str)]) -> Self {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("a pseudo-terminal");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_pit"));
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        for name in [
            "NO_COLOR",
            "PIT_COLOR",
            "PIT_LOG",
            "PIT_FILE",
            "KUBECONFIG",
            "PIT_BACKEND",
            "PIT_PROGRESS",
        ] {
            cmd.env_remove(name);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = pty.slave.spawn_command(cmd).expect("pit starts");
        drop(pty.slave);
        let screen = Arc::new((Mutex::new((vt100::Parser::new(ROWS, COLS, 0), false)), Condvar::new()));
        let mut reader = pty.master.try_clone_reader().unwrap();
        let shared = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = reader.read(&mut buf).unwrap_or(0);
                let (lock, changed) = &*shared;
                let mut s = lock.lock().unwrap();
                if n == 0 {
                    s.1 = true; // the terminal closed: pit has exited
                    changed.notify_all();
                    return;
                }
                s.0.process(&buf[..n]);
                changed.notify_all();
            }
        });
        let keys = pty.master.take_writer().unwrap();
        // The master must outlive the child's use of the terminal.
        std::mem::forget(pty.master);
        Self { screen, keys, child }
    }

    fn contents(&self) -> String {
        rows(self.screen.0.lock().unwrap().0.screen())
    }

    /// Waits (woken by each output, at most 60 s) until `shows` holds for the screen; the
    /// screen then.
    fn until(&self, what: &str, shows: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let (lock, changed) = &*self.screen;
        let mut s = lock.lock().unwrap();
        loop {
            let screen = rows(s.0.screen());
            if shows(&screen) {
                return screen;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero() && !s.1, "the screen never showed {what}:\n{screen}");
            s = changed.wait_timeout(s, left).unwrap().0;
        }
    }

    /// Waits for pit to exit; its exit code and the last screen.
    fn exit(mut self) -> (u32, String) {
        let status = self.child.wait().unwrap();
        let (lock, changed) = &*self.screen;
        let mut s = lock.lock().unwrap();
        while !s.1 {
            s = changed.wait_timeout(s, Duration::from_secs(10)).unwrap().0;
        }
        drop(s);
        (status.exit_code(), self.contents())
    }
}

/// The screen's rows, one per line, trailing blanks trimmed (a row filled to the last column
/// is still its own line, as a person sees it).
fn rows(screen: &vt100::Screen) -> String {
    let rows: Vec<String> = screen
        .rows(0, screen.size().1)
        .map(|r| r.trim_end().to_owned())
        .collect();
    rows.join("\n").trim_end().to_owned()
}

fn fixture(name: &str) -> String {
    repo()
        .join("pit-cli/tests/fixtures/run")
        .join(name)
        .display()
        .to_string()
}

fn state_dir(name: &str) -> crate::Scratch {
    crate::scratch(&format!("live-{name}"))
}

/// The line of the screen that starts (after indentation and a spinner) with `start`.
fn find<'a>(screen: &'a str, start: &str) -> Option<&'a str> {
    screen.lines().find(|l| {
        l.trim_start_matches(|c: char| c.is_whitespace() || "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏".contains(c))
            .starts_with(start)
    })
}

fn line<'a>(screen: &'a str, start: &str) -> &'a str {
    find(screen, start).unwrap_or_else(|| panic!("no line starts with {start:?}:\n{screen}"))
}

#[test]
fn the_live_view_shows_each_component_and_a_ctrl_c_tears_down_in_view() {
    let state = state_dir("ctrl-c");
    let term = Terminal::run(
        &[
            "run",
            "--state-dir",
            state.to_str().unwrap(),
            &fixture("slow-deploy.yml"),
        ],
        &[("SLOW_SECONDS", "60")],
    );
    // While `slow` deploys: the suite's phase with its time, `fast` ready, `slow` deploying,
    // the test app waiting for it.
    let screen = term.until("slow deploying", |s| {
        find(s, "slow ").is_some_and(|l| l.contains("deploying"))
    });
    let header = line(&screen, "slow-suite: deploying").trim_end();
    assert!(
        header.ends_with('s') && header.contains(char::is_numeric),
        "its time: {screen}"
    );
    assert!(line(&screen, "fast ").contains("✓ ready ("), "{screen}");
    assert!(line(&screen, "slow ").contains("deploying"), "{screen}");
    assert!(line(&screen, "test-app ").contains("waiting for slow"), "{screen}");
    println!("while deploying:\n{screen}");

    // Ctrl-C, as a person types it: the terminal sends SIGINT to pit.
    let mut term = term;
    term.keys.write_all(b"\x03").unwrap();
    term.keys.flush().unwrap();
    term.until("the interruption", |s| s.contains("interrupted: tearing down"));
    let (code, screen) = term.exit();
    println!("after Ctrl-C:\n{screen}");
    assert_eq!(code, 130, "{screen}");
    assert!(line(&screen, "slow-suite: ").contains("✗ cancelled"), "{screen}");
    assert!(line(&screen, "fast ").contains("undeployed"), "{screen}");
    assert!(
        screen.contains("slow-suite: cancelled in"),
        "the summary follows: {screen}"
    );
}

#[test]
fn a_failed_status_check_shows_on_its_components_line() {
    let state = state_dir("failed");
    let term = Terminal::run(
        &[
            "run",
            "--state-dir",
            state.to_str().unwrap(),
            &fixture("failing-check.yml"),
        ],
        &[],
    );
    let (code, screen) = term.exit();
    println!("{screen}");
    assert_eq!(code, 3, "{screen}");
    assert!(line(&screen, "failing-check: ").contains("✗ error"), "{screen}");
    assert!(
        line(&screen, "db ").contains("✗ status-check failed: status check of `db` did not pass"),
        "{screen}"
    );
    assert!(
        line(&screen, "test-app ").contains("waiting for db"),
        "never deployed: {screen}"
    );
    // The whole error is printed above the view, once, as a line.
    assert_eq!(
        screen.matches("[failing-check] db: status-check failed").count(),
        1,
        "{screen}"
    );
}

#[test]
fn plain_lines_when_asked_and_only_the_summary_when_quiet() {
    let state = state_dir("plain");
    let plain = Terminal::run(
        &[
            "run",
            "--progress",
            "plain",
            "--state-dir",
            state.to_str().unwrap(),
            &fixture("failing-check.yml"),
        ],
        &[],
    );
    let (code, screen) = plain.exit();
    assert_eq!(code, 3);
    assert!(screen.contains("[failing-check] db: deploy\n"), "{screen}");
    assert!(!screen.contains("✗ error"), "no live view: {screen}");

    let state = state_dir("quiet");
    let quiet = Terminal::run(
        &[
            "run",
            "-q",
            "--state-dir",
            state.to_str().unwrap(),
            &fixture("failing-check.yml"),
        ],
        &[],
    );
    let (code, screen) = quiet.exit();
    assert_eq!(code, 3);
    let lines: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines[0].starts_with("failing-check: error in"),
        "the summary only: {screen}"
    );
    assert!(
        !screen.contains("[failing-check]") && !screen.contains("logs in"),
        "{screen}"
    );
}
