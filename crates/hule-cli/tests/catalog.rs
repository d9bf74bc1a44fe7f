//! `hule catalog` in every format, checked by independent tools: the AsyncAPI document against the official
//! AsyncAPI 3.0.0 JSON Schema (npm `@asyncapi/specs` with ajv, `tools/asyncapi-validate`), the HTML page in
//! headless Chromium (rendered without script errors, all 71 events shown, search working, a screenshot taken).
//! `scripts/setup.sh` installs Node's packages and Chromium; without them these tests fail and say so.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hule_contracts::EVENTS;

fn hule(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hule"))
        .args(args)
        .output()
        .expect("run hule")
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("catalog-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the AsyncAPI validator on `doc`; returns (exit code, stdout + stderr).
fn validate(doc: &Path) -> (i32, String) {
    let script = repo().join("tools/asyncapi-validate/validate.mjs");
    let modules = repo().join("tools/asyncapi-validate/node_modules");
    assert!(
        modules.is_dir(),
        "{} is missing: run scripts/setup.sh (npm ci --prefix tools/asyncapi-validate)",
        modules.display()
    );
    let out = Command::new("node")
        .arg(&script)
        .arg(doc)
        .output()
        .expect("node is needed for the AsyncAPI validator: run scripts/setup.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn asyncapi_validates_against_the_official_schema_and_broken_documents_do_not() {
    let dir = scratch("asyncapi");
    let path = dir.join("asyncapi.json");
    let out = hule(&[
        "catalog",
        "--format",
        "asyncapi",
        "--out",
        path.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, text) = validate(&path);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("valid AsyncAPI 3.0.0"), "{text}");
    assert!(
        text.contains(&format!("{} messages", EVENTS.len())),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} examples validate", EVENTS.len())),
        "{text}"
    );

    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    // A Kafka binding with a cleanup policy Kafka does not have breaks the official schema.
    let mut bad = doc.clone();
    let topic = EVENTS[0].topic;
    bad["channels"][topic]["bindings"]["kafka"]["topicConfiguration"]["cleanup.policy"] =
        serde_json::json!(["sometimes"]);
    let bad_path = dir.join("bad-binding.json");
    std::fs::write(&bad_path, bad.to_string()).expect("write");
    let (code, text) = validate(&bad_path);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("does not validate against the AsyncAPI 3.0.0 schema"),
        "{text}"
    );
    // An example whose payload breaks its own message schema is caught too.
    let mut bad = doc;
    let message = EVENTS[0].payload_type;
    bad["components"]["messages"][message]["examples"][0]["payload"]["event_id"] =
        serde_json::json!(42);
    let bad_path = dir.join("bad-example.json");
    std::fs::write(&bad_path, bad.to_string()).expect("write");
    let (code, text) = validate(&bad_path);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!(
            "message {message}: example payload does not validate"
        )),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn chromium(dir: &Path, args: &[&str], url: &str) -> Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .args(args)
        .arg(url)
        .output()
        .expect("Debian's chromium is needed to render the catalog: run scripts/setup.sh")
}

/// The `<body ...>` tag of a dumped DOM.
fn body_tag(dom: &str) -> &str {
    let start = dom.find("<body").expect("a body");
    &dom[start..start + dom[start..].find('>').expect("tag end")]
}

#[test]
fn the_html_catalog_renders_in_headless_chromium_with_every_event() {
    let dir = scratch("html");
    let page = dir.join("catalog.html");
    let out = hule(&[
        "catalog",
        "--format",
        "html",
        "--out",
        page.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = format!("file://{}", page.display());

    let out = chromium(&dir, &["--dump-dom"], &url);
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let body = body_tag(&dom);
    assert!(!body.contains("data-error"), "script error: {body}");
    assert!(!log.contains("Uncaught"), "console error: {log}");
    assert!(
        body.contains(&format!("data-ready=\"{}\"", EVENTS.len())),
        "{body}"
    );
    assert!(
        body.contains(&format!("data-shown=\"{}\"", EVENTS.len())),
        "{body}"
    );
    for def in EVENTS {
        assert!(
            dom.contains(&format!("id=\"e-{}\"", def.name)),
            "{} has no card",
            def.name
        );
        assert!(
            dom.contains("<text x=") && dom.contains(def.topic),
            "{} not drawn",
            def.topic
        );
    }

    // The search (pre-filled from the address) shows exactly the events a service touches.
    let service = "cj_assessment_service";
    let expected = EVENTS
        .iter()
        .filter(|d| d.producers.contains(&service) || d.consumers.contains(&service))
        .count();
    let out = chromium(&dir, &["--dump-dom"], &format!("{url}#q={service}"));
    let dom = String::from_utf8_lossy(&out.stdout);
    let body = body_tag(&dom);
    assert!(
        body.contains(&format!("data-shown=\"{expected}\"")),
        "expected {expected}: {body}"
    );
    assert_eq!(
        dom.matches("class=\"event hidden\"").count(),
        EVENTS.len() - expected,
        "hidden cards"
    );

    // A screenshot, for people: a PNG of the top of the page.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("catalog.png");
    let out = chromium(
        &dir,
        &[
            "--window-size=1400,1800",
            "--hide-scrollbars",
            &format!("--screenshot={}", shot.display()),
        ],
        &url,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 50_000,
        "a {} byte screenshot is too small to show the diagram",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_format_is_written_and_json_schema_writes_one_file_per_payload() {
    let out = hule(&["catalog", "--format", "markdown"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("## Dual-event pairs"));
    let dir = scratch("schemas");
    let out = hule(&[
        "catalog",
        "--format",
        "json-schema",
        "--out",
        dir.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<_> = std::fs::read_dir(&dir).expect("dir").collect();
    assert_eq!(files.len(), EVENTS.len());
    let one: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("EssaySlotAssignedV1.v1.schema.json")).expect("file"),
    )
    .expect("json");
    assert_eq!(one["x-huleedu-topic"], "huleedu.els.essay.slot.assigned.v1");
    let out = hule(&["catalog", "--format", "json-schema"]);
    let bundle: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bundle is JSON");
    assert_eq!(bundle.as_object().map(|m| m.len()), Some(EVENTS.len()));
    // A file where a directory should be is an error that names it.
    let file = dir.join("EssaySlotAssignedV1.v1.schema.json");
    let out = hule(&[
        "catalog",
        "--format",
        "json-schema",
        "--out",
        file.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("EssaySlotAssignedV1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}
