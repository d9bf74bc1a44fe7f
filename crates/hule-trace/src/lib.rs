/*!
Trace context for hule-events: one trace from the service that enqueues an event, through the relay's publish and
the Kafka `traceparent` header, to the consumer's layers and handler (and on to a dead letter and its replay).

The libraries record `tracing` spans and use this crate to carry their OpenTelemetry context across process
boundaries in the W3C `traceparent` / `tracestate` form ([`w3c`], on OpenTelemetry's API types). A library linking
this crate gets the OpenTelemetry API only; the SDK, the exporter and their HTTP client come with the `otlp` feature,
which binaries turn on. Nothing is exported unless the process installs an OpenTelemetry layer:
the `hule` binary does so with [`otlp::install`] (feature `otlp`) when `OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set. Without a layer, spans carry no OpenTelemetry context, the helpers
return `None`, and a trace context given by the producing service passes through unchanged.

Span names (all at INFO level, target `hule`): `outbox.enqueue`, `outbox.relay_batch`, `outbox.publish`,
`consumer.receive`, `consumer.validate`, `consumer.dedup`, `consumer.attempt`, `consumer.handle`,
`consumer.dead_letter`, `dlq.replay`.
*/
#![warn(missing_docs)]

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

#[cfg(feature = "otlp")]
pub mod otlp;
pub mod w3c;

/// Header and metadata name of the W3C trace parent.
pub const TRACEPARENT: &str = "traceparent";
/// Header and metadata name of the W3C trace state.
pub const TRACESTATE: &str = "tracestate";

/// A W3C trace context in its wire form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireContext {
    /// `traceparent`: `00-<trace id>-<span id>-<flags>`.
    pub traceparent: String,
    /// `tracestate`, when the trace has one.
    pub tracestate: Option<String>,
}

fn extract(traceparent: &str, tracestate: Option<&str>) -> Option<opentelemetry::Context> {
    let sc = w3c::parse(traceparent, tracestate)?;
    Some(opentelemetry::Context::new().with_remote_span_context(sc))
}

/// The span context a `traceparent` names, when it is valid W3C.
pub fn parse(
    traceparent: &str,
    tracestate: Option<&str>,
) -> Option<opentelemetry::trace::SpanContext> {
    w3c::parse(traceparent, tracestate)
}

/// The wire form of `span`'s OpenTelemetry context; `None` when the span is not traced (no OpenTelemetry layer,
/// or the span is disabled).
pub fn wire_context(span: &tracing::Span) -> Option<WireContext> {
    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    let (traceparent, tracestate) = w3c::format(cx.span().span_context())?;
    Some(WireContext {
        traceparent,
        tracestate,
    })
}

/// Makes the trace context in `traceparent` (from a header or an envelope) `span`'s parent. Returns whether it
/// did: an absent or invalid context (logged at debug) leaves the span where it is.
pub fn set_remote_parent(
    span: &tracing::Span,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) -> bool {
    let Some(tp) = traceparent else {
        return false;
    };
    if span.is_disabled() {
        return false;
    }
    let Some(cx) = extract(tp, tracestate) else {
        tracing::debug!(
            traceparent = tp,
            "not a valid W3C traceparent; the span starts a trace of its own"
        );
        return false;
    };
    span.set_parent(cx).is_ok()
}

/// Links `span` to the trace context in `traceparent` (a replayed dead letter to the trace it failed in). Returns
/// whether it did.
pub fn link(span: &tracing::Span, traceparent: &str, tracestate: Option<&str>) -> bool {
    if span.is_disabled() {
        return false;
    }
    match parse(traceparent, tracestate) {
        Some(sc) => {
            span.add_link(sc);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_w3c_and_refuses_the_rest() {
        let sc = parse(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            None,
        )
        .expect("valid");
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled() && sc.is_remote());
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert!(parse(bad, None).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn without_an_opentelemetry_layer_nothing_is_made_up() {
        let span = tracing::info_span!("x");
        assert_eq!(wire_context(&span), None);
        assert!(!set_remote_parent(
            &span,
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            None
        ));
    }
}
