//! The event contract checked in under `docs/` (for consumers who read the
//! repository, not a running process) is exactly what the types generate.
//!
//! After changing an event, write the files again with
//! `TESSERA_WRITE_CONTRACT=1 cargo test -p tessera-events --test contract_files`
//! (or `tessera admin schemas --out docs`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tessera_events::contract;

/// The topic `TESSERA_KAFKA_TOPIC` defaults to.
const DEFAULT_TOPIC: &str = "tessera.events";

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn json_files_under(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            json_files_under(&path, base, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            let rel = path.strip_prefix(base).unwrap();
            out.insert(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

#[test]
fn the_checked_in_contract_is_what_the_types_generate() {
    let docs = docs();
    let files = contract::files(DEFAULT_TOPIC);
    if std::env::var_os("TESSERA_WRITE_CONTRACT").is_some() {
        let _ = std::fs::remove_dir_all(docs.join("schemas"));
        for (path, text) in &files {
            let path = docs.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
    }
    let mut stale = Vec::new();
    for (path, text) in &files {
        let on_disk = std::fs::read_to_string(docs.join(path)).unwrap_or_default();
        if &on_disk != text {
            stale.push(path.clone());
        }
    }
    assert!(
        stale.is_empty(),
        "docs/ differs from the generated contract in {stale:?}; write it again with \
         TESSERA_WRITE_CONTRACT=1 cargo test -p tessera-events --test contract_files"
    );
    // and keeps no schema of an event type that is gone
    let mut kept = BTreeSet::new();
    json_files_under(&docs.join("schemas"), &docs, &mut kept);
    let generated: BTreeSet<String> = files
        .iter()
        .map(|(p, _)| p.clone())
        .filter(|p| p.starts_with("schemas/"))
        .collect();
    let extra: Vec<_> = kept.difference(&generated).collect();
    assert!(
        extra.is_empty(),
        "docs/schemas keeps {extra:?}, which nothing generates"
    );
}

#[test]
fn the_asyncapi_document_names_the_topic_and_every_event() {
    let doc = contract::asyncapi("orders.test");
    assert_eq!(doc["asyncapi"], "2.6.0");
    let message = &doc["channels"]["orders.test"]["subscribe"]["message"]["oneOf"];
    let count = message.as_array().expect("a message per event type").len();
    assert_eq!(count, tessera_events::event_types().count());
    // every reference resolves inside the document
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/").skip(1) {
        let pointer = format!("/{}", &piece[..piece.find('"').unwrap()]);
        assert!(
            doc.pointer(&pointer).is_some(),
            "{pointer} does not resolve"
        );
    }
}
