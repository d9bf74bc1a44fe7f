//! The W3C Trace Context wire form (`traceparent`, `tracestate`) read into and written from OpenTelemetry's API
//! types. Written here rather than taken from the SDK's `TraceContextPropagator` so that a library linking
//! hule-trace needs the OpenTelemetry API only (the SDK and exporter come with the `otlp` feature, for binaries);
//! the rules are the specification's, and the tests hold the SDK's cases.

use std::str::FromStr;

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

/// The span context a `traceparent` (and `tracestate`) name, when it is valid W3C; remote, as it came from
/// elsewhere. A `tracestate` that is not valid is dropped (the parent stays), as the specification allows.
pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    let parts: Vec<&str> = traceparent.trim().split('-').collect();
    let [version, trace_id, span_id, flags, rest @ ..] = parts.as_slice() else {
        return None;
    };
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    // Version 00 has exactly four fields; a later version may add fields after them; ff is invalid.
    if !hex(version, 2) || *version == "ff" || (*version == "00" && !rest.is_empty()) {
        return None;
    }
    if !hex(trace_id, 32) || !hex(span_id, 16) || !hex(flags, 2) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace_id).ok()?;
    let span_id = SpanId::from_hex(span_id).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    // Only the sampled bit is defined; the others are kept off, as the SDK does.
    let flags = TraceFlags::new(u8::from_str_radix(flags, 16).ok()? & TraceFlags::SAMPLED.to_u8());
    let state = tracestate
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    Some(SpanContext::new(trace_id, span_id, flags, true, state))
}

/// The `traceparent` and (when not empty) `tracestate` of a valid span context.
pub fn format(sc: &SpanContext) -> Option<(String, Option<String>)> {
    if !sc.is_valid() {
        return None;
    }
    let traceparent = format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8() & TraceFlags::SAMPLED.to_u8()
    );
    let state = sc.trace_state().header();
    Some((traceparent, (!state.is_empty()).then_some(state)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_the_specifications_examples() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sc = parse(tp, Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")).expect("valid");
        assert!(sc.is_sampled() && sc.is_remote());
        let (back, state) = format(&sc).expect("valid");
        assert_eq!(back, tp);
        assert_eq!(
            state.as_deref(),
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        );
        let unsampled = parse(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            None,
        )
        .expect("valid");
        assert!(!unsampled.is_sampled());
        // A later version may carry more fields.
        assert!(parse(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            None
        )
        .is_some());
        // A bad tracestate is dropped, the parent kept.
        let sc = parse(tp, Some("not a state")).expect("valid");
        assert!(sc.trace_state().header().is_empty());
    }

    #[test]
    fn refuses_what_the_specification_refuses() {
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bé-01",
        ] {
            assert!(parse(bad, None).is_none(), "{bad:?}");
        }
    }
}
