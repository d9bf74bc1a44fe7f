//! Conversions between rdkafka's records and headers and the library's [`Delivery`] and [`Headers`].

use hule_consumer::Delivery;
use hule_contracts::Headers;
use rdkafka::message::{Header, Headers as _, OwnedHeaders};

/// Converts an rdkafka message into a [`Delivery`].
pub fn delivery_of(m: &impl rdkafka::Message) -> Delivery {
    let mut headers = Headers::default();
    let mut invalid_headers = Vec::new();
    if let Some(hs) = m.headers() {
        for h in hs.iter() {
            let bytes = h.value.unwrap_or_default();
            if std::str::from_utf8(bytes).is_err() {
                invalid_headers.push(h.key.to_owned());
            }
            headers.0.push((
                h.key.to_owned(),
                String::from_utf8_lossy(bytes).into_owned(),
            ));
        }
    }
    Delivery {
        invalid_headers,
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        headers,
        payload: m.payload().map(<[u8]>::to_vec),
    }
}

/// Builds rdkafka headers from ours.
pub fn owned_headers(headers: &Headers) -> OwnedHeaders {
    let mut out = OwnedHeaders::new_with_capacity(headers.0.len());
    for (k, v) in headers.iter() {
        out = out.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    out
}

/// Builds rdkafka headers from ours with `trace` (when given) as the `traceparent` / `tracestate`.
pub fn owned_headers_traced(
    headers: &Headers,
    trace: Option<&hule_trace::WireContext>,
) -> OwnedHeaders {
    let Some(trace) = trace else {
        return owned_headers(headers);
    };
    let mut out = OwnedHeaders::new_with_capacity(headers.0.len() + 1);
    for (k, v) in headers
        .iter()
        .filter(|(k, _)| *k != hule_trace::TRACEPARENT && *k != hule_trace::TRACESTATE)
    {
        out = out.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    out = out.insert(Header {
        key: hule_trace::TRACEPARENT,
        value: Some(trace.traceparent.as_bytes()),
    });
    if let Some(ts) = &trace.tracestate {
        out = out.insert(Header {
            key: hule_trace::TRACESTATE,
            value: Some(ts.as_bytes()),
        });
    }
    out
}
