//! The folder a run writes into. A new run takes only an empty (or missing) folder, so
//! that nothing a user keeps there is overwritten; `--overwrite` removes the outputs of an
//! earlier run of the same kind, by name, and nothing else. Writability is checked before
//! any training, so a run's work is never lost at the end.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// Prepares `out` for a new run that writes `outputs` (file and folder names): created
/// when missing; refused when it holds anything, unless `overwrite`, which removes those
/// names (and only those). Then checks that files can be written there.
pub fn prepare_new(out: &Path, overwrite: bool, outputs: &[&str]) -> Result<()> {
    let mut entries: Vec<String> = match std::fs::read_dir(out) {
        Ok(dir) => dir
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    if !entries.is_empty() {
        if !overwrite {
            entries.sort();
            let more = if entries.len() > 3 { ", ..." } else { "" };
            entries.truncate(3);
            bail!(
                "{}: is not empty (holds {}{more}); pass --overwrite to replace an earlier run \
                 there, --resume to continue it, or choose another --out",
                out.display(),
                entries.join(", ")
            );
        }
        for name in outputs {
            let path = out.join(name);
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else if path.exists() {
                std::fs::remove_file(&path)
            } else {
                Ok(())
            };
            removed
                .with_context(|| format!("{}: cannot remove for --overwrite", path.display()))?;
        }
    }
    check_writable(out)
}

/// Creates `out` if needed and writes and removes a probe file in it.
pub fn check_writable(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let probe = out.join(".keraslike-write-check");
    std::fs::write(&probe, b"")
        .with_context(|| format!("{}: cannot write into this folder", out.display()))?;
    std::fs::remove_file(&probe).with_context(|| format!("{}: cannot remove", probe.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_outputs_go_with_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        prepare_new(&out, false, &["a.csv"]).unwrap();
        assert!(out.is_dir(), "a missing folder is created");
        std::fs::write(out.join("a.csv"), "old").unwrap();
        std::fs::write(out.join("keep.txt"), "mine").unwrap();
        let err = prepare_new(&out, false, &["a.csv"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a.csv, keep.txt") && err.contains("--overwrite"),
            "{err}"
        );
        prepare_new(&out, true, &["a.csv"]).unwrap();
        assert!(!out.join("a.csv").exists());
        assert_eq!(
            std::fs::read_to_string(out.join("keep.txt")).unwrap(),
            "mine"
        );
    }
}
