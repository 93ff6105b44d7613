//! The layers point one way (docs/architecture.md): every `crate::X` path in a module of the
//! library names a module below it in this table, or the module itself. The wire layer is a
//! crate of its own (`crates/sip`), so the compiler already keeps it from looking up.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and the modules it may use, bottom layer first.
const LAYERS: &[(&str, &[&str])] = &[
    ("logging", &[]),
    ("balance", &[]),
    ("net", &[]),
    ("proxy", &["sip", "balance"]),
    ("shard", &["sip", "balance", "logging", "net", "proxy"]),
    ("config", &["sip", "balance", "net"]),
    ("control", &["sip", "balance", "proxy", "shard", "config"]),
    (
        "tools",
        &[
            "sip", "balance", "logging", "net", "proxy", "shard", "config", "control",
        ],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules `text` names as `crate::NAME`, with the 1-based line of each.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `crate::{a, b}` is not used in this code base; a name is always given.
            let preceded_by_ident = rest[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if !name.is_empty() && !preceded_by_ident {
                found.push((i + 1, name));
            }
            rest = after;
        }
    }
    found
}

/// The top-level module a file of `src/` belongs to (`None` for lib.rs and main.rs).
fn top_module(file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src()).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" => None,
        dir_or_file => Some(dir_or_file.trim_end_matches(".rs").to_string()),
    }
}

fn allowed(module: &str) -> Option<&'static [&'static str]> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, deps)| *deps)
}

#[test]
fn every_module_has_a_place_in_the_layers() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(f)).collect();
    for module in &modules {
        assert!(
            allowed(module).is_some(),
            "src/{module} is not in the layering table of tests/it/layering.rs: give it a place"
        );
    }
    assert!(modules.len() >= LAYERS.len() - 1, "{modules:?}");
}

#[test]
fn no_module_uses_one_above_it() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut checked = 0;
    for file in &files {
        let Some(module) = top_module(file) else {
            continue;
        };
        let deps = allowed(&module).unwrap_or(&[]);
        let text = std::fs::read_to_string(file).expect("readable source file");
        for (line, used) in crate_paths(&text) {
            checked += 1;
            if used != module && !deps.contains(&used.as_str()) {
                violations.push(format!(
                    "{}:{line}: {module} uses crate::{used} (it may use {deps:?})",
                    file.display()
                ));
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} crate:: paths found: is the scan broken?"
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_scan_sees_paths_in_code_and_docs() {
    let text = "use crate::net::Batch;\n/// see [`crate::control::State`]\nlet x = my_crate::y;\n";
    assert_eq!(
        crate_paths(text),
        [(1, "net".to_string()), (2, "control".to_string())]
    );
}
