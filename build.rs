//! Build script: tracks the embedded catalog, and stamps the git revision into the binary
//! (`consentgate --version` prints `consentgate <version> (git <rev>)`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    // The built-in catalog is embedded with include_dir!, which does not track files added later.
    println!("cargo:rerun-if-changed=config/services");

    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let rev = git_revision(&manifest_dir).unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=CONSENTGATE_GIT_REV={rev}");
}

/// `<12-hex>` or `<12-hex>-dirty` (tracked files modified), or `None` without a usable checkout
/// of this very crate (a source tarball, no git binary, a repository git refuses to read).
///
/// Only `.git` in the crate's own directory counts: a tarball unpacked inside some other
/// checkout (`cargo package` verifies under `target/package/`) must not report that checkout.
fn git_revision(manifest_dir: &Path) -> Option<String> {
    if !manifest_dir.join(".git").exists() {
        return None;
    }
    let git_dir = absolute(
        manifest_dir,
        &git(manifest_dir, &["rev-parse", "--git-dir"])?,
    );
    let common_dir = absolute(
        manifest_dir,
        &git(manifest_dir, &["rev-parse", "--git-common-dir"])?,
    );
    watch_head(&git_dir, &common_dir);
    watch_inputs(manifest_dir);

    let hash = git(manifest_dir, &["rev-parse", "--short=12", "HEAD"])?;
    if hash.len() < 12 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let status = git(
        manifest_dir,
        &["status", "--porcelain", "--untracked-files=no"],
    )?;
    Some(if status.is_empty() {
        hash
    } else {
        format!("{hash}-dirty")
    })
}

/// Reruns this script when HEAD moves (checkout, commit, reset, pull into the current branch),
/// and never on a build where nothing changed.
///
/// Cargo reruns a build script on every build when a `rerun-if-changed` path does not exist, so
/// only existing paths are named: a branch whose loose ref file is missing (it lives in
/// packed-refs) is covered by watching the directory where git will write it on the next commit.
fn watch_head(git_dir: &Path, common_dir: &Path) {
    let head = git_dir.join("HEAD");
    watch(&head);
    let packed = common_dir.join("packed-refs");
    if packed.exists() {
        watch(&packed);
    }
    let head_text = std::fs::read_to_string(&head).unwrap_or_default();
    if let Some(reference) = head_text.trim().strip_prefix("ref:") {
        // e.g. `ref: refs/heads/main` → .git/refs/heads/main (refs are shared by worktrees).
        let mut path = common_dir.join(reference.trim());
        while !path.exists() {
            match path.parent() {
                Some(parent) if parent.starts_with(common_dir) => path = parent.to_path_buf(),
                _ => break,
            }
        }
        if path.exists() {
            watch(&path);
        }
    }
}

/// Also reruns it when what is compiled into the binary changes, so `-dirty` is recomputed
/// whenever the crate is recompiled anyway (editing a tracked file moves no ref). Edits
/// elsewhere (README, tests) do not rerun it: the flag describes the tree as of the last time
/// the binary's own inputs changed.
fn watch_inputs(manifest_dir: &Path) {
    for input in ["src", "assets", "config/i18n", "Cargo.toml", "Cargo.lock"] {
        if manifest_dir.join(input).exists() {
            println!("cargo:rerun-if-changed={input}");
        }
    }
}

fn watch(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
}

fn absolute(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Runs git in `dir`; trimmed stdout on success, `None` if git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        // Read-only: never refresh/write the index (a build must not touch the repository or
        // race a concurrent `git commit` for index.lock).
        .env("GIT_OPTIONAL_LOCKS", "0")
        // Ignore a repository chosen by the environment (e.g. when built from a git hook).
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_COMMON_DIR")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_string())
}
