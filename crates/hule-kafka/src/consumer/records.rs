//! Conversions between rdkafka's records and headers and the library's [`Delivery`] and [`Headers`].

use hule_consumer::Delivery;
use hule_contracts::Headers;
use rdkafka::message::{Header, Headers as _, OwnedHeaders};

/// Converts an rdkafka message into a [`Delivery`].
pub fn delivery_of(m: &impl rdkafka::Message) -> Delivery {
    let mut invalid_headers = Vec::new();
    let headers = match m.headers() {
        None => Headers::default(),
        Some(hs) => {
            // One string for every name and value, sized for the standard headers (13 of about 48 bytes
            // each with their names); a longer list grows it.
            let mut headers = Headers::with_capacity(hs.count(), 48 * hs.count());
            for h in hs.iter() {
                let value = h.value.unwrap_or_default();
                // One UTF-8 check per value (the lossy copy only for a value that fails it).
                match std::str::from_utf8(value) {
                    Ok(value) => headers.push(h.key, value),
                    Err(_) => {
                        invalid_headers.push(h.key.to_owned());
                        headers.push(h.key, String::from_utf8_lossy(value));
                    }
                }
            }
            headers
        }
    };
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
    let mut out = OwnedHeaders::new_with_capacity(headers.len());
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
    let mut out = OwnedHeaders::new_with_capacity(headers.len() + 1);
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

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{OwnedMessage, Timestamp};

    #[test]
    fn a_header_that_is_not_utf8_is_flagged_and_copied_lossily() {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "event_id",
                value: Some("0190".as_bytes()),
            })
            .insert(Header {
                key: "bad",
                value: Some(&b"a\xffb"[..]),
            })
            .insert(Header::<&[u8]> {
                key: "empty",
                value: None,
            })
            .insert(Header {
                key: "event_id",
                value: Some("again".as_bytes()),
            });
        let m = OwnedMessage::new(
            Some(b"{}".to_vec()),
            Some(b"k".to_vec()),
            "t".into(),
            Timestamp::NotAvailable,
            3,
            42,
            Some(headers),
        );
        let d = delivery_of(&m);
        assert_eq!(d.invalid_headers, vec!["bad".to_owned()]);
        assert_eq!(
            d.headers.iter().collect::<Vec<_>>(),
            [
                ("event_id", "0190"),
                ("bad", "a\u{fffd}b"),
                ("empty", ""),
                ("event_id", "again")
            ]
        );
        assert_eq!((d.topic.as_str(), d.partition, d.offset), ("t", 3, 42));
        assert_eq!(
            (d.key.as_deref(), d.payload.as_deref()),
            (Some(&b"k"[..]), Some(&b"{}"[..]))
        );
    }
}
