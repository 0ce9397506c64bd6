//! Test preconditions and checked shell-outs shared by every test binary.
//!
//! A test that cannot run here (not root, a tool missing) must never count as
//! passed:
//! - with `CI` set (what `.ci/run` gets) it **fails**, naming what it needed;
//! - otherwise it is **skipped**: it says so on stderr (not captured by the
//!   test harness) and appends a line to the file named by
//!   [`SKIP_LOG_VAR`], which `cargo xtask test` reads to count the test as
//!   skipped rather than passed.
//!
//! ```no_run
//! // In a test binary: `#[test] fn needs_the_kernel() { ... }`.
//! fn needs_the_kernel() {
//!     if !sluice_test_util::require_root("needs_the_kernel") {
//!         return;
//!     }
//!     // ...
//! }
//! ```
//!
//! A check that shells out goes through [`run`]/[`stdout`]: a tool that fails
//! fails the test, so an empty output never stands in for a real one.
//!
//! With the `fake-api` feature, `fake_api` is an in-memory fake API server
//! behind a real `kube::Client` (REST verbs, list and streamed watch), for the
//! unit tests of API clients.

#[cfg(feature = "fake-api")]
pub mod fake_api;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output};

/// The environment variable naming the file skipped tests are appended to.
pub const SKIP_LOG_VAR: &str = "SLUICE_SKIP_LOG";

/// Whether this run is CI (`CI` set to anything but empty, `0` or `false`).
#[must_use]
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The precondition every other one goes through: `ok` says whether `test`
/// can run; `needs` says what it needs ("root", "the tool `bpftool`", ...).
///
/// Returns `true` when the test may go on. When it may not: panics under CI;
/// elsewhere records a skip and returns `false` (the test must then return).
///
/// # Panics
/// Under CI when `ok` is false.
#[must_use]
pub fn require(test: &str, ok: bool, needs: &str) -> bool {
    if ok {
        return true;
    }
    assert!(
        !in_ci(),
        "{test} cannot run: it needs {needs} (CI is set, so this is a failure, not a skip)"
    );
    let line = format!("SKIPPED {test}: needs {needs}\n");
    // Straight to fd 2: the harness captures `eprintln!`, not the raw stream.
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(log) = std::env::var_os(SKIP_LOG_VAR) {
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
    }
    false
}

/// Whether we are root (effective uid 0).
#[must_use]
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `test` needs root.
#[must_use]
pub fn require_root(test: &str) -> bool {
    require(test, is_root(), "root")
}

/// Whether `tool` is an executable on `PATH` (or an existing path).
#[must_use]
pub fn has_tool(tool: &str) -> bool {
    if tool.contains('/') {
        return Path::new(tool).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// `test` needs root and every tool in `tools`.
#[must_use]
pub fn require_root_and_tools(test: &str, tools: &[&str]) -> bool {
    if !require_root(test) {
        return false;
    }
    tools
        .iter()
        .all(|tool| require(test, has_tool(tool), &format!("the tool `{tool}` on PATH")))
}

/// Runs `cmd` and returns its output; panics (with the command, its status
/// and its stderr) when it cannot start or exits non-zero.
///
/// # Panics
/// When the command fails: a failing tool fails the check that used it.
pub fn run(cmd: &mut Command) -> Output {
    let shown = describe(cmd);
    let out = cmd
        .output()
        .unwrap_or_else(|err| panic!("cannot start `{shown}`: {err}"));
    assert!(
        out.status.success(),
        "`{shown}` failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// [`run`], returning stdout as text.
///
/// # Panics
/// As [`run`].
pub fn stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).stdout).into_owned()
}

/// A command as a shell line, for messages.
#[must_use]
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn met_precondition_goes_on() {
        assert!(require("t", true, "nothing"));
    }

    #[test]
    fn failing_tool_fails_the_check() {
        let result = std::panic::catch_unwind(|| stdout(&mut Command::new("false")));
        assert!(result.is_err(), "a failing command must panic");
    }

    #[test]
    fn missing_tool_is_not_found() {
        assert!(!has_tool("sluice-no-such-tool"));
        assert!(has_tool("sh"));
    }
}
