//! Accounts: who owns which name (issue #16, spec §6.2). A server started with an accounts
//! file admits a registered name only to the client that gives its password, and unregistered
//! names only when guests are allowed.
//!
//! - [`Accounts`]: the accounts file as text (one `name:PHC` line per user, `#` comments),
//!   parsed and written back; names follow core's naming rules and are kept by their
//!   [`name_key`], so look-alikes (`Alice`, `ＡＬＩＣＥ`) cannot be registered twice.
//! - [`hash_password`] and [`Accounts::verify`]: argon2id, RustCrypto's `argon2`.
//! - [`Policy::judge`]: what a hello with or without a `login` gets (allow, a refusal with its
//!   code, or a [`VerifyJob`] to run off the event loop).
//! - [`Backoff`]: failed logins slow further tries, per source address and per name.
//! - [`Tokens`]: session tokens (HMAC-SHA256, with an expiry) a client logs in with next
//!   time instead of its password.
//!
//! Reading and writing the file itself is the caller's (the `tidings` command): this module,
//! like the rest of the host, does no I/O.
//!
//! # The cost of a password check
//!
//! Hashes use argon2id with 19 MiB of memory, 2 passes and 1 lane (m=19456, t=2, p=1: the
//! OWASP recommendation for argon2id). One verify took about 67 ms on the 2-core machine
//! this was written on, its other core busy (`cargo test -p tidings-host
//! accounts::tests::one_verify_costs -- --ignored --nocapture` prints it; argon2 is built
//! optimised even in the dev profile), and the release server admitted 24–36 password logins
//! a second (about 30 ms a check; `cargo run --release -p tidings-bench -- --only logins`):
//! slow enough that guessing is expensive (a few dozen guesses a second at most, and the
//! [`Backoff`] cuts that to a few a minute per name), fast enough that a login is not felt. A server runs the checks on
//! one worker thread, one after another ([`VerifyJob::run`]), so logins use at most one core
//! and the event loop never waits for them.
//!
//! An unknown name costs the same one verify, against a fixed dummy hash made with the same
//! parameters, so the time of an answer does not tell which names exist; and every failure
//! (wrong password, no such user, a method this server does not take) is answered with the
//! one code `auth-failed` and the one reason [`AUTH_FAILED`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use password_hash::rand_core::OsRng;
use password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tidings_core::hub::ConnId;
use tidings_core::name::{name_key, validate_name};
use tidings_core::session::Login;
use tidings_core::wire::{login_method, Secret};
use tidings_core::ErrorCode;

/// The one reason sent with `auth-failed`, whatever failed.
pub const AUTH_FAILED: &str = "wrong name or password";

/// The reason sent with `auth-insecure`.
pub const AUTH_INSECURE: &str =
    "a password is taken only over TLS or from this machine: connect with tls://";

/// The reason sent with `auth-required` when guests are refused and the name is not
/// registered.
pub const GUESTS_REFUSED: &str =
    "this server admits registered users only: log in with your name and password";

/// argon2id memory in KiB (19 MiB), see the [module docs](self).
const M_COST: u32 = 19 * 1024;
/// argon2id passes.
const T_COST: u32 = 2;
/// argon2id lanes.
const P_COST: u32 = 1;

fn argon2() -> Argon2<'static> {
    let params = Params::new(M_COST, T_COST, P_COST, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// `password` hashed with argon2id and a fresh random salt, as a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashes any password")
        .to_string()
}

/// Whether `password` matches the PHC string `phc` (false for a string that does not parse).
fn verify_phc(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => argon2().verify_password(password.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

/// A hash nobody's password matches in practice, with the same parameters as real ones: what
/// an unknown name is checked against, so that it costs the same time.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::encode_b64(b"tidings-dummy-salt").expect("a valid salt");
        argon2()
            .hash_password(b"no account has this password", &salt)
            .expect("argon2 hashes any password")
            .to_string()
    })
}

/// What is wrong with an accounts file or a change to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountsError {
    /// A line of the file that is not `name:PHC`, a comment or blank.
    Line {
        /// 1-based.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A name that breaks the naming rules.
    Name(String),
    /// The name is not registered.
    NoSuchUser(String),
    /// A password longer than a `login` may carry ([`tidings_core::wire::MAX_SECRET`]).
    PasswordTooLong,
    /// An empty password.
    EmptyPassword,
}

impl fmt::Display for AccountsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountsError::Line { line, reason } => write!(f, "line {line}: {reason}"),
            AccountsError::Name(why) => write!(f, "{why}"),
            AccountsError::NoSuchUser(name) => write!(f, "no user named {name}"),
            AccountsError::PasswordTooLong => write!(
                f,
                "the password is longer than {} bytes",
                tidings_core::wire::MAX_SECRET
            ),
            AccountsError::EmptyPassword => write!(f, "the password is empty"),
        }
    }
}

impl std::error::Error for AccountsError {}

/// One user: the name as registered and its password hash.
#[derive(Clone, PartialEq, Eq)]
struct User {
    name: String,
    phc: String,
}

/// The registered users, by the [`name_key`] of their names. See the [module docs](self).
///
/// ```
/// use tidings_host::accounts::Accounts;
/// let mut accounts = Accounts::default();
/// accounts.set("alice", "correct horse").unwrap();
/// let text = accounts.to_text();
/// let mut again = Accounts::parse(&text).unwrap();
/// assert!(again.verify("ALICE", "correct horse"));
/// assert!(!again.verify("alice", "wrong"));
/// assert_eq!(again.set("Alice", "x"), Ok(false), "the same user, by its key");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    users: BTreeMap<String, User>,
}

impl fmt::Debug for Accounts {
    /// The names only: hashes stay out of logs too.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl Accounts {
    /// Parses an accounts file: one `name:PHC` line per user; blank lines and lines starting
    /// with `#` are skipped. The PHC string must be an argon2 hash.
    ///
    /// # Errors
    ///
    /// The first bad line: no `:`, a name that breaks the rules, a hash that is not an
    /// argon2 PHC string, or a name registered twice (by its key).
    pub fn parse(text: &str) -> Result<Accounts, AccountsError> {
        let mut users = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let bad = |reason: String| AccountsError::Line {
                line: i + 1,
                reason,
            };
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // A PHC string has no ':', a name may not either: split at the last one.
            let Some((name, phc)) = line.rsplit_once(':') else {
                return Err(bad("expected name:hash".into()));
            };
            validate_name(name).map_err(|e| bad(format!("the name {name:?}: {e}")))?;
            match PasswordHash::new(phc) {
                Ok(h) if h.algorithm.as_str().starts_with("argon2") => {}
                _ => {
                    return Err(bad(format!(
                        "the hash of {name} is not an argon2 PHC string"
                    )))
                }
            }
            let user = User {
                name: name.to_owned(),
                phc: phc.to_owned(),
            };
            if users.insert(name_key(name), user).is_some() {
                return Err(bad(format!(
                    "{name} is registered twice (names compare folded)"
                )));
            }
        }
        Ok(Accounts { users })
    }

    /// The file's text: a comment, then one `name:PHC` line per user, sorted by key.
    pub fn to_text(&self) -> String {
        let mut out = String::from(
            "# tidings accounts: name:argon2id-hash, one a line (tidings user add/del/list)\n",
        );
        for u in self.users.values() {
            out.push_str(&u.name);
            out.push(':');
            out.push_str(&u.phc);
            out.push('\n');
        }
        out
    }

    /// Registers `name` with `password` (hashed here, which takes a moment), or gives an
    /// existing user (found by its key) a new password. Returns true if the user is new.
    ///
    /// # Errors
    ///
    /// A name that breaks the rules, an empty password, or one longer than a `login`
    /// carries.
    pub fn set(&mut self, name: &str, password: &str) -> Result<bool, AccountsError> {
        validate_name(name).map_err(|e| AccountsError::Name(format!("the name {name:?}: {e}")))?;
        if password.is_empty() {
            return Err(AccountsError::EmptyPassword);
        }
        if password.len() > tidings_core::wire::MAX_SECRET {
            return Err(AccountsError::PasswordTooLong);
        }
        let user = User {
            name: name.to_owned(),
            phc: hash_password(password),
        };
        Ok(self.users.insert(name_key(name), user).is_none())
    }

    /// Removes `name` (found by its key); returns the name as it was registered.
    ///
    /// # Errors
    ///
    /// [`AccountsError::NoSuchUser`].
    pub fn remove(&mut self, name: &str) -> Result<String, AccountsError> {
        self.users
            .remove(&name_key(name))
            .map(|u| u.name)
            .ok_or_else(|| AccountsError::NoSuchUser(name.to_owned()))
    }

    /// The registered names, sorted by key.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.users.values().map(|u| u.name.as_str())
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `name` (by its key) is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.users.contains_key(&name_key(name))
    }

    /// A short digest of `name`'s password hash (16 hex digits), if it is registered. A
    /// session token names it and a verdict carries it, so a new password, or the name
    /// removed and registered again, ends what was issued or checked before.
    pub fn credential(&self, name: &str) -> Option<String> {
        use sha2::{Digest, Sha256};
        let user = self.users.get(&name_key(name))?;
        let digest = Sha256::digest(user.phc.as_bytes());
        Some(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Whether `password` is `name`'s. Always costs one argon2 verify: an unknown name is
    /// checked against a dummy hash, so the time does not tell whether it exists. Slow (see
    /// the [module docs](self)): never on an event loop.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        match self.users.get(&name_key(name)) {
            Some(u) => verify_phc(&u.phc, password),
            None => {
                let _ = verify_phc(dummy_hash(), password);
                false
            }
        }
    }
}

/// Whether a password may travel on a connection: over TLS, or from a loopback address.
///
/// The rule is judged on the peer's address as the socket reports it (an IPv4-mapped IPv6
/// address counts as its IPv4 address).
pub fn password_allowed(peer: IpAddr, tls: bool) -> bool {
    tls || peer.to_canonical().is_loopback()
}

/// What [`Policy::judge`] decided about a hello.
#[derive(Debug)]
pub enum Judgement {
    /// Admit the name (a guest, when guests are allowed).
    Allow,
    /// Refuse with this code and reason.
    Deny(ErrorCode, String),
    /// A password to check: run the job off the event loop, then feed its [`Verdict`] back.
    Verify(VerifyJob),
}

/// The server's rules for names: the accounts and whether guests are let in.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The registered users.
    pub accounts: Arc<Accounts>,
    /// Whether unregistered names are admitted (without a login). Default false.
    pub guests: bool,
    /// How long a session token stays good ([`TOKEN_LIFETIME`] by default).
    pub token_lifetime: Duration,
    /// How failed logins slow further tries ([`Backoff`]).
    pub backoff: BackoffLimits,
}

impl Policy {
    /// Judges a hello asking for `name` on connection `conn`, with the `login` that came
    /// before it, from a peer whose password may travel (`secure`: see
    /// [`password_allowed`]):
    ///
    /// 1. a login whose password may not travel here → `auth-insecure` (before any check:
    ///    nothing is said about the name);
    /// 2. a login → a [`VerifyJob`] (an unknown name or method fails there, at the same
    ///    cost as a wrong password);
    /// 3. no login, a registered name → `auth-required`;
    /// 4. no login, an unregistered name → allowed if guests are, else `auth-required`.
    pub fn judge(&self, conn: ConnId, name: &str, login: Option<Login>, secure: bool) -> Judgement {
        match login {
            Some(_) if !secure => Judgement::Deny(ErrorCode::AuthInsecure, AUTH_INSECURE.into()),
            Some(login) => Judgement::Verify(VerifyJob {
                conn,
                name: name.to_owned(),
                method: login.method,
                secret: login.secret,
                accounts: self.accounts.clone(),
                source: None,
            }),
            None if self.accounts.contains(name) => Judgement::Deny(
                ErrorCode::AuthRequired,
                format!("{name} is a registered name: log in with its password"),
            ),
            None if self.guests => Judgement::Allow,
            None => Judgement::Deny(ErrorCode::AuthRequired, GUESTS_REFUSED.into()),
        }
    }
}

/// A password check to run where blocking is allowed (a worker thread): [`VerifyJob::run`],
/// then hand the [`Verdict`] back to the host. Its secret never shows in `Debug` output and
/// is dropped by `run`.
#[derive(Debug)]
pub struct VerifyJob {
    conn: ConnId,
    name: String,
    method: u8,
    secret: Secret,
    accounts: Arc<Accounts>,
    /// Where the login came from (its backoff key), handed on to the verdict.
    source: Option<IpAddr>,
}

impl VerifyJob {
    /// The job with the address its login came from, which its verdict counts against in
    /// the [`Backoff`] even if the connection is gone by then.
    pub(crate) fn from(mut self, source: Option<IpAddr>) -> VerifyJob {
        self.source = source;
        self
    }

    /// The connection whose hello waits for it.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// The name that hello asked for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks the password: one argon2 verify whatever the name and method (see the
    /// [module docs](self) for its cost).
    pub fn run(self) -> Verdict {
        let ok = self.accounts.verify(&self.name, self.secret.expose())
            && self.method == login_method::PASSWORD;
        Verdict {
            conn: self.conn,
            credential: ok.then(|| self.accounts.credential(&self.name)).flatten(),
            name: self.name,
            ok,
            by_password: true,
            source: self.source,
        }
    }
}

/// The outcome of a [`VerifyJob`]: give it to `Host::verified`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The connection whose hello waits.
    pub conn: ConnId,
    /// The name it asked for.
    pub name: String,
    /// Whether the password was right.
    pub ok: bool,
    /// The [`Accounts::credential`] the login was checked against: the host admits the
    /// client only if the name still has it (the file may have been reloaded meanwhile).
    pub credential: Option<String>,
    /// A password login (a new session token follows), not a token login (whose token
    /// keeps its expiry: a token never renews itself).
    pub by_password: bool,
    /// Where the login came from (its backoff key), if known.
    pub source: Option<IpAddr>,
}

/// How long a session token is good for ([`Tokens`]).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// Session tokens (spec §6.2): after a successful login the server sends the client a
/// token (`token`, 0x05) that it may give instead of its password (`login` method 2) for
/// [`TOKEN_LIFETIME`] — a chat reconnecting, a page reloaded — so the password need not be
/// kept or typed again.
///
/// A token is `base64url(name key, "\n", credential, "\n", expiry in ms)` `.`
/// `base64url(HMAC-SHA256)`, the MAC under a random 32-byte key made when the server
/// starts: tokens need no storage, and a restart (a new key) ends them all, as does removing
/// the user or changing the password (the [`Accounts::credential`] it names changes). The expiry counts on the
/// server's monotonic clock from its start. A token is a secret like a password: it travels
/// only over TLS or loopback, and a wrong one is `auth-failed` and counts toward the
/// [`Backoff`].
///
/// ```
/// use std::time::{Duration, Instant};
/// use tidings_host::accounts::{Tokens, TOKEN_LIFETIME};
/// let t0 = Instant::now();
/// let tokens = Tokens::new(t0, TOKEN_LIFETIME);
/// let token = tokens.issue("Alice", "c1", t0);
/// let later = t0 + Duration::from_secs(60);
/// assert!(tokens.check(&token, "alice", "c1", later), "by the name's key");
/// assert!(!tokens.check(&token, "bob", "c1", t0));
/// assert!(!tokens.check(&token, "alice", "c2", later), "the password changed");
/// assert!(!tokens.check(&token, "alice", "c1", t0 + TOKEN_LIFETIME));
/// let other = Tokens::new(t0, TOKEN_LIFETIME);
/// assert!(!other.check(&token, "alice", "c1", t0), "another server's key");
/// ```
pub struct Tokens {
    key: [u8; 32],
    epoch: Instant,
    lifetime: Duration,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tokens(..)")
    }
}

impl Tokens {
    /// A fresh random key; expiries count from `now`; each token is good for `lifetime`.
    pub fn new(now: Instant, lifetime: Duration) -> Tokens {
        use password_hash::rand_core::RngCore;
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        Tokens {
            key,
            epoch: now,
            lifetime,
        }
    }

    /// A token for `name` whose password hash has the [`Accounts::credential`]
    /// `credential`, good until `now` + the lifetime.
    pub fn issue(&self, name: &str, credential: &str, now: Instant) -> String {
        use base64::Engine;
        let until = now
            .checked_add(self.lifetime)
            .unwrap_or(now)
            .saturating_duration_since(self.epoch);
        let payload = format!("{}\n{credential}\n{}", name_key(name), until.as_millis());
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mac = hmac_sha256(&self.key, payload.as_bytes());
        format!("{}.{}", b64.encode(payload), b64.encode(mac))
    }

    /// Whether `token` is one of ours, for `name` (by its key) with the credential it has now,
    /// and not expired at `now`.
    pub fn check(&self, token: &str, name: &str, credential: &str, now: Instant) -> bool {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let Some((payload, mac)) = token.split_once('.') else {
            return false;
        };
        let (Ok(payload), Ok(mac)) = (b64.decode(payload), b64.decode(mac)) else {
            return false;
        };
        let want = hmac_sha256(&self.key, &payload);
        // Compared in constant time: every byte is looked at whatever differs.
        let same = mac.len() == want.len()
            && mac
                .iter()
                .zip(want.iter())
                .fold(0u8, |d, (a, b)| d | (a ^ b))
                == 0;
        if !same {
            return false;
        }
        let Some((key_and_credential, until)) = std::str::from_utf8(&payload)
            .ok()
            .and_then(|p| p.rsplit_once('\n'))
        else {
            return false;
        };
        let Some((key, issued_for)) = key_and_credential.rsplit_once('\n') else {
            return false;
        };
        let Ok(until) = until.parse::<u64>() else {
            return false;
        };
        let age = now.saturating_duration_since(self.epoch).as_millis();
        key == name_key(name) && issued_for == credential && age < u128::from(until)
    }
}

/// HMAC-SHA256 (RFC 2104) of `data` under `key` (at most one block long).
fn hmac_sha256(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(data)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Failed logins that count before any wait ([`Backoff`]).
pub const FREE_FAILURES: u32 = 3;
/// The first wait after [`FREE_FAILURES`]; each further failure doubles it.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A source or name with no failure for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Most sources (and, apart, most names) tracked; past it the forgotten-by-now ones go, then
/// the table starts afresh (a flood from many addresses must not grow memory without bound).
const MAX_TRACKED: usize = 100_000;

/// How a [`Backoff`] slows guessing: `free` failures count before any wait, the first wait
/// is `first`, and each further failure doubles it up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffLimits {
    /// Failures before the first wait ([`FREE_FAILURES`] by default).
    pub free: u32,
    /// The first wait ([`FIRST_BACKOFF`]).
    pub first: Duration,
    /// The longest wait ([`MAX_BACKOFF`]).
    pub max: Duration,
}

impl Default for BackoffLimits {
    fn default() -> Self {
        BackoffLimits {
            free: FREE_FAILURES,
            first: FIRST_BACKOFF,
            max: MAX_BACKOFF,
        }
    }
}

/// Failed logins of one source or one name.
#[derive(Debug, Clone, Copy)]
struct Strikes {
    failures: u32,
    last: Instant,
    /// No login is checked before this.
    until: Option<Instant>,
}

/// Failed logins slow down further tries (by default; see [`BackoffLimits`]): after
/// [`FREE_FAILURES`] failures from one source
/// address (an IPv6 /64 counts as one, as the host's connection limits count it) or for
/// one name, a login from there or for that name is refused with `auth-failed` without
/// being checked for [`FIRST_BACKOFF`], doubling with each further failure up to
/// [`MAX_BACKOFF`]. A successful login clears its name and source. Guessing a password is
/// then limited to a few tries a minute per name, however many addresses try, and per
/// address, however many names it tries. (The price: someone who knows a name can keep
/// its owner waiting up to a minute per try; the owner's password is not at risk.)
///
/// ```
/// use std::time::{Duration, Instant};
/// use tidings_host::accounts::Backoff;
/// let (mut b, t0, ip) = (Backoff::default(), Instant::now(), "10.0.0.9".parse().unwrap());
/// for _ in 0..3 {
///     b.failed(ip, "alice", t0);
/// }
/// assert!(!b.blocked(ip, "alice", t0), "three failures are free");
/// b.failed(ip, "alice", t0);
/// assert!(b.blocked(ip, "bob", t0), "the source waits");
/// assert!(b.blocked("10.0.0.10".parse().unwrap(), "ALICE", t0), "so does the name");
/// assert!(!b.blocked(ip, "alice", t0 + Duration::from_secs(1)));
/// ```
#[derive(Debug, Default)]
pub struct Backoff {
    sources: HashMap<IpAddr, Strikes>,
    names: HashMap<String, Strikes>,
    limits: BackoffLimits,
}

impl Backoff {
    /// A backoff with other limits than the defaults.
    pub fn new(limits: BackoffLimits) -> Backoff {
        Backoff {
            limits,
            ..Backoff::default()
        }
    }

    /// Whether a login from `source` for `name` must wait (is refused unchecked) at `now`.
    pub fn blocked(&self, source: IpAddr, name: &str, now: Instant) -> bool {
        let waits = |s: Option<&Strikes>| s.and_then(|s| s.until).is_some_and(|u| now < u);
        waits(self.sources.get(&source)) || waits(self.names.get(&name_key(name)))
    }

    /// A login from `source` for `name` failed at `now`.
    pub fn failed(&mut self, source: IpAddr, name: &str, now: Instant) {
        strike(&mut self.sources, source, now, self.limits);
        strike(&mut self.names, name_key(name), now, self.limits);
    }

    /// A login for `name` succeeded: the name starts afresh. Its source keeps its strikes:
    /// logging in to one's own account must not wipe what an address earned guessing
    /// other names.
    pub fn succeeded(&mut self, name: &str) {
        self.names.remove(&name_key(name));
    }

    /// Sources and names tracked.
    pub fn tracked(&self) -> usize {
        self.sources.len() + self.names.len()
    }
}

fn strike<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Strikes>,
    key: K,
    now: Instant,
    limits: BackoffLimits,
) {
    if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
        // Full: the forgotten go first, then whoever is not waiting now. Never those that
        // wait: a flood of cheap failures (wrong tokens from many addresses) must not wipe
        // the strikes of the name it is really after.
        let waiting = |s: &Strikes| s.until.is_some_and(|u| now < u);
        map.retain(|_, s| waiting(s) || now.saturating_duration_since(s.last) < FORGET_AFTER);
        if map.len() >= MAX_TRACKED {
            map.retain(|_, s| waiting(s));
        }
        if map.len() >= MAX_TRACKED {
            // Everyone tracked waits: the newcomer goes untracked until room is made.
            return;
        }
    }
    let s = map.entry(key).or_insert(Strikes {
        failures: 0,
        last: now,
        until: None,
    });
    if now.saturating_duration_since(s.last) >= FORGET_AFTER {
        s.failures = 0;
    }
    s.failures = s.failures.saturating_add(1);
    s.last = now;
    if s.failures > limits.free {
        let doublings = (s.failures - limits.free - 1).min(16);
        let wait = (limits.first * 2u32.pow(doublings)).min(limits.max);
        s.until = Some(now + wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(secret: &str) -> Option<Login> {
        Some(Login {
            method: login_method::PASSWORD,
            secret: Secret::new(secret),
        })
    }

    fn policy(guests: bool) -> Policy {
        let mut a = Accounts::default();
        a.set("alice", "pw").unwrap();
        Policy {
            accounts: Arc::new(a),
            guests,
            token_lifetime: TOKEN_LIFETIME,
            backoff: BackoffLimits::default(),
        }
    }

    fn verdict(j: Judgement) -> bool {
        match j {
            Judgement::Verify(job) => job.run().ok,
            other => panic!("expected a verify job, got {other:?}"),
        }
    }

    fn denied(j: Judgement) -> (ErrorCode, String) {
        match j {
            Judgement::Deny(code, reason) => (code, reason),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_policy_in_order() {
        let p = policy(false);
        assert!(verdict(p.judge(1, "alice", login("pw"), true)));
        assert!(verdict(p.judge(1, "ALICE", login("pw"), true)), "by key");
        assert!(!verdict(p.judge(1, "alice", login("nope"), true)));
        assert!(!verdict(p.judge(1, "nobody", login("pw"), true)));
        let token = Some(Login {
            method: login_method::TOKEN,
            secret: Secret::new("pw"),
        });
        assert!(
            !verdict(p.judge(1, "alice", token, true)),
            "an unknown method fails"
        );
        assert_eq!(
            denied(p.judge(1, "alice", None, true)).0,
            ErrorCode::AuthRequired
        );
        assert_eq!(
            denied(p.judge(1, "guest", None, true)),
            (ErrorCode::AuthRequired, GUESTS_REFUSED.to_owned())
        );
        assert!(matches!(
            policy(true).judge(1, "guest", None, false),
            Judgement::Allow
        ));
        assert_eq!(
            denied(policy(true).judge(1, "alice", None, true)).0,
            ErrorCode::AuthRequired,
            "guests never take a registered name"
        );
    }

    /// The loopback rule on synthetic addresses: a runtime's tests can only connect over
    /// loopback, so a non-loopback peer is tested here.
    #[test]
    fn a_password_over_plaintext_from_elsewhere_is_insecure() {
        let remote: IpAddr = "10.0.0.9".parse().unwrap();
        let remote6: IpAddr = "2001:db8::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(!password_allowed(remote, false));
        assert!(!password_allowed(remote6, false));
        assert!(password_allowed(remote, true));
        assert!(password_allowed("127.0.0.1".parse().unwrap(), false));
        assert!(password_allowed("::1".parse().unwrap(), false));
        assert!(password_allowed(mapped, false));
        let p = policy(false);
        let secure = password_allowed(remote, false);
        assert_eq!(
            denied(p.judge(1, "alice", login("pw"), secure)),
            (ErrorCode::AuthInsecure, AUTH_INSECURE.to_owned())
        );
        // Without a password nothing insecure travelled: the usual answers.
        assert_eq!(
            denied(p.judge(1, "alice", None, secure)).0,
            ErrorCode::AuthRequired
        );
    }

    #[test]
    fn the_file_round_trips_and_refuses_bad_lines() {
        let mut a = Accounts::default();
        assert!(a.set("alice", "pw1").unwrap());
        assert!(a.set("bob", "pw2").unwrap());
        assert!(
            !a.set("ALICE", "pw3").unwrap(),
            "a new password, not a new user"
        );
        let text = a.to_text();
        assert!(text.contains("$argon2id$v=19$m=19456,t=2,p=1$"), "{text}");
        assert!(!text.contains("pw"), "no password in the file");
        let b = Accounts::parse(&text).unwrap();
        assert_eq!(b.names().collect::<Vec<_>>(), ["ALICE", "bob"]);
        assert!(b.verify("alice", "pw3"));
        assert!(!b.verify("alice", "pw1"));
        assert_eq!(a.clone().remove("Bob").unwrap(), "bob");
        assert!(matches!(
            a.remove("carol"),
            Err(AccountsError::NoSuchUser(_))
        ));

        let hash = hash_password("x");
        for (bad, line) in [
            ("# c\n\nno-colon\n".to_owned(), 3),
            (format!("bad name:{hash}\n"), 1),
            ("alice:plain\n".to_owned(), 1),
            (format!("alice:{hash}\nＡＬＩＣＥ:{hash}\n"), 2),
        ] {
            match Accounts::parse(&bad) {
                Err(AccountsError::Line { line: l, .. }) => assert_eq!(l, line, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert_eq!(a.set("x", ""), Err(AccountsError::EmptyPassword));
        assert_eq!(
            a.set("x", &"p".repeat(1025)),
            Err(AccountsError::PasswordTooLong)
        );
        assert!(matches!(
            a.set("no spaces", "p"),
            Err(AccountsError::Name(_))
        ));
        assert!(
            !format!("{a:?}").contains("argon2"),
            "Debug shows names only"
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let p = policy(false);
        let j = p.judge(7, "alice", login("hunter2"), true);
        assert!(!format!("{j:?}").contains("hunter2"));
    }

    /// RFC 4231 test case 1 (a 20-byte key: HMAC pads any key with zeros to a block, so
    /// the 32-byte form with zeros after it is the same key).
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let mut key = [0u8; 32];
        key[..20].fill(0x0b);
        let mac = hmac_sha256(&key, b"Hi There");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn a_login_to_ones_own_account_keeps_the_strikes_of_the_address() {
        let (mut b, t0) = (Backoff::default(), Instant::now());
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        for name in ["bob", "carol", "dave", "erin"] {
            b.failed(ip, name, t0);
        }
        assert!(b.blocked(ip, "frank", t0), "the address guessed four names");
        b.succeeded("mallory");
        assert!(
            b.blocked(ip, "frank", t0),
            "its own login does not clear it"
        );
        for _ in 0..4 {
            b.failed("10.0.0.10".parse().unwrap(), "alice", t0);
        }
        assert!(b.blocked("10.0.0.11".parse().unwrap(), "alice", t0));
        b.succeeded("alice");
        assert!(
            !b.blocked("10.0.0.11".parse().unwrap(), "alice", t0),
            "the name starts afresh"
        );
    }

    #[test]
    fn a_flood_of_names_does_not_wipe_the_strikes_of_one_that_waits() {
        let (mut b, t0) = (Backoff::default(), Instant::now());
        let target: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..5 {
            b.failed(target, "alice", t0);
        }
        // One failure each for as many other names as the table holds, from elsewhere.
        for i in 0..MAX_TRACKED {
            let source = IpAddr::from([11, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            b.failed(source, &format!("n{i}"), t0);
        }
        assert!(
            b.blocked("10.9.9.9".parse().unwrap(), "alice", t0),
            "alice still waits"
        );
        assert!(b.tracked() <= 2 * MAX_TRACKED);
    }

    #[test]
    fn the_backoff_follows_its_limits() {
        let limits = BackoffLimits {
            free: 1,
            first: Duration::from_secs(2),
            max: Duration::from_secs(5),
        };
        let (mut b, t0) = (Backoff::new(limits), Instant::now());
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        b.failed(ip, "alice", t0);
        assert!(!b.blocked(ip, "alice", t0), "one failure is free");
        b.failed(ip, "alice", t0);
        assert!(b.blocked(ip, "alice", t0 + Duration::from_millis(1999)));
        assert!(!b.blocked(ip, "alice", t0 + Duration::from_secs(2)));
        // 2 s, 4 s, then the 5 s cap.
        for _ in 0..3 {
            b.failed(ip, "alice", t0);
        }
        assert!(b.blocked(ip, "alice", t0 + Duration::from_millis(4999)));
        assert!(!b.blocked(ip, "alice", t0 + Duration::from_secs(5)));
    }

    #[test]
    fn tokens_refuse_tampering() {
        use base64::Engine;
        let t0 = std::time::Instant::now();
        let tokens = Tokens::new(t0, TOKEN_LIFETIME);
        let token = tokens.issue("alice", "c1", t0);
        assert!(tokens.check(&token, "alice", "c1", t0));
        let (payload, mac) = token.split_once('.').unwrap();
        // Another name or a later expiry under the same MAC.
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        for forged in [
            "bob\nc1\n99999999999",
            "alice\nc1\n99999999999999",
            "alice\nc2\n99999999999",
        ] {
            let t = format!("{}.{mac}", b64.encode(forged));
            assert!(!tokens.check(&t, "alice", "c1", t0) && !tokens.check(&t, "bob", "c1", t0));
            assert!(!tokens.check(&t, "alice", "c2", t0));
        }
        for bad in [
            "",
            ".",
            "x.y",
            &format!("{payload}."),
            &format!("{payload}.{payload}"),
        ] {
            assert!(!tokens.check(bad, "alice", "c1", t0), "{bad:?}");
        }
        assert!(!format!("{tokens:?}").contains(&format!("{:?}", tokens.key)));
    }

    /// Prints what one verify costs here (the figure in the module docs).
    #[test]
    #[ignore = "a measurement: run with --ignored --nocapture"]
    fn one_verify_costs() {
        let a = policy(false).accounts;
        let start = std::time::Instant::now();
        let n = 10;
        for _ in 0..n {
            assert!(a.verify("alice", "pw"));
        }
        eprintln!("one argon2id verify: {:?}", start.elapsed() / n);
    }
}
