//! Which payload fields hold personal data about a student or a user: names, emails, and the file names teachers
//! upload (which carry students' names). This is the one place they are declared; the console masks them on the
//! server for viewers (record view, tail, samples), and a test in `hule-tooling` walks every payload's schema so
//! that a new field named like personal data cannot be added without being declared here or explicitly cleared.

/// The field names (at any depth of a payload) whose values are personal data.
pub const SENSITIVE_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "display_name",
    "email",
    "email_hash",
    "student_email",
    "student_name",
    "student_first_name",
    "student_last_name",
    "file_name",
    "filename",
    "original_file_name",
    // Free text about a student or their essay: the reasons a student was matched to a name, a judge's
    // justification of an essay comparison, the essay words around a spelling error, and an open map of what was
    // extracted from an upload.
    "match_reasons",
    "justification",
    "context",
    "extraction_metadata",
];

/// Field names that look personal but are not (checked by the same test).
pub const NOT_PERSONAL: &[&str] = &[
    "phase_name",
    "service_name",
    "event_name",
    "category_name",
    "context_offset",
];

/// What a masked value is replaced with.
pub const MASK: &str = "•••";

/// `text` (an error message, say) with what may be personal in it masked: the contents of every quoted part
/// (`'…'`, `"…"`) and every word with an `@` in it (an email). Ids and numbers stay, so failures still group.
pub fn mask_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quote: Option<char> = None;
    for word in text.split_inclusive(char::is_whitespace) {
        if quote.is_none() && word.contains('@') && !word.contains(['\'', '"']) {
            out.push_str(MASK);
            out.extend(word.chars().filter(|c| c.is_whitespace()));
            continue;
        }
        for c in word.chars() {
            match quote {
                Some(q) if c == q => {
                    out.push_str(MASK);
                    out.push(c);
                    quote = None;
                }
                Some(_) => {}
                None if c == '\'' || c == '"' => {
                    out.push(c);
                    quote = Some(c);
                }
                None => out.push(c),
            }
        }
    }
    if quote.is_some() {
        out.push_str(MASK);
    }
    out
}

/// True when `field` holds personal data.
pub fn is_sensitive(field: &str) -> bool {
    SENSITIVE_FIELDS.contains(&field)
}

/// Replaces the value of every sensitive field of `value` (at any depth, arrays included) with [`MASK`]; a null
/// stays null (absence is not personal). Returns how many values were masked.
pub fn mask(value: &mut serde_json::Value) -> usize {
    match value {
        serde_json::Value::Object(map) => map
            .iter_mut()
            .map(|(k, v)| {
                if is_sensitive(k) && !v.is_null() {
                    *v = serde_json::Value::String(MASK.into());
                    1
                } else {
                    mask(v)
                }
            })
            .sum(),
        serde_json::Value::Array(items) => items.iter_mut().map(mask).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_parts_and_emails_of_a_text_are_masked() {
        assert_eq!(
            mask_text("no student named 'Ada Lovelace' for ada@school.example in batch 42"),
            "no student named '•••' for ••• in batch 42"
        );
        assert_eq!(
            mask_text("value \"x y\" and 'open"),
            "value \"•••\" and '•••"
        );
        assert_eq!(mask_text("plain error 17"), "plain error 17");
    }

    #[test]
    fn masks_at_any_depth_and_keeps_the_rest() {
        let mut v = serde_json::json!({
            "event_id": "e", "data": {"first_name": "Ada", "students": [{"email": "a@x", "student_id": "s1"}],
            "filename": null, "phase_name": "spellcheck"}
        });
        assert_eq!(mask(&mut v), 2);
        assert_eq!(v["data"]["first_name"], MASK);
        assert_eq!(v["data"]["students"][0]["email"], MASK);
        assert_eq!(v["data"]["students"][0]["student_id"], "s1");
        assert!(v["data"]["filename"].is_null());
        assert_eq!(v["data"]["phase_name"], "spellcheck");
    }
}
