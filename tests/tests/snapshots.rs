//! Every environment's rendered infrastructure, pinned in `snapshots/` at the repository root.
//!
//! A change here is a change to the infrastructure: review it with `just review`
//! (`cargo insta review`), never accept it blindly. CI runs these with `--check`.

use std::collections::BTreeSet;
use std::path::Path;

/// The environments of a program: every `<env>.toml` in its config directory.
fn environments(config_dir: &Path) -> Vec<String> {
    let mut envs: Vec<String> = std::fs::read_dir(config_dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", config_dir.display()))
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".toml")).map(str::to_string))
        .collect();
    envs.sort();
    envs
}

const SNAPSHOTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots");

/// Snapshots every environment of `program`; returns the snapshot names it used.
fn snapshot_every_environment<C: serde::de::DeserializeOwned>(
    program: &cairn::cli::Program<C>,
    config_dir: &Path,
) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let envs = environments(config_dir);
    assert!(!envs.is_empty(), "no environments in {}", config_dir.display());
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(SNAPSHOTS);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        for env in envs {
            let desired = program.desired(&env, None).unwrap_or_else(|e| panic!("{env}: {e:#}"));
            let document = cairn::render::document(&desired);
            // Rendering twice gives the same bytes.
            assert_eq!(document, cairn::render::document(&program.desired(&env, None).unwrap()));
            let name = format!("{}.stack.json", desired.stack);
            insta::assert_snapshot!(name.clone(), document);
            names.insert(name);
            for (file, text) in &desired.files {
                let name = format!("{}.files.{}", desired.stack, file.replace('/', "__"));
                insta::assert_snapshot!(name.clone(), text);
                names.insert(name);
            }
        }
    });
    names
}

/// Every program's environments, then no snapshot file that none of them produced: a
/// removed environment or file must take its snapshot with it.
#[test]
fn every_environment_is_snapshotted_and_nothing_else() {
    let mut names = BTreeSet::new();
    names.extend(snapshot_every_environment(
        &hello::program(),
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello/config")),
    ));
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(SNAPSHOTS).expect("snapshots/ exists").flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        match file.strip_suffix(".snap") {
            Some(name) if names.contains(name) => {}
            _ => stale.push(file),
        }
    }
    assert!(stale.is_empty(), "snapshots/ holds files no environment renders (remove them): {stale:?}");
}
