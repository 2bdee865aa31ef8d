//! Row `logins`: how many password logins a second `tidings serve --accounts` admits, beside
//! guests joining the same server (no password, no hash).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tidings_core::session::{Config, Event, Session};

use crate::procs::{self, Guard, SERVER_CPU};
use crate::rows::servers::{wait_listen, Ctx};
use crate::stats::{alternate, list, median};
use crate::table::{Row, Verdict};

/// Clients logging in at once: more than the server's one verify worker, so it never idles.
const CLIENTS: usize = 4;
/// The password of the bench's one user.
const PASSWORD: &str = "a bench password";

/// The row: logins a second, password against guests.
pub fn row(ctx: &Ctx) -> Row {
    let what = format!(
        "password logins: {CLIENTS} clients connecting and logging in over and over, admitted a second"
    );
    let target = "≥ 10 logins/s";
    let reps = if ctx.quick { 2 } else { 5 };
    let each = if ctx.quick { 20 } else { 60 };
    let result = server(ctx).and_then(|(_guard, port)| {
        alternate(
            reps,
            |_| rate(port, Some(PASSWORD), each),
            |_| rate(port, None, each * 10),
        )
    });
    match result {
        Ok((logins, guests)) => {
            let (l, g) = (median(&logins), median(&guests));
            Row {
                id: "logins",
                what,
                tidings: format!("{l:.1} logins/s"),
                peer: format!("guests {g:.0} joins/s"),
                ratio: None,
                target: target.into(),
                verdict: if l >= 10.0 {
                    Verdict::Met
                } else {
                    Verdict::Missed
                },
                notes: format!(
                    "{reps} repetitions each, alternated; {each} logins (guests: {}) per \
                     repetition by {CLIENTS} threads of the bench, each connecting, sending \
                     preamble, login and hello over loopback plaintext and waiting for welcome. \
                     The server checks one argon2id hash at a time (m=19 MiB, t=2, p=1) on a \
                     worker thread, so logins/s is about one over the cost of a check; guests \
                     show what the same joins cost without it. logins/s {}, guest joins/s {}.",
                    each * 10,
                    list(&logins, 1),
                    list(&guests, 0)
                ),
            }
        }
        Err(e) => Row::not_measured("logins", &what, target, e),
    }
}

/// `tidings serve --accounts` with one user per client thread (`bench0`…) and guests
/// allowed, pinned to the server core.
fn server(ctx: &Ctx) -> Result<(Guard, u16), String> {
    let accounts = ctx.tmp.join("accounts");
    for t in 0..CLIENTS {
        let mut add = std::process::Command::new(&ctx.tidings)
            .args(["user", "add", &format!("bench{t}"), "--accounts"])
            .arg(&accounts)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("tidings user add: {e}"))?;
        let mut stdin = add.stdin.take().ok_or("no stdin")?;
        writeln!(stdin, "{PASSWORD}").map_err(|e| e.to_string())?;
        drop(stdin);
        if !add.wait().map_err(|e| e.to_string())?.success() {
            return Err("tidings user add failed".into());
        }
    }
    let port = procs::free_port()?;
    let mut cmd = procs::pinned(SERVER_CPU, &ctx.tidings);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--max-per-address", "0", "--guests", "--accounts"])
        .arg(&accounts);
    let guard = Guard::spawn(cmd, "tidings serve --accounts")?;
    wait_listen(port)?;
    Ok((guard, port))
}

/// `n` joins over [`CLIENTS`] threads (as `bench` with `password`, else as guests): a second.
fn rate(port: u16, password: Option<&'static str>, n: usize) -> Result<f64, String> {
    let start = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|t| {
            std::thread::spawn(move || -> Result<(), String> {
                for i in (t..n).step_by(CLIENTS) {
                    // Each thread's user logs in again and again (each time once its last
                    // connection has closed); guests take names of their own.
                    let name = match password {
                        Some(_) => format!("bench{t}"),
                        None => format!("g{t}-{i}"),
                    };
                    join(port, &name, password)?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "a client thread panicked")??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// One connection: preamble, login (with a password), hello; at welcome, goodbye, and
/// returns once the server closed (so the name is free for the next login).
fn join(port: u16, name: &str, password: Option<&str>) -> Result<(), String> {
    let now = Instant::now();
    let mut session = match password {
        Some(p) => Session::client_with_password(Config::default(), name, p, now)
            .map_err(|e| e.to_string())?,
        None => Session::client(Config::default(), name, now).map_err(|e| e.to_string())?,
    };
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    while let Some(b) = session.poll_transmit() {
        s.write_all(&b).map_err(|e| e.to_string())?;
    }
    let mut buf = [0u8; 4096];
    let mut welcomed = false;
    loop {
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return match welcomed {
                true => Ok(()),
                false => Err(format!("{name}: the server closed before welcome")),
            };
        }
        session.handle_input(Instant::now(), &buf[..n]);
        while let Some(ev) = session.poll_event() {
            match ev {
                Event::Connected(_) => {
                    welcomed = true;
                    session.goodbye(tidings_core::ErrorCode::Normal, "bye");
                }
                Event::Closed(_) if welcomed => {}
                Event::Closed(how) => return Err(format!("{name}: {how:?}")),
                _ => {}
            }
        }
        while let Some(b) = session.poll_transmit() {
            s.write_all(&b).map_err(|e| e.to_string())?;
        }
    }
}
