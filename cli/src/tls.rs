//! TLS files on the command line: `tidings cert` (a private CA and a server certificate),
//! the server's certificate (loaded at start, reloaded on SIGHUP or when its files change),
//! and what a client trusts (`--ca FILE`, else the system's authorities).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tidings_host::tls::{ClientTls, SelfSigned, TlsClientConfig, TlsServerConfig};

use crate::addr::ServerAddr;
use crate::exit::{io_reason, CliError, Exit};
use crate::out::Out;
use crate::CertArgs;

/// How often the server looks whether its certificate or key file changed. A renewal
/// (certbot, a cron job) takes effect within this long without a signal.
const WATCH_EVERY: Duration = Duration::from_secs(2);

fn read(path: &Path, what: &str) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| {
        CliError::new(
            Exit::File,
            format!(
                "cannot read the {what} {}: {}",
                path.display(),
                io_reason(&e)
            ),
        )
    })
}

/// The PEM text of the server's certificate chain and key, read from their files.
fn pems(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), CliError> {
    Ok((read(cert, "certificate")?, read(key, "key")?))
}

/// A certificate, key or CA that cannot be used: a usage error.
fn unusable(e: impl std::fmt::Display) -> CliError {
    CliError::new(Exit::Usage, format!("TLS: {e}"))
}

/// The server's certificate and key from their PEM files.
pub fn server_config(cert: &Path, key: &Path) -> Result<TlsServerConfig, CliError> {
    let (cert_pem, key_pem) = pems(cert, key)?;
    TlsServerConfig::from_pem(&cert_pem, &key_pem).map_err(unusable)
}

/// Reloads `config` from `cert` and `key` on SIGHUP, and when either file changes (looked at
/// every [`WATCH_EVERY`]). A reload that fails keeps the certificate in use and says why.
pub fn watch(config: TlsServerConfig, cert: PathBuf, key: PathBuf) {
    let paths = vec![cert.clone(), key.clone()];
    on_change(paths, move |why| {
        let reloaded = pems(&cert, &key).and_then(|(c, k)| config.reload(&c, &k).map_err(unusable));
        match reloaded {
            Ok(()) => tracing::info!(cert = %cert.display(), why, "TLS certificate reloaded"),
            Err(e) => tracing::error!(
                cert = %cert.display(),
                why,
                "TLS certificate not reloaded, the old one stays in use: {}",
                e.message
            ),
        }
        async {}
    });
}

/// Runs `reload(why)` on SIGHUP, and when one of `paths` changes (looked at every
/// [`WATCH_EVERY`]), for as long as the process runs.
pub fn on_change<F>(paths: Vec<PathBuf>, mut reload: impl FnMut(&'static str) -> F + Send + 'static)
where
    F: std::future::Future<Output = ()> + Send,
{
    smol::spawn(async move {
        use async_signal::{Signal, Signals};
        use futures_lite::StreamExt;
        let mut hangups = Signals::new([Signal::Hup]).ok();
        let stamps = || paths.iter().map(|p| stamp(p)).collect::<Vec<_>>();
        let mut seen = stamps();
        loop {
            let hangup = futures_lite::future::or(
                async {
                    match hangups.as_mut() {
                        Some(s) => s.next().await.is_some(),
                        None => futures_lite::future::pending().await,
                    }
                },
                async {
                    async_io::Timer::after(WATCH_EVERY).await;
                    false
                },
            )
            .await;
            let now = stamps();
            let why = if hangup {
                "SIGHUP"
            } else if now != seen {
                "the files changed"
            } else {
                continue;
            };
            seen = now;
            reload(why).await;
        }
    })
    .detach();
}

/// When a file last changed, its size, and (Unix) which file it is: a change of any is a
/// change of the file. The inode matters most: `tidings user` and certificate renewals
/// write a new file and rename it into place, and a new password hash has the old one's
/// length, so two writes within the file system's clock step would look the same.
fn stamp(path: &Path) -> Option<(SystemTime, u64, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.modified().ok()?, meta.len(), inode))
}

/// What a client connecting to `server` trusts: `ca` (PEM) if given, else the system's
/// certificate authorities. `None` for a plaintext address.
pub fn client(server: &ServerAddr, ca: Option<&Path>) -> Result<Option<ClientTls>, CliError> {
    if !server.tls {
        return Ok(None);
    }
    let config = match ca {
        Some(path) => TlsClientConfig::from_ca_pem(&read(path, "CA file")?)
            .map_err(|e| CliError::new(Exit::Usage, format!("{}: {e}", path.display())))?,
        None => {
            let found = rustls_native_certs::load_native_certs();
            TlsClientConfig::with_roots(found.certs).map_err(|_| {
                CliError::new(
                    Exit::Usage,
                    "no certificate authority of the system could be read: pass the server's \
                     CA with --ca FILE",
                )
            })?
        }
    };
    Ok(Some(ClientTls {
        config,
        server_name: server.host.clone(),
    }))
}

/// `tidings cert`: writes a private CA and a server certificate signed by it, and says how
/// to use them. Never overwrites a file.
pub fn cert(args: CertArgs, out: &mut Out) -> Result<(), CliError> {
    let made = SelfSigned::generate(&args.name).map_err(unusable)?;
    std::fs::create_dir_all(&args.out).map_err(|e| {
        CliError::new(
            Exit::File,
            format!("cannot create {}: {}", args.out.display(), io_reason(&e)),
        )
    })?;
    let files = [
        ("ca.pem", made.ca_pem.as_str(), false),
        ("cert.pem", made.cert_pem.as_str(), false),
        ("key.pem", made.key_pem.as_str(), true),
    ];
    for (name, _, _) in &files {
        let path = args.out.join(name);
        if path.exists() {
            return Err(CliError::new(
                Exit::File,
                format!(
                    "{} exists: remove it, or write elsewhere with --out DIR",
                    path.display()
                ),
            ));
        }
    }
    for (name, text, secret) in files {
        write_new(&args.out.join(name), text, secret)?;
    }
    let dir = args.out.display();
    let host = &args.name[0];
    let paths = |name: &str| args.out.join(name).display().to_string();
    let fields = || {
        serde_json::json!({
            "names": args.name,
            "ca": paths("ca.pem"),
            "cert": paths("cert.pem"),
            "key": paths("key.pem"),
        })
    };
    out.event(
        "cert",
        format_args!(
            "wrote {dir}/cert.pem and {dir}/key.pem for {names} (valid for a year), signed by the \
         private CA {dir}/ca.pem\n\
         \n\
         serve:    tidings serve --tls-cert {dir}/cert.pem --tls-key {dir}/key.pem\n\
         clients:  tidings chat --name NAME --server tls://{host}:9988 --ca {dir}/ca.pem\n\
         curl:     curl --cacert {dir}/ca.pem https://{host}:9988/\n\
         browsers: trust {dir}/ca.pem as a certificate authority (the browser's certificate \
         settings, or the system's store: on Debian, copy it to \
         /usr/local/share/ca-certificates/tidings.crt and run update-ca-certificates)\n\
         \n\
         Keep key.pem secret: whoever has it can pose as the server to clients that trust the CA.",
            names = args.name.join(", ")
        ),
        fields,
    );
    Ok(())
}

/// Creates `path` with `text`; only the owner may read a `secret` one (Unix).
fn write_new(path: &Path, text: &str, secret: bool) -> Result<(), CliError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    options
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| {
            CliError::new(
                Exit::File,
                format!("cannot write {}: {}", path.display(), io_reason(&e)),
            )
        })
}
