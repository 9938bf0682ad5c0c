//! The server's log lines: a JSON line format and a batching writer, both cheap enough to
//! leave an audit line on every issued token.
//!
//! The stock `tracing-subscriber` JSON formatter parses the request span's fields back from
//! JSON text and serializes them again on every line, and formats the timestamp from scratch;
//! the stock non-blocking writer wakes its thread once per line (BENCHMARKS.md has what that
//! cost on the token path). [`JsonLines`] writes the same line shape (`timestamp`,
//! `level`, `fields`, `target`, `span`) by copying the span's already-formatted fields and
//! reusing the date part of the timestamp within a second; [`Batched`] gathers the lines of a
//! burst and writes them with one `write` from one wake-up of its thread, and never makes a
//! request wait for a slow or stalled output. The two lines of every token request (the
//! `token_issued` audit line and the access line) skip the `tracing` event altogether when the
//! subscriber allows it (`logging::direct`).

use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

pub(crate) mod direct;

/// One JSON object per line, in the shape of `tracing-subscriber`'s JSON format with the
/// current span only: `{"timestamp":…,"level":…,"fields":{…},"target":…,"span":{…,"name":…}}`.
/// Use it with [`JsonSpanFields`] as the field formatter, which stores each span's fields as
/// JSON text that this format copies as it is.
///
/// Made with [`JsonLines::direct`], it also carries the queue that the server's two lines per
/// token request (the `token_issued` audit line and the access line) are written to without a
/// `tracing` event (module `logging::direct`); `JsonLines::default()` formats every line from
/// its event.
#[derive(Clone, Debug, Default)]
pub struct JsonLines {
    direct: Option<Batched>,
}

impl JsonLines {
    /// The format whose hot lines go straight into `queue`, the writer of the same subscriber,
    /// in the same shape, after the same filter (see `logging::direct`). Use it only when this
    /// subscriber's output is the only consumer of events: a layer that records events (the
    /// OTLP export, which adds them to spans) would not see those lines.
    pub fn direct(queue: Batched) -> Self {
        Self {
            direct: Some(queue),
        }
    }
}

impl<S> FormatEvent<S, JsonSpanFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonSpanFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        write_head(&mut writer, meta.level(), SystemTime::now())?;
        write_members(&mut writer, event, true)?;
        write_tail(&mut writer, meta.target(), ctx.lookup_current().as_ref())
    }
}

/// Writes the start of a line up to the fields' first member:
/// `{"timestamp":"…","level":"INFO","fields":{`.
fn write_head(
    out: &mut impl std::fmt::Write,
    level: &tracing::Level,
    at: SystemTime,
) -> std::fmt::Result {
    out.write_str("{\"timestamp\":\"")?;
    write_timestamp(out, at)?;
    out.write_str("\",\"level\":\"")?;
    out.write_str(level.as_str())?;
    out.write_str("\",\"fields\":{")
}

/// Writes the end of a line after the fields' last member: the target, the span `span` (the
/// current one) with its recorded fields and name, and the newline.
fn write_tail<'a, R: LookupSpan<'a>>(
    out: &mut impl std::fmt::Write,
    target: &str,
    span: Option<&tracing_subscriber::registry::SpanRef<'a, R>>,
) -> std::fmt::Result {
    out.write_str("},\"target\":")?;
    write_json_str(out, target)?;
    if let Some(span) = span {
        out.write_str(",\"span\":{")?;
        let extensions = span.extensions();
        let recorded = extensions
            .get::<FormattedFields<JsonSpanFields>>()
            .map(|f| f.fields.as_str())
            .and_then(|f| f.strip_prefix('{')?.strip_suffix('}'))
            .unwrap_or("");
        if !recorded.is_empty() {
            out.write_str(recorded)?;
            out.write_char(',')?;
        }
        out.write_str("\"name\":")?;
        write_json_str(out, span.name())?;
        out.write_char('}')?;
    }
    out.write_str("}\n")
}

/// Formats a span's fields once, when the span is made, as a JSON object (`{"method":"POST",…}`)
/// that [`JsonLines`] copies into every line logged inside the span. `tracing-subscriber`'s
/// `JsonFields` builds a map of JSON values for this and serializes it; writing the text
/// directly costs a third of that on every request.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonSpanFields;

impl<'w> FormatFields<'w> for JsonSpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        writer.write_char('{')?;
        write_members(&mut writer, fields, true)?;
        writer.write_char('}')
    }

    fn add_fields(
        &self,
        current: &mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> std::fmt::Result {
        // Reopen the object: `{…}` loses its closing brace, gains the new members.
        let empty = current.fields.len() <= 2;
        if current.fields.ends_with('}') {
            current.fields.pop();
        } else {
            current.fields.clear();
            current.fields.push('{');
        }
        let mut writer = current.as_writer();
        write_members(&mut writer, fields, empty)?;
        writer.write_char('}')
    }
}

/// Writes `fields` as JSON object members after what `writer` already holds; `first` when no
/// member precedes them.
fn write_members(
    writer: &mut Writer<'_>,
    fields: impl RecordFields,
    first: bool,
) -> std::fmt::Result {
    let mut visitor = JsonVisitor {
        members: Members { out: writer, first },
        result: Ok(()),
    };
    fields.record(&mut visitor);
    visitor.result
}

/// Writes JSON object members, `"name":value`, separated by commas: the one place that says
/// how each kind of field value looks in a line, for the fields of events and spans
/// ([`JsonVisitor`]) and for the lines written without an event ([`direct`]).
pub(crate) struct Members<'a, W: ?Sized> {
    out: &'a mut W,
    /// No member has been written yet.
    first: bool,
}

impl<W: std::fmt::Write + ?Sized> Members<'_, W> {
    fn key(&mut self, name: &str) -> std::fmt::Result {
        if std::mem::take(&mut self.first) {
            self.out.write_char('"')?;
        } else {
            self.out.write_str(",\"")?;
        }
        Escaped(&mut *self.out).write_str(name)?;
        self.out.write_str("\":")
    }

    /// A string: `"name":"value"`, escaped.
    pub(crate) fn str(&mut self, name: &str, value: &str) -> std::fmt::Result {
        self.key(name)?;
        write_json_str(self.out, value)
    }

    /// A `Display` or `Debug` value (`%value`, `?value`): its text as a JSON string.
    pub(crate) fn debug(&mut self, name: &str, value: &dyn std::fmt::Debug) -> std::fmt::Result {
        self.key(name)?;
        self.out.write_char('"')?;
        write!(Escaped(self.out), "{value:?}")?;
        self.out.write_char('"')
    }

    /// An address, as `%ip` would be written: `"name":"192.0.2.1"`.
    pub(crate) fn ip(&mut self, name: &str, ip: std::net::IpAddr) -> std::fmt::Result {
        match ip {
            std::net::IpAddr::V4(v4) => {
                // Four decimal octets and dots need no escaping.
                self.key(name)?;
                self.out.write_char('"')?;
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.out.write_char('.')?;
                    }
                    self.out.write_str(itoa::Buffer::new().format(octet))?;
                }
                self.out.write_char('"')
            }
            std::net::IpAddr::V6(_) => self.debug(name, &tracing::field::display(ip)),
        }
    }

    /// An unsigned integer.
    pub(crate) fn u64(&mut self, name: &str, value: u64) -> std::fmt::Result {
        self.key(name)?;
        self.out.write_str(itoa::Buffer::new().format(value))
    }

    /// A signed integer.
    fn i64(&mut self, name: &str, value: i64) -> std::fmt::Result {
        self.key(name)?;
        self.out.write_str(itoa::Buffer::new().format(value))
    }

    /// `true` or `false`.
    pub(crate) fn bool(&mut self, name: &str, value: bool) -> std::fmt::Result {
        self.key(name)?;
        self.out.write_str(if value { "true" } else { "false" })
    }

    /// A float; JSON has no NaN or infinity, so those become strings.
    fn f64(&mut self, name: &str, value: f64) -> std::fmt::Result {
        self.key(name)?;
        if value.is_finite() {
            write!(self.out, "{value}")
        } else {
            write!(self.out, "\"{value}\"")
        }
    }
}

/// Writes an event's or a span's fields as JSON members, `message` included.
struct JsonVisitor<'a, 'w> {
    members: Members<'a, Writer<'w>>,
    result: std::fmt::Result,
}

impl JsonVisitor<'_, '_> {
    fn member(&mut self, write: impl FnOnce(&mut Members<'_, Writer<'_>>) -> std::fmt::Result) {
        if self.result.is_ok() {
            self.result = write(&mut self.members);
        }
    }
}

impl Visit for JsonVisitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(|m| m.str(field.name(), value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(|m| m.bool(field.name(), value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(|m| m.u64(field.name(), value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(|m| m.i64(field.name(), value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.member(|m| m.f64(field.name(), value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.member(|m| m.debug(field.name(), value));
    }
}

/// Writes `value` as a JSON string.
fn write_json_str(out: &mut (impl std::fmt::Write + ?Sized), value: &str) -> std::fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(value)?;
    out.write_char('"')
}

/// A writer that escapes what passes through it for the inside of a JSON string.
struct Escaped<'a, W: std::fmt::Write + ?Sized>(&'a mut W);

impl<W: std::fmt::Write + ?Sized> std::fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let bytes = s.as_bytes();
        let mut start = 0;
        loop {
            let end = start + plain_prefix(bytes.get(start..).unwrap_or_default());
            // `end` is at a byte that needs escaping, all ASCII, or at the end: a boundary.
            let run = s.get(start..end).ok_or(std::fmt::Error)?;
            if !run.is_empty() {
                self.0.write_str(run)?;
            }
            let Some(&b) = bytes.get(end) else {
                return Ok(());
            };
            match b {
                b'"' => self.0.write_str("\\\"")?,
                b'\\' => self.0.write_str("\\\\")?,
                b'\n' => self.0.write_str("\\n")?,
                b'\r' => self.0.write_str("\\r")?,
                b'\t' => self.0.write_str("\\t")?,
                _ => write!(self.0, "\\u{b:04x}")?,
            }
            start = end + 1;
        }
    }
}

/// Whether `b` must be escaped inside a JSON string: a quote, a backslash or a control.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// How many bytes at the start of `bytes` need no escaping, checked eight at a time.
fn plain_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `x` that is zero (exact for the lowest such byte; a
    // borrow may mark bytes above it, which the lowest set bit ignores).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // Bytes below 0x20 (bytes from 0x80 up keep their high bit in `x` and are not
        // marked), quotes and backslashes.
        let found = (x.wrapping_sub(ONES * 0x20) & !x & HIGH)
            | zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    let rest = bytes.get(at..).unwrap_or_default();
    at + rest
        .iter()
        .position(|&b| needs_escape(b))
        .unwrap_or(rest.len())
}

/// Writes `at` as RFC 3339 UTC with microseconds, `2026-12-03T13:55:01.123456Z`. The date and
/// time of day are formatted once per second per thread.
fn write_timestamp(out: &mut (impl std::fmt::Write + ?Sized), at: SystemTime) -> std::fmt::Result {
    thread_local! {
        static SECOND: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
    }
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (cached, second) = SECOND.get();
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    if cached == secs {
        text[..19].copy_from_slice(&second);
    } else {
        let second = civil(secs);
        SECOND.set((secs, second));
        text[..19].copy_from_slice(&second);
    }
    put_digits(&mut text[20..26], u64::from(since.subsec_micros()));
    // `civil` and `put_digits` write ASCII digits and separators only.
    out.write_str(std::str::from_utf8(&text).map_err(|_| std::fmt::Error)?)
}

/// Writes `value` into `text` as decimal digits, zero-padded to its length.
fn put_digits(text: &mut [u8], mut value: u64) {
    for digit in text.iter_mut().rev() {
        // A digit: `value % 10` is below 10.
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time in seconds (Howard Hinnant's `civil_from_days`).
fn civil(secs: u64) -> [u8; 19] {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let mut text = *b"0000-00-00T00:00:00";
    put_digits(&mut text[0..4], year);
    put_digits(&mut text[5..7], month);
    put_digits(&mut text[8..10], day);
    put_digits(&mut text[11..13], rem / 3600);
    put_digits(&mut text[14..16], rem / 60 % 60);
    put_digits(&mut text[17..19], rem % 60);
    text
}

/// How long the writer thread lets lines gather after a wake-up before it writes them.
const LINGER: Duration = Duration::from_millis(2);

/// Bytes the queue may hold for ordinary lines; a line that finds it full is dropped (and
/// counted), so a stalled stderr never holds up a request.
const QUEUE_BYTES: usize = 1 << 20;

/// Further bytes only audit lines (target `latchkey::audit`) may use, so that a flood of
/// ordinary lines cannot crowd them out.
const AUDIT_RESERVE: usize = 1 << 20;

/// How long an audit line waits for room when even the reserve is full, before it too is
/// dropped and counted. Bounded: a stalled stderr may slow a request, never stop it.
const AUDIT_WAIT: Duration = Duration::from_millis(250);

/// The target of audit lines (see `audit.rs`).
const AUDIT_TARGET: &str = "latchkey::audit";

/// Whether a line of `target` is an audit line, which has room of its own in the queue.
fn is_audit(target: &str) -> bool {
    target == AUDIT_TARGET
}

/// A log writer for the fmt subscriber that appends each line to a queue and lets one
/// background thread write the queue out: one wake-up and one `write` per burst of lines
/// (at most one per `LINGER`, 2 ms), never one per line. Logging never waits for the
/// output: when the queue is full, ordinary lines are dropped; audit lines have room of their
/// own and then wait at most `AUDIT_WAIT` (250 ms). Dropped lines are counted in
/// `latchkey_log_lines_dropped_total{kind}` and reported by a `log lines dropped` line once
/// the output moves again. Dropping the [`BatchedGuard`] writes what is left.
#[derive(Clone, Debug)]
pub struct Batched {
    shared: Arc<Shared>,
}

/// Stops the writer thread of a [`Batched`] writer once the queue is written out; hold it
/// until the process is about to exit.
#[derive(Debug)]
pub struct BatchedGuard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when the first line lands in an empty queue, or on close.
    filled: Condvar,
    /// Signalled when the writer takes the queue.
    drained: Condvar,
    /// Write the drop notice as a JSON line (else as text).
    json: bool,
}

#[derive(Debug, Default)]
struct Queue {
    lines: Vec<u8>,
    /// The writer thread is asleep waiting for lines.
    idle: bool,
    /// Audit lines waiting for room in a full queue.
    blocked: usize,
    /// Ordinary lines dropped since the last notice.
    dropped: u64,
    /// Audit lines dropped since the last notice.
    dropped_audit: u64,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue is a byte buffer; a panic elsewhere cannot leave it inconsistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Batched {
    /// Starts the writer thread, which writes to `out`; `json` says in which format it
    /// reports dropped lines, to match the other lines.
    pub fn new(
        out: impl Write + Send + 'static,
        json: bool,
    ) -> std::io::Result<(Self, BatchedGuard)> {
        let shared = Arc::new(Shared {
            json,
            ..Shared::default()
        });
        let thread = std::thread::Builder::new()
            .name("latchkey-log".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || write_out(&shared, out)
            })?;
        Ok((
            Self {
                shared: Arc::clone(&shared),
            },
            BatchedGuard {
                shared,
                thread: Some(thread),
            },
        ))
    }

    fn push(&self, line: &[u8], audit: bool) {
        let mut queue = self.shared.lock();
        if audit {
            let mut waited_until = None;
            while queue.lines.len() >= QUEUE_BYTES + AUDIT_RESERVE && !queue.closed {
                let until = *waited_until.get_or_insert_with(|| Instant::now() + AUDIT_WAIT);
                let Some(left) = until
                    .checked_duration_since(Instant::now())
                    .filter(|d| !d.is_zero())
                else {
                    queue.dropped_audit += 1;
                    return;
                };
                queue.blocked += 1;
                queue = self
                    .shared
                    .drained
                    .wait_timeout(queue, left)
                    .map_or_else(|e| e.into_inner().0, |(q, _)| q);
                queue.blocked -= 1;
            }
        } else if queue.lines.len() >= QUEUE_BYTES && !queue.closed {
            queue.dropped += 1;
            return;
        }
        if queue.closed {
            // After shutdown nothing writes the queue out any more: write directly.
            drop(queue);
            let _ = std::io::stderr().write_all(line);
            return;
        }
        queue.lines.extend_from_slice(line);
        if std::mem::take(&mut queue.idle) {
            self.shared.filled.notify_one();
        }
    }
}

/// The writer thread: sleeps until lines arrive, lets a burst gather, writes it at once,
/// then reports lines dropped meanwhile.
fn write_out(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::new();
    loop {
        let mut queue = shared.lock();
        while queue.lines.is_empty() && queue.dropped + queue.dropped_audit == 0 && !queue.closed {
            queue.idle = true;
            queue = shared.filled.wait(queue).unwrap_or_else(|e| e.into_inner());
        }
        let closing = queue.closed;
        drop(queue);
        if !closing {
            std::thread::sleep(LINGER);
        }
        let mut queue = shared.lock();
        std::mem::swap(&mut queue.lines, &mut batch);
        let dropped = std::mem::take(&mut queue.dropped);
        let dropped_audit = std::mem::take(&mut queue.dropped_audit);
        let done = queue.closed && batch.is_empty() && dropped + dropped_audit == 0;
        let blocked = queue.blocked > 0;
        drop(queue);
        if blocked {
            shared.drained.notify_all();
        }
        if done {
            let _ = out.flush();
            return;
        }
        if dropped + dropped_audit > 0 {
            metrics::counter!("latchkey_log_lines_dropped_total", "kind" => "ordinary")
                .increment(dropped);
            metrics::counter!("latchkey_log_lines_dropped_total", "kind" => "audit")
                .increment(dropped_audit);
            drop_notice(&mut batch, shared.json, dropped, dropped_audit);
        }
        // A log line that cannot be written has nowhere else to go.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        // Keep a burst's buffer, but not a huge one forever.
        batch.shrink_to(64 * 1024);
    }
}

/// Appends the line that reports dropped lines, in the format of the others.
fn drop_notice(out: &mut Vec<u8>, json: bool, dropped: u64, dropped_audit: u64) {
    let mut line = String::new();
    let message = "log lines dropped: the log output could not keep up";
    let _ = if json {
        line.push_str("{\"timestamp\":\"");
        write_timestamp(&mut line, SystemTime::now()).and_then(|()| {
            writeln!(
                line,
                "\",\"level\":\"WARN\",\"fields\":{{\"message\":\"{message}\",\"dropped\":{dropped},\"dropped_audit\":{dropped_audit}}},\"target\":\"latchkey::logging\"}}"
            )
        })
    } else {
        write_timestamp(&mut line, SystemTime::now()).and_then(|()| {
            writeln!(
                line,
                "  WARN latchkey::logging: {message} dropped={dropped} dropped_audit={dropped_audit}"
            )
        })
    };
    out.extend_from_slice(line.as_bytes());
}

impl Drop for BatchedGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.filled.notify_one();
        self.shared.drained.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the fmt subscriber writes one formatted event through.
#[derive(Debug)]
pub struct BatchedLine<'a> {
    writer: &'a Batched,
    audit: bool,
}

impl Write for BatchedLine<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer.push(buf, self.audit);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = BatchedLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        BatchedLine {
            writer: self,
            audit: false,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        BatchedLine {
            writer: self,
            audit: is_audit(meta.target()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt;

    #[test]
    fn civil_time_matches_known_dates() {
        assert_eq!(&civil(0), b"1970-01-01T00:00:00");
        assert_eq!(&civil(951_782_400), b"2000-02-29T00:00:00");
        assert_eq!(&civil(1_796_304_901), b"2026-12-03T13:35:01");
        assert_eq!(&civil(4_107_542_399), b"2100-02-28T23:59:59");
    }

    #[test]
    fn timestamps_carry_microseconds() {
        let mut out = String::new();
        let at = UNIX_EPOCH + Duration::from_micros(1_796_304_901_000_042);
        write_timestamp(&mut out, at).expect("test");
        assert_eq!(out, "2026-12-03T13:35:01.000042Z");
        // The cached second is not reused for another second.
        out.clear();
        write_timestamp(&mut out, at + Duration::from_secs(61)).expect("test");
        assert_eq!(out, "2026-12-03T13:36:02.000042Z");
    }

    #[test]
    fn escaping_keeps_json_valid() {
        let mut out = String::new();
        write_json_str(&mut out, "a\"b\\c\nd\u{1}é").expect("test");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
        let back: String = serde_json::from_str(&out).expect("test");
        assert_eq!(back, "a\"b\\c\nd\u{1}é");
    }

    /// Escapes byte by byte, as JSON strings are escaped here.
    fn escaped_slowly(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out
    }

    #[test]
    fn escaping_eight_bytes_at_a_time_finds_every_byte_to_escape() {
        let specials = [
            '"', '\\', '\n', '\r', '\t', '\u{0}', '\u{1f}', '\u{7f}', 'é', '€', ' ', '!', '#', '[',
        ];
        // Every special character at every position of strings up to 20 characters, alone
        // and after another special one.
        for len in 0..20 {
            for at in 0..len {
                for &c in &specials {
                    for &d in &specials {
                        let letters = "abcdefghijklmnopqrstuvwxyz";
                        let s = format!("{}{c}{}{d}", &letters[..at], &letters[at..len]);
                        let mut out = String::new();
                        Escaped(&mut out).write_str(&s).expect("test");
                        assert_eq!(out, escaped_slowly(&s), "{s:?}");
                    }
                }
            }
        }
        for b in 0u8..0x80 {
            let s = format!("0123456789{}abcdef", b as char);
            let mut out = String::new();
            Escaped(&mut out).write_str(&s).expect("test");
            assert_eq!(out, escaped_slowly(&s), "{b:#x}");
        }
    }

    /// A `Write` into a shared buffer, to read what the writer thread wrote.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("test").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_have_the_json_shape_with_the_current_span() {
        let sink = Sink::default();
        let (writer, guard) = Batched::new(sink.clone(), true).expect("test");
        let subscriber = fmt()
            .fmt_fields(JsonSpanFields)
            .event_format(JsonLines::default())
            .with_writer(writer)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "latchkey::audit", event = "outside", n = 3u64);
            let span = tracing::info_span!(
                "request",
                method = "POST",
                request_id = "r-1",
                status = tracing::field::Empty
            );
            let _entered = span.enter();
            span.record("status", 200u64);
            tracing::warn!(ok = true, quote = "say \"hi\"", "a message");
        });
        drop(guard);
        let text = String::from_utf8(sink.0.lock().expect("test").clone()).expect("test");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["target"], "latchkey::audit");
        assert_eq!(lines[0]["fields"]["event"], "outside");
        assert_eq!(lines[0]["fields"]["n"], 3);
        assert!(lines[0].get("span").is_none());
        assert!(
            lines[0]["timestamp"]
                .as_str()
                .is_some_and(|t| t.len() == 27 && t.ends_with('Z'))
        );
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["fields"]["message"], "a message");
        assert_eq!(lines[1]["fields"]["ok"], true);
        assert_eq!(lines[1]["fields"]["quote"], "say \"hi\"");
        assert_eq!(lines[1]["span"]["name"], "request");
        assert_eq!(lines[1]["span"]["method"], "POST");
        assert_eq!(lines[1]["span"]["request_id"], "r-1");
        assert_eq!(lines[1]["span"]["status"], 200);
    }

    /// The dropped counts of the notices in `text`, and the other lines.
    fn split_notices(text: &str) -> ((u64, u64), Vec<&str>) {
        let mut dropped = (0, 0);
        let mut lines = Vec::new();
        for line in text.lines() {
            if line.contains("log lines dropped") {
                let notice: serde_json::Value = serde_json::from_str(line).expect("JSON notice");
                dropped.0 += notice["fields"]["dropped"].as_u64().expect("count");
                dropped.1 += notice["fields"]["dropped_audit"].as_u64().expect("count");
            } else {
                lines.push(line);
            }
        }
        (dropped, lines)
    }

    #[test]
    fn lines_arrive_in_order_and_every_dropped_one_is_counted() {
        let sink = Sink::default();
        let (writer, guard) = Batched::new(sink.clone(), true).expect("test");
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        let line = format!("{t} {i:08} {}\n", "x".repeat(40));
                        writer
                            .make_writer()
                            .write_all(line.as_bytes())
                            .expect("test");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("test");
        }
        drop(guard);
        let text = String::from_utf8(sink.0.lock().expect("test").clone()).expect("test");
        let ((dropped, dropped_audit), lines) = split_notices(&text);
        let mut last = [None::<u32>; 4];
        for line in &lines {
            let mut parts = line.split(' ');
            let t: usize = parts.next().expect("test").parse().expect("test");
            let i: u32 = parts.next().expect("test").parse().expect("test");
            assert!(last[t].is_none_or(|l| l < i), "thread {t} out of order");
            last[t] = Some(i);
        }
        assert_eq!(lines.len() as u64 + dropped, 80_000);
        assert_eq!(dropped_audit, 0);
    }

    /// An output that takes nothing until released, like a stderr pipe nobody reads.
    struct Stalled {
        release: std::sync::mpsc::Receiver<()>,
        sink: Sink,
    }

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.release.recv();
            self.sink.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn issue_14_a_stalled_output_never_blocks_logging_and_drops_are_reported() {
        let sink = Sink::default();
        let (release, released) = std::sync::mpsc::channel();
        let stalled = Stalled {
            release: released,
            sink: sink.clone(),
        };
        let (writer, guard) = Batched::new(stalled, true).expect("test");
        let subscriber = fmt()
            .fmt_fields(JsonSpanFields)
            .event_format(JsonLines::default())
            .with_writer(writer)
            .finish();
        let (done, finished) = std::sync::mpsc::channel();
        // The logging thread: 3 MiB of ordinary lines, then 200 audit lines, into an output
        // that takes nothing. Before the fix the first full megabyte stopped it for good.
        let logging = std::thread::spawn(move || {
            tracing::subscriber::with_default(subscriber, || {
                let filler = "x".repeat(1000);
                for i in 0..3000u64 {
                    tracing::info!(i, filler, "ordinary");
                }
                for i in 0..200u64 {
                    tracing::info!(target: "latchkey::audit", event = "token_issued", i);
                }
            });
            let _ = done.send(());
        });
        let returned = finished.recv_timeout(Duration::from_secs(60));
        // Let the output move again, whatever happened, so the test cannot hang.
        std::thread::spawn(move || while release.send(()).is_ok() {});
        assert!(returned.is_ok(), "logging blocked on a stalled output");
        logging.join().expect("test");
        drop(guard);
        let text = String::from_utf8(sink.0.lock().expect("test").clone()).expect("test");
        let ((dropped, dropped_audit), lines) = split_notices(&text);
        assert!(dropped > 1000, "ordinary lines dropped: {dropped}");
        assert_eq!(dropped_audit, 0, "audit lines have room of their own");
        let audit = lines
            .iter()
            .filter(|l| l.contains("\"target\":\"latchkey::audit\""))
            .count();
        assert_eq!(audit, 200);
        assert_eq!(lines.len() as u64 + dropped, 3200);
    }
}
