//! Atomic image files: a partial image never appears under the final name.
//!
//! The image is written to a hidden temporary file in the destination directory (same file
//! system, so the final `rename` is atomic), mode 0600. [`AtomicFile::commit`] fsyncs the file,
//! renames it into place and fsyncs the directory. Dropping an uncommitted `AtomicFile` (an error,
//! a panic, a signal handler that unwinds) removes the temporary file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A file that becomes visible under its final name only on [`AtomicFile::commit`].
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file next to `dest`. Fails at once when the directory is missing or
    /// not writable, before any work is done.
    pub fn create(dest: impl AsRef<Path>) -> io::Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} names no file", dest.display()),
            )
        })?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        Ok(AtomicFile {
            file: Some(file),
            tmp,
            dest,
        })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.dest
    }

    fn file(&mut self) -> io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("atomic file already committed"))
    }

    /// fsyncs the data, renames the file into place, fsyncs the directory.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("atomic file already committed"))?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.dest)?;
        if let Some(dir) = self.dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Directory fsync makes the rename durable; failure to open a directory for reading
            // (unusual permissions) does not undo the rename, so it is not an error.
            if let Ok(d) = File::open(dir) {
                d.sync_all()?;
            }
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file()?.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file()?.flush()
    }
}

impl Seek for AtomicFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file()?.seek(pos)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_under_final_name_until_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("img");
        let mut f = AtomicFile::create(&dest).expect("create");
        f.write_all(b"partial").expect("write");
        assert!(!dest.exists());
        drop(f);
        assert!(!dest.exists());
        assert_eq!(
            fs::read_dir(dir.path()).expect("ls").count(),
            0,
            "temp file left behind"
        );

        let mut f = AtomicFile::create(&dest).expect("create");
        f.write_all(b"whole").expect("write");
        f.commit().expect("commit");
        assert_eq!(fs::read(&dest).expect("read"), b"whole");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&dest).expect("stat").permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn missing_directory_fails_at_create() {
        let e = AtomicFile::create("/nonexistent-dir-psnc/img").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
