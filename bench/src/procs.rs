//! Child processes of a benchmark: pinned to a core, on a free loopback port, always stopped.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The core servers run on.
pub const SERVER_CPU: u32 = 0;
/// The core load generators and clients run on.
pub const LOAD_CPU: u32 = 1;

/// A child process that is killed and reaped when dropped, so that no error path of a row
/// leaves a server behind.
pub struct Guard {
    child: Child,
    what: String,
}

impl Guard {
    /// Starts `cmd`; `what` names it in error messages.
    pub fn spawn(mut cmd: Command, what: &str) -> Result<Guard, String> {
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {what}: {e}"))?;
        Ok(Guard {
            child,
            what: what.to_string(),
        })
    }

    /// The process id (the program itself: taskset execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Takes the child's piped standard output.
    pub fn stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Takes the child's piped standard error.
    pub fn stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// Waits at most `limit` for the child to exit; its exit code, or an error naming it.
    pub fn wait_for(&mut self, limit: Duration) -> Result<i32, String> {
        let end = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status.code().unwrap_or(-1)),
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(2)),
                Ok(None) => return Err(format!("{} did not finish within {limit:?}", self.what)),
                Err(e) => return Err(format!("waiting for {}: {e}", self.what)),
            }
        }
    }

    /// Waits at most `limit` for the child to exit successfully; the CPU time (user and
    /// system, all its threads; not its children's) it used in its life, read while it is a
    /// zombie, before it is reaped. For a process that exits as a whole (a main thread that
    /// ends alone also shows as a zombie while other threads run).
    pub fn cpu_at_exit(&mut self, limit: Duration) -> Result<f64, String> {
        let end = Instant::now() + limit;
        loop {
            match stat(self.pid()) {
                Ok(s) if s.state == 'Z' => {
                    self.expect_success(Duration::from_secs(1))?;
                    return Ok(s.cpu_secs);
                }
                // Gone already (reaped by someone else): its CPU is lost.
                Err(e) => return Err(format!("{}: {e}", self.what)),
                Ok(_) if Instant::now() < end => std::thread::sleep(Duration::from_millis(1)),
                Ok(_) => return Err(format!("{} did not finish within {limit:?}", self.what)),
            }
        }
    }

    /// Waits for a successful exit within `limit`.
    pub fn expect_success(&mut self, limit: Duration) -> Result<(), String> {
        match self.wait_for(limit)? {
            0 => Ok(()),
            code => Err(format!("{} exited with {code}", self.what)),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `program args…` run under `taskset -c cpu`.
pub fn pinned(cpu: u32, program: impl AsRef<Path>) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c").arg(cpu.to_string()).arg(program.as_ref());
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// A loopback port nobody listens on right now (the OS picks it).
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Reads lines from `out` until one contains `needle`, for at most `limit`; the line. The
/// rest of the output is read and discarded on a helper thread, so the child never blocks
/// on a full pipe.
pub fn wait_line(out: ChildStdout, needle: &str, limit: Duration) -> Result<String, String> {
    let needle = needle.to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(out);
        let mut line = String::new();
        let mut found = false;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if !found && line.contains(&needle) => {
                    found = true;
                    let _ = tx.send(line.trim().to_string());
                }
                Ok(_) => {}
            }
        }
    });
    rx.recv_timeout(limit)
        .map_err(|_| format!("no line with {:?} within {limit:?}", "the expected text"))
}

/// What `/proc/PID/stat` says of a process.
pub struct Stat {
    /// `R`, `S`, `Z` …
    pub state: char,
    /// User and system CPU time of all its threads so far, in seconds.
    pub cpu_secs: f64,
}

/// Reads `/proc/PID/stat` (fields 3, 14 and 15; the command name before them may hold
/// spaces, so the fields are counted from its closing parenthesis).
pub fn stat(pid: u32) -> Result<Stat, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("cannot read the stat of process {pid}: {e}"))?;
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| format!("unexpected stat of process {pid}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| format!("unexpected stat of process {pid}"))
    };
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(Stat {
        state: fields.first().and_then(|f| f.chars().next()).unwrap_or('?'),
        // Field 3 is the first after the name; utime and stime are fields 14 and 15.
        cpu_secs: (ticks(11)? + ticks(12)?) / hz,
    })
}

/// CPU time the calling thread has used, in seconds.
pub fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct passed to it.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Resident set size of process `pid` in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read the status of process {pid}: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS for process {pid}"))
}

/// This benchmark's own executable, started again as a load generator.
pub fn self_exe() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("cannot find the bench executable: {e}"))
}

/// The release `tidings` binary, built first so that the table measures the current code.
pub fn tidings_bin() -> Result<PathBuf, String> {
    let exe = self_exe()?;
    let dir = exe.parent().ok_or("the bench executable has no folder")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-q", "-p", "tidings"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .map_err(|e| format!("cannot run cargo to build tidings: {e}"))?;
    if !status.success() {
        return Err("cargo build --release -p tidings failed".into());
    }
    let bin = dir.join("tidings");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!("{} is missing after the build", bin.display()))
    }
}

/// Whether `program` can be found on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Raises this process's open-file limit to its hard limit; children inherit it.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        lim.rlim_cur
    }
}

/// Pins the calling thread to `cpu` (for the in-process rows).
pub fn pin_self(cpu: u32) {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
