//! From TOML text to the file model, collecting **every** problem instead of the first.
//!
//! Owns the two steps before validation: the TOML syntax (every syntax error, from the
//! parser's error recovery) and the file's shape (a value of the wrong type, an unknown key).
//! serde stops at the first shape error, so the document is read again without the offending
//! key after each one, until it deserializes; the keys taken out are reported and listed, so
//! validation does not also call them missing. It must not judge values (that is
//! `validate`'s job) nor print anything.

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::file::FileConfig;

/// At most this many shape errors are collected from one file; a file with more is
/// reported with these (each read costs a deserialization of the whole document).
const MAX_SHAPE_ERRORS: usize = 100;

/// A TOML syntax error: where, and what the parser expected.
#[derive(Debug)]
pub(crate) struct SyntaxProblem {
    /// Byte offset into the text (the start of the error's span; 0 without one).
    pub(crate) offset: usize,
    pub(crate) message: String,
}

/// A value of the wrong type or an unknown key, with the path of its key.
#[derive(Debug)]
pub(crate) struct ShapeProblem {
    pub(crate) offset: usize,
    /// `service[0].health.interval`; empty when no key is at the error's position.
    pub(crate) key: String,
    pub(crate) message: String,
}

impl ShapeProblem {
    /// The key that was taken out of the document for this problem: the problem's key, or
    /// the array holding it (`listen` for `listen[1]`).
    pub(crate) fn removed_key(&self) -> &str {
        let key = self
            .key
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == ']');
        match key.strip_suffix('[') {
            Some(array) if self.key.ends_with(']') => array,
            _ => &self.key,
        }
    }
}

/// What reading the text gave.
#[derive(Debug)]
pub(crate) enum Read {
    /// The text is not TOML: every syntax error, in file order. Nothing else is checked (what
    /// the parser recovered is a guess, and its shape errors would be noise).
    Syntax(Vec<SyntaxProblem>),
    /// The text is TOML. `file` holds what has the right shape (`None` when a problem could
    /// not be taken out, so nothing past it could be read); `problems` the keys left out.
    Shaped {
        file: Option<Box<FileConfig>>,
        problems: Vec<ShapeProblem>,
    },
}

/// Reads `text` into the file model, collecting every syntax or shape problem.
pub(crate) fn read(text: &str) -> Read {
    let (mut doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        let mut problems: Vec<SyntaxProblem> =
            errors.iter().map(|e| syntax_problem(text, e)).collect();
        problems.sort_by_key(|p| p.offset);
        return Read::Syntax(problems);
    }
    let mut problems = Vec::new();
    loop {
        let attempt = FileConfig::deserialize(toml::de::Deserializer::from(doc.clone()));
        let err = match attempt {
            Ok(file) => {
                return Read::Shaped {
                    file: Some(Box::new(file)),
                    problems,
                }
            }
            Err(err) => err,
        };
        let offset = err.span().map_or(0, |s| s.start);
        let key = key_at_in(doc.get_ref(), offset).unwrap_or_default();
        problems.push(ShapeProblem {
            offset,
            key,
            message: err.message().trim_end().to_owned(),
        });
        // No position, nothing to take out, or too many: report what was found and read
        // nothing more (every later key would be a guess).
        let removed = err.span().is_some() && remove_at(doc.get_mut(), offset);
        if !removed || problems.len() >= MAX_SHAPE_ERRORS {
            return Read::Shaped {
                file: None,
                problems,
            };
        }
    }
}

/// One syntax error, with the key named for duplicates (the parser says only "duplicate key").
fn syntax_problem(text: &str, err: &toml::de::Error) -> SyntaxProblem {
    let span = err.span().unwrap_or(0..0);
    let message = err.message().trim_end();
    let message = match text.get(span.clone()) {
        Some(key) if message == "duplicate key" && !key.trim().is_empty() => {
            match table_header_before(text, span.start) {
                Some(table) => format!("duplicate key `{}` in {table}", key.trim()),
                None => format!("duplicate key `{}`", key.trim()),
            }
        }
        _ => message.to_owned(),
    };
    SyntaxProblem {
        offset: span.start,
        message,
    }
}

/// The `[table]` or `[[array]]` header that the line at `offset` belongs to, if any.
fn table_header_before(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    // The duplicate may be a header itself (`[node]` twice): then it names its own table.
    let own = before[line_start..].trim_start();
    if own.starts_with('[') {
        return None;
    }
    before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.split('#').next().unwrap_or(l).trim().to_owned())
}

/// Path of the key at byte `offset` of `text` (`service[0].health.interval`), to name the
/// key of a type error or an unknown key; `None` if the text does not parse as TOML or no
/// key is there.
#[cfg(test)]
pub(crate) fn key_at(text: &str, offset: usize) -> Option<String> {
    let doc = DeTable::parse(text).ok()?;
    key_at_in(doc.get_ref(), offset)
}

/// The deepest key or value of `doc` whose span contains `offset` wins: table spans may cover
/// only their header, so every table is searched.
fn key_at_in(doc: &DeTable<'_>, offset: usize) -> Option<String> {
    let mut path = Vec::new();
    find_in_table(doc, offset, &mut path).then(|| path.concat())
}

/// Search `table`; on success `path` holds the segments (`.name`, `[i]`) leading to `offset`.
fn find_in_table(table: &DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
    for (key, value) in table {
        let segment = if path.is_empty() {
            key.get_ref().to_string()
        } else {
            format!(".{}", key.get_ref())
        };
        path.push(segment);
        if find_in_value(value, offset, path) || key.span().contains(&offset) {
            return true;
        }
        path.pop();
    }
    false
}

fn find_in_value(value: &Spanned<DeValue<'_>>, offset: usize, path: &mut Vec<String>) -> bool {
    match value.get_ref() {
        DeValue::Table(table) => {
            find_in_table(table, offset, path) || value.span().contains(&offset)
        }
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(format!("[{i}]"));
                if find_in_value(item, offset, path) {
                    return true;
                }
                path.pop();
            }
            value.span().contains(&offset)
        }
        _ => value.span().contains(&offset),
    }
}

/// Takes out of `table` the deepest key or array element at `offset`; whether one was found.
fn remove_at(table: &mut DeTable<'_>, offset: usize) -> bool {
    // First look deeper, then take out this level's entry.
    for (_, value) in table.iter_mut() {
        if remove_in_value(value, offset) {
            return true;
        }
    }
    let hit = table
        .iter()
        .find(|(key, value)| key.span().contains(&offset) || value.span().contains(&offset))
        .map(|(key, _)| key.get_ref().to_string());
    hit.is_some_and(|key| table.remove(key.as_str()).is_some())
}

/// Takes out, inside `value`, the deepest key at `offset`; `false` when `value` holds no key
/// there (the caller then takes out the key of `value` itself). A bad element of an array of
/// values takes its whole array out: toml's arrays cannot lose one element.
fn remove_in_value(value: &mut Spanned<DeValue<'_>>, offset: usize) -> bool {
    match value.get_mut() {
        DeValue::Table(table) => remove_at(table, offset),
        DeValue::Array(items) => items.iter_mut().any(|item| match item.get_mut() {
            DeValue::Table(table) => remove_at(table, offset),
            _ => false,
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{key_at, read, Read};

    #[test]
    fn key_at_names_nested_keys_and_array_elements() {
        let text = "[node]\nadmin = 1\n[[service]]\nname = \"a\"\n[[service]]\nlisten = [\"x\", 2]\n[service.health]\ninterval = 2\n";
        let at = |needle: &str| key_at(text, text.find(needle).unwrap());
        assert_eq!(at("admin").as_deref(), Some("node.admin"));
        assert_eq!(at("1\n").as_deref(), Some("node.admin"));
        assert_eq!(at("name").as_deref(), Some("service[0].name"));
        assert_eq!(at("2]").as_deref(), Some("service[1].listen[1]"));
        assert_eq!(
            at("interval").as_deref(),
            Some("service[1].health.interval")
        );
        assert_eq!(key_at("a = ", 0), None);
    }

    #[test]
    fn every_shape_error_is_collected_in_order() {
        let text = "[node]\nadmin = 1\nacess_log = true\n[limits]\nidle_timeout = 60\n\
                    [[service]]\nname = \"a\"\nlisten = [\"x\", 2]\n";
        let Read::Shaped { problems, file } = read(text) else {
            panic!("the text is valid TOML");
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            [
                "limits.idle_timeout",
                "node.acess_log",
                "node.admin",
                "service[0].listen[1]"
            ],
            "{problems:?}"
        );
        // What had the right shape is still read.
        assert_eq!(file.map(|f| f.service.len()), Some(1));
    }

    #[test]
    fn every_syntax_error_is_reported_and_duplicates_are_named() {
        let text =
            "[node]\nadmin = \"a\"\nadmin = \"b\"\n[[service]]\nname = \"x\"\nname = \"y\"\n";
        let Read::Syntax(problems) = read(text) else {
            panic!("duplicate keys are syntax errors");
        };
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "duplicate key `admin` in [node]",
                "duplicate key `name` in [[service]]"
            ]
        );
    }
}
