//! The connection-string parsers and the one redactor: `hule-pg`'s TLS split (URL and libpq keyword forms) and
//! `hule_secrets::redact_url` never panic, and a password placed in any form a client accepts never comes back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = hule_pg::split_tls(text);
    let _ = hule_secrets::redact_url(text);
    let _ = hule_secrets::keywords(text);
    let _ = hule_secrets::percent_decode(text);
    const SECRET: &str = "fuzzS3cretValue";
    // The URL parser drops tabs and newlines, so the rest of the input could spell the secret by itself.
    let squeezed: String = text.chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect();
    if squeezed.contains(SECRET) {
        return;
    }
    // Whatever comes before a keyword-form password (quotes and backslashes included: an unclosed quote or an
    // escaped space runs into it) never shows it.
    for keyword_form in [format!("{text} password={SECRET}"), format!("{text}password={SECRET}")] {
        let shown = hule_secrets::redact_url(&keyword_form);
        assert!(!shown.contains(SECRET), "{keyword_form} → {shown}");
    }
    if text.contains('\'') || text.contains('\\') {
        return;
    }
    for url in [
        format!("postgres://relay:{SECRET}@{text}"),
        format!("postgres://db/app?password={SECRET}&{text}"),
        format!("host=db password={SECRET} {text}"),
        format!("redis://:{SECRET}@{text}"),
    ] {
        let shown = hule_secrets::redact_url(&url);
        assert!(!shown.contains(SECRET), "{url} → {shown}");
        if let Err(e) = hule_pg::split_tls(&url) {
            assert!(!e.to_string().contains(SECRET), "{url} → {e}");
        }
    }
});
