//! The server's two lines per token request, the `token_issued` audit line and the access
//! line, written straight into the [`Batched`](super::Batched) queue instead of through a `tracing` event.
//!
//! Through `tracing`, each of these lines visits its fields one by one through `dyn` calls,
//! formats the client address and every number through `core::fmt`, and dispatches through
//! every layer of the subscriber: about a fifth of a memory-store token request
//! (BENCHMARKS.md, issue 20). Here a line is written by typed calls ([`Members`]) into a
//! reused buffer and queued, in the shape [`JsonLines`] gives every other line (the same head,
//! members and tail functions write both), after the same decision of the same filter: each
//! line has a callsite of its own, with its target, level and field names, registered with the
//! subscriber like the `info!` it stands for, and a line the filter rejects is not written.
//!
//! A line goes this way only when the current subscriber's event format is a
//! [`JsonLines::direct`] one; otherwise [`write`] says so and the caller logs the line with
//! `tracing::info!` as before (the text format, an OTLP export, the tests' subscribers).

use super::{JsonLines, Members, is_audit, write_head, write_tail};
use std::cell::RefCell;
use std::time::SystemTime;
use tracing::Subscriber as _;
use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
use tracing_core::callsite::{Callsite as _, DefaultCallsite};
use tracing_subscriber::registry::{LookupSpan as _, Registry};

/// The callsite of a line written by [`write`]: a `static` with the line's target, level and
/// field names, like the one `tracing::info!` makes, so that the filter decides about it as it
/// would about that `info!`.
macro_rules! callsite {
    ($target:expr, $level:expr, [$($field:literal),* $(,)?]) => {{
        static META: tracing::Metadata<'static> = tracing::Metadata::new(
            concat!("event ", file!(), ":", line!()),
            $target,
            $level,
            Some(file!()),
            Some(line!()),
            Some(module_path!()),
            tracing_core::field::FieldSet::new(
                &[$($field),*],
                tracing_core::identify_callsite!(&CALLSITE),
            ),
            tracing_core::metadata::Kind::EVENT,
        );
        static CALLSITE: tracing_core::callsite::DefaultCallsite =
            tracing_core::callsite::DefaultCallsite::new(&META);
        &CALLSITE
    }};
}
pub(crate) use callsite;

/// The longest line buffer a thread keeps between lines.
const KEPT_CAPACITY: usize = 16 * 1024;

thread_local! {
    /// The buffer lines are written into before they are queued.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Writes the line of `callsite` whose fields `fields` writes, when the current subscriber
/// takes lines this way: then returns `true`, whether the filter let the line through or not.
/// Returns `false` when the caller must log the line through `tracing` instead (no such
/// subscriber, or its level is off: `tracing` then skips it as cheaply).
pub(crate) fn write(
    callsite: &'static DefaultCallsite,
    fields: impl FnOnce(&mut Members<'_, String>) -> std::fmt::Result,
) -> bool {
    let meta = callsite.metadata();
    // What `tracing::info!` checks before it makes an event, in the same order.
    if !(*meta.level() <= STATIC_MAX_LEVEL && *meta.level() <= LevelFilter::current()) {
        return false;
    }
    let interest = callsite.interest();
    if interest.is_never() {
        return false;
    }
    // `get_default` takes a closure it could call more than once; it calls it once.
    let mut fields = Some(fields);
    tracing::dispatcher::get_default(|dispatch| {
        let Some(queue) = dispatch
            .downcast_ref::<JsonLines>()
            .and_then(|format| format.direct.as_ref())
        else {
            return false;
        };
        let Some(registry) = dispatch.downcast_ref::<Registry>() else {
            return false;
        };
        if !interest.is_always() && !dispatch.enabled(meta) {
            return true;
        }
        let Some(fields) = fields.take() else {
            return true;
        };
        LINE.with(|kept| {
            // A line written while another is being written (never, today) gets a buffer
            // of its own.
            let mut fresh = String::new();
            let mut borrowed = kept.try_borrow_mut();
            let line = match borrowed {
                Ok(ref mut line) => &mut **line,
                Err(_) => &mut fresh,
            };
            line.clear();
            let current = registry.current_span();
            let span = current.id().and_then(|id| registry.span(id));
            let written = write_head(line, meta.level(), SystemTime::now())
                .and_then(|()| {
                    fields(&mut Members {
                        out: &mut *line,
                        first: true,
                    })
                })
                .and_then(|()| write_tail(line, meta.target(), span.as_ref()));
            // As for a line of the fmt layer, a line that failed to format is not written.
            if written.is_ok() {
                queue.push(line.as_bytes(), is_audit(meta.target()));
            }
            if line.capacity() > KEPT_CAPACITY {
                *line = String::new();
            }
        });
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::net::IpAddr;
    use std::sync::{Arc, Mutex};

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "192.0.2.1",
            "255.255.255.255",
            "10.0.100.9",
            "::1",
            "2001:db8::8:800:200c:417a",
            "::ffff:192.0.2.1",
        ] {
            let ip: IpAddr = ip.parse().expect("address");
            let mut fast = String::new();
            Members {
                out: &mut fast,
                first: true,
            }
            .ip("client_ip", ip)
            .expect("written");
            let mut general = String::new();
            Members {
                out: &mut general,
                first: true,
            }
            .debug("client_ip", &tracing::field::display(ip))
            .expect("written");
            assert_eq!(fast, general);
            assert_eq!(fast, format!("\"client_ip\":\"{ip}\""));
        }
    }

    /// A `Write` into a shared buffer.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("test").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("test").clone()).expect("utf-8")
        }
    }

    /// Runs `log` under a JSON subscriber with `filter`; returns the lines it wrote straight
    /// into the queue, and those it wrote through `tracing` events. With `direct` false the
    /// subscriber has no direct path.
    fn run(filter: &str, direct: bool, log: impl FnOnce()) -> (String, String) {
        let queued = Sink::default();
        let formatted = Sink::default();
        let (queue, guard) =
            super::super::Batched::new(queued.clone(), true).expect("writer thread");
        let format = if direct {
            JsonLines::direct(queue)
        } else {
            JsonLines::default()
        };
        let mut events = formatted.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .fmt_fields(super::super::JsonSpanFields)
            .event_format(format)
            .with_writer(move || events.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        drop(guard);
        events = formatted;
        let _ = events.flush();
        (queued.text(), events.text())
    }

    /// The same line without its timestamp, which differs between two runs.
    fn untimed(line: &str) -> &str {
        line.split_once("\",\"level\"")
            .map_or(line, |(_, rest)| rest)
    }

    /// A token request's two lines, the audit line inside the request's span, as the server
    /// writes them; the client id needs escaping.
    fn token_request() {
        let span = tracing::info_span!(
            "request",
            method = "POST",
            route = "/token",
            request_id = "0b6f-41"
        );
        let _entered = span.enter();
        latchkey_core::events::EventSink::emit_from(
            &crate::audit::LogEvents,
            &latchkey_core::events::Event::TokenIssued {
                client_id: "app \"one\"\n".into(),
                grant_type: latchkey_core::client::GrantType::ClientCredentials,
                subject: Some("sub-1".into()),
                with_refresh: false,
            },
            Some("203.0.113.7".parse().expect("address")),
        );
        drop(_entered);
        crate::access_log::write_line(
            "POST",
            "/token",
            200,
            1234,
            "0b6f-41",
            Some("2001:db8::1".parse().expect("address")),
        );
        crate::access_log::write_line("GET", "other", 404, 7, "", None);
    }

    #[test]
    fn direct_lines_are_the_lines_the_general_format_writes() {
        let (direct, through_events) = run("info", true, token_request);
        assert_eq!(through_events, "", "every line went the direct way");
        let (queued, general) = run("info", false, token_request);
        assert_eq!(queued, "", "no direct way without JsonLines::direct");
        let direct: Vec<&str> = direct.lines().collect();
        let general: Vec<&str> = general.lines().collect();
        assert_eq!(direct.len(), 3, "{direct:?}");
        assert_eq!(general.len(), 3, "{general:?}");
        for (direct, general) in direct.iter().zip(&general) {
            assert_eq!(untimed(direct), untimed(general));
            assert_eq!(direct.len(), general.len(), "same timestamp width");
        }
        // Field for field, in case both formats were wrong in the same way.
        let audit: serde_json::Value = serde_json::from_str(direct[0]).expect("JSON");
        assert_eq!(audit["target"], "latchkey::audit");
        assert_eq!(audit["level"], "INFO");
        assert_eq!(audit["fields"]["event"], "token_issued");
        assert_eq!(
            audit["fields"]["client_id"], "app \"one\"\u{FFFD}",
            "cut by loggable"
        );
        assert_eq!(audit["fields"]["grant_type"], "client_credentials");
        assert_eq!(audit["fields"]["subject"], "sub-1");
        assert_eq!(audit["fields"]["with_refresh"], false);
        assert_eq!(audit["fields"]["client_ip"], "203.0.113.7");
        assert_eq!(audit["span"]["name"], "request");
        assert_eq!(audit["span"]["request_id"], "0b6f-41");
        let access: serde_json::Value = serde_json::from_str(direct[1]).expect("JSON");
        assert_eq!(access["target"], crate::access_log::TARGET);
        assert_eq!(access["fields"]["status"], 200);
        assert_eq!(access["fields"]["duration_us"], 1234);
        assert_eq!(access["fields"]["client_ip"], "2001:db8::1");
        assert!(access.get("span").is_none());
        let unknown: serde_json::Value = serde_json::from_str(direct[2]).expect("JSON");
        assert!(unknown["fields"].get("client_ip").is_none());
    }

    #[test]
    fn the_filter_decides_about_direct_lines_as_about_events() {
        let (queued, formatted) = run("info,latchkey::audit=off", true, token_request);
        assert_eq!(formatted, "");
        assert!(!queued.contains("latchkey::audit"), "{queued}");
        assert_eq!(queued.lines().count(), 2, "the access lines stay");
        let (queued, formatted) = run("warn,latchkey::audit=info", true, token_request);
        assert_eq!(formatted, "");
        assert_eq!(queued.lines().count(), 1, "{queued}");
        assert!(queued.contains("\"event\":\"token_issued\""), "{queued}");
        let (queued, formatted) = run("off", true, token_request);
        assert_eq!((queued.as_str(), formatted.as_str()), ("", ""));
        // A filter that decides per span (`[request]`): the audit line inside the request
        // span is written, the access lines outside it are not.
        let (queued, formatted) = run("warn,[request]=info", true, token_request);
        assert_eq!(formatted, "");
        assert_eq!(queued.lines().count(), 1, "{queued}");
        assert!(queued.contains("token_issued"), "{queued}");
    }
}
