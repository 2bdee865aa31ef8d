//! The peer of row 7: a WebSocket chat broadcast server written the way a Rust user would
//! with tokio-tungstenite, doing the job of tidings' legacy WebSocket mode: a client
//! named by `?name=` in the request sends text lines; every other client receives
//! `{"src":"<name>","dst":"","msg":"<line>"}`. One thread (current-thread runtime), like
//! the tidings server; started as `tidings-bench ws-server PORT` on the server core.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

type Peers = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

/// Serves on 127.0.0.1:`port` until killed.
pub fn main(port: u16) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let peers: Peers = Arc::default();
        let mut next_id = 0u64;
        loop {
            let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            next_id += 1;
            tokio::spawn(serve(stream, next_id, peers.clone()));
        }
    })
}

async fn serve(stream: tokio::net::TcpStream, id: u64, peers: Peers) {
    let mut name = String::new();
    // The callback's error type is tungstenite's, fixed by its signature.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        name = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("name=")))
            .unwrap_or("anonymous")
            .to_string();
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    peers.lock().expect("not poisoned").insert(id, tx);
    // Writer: batches whatever is queued into one flush.
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.feed(m).await.is_err() {
                return;
            }
            while let Ok(m) = rx.try_recv() {
                if sink.feed(m).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let src = serde_json::to_string(&name).unwrap_or_default();
    while let Some(Ok(msg)) = source.next().await {
        if let Message::Text(line) = msg {
            // Rendered once; every recipient gets a reference-counted clone, not a copy.
            let text = serde_json::to_string(line.as_str()).unwrap_or_default();
            let out = Utf8Bytes::from(format!("{{\"src\":{src},\"dst\":\"\",\"msg\":{text}}}"));
            let peers = peers.lock().expect("not poisoned");
            for (other, tx) in peers.iter() {
                if *other != id {
                    let _ = tx.send(Message::Text(out.clone()));
                }
            }
        }
    }
    peers.lock().expect("not poisoned").remove(&id);
    writer.abort();
}
