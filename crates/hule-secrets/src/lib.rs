/*!
The one redactor of hule-events. Every error, log line and `Debug` output that may hold a connection string or a
client property goes through here, so that "never print a secret" has a single implementation to test:

- [`redact_url`] takes any connection string a client of this project accepts — a URL of any scheme
  (`postgres://`, `postgresql://`, `redis://`, `rediss://`, `https://`, and misspellings of them), or libpq's
  keyword form (`host=db password='s e' user=u`) — and masks the password in the user info, every query parameter
  whose name marks it secret (`password`, `sslpassword`, `token`, …) and every secret keyword. A URL that the
  parser refuses is masked by its text form instead: everything between `://` and the last `@` is hidden.
- [`is_secret_name`] says whether a property or parameter name holds a secret (`sasl.password`,
  `ssl.key.password`, `sasl.oauthbearer.client.secret`, `sasl.jaas.config`, …); [`redact_property`] masks such a
  value and [`PropertyList`] formats a list of properties for `Debug` with every secret value masked.
- [`keywords`] parses libpq's keyword form (single quotes with backslash escapes), which `hule-pg` also uses to
  take its TLS settings out, and [`percent_decode`] decodes a URL component without ever splitting a character.

```
use hule_secrets::{redact_url, is_secret_name};
assert_eq!(redact_url("postgres://relay:pw@db/app"), "postgres://relay:***@db/app");
assert_eq!(redact_url("postgres://db/app?user=relay&password=pw"), "postgres://db/app?user=relay&password=***");
assert_eq!(redact_url("host=db password='p w' user=relay"), "host=db password=*** user=relay");
assert!(is_secret_name("sasl.password") && !is_secret_name("sasl.username"));
```

Redaction is pure and total: every input gives an output (the fuzz target `db_url` and a proptest check that no
input panics and that a password put in any of these places never comes back).
*/

use std::fmt;

/// What a masked value is replaced by.
pub const MASK: &str = "***";

/// Whether a property, query parameter or keyword named `name` holds a secret. The test is by part of the name, so
/// that misspelled and unknown properties (`sasl.pasword`, `my.api.token`) are masked as well.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "pass",
        "pasw",
        "word",
        "pwd",
        "secret",
        "jaas",
        "token",
        "key.pem",
        "private",
        "credential",
        "apikey",
        "api_key",
        "api.key",
        "auth",
    ]
    .iter()
    .any(|s| n.contains(s))
}

/// `value`, or [`MASK`] when `name` marks it secret.
pub fn redact_property<'a>(name: &str, value: &'a str) -> &'a str {
    if is_secret_name(name) {
        MASK
    } else {
        value
    }
}

/// A list of `(name, value)` properties whose `Debug` shows the names and the values that are not secret:
/// `PropertyList(&config.extra)` in a hand-written `Debug`.
pub struct PropertyList<'a>(pub &'a [(String, String)]);

impl fmt::Debug for PropertyList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, redact_property(k, v))))
            .finish()
    }
}

/// Decodes `%XX` escapes; an escape that is not two hex digits stays as written, and bytes that are not UTF-8 are
/// replaced (never a panic, whatever follows the `%`).
pub fn percent_decode(v: &str) -> String {
    percent_encoding::percent_decode_str(v)
        .decode_utf8_lossy()
        .into_owned()
}

/// One `key=value` pair of libpq's keyword form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyword {
    /// The keyword.
    pub key: String,
    /// The value, unquoted and unescaped.
    pub value: String,
    /// The pair as written.
    pub raw: String,
    /// The value opened a quote that the string never closes: the value runs to the end and may hold other pairs.
    pub unclosed: bool,
}

/// The pairs of libpq's keyword form: `key = value` separated by white space, a value optionally in single quotes
/// where `\'` and `\\` are escapes. A key without `=` gives an empty value.
pub fn keywords(s: &str) -> Vec<Keyword> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    while i < chars.len() {
        skip_space(&mut i);
        let start = i;
        let mut key = String::new();
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            key.push(chars[i]);
            i += 1;
        }
        skip_space(&mut i);
        let mut value = String::new();
        let mut unclosed = false;
        if i < chars.len() && chars[i] == '=' {
            i += 1;
            skip_space(&mut i);
            if i < chars.len() && chars[i] == '\'' {
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    value.push(chars[i]);
                    i += 1;
                }
                // The closing quote (absent when the string ends inside the quotes).
                unclosed = i >= chars.len();
                i = (i + 1).min(chars.len());
            } else {
                // Unquoted, a backslash escapes the next character (a space in a password), as in libpq.
                while i < chars.len() && !chars[i].is_whitespace() {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    value.push(chars[i]);
                    i += 1;
                }
            }
        }
        if !key.is_empty() {
            out.push(Keyword {
                key,
                value,
                raw: chars[start..i].iter().collect(),
                unclosed,
            });
        }
    }
    out
}

/// Whether `s` is a URL (has a scheme followed by `://`) rather than libpq's keyword form.
fn looks_like_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// Schemes whose user info without a password is a user name, shown as such; for any other scheme a lone user
/// info may be a token (`https://TOKEN@host`, `redis://PASSWORD@host` in older clients) and is masked.
fn user_is_a_name(scheme: &str) -> bool {
    matches!(scheme, "postgres" | "postgresql")
}

/// `s` (a URL of any scheme, or libpq's keyword form) with every secret masked: the password of the user info,
/// secret query parameters and secret keywords. See the crate's documentation.
pub fn redact_url(s: &str) -> String {
    // Whatever reading the forms below take of a malformed string, no `password=…` survives it.
    mask_stray_pairs(&redact_forms(s))
}

/// The last pass of [`redact_url`]: every `name=value` whose name looks secret, wherever it stands (inside a URL
/// that no parser reads, after a space, run into another value), has its value masked up to the next white space,
/// `&`, `;`, `,`, `'` or `"`.
fn mask_stray_pairs(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        let (head, tail) = rest.split_at(eq);
        let name_start = head
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-')))
            .map_or(0, |(i, c)| i + c.len_utf8());
        out.push_str(head);
        out.push('=');
        let value = &tail[1..];
        let end = value
            .find(|c: char| c.is_whitespace() || matches!(c, '&' | ';' | ',' | '\'' | '"'))
            .unwrap_or(value.len());
        let secret = is_secret_name(&head[name_start..]);
        if secret && !value[..end].is_empty() && &value[..end] != MASK {
            out.push_str(MASK);
            rest = &value[end..];
        } else {
            rest = value;
        }
    }
    out.push_str(rest);
    out
}

/// [`redact_url`]'s reading of the forms (URL, keyword string, both run together).
fn redact_forms(s: &str) -> String {
    // Something before the scheme (`jdbc:`, a quote, a space, a keyword string run into a URL): the URL is what
    // starts at its scheme, and what comes before may hold secrets of its own.
    if !looks_like_url(s) {
        if let Some(at) = s.find("://") {
            let start = s[..at]
                .char_indices()
                .rev()
                .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
                .map_or(0, |(i, c)| i + c.len_utf8());
            let (before, url) = if start < at {
                (&s[..start], &s[start..])
            } else {
                (&s[..at], &s[at..])
            };
            let url = if looks_like_url(url) {
                redact_forms(url)
            } else {
                // An empty scheme (`://…`): the text rule reads it as such.
                redact_by_text(url)
            };
            return format!("{}{url}", redact_keywords(before));
        }
    }
    let Some((_, rest)) = s.split_once("://").filter(|_| looks_like_url(s)) else {
        return redact_keywords(s);
    };
    // The user info by the widest reading: up to the last `@`, so a password with an unescaped `?`, `#`, `/` or `@`
    // is still all user info (libpq reads up to the first `@`, the URL parser stops at `/`, `?` and `#`). When the
    // parser's reading differs, the text rule is used; it hides more (the host too, when a query value holds `@`).
    let text_userinfo = rest.rfind('@').map_or("", |at| &rest[..at]);
    match url::Url::parse(s) {
        // A fragment may be the rest of a password (`#` is an ordinary character to libpq): the text rule then.
        Ok(u)
            if !u.cannot_be_a_base()
                && u.fragment().is_none()
                && parsed_userinfo(&u) == text_userinfo =>
        {
            redact_parsed(u)
        }
        _ => redact_by_text(s),
    }
}

/// The user info of a parsed URL as it was written (the parser keeps escapes).
fn parsed_userinfo(u: &url::Url) -> String {
    match u.password() {
        Some(p) => format!("{}:{p}", u.username()),
        None => u.username().to_owned(),
    }
}

/// Whether `value` itself reads `…name=…` with a secret name (an escaped space or a quote run into the next pair,
/// a keyword string inside a query value): it holds what a client may take for a password.
fn holds_secret_pair(value: &str) -> bool {
    value.match_indices('=').any(|(at, _)| {
        let name: String = value[..at]
            .chars()
            .rev()
            .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
            .collect();
        is_secret_name(&name.chars().rev().collect::<String>())
    })
}

fn redact_parsed(mut u: url::Url) -> String {
    if u.password().is_some() {
        // Fails only for URLs that cannot carry credentials, which then show none.
        let _ = u.set_password(Some(MASK));
    } else if !u.username().is_empty() && !user_is_a_name(u.scheme()) {
        let _ = u.set_username(MASK);
    }
    // A value that itself reads `…password=…` is masked too: a keyword string run into a URL's query
    // (`?x=a password=…`) would otherwise show it, percent-encoded.
    if u.query_pairs()
        .any(|(k, v)| is_secret_name(&k) || holds_secret_pair(&v))
    {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if holds_secret_pair(&v) {
                    MASK.to_owned()
                } else {
                    redact_property(&k, &v).to_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // The serializer percent-encodes the mask; show it plainly.
    u.to_string().replace("%2A%2A%2A", MASK)
}

/// The masking for a URL the parser refuses or reads differently from libpq: the user info's password (all of it
/// when there is no `:`, or when it holds `/`, `?` or `#`, so that the last `@` may have been in a path or query)
/// is hidden, and then the value of every secret `name=value` pair anywhere after the scheme.
fn redact_by_text(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return redact_keywords(s);
    };
    let (userinfo, rest) = match rest.rfind('@') {
        Some(at) => {
            let info = &rest[..at];
            let user = match info.split_once(':') {
                // A password may hold anything; the user name before it is shown when it cannot be a path.
                Some((user, _)) if !user.contains(['/', '?', '#']) => format!("{user}:{MASK}"),
                None if user_is_a_name(scheme) && !info.contains(['/', '?', '#']) => {
                    info.to_owned()
                }
                _ => MASK.to_owned(),
            };
            (format!("{user}@"), &rest[at + 1..])
        }
        None => (String::new(), rest),
    };
    format!("{scheme}://{userinfo}{}", mask_secret_pairs(rest))
}

/// Masks the value of every `name=value` pair whose name looks secret, wherever it stands (after `?`, `&`, `;` or
/// the start), up to the next `&`: clients split query pairs on `&` only, so `#`, `;`, `?` and spaces may be part
/// of the value.
fn mask_secret_pairs(text: &str) -> String {
    text.split('&').map(mask_pair).collect::<Vec<_>>().join("&")
}

/// One `…name=value` segment with its whole value masked when the name (after any `?` or `;` before it) looks
/// secret.
fn mask_pair(segment: &str) -> String {
    match segment.split_once('=') {
        Some((before, _)) => {
            let name = before
                .rsplit(['?', ';', '/', ' ', '\t', '\n', '\r'])
                .next()
                .unwrap_or(before);
            if is_secret_name(&percent_decode(name)) {
                format!("{before}={MASK}")
            } else {
                segment.to_owned()
            }
        }
        None => segment.to_owned(),
    }
}

/// libpq's keyword form with every secret keyword's value masked.
fn redact_keywords(s: &str) -> String {
    let identifier = |k: &str| {
        k.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    keywords(s)
        .into_iter()
        .map(|kw| {
            // A value that itself reads `…password=…` (an escaped space or a quote run into the next pair) holds
            // what libpq may take for a password, or a user meant as one.
            if is_secret_name(&kw.key) || kw.unclosed || holds_secret_pair(&kw.value) {
                // An unclosed quote swallows the pairs after it (`host='db password=…`): none of it is shown.
                format!("{}={MASK}", kw.key)
            } else if !identifier(&kw.key) {
                // Not a keyword at all (a mangled URL, a quoted value): nothing of it is shown.
                MASK.to_owned()
            } else {
                kw.raw
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A keyword string run into a URL's query value (found by the `db_url` fuzz target): the value is masked,
    /// not shown percent-encoded.
    #[test]
    fn a_password_pair_inside_a_query_value_is_masked() {
        for text in [
            "retsql://alsl%?sjaas[\0\0\0&\x0c=\0/ password=fuzzS3cretValue",
            "postgres://db/app?options=-c password=fuzzS3cretValue",
        ] {
            let shown = redact_url(text);
            assert!(!shown.contains("fuzzS3cretValue"), "{text} → {shown}");
        }
        assert_eq!(
            redact_url("postgres://db/app?application_name=relay"),
            "postgres://db/app?application_name=relay"
        );
    }

    #[test]
    fn an_unclosed_quote_hides_what_follows_it() {
        let shown = redact_url("host='db password=hunter2 user=relay");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(
            redact_url("host=db password='hunter2"),
            "host=db password=***"
        );
        let shown = redact_url("x=a\\ password=hunter2 user=relay");
        assert!(!shown.contains("hunter2"), "{shown}");
        // Found by the db_url fuzz target: a pair after a scheme no parser reads.
        let shown = redact_url("postgres:// password=hunter2");
        assert!(!shown.contains("hunter2"), "{shown}");
        // Found by the db_url fuzz target: a pair run into the value before it.
        let shown = redact_url("host dsls=brootbert=%a\u{e9}password=hunter2");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn every_form_libpq_and_the_clients_accept_is_masked() {
        let cases = [
            (
                "postgres://relay:hunter2@db/app",
                "postgres://relay:***@db/app",
            ),
            (
                "postgresql://relay:hunter2@db:5433/app?sslmode=require",
                "postgresql://relay:***@db:5433/app?sslmode=require",
            ),
            (
                "postgres://db/app?user=relay&password=hunter2",
                "postgres://db/app?user=relay&password=***",
            ),
            (
                "postgres://db/app?password=hunter2&sslpassword=hunter2",
                "postgres://db/app?password=***&sslpassword=***",
            ),
            ("postgres://relay@db/app", "postgres://relay@db/app"),
            (
                "postgress://relay:hunter2@db/app",
                "postgress://relay:***@db/app",
            ),
            (
                "postgres://relay:hun%40ter2@db/app",
                "postgres://relay:***@db/app",
            ),
            (
                "postgres://relay:hun@ter2@db/app",
                "postgres://relay:***@db/app",
            ),
            (
                "postgres://relay:hunter2@[::1]:5432/app",
                "postgres://relay:***@[::1]:5432/app",
            ),
            ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
            (
                "redis://default:hunter2@cache:6379",
                "redis://default:***@cache:6379",
            ),
            ("redis://hunter2@cache:6379", "redis://***@cache:6379"),
            (
                "rediss://u:hunter2@cache:6380/?sslrootcert=/ca.pem",
                "rediss://u:***@cache:6380/?sslrootcert=/ca.pem",
            ),
            (
                "https://u:hunter2@otel:4318/v1/traces",
                "https://u:***@otel:4318/v1/traces",
            ),
            (
                "https://otel:4318/v1/traces?token=hunter2",
                "https://otel:4318/v1/traces?token=***",
            ),
            (
                "host=db password=hunter2 user=relay",
                "host=db password=*** user=relay",
            ),
            (
                "host=db password = 'hun ter2' user=relay",
                "host=db password=*** user=relay",
            ),
            ("host=db password='it\\'s hunter2'", "host=db password=***"),
            ("host=db password='hunter2", "host=db password=***"),
        ];
        for (input, want) in cases {
            let got = redact_url(input);
            assert_eq!(got, want, "{input}");
            assert!(
                !got.contains("hunter2") && !got.contains("ter2"),
                "{input} → {got}"
            );
        }
    }

    #[test]
    fn urls_the_parser_refuses_are_masked_by_their_text() {
        for input in [
            "postgres://relay:hunter2@db:notaport/app",
            "postgres://relay:hunter2@db/app?password=hunter2&x=%zz",
            "redis://relay:hun/ter2@cache:99999",
            "postgres://relay:hunter2@",
        ] {
            let got = redact_url(input);
            assert!(
                !got.contains("hunter2") && !got.contains("ter2"),
                "{input} → {got}"
            );
        }
        assert_eq!(
            redact_url("postgres://relay:hunter2@db:notaport/app"),
            "postgres://relay:***@db:notaport/app"
        );
        // Something before the scheme, `#`, `;` or `?` inside a secret value, an escaped space.
        for input in [
            "jdbc:postgresql://db/app?user=relay&password=hunter2",
            "\"postgres://db/app?user=relay&password=hunter2\"",
            " postgres://relay:hunter2@db/app",
            "postgres://db/app?password=hun#ter2",
            "postgres://db/app?user=a@b&password=hun;ter2",
            "postgres://db/app?user=a@b&password=hun?ter2&x=1",
            "host=db password=hun\\ ter2 user=relay",
            "'host=db password=hunter2'",
            "host=db password=hunter2 dlm-o@postgres://ruquue:",
            "host=db password=hunter2 dpostdb/://\u{11}ru",
            "host=db password=hunter2 ?ost?db\u{3d3}sredis://:f%a\u{e9}",
        ] {
            let got = redact_url(input);
            assert!(
                !got.contains("hunter2") && !got.contains("ter2"),
                "{input} → {got}"
            );
        }
        // `@` in a query value, before or after the password.
        for input in [
            "postgres://db/app?user=relay@srv&password=hunter2",
            "postgres://db/app?password=hunter2&application_name=a@b",
            "redis://cache:6379/0?client=a@b&password=hunter2",
            "postgres://u@db/app?user=relay@srv&sslpassword=hunter2#x",
        ] {
            let got = redact_url(input);
            assert!(!got.contains("hunter2"), "{input} → {got}");
        }
        // `?` and `#` in an unescaped password end a URL's user info for the parser, not for libpq.
        for input in [
            "postgres://relay:hun?ter2@db/app",
            "postgres://relay:hun#ter2@db/app",
        ] {
            assert_eq!(redact_url(input), "postgres://relay:***@db/app", "{input}");
        }
    }

    #[test]
    fn property_names_that_hold_secrets() {
        for name in [
            "sasl.password",
            "sasl.pasword",
            "ssl.key.password",
            "ssl.keystore.password",
            "sasl.oauthbearer.client.secret",
            "sasl.jaas.config",
            "ssl.key.pem",
            "sasl.oauthbearer.config",
            "PASSWORD",
            "sslpassword",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "sasl.username",
            "bootstrap.servers",
            "security.protocol",
            "ssl.ca.location",
            "sslmode",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
        let props = vec![
            ("sasl.username".to_owned(), "alice".to_owned()),
            ("sasl.password".to_owned(), "hunter2".to_owned()),
        ];
        let shown = format!("{:?}", PropertyList(&props));
        assert!(
            shown.contains("alice") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn percent_decoding_never_splits_a_character() {
        assert_eq!(percent_decode("%2Ftmp%2Fca.pem"), "/tmp/ca.pem");
        assert_eq!(percent_decode("%aé"), "%aé");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }

    proptest! {
        #[test]
        fn a_password_never_comes_back(
            password in "[A-Za-z0-9!$&()*+,;=:@/?#%'\\\\ ]{8,20}",
            form in 0usize..7,
        ) {
            // A password long enough not to occur in the rest of the string by chance.
            prop_assume!(!"postgres://relay@db:5432/app?user=relay&sslmode=require host=db user=relay redis://cache:6379".contains(password.as_str()));
            let enc: String = percent_encoding::utf8_percent_encode(&password, percent_encoding::NON_ALPHANUMERIC).to_string();
            let escaped = password.replace('\\', "\\\\").replace('\'', "\\'");
            let input = match form {
                0 => format!("postgres://relay:{enc}@db:5432/app"),
                1 => format!("postgres://db:5432/app?user=relay&password={enc}&sslmode=require"),
                2 => format!("host=db password='{escaped}' user=relay"),
                3 => format!("redis://:{enc}@cache:6379"),
                4 => format!("postgres://db:5432/app?user=relay@srv&password={enc}"),
                5 => format!("postgres://db:5432/app?password={enc}&application_name=a@b"),
                _ => format!("postgres://relay:{password}@db:5432/app"),
            };
            let got = redact_url(&input);
            prop_assert!(!got.contains(&password), "{} → {}", input, got);
            if enc != password {
                prop_assert!(!got.contains(&enc), "{} → {}", input, got);
            }
        }

        #[test]
        fn any_input_gives_an_output(s in "\\PC{0,80}") {
            let _ = redact_url(&s);
            let _ = keywords(&s);
            let _ = percent_decode(&s);
        }
    }
}

/// `e` and each of its sources on one line, joined by `: ` (line breaks inside a message become `; `). Some clients
/// keep the useful part in the source: tokio-postgres shows a server error as "db error" and the server's message
/// ("relation … does not exist", with its DETAIL and HINT lines) only as its source.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        // A wrapper that already prints its source (thiserror's `{source}`) would repeat it.
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out.replace("\r\n", "; ").replace('\n', "; ")
}

#[cfg(test)]
mod error_chain_tests {
    use super::error_chain;

    #[derive(Debug)]
    struct Outer(Inner);
    #[derive(Debug)]
    struct Inner;
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("db error")
        }
    }
    impl std::fmt::Display for Inner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("ERROR: relation \"event_outbox\" does not exist\nHINT: run the migration")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    impl std::error::Error for Inner {}

    #[test]
    fn the_source_is_shown_on_the_same_line() {
        assert_eq!(
            error_chain(&Outer(Inner)),
            "db error: ERROR: relation \"event_outbox\" does not exist; HINT: run the migration"
        );
    }
}
