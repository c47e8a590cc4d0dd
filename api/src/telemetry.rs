//! Logs and traces (SPEC §14): `tracing` to stderr, as JSON or text, and,
//! when an OTLP endpoint is configured, the same spans exported over
//! OTLP/HTTP (protobuf) by the OpenTelemetry SDK.
//!
//! The exporter follows the standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) turns it on, and
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_SCHEDULE_DELAY`,
//! `OTEL_SERVICE_NAME` (`stratum` by default) and the rest work as
//! everywhere else.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the exporter alive; dropping it flushes the spans not sent yet.
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: flushing traces: {e}");
        }
    }
}

/// Whether the environment names an OTLP endpoint.
fn otlp_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

fn tracer_provider() -> Result<opentelemetry_sdk::trace::SdkTracerProvider, String> {
    // The exporter's HTTP client takes the process's rustls provider; ring
    // is the one compiled in (it fails only if one is installed already).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| e.to_string())?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "stratum".into());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Installs the global subscriber: `STRATUM_LOG` filters (`info` by
/// default), `STRATUM_LOG_FORMAT` picks `json` or `text` (`auto`: JSON in a
/// Kubernetes pod or when stderr is not a terminal), and spans go to OTLP
/// when configured.
pub fn init() -> Telemetry {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_env("STRATUM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("STRATUM_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => {
            std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
                || !std::io::stderr().is_terminal()
        }
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let (provider, failure) = if otlp_configured() {
        match tracer_provider() {
            Ok(provider) => (Some(provider), None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    let otel = provider.as_ref().map(|p| {
        use opentelemetry::trace::TracerProvider;
        tracing_opentelemetry::layer().with_tracer(p.tracer("stratum"))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .init();
    if let Some(e) = failure {
        tracing::warn!(error = %e, "cannot export traces over OTLP; logging only");
    } else if provider.is_some() {
        tracing::info!("exporting traces over OTLP");
    }
    Telemetry { provider }
}
