//! A thread-per-connection server on a free port for the tests, shut down when dropped.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use tidings_std::{Server, ServerConfig, ServerHandle, WebConfig};

pub struct Running {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown("test over");
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

pub fn start(config: ServerConfig) -> Running {
    start_with(config, WebConfig::default())
}

/// A server whose port also serves `web` (the page, WebSocket limits, the head timeout).
pub fn start_with(config: ServerConfig, web: WebConfig) -> Running {
    let server = Server::bind("127.0.0.1:0", config).unwrap().with_web(web);
    let addr = server.local_addr();
    let handle = server.handle();
    let thread = std::thread::spawn(move || server.run().unwrap());
    Running {
        addr,
        handle,
        thread: Some(thread),
    }
}
