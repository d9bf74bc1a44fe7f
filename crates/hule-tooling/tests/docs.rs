//! The committed documents under `docs/` are what the tooling generates now.

#[test]
fn the_committed_catalogs_are_not_stale() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    for (file, format, current) in [
        ("catalog.md", "markdown", hule_tooling::catalog::markdown()),
        ("catalog.html", "html", hule_tooling::html::html()),
        (
            "asyncapi.json",
            "asyncapi",
            hule_tooling::asyncapi::document_json(),
        ),
    ] {
        let committed =
            std::fs::read_to_string(docs.join(file)).unwrap_or_else(|e| panic!("docs/{file}: {e}"));
        assert!(
            committed == current,
            "docs/{file} is stale: regenerate it with `hule catalog --format {format} --out docs/{file}`"
        );
    }
}
