//! The `latchkey` binary: parses the command line, sets up logging, and hands over to the
//! library.

use clap::Parser;
use latchkey_server::cli::{self, Cli, Command};
use latchkey_server::logging::{Batched, BatchedGuard, JsonLines, JsonSpanFields};
use latchkey_server::settings::{LogFormat, Settings};
use std::io::IsTerminal;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

/// mimalloc rather than glibc's allocator: under the token load glibc trims and regrows its
/// heap, paying page faults on every token, and keeps the Argon2 blocks freed after a burst of
/// logins; mimalloc does neither (BENCHMARKS.md, "Allocator", has the figures).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let settings = match cli.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "latchkey: invalid settings: {}",
                latchkey_server::settings::redact_urls_in(&e.to_string())
            );
            return std::process::ExitCode::from(2);
        }
    };
    // Held until main returns: dropping it flushes the log lines and the spans still queued.
    let _log = match init_logging(&settings, matches!(cli.command, Command::Serve { .. })) {
        Ok(guards) => guards,
        Err(e) => {
            eprintln!("latchkey: invalid settings: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let ignored = Settings::ignored_env();
    if !ignored.is_empty() {
        tracing::warn!(
            variables = %ignored.join(", "),
            "ignoring LATCHKEY_* environment variables that name no setting"
        );
    }
    if cli.command.opens_store() {
        match cli::first_contact::check_store(&settings, cli.create) {
            Ok(check) => {
                let location = cli::first_contact::Location::of(&settings);
                if let cli::first_contact::StoreCheck::Creating(message) = &check {
                    eprintln!("latchkey: {message}");
                }
                tracing::info!(store = %location, "store");
            }
            Err(e) => {
                eprintln!("latchkey: {e:#}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let result = match cli.command {
        Command::Serve { .. } => serve(settings).await,
        Command::Migrate => cli::migrate(&settings).await,
        Command::Client(cmd) => cli::client(cmd, &settings).await,
        Command::User(cmd) => cli::user(cmd, &settings).await,
        Command::Token(cmd) => cli::token(cmd, &settings).await,
        Command::Consent(cmd) => cli::consent(cmd, &settings).await,
        Command::Keys(cmd) => cli::keys(cmd, &settings).await,
        Command::Registration(cmd) => cli::registration(cmd, &settings).await,
        Command::Resource(cmd) => cli::resource(cmd, &settings).await,
        Command::Config(cli::ConfigCommand::Show) => cli::config_show(&settings),
        Command::Health { url, timeout } => cli::health(url, timeout, &settings).await,
        Command::Backup { dir } => cli::backup(&dir, &settings),
        Command::Restore { dir, check } => cli::restore(&dir, check, &settings).await,
        Command::Export { file } => cli::transfer::export_to(file.as_deref(), &settings).await,
        Command::Import {
            file,
            dry_run,
            json,
        } => cli::transfer::import_from(&file, dry_run, json, &settings).await,
        Command::Completions { shell } => {
            cli::first_contact::completions(shell);
            Ok(())
        }
        Command::Man { out_dir } => cli::first_contact::man(out_dir.as_deref()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Start-up errors quote the URLs they could not use: never with a password.
            eprintln!(
                "latchkey: {}",
                latchkey_server::settings::redact_urls_in(&format!("{e:#}"))
            );
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    // Handlers go in before the listener is announced, so a signal that arrives right after
    // start-up still drains and exits cleanly instead of killing the process.
    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
    latchkey_server::run(listener, settings, shutdown).await
}

/// Installs the SIGINT and SIGTERM handlers now; the returned future resolves on either.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!("shutdown requested; draining requests");
    })
}

/// Installs the Ctrl-C handler; the returned future resolves on it.
#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested; draining requests");
    })
}

/// The filter directive that keeps audit events in the CLI's log, on top of its default
/// `warn` (or `RUST_LOG`).
const AUDIT_DIRECTIVE: &str = "latchkey::audit=info";

/// What must live until the process exits: the log writer thread and the span exporter.
/// The exporter goes first, so that its own last words still reach the log.
struct Guards {
    _traces: Option<latchkey_server::telemetry::TracesGuard>,
    _log: Option<BatchedGuard>,
}

/// Installs the subscriber. While serving, lines go through [`Batched`]: formatted on the
/// request path (JSON by [`JsonLines`]), written by a background thread once per burst, so no
/// request waits on stderr and no line costs a thread wake-up. When stderr cannot keep up,
/// ordinary lines are dropped and counted, audit lines first use room of their own (see
/// [`Batched`]). The other commands write straight to stderr. When `[tracing.otlp]` names
/// an endpoint, the server's spans are also exported there
/// ([`latchkey_server::telemetry`]); the filter applies to them as to the lines.
fn init_logging(
    settings: &Settings,
    serving: bool,
) -> Result<Guards, latchkey_server::telemetry::TelemetryError> {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let default = if serving {
        settings.log.filter.as_str()
    } else {
        "warn"
    };
    let mut filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // The CLI's admin changes are audited like the API's: whatever else is filtered out, its
    // `latchkey::audit` lines are written.
    if !serving && let Ok(audit) = AUDIT_DIRECTIVE.parse() {
        filter = filter.add_directive(audit);
    }
    // Only the server exports spans; the tool commands make none worth a trace.
    let otlp = if serving {
        &settings.tracing.otlp
    } else {
        &Default::default()
    };
    // Checked before anything is installed, so a bad setting is reported plainly.
    let exporting = otlp.traces_url()?.is_some();
    let json = match settings.log.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let batched = if serving {
        match Batched::new(std::io::stderr(), json) {
            Ok(pair) => Some(pair),
            Err(e) => {
                eprintln!("latchkey: no log writer thread ({e}); logging directly");
                None
            }
        }
    } else {
        None
    };
    // The hot lines skip `tracing`'s event path when nothing but this output needs their
    // events: the span exporter records events on spans.
    let mut format = JsonLines::default();
    let (writer, guard) = match batched {
        Some((writer, guard)) => {
            if !exporting {
                format = JsonLines::direct(writer.clone());
            }
            (BoxMakeWriter::new(writer), Some(guard))
        }
        None => (BoxMakeWriter::new(std::io::stderr), None),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let traces = if json {
        let subscriber = builder
            .fmt_fields(JsonSpanFields)
            .event_format(format)
            .finish();
        let (layer, traces) = latchkey_server::telemetry::layer(otlp)?.unzip();
        subscriber.with(layer).init();
        traces
    } else {
        let subscriber = builder.with_ansi(std::io::stderr().is_terminal()).finish();
        let (layer, traces) = latchkey_server::telemetry::layer(otlp)?.unzip();
        subscriber.with(layer).init();
        traces
    };
    Ok(Guards {
        _traces: traces,
        _log: guard,
    })
}
