//! A strict reader of the OpenMetrics text format, for tests: it checks what Prometheus would
//! reject (metadata order, sample names that do not belong to their family, duplicate series,
//! bad escapes, a missing `# EOF`) and gives back the samples to compare values.

use std::collections::HashSet;

/// One metric family as declared by `# HELP` / `# TYPE` / `# UNIT`.
#[derive(Debug)]
pub(crate) struct Family {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) help: String,
    pub(crate) samples: Vec<Sample>,
}

/// One sample line.
#[derive(Debug)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) value: f64,
}

/// Parses a whole exposition or says which line is wrong.
pub(crate) fn parse(text: &str) -> Result<Vec<Family>, String> {
    let body = text
        .strip_suffix("# EOF\n")
        .ok_or("does not end with `# EOF`")?;
    let mut families: Vec<Family> = Vec::new();
    let mut family_names = HashSet::new();
    let mut series = HashSet::new();
    for (i, line) in body.lines().enumerate() {
        let fail = |why: &str| format!("line {}: {why}: {line:?}", i + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest
                .split_once(' ')
                .ok_or_else(|| fail("HELP without text"))?;
            check_name(name).map_err(|e| fail(&e))?;
            if !family_names.insert(name.to_owned()) {
                return Err(fail("family declared twice"));
            }
            let help = unescape(help).map_err(|e| fail(&e))?;
            families.push(Family {
                name: name.into(),
                kind: String::new(),
                help,
                samples: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let family = families
                .last_mut()
                .ok_or_else(|| fail("TYPE before HELP"))?;
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| fail("TYPE without type"))?;
            if name != family.name || !family.kind.is_empty() || !family.samples.is_empty() {
                return Err(fail("TYPE out of place"));
            }
            if ![
                "counter",
                "gauge",
                "info",
                "histogram",
                "summary",
                "unknown",
            ]
            .contains(&kind)
            {
                return Err(fail("unknown type"));
            }
            family.kind = kind.into();
        } else if let Some(rest) = line.strip_prefix("# UNIT ") {
            let family = families
                .last_mut()
                .ok_or_else(|| fail("UNIT before HELP"))?;
            let (name, unit) = rest
                .split_once(' ')
                .ok_or_else(|| fail("UNIT without unit"))?;
            if name != family.name
                || !family.samples.is_empty()
                || !name.ends_with(&format!("_{unit}"))
            {
                return Err(fail("UNIT out of place or not a suffix of the name"));
            }
        } else if line.starts_with('#') {
            return Err(fail("unknown comment"));
        } else {
            let family = families
                .last_mut()
                .ok_or_else(|| fail("sample before any family"))?;
            let sample = parse_sample(line).map_err(|e| fail(&e))?;
            let expected = match family.kind.as_str() {
                "counter" => format!("{}_total", family.name),
                "info" => format!("{}_info", family.name),
                "gauge" | "unknown" => family.name.clone(),
                _ => return Err(fail("sample of a family without a TYPE this reader knows")),
            };
            if sample.name != expected {
                return Err(fail(&format!("sample name should be {expected}")));
            }
            let mut key = sample.labels.clone();
            key.sort();
            if !series.insert((sample.name.clone(), key)) {
                return Err(fail("duplicate series"));
            }
            family.samples.push(sample);
        }
    }
    let mut sample_names = HashSet::new();
    for family in &families {
        let names: HashSet<&str> = family.samples.iter().map(|s| s.name.as_str()).collect();
        for name in names {
            if !sample_names.insert(name.to_owned())
                || (name != family.name && family_names.contains(name))
            {
                return Err(format!("sample name {name} used by two families"));
            }
        }
    }
    Ok(families)
}

/// The value of the sample `name` with exactly `labels` (in any order).
pub(crate) fn value(families: &[Family], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    want.sort();
    families.iter().flat_map(|f| &f.samples).find_map(|s| {
        let mut have = s.labels.clone();
        have.sort();
        (s.name == name && have == want).then_some(s.value)
    })
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        let mut names = HashSet::new();
        while !rest.starts_with('}') {
            let (key, after) = rest.split_once("=\"").ok_or("label without =\"")?;
            check_label_name(key)?;
            if !names.insert(key.to_owned()) {
                return Err(format!("label {key} twice"));
            }
            let (value, after) = quoted(after)?;
            labels.push((key.to_owned(), value));
            rest = after.strip_prefix(',').unwrap_or(after);
        }
        rest = &rest[1..];
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let value = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|e| format!("bad value {v:?}: {e}"))?,
    };
    Ok(Sample {
        name: name.into(),
        labels,
        value,
    })
}

/// Reads an escaped label value up to its closing quote; returns it and what follows.
fn quoted(text: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &text[i + 1..])),
            '\n' => return Err("raw line feed in a label value".into()),
            '\\' => match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                other => return Err(format!("bad escape {other:?}")),
            },
            c => out.push(c),
        }
    }
    Err("unterminated label value".into())
}

fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some('n') => out.push('\n'),
                other => return Err(format!("bad escape {other:?}")),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if ok {
        Ok(())
    } else {
        Err(format!("bad metric name {name:?}"))
    }
}

fn check_label_name(name: &str) -> Result<(), String> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("bad label name {name:?}"))
    }
}
