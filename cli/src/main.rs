//! `tidings`: chat and send files through a tidings server from the command line.

mod addr;
mod chat;
mod config;
mod conform;
mod exit;
mod line;
mod memory;
mod out;
mod safe;
mod send;
mod serve;
mod simple;
mod style;
mod tls;
mod user;
mod view;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use exit::CliError;
use out::Out;

const DEFAULT_ADDR: &str = "127.0.0.1:9988";

/// Chat and file transfer over the tidings protocol.
///
/// Start a server, then connect clients to it. Every message is shown with its time and
/// sender; `--json` prints one JSON object per line instead, for scripts.
#[derive(Parser, Debug)]
#[command(
    name = "tidings",
    version,
    after_long_help = EXAMPLES,
    after_help = "Run `tidings --help` for examples and exit codes."
)]
struct Cli {
    /// Print one JSON object per line for every event, on standard output.
    #[arg(long, global = true)]
    json: bool,
    /// More log output on standard error (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Colour names and kinds of lines: auto (when standard output is a terminal and
    /// NO_COLOR is not set), always or never. Never with --json.
    #[arg(long, global = true, value_enum, default_value_t, value_name = "WHEN")]
    color: style::ColorWhen,
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "\
Examples:
  tidings serve                                  # listen on 127.0.0.1:9988
  tidings serve --listen 0.0.0.0:9988 --inbox ./inbox
  tidings chat --name alice                      # type lines; /help lists commands
  tidings send --name alice --to bob report.pdf photo.jpg
  tidings recv --name bob --out ./downloads --count 2
  tidings say --name carol --to bob \"lunch at noon?\"
  git log -1 | tidings say --name ci -            # the message from standard input
  tidings --json recv --name bot --out /tmp/in   # machine-readable events
  tidings conform ws://127.0.0.1:9988/ws         # check a server against the protocol
  tidings user add alice --accounts users.txt    # register a name (asks for its password)
  tidings serve --accounts users.txt --tls-cert cert.pem --tls-key key.pem
  tidings chat --name alice --server tls://HOST --ca ca.pem --password-file pw.txt

Received files are written as NAME.part while they arrive and renamed to NAME once the
SHA-256 digest is confirmed; an existing file is never overwritten (NAME (1).ext is used).
A partial file that is kept after an interrupted transfer is resumed by the next offer of
the same name.

Exit codes:
  0  success
  1  other error (conform: a case FAILED)
  2  usage error (also: an empty message, sending to yourself, a bad --server)
  3  cannot connect to the server (refused, unreachable, not a tidings server)
  4  the server refused the name (taken, invalid, banned for a while, server full,
     a registered name without its password, a wrong password, a password over plaintext)
  5  a local file cannot be read (checked before connecting)
  6  a transfer failed or was rejected (the connection stayed up)
  7  the listening address is in use or not available
  8  the named peer is not online
  9  the connection was lost or closed by the server, even mid-transfer";

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a server: prints the address it listens on, logs joins and leaves.
    ///
    /// When standard input is a terminal (or with --console), type a line to say it to
    /// everyone, or `/msg NAME text`, `/who`, `/kick NAME [REASON]`, `/ban NAME DURATION
    /// [REASON]` (kick, and refuse the name and its look-alikes for DURATION: 90s, 10m, 2h,
    /// 1d), `/unban NAME`, `/send NAME PATH` (a file, or a folder's whole tree), `/quit`.
    /// Your own lines are shown as `server: text` or `server → NAME: text`.
    /// Ctrl-C, SIGTERM, /quit or the end of input shut down gracefully: every client is told
    /// goodbye first.
    #[command(
        after_help = "Examples:\n  tidings serve\n  tidings serve --listen 0.0.0.0:9988 --name lobby --inbox ./inbox\n  tidings --json serve --listen 127.0.0.1:0   # port 0: any free port, printed"
    )]
    Serve(Box<ServeArgs>),
    /// Chat interactively: a line goes to the current room (everyone starts in the server's
    /// default room; on a server without rooms, a line goes to everyone).
    ///
    /// Rooms: `/join ROOM` (enter it and talk there), `/leave [ROOM]` (default: the current
    /// one), `/rooms` (the server's rooms and member counts), `/who` (the current room's
    /// members), `/online` (everyone on the server). Every line shows its room: `#team ann:
    /// hi`.
    ///
    /// Commands: `/msg NAME text`, `/send NAME PATH`, `/accept ID` (`/accept all`:
    /// every offer waiting, such as a folder's files), `/reject ID`, `/cancel ID` (a transfer
    /// either way), `/quit`. `/send` takes a file or a folder (its
    /// whole tree, as `tidings send` sends it); each transfer is shown under the number its
    /// receiver sees. Offers wait for /accept unless --accept-files is given. A lost
    /// connection is re-established with backoff. `/msg` and `/send` to your own name are
    /// refused.
    ///
    /// On a terminal, lines are typed in a line editor: what arrives is printed above it,
    /// arrow keys move and Up/Down (or Ctrl-R) recall earlier lines, Ctrl-C clears the line,
    /// and Ctrl-C on an empty line or Ctrl-D quits. Typed lines are kept in
    /// $XDG_STATE_HOME/tidings/chat-history (else ~/.local/state/tidings/chat-history; a line
    /// starting with a space is not kept) unless --no-history is given. When standard input
    /// or output is not a terminal, lines are read and printed plainly.
    #[command(
        after_help = "Examples:\n  tidings chat --name alice\n  tidings chat --name bob --server chat.example.org:9988 --download-dir ~/Downloads --accept-files\n\nThen type:  hello all  |  /msg bob hi  |  /send bob report.pdf  |  /accept 3  |  /join team  |  /who  |  /quit"
    )]
    Chat(ChatArgs),
    /// Send files and folders to one or more peers; exits 0 only when every file arrived at
    /// every recipient with its digest confirmed.
    #[command(
        after_help = "Examples:\n  tidings send --name alice --to bob photo.jpg\n  tidings send --name alice --to bob *.pdf --server chat.example.org:9988\n  tidings send --name alice --to bob --to carol a.txt ./photos   # a folder, to two people\n  tidings send --name alice --to bob --accept-timeout 30 big.iso\n  tidings send --name alice --to server notes.txt   # into the server's --inbox\n  tidings send --name alice --room team slides.pdf  # to every other member of #team\n\nA folder is sent as its tree (empty folders included); symbolic links inside it are skipped,\nnever followed. Each recipient gets every file as its own transfer. After offering, send waits\nfor the recipient to accept, counting down --accept-timeout (the server's own offer timeout,\n120 s by default, also applies: the shorter one ends the wait), then fails with exit 6."
    )]
    Send(SendArgs),
    /// Receive files into a folder (resuming kept partial files, never overwriting).
    #[command(
        after_help = "Examples:\n  tidings recv --name bob --out ./downloads\n  tidings recv --name bob --out ./downloads --count 1   # exit after one file\n\nFiles arrive as NAME.part and are renamed once their SHA-256 matches; a kept NAME.part is\nresumed by the next offer of NAME; an existing NAME is never overwritten (NAME (1).ext).\nA folder sent with `tidings send DIR` is rebuilt below --out (never outside it: a symbolic\nlink met on the way refuses the file)."
    )]
    Recv(RecvArgs),
    /// Say one message (to the default room, privately with --to, or in a room with --room)
    /// and exit.
    #[command(
        after_help = "Examples:\n  tidings say --name ci \"build 42 is green\"\n  tidings say --name ci --to alice \"your build failed\"\n  tidings say --name ci --room team \"deploying now\"\n  tidings say --name ci - < release-notes.txt"
    )]
    Say(SayArgs),
    /// Write a private CA and a server certificate signed by it (for tests and first runs),
    /// and print how to serve with them and how clients trust them.
    #[command(
        after_help = "Examples:\n  tidings cert --name localhost\n  tidings cert --name chat.lan --name 192.168.1.5 --out /etc/tidings/tls\n\nWrites ca.pem, cert.pem and key.pem (mode 0600) into --out; never overwrites a file."
    )]
    Cert(CertArgs),
    /// Check a running server against the protocol: scripted cases, each named by the section
    /// of spec/PROTOCOL.md it checks, judged OK, NON-STRICT, FAILED, UNIMPLEMENTED or
    /// INFORMATIONAL. Exits 1 when any case FAILED.
    ///
    /// URL is tcp://HOST:PORT, tls://HOST:PORT (--ca FILE or the system's authorities),
    /// ws://HOST:PORT/ws (the native cases in binary WebSocket messages, and the JSON mode) or
    /// wss://HOST:PORT/ws. A FAILED case is followed by every byte its clients sent and got.
    #[command(
        after_help = "Examples:\n  tidings conform tcp://127.0.0.1:9988\n  tidings conform ws://127.0.0.1:9988/ws --cases '6.3-*,12.*'\n  tidings conform tls://chat.example.org:9988 --ca tls/ca.pem --junit conform.xml\n  tidings conform tcp://127.0.0.1 --spawn 'tidings serve --listen 127.0.0.1:{port}'"
    )]
    Conform(ConformArgs),
    /// Manage the accounts file of `tidings serve --accounts`: add (or re-password), delete
    /// and list users.
    #[command(
        after_help = "Examples:\n  tidings user add alice --accounts users.txt      # asks for the password twice\n  printf '%s\\n' \"$PW\" | tidings user add ci --accounts users.txt   # from standard input\n  tidings user del alice --accounts users.txt\n  tidings user list --accounts users.txt\n\nThe file holds one `name:argon2id-hash` line per user and is written to a temporary file\nbeside it, synced and renamed into place (mode 0600). Names compare like on the server:\nALICE and alice are the same user."
    )]
    User(UserArgs),
}

#[derive(Args, Debug)]
struct ConformArgs {
    /// The server: tcp://HOST:PORT, tls://HOST:PORT, ws://HOST:PORT/PATH or
    /// wss://HOST:PORT/PATH (the port may be left out with --spawn).
    url: String,
    /// With tls:// or wss://: trust the certificate authorities in this PEM file instead of
    /// the system's.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// How long each expectation of a case waits, in milliseconds.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    timeout_ms: u64,
    /// Run only the cases whose ids match these globs (comma-separated or repeated):
    /// `4.*`, `6.3-*`, `10-relay-digest`.
    #[arg(long, value_name = "GLOB")]
    cases: Vec<String>,
    /// Start a fresh server for each group of cases (a spec section) with this shell
    /// command, `{port}` replaced by a free 127.0.0.1 port; the URL's port is not used.
    #[arg(long, value_name = "COMMAND")]
    spawn: Option<String>,
    /// Also write the verdicts as JUnit XML to this file.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// The server's handshake timeout (it is not announced): the §6.6.4 cases wait for it
    /// only when it is given.
    #[arg(long, value_name = "MS")]
    handshake_timeout_ms: Option<u64>,
    /// The longest a case waits for a server's timer (heartbeats, the handshake timeout);
    /// longer ones are reported INFORMATIONAL instead of waited for.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    max_wait_ms: u64,
}

#[derive(Args, Debug)]
struct UserArgs {
    #[command(subcommand)]
    action: UserAction,
}

#[derive(Subcommand, Debug)]
enum UserAction {
    /// Register NAME, or give it a new password: from a prompt (twice) on a terminal, else
    /// the first line of standard input.
    Add {
        /// The name to register.
        name: String,
        /// The accounts file (created if missing).
        #[arg(long, value_name = "FILE")]
        accounts: PathBuf,
    },
    /// Remove NAME.
    Del {
        /// The name to remove (any spelling that compares equal).
        name: String,
        /// The accounts file.
        #[arg(long, value_name = "FILE")]
        accounts: PathBuf,
    },
    /// List the registered names, one a line.
    List {
        /// The accounts file.
        #[arg(long, value_name = "FILE")]
        accounts: PathBuf,
    },
}

#[derive(Args, Debug)]
struct CertArgs {
    /// A name the certificate is for: a DNS name or an IP address (repeat for more).
    #[arg(long, required = true, value_name = "HOST")]
    name: Vec<String>,
    /// The folder to write ca.pem, cert.pem and key.pem into.
    #[arg(long, default_value = ".", value_name = "DIR")]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Read settings from this TOML file: every flag of `serve` is a key (`max_connections`
    /// for --max-connections); flags given here win. The source's packaging/tidings.toml
    /// documents every key.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where log lines go: stderr, or journald (the systemd journal, Linux). Logs to a file
    /// or the journal default to level info (joins, leaves, refusals), else warn.
    #[arg(long, value_enum, default_value_t = config::LogTarget::Stderr, value_name = "TARGET")]
    log: config::LogTarget,
    /// Append log lines to this file (no colours) instead of standard error.
    #[arg(long, value_name = "PATH", conflicts_with = "log")]
    log_file: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_ADDR)]
    listen: String,
    /// The server participant's name.
    #[arg(long, default_value = "server")]
    name: String,
    /// Accept files offered to the server into this folder.
    #[arg(long)]
    inbox: Option<PathBuf>,
    /// Read operator commands from standard input even when it is not a terminal.
    #[arg(long)]
    console: bool,
    /// Do not serve the web page at / (WebSocket clients are still accepted at /ws).
    #[arg(long)]
    no_web: bool,
    /// Most open connections at once (0: no limit). Beyond it a new connection is turned
    /// away: a native client gets `server-full`, an HTTP client 503. Default 12 000, or the
    /// process's descriptor limit (`ulimit -n`) less 64 when that is lower.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Most open connections from one source address (IPv6: one /64; 0: no limit).
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_per_address: usize,
    /// Most connections still in their handshake at once: at the door, in the WebSocket
    /// handshake, or before hello (0: no limit).
    #[arg(long, default_value_t = 1024, value_name = "N")]
    max_handshaking: usize,
    /// How long a new connection may take to say what it is and to send hello (or its HTTP
    /// request head), in milliseconds.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    handshake_timeout_ms: u64,
    /// Messages per second one client may send on average (text, blob, list requests,
    /// offers; not file data). Faster clients are slowed, then disconnected with
    /// `rate-limited` (0: no limit).
    #[arg(long, default_value_t = 500, value_name = "N")]
    message_rate: u32,
    /// Messages one client may send at once above the rate.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    message_burst: u32,
    /// How long a client may stay over the message rate while slowed before it is
    /// disconnected, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    rate_limit_grace_ms: u64,
    /// Most relayed file data the server holds for all transfers together, in MiB; senders
    /// wait for credit beyond it.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    relay_budget_mib: usize,
    /// Most chat output (texts, presence, lists; not file data) the server holds queued for
    /// all clients together, in MiB; past it the clients furthest behind are disconnected
    /// with `slow-consumer`.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    chat_budget_mib: usize,
    /// How long news of arrivals and departures may wait to be told to everyone, in
    /// milliseconds: a burst of joins then costs each client one write per interval instead
    /// of one per join. Anything else sent to a client carries the news before it. 0 tells
    /// each at once.
    #[arg(long, default_value_t = 100, value_name = "MS")]
    presence_ms: u64,
    /// Join a cluster through NATS (its JetStream on: `nats-server -js`): names are unique
    /// across every server of the cluster, and the default room and private messages span
    /// them. Several URLs comma-separated; `tls://` for TLS, `user:password@` before the host
    /// for credentials.
    #[arg(long, value_name = "nats://HOST:PORT")]
    cluster: Option<String>,
    /// Certificate authorities (PEM) to trust for a `tls://` cluster URL (default: the
    /// system's).
    #[arg(long, value_name = "FILE", requires = "cluster")]
    cluster_ca: Option<PathBuf>,
    /// A NATS credentials file (`.creds`) for a NATS server that asks for one.
    #[arg(long, value_name = "FILE", requires = "cluster")]
    cluster_creds: Option<PathBuf>,
    /// This server's name in the cluster, unique among its servers (default: the host's
    /// name and the port).
    #[arg(long, value_name = "NAME", requires = "cluster")]
    node: Option<String>,
    /// How soon the names of a cluster server that died are free again, in seconds (the
    /// lifetime of a name claim not renewed).
    #[arg(long, default_value_t = 15, value_name = "SECS")]
    claim_ttl_secs: u64,
    /// How long a cluster server may stay silent before the others take it for dead and its
    /// users leave their lists, in seconds.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    node_timeout_secs: u64,
    /// The room every client is in when it arrives (the only room of clients that do not
    /// speak rooms).
    #[arg(long, default_value = "lobby", value_name = "ROOM")]
    default_room: String,
    /// A room opened at start and kept while empty (repeat the flag for more).
    #[arg(long = "room", value_name = "ROOM")]
    rooms: Vec<String>,
    /// Clients may join only the default room and the rooms opened with --room or from the
    /// console; without it, joining a room that does not exist opens it.
    #[arg(long)]
    only_listed_rooms: bool,
    /// Most rooms at once, the default room included.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    max_rooms: usize,
    /// Most rooms one client is in at once, the default room included.
    #[arg(long, default_value_t = 100, value_name = "N")]
    max_rooms_per_user: usize,
    /// Most members of one room (the default room is bounded by the connection limits).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    max_room_members: usize,
    /// A transfer (or relay hop) that moves no byte for this long fails with
    /// `transfer-timeout`, in milliseconds.
    #[arg(long, default_value_t = 60_000, value_name = "MS")]
    stall_timeout_ms: u64,
    /// Serve TLS on the port with this certificate chain (PEM, the server's certificate
    /// first): tls:// for native clients, https:// and wss:// for browsers. Reloaded on
    /// SIGHUP and when the file changes. Needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// With --tls-cert, serve plaintext clients on the same port too (refused by default,
    /// with an answer that says to use TLS).
    #[arg(long, requires = "tls_cert")]
    allow_plaintext: bool,
    /// Admit registered names only to their owners: the users of this file (written by
    /// `tidings user add`), who log in with their password. Names not in it are refused
    /// unless --guests. Passwords are taken only over TLS or from loopback. Reloaded on
    /// SIGHUP and when the file changes: a removed user who is online is closed.
    #[arg(long, value_name = "FILE")]
    accounts: Option<PathBuf>,
    /// With --accounts, let in unregistered names too (without a password); registered
    /// names stay their owners'.
    #[arg(long, requires = "accounts")]
    guests: bool,
    /// With --accounts, how long a session token stays good, in seconds (a client
    /// reconnecting or a page reloaded logs in with it instead of the password).
    #[arg(long, default_value_t = 12 * 60 * 60, value_name = "SECS")]
    token_lifetime_secs: u64,
    /// With --accounts, failed logins from one address (or for one name) before further
    /// tries from there (or for it) must wait: 1 s, doubling with each failure.
    #[arg(long, default_value_t = 3, value_name = "N")]
    login_free_failures: u32,
    /// With --accounts, the longest such wait, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    login_backoff_max_secs: u64,
    /// Heartbeat interval in milliseconds (clients follow the server's value).
    #[arg(long, default_value_t = 10_000, hide = true)]
    heartbeat_ms: u64,
    /// Heartbeat timeout in milliseconds.
    #[arg(long, default_value_t = 30_000, hide = true)]
    timeout_ms: u64,
}

#[derive(Args, Debug, Clone)]
struct Conn {
    /// Your name on the server.
    #[arg(long)]
    name: String,
    /// The server's address: HOST, HOST:PORT, [IPv6] or [IPv6]:PORT (port 9988 when
    /// omitted); tls://HOST:PORT connects with TLS. Several, separated by commas
    /// (a:9988,b:9988): tried in order until one answers; a chat that loses its server goes
    /// on to the next.
    #[arg(long, default_value = DEFAULT_ADDR, value_parser = addr::servers)]
    server: addr::Servers,
    /// With tls://: trust the certificate authorities in this PEM file (a private CA, such
    /// as the ca.pem of `tidings cert`) instead of the system's.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// How long the server may take to answer as a tidings server, in milliseconds;
    /// beyond it (a silent listener, a stopped server) the command exits 3.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    handshake_timeout_ms: u64,
    /// Log in to the account of --name with the password in this file (its first line).
    /// Else TIDINGS_PASSWORD is used if set; else, when the server says the name needs a
    /// password and standard input is a terminal, it is asked for.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ChatArgs {
    #[command(flatten)]
    conn: Conn,
    /// Where accepted files go.
    #[arg(long, default_value = ".")]
    download_dir: PathBuf,
    /// Accept every offered file at once.
    #[arg(long)]
    accept_files: bool,
    /// Join this room at once and talk there (rooms need a server that speaks them; `/join`
    /// and `/leave` move between rooms later).
    #[arg(long, value_name = "ROOM")]
    room: Option<String>,
    /// Keep the typed lines in memory only: do not read or append the history file
    /// ($XDG_STATE_HOME/tidings/chat-history, else ~/.local/state/tidings/chat-history).
    #[arg(long)]
    no_history: bool,
}

#[derive(Args, Debug)]
struct SendArgs {
    #[command(flatten)]
    conn: Conn,
    /// A receiving peer; repeat for several (each gets every file). Your own name (in any
    /// case or look-alike spelling) is refused before connecting, with exit code 2.
    #[arg(long, required_unless_present = "room")]
    to: Vec<String>,
    /// Send to every other member of this room instead (the server must speak rooms): one
    /// transfer to each, each accepted or declined on its own; a summary says who took the
    /// files. Exit 6 only when nobody did.
    #[arg(long, value_name = "ROOM", conflicts_with = "to")]
    room: Option<String>,
    /// How long each offer waits to be accepted, in seconds.
    #[arg(long, default_value_t = 120, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    accept_timeout: u64,
    /// Files and folders to send.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Args, Debug)]
struct RecvArgs {
    #[command(flatten)]
    conn: Conn,
    /// Folder for received files (created if missing).
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Exit after this many files arrived.
    #[arg(long)]
    count: Option<u64>,
    /// Keep at most this many folder levels of an offered path (a deeper one is refused
    /// with bad-file-name); 0 keeps no folders: every file lands directly in --out.
    #[arg(long, default_value_t = 32, value_name = "LEVELS")]
    max_depth: usize,
}

#[derive(Args, Debug)]
struct SayArgs {
    #[command(flatten)]
    conn: Conn,
    /// Say it privately to this peer. Your own name is refused before connecting, with exit
    /// code 2.
    #[arg(long)]
    to: Option<String>,
    /// Say it in this room instead of the default room: join it, say it, leave (the server
    /// must speak rooms).
    #[arg(long, value_name = "ROOM", conflicts_with = "to")]
    room: Option<String>,
    /// The message (several words are joined by spaces). `-` alone reads it from standard
    /// input: all of it, several lines allowed, the final line break removed; empty input
    /// is a usage error (exit code 2).
    #[arg(required = true)]
    text: Vec<String>,
}

fn main() {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let mut out = Out::new(cli.json);
    out.set_style(style::Style::new(style::enabled(cli.color, cli.json)));
    // `serve --config` fills in what the command line left out, log destination included.
    let result = config::prepare(&mut cli.command, &matches)
        .and_then(|logs| init_logging(cli.verbose, &logs))
        .and_then(|()| smol::block_on(run(cli.command, &mut out)));
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            if out.is_json() {
                out.event(
                    "error",
                    "",
                    || serde_json::json!({"exit_code": e.code as i32, "message": e.message}),
                );
            }
            // The message may quote the server (a reason, a name): one safe line.
            eprintln!("tidings: error: {}", safe::inline(&e.message));
            std::process::exit(e.code as i32);
        }
    }
}

async fn run(command: Command, out: &mut Out) -> Result<(), CliError> {
    match command {
        Command::Serve(a) => serve::run(*a, out).await,
        Command::Chat(a) => chat::run(a, out).await,
        Command::Send(a) => send::send(a, out).await,
        Command::Recv(a) => simple::recv(a, out).await,
        Command::Say(a) => simple::say(a, out).await,
        Command::Cert(a) => tls::cert(a, out),
        Command::Conform(a) => conform::run(a, out),
        Command::User(a) => user::run(a.action, out),
    }
}

fn init_logging(verbose: u8, dest: &config::LogDest) -> Result<(), CliError> {
    use config::LogDest;
    use tracing_subscriber::EnvFilter;
    let default = match (verbose, dest) {
        // A service's log is the record of who came and went; stderr has the events on
        // standard output beside it.
        (0, LogDest::Stderr) => "warn",
        (0, _) => "info",
        (1, _) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    match dest {
        LogDest::Stderr => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogDest::File(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    CliError::new(
                        exit::Exit::File,
                        format!(
                            "cannot open the log file {}: {}",
                            path.display(),
                            exit::io_reason(&e)
                        ),
                    )
                })?;
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .init()
        }
        LogDest::Journald => journald(filter)?,
    }
    Ok(())
}

/// Logs to the systemd journal; an error if its socket is not there.
#[cfg(target_os = "linux")]
fn journald(filter: tracing_subscriber::EnvFilter) -> Result<(), CliError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let layer = tracing_journald::layer().map_err(|e| {
        CliError::new(
            exit::Exit::Other,
            format!(
                "cannot log to the systemd journal (is journald running?): {}",
                exit::io_reason(&e)
            ),
        )
    })?;
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .init();
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn journald(_filter: tracing_subscriber::EnvFilter) -> Result<(), CliError> {
    Err(CliError::new(
        exit::Exit::Usage,
        "logging to the systemd journal needs Linux",
    ))
}

/// `server` for error messages that name it.
fn shown_addr(server: &addr::ServerAddr) -> String {
    let addr = server
        .addr
        .parse::<SocketAddr>()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| server.addr.clone());
    if server.tls {
        format!("tls://{addr}")
    } else {
        addr
    }
}
