//! The checked-in schemas match the code, and the examples are valid commands.
//! Regenerate with `BILLFLOW_WRITE_SCHEMAS=1 cargo test --test schemas`.

use std::path::Path;

#[test]
fn checked_in_schemas_match_the_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let write = std::env::var_os("BILLFLOW_WRITE_SCHEMAS").is_some();
    for (name, schema) in billflow::schemas::all() {
        let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let path = dir.join(name);
        if write {
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e}; run with BILLFLOW_WRITE_SCHEMAS=1", path.display())
        });
        assert_eq!(
            on_disk, generated,
            "{name} drifted from the code: run BILLFLOW_WRITE_SCHEMAS=1 cargo test --test schemas"
        );
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
    }
}

#[test]
fn examples_are_valid_commands() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let body = std::fs::read(&path).unwrap();
        billflow::command::Command::parse(&body)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        seen += 1;
    }
    assert!(seen >= 2);
}
