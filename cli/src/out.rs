//! Everything the `tidings` command prints: human lines with the time, or one JSON object
//! per line (`--json`), and progress bars on standard error.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Map, Value};

/// The key of the bar for a whole `send` (see [`Out::one_bar`]).
pub const TOTAL_BAR: u64 = u64::MAX;
/// The key of `send`'s countdown line while offers wait to be accepted.
pub const WAIT_LINE: u64 = u64::MAX - 1;

use crate::style::Style;

/// Where lines go instead of standard output while a line editor owns the terminal: it
/// prints each above its prompt. False when it could not (the line is then written directly).
pub type Printer = Box<dyn FnMut(String) -> bool>;

/// While a [`Printer`] is set, a transfer's progress is a line this often (bars drawn on the
/// same terminal as the editor's prompt would tear it).
const PROGRESS_LINE_EVERY: Duration = Duration::from_secs(2);

/// The printer shared by every command.
pub struct Out {
    json: bool,
    multi: MultiProgress,
    bars: HashMap<u64, ProgressBar>,
    /// Lines not yet written, while [`Out::buffer_when_piped`] holds them.
    pending: RefCell<Vec<u8>>,
    /// Lines are collected in `pending` instead of written one by one.
    buffered: bool,
    /// Only bars whose key is at least this are drawn (see [`Out::one_bar`]).
    min_bar_key: u64,
    /// Colours (off unless asked for and fit).
    style: Style,
    /// The line editor's printer, while one is in use.
    printer: RefCell<Option<Printer>>,
    /// When each transfer's progress was last printed as a line (with a printer).
    progress_shown: RefCell<HashMap<u64, Instant>>,
    /// Whether a printer is set (read without borrowing it).
    printing: Cell<bool>,
}

/// A buffered printer writes what it holds once it holds this much, even when busy.
const PENDING_LIMIT: usize = 64 * 1024;

impl Out {
    /// Human output (with progress bars when standard error is a terminal), or JSON lines.
    pub fn new(json: bool) -> Out {
        let multi = if json {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10))
        };
        Out {
            json,
            multi,
            bars: HashMap::new(),
            pending: RefCell::new(Vec::new()),
            buffered: false,
            min_bar_key: 0,
            style: Style::default(),
            printer: RefCell::new(None),
            progress_shown: RefCell::new(HashMap::new()),
            printing: Cell::new(false),
        }
    }

    /// The colours for human lines.
    pub fn set_style(&mut self, style: Style) {
        self.style = style;
    }

    /// The colours in force.
    pub fn style(&self) -> &Style {
        &self.style
    }

    /// The colours, to learn the server's participant name.
    pub fn style_mut(&mut self) -> &mut Style {
        &mut self.style
    }

    /// Sends every later line to `printer` (a line editor's), or back to standard output
    /// with `None`. With a printer, progress bars are not drawn: indicatif redraws its bar
    /// on the row the cursor is on (`CR`, erase line), which is the prompt's, so the line
    /// being typed vanished under the bar for the whole transfer (seen on a pseudo-terminal).
    /// Progress is a line above the prompt now and then instead.
    pub fn set_printer(&mut self, printer: Option<Printer>) {
        self.flush();
        let on = printer.is_some();
        *self.printer.get_mut() = printer;
        self.printing.set(on);
        if !self.json {
            self.multi.set_draw_target(if on {
                ProgressDrawTarget::hidden()
            } else {
                ProgressDrawTarget::stderr_with_hz(10)
            });
        }
    }

    /// When standard output is not a terminal, collect lines until [`Out::flush`] instead of
    /// writing each with its own system call: a busy server prints a line per chat message,
    /// and one `write` per line was several percent of its CPU. A terminal keeps one write per
    /// line. The caller flushes whenever it has nothing more to print right away, so lines
    /// are late by one burst of events at most; [`Out::unbuffer`] ends it.
    pub fn buffer_when_piped(&mut self) {
        self.buffered = !std::io::stdout().is_terminal();
    }

    /// Writes the lines collected so far, and prints every later line at once again.
    pub fn unbuffer(&mut self) {
        self.flush();
        self.buffered = false;
    }

    /// Writes the lines collected so far (nothing to do unless buffering).
    pub fn flush(&self) {
        let mut pending = self.pending.borrow_mut();
        if pending.is_empty() {
            return;
        }
        let write = || {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(&pending);
            let _ = stdout.flush();
        };
        // Suspending the bars asks the terminal about itself (a system call per burst): only
        // when there are bars to suspend.
        if self.bars.is_empty() {
            write();
        } else {
            self.multi.suspend(write);
        }
        pending.clear();
    }

    /// Whether `--json` is on.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// One event: `human` for people (prefixed with the time), or `{"time", "event": kind,
    /// ...fields()}` in JSON mode. The fields are made only in JSON mode: `tidings serve`
    /// prints every chat line the server sees, and building a JSON map that the text mode
    /// throws away was five allocations a line on the server's core.
    pub fn event(&self, kind: &str, human: impl Display, fields: impl FnOnce() -> Value) {
        let now = SystemTime::now();
        if self.json {
            let mut obj = Map::new();
            obj.insert("time".into(), Value::String(rfc3339(now)));
            obj.insert("event".into(), Value::String(kind.into()));
            if let Value::Object(f) = fields() {
                obj.extend(f);
            }
            // Exact JSON, with what a terminal would obey escaped (see `safe::Json`).
            self.line(crate::safe::Json(&Value::Object(obj)));
        } else {
            self.line(format_args!(
                "{} {}",
                self.style.time(format_args!("[{}]", Clock(now))),
                self.style.line(kind, human)
            ));
        }
    }

    /// Prints `text` as one line; buffered, it is formatted straight into the pending bytes.
    fn line(&self, text: impl Display) {
        if self.printing.get() {
            if let Some(printer) = self.printer.borrow_mut().as_mut() {
                if printer(text.to_string()) {
                    return;
                }
            }
        }
        if self.buffered {
            let full = {
                let mut pending = self.pending.borrow_mut();
                let _ = writeln!(pending, "{text}");
                pending.len() >= PENDING_LIMIT
            };
            if full {
                self.flush();
            }
            return;
        }
        // Printed above the progress bars, so neither tears the other.
        self.multi.suspend(|| {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{text}");
            let _ = stdout.flush();
        });
    }

    /// Draws no bar per transfer (keys below 2^63): the caller draws one bar for the whole
    /// under a key of its own from 2^63 up ([`Out::bar_start`] with [`TOTAL_BAR`]), as `send`
    /// does for many files and recipients. JSON progress events are printed as before.
    pub fn one_bar(&mut self) {
        self.min_bar_key = 1 << 63;
    }

    /// A line of status under `key` on the terminal (such as a countdown), replaced by each
    /// call; `None` removes it. Nothing in JSON mode.
    pub fn status(&mut self, key: u64, text: Option<String>) {
        if self.json {
            return;
        }
        match text {
            None => self.bar_end(key),
            Some(text) => {
                let bar = self.bars.entry(key).or_insert_with(|| {
                    let bar = self.multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {msg}").expect("valid template"),
                    );
                    bar
                });
                bar.set_message(crate::safe::inline(&text).to_string());
                bar.tick();
            }
        }
    }

    /// The bar under `key` measures its rate and ETA from now on: time in which nothing
    /// could move (waiting for an accept, checking a kept part) would drag them down.
    pub fn bar_restart_rate(&self, key: u64) {
        if let Some(bar) = self.bars.get(&key) {
            bar.reset_eta();
        }
    }

    /// Changes the length of the bar under `key`.
    pub fn bar_length(&self, key: u64, len: u64) {
        if let Some(bar) = self.bars.get(&key) {
            bar.set_length(len);
        }
    }

    /// Changes the label of the bar under `key` (the file now moving, on a bar for the whole).
    pub fn bar_label(&self, key: u64, label: &str) {
        if let Some(bar) = self.bars.get(&key) {
            bar.set_message(crate::safe::inline(label).to_string());
        }
    }

    /// A transfer began: one bar for it (`offset` non-zero when it resumes). `label` may
    /// come from the network: it is shown on one line, escaped (see `crate::safe`).
    pub fn bar_start(&mut self, id: u64, label: &str, size: u64, offset: u64) {
        if self.json || id < self.min_bar_key {
            return;
        }
        let bar = self.multi.add(bar_at(size, offset));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:24!} [{bar:30.cyan/blue}] {bytes:>10}/{total_bytes:10} {binary_bytes_per_sec:>12} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(crate::safe::inline(label).to_string());
        self.bars.insert(id, bar);
    }

    /// A bar of `total` steps under `key` unless it exists already (no JSON, no offset).
    pub fn bar_start_once(&mut self, key: u64, label: &str, total: u64) {
        if !self.bars.contains_key(&key) {
            self.bar_start(key, label, total, 0);
        }
    }

    /// A progress report (JSON mode prints it as an event).
    pub fn bar_progress(&self, id: u64, done: u64, total: u64, bytes_per_sec: u64) {
        if self.json {
            self.event(
                "progress",
                "",
                || json!({"id": id, "done": done, "total": total, "bytes_per_sec": bytes_per_sec}),
            );
        } else if let Some(bar) = self.bars.get(&id) {
            bar.set_position(done);
            if self.printing.get() {
                self.progress_line(id, bar, done, total, bytes_per_sec);
            }
        }
    }

    /// Progress as a line above the editor's prompt, at most every [`PROGRESS_LINE_EVERY`].
    fn progress_line(&self, id: u64, bar: &ProgressBar, done: u64, total: u64, rate: u64) {
        let now = Instant::now();
        {
            let mut shown = self.progress_shown.borrow_mut();
            let last = shown.entry(id).or_insert(now);
            if now.duration_since(*last) < PROGRESS_LINE_EVERY {
                return;
            }
            *last = now;
        }
        let percent = (done as f64 * 100.0 / total.max(1) as f64).min(100.0);
        // The bar's message is its label already made harmless by `bar_start`.
        self.event(
            "progress",
            format_args!(
                "{}: {percent:.0}% ({} of {}, {}/s)",
                bar.message(),
                size(done),
                size(total),
                size(rate)
            ),
            || json!({}),
        );
    }

    /// The transfer ended; its bar is cleared.
    pub fn bar_end(&mut self, id: u64) {
        self.progress_shown.borrow_mut().remove(&id);
        if let Some(bar) = self.bars.remove(&id) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
}

/// A bar of `size` steps standing at `offset` (a resumed transfer), not yet drawn anywhere,
/// whose rate counts only what moves from there. The position is set while the bar is
/// hidden, so the rate estimator records the offset as its start (a tick) without drawing;
/// then the time before is forgotten (`reset_eta`). Setting the position on a visible bar
/// drew it at once with the kept part as if moved in an instant (`7.90 TiB/s`), and that
/// line stayed on the screen until the first byte moved (while the kept part was checked).
fn bar_at(size: u64, offset: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::hidden());
    bar.set_position(offset);
    bar.tick();
    bar.reset_eta();
    bar
}

/// `HH:MM:SS` (UTC), for people.
struct Clock(SystemTime);

impl Display for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self
            .0
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let s = secs % 86_400;
        write!(f, "{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }
}

/// `2026-11-22T04:40:00.123Z`, for machines.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `1d 2h`, `10m`, `1m 30s`, `500 ms`: the largest two adjacent units.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{} ms", d.as_millis());
    }
    let parts = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let mut shown = Vec::new();
    let mut left = secs;
    for (size, unit) in parts {
        if left >= size && shown.len() < 2 {
            shown.push(format!("{}{unit}", left / size));
            left %= size;
        } else if !shown.is_empty() {
            // Only adjacent units: "1d 5s" would read oddly.
            break;
        }
    }
    shown.join(" ")
}

/// `1.5 MiB`.
pub fn size(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A terminal that keeps every line drawn.
    #[derive(Debug, Default, Clone)]
    struct Screen(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            120
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            if !s.trim().is_empty() {
                self.0.lock().unwrap().push(s.to_string());
            }
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_resumed_bar_never_shows_the_kept_part_as_moved() {
        let offset = 1u64 << 40;
        let screen = Screen::default();
        let bar = bar_at(offset * 2, offset);
        bar.set_style(ProgressStyle::with_template("{bytes} {binary_bytes_per_sec}").unwrap());
        bar.set_draw_target(ProgressDrawTarget::term_like(Box::new(screen.clone())));
        bar.tick();
        std::thread::sleep(Duration::from_millis(60));
        bar.set_position(offset + (1 << 20));
        bar.tick();
        let lines = screen.0.lock().unwrap().clone();
        assert!(!lines.is_empty());
        // 1 MiB in about 60 ms: some MiB/s; never the kept TiB over no time.
        for line in &lines {
            let unit = line.rsplit(' ').next().unwrap_or("");
            assert!(["B/s", "KiB/s", "MiB/s"].contains(&unit), "{lines:?}");
        }
    }

    #[test]
    fn dates() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(Clock(t).to_string(), "22:13:20");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn a_printer_takes_the_lines_and_progress_becomes_a_line_now_and_then() {
        let printed = std::rc::Rc::new(RefCell::new(Vec::<String>::new()));
        let mut out = Out::new(false);
        let sink = printed.clone();
        out.set_printer(Some(Box::new(move |line| {
            sink.borrow_mut().push(line);
            true
        })));
        out.event("said", "alice: hi", || json!({}));
        out.bar_start(7, "big.bin", 1 << 20, 0);
        out.bar_progress(7, 1 << 18, 1 << 20, 1000);
        assert_eq!(
            printed.borrow().len(),
            1,
            "the first report starts the clock"
        );
        let earlier = Instant::now() - PROGRESS_LINE_EVERY;
        out.progress_shown.borrow_mut().insert(7, earlier);
        out.bar_progress(7, 1 << 19, 1 << 20, 1000);
        out.bar_progress(7, 3 << 18, 1 << 20, 1000);
        out.bar_end(7);
        let printed = printed.borrow();
        assert_eq!(printed.len(), 2, "{printed:?}");
        assert!(printed[0].ends_with("] alice: hi"), "{printed:?}");
        assert!(
            printed[1].contains("] big.bin: 50% (512.00 KiB of 1.00 MiB"),
            "{printed:?}"
        );
        assert!(out.progress_shown.borrow().is_empty());
    }
}
