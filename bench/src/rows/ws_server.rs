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

/// Serves on 127.0.0.1:`port` until killed; with `tls` (certificate chain and key, PEM
/// files), over TLS (`wss://`) with tokio-rustls.
pub fn main(port: u16, tls: Option<(&str, &str)>) -> Result<(), String> {
    let acceptor = match tls {
        None => None,
        Some((cert, key)) => Some(acceptor(cert, key)?),
    };
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
            let (id, peers) = (next_id, peers.clone());
            match &acceptor {
                None => {
                    tokio::spawn(serve(stream, id, peers));
                }
                Some(acceptor) => {
                    let accepting = acceptor.accept(stream);
                    tokio::spawn(async move {
                        if let Ok(stream) = accepting.await {
                            serve(stream, id, peers).await;
                        }
                    });
                }
            }
        }
    })
}

/// A tokio-rustls acceptor with ring, ALPN http/1.1, as a Rust user would set one up.
fn acceptor(cert: &str, key: &str) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| e.to_string())?;
    #[allow(deprecated)] // ring, as tidings-host uses.
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn serve<S>(stream: S, id: u64, peers: Peers)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
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
