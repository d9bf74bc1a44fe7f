//! The failure fingerprint: what makes two dead letters "the same failure", so that tools group them, count them and
//! act on a whole group at once (as ServicePulse groups failed messages by exception and stack trace).
//!
//! A fingerprint is the event type, the consuming service, the reason class (`error_type`) and the error message
//! with what varies from record to record normalised away: ids and numbers become `<n>` and `<id>`, digit runs
//! inside words (`batch-17`, `essays.0.text`) become `<n>`, and whitespace is collapsed. Field names, quoted values
//! and the wording stay, so "missing field `correlation_id`" and "not JSON" are different groups. The fingerprint is
//! the first 12 hex digits of a SHA-256 over those four parts: stable across processes, releases and machines, so
//! the CLI, the console and the replay ledger agree on it.

use sha2::{Digest, Sha256};

use crate::dlq::DeadLetterRecord;

/// A group of failures: its id and what it is made of.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Fingerprint {
    /// 12 hex digits.
    pub id: String,
    /// The event type of the failed record (`-` when it did not decode that far).
    pub event_type: String,
    /// The service that dead-lettered it.
    pub service: String,
    /// The reason class (`error_type`).
    pub reason: String,
    /// The error message, normalised.
    pub message: String,
}

impl Fingerprint {
    /// The fingerprint of these parts.
    pub fn of(event_type: &str, service: &str, reason: &str, error: &str) -> Fingerprint {
        let message = normalise(error);
        let mut h = Sha256::new();
        for part in ["v1", event_type, service, reason, &message] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let id = h.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Fingerprint {
            id,
            event_type: event_type.to_owned(),
            service: service.to_owned(),
            reason: reason.to_owned(),
            message,
        }
    }

    /// The fingerprint of a dead letter.
    pub fn of_record(record: &DeadLetterRecord) -> Fingerprint {
        let event_type = record.original_event.field_str("event_type");
        Fingerprint::of(
            event_type.as_deref().unwrap_or("-"),
            &record.failed_by_service,
            &record.error_type,
            &record.error_message,
        )
    }
}

/// `error` with ids and numbers replaced and whitespace collapsed (see the module's documentation).
pub fn normalise(error: &str) -> String {
    let mut out = String::with_capacity(error.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if !token.is_empty() {
            out.push_str(&normalise_token(token));
            token.clear();
        }
    };
    let mut space = false;
    for c in error.chars() {
        if c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '+') {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            if c.is_whitespace() {
                space = true;
            } else {
                if space && !out.is_empty() {
                    out.push(' ');
                }
                space = false;
                out.push(c);
            }
        }
    }
    flush(&mut token, &mut out);
    out
}

/// One token: an id or number whole, or a word with its digit runs replaced.
fn normalise_token(token: &str) -> String {
    if !token.chars().any(|c| c.is_ascii_digit()) {
        return token.to_owned();
    }
    // Hex digits, separators and the letters of a timestamp only: a number, a UUID, a hash, a time.
    let numeric = token
        .chars()
        .all(|c| c.is_ascii_hexdigit() || matches!(c, '-' | '_' | '.' | ':' | '+' | 'T' | 'Z'));
    if numeric {
        let digits = token.chars().filter(|c| c.is_ascii_alphanumeric()).count();
        // A trailing separator (`3.` ending a sentence, `offset:`) stays as written.
        let tail: String = token
            .chars()
            .rev()
            .take_while(|c| matches!(c, '.' | ':'))
            .collect();
        return format!("{}{tail}", if digits >= 8 { "<id>" } else { "<n>" });
    }
    let mut out = String::new();
    let mut in_digits = false;
    for c in token.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push_str("<n>");
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_numbers_and_indexes_are_normalised_and_words_kept() {
        assert_eq!(
            normalise("essay 00000000-0000-0000-0000-000000000123 failed after 3 attempts"),
            "essay <id> failed after <n> attempts"
        );
        assert_eq!(
            normalise("batch-17 timed out after 5000 ms at 2026-12-06T07:03:28.908Z"),
            "batch-<n> timed out after <n> ms at <id>"
        );
        assert_eq!(
            normalise("data.essays.0.text: field required"),
            "data.essays.<n>.text: field required"
        );
        assert_eq!(
            normalise("  not   JSON:\tline 1 column 2 "),
            "not JSON: line <n> column <n>"
        );
        assert_eq!(
            normalise("missing field `correlation_id`"),
            "missing field `correlation_id`"
        );
    }

    #[test]
    fn the_same_failure_of_other_records_has_one_fingerprint_and_other_failures_another() {
        let a = Fingerprint::of(
            "ESSAY_X",
            "svc",
            "permanent_error",
            "essay 11111111-1111-1111-1111-111111111111 at offset 7 refused",
        );
        let b = Fingerprint::of(
            "ESSAY_X",
            "svc",
            "permanent_error",
            "essay 22222222-2222-2222-2222-222222222222 at offset 912 refused",
        );
        assert_eq!(a, Fingerprint { ..b.clone() });
        assert_eq!(a.id.len(), 12);
        for other in [
            Fingerprint::of(
                "ESSAY_Y",
                "svc",
                "permanent_error",
                "essay 1 at offset 7 refused",
            ),
            Fingerprint::of(
                "ESSAY_X",
                "other",
                "permanent_error",
                "essay 1 at offset 7 refused",
            ),
            Fingerprint::of(
                "ESSAY_X",
                "svc",
                "retries_exhausted",
                "essay 1 at offset 7 refused",
            ),
            Fingerprint::of(
                "ESSAY_X",
                "svc",
                "permanent_error",
                "essay 1 at offset 7 timed out",
            ),
        ] {
            assert_ne!(a.id, other.id, "{other:?}");
        }
        // Pinned: the id is part of the ledger and the console's URLs, and must not change between releases.
        assert_eq!(Fingerprint::of("E", "s", "r", "m").id, "774150731cb9");
    }

    proptest! {
        #[test]
        fn normalising_is_total_and_idempotent(s in "\\PC{0,80}") {
            let once = normalise(&s);
            prop_assert_eq!(normalise(&once), once.clone());
            // Every number, id and digit run is replaced: no ASCII digit is left to split one failure in two.
            prop_assert!(!once.chars().any(|c| c.is_ascii_digit()), "{}", once);
        }
    }
}
