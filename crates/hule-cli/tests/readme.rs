//! The README's code excerpts are the example services' lines: every Rust block that follows an
//! `<!-- excerpt: PATH -->` marker must appear in that file, line by line and in order (CI compiles the file, so the
//! excerpt compiles). Lines may be left out of an excerpt, not changed.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// (path, lines) of each marked block.
fn excerpts(readme: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .trim()
            .strip_prefix("<!-- excerpt: ")
            .and_then(|r| r.strip_suffix(" -->"))
        else {
            continue;
        };
        assert_eq!(
            lines.next().map(str::trim),
            Some("```rust"),
            "a ```rust block must follow the marker for {path}"
        );
        let block: Vec<String> = lines
            .by_ref()
            .take_while(|l| l.trim() != "```")
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        out.push((path.to_owned(), block));
    }
    out
}

/// Whether every line of an excerpt `block` is a line of `source`, in order; the first line that is not, with why.
fn check_excerpt(path: &str, block: &[String], source: &str) -> Result<(), String> {
    let mut rest = source.lines().map(str::trim);
    for line in block {
        if !rest.any(|l| l == line) {
            return Err(format!(
                "README excerpt of {path}: `{line}` is not a line of the file (after the previous excerpt line)"
            ));
        }
    }
    Ok(())
}

#[test]
fn readme_excerpts_are_lines_of_the_compiled_examples() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let found = excerpts(&readme);
    assert!(
        found.len() >= 2,
        "the publish and consume excerpts are marked: {found:?}"
    );
    for (path, block) in found {
        let source =
            std::fs::read_to_string(root().join(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        if let Err(e) = check_excerpt(&path, &block, &source) {
            panic!("{e}");
        }
    }
}

#[test]
fn an_excerpt_line_that_is_not_in_the_file_is_caught() {
    let readme = "<!-- excerpt: x -->\n```rust\nlet a = 1;\nlet b = 2;\n```\n";
    let found = excerpts(readme);
    let lines = vec!["let a = 1;".to_owned(), "let b = 2;".to_owned()];
    assert_eq!(found, vec![("x".to_owned(), lines.clone())]);
    assert!(check_excerpt(
        "x",
        &lines,
        "fn f() {\n    let a = 1;\n    let c = 3;\n    let b = 2;\n}\n"
    )
    .is_ok());
    let missing = check_excerpt("x", &lines, "let a = 1;\nlet c = 3;\n").expect_err("b is missing");
    assert!(missing.contains("`let b = 2;`"), "{missing}");
    let changed =
        check_excerpt("x", &lines, "let a = 1;\nlet b = 22;\n").expect_err("b was changed");
    assert!(changed.contains("`let b = 2;`"), "{changed}");
    let reordered =
        check_excerpt("x", &lines, "let b = 2;\nlet a = 1;\n").expect_err("out of order");
    assert!(reordered.contains("`let b = 2;`"), "{reordered}");
}

/// The consumer-only example links the consumer runtime, not the outbox's databases nor the operator tooling
/// (the features of `hule-kafka`, `hule-consumer` and `hule-outbox` keep them out).
#[test]
fn a_consumer_only_service_links_neither_sqlite_nor_tokio_postgres() {
    assert_links_no_banned_crate(
        root(),
        &["-p", "hule-example-consumer"],
        "the consumer-only example",
    );
}

/// Runs `cargo tree` (normal dependencies) in `dir` with `extra` arguments and checks that it lists `hule-kafka`
/// and none of [`CONSUMER_ONLY_BANNED`].
fn assert_links_no_banned_crate(dir: &Path, extra: &[&str], what: &str) {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["tree", "--offline", "-e", "normal", "--prefix", "none"])
        .args(extra)
        .current_dir(dir)
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        tree.lines().any(|l| l.starts_with("hule-kafka v")),
        "{tree}"
    );
    for banned in CONSUMER_ONLY_BANNED {
        assert!(
            !tree.lines().any(|l| l.starts_with(&format!("{banned} v"))),
            "{what} links {banned}:\n{tree}"
        );
    }
}

/// What a service that only consumes must not link: SQL drivers, the outbox, the operator tooling, an HTTP server,
/// the OpenTelemetry SDK and exporter, and test kits (the test kits are modules behind `testkit`, so the check is
/// on the crates that only they would bring).
const CONSUMER_ONLY_BANNED: &[&str] = &[
    "rusqlite",
    "tokio-postgres",
    "hule-outbox",
    "hule-tooling",
    "hule-pg",
    "axum",
    "hyper",
    "opentelemetry_sdk",
    "opentelemetry-otlp",
    "reqwest",
];

/// A crate outside the workspace that takes `hule-kafka` with its default features (as `cargo add hule-kafka`
/// would) links none of the above either: the defaults are the minimal ones.
#[test]
fn an_outside_crate_taking_the_defaults_links_no_sql_http_server_or_exporter() {
    let dir = std::env::temp_dir().join(format!("hule-outside-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src")).expect("dir");
    let kafka = root()
        .join("crates/hule-kafka")
        .canonicalize()
        .expect("path");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"outside\"\nversion = \"0.0.0\"\nedition = \"2021\"\n[dependencies]\nhule-kafka = {{ path = {:?} }}\n[workspace]\n",
            kafka.display().to_string()
        ),
    )
    .expect("manifest");
    std::fs::write(dir.join("src/lib.rs"), "").expect("lib");
    // The workspace's lock file, so that resolving offline finds exactly the versions the cache holds.
    std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock")).expect("lock");
    assert_links_no_banned_crate(&dir, &[], "hule-kafka's defaults");
    std::fs::remove_dir_all(&dir).ok();
}
