//! What the table was measured on.

use std::process::Command;

/// Core count, CPU model and kernel, as one Markdown line.
pub fn describe() -> String {
    // Online processors of the machine, not of this thread's affinity mask (the decode
    // rows pin the bench process to one core).
    // SAFETY: sysconf only reads a system value.
    let nproc = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = output("uname", &["-sr"]);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kib| format!("{:.0} GiB", kib as f64 / (1 << 20) as f64))
        .unwrap_or_else(|| "unknown".into());
    format!("nproc {nproc}, CPU {model}, kernel {kernel}, memory {mem}")
}

/// The versions of the peer programs.
pub fn peers() -> String {
    let socat = output("socat", &["-V"])
        .lines()
        .find(|l| l.starts_with("socat version"))
        .unwrap_or("socat ?")
        .split(" on ")
        .next()
        .unwrap_or("")
        .to_string();
    let iperf = output("iperf3", &["--version"])
        .lines()
        .next()
        .unwrap_or("iperf3 ?")
        .to_string();
    let mosq = output("mosquitto", &["-h"])
        .lines()
        .next()
        .unwrap_or("mosquitto ?")
        .to_string();
    let nats = output("nats-server", &["--version"])
        .lines()
        .next()
        .unwrap_or("nats-server ?")
        .to_string();
    format!("{socat}; {iperf}; {mosq}; {nats}")
}

/// UTC date and time now.
pub fn now_utc() -> String {
    output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The 1-, 5- and 15-minute load averages: how busy the (shared) machine was.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}
