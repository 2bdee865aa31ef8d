//! `--spawn`: a fresh server for each group of cases, on a free 127.0.0.1 port.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server started by the runner; stopped when dropped.
pub struct Server {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

/// How often the runner looks whether the spawned server listens yet.
const LOOK_EVERY: Duration = Duration::from_millis(20);

impl Server {
    /// Runs `command` (through `sh -c`) with `{port}` replaced by a free port, and waits up
    /// to `patience` until the port accepts connections.
    pub fn start(command: &str, patience: Duration) -> Result<Server, String> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let line = command.replace("{port}", &port.to_string());
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {line}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {line:?}: {e}"))?;
        let mut server = Server { child, port };
        let end = Instant::now() + patience;
        // Nothing tells the runner when a foreign server is ready but its port: a connection
        // that sends nothing and closes is one every server must take calmly (§3.4).
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "{line:?} ended ({status}) before listening on {port}"
                ));
            }
            if Instant::now() > end {
                return Err(format!(
                    "{line:?} did not listen on {port} within {patience:?}"
                ));
            }
            std::thread::sleep(LOOK_EVERY);
        }
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
