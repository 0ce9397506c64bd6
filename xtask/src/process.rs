//! Child processes of `up`: started in their own process group with their
//! output in a log file, stopped with SIGTERM then SIGKILL, restarted like an
//! init system would, and the small `/proc` and signal helpers they need.
//!
//! Children run in their own process groups, so a terminal's Ctrl-C reaches
//! only xtask and the stop stays ordered; they get SIGTERM if xtask dies
//! (`PR_SET_PDEATHSIG`).

use std::{
    fs,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// Spawns `cmd` with its output appended to `log`, in its own process
/// group, with SIGTERM on our death.
pub fn spawn(cmd: &mut Command, log: &Path) -> Result<Child> {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .process_group(0);
    // An error's chain, not a stack trace, is what the log (and its tail in our own
    // errors) must show; panics keep their backtraces (RUST_BACKTRACE).
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        cmd.env("RUST_LIB_BACKTRACE", "0");
    }
    die_with_parent(cmd);
    cmd.spawn()
        .with_context(|| format!("cannot start {}", cmd.get_program().to_string_lossy()))
}

/// Makes the child get SIGTERM when the thread that spawned it dies: right
/// for a CLI's main thread, wrong for a test thread that hands it to others.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and only calls prctl,
    // which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

/// Makes the child enter the network namespace bound at `netns` (as `ip
/// netns exec` does, without its private mount namespace: the child's mounts
/// stay visible to the host, where our teardown finds them).
///
/// # Errors
/// When the namespace cannot be opened.
pub fn in_netns(cmd: &mut Command, netns: &Path) -> Result<()> {
    use std::os::fd::AsRawFd as _;
    let file = fs::File::open(netns).with_context(|| format!("opening {}", netns.display()))?;
    // SAFETY: the closure runs between fork and exec and only calls setns(2), which is
    // async-signal-safe; `file` is moved into it, so the descriptor is open until then.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    Ok(())
}

/// SIGTERM, wait up to `timeout`, then SIGKILL.
pub fn terminate(child: &mut Child, timeout: Duration) -> Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    signal(child.id(), libc::SIGTERM);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill()?;
    child.wait()?;
    bail!("did not stop within {timeout:?} of SIGTERM; killed")
}

/// Like [`terminate`] for a process that is not our child.
pub fn terminate_pid(pid: u32, timeout: Duration) -> Result<()> {
    signal(pid, libc::SIGTERM);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !alive(pid) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(pid, libc::SIGKILL);
    bail!("pid {pid} did not stop within {timeout:?} of SIGTERM; killed")
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name.
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
    })
}

/// Sends `signal` to `pid`; a stale pid is ignored.
pub fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) takes plain integers; a stale pid only yields ESRCH.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// Runs a command quietly; its stdout when it succeeds.
pub fn quiet(cmd: &mut Command) -> Option<String> {
    let out = cmd.stdin(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// "; the last lines of <log>:" and those lines, for an error message.
pub fn log_tail(log: &Path) -> String {
    let tail = tail(log, 15).replace('\n', "\n    ");
    format!("; the last lines of {}:\n    {tail}", log.display())
}

/// A supervised command: started again after it exits, as an init system
/// would, unless it keeps exiting (5 times within a minute).
pub struct Supervised {
    /// What it is, for messages ("the node agent of vm-1").
    pub name: String,
    program: PathBuf,
    args: Vec<std::ffi::OsString>,
    envs: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    dir: Option<PathBuf>,
    /// Its log file.
    pub log: PathBuf,
    /// The network namespace it runs in (`None`: ours).
    netns: Option<PathBuf>,
    restarts: Vec<Instant>,
}

impl Supervised {
    /// Records how to start `cmd` (program, arguments, environment, working
    /// directory; not its `pre_exec` hooks) with its output in `log`.
    pub fn of(name: impl Into<String>, cmd: &Command, log: &Path) -> Self {
        Self {
            name: name.into(),
            program: PathBuf::from(cmd.get_program()),
            args: cmd.get_args().map(std::ffi::OsStr::to_os_string).collect(),
            envs: cmd
                .get_envs()
                .filter_map(|(k, v)| Some((k.to_os_string(), v?.to_os_string())))
                .collect(),
            dir: cmd.get_current_dir().map(Path::to_path_buf),
            log: log.to_path_buf(),
            netns: None,
            restarts: Vec::new(),
        }
    }

    /// Runs it in the network namespace bound at `netns` ([`in_netns`]).
    #[must_use]
    pub fn in_netns(mut self, netns: PathBuf) -> Self {
        self.netns = Some(netns);
        self
    }

    /// Starts it (again).
    pub fn spawn(&mut self) -> Result<Child> {
        let now = Instant::now();
        self.restarts
            .retain(|t| now.duration_since(*t) < Duration::from_mins(1));
        if self.restarts.len() >= 5 {
            bail!(
                "{} exited 5 times within a minute{}",
                self.name,
                log_tail(&self.log)
            );
        }
        self.restarts.push(now);
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        if let Some(netns) = &self.netns {
            in_netns(&mut cmd, netns)?;
        }
        spawn(&mut cmd, &self.log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supervised_gives_up_after_five_exits_in_a_minute() {
        let dir = std::env::temp_dir().join(format!("xtask-supervised-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo ran"]).current_dir(&dir);
        let mut job = Supervised::of("the test job", &cmd, &log);
        for _ in 0..5 {
            job.spawn().unwrap().wait().unwrap();
        }
        let err = job.spawn().unwrap_err().to_string();
        assert!(err.starts_with("the test job exited 5 times"), "{err}");
        assert!(
            err.contains("ran"),
            "the message shows the log's end: {err}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let path = std::env::temp_dir().join(format!("xtask-tail-{}", std::process::id()));
        fs::write(&path, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&path, 2), "b\nc");
        assert_eq!(tail(&path, 10), "a\nb\nc");
        fs::remove_file(&path).unwrap();
        assert_eq!(tail(&path, 2), "");
    }
}
