//! OpenTelemetry traces over OTLP/HTTP (protobuf), off unless `[tracing.otlp] endpoint` is
//! set: the `tracing` spans the server already makes (one per request, named `request`, with
//! its method, path and request id) become OpenTelemetry spans, sampled by trace id at
//! `sample_ratio` (a sampled parent's decision is followed), batched by the SDK on a thread of
//! its own and posted to the collector. An unreachable collector costs dropped spans, never a
//! slower request: the batch queue is bounded and exports happen off the request path.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;

/// The `[tracing]` settings section: where traces go.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TracingSettings {
    /// Export over OTLP/HTTP (`[tracing.otlp]`).
    pub otlp: OtlpSettings,
}

/// `[tracing.otlp]`: the OTLP/HTTP receiver of a collector (OpenTelemetry Collector, Jaeger,
/// Tempo, …).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpSettings {
    /// The URL spans are posted to, as `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`:
    /// `http://collector:4318/v1/traces`; a URL without a path gets `/v1/traces`. Unset (the
    /// default): no traces are exported.
    pub endpoint: Option<String>,
    /// The `service.name` resource attribute of every span.
    pub service_name: String,
    /// The share of traces exported, from 0.0 to 1.0 (by trace id, so every span of a trace
    /// shares the decision).
    pub sample_ratio: f64,
    /// Seconds one export request may take.
    pub timeout: u64,
}

/// Settings are compared for equality in tests; `validate` refuses a NaN ratio, so equality
/// is reflexive on every value the server accepts.
impl Eq for OtlpSettings {}

impl Default for OtlpSettings {
    fn default() -> Self {
        Self {
            endpoint: None,
            service_name: "latchkey".into(),
            sample_ratio: 1.0,
            timeout: 10,
        }
    }
}

/// Why the OTLP settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `sample_ratio` is not a number from 0 to 1.
    #[error("tracing.otlp.sample_ratio must be from 0.0 to 1.0, not {0}")]
    Ratio(f64),
    /// `endpoint` is not an `http` or `https` URL.
    #[error("tracing.otlp.endpoint must be an http:// or https:// URL")]
    Endpoint,
    /// The exporter could not be built.
    #[error("the OTLP exporter: {0}")]
    Exporter(String),
}

impl OtlpSettings {
    /// The URL spans are posted to, when export is on.
    pub fn traces_url(&self) -> Result<Option<String>, TelemetryError> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(TelemetryError::Ratio(self.sample_ratio));
        }
        let Some(endpoint) = self.endpoint.as_deref().filter(|e| !e.trim().is_empty()) else {
            return Ok(None);
        };
        let mut url = url::Url::parse(endpoint.trim()).map_err(|_| TelemetryError::Endpoint)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TelemetryError::Endpoint);
        }
        if url.path() == "/" || url.path().is_empty() {
            url.set_path("/v1/traces");
        }
        Ok(Some(url.into()))
    }
}

/// Keeps the exporter running; dropping it sends the spans still queued (within the
/// exporter's timeout) and stops its thread.
#[derive(Debug)]
pub struct TracesGuard {
    provider: SdkTracerProvider,
}

impl Drop for TracesGuard {
    fn drop(&mut self) {
        // Nothing is left to tell at exit if the last export fails.
        let _ = self.provider.shutdown();
    }
}

/// The layer that turns the subscriber `S`'s spans into OpenTelemetry spans, and the guard
/// of its exporter; `None` when `settings` name no endpoint.
#[allow(clippy::type_complexity)]
pub fn layer<S>(
    settings: &OtlpSettings,
) -> Result<
    Option<(
        tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
        TracesGuard,
    )>,
    TelemetryError,
>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(url) = settings.traces_url()? else {
        return Ok(None);
    };
    let timeout = Duration::from_secs(settings.timeout.max(1));
    // The blocking HTTP client starts a runtime of its own; it is built on a plain thread so
    // that no caller's async context is entered.
    let exporter = std::thread::spawn(move || {
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(timeout)
            .build()
    })
    .join()
    .map_err(|_| TelemetryError::Exporter("the exporter's set-up panicked".into()))?
    .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            settings.sample_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(settings.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("latchkey");
    Ok(Some((
        tracing_opentelemetry::layer().with_tracer(tracer),
        TracesGuard { provider },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn otlp(endpoint: Option<&str>, ratio: f64) -> OtlpSettings {
        OtlpSettings {
            endpoint: endpoint.map(str::to_owned),
            sample_ratio: ratio,
            ..OtlpSettings::default()
        }
    }

    #[test]
    fn the_traces_url_gets_its_path_and_bad_settings_are_refused() {
        assert_eq!(otlp(None, 1.0).traces_url().expect("ok"), None);
        assert_eq!(
            otlp(Some("http://127.0.0.1:4318"), 1.0)
                .traces_url()
                .expect("ok")
                .as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            otlp(Some("https://c.example/otlp/v1/traces"), 0.5)
                .traces_url()
                .expect("ok")
                .as_deref(),
            Some("https://c.example/otlp/v1/traces")
        );
        assert!(matches!(
            otlp(Some("ftp://c.example"), 1.0).traces_url(),
            Err(TelemetryError::Endpoint)
        ));
        assert!(matches!(
            otlp(Some("http://c.example"), 1.5).traces_url(),
            Err(TelemetryError::Ratio(_))
        ));
        assert!(matches!(
            otlp(Some("http://c.example"), f64::NAN).traces_url(),
            Err(TelemetryError::Ratio(_))
        ));
    }
}
