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
        let mut rest = source.lines().map(str::trim);
        for line in &block {
            assert!(
                rest.any(|l| l == line),
                "README excerpt of {path}: `{line}` is not a line of the file (after the previous excerpt line)"
            );
        }
    }
}

#[test]
fn an_excerpt_line_that_is_not_in_the_file_is_caught() {
    let readme = "<!-- excerpt: x -->\n```rust\nlet a = 1;\n```\n";
    let found = excerpts(readme);
    assert_eq!(found, vec![("x".to_owned(), vec!["let a = 1;".to_owned()])]);
    let mut rest = "let b = 2;".lines();
    assert!(!rest.any(|l| l == "let a = 1;"));
}

/// The consumer-only example links the consumer runtime, not the outbox's databases nor the operator tooling
/// (the features of `hule-kafka`, `hule-consumer` and `hule-outbox` keep them out).
#[test]
fn a_consumer_only_service_links_neither_sqlite_nor_tokio_postgres() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "hule-example-consumer",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(root())
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
    for banned in [
        "rusqlite",
        "tokio-postgres",
        "hule-outbox",
        "hule-tooling",
        "hule-pg",
    ] {
        assert!(
            !tree.lines().any(|l| l.starts_with(&format!("{banned} v"))),
            "the consumer-only example links {banned}:\n{tree}"
        );
    }
}
