//! `tidings user add/del/list --accounts FILE`: the accounts file of `tidings serve
//! --accounts`, and the passwords a person types (here and in the clients).
//!
//! The file is parsed and written by `tidings_host::accounts`; this module reads it, writes
//! it atomically (a temporary file in the same folder, synced, renamed over the old one, the
//! folder synced; mode 0600 on Unix from the moment it exists), and asks for passwords.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use serde_json::json;
use tidings_core::wire::Secret;
use tidings_host::accounts::Accounts;

use crate::exit::{io_reason, CliError, Exit};
use crate::out::Out;
use crate::UserAction;

pub fn run(action: UserAction, out: &mut Out) -> Result<(), CliError> {
    match action {
        UserAction::Add { name, accounts } => {
            let mut users = load(&accounts, true)?;
            let password = new_password(&name)?;
            let new = users
                .set(&name, password.expose())
                .map_err(|e| CliError::new(Exit::Usage, e.to_string()))?;
            save(&accounts, &users)?;
            let what = if new { "added" } else { "password changed" };
            out.event(
                "user",
                format_args!("{name}: {what}"),
                || json!({"name": name, "action": if new { "added" } else { "changed" }}),
            );
        }
        UserAction::Del { name, accounts } => {
            let mut users = load(&accounts, false)?;
            let removed = users
                .remove(&name)
                .map_err(|e| CliError::new(Exit::Usage, e.to_string()))?;
            save(&accounts, &users)?;
            out.event(
                "user",
                format_args!("{removed}: deleted"),
                || json!({"name": removed, "action": "deleted"}),
            );
        }
        UserAction::List { accounts } => {
            let users = load(&accounts, false)?;
            for name in users.names() {
                out.event("user", format_args!("{name}"), || json!({"name": name}));
            }
        }
    }
    Ok(())
}

/// Reads and parses the accounts file; a missing one is empty when `missing_ok`.
pub fn load(path: &Path, missing_ok: bool) -> Result<Accounts, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if missing_ok && e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(CliError::new(
                Exit::File,
                format!(
                    "cannot read the accounts file {}: {}",
                    path.display(),
                    io_reason(&e)
                ),
            ))
        }
    };
    Accounts::parse(&text).map_err(|e| {
        CliError::new(
            Exit::Usage,
            format!("accounts file {}: {e}", path.display()),
        )
    })
}

/// Writes `accounts` to `path` atomically, mode 0600.
pub fn save(path: &Path, accounts: &Accounts) -> Result<(), CliError> {
    let fail = |what: &str, e: std::io::Error| {
        CliError::new(
            Exit::File,
            format!("cannot {what} {}: {}", path.display(), io_reason(&e)),
        )
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| CliError::new(Exit::Usage, "the accounts path names no file"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut f| {
        keep_owner_and_mode(&f, path)?;
        f.write_all(accounts.to_text().as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("write the accounts file", e));
    }
    // The rename itself is durable once the folder is synced (Unix; elsewhere best effort).
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Gives the new file (still empty) the owner, group and mode of the one it replaces, the
/// mode at most group-readable: an accounts file an operator made readable to the server's
/// group stays readable after `sudo tidings user del`, so the removal reaches the running
/// server instead of leaving it with a file it cannot read. A new file stays 0600.
#[cfg(unix)]
fn keep_owner_and_mode(new: &std::fs::File, old: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Ok(meta) = std::fs::metadata(old) else {
        return Ok(());
    };
    std::os::unix::fs::fchown(new, Some(meta.uid()), Some(meta.gid()))?;
    new.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o640))
}

#[cfg(not(unix))]
fn keep_owner_and_mode(_new: &std::fs::File, _old: &Path) -> std::io::Result<()> {
    Ok(())
}

/// The new password of `name`: typed twice on a terminal, else the first line of standard
/// input.
fn new_password(name: &str) -> Result<Secret, CliError> {
    let stdin = std::io::stdin();
    let password = if stdin.is_terminal() {
        let first = prompt(&format!("password for {name}: "))?;
        let again = prompt("the same again: ")?;
        if first.expose() != again.expose() {
            return Err(CliError::new(Exit::Usage, "the two passwords differ"));
        }
        first
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).map_err(|e| {
            CliError::new(
                Exit::File,
                format!("cannot read the password: {}", io_reason(&e)),
            )
        })?;
        Secret::new(line.trim_end_matches(['\r', '\n']))
    };
    if password.is_empty() {
        return Err(CliError::new(Exit::Usage, "the password is empty"));
    }
    Ok(password)
}

/// Asks for a password on the terminal without echoing it.
pub fn prompt(text: &str) -> Result<Secret, CliError> {
    rpassword::prompt_password(text)
        .map(|p| Secret::new(&p))
        .map_err(|e| {
            CliError::new(
                Exit::Other,
                format!("cannot read the password: {}", io_reason(&e)),
            )
        })
}

/// The password a client was given: the first line of `--password-file`, else
/// `TIDINGS_PASSWORD`, else none.
pub fn given_password(file: Option<&Path>) -> Result<Option<Secret>, CliError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CliError::new(
                Exit::File,
                format!(
                    "cannot read the password file {}: {}",
                    path.display(),
                    io_reason(&e)
                ),
            )
        })?;
        let line = text.lines().next().unwrap_or("");
        return Ok(Some(Secret::new(line)));
    }
    Ok(std::env::var("TIDINGS_PASSWORD")
        .ok()
        .map(|p| Secret::new(&p)))
}

/// Reloads the accounts file of a running server on SIGHUP and when it changes: whoever no
/// longer may have their name is closed (a removed user, a guest whose name is now
/// registered). A file that cannot be read or parsed keeps the accounts in use and says why.
pub fn watch(handle: tidings_smol::ServerHandle, path: PathBuf) {
    crate::tls::on_change(vec![path.clone()], move |why| {
        let (handle, path) = (handle.clone(), path.clone());
        async move {
            let accounts = match load(&path, false) {
                Ok(a) => a,
                Err(e) => {
                    return tracing::error!(
                        file = %path.display(),
                        why,
                        "accounts not reloaded, the old ones stay in use: {}",
                        e.message
                    )
                }
            };
            let users = accounts.len();
            match handle.set_accounts(accounts).await {
                Ok(closed) => {
                    tracing::info!(file = %path.display(), why, users, ?closed, "accounts reloaded")
                }
                Err(e) => tracing::error!(why, "accounts not reloaded: {e}"),
            }
        }
    });
}
