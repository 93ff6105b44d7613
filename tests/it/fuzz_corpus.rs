//! Replays the committed fuzz corpus (`fuzz/corpus/{parse,rewrite}`) and the regression
//! inputs (`fuzz/regressions/{parse,rewrite}`) through the same checks as the fuzz
//! targets, so `cargo test` on stable guards every input the fuzzers ever found
//! interesting, without cargo-fuzz or libFuzzer. See docs/fuzzing.md.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The files of `fuzz/<folder>/<target>`, sorted; `None` if the folder does not exist.
fn files_in(folder: &str, target: &str) -> Option<Vec<PathBuf>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(folder)
        .join(target);
    let entries = std::fs::read_dir(&dir).ok()?;
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Some(files)
}

/// The corpus of `target`: must exist and hold files, or the replay would prove nothing.
fn corpus(target: &str) -> Vec<PathBuf> {
    let files =
        files_in("corpus", target).unwrap_or_else(|| panic!("fuzz/corpus/{target} is missing"));
    assert!(!files.is_empty(), "fuzz/corpus/{target} holds no files");
    files
}

/// Inputs kept by hand because `cargo fuzz cmin` may drop them (see docs/fuzzing.md).
fn regressions(target: &str) -> Vec<PathBuf> {
    files_in("regressions", target).unwrap_or_default()
}

/// Runs `check` on every file; fails listing every file that panicked, with its hex, so
/// one run shows all regressions at once.
fn replay(what: &str, files: &[PathBuf], check: fn(&[u8])) {
    let mut failures = Vec::new();
    for path in files {
        let data = std::fs::read(path).expect("read corpus file");
        // The default panic hook has already printed the assertion; name the input.
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
            eprintln!("^^^ while replaying {} (hex {hex})", path.display());
            failures.push(path.display().to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs failed the {what} checks \
         (reproduce with `cargo fuzz run --sanitizer none {what} FILE`):\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn parse_corpus_passes_parse_checks() {
    replay(
        "parse",
        &corpus("parse"),
        crate::support::fuzz_checks::check_parse,
    );
}

#[test]
fn rewrite_corpus_passes_rewrite_checks() {
    replay(
        "rewrite",
        &corpus("rewrite"),
        crate::support::fuzz_checks::check_rewrite,
    );
}

// Each corpus is also good input for the other target: cheap extra coverage.
#[test]
fn parse_corpus_passes_rewrite_checks() {
    replay(
        "rewrite",
        &corpus("parse"),
        crate::support::fuzz_checks::check_rewrite,
    );
}

#[test]
fn rewrite_corpus_passes_parse_checks() {
    replay(
        "parse",
        &corpus("rewrite"),
        crate::support::fuzz_checks::check_parse,
    );
}

#[test]
fn regressions_pass_both_checks() {
    let all: Vec<PathBuf> = ["parse", "rewrite"]
        .iter()
        .flat_map(|t| regressions(t))
        .collect();
    replay("parse", &all, crate::support::fuzz_checks::check_parse);
    replay("rewrite", &all, crate::support::fuzz_checks::check_rewrite);
}

#[test]
fn stateful_corpus_passes_stateful_checks() {
    let mut files = corpus("stateful");
    files.extend(regressions("stateful"));
    replay(
        "stateful",
        &files,
        crate::support::fuzz_stateful::check_stateful,
    );
}
