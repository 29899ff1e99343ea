//! Process exit codes of the `pit` command, shared by every front end.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success: the pitfile is valid, the tests passed |
//! | 1 | the tests ran and failed |
//! | 2 | bad pitfile or bad usage |
//! | 3 | infrastructure failure: deploy, lock, timeout |
//! | 130 | interrupted by Ctrl-C or SIGTERM |

/// Success (valid pitfile, tests passed).
pub const OK: i32 = 0;
/// The tests ran and failed.
pub const TESTS_FAILED: i32 = 1;
/// Bad pitfile or bad usage.
pub const INVALID: i32 = 2;
/// Infrastructure failure: deploy, lock, timeout.
pub const INFRASTRUCTURE: i32 = 3;
/// Interrupted by Ctrl-C or SIGTERM.
pub const INTERRUPTED: i32 = 130;
