//! The files a configuration names: resolving their paths and checking or reading them.
//!
//! Relative paths resolve against the config file's directory, so a config and its keys and
//! certificates can move together. Files are opened only after `metadata` says they are
//! regular files (opening a FIFO for reading would block the loader), and reads are bounded.
//! This module never interprets file contents: callers do (a secret, ticket keys); PEM is the
//! proxy's business.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::Checker;

impl Checker<'_> {
    /// `value` as a path, relative ones joined to the config file's directory.
    pub(super) fn resolve(&self, value: &str) -> PathBuf {
        let path = PathBuf::from(value);
        match self.base_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path,
        }
    }

    /// A path that must name a readable regular file (a certificate, a key, a CA bundle):
    /// the resolved path, or `None` after reporting why it cannot be used.
    pub(super) fn readable_file(&mut self, value: &Spanned<String>, key: &str) -> Option<PathBuf> {
        if value.get_ref().is_empty() {
            self.report(value.span(), key, "must not be empty");
            return None;
        }
        let path = self.resolve(value.get_ref());
        match open_regular(&path) {
            Ok(_) => Some(path),
            Err(why) => {
                let message = format!("cannot use {}: {why}", path.display());
                self.report(value.span(), key, message);
                None
            }
        }
    }

    /// A path that must name an executable regular file (a notify script): the resolved
    /// path, or `None` after reporting why it cannot be used.
    pub(super) fn executable_file(
        &mut self,
        value: &Spanned<String>,
        key: &str,
    ) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.readable_file(value, key)?;
        let mode = std::fs::metadata(&path).map_or(0, |m| m.permissions().mode());
        if mode & 0o111 == 0 {
            let message = format!("cannot use {}: not executable (chmod +x)", path.display());
            self.report(value.span(), key, message);
            return None;
        }
        Some(path)
    }

    /// Read a small file named at `key` (a secret, ticket keys): its resolved path and bytes,
    /// or `None` after reporting why it cannot be used.
    pub(super) fn read_small_file(
        &mut self,
        value: &Spanned<String>,
        key: &str,
        max_bytes: u64,
    ) -> Option<(PathBuf, Vec<u8>)> {
        if value.get_ref().is_empty() {
            self.report(value.span(), key, "must not be empty");
            return None;
        }
        let path = self.resolve(value.get_ref());
        match read_bounded(&path, max_bytes) {
            Ok(bytes) => Some((path, bytes)),
            Err(why) => {
                let message = format!("cannot use {}: {why}", path.display());
                self.report(value.span(), key, message);
                None
            }
        }
    }
}

/// Open `path` for reading if it is a regular file (following symlinks). Errors are for the
/// operator.
fn open_regular(path: &Path) -> Result<File, String> {
    let meta = std::fs::metadata(path).map_err(|err| err.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    File::open(path).map_err(|err| err.to_string())
}

/// Read a regular file of at most `max_bytes`, so a slip such as `/dev/zero` or a FIFO
/// cannot hang or exhaust the loader.
fn read_bounded(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|err| err.to_string())?;
    if bytes.len() as u64 > max_bytes {
        return Err(format!(
            "larger than {max_bytes} bytes; is it the right file?"
        ));
    }
    Ok(bytes)
}
