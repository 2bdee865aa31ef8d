//! `tidings serve --config FILE`: the server's settings from a TOML file, and where its logs
//! go.
//!
//! Every `serve` flag has a key of the same name with `_` for `-` (`--max-connections` is
//! `max_connections`); `config` itself has none. A flag given on the command line wins over
//! the file; what neither gives keeps the flag's default (clap's, so defaults live in one
//! place). An unknown key is an error naming it and its line, so a typo cannot silently
//! leave a limit at its default. `packaging/tidings.toml` documents every key.

use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::Deserialize;

use crate::exit::{io_reason, CliError, Exit};
use crate::{Command, ServeArgs};

/// Where log lines go (`--log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogTarget {
    /// Standard error (the default).
    #[default]
    Stderr,
    /// The systemd journal, with the event's fields as journal fields (Linux).
    Journald,
}

/// Where the process's logs go, once the command line and the config file are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogDest {
    /// Standard error.
    Stderr,
    /// Appended to this file, without colours.
    File(PathBuf),
    /// The systemd journal.
    Journald,
}

/// Declares the file's keys once: the struct serde fills (each key optional, unknown keys
/// refused) and the merge into [`ServeArgs`], so a key cannot be read and then forgotten.
macro_rules! serve_file {
    ($($key:ident: $ty:ty),* $(,)?) => {
        /// The keys of a config file, each optional.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct ServeFile {
            $(
                #[doc = concat!("`", stringify!($key), "`")]
                pub $key: Option<$ty>,
            )*
        }

        impl ServeFile {
            /// Sets every key of the file on `args` that the command line did not give.
            fn apply(self, args: &mut ServeArgs, matches: &ArgMatches) {
                $(
                    if let Some(value) = self.$key {
                        if !on_command_line(matches, stringify!($key)) {
                            // `Into`: a plain value for a flag that is an `Option`.
                            args.$key = value.into();
                        }
                    }
                )*
            }
        }
    };
}

serve_file! {
    listen: String,
    name: String,
    inbox: PathBuf,
    console: bool,
    no_web: bool,
    max_connections: usize,
    max_per_address: usize,
    max_handshaking: usize,
    handshake_timeout_ms: u64,
    message_rate: u32,
    message_burst: u32,
    rate_limit_grace_ms: u64,
    relay_budget_mib: usize,
    chat_budget_mib: usize,
    presence_ms: u64,
    cluster: String,
    cluster_ca: PathBuf,
    cluster_creds: PathBuf,
    node: String,
    claim_ttl_secs: u64,
    node_timeout_secs: u64,
    default_room: String,
    rooms: Vec<String>,
    only_listed_rooms: bool,
    max_rooms: usize,
    max_rooms_per_user: usize,
    max_room_members: usize,
    stall_timeout_ms: u64,
    tls_cert: PathBuf,
    tls_key: PathBuf,
    allow_plaintext: bool,
    accounts: PathBuf,
    guests: bool,
    token_lifetime_secs: u64,
    login_free_failures: u32,
    login_backoff_max_secs: u64,
    heartbeat_ms: u64,
    timeout_ms: u64,
    log: LogTarget,
    log_file: PathBuf,
}

fn on_command_line(matches: &ArgMatches, id: &str) -> bool {
    matches!(matches.value_source(id), Some(ValueSource::CommandLine))
}

/// Reads `serve`'s config file into its arguments (flags on the command line win) and says
/// where logs go. Other commands log to standard error.
///
/// # Errors
///
/// The file cannot be read (exit 5), or it is not TOML, has an unknown key or a value of the
/// wrong type (exit 2), or both a log file and the journal are asked for (exit 2).
pub fn prepare(command: &mut Command, matches: &ArgMatches) -> Result<LogDest, CliError> {
    let Command::Serve(args) = command else {
        return Ok(LogDest::Stderr);
    };
    let matches = matches
        .subcommand_matches("serve")
        .expect("the serve command's own matches");
    if let Some(path) = args.config.clone() {
        let mut file = load(&path)?;
        // Where logs go is one setting: a log flag on the command line replaces both keys.
        if on_command_line(matches, "log") || on_command_line(matches, "log_file") {
            file.log = None;
            file.log_file = None;
        }
        file.apply(args, matches);
    }
    match (args.log, &args.log_file) {
        (LogTarget::Stderr, None) => Ok(LogDest::Stderr),
        (LogTarget::Stderr, Some(path)) => Ok(LogDest::File(path.clone())),
        (LogTarget::Journald, None) => Ok(LogDest::Journald),
        (LogTarget::Journald, Some(_)) => Err(CliError::new(
            Exit::Usage,
            "logs go either to the journal or to a file: set one of log = \"journald\" and \
             log_file",
        )),
    }
}

/// Parses the config file at `path`.
pub fn load(path: &Path) -> Result<ServeFile, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::new(
            Exit::File,
            format!(
                "cannot read the config file {}: {}",
                path.display(),
                io_reason(&e)
            ),
        )
    })?;
    parse(&text).map_err(|message| {
        CliError::new(
            Exit::Usage,
            format!("config file {}: {message}", path.display()),
        )
    })
}

/// Parses a config file's text; the error names the line and the key, on one line.
fn parse(text: &str) -> Result<ServeFile, String> {
    toml::from_str(text).map_err(|e| {
        // In this file's words: a field of the struct is a key of the file.
        let mut message = e.message().trim().replace("unknown field", "unknown key");
        // serde lists every key it expected: long, and the example file documents them.
        if let Some(cut) = message.find(", expected one of") {
            message.truncate(cut);
        }
        let Some(span) = e.span() else {
            return message;
        };
        let line_no = text[..span.start].matches('\n').count() + 1;
        let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
        let line = &text[line_start..];
        let line = line.lines().next().unwrap_or("");
        // A bad value's message names only the type; the key is what starts its line.
        match line.split_once('=').map(|(key, _)| key.trim()) {
            Some(key) if !key.is_empty() && !message.contains(&format!("`{key}`")) => {
                format!("line {line_no}: {key}: {message}")
            }
            _ => format!("line {line_no}: {message}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    const EXAMPLE: &str = include_str!("../../packaging/tidings.toml");

    /// The example with every documented `# key = value` line made live.
    fn example_uncommented() -> String {
        EXAMPLE
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if is_setting(rest) => rest,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `key = value` with a key of lowercase letters and `_`.
    fn is_setting(line: &str) -> bool {
        line.split_once(" = ").is_some_and(|(key, _)| {
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        })
    }

    /// The ids of `serve`'s own flags, from clap's definition of the command.
    fn serve_flags() -> Vec<String> {
        let cli = crate::Cli::command();
        let serve = cli.find_subcommand("serve").expect("a serve command");
        serve
            .get_arguments()
            .filter(|a| !a.is_global_set() && a.get_long().is_some())
            .map(|a| a.get_id().to_string())
            .filter(|id| id != "config")
            .collect()
    }

    #[test]
    fn the_example_parses_as_it_is_and_with_every_key_set() {
        parse(EXAMPLE).expect("the example parses as shipped");
        let all = example_uncommented();
        let file = parse(&all).unwrap_or_else(|e| panic!("the uncommented example: {e}"));
        assert_eq!(file.max_per_address, Some(256));
        assert_eq!(file.log, Some(LogTarget::Stderr));
    }

    #[test]
    fn every_serve_flag_has_a_key_in_the_example() {
        let all = example_uncommented();
        let table: toml::Table = toml::from_str(&all).unwrap();
        let flags = serve_flags();
        assert!(flags.len() >= 15, "{flags:?}");
        for id in &flags {
            assert!(
                table.contains_key(id),
                "the serve flag --{} has no key {id} in packaging/tidings.toml",
                id.replace('_', "-")
            );
        }
        // And every key of the example is a flag (the struct refuses unknown keys too).
        for key in table.keys() {
            assert!(flags.contains(key), "{key} is not a serve flag");
        }
    }

    #[test]
    fn every_serve_flag_is_a_key_the_file_accepts() {
        // Each flag's id as a key of its own, with a value of the wrong type for every key:
        // an unknown key is refused before its value is looked at.
        for id in serve_flags() {
            let err = parse(&format!("{id} = {{ x = 1 }}\n")).unwrap_err();
            assert!(
                !err.contains("unknown key"),
                "--{} has no key in ServeFile: {err}",
                id.replace('_', "-")
            );
        }
    }

    #[test]
    fn an_unknown_key_names_itself_and_its_line() {
        let err = parse("name = \"lobby\"\n\nmax_conections = 5\n").unwrap_err();
        assert_eq!(err, "line 3: unknown key `max_conections`");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = parse("listen = \"127.0.0.1:1\"\nmessage_rate = \"fast\"\n").unwrap_err();
        assert!(err.starts_with("line 2: message_rate: "), "{err}");
        let err = parse("max_connections = -1\n").unwrap_err();
        assert!(err.starts_with("line 1: max_connections: "), "{err}");
        let err = parse("log = \"syslog\"\n").unwrap_err();
        assert!(err.starts_with("line 1: log: "), "{err}");
        assert!(parse("this is not toml").is_err());
    }
}
