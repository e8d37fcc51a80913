//! The logs of a lab that failed to come up: copied out of the lab's directory before the
//! teardown removes it, and the last lines of a log for the error message.
//!
//! Owns: where failed labs' logs go ([`KEPT_LOGS_DIR`]) and the tail of a log. Must not:
//! decide which process failed (the caller knows), or keep more than one copy per lab.

use std::path::{Path, PathBuf};

use crate::{LabError, LabState};

/// Where the logs of a failed lab are kept, one directory per lab prefix: outside
/// [`crate::STATE_DIR`], which the teardown removes, and not on a tmpfs that a reboot empties.
pub const KEPT_LOGS_DIR: &str = "/var/tmp";

impl LabState {
    /// Copies every `*.log` of the lab's directory (and its generated configuration) into
    /// `KEPT_LOGS_DIR/pentaflow-lab-<prefix>/`, and returns that directory.
    pub fn keep_logs(&self) -> Result<PathBuf, LabError> {
        let kept = Path::new(KEPT_LOGS_DIR).join(format!("pentaflow-lab-{}", self.prefix));
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| LabError::State { path, source }
        };
        std::fs::create_dir_all(&kept).map_err(io(&kept))?;
        let dir = self.dir();
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            let wanted = path.extension().is_some_and(|e| e == "log" || e == "toml");
            if wanted && path.is_file() {
                let to = kept.join(entry.file_name());
                std::fs::copy(&path, &to).map_err(io(&to))?;
            }
        }
        Ok(kept)
    }
}

/// The last `lines` lines of the file at `path` (lossy UTF-8), or why it cannot be read.
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines_and_names_an_unreadable_file() {
        let path = std::env::temp_dir().join(format!("pentaflow-tail-{}", std::process::id()));
        std::fs::write(&path, "a\nb\nc\nd\n").unwrap();
        assert_eq!(tail(&path, 2), "c\nd");
        assert_eq!(tail(&path, 10), "a\nb\nc\nd");
        std::fs::remove_file(&path).unwrap();
        assert!(tail(&path, 2).starts_with("(cannot read"));
    }
}
