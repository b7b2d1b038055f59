//! The console pipeline: from a server's output file to history, throttled
//! batches for the Panel and classified events.
//!
//! A server's stdout and stderr go to a log file (not a pipe), so the
//! server keeps running — and keeps writing — when the Agent exits; the
//! Agent tails the file ([`spawn_tail`]). Per line:
//!
//! 1. it enters the server's [`History`], a ring of the last N lines;
//! 2. it passes the server's [`Throttle`] (a token bucket of lines per
//!    second) or is counted as dropped;
//! 3. passed lines are classified by the game-type plugin
//!    ([`Classifier`], running in the sandbox) and batched; a batch goes to
//!    the Panel every `batch_interval` with the dropped count, through a
//!    bounded channel (`try_send`: a full channel drops the batch and counts
//!    its lines rather than blocking).
//!
//! ## Lines, or a screen
//!
//! Most games write lines, and a line is what they wrote up to `\n`
//! (a trailing `\r` dropped), byte for byte: colour sequences (SGR) stay
//! in the line as today, and so do `\r` and erase-to-end-of-line, which
//! progress output uses within one line. The browser console shows a line
//! as a text node (`server.js`), so such sequences show
//! there as they are.
//!
//! A game that *draws* (ncurses, Minetest's `--terminal`, a JLine prompt
//! redrawn around the log) positions the cursor by row instead. The line
//! path watches for that, and only that: the first escape sequence that
//! moves the cursor to another row (`CSI H`/`f`/`d`/`A`/`B`/`E`/`F`,
//! reverse index), sets a scroll region or scrolls (`CSI r`/`S`/`T`/`L`/
//! `M`), or switches to the alternate screen (`CSI ? 1049 h`, `47`,
//! `1047`) switches the server's console, for the rest of the run, to a
//! terminal emulator ([`Terminal`]), which emits each row the game
//! finishes as one plain-text line (see [`crate::terminal`] for what that
//! means). Switching on evidence rather than always emulating keeps plain
//! output byte for byte (an emulator would drop colours and wrap long
//! lines at the screen's width) and keeps the line path a `memchr` for
//! `\n` and `ESC`; switching for the rest of the run (not back when the
//! game leaves the alternate screen) keeps a curses program's tear-down
//! sequences out of the lines that follow. A new run starts on the line
//! path again.
//!
//! Memory stays flat whatever a server prints: reads use a fixed buffer, a
//! line longer than `max_line_bytes` is cut, the emulator's screen has a
//! fixed size, history is a ring and a flood
//! costs one counter. Each server has its own bucket, so a flooding server
//! cannot use up another's budget. Disk use is bounded too: once more than
//! `max_log_bytes` have been read, the read part of the log is released by
//! punching a hole (the file keeps its offsets, so nothing is lost).

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cap_protocol::{AgentMessage, ConsoleEvent};
use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};

use crate::terminal::Terminal;

/// Console pipeline settings.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Lines kept per server for history.
    pub history_lines: usize,
    /// Lines per second forwarded (and classified) per server; bursts up to
    /// this many lines pass at once.
    pub lines_per_second: u32,
    /// How often a batch is sent.
    pub batch_interval: Duration,
    /// How often the log file is polled for new output.
    pub poll_interval: Duration,
    /// Longer lines are cut to this many bytes.
    pub max_line_bytes: usize,
    /// Read log bytes beyond this are released from the disk.
    pub max_log_bytes: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            history_lines: 1_000,
            lines_per_second: 200,
            batch_interval: Duration::from_millis(100),
            poll_interval: Duration::from_millis(20),
            max_line_bytes: 4_096,
            max_log_bytes: 16 << 20,
        }
    }
}

/// A bounded ring of a server's last lines.
#[derive(Debug)]
pub struct History {
    capacity: usize,
    lines: Mutex<VecDeque<String>>,
}

impl History {
    /// An empty ring of `capacity` lines.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            lines: Mutex::new(VecDeque::with_capacity(capacity.clamp(1, 4096))),
        }
    }

    /// How many lines the ring holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds a line, forgetting the oldest when full.
    pub fn push(&self, line: String) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The lines, oldest first.
    pub fn snapshot(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect()
    }

    /// How many lines are held.
    pub fn len(&self) -> usize {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no line is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every line.
    pub fn clear(&self) {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// A token bucket of lines.
#[derive(Debug)]
pub struct Throttle {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Throttle {
    /// A full bucket refilling at `lines_per_second`.
    pub fn new(lines_per_second: u32) -> Self {
        let rate = f64::from(lines_per_second.max(1));
        Self {
            rate,
            tokens: rate,
            last: Instant::now(),
        }
    }

    /// Whether one more line may pass now.
    pub fn allow(&mut self) -> bool {
        self.allow_at(Instant::now())
    }

    /// [`Throttle::allow`] at a given time (for tests).
    pub fn allow_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Classifies console lines; implemented for game-type plugins.
pub trait Classifier: Send + Sync + 'static {
    /// What `line` means, or `None` for a plain line. Errors (a plugin
    /// timing out, say) count as plain lines. `context` is the startup
    /// plan's console context, as the game type gave it.
    fn classify<'a>(
        &'a self,
        context: &'a str,
        line: &'a str,
    ) -> BoxFuture<'a, Option<ConsoleEvent>>;
}

/// A [`Classifier`] that calls a game-type plugin's `classify-line` in the
/// sandbox.
#[derive(Clone)]
pub struct PluginClassifier {
    plugin: cap_runtime::Plugin,
}

impl PluginClassifier {
    /// Wraps a loaded game-type plugin.
    pub fn new(plugin: cap_runtime::Plugin) -> Self {
        Self { plugin }
    }
}

impl std::fmt::Debug for PluginClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginClassifier").finish_non_exhaustive()
    }
}

impl Classifier for PluginClassifier {
    fn classify<'a>(
        &'a self,
        context: &'a str,
        line: &'a str,
    ) -> BoxFuture<'a, Option<ConsoleEvent>> {
        Box::pin(async move {
            use cap_runtime::api::LineKind;
            match self.plugin.classify_line(context, line).await {
                Ok(LineKind::Plain) => None,
                Ok(LineKind::Ready) => Some(ConsoleEvent::Ready),
                Ok(LineKind::PlayerJoined(name)) => Some(ConsoleEvent::PlayerJoined { name }),
                Ok(LineKind::PlayerLeft(name)) => Some(ConsoleEvent::PlayerLeft { name }),
                Ok(LineKind::Warning(text)) => Some(ConsoleEvent::Warning { text }),
                Ok(LineKind::Crash(cause)) => Some(ConsoleEvent::Crash { cause }),
                Err(error) => {
                    tracing::debug!(%error, "classify-line failed; treating the line as plain");
                    None
                }
            }
        })
    }
}

/// Called with every classified event, before it is sent (the runtime uses
/// it for state: ready, players, crash cause).
pub type EventHook = Arc<dyn Fn(&ConsoleEvent) + Send + Sync>;

/// What [`spawn_tail`] needs.
pub struct TailSpec {
    /// The server.
    pub server_id: String,
    /// Its console log file.
    pub log: PathBuf,
    /// Where reading starts.
    pub offset: u64,
    /// Its history ring.
    pub history: Arc<History>,
    /// Its game type's classifier, if loaded.
    pub classifier: Option<Arc<dyn Classifier>>,
    /// The console context of the run's startup plan, for the classifier.
    pub console_context: String,
    /// Sees every event first.
    pub on_event: EventHook,
    /// Where batches and events go.
    pub events: mpsc::Sender<AgentMessage>,
    /// Set to `true` to read to the end one last time and stop.
    pub finish: watch::Receiver<bool>,
    /// Settings.
    pub config: ConsoleConfig,
}

/// The longest escape sequence the line path looks into; a longer one is
/// text.
const MAX_ESCAPE: usize = 32;

/// Splits console bytes into lines, cutting overlong ones, with bounded
/// memory; output drawn with cursor addressing goes through a
/// [`Terminal`] instead (see the module docs).
#[derive(Debug)]
struct LineSplitter {
    partial: Vec<u8>,
    max: usize,
    /// The start of an escape sequence a read ended in (at most
    /// [`MAX_ESCAPE`] bytes, from its `ESC`).
    escape: Vec<u8>,
    /// Set once the output draws a screen; from then on every byte goes
    /// through it.
    terminal: Option<Box<Terminal>>,
}

/// What an escape sequence is to the line path.
#[derive(Debug, PartialEq, Eq)]
enum Escape {
    /// Text like any other (colours, erasing to the end of the line, a
    /// window title), `len` bytes long.
    Text(usize),
    /// It addresses the cursor by row, scrolls or switches to the
    /// alternate screen: the output is a screen.
    Draws,
}

/// Reads the escape sequence at the start of `bytes` (which starts with
/// `ESC`); `None` when `bytes` ends before the sequence does.
fn scan_escape(bytes: &[u8]) -> Option<Escape> {
    match *bytes.get(1)? {
        // Reverse index: the cursor up one row, scrolling at the top.
        b'M' => Some(Escape::Draws),
        b'[' => {
            let body = &bytes[2..];
            let end = body.iter().position(|b| !(0x20..=0x3f).contains(b));
            let Some(end) = end else {
                // Too long to be one a game draws with: text.
                return (body.len() >= MAX_ESCAPE).then_some(Escape::Text(bytes.len()));
            };
            let last = body[end];
            if !(0x40..=0x7e).contains(&last) {
                // A control ends the sequence as text; it is itself.
                return Some(Escape::Text(2 + end));
            }
            let params = &body[..end];
            let draws = match params.first() {
                // Cursor position, row, up/down, next/previous line; scroll
                // region, scrolling, inserting and deleting lines.
                Some(0x30..=0x3b) | None => matches!(
                    last,
                    b'H' | b'f'
                        | b'd'
                        | b'A'
                        | b'B'
                        | b'E'
                        | b'F'
                        | b'r'
                        | b'S'
                        | b'T'
                        | b'L'
                        | b'M'
                ),
                // The alternate screen.
                Some(b'?') => {
                    last == b'h'
                        && params[1..]
                            .split(|&b| b == b';')
                            .any(|p| matches!(p, b"47" | b"1047" | b"1049"))
                }
                Some(_) => false,
            };
            Some(if draws {
                Escape::Draws
            } else {
                Escape::Text(2 + end + 1)
            })
        }
        // `ESC` before a control is itself; the control is handled as such.
        0x00..=0x1f => Some(Escape::Text(1)),
        // Any other escape (charsets, keypad modes, OSC and string
        // introducers, whose bodies then pass as text).
        _ => Some(Escape::Text(2)),
    }
}

impl LineSplitter {
    fn new(max: usize) -> Self {
        Self {
            partial: Vec::new(),
            max: max.max(1),
            escape: Vec::new(),
            terminal: None,
        }
    }

    /// Appends `bytes` to the current line, up to the limit.
    fn take(&mut self, bytes: &[u8]) {
        let room = self.max.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn end_line(&mut self, out: &mut Vec<String>) {
        if self.partial.last() == Some(&b'\r') {
            self.partial.pop();
        }
        out.push(String::from_utf8_lossy(&self.partial).into_owned());
        self.partial.clear();
    }

    /// From now on the output is a screen: the line so far and `rest`
    /// (from the escape sequence that draws) go to a terminal.
    fn switch(&mut self, rest: &[u8], out: &mut Vec<String>) {
        let mut terminal = Box::new(Terminal::new(self.max));
        terminal.feed(&std::mem::take(&mut self.partial), out);
        terminal.feed(rest, out);
        self.terminal = Some(terminal);
    }

    fn feed(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        if let Some(terminal) = &mut self.terminal {
            terminal.feed(bytes, out);
            return;
        }
        let mut rest = bytes;
        if !self.escape.is_empty() {
            // A sequence the last read ended in: read it on with this one.
            let have = self.escape.len();
            let mut joined = std::mem::take(&mut self.escape);
            joined.extend_from_slice(&rest[..rest.len().min(MAX_ESCAPE)]);
            match scan_escape(&joined) {
                None if rest.len() < MAX_ESCAPE => {
                    self.escape = joined;
                    return;
                }
                None => {
                    self.take(&joined);
                    rest = &rest[MAX_ESCAPE.min(rest.len())..];
                }
                Some(Escape::Draws) => {
                    joined.truncate(have);
                    joined.extend_from_slice(rest);
                    self.switch(&joined, out);
                    return;
                }
                Some(Escape::Text(len)) => {
                    self.take(&joined[..len]);
                    rest = &rest[len.saturating_sub(have)..];
                }
            }
        }
        while let Some(at) = memchr::memchr2(b'\n', 0x1b, rest) {
            self.take(&rest[..at]);
            if rest[at] == b'\n' {
                self.end_line(out);
                rest = &rest[at + 1..];
                continue;
            }
            match scan_escape(&rest[at..]) {
                Some(Escape::Text(len)) => {
                    self.take(&rest[at..at + len]);
                    rest = &rest[at + len..];
                }
                Some(Escape::Draws) => {
                    self.switch(&rest[at..], out);
                    return;
                }
                None => {
                    // The read ends inside the sequence.
                    self.escape.extend_from_slice(&rest[at..]);
                    return;
                }
            }
        }
        self.take(rest);
    }

    /// The line not yet ended by a line feed, if any (plain output only).
    fn unfinished(&self) -> Option<String> {
        (self.terminal.is_none() && !(self.partial.is_empty() && self.escape.is_empty())).then(
            || {
                let mut line = self.partial.clone();
                line.extend_from_slice(&self.escape);
                String::from_utf8_lossy(&line).into_owned()
            },
        )
    }
}

/// Tails a console log until `finish` turns `true`, then reads what is
/// left and returns.
pub fn spawn_tail(spec: TailSpec) -> tokio::task::JoinHandle<()> {
    tokio::spawn(tail(spec))
}

async fn tail(mut spec: TailSpec) {
    let mut reader = LogReader {
        path: spec.log.clone(),
        offset: spec.offset,
        released: 0,
        max_log_bytes: spec.config.max_log_bytes,
    };
    let mut splitter = LineSplitter::new(spec.config.max_line_bytes);
    let mut throttle = Throttle::new(spec.config.lines_per_second);
    let mut batch: Vec<String> = Vec::new();
    let mut dropped: u64 = 0;
    let mut last_flush = Instant::now();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut lines = Vec::new();
    loop {
        let finishing = *spec.finish.borrow();
        // Read everything there is now, chunk by chunk.
        while let Some(n) = reader.read(&mut buffer) {
            if n == 0 {
                break;
            }
            lines.clear();
            splitter.feed(&buffer[..n], &mut lines);
            for line in lines.drain(..) {
                spec.history.push(line.clone());
                if !throttle.allow() {
                    dropped = dropped.saturating_add(1);
                    continue;
                }
                if let Some(classifier) = &spec.classifier
                    && let Some(event) = classifier.classify(&spec.console_context, &line).await
                {
                    (spec.on_event)(&event);
                    let _ = spec.events.try_send(AgentMessage::ConsoleEvent {
                        server_id: spec.server_id.clone(),
                        event,
                    });
                }
                batch.push(line);
            }
            if last_flush.elapsed() >= spec.config.batch_interval {
                flush(&spec, &mut batch, &mut dropped);
                last_flush = Instant::now();
            }
            // A flooding server's log never runs dry, and past its
            // throttle nothing here awaits: without this, one flood would
            // hold a runtime thread for as long as it lasts, starving the
            // link that sends every server's batches to the Panel.
            tokio::task::yield_now().await;
        }
        if last_flush.elapsed() >= spec.config.batch_interval || finishing {
            flush(&spec, &mut batch, &mut dropped);
            last_flush = Instant::now();
        }
        if finishing {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(spec.config.poll_interval) => {}
            _ = spec.finish.changed() => {}
        }
    }
}

fn flush(spec: &TailSpec, batch: &mut Vec<String>, dropped: &mut u64) {
    if batch.is_empty() && *dropped == 0 {
        return;
    }
    let lines = std::mem::take(batch);
    let count = lines.len() as u64;
    let message = AgentMessage::ConsoleLines {
        server_id: spec.server_id.clone(),
        lines,
        dropped: *dropped,
    };
    match spec.events.try_send(message) {
        Ok(()) => *dropped = 0,
        Err(_) => *dropped = dropped.saturating_add(count),
    }
}

/// Reads a growing log file from an offset, keeping its disk use bounded.
#[derive(Debug)]
struct LogReader {
    path: PathBuf,
    offset: u64,
    /// Bytes before this offset have been released (hole punched).
    released: u64,
    max_log_bytes: u64,
}

impl LogReader {
    /// Reads the next chunk; `None` when the file cannot be read (not
    /// created yet, say), `Some(0)` at its end.
    ///
    /// Once more than `max_log_bytes` have been read past the last release,
    /// the read part is released with `fallocate(PUNCH_HOLE)`: the file
    /// keeps its size and offsets (so nothing the server writes meanwhile is
    /// lost) but no longer uses the disk. Where punching holes is not
    /// supported the file is truncated when read to its end.
    fn read(&mut self, buffer: &mut [u8]) -> Option<usize> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .ok()?;
        let len = file.metadata().ok()?.len();
        if len < self.offset {
            // Truncated (a new run): start over.
            self.offset = 0;
            self.released = 0;
        }
        if self.offset - self.released > self.max_log_bytes {
            self.release(&file, len);
        }
        if len == self.offset {
            return Some(0);
        }
        file.seek(SeekFrom::Start(self.offset)).ok()?;
        let n = file.read(buffer).ok()?;
        self.offset += n as u64;
        Some(n)
    }

    fn release(&mut self, file: &std::fs::File, len: u64) {
        use rustix::fs::FallocateFlags;
        let end = self.offset & !4095;
        let punched = rustix::fs::fallocate(
            file,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            self.released,
            end.saturating_sub(self.released),
        );
        if punched.is_ok() {
            self.released = end;
        } else if len == self.offset && file.set_len(0).is_ok() {
            self.offset = 0;
            self.released = 0;
        }
    }
}

/// The last `max_lines` console lines of a log file, read from at most its
/// last 256 KiB (for history after re-adopting a server), split as the
/// tail splits them (a drawn screen rendered into lines).
pub fn tail_lines(path: &std::path::Path, max_lines: usize) -> Vec<String> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(256 * 1024);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let mut splitter = LineSplitter::new(ConsoleConfig::default().max_line_bytes);
    let mut lines = Vec::new();
    splitter.feed(&bytes, &mut lines);
    lines.extend(splitter.unfinished());
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(max_lines);
    lines.split_off(skip)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_tail_reading_a_flood_lets_other_tasks_run_between_chunks() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("console.log");
        let flood: String = (0..400_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&log, &flood).expect("the flood is written");
        let (events, mut received) = mpsc::channel(16);
        let (_finish, finish) = watch::channel(true);
        let history = Arc::new(History::new(10));

        // On this single-threaded runtime the ticker runs only when the
        // tail yields.
        let running = Arc::new(AtomicBool::new(true));
        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = tokio::spawn({
            let (running, ticks) = (running.clone(), ticks.clone());
            async move {
                while running.load(Ordering::Relaxed) {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            }
        });
        spawn_tail(TailSpec {
            server_id: "srv_flood".into(),
            log,
            offset: 0,
            history: history.clone(),
            classifier: None,
            console_context: String::new(),
            on_event: Arc::new(|_| {}),
            events,
            finish,
            config: ConsoleConfig::default(),
        })
        .await
        .expect("the tail ends");
        let during = ticks.load(Ordering::Relaxed);
        running.store(false, Ordering::Relaxed);
        ticker.await.expect("the ticker ends");

        let chunks = flood.len() / (64 * 1024);
        assert!(
            during >= chunks as u64 / 2,
            "another task ran {during} times while {chunks} chunks of a flood were read"
        );
        assert_eq!(
            history.snapshot().last().map(String::as_str),
            Some("line 399999")
        );
        let mut accounted = 0;
        while let Some(message) = received.recv().await {
            if let AgentMessage::ConsoleLines { lines, dropped, .. } = message {
                accounted += lines.len() as u64 + dropped;
            }
        }
        assert_eq!(
            accounted, 400_000,
            "every line forwarded or counted as dropped"
        );
    }

    #[test]
    fn history_keeps_only_the_last_lines() {
        let history = History::new(3);
        for i in 0..10 {
            history.push(i.to_string());
        }
        assert_eq!(history.snapshot(), ["7", "8", "9"]);
    }

    #[test]
    fn the_throttle_passes_a_burst_then_refills_at_its_rate() {
        let mut throttle = Throttle::new(10);
        let start = throttle.last;
        let passed = (0..100).filter(|_| throttle.allow_at(start)).count();
        assert_eq!(passed, 10);
        assert!(!throttle.allow_at(start + Duration::from_millis(50)));
        assert!(throttle.allow_at(start + Duration::from_millis(150)));
        let later = start + Duration::from_secs(10);
        let passed = (0..100).filter(|_| throttle.allow_at(later)).count();
        assert_eq!(passed, 10, "the bucket never holds more than one second");
    }

    #[test]
    fn overlong_lines_are_cut_and_crlf_is_trimmed() {
        let mut splitter = LineSplitter::new(4);
        let mut out = Vec::new();
        splitter.feed(b"abcdefgh\r\nxy", &mut out);
        splitter.feed(b"z\n", &mut out);
        assert_eq!(out, ["abcd", "xyz"]);
    }

    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let mut splitter = LineSplitter::new(4096);
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.feed(chunk, &mut out);
        }
        out
    }

    #[test]
    fn plain_lines_keep_colours_carriage_returns_and_erasures_byte_for_byte() {
        let out = split(&[
            b"\x1b[32mgreen\x1b[0m and \x1b[1;3",
            b"1mred\x1b[m\r\n10%\r\x1b[K",
            b"100%\n\x1b]0;title\x07text\x1b\n\x1b[2K\x1b[Gdone\n",
        ]);
        assert_eq!(
            out,
            [
                "\x1b[32mgreen\x1b[0m and \x1b[1;31mred\x1b[m",
                "10%\r\x1b[K100%",
                "\x1b]0;title\x07text\x1b",
                "\x1b[2K\x1b[Gdone",
            ]
        );
    }

    #[test]
    fn plain_lines_split_the_same_whatever_the_reads() {
        let text: &[u8] =
            b"\x1b[32mgreen\x1b[0m\r\n\x1b\x1b[1mx\x1b\n\x1b[\n10%\r\x1b[K\x1b[1;2;3;4;5;6;7;8;9;10;11;12;13;14;15m!\nend";
        let whole = split(&[text]);
        assert_eq!(whole.len(), 4, "{whole:?}");
        for size in 1..8 {
            let chunks: Vec<&[u8]> = text.chunks(size).collect();
            assert_eq!(split(&chunks), whole, "reads of {size} bytes");
        }
    }

    #[test]
    fn a_console_line_drawn_with_cursor_moves_is_one_line() {
        let out = split(&[
            b"plain \x1b[1mbold\x1b[m\n",
            b"\x1b[?10",
            b"49h\x1b[H\x1b[2J\x1b[5;1Hdrawn\x1b[3;1H\x1b[1mabove\x1b[m\x1b[48;1H> ",
        ]);
        assert_eq!(out, ["plain \x1b[1mbold\x1b[m", "above", "drawn"]);
    }

    #[test]
    fn a_sequence_that_only_looks_like_drawing_inside_a_line_does_not_switch() {
        // `ESC [` cut by a line feed, then an SGR: still lines.
        let out = split(&[b"a\x1b[\nb\x1b[31mc\n"]);
        assert_eq!(out, ["a\x1b[", "b\x1b[31mc"]);
    }

    /// A real Minetest 5.6.1 `--server --terminal` console on a 160x48 TTY:
    /// start, its clock ticking in the status bar, `/status` typed, a chat
    /// message typed, `/shutdown` typed.
    const MINETEST: &[u8] = include_bytes!("testdata/minetest-5.6.1-terminal-160x48.bin");

    fn count(lines: &[String], needle: &str) -> usize {
        lines.iter().filter(|l| l.contains(needle)).count()
    }

    #[test]
    fn a_recorded_minetest_terminal_console_becomes_its_log_lines_once_each() {
        let out = split(&[MINETEST]);
        assert_eq!(
            count(&out, " Server for gameid=\"minetest_game\" listening on"),
            1,
            "{out:#?}"
        );
        assert_eq!(count(&out, "Issued command: /status"), 1, "{out:#?}");
        assert_eq!(
            count(&out, "# Server: version: 5.6.1 | game: Minetest Game"),
            1,
            "{out:#?}"
        );
        assert_eq!(count(&out, "CHAT: <admin> hello everyone"), 1, "{out:#?}");
        assert_eq!(count(&out, "Issued command: /shutdown"), 1, "{out:#?}");
        assert!(
            count(&out, "Time of day") <= 1,
            "the status bar is not repeated: {out:#?}"
        );
        // The prompt (`]`) and what was typed into it are not lines; the
        // answers are.
        assert!(
            out.iter().all(|l| !l.contains('\x1b')
                && l != "]"
                && !l.contains("]/status")
                && !l.contains("]hello")
                && !l.contains("]/shutdown")),
            "no escape sequences and no prompt: {out:#?}"
        );
        assert!(
            out.first().is_some_and(
                |l| l.ends_with("[Main]: Using game specified by --gameid on the command line")
            ),
            "the lines before the screen are lines: {out:#?}"
        );
    }

    #[test]
    fn a_recorded_console_splits_the_same_whatever_the_reads() {
        let whole = split(&[MINETEST]);
        for size in [1, 7, 64, 1000] {
            let chunks: Vec<&[u8]> = MINETEST.chunks(size).collect();
            assert_eq!(split(&chunks), whole, "reads of {size} bytes");
        }
    }

    #[test]
    fn the_tail_of_a_drawn_log_is_its_rendered_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, MINETEST).unwrap();
        let lines = tail_lines(&path, 1000);
        assert_eq!(lines, split(&[MINETEST]));
    }

    #[test]
    fn the_tail_of_a_log_is_its_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nb\nc\nd\n").unwrap();
        assert_eq!(tail_lines(&path, 2), ["c", "d"]);
    }
}
