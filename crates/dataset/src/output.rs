//! Writing results: files replaced atomically, so that an interrupted write never leaves a
//! half-written or destroyed weights file, history or chart (every crate writes through
//! this one function).

use std::path::Path;

use crate::error::{DatasetError, Result};

/// Writes `bytes` to `path` through a temporary file in the same folder renamed over the
/// target, so an interrupted write never leaves a half-written or destroyed file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |cause: std::io::Error| DatasetError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(io)?;
    // Temporary files are private (0600); results are ordinary files.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io)?;
    }
    // On disk before it replaces the old file, so a crash leaves one or the other.
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.csv");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let entries = std::fs::read_dir(dir.path().join("sub")).unwrap().count();
        assert_eq!(entries, 1);
    }
}
