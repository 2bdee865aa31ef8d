//! Helpers for the end-to-end tests: a server on its own thread, clients, event waiting.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tidings_smol::{Client, ClientConfig, ClientEvent, Server, ServerConfig, ServerHandle};

/// A running smol server on 127.0.0.1:0, shut down on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(config: ServerConfig) -> TestServer {
        let server = smol::block_on(Server::bind("127.0.0.1:0", config)).unwrap();
        let addr = server.local_addr();
        let handle = server.handle();
        let thread = std::thread::spawn(move || smol::block_on(server.run()).unwrap());
        TestServer {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) {
        smol::block_on(self.handle.shutdown("test over"));
        self.thread.take().unwrap().join().unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            smol::block_on(self.handle.shutdown("test over"));
            let _ = t.join();
        }
    }
}

/// Waits (at most 60 s) for the first event matching `pred`, returning it; other events are
/// skipped.
pub async fn wait_for(client: &Client, mut pred: impl FnMut(&ClientEvent) -> bool) -> ClientEvent {
    let fut = async {
        loop {
            let ev = client.next_event().await.expect("connection ended");
            if pred(&ev) {
                return ev;
            }
        }
    };
    let timeout = async {
        async_io::Timer::after(Duration::from_secs(60)).await;
        panic!("timed out waiting for an event");
    };
    futures_lite::future::or(fut, timeout).await
}

/// Events until `pred` matches, all of them collected.
pub async fn collect_until(
    client: &Client,
    mut pred: impl FnMut(&ClientEvent) -> bool,
) -> Vec<ClientEvent> {
    let mut seen = Vec::new();
    wait_for(client, |ev| {
        seen.push(ev.clone());
        pred(ev)
    })
    .await;
    seen
}

pub async fn connect(addr: SocketAddr, name: &str) -> Client {
    Client::connect(addr, name, ClientConfig::default())
        .await
        .unwrap()
}

pub async fn connect_receiver(addr: SocketAddr, name: &str, dir: PathBuf) -> Client {
    let config = ClientConfig {
        download_dir: Some(dir),
        accept_files: true,
        ..ClientConfig::default()
    };
    Client::connect(addr, name, config).await.unwrap()
}

/// A file of `len` pseudo-random bytes.
pub fn make_file(path: &std::path::Path, len: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
    let mut block = vec![0u8; 1 << 16];
    let mut left = len;
    while left > 0 {
        for b in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            b.copy_from_slice(&bytes[..b.len()]);
        }
        let n = left.min(block.len());
        f.write_all(&block[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
}

/// A temporary folder removed on drop (this crate's dev-dependencies are not ours to
/// extend, so no `tempfile` here).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tidings-smol-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
