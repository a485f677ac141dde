//! Every input kept in `fuzz/corpus/<target>/` — seeds written by hand from other tools' bug
//! reports, and whatever cargo-fuzz found worth keeping — replayed through its target as an
//! ordinary test: a promise broken once stays fixed.

use std::path::Path;

use flowtrail_fuzz_targets::TARGETS;

#[test]
fn every_kept_input_replays_without_breaking_a_promise() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut broken = Vec::new();
    for (name, target) in TARGETS {
        let dir = root.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "no corpus for {name}");
        for path in inputs {
            let bytes = std::fs::read(&path).unwrap();
            if std::panic::catch_unwind(|| target(&bytes)).is_err() {
                broken.push(path.display().to_string());
            }
        }
    }
    assert!(broken.is_empty(), "promises broken by: {broken:#?}");
}
