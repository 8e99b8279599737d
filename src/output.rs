//! Files the command line writes (captures, PNGs, recordings) appear whole or
//! not at all: each is written to a temporary name beside its destination (the
//! same folder, so the rename is atomic) and renamed only once complete. A
//! failure, a cancelled run or a killed process never leaves a half-written
//! file under the name the user asked for.

use std::path::Path;

use tempfile::NamedTempFile;

/// A new temporary file beside `path`: `.NAME.XXXXXX.partial.EXT`, keeping the
/// extension (encoders that pick the format by it see the right one). It is
/// deleted if dropped without [`finish`].
pub fn beside(path: &Path) -> std::io::Result<NamedTempFile> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let (prefix, suffix) = (format!(".{name}."), format!(".partial{ext}"));
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(&suffix);
    // A picture or a clip is the user's file like any other: the usual mode
    // (0666 less the umask), not a temporary file's private 0600.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    builder.tempfile_in(dir)
}

/// Gives the finished temporary file its real name (replacing an older file).
pub fn finish(file: NamedTempFile, path: &Path) -> std::io::Result<()> {
    file.persist(path).map(drop).map_err(|e| e.error)
}

/// Writes a file through [`beside`] and [`finish`]: `write` fills the temporary path.
pub fn write_whole<E: From<std::io::Error>>(path: &Path, write: impl FnOnce(&Path) -> Result<(), E>) -> Result<(), E> {
    let tmp = beside(path)?;
    write(tmp.path())?;
    finish(tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_nothing_and_a_good_one_replaces_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.safetensors");
        std::fs::write(&path, b"old").unwrap();
        let failed: Result<(), std::io::Error> = write_whole(&path, |tmp| {
            assert!(tmp.to_string_lossy().ends_with(".partial.safetensors"));
            std::fs::write(tmp, b"half")?;
            Err(std::io::Error::other("the run failed"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let names = |d: &Path| std::fs::read_dir(d).unwrap().count();
        assert_eq!(names(dir.path()), 1, "the temporary file is gone");
        write_whole::<std::io::Error>(&path, |tmp| std::fs::write(tmp, b"new")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(names(dir.path()), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_written_file_gets_the_mode_of_any_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let plain = dir.path().join("plain.png");
        std::fs::write(&plain, b"x").unwrap();
        let path = dir.path().join("out.png");
        write_whole::<std::io::Error>(&path, |tmp| std::fs::write(tmp, b"png")).unwrap();
        assert_eq!(mode(&path), mode(&plain));
    }
}
