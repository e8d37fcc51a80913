//! Errors of loading a configuration, written for the operator who must fix the file.
//!
//! Every message says where (`file:line`), which key, and what is wrong, one line per
//! problem, so an editor or `grep` can jump to it. This module only describes failures; it
//! must not decide anything about the configuration itself.

use std::fmt;
use std::path::PathBuf;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, a directory, not UTF-8). The message
    /// says what was wrong with the path (`why`); the operating system's error is the source.
    #[error("cannot read config file {}: {why}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What is wrong with the path, for the operator (e.g. "no such file; the directory
        /// /etc/pentaflow does not exist either").
        why: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML: every syntax error the parser found (it recovers and goes on),
    /// in file order. Nothing else is checked until the syntax is right.
    #[error("{}", DisplaySyntax { source_name, errors })]
    Syntax {
        /// The file path or inline label (see [`crate::Source`]).
        source_name: String,
        /// Every syntax error, sorted by position; never empty.
        errors: Vec<SyntaxError>,
    },
    /// The file is TOML but has values of the wrong type, unknown keys, or breaks one or more
    /// rules; all of them are listed, in file order.
    #[error("{}", DisplayProblems { source_name, problems })]
    Invalid {
        /// The file path or inline label (see [`crate::Source`]).
        source_name: String,
        /// Every problem found, sorted by line.
        problems: Vec<Problem>,
    },
}

/// One validation problem: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line of the offending value, or of its table when a key is missing.
    pub line: usize,
    /// Path of the key, with array elements by index in file order, e.g.
    /// `service[0].backend[2].address` or `limits.max_headers`.
    pub key: String,
    /// What is wrong, quoting the value when there is one.
    pub message: String,
}

/// One TOML syntax error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line of the error (1 when the parser gave no position).
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong, as the TOML parser put it (duplicate keys named).
    pub message: String,
}

/// Renders syntax errors as `source:line:column: message`, one per line.
struct DisplaySyntax<'a> {
    source_name: &'a str,
    errors: &'a [SyntaxError],
}

impl fmt::Display for DisplaySyntax<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(
                f,
                "{}:{}:{}: {}",
                self.source_name, e.line, e.column, e.message
            )?;
        }
        Ok(())
    }
}

/// Renders problems as `source:line: key: message`, one per line.
struct DisplayProblems<'a> {
    source_name: &'a str,
    problems: &'a [Problem],
}

impl ConfigError {
    /// The validation problems, if this is [`ConfigError::Invalid`]; empty otherwise.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.line, self.key, self.message)
    }
}

impl fmt::Display for DisplayProblems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}:{problem}", self.source_name)?;
        }
        Ok(())
    }
}

/// 1-based line and column (in characters) of a byte offset into `text`. Offsets past the
/// end or inside a character are clamped, so a bad span can never panic.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one_and_clamps() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // 'é' is two bytes: the '=' after "bé " is the 4th character of line 2.
        assert_eq!(line_col(text, 10), (2, 4));
        // Inside 'é' and past the end: clamped, no panic.
        assert_eq!(line_col(text, 8), (2, 2));
        assert_eq!(line_col(text, 1000), (3, 1));
    }

    #[test]
    fn invalid_displays_one_line_per_problem() {
        let err = ConfigError::Invalid {
            source_name: "/etc/pentaflow.toml".into(),
            problems: vec![
                Problem {
                    line: 3,
                    key: "limits.max_headers".into(),
                    message: "must be between 1 and 1000, not 0".into(),
                },
                Problem {
                    line: 14,
                    key: "service[0].backend[1].address".into(),
                    message: r#""10.0.0.5" is not an ip:port address"#.into(),
                },
            ],
        };
        assert_eq!(
            err.to_string(),
            "/etc/pentaflow.toml:3: limits.max_headers: must be between 1 and 1000, not 0\n\
             /etc/pentaflow.toml:14: service[0].backend[1].address: \"10.0.0.5\" is not an ip:port address"
        );
        assert_eq!(err.problems().len(), 2);
    }

    #[test]
    fn syntax_names_line_and_column_of_each_error() {
        let err = ConfigError::Syntax {
            source_name: "x.toml".into(),
            errors: vec![
                SyntaxError {
                    line: 2,
                    column: 7,
                    message: "expected `=`".into(),
                },
                SyntaxError {
                    line: 5,
                    column: 1,
                    message: "duplicate key `name` in [node]".into(),
                },
            ],
        };
        assert_eq!(
            err.to_string(),
            "x.toml:2:7: expected `=`\nx.toml:5:1: duplicate key `name` in [node]"
        );
        assert!(err.problems().is_empty());
    }
}
