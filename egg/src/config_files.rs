//! The config-file editor: an egg's `config.files` (Wings' `parser`
//! package) and a game-type plugin's `config-edit` records (the plugin
//! API) both edit server files through it.
//!
//! [`apply`] takes a file's current bytes (or `None` when it does not
//! exist), the egg's entry and a [`Context`], and returns the new bytes.
//! [`edit`] is the same editor without placeholders: a list of [`Edit`]s
//! and the [`Dialect`] their keys are spelled in; the Agent applies a
//! plan's `config-edit` through it.
//!
//! Each egg `find` entry becomes one or more edits, in egg order: a plain
//! value is written where its key matches; an object
//! `{ if_value: replace_with }` writes only where the current value is
//! `if_value`, or, for `regex:…`, matches it (`$1`-style groups in
//! `replace_with` refer to the match). `{{…}}` placeholders in values are
//! substituted first ([`render_value`](crate::render_value)); `null` writes
//! an empty string.
//!
//! | Parser | Keys | Writes |
//! |---|---|---|
//! | `file` | a line prefix | each line starting with a key is replaced whole by the value; a key no line starts with is appended in the plan dialect, and not in the egg's (a missing file stays empty, as in Wings) |
//! | `properties` | a property name | the file as it is, each line of a key replaced by `key=value` (every occurrence: readers take the last); a missing key is appended |
//! | `ini` | `section.key`, or `key` before any section; an egg splits at the first dot outside `[…]` (dropping the brackets), a plan at the last dot | the file line by line: a key's value is replaced in place, keeping its spacing and the comments; a missing key is added at the end of its section, a missing section at the end |
//! | `json`, `yaml` | a dotted path; `a.*.b` for every child of `a`; `a[0].b` or `a.0.b` for a list element (`[0]` created when it is the first) | the whole document (JSON indented as the file was, four spaces for a new one; YAML without its comments, as Wings) |
//! | `xml` | egg: a dotted path from the root element, `*` for any element, and a value `[attr='v']` sets an attribute; plan: a `/`-separated path below the root, `*` for any element, `@attr` at the end for an attribute | the document re-indented by two spaces; missing elements along a path without `*` are created |
//!
//! Values in `json` and `yaml`: in the egg dialect a value that is a whole
//! integer is written as a number, and a `replace_with` that is a boolean
//! as a boolean, as Wings; in the plan dialect a value is typed as YAML
//! reads a plain scalar (numbers, `true`/`false`, and `null` keep their
//! type; JSON, which has no infinity or NaN, keeps those as text).
//!
//! ## Decisions
//!
//! - **One editor, two spellings.** Eggs and plans edit the same formats
//!   with the same parsers and writers; they differ only where their
//!   documented contracts differ (the frozen plugin API's `config-edit`
//!   record against Wings' `config.files`): how `ini` and `xml` keys are
//!   spelled, how `json`/`yaml` values are typed, and whether a `file` key
//!   no line matches is appended. [`Dialect`] names those differences and
//!   nothing else.
//! - **Files keep their form.** `properties` and `ini` files are edited
//!   line by line, so comments, order and unrelated lines survive (Wings
//!   rewrites a properties file from its parsed keys, dropping comments
//!   after the header, and an ini file through a library).
//! - **An edit writes only what it names.** A value cannot add a line of
//!   its own: `properties` values are escaped as `java.util.Properties`
//!   reads them (control and non-ASCII characters as `\u00e9`-style escapes), `ini`
//!   values have their line breaks turned into spaces (Wings writes
//!   go-ini's `"""` quotes, which other readers take as a new key), and a
//!   `file` key or value, or an `ini` key, with a line break or NUL is
//!   refused ([`Error::ConfigLineBreak`]). XML refuses characters XML 1.0
//!   cannot hold and names that are not XML names ([`Error::ConfigKey`]).
//! - **Idempotent.** Applying the same edits to their own result changes
//!   nothing: the Agent applies startup edits before every start.
//! - **Bounded.** Current contents above [`MAX_FILE_BYTES`] are refused.
//!
//! Conditions hold the same way in every format: a key without a value
//! is never written by a conditional edit, a literal `if_value` compares
//! the key's value (a `file` key's whole line, an XML attribute's value
//! when the edit sets one), and `regex:` replaces each match (Wings reads
//! conditions in `json` and `yaml` only; an invalid pattern is
//! [`Error::ConfigKey`] before anything is applied).
//!
//! Where Wings has a bug this follows its evident intent and says so: a
//! `regex:` condition needs an existing value (Wings' code inverts its own
//! comment); a plain `if_value` compares the value at the path (Wings
//! compares the whole document); a `file` line matching two keys takes the
//! first (Wings writes both on one line); a missing JSON file starts as
//! `{}` (Wings fails).

use crate::error::{Error, Result};
use crate::model::{ConfigFile, FindValue, Parser};
use crate::render::{Context, render_value};
use crate::tree::Tree;

/// The largest config file the editor reads: 8 MiB.
pub const MAX_FILE_BYTES: usize = 8 << 20;

/// How keys are spelled and values typed (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// An egg's `config.files`, as Wings reads them.
    Egg,
    /// A game-type plugin's `config-edit` (the plugin API's
    /// `game-type.wit`).
    Plan,
}

/// One change to a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    /// Where: a line prefix, a property, `section.key`, a path.
    pub key: String,
    /// What to write.
    pub value: EditValue,
    /// Write only where the current value is this (or matches it, for
    /// `regex:…`); `None` writes unconditionally.
    pub when: Option<String>,
}

impl Edit {
    /// An unconditional edit setting `key` to the text `value`.
    pub fn set(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: EditValue::Text(value.into()),
            when: None,
        }
    }
}

/// A value an [`Edit`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditValue {
    /// Text (typed per [`Dialect`] in `json` and `yaml`).
    Text(String),
    /// A boolean (an egg's `true` or `false` `replace_with`).
    Bool(bool),
}

impl EditValue {
    fn text(&self) -> String {
        match self {
            EditValue::Text(text) => text.clone(),
            EditValue::Bool(b) => b.to_string(),
        }
    }
}

fn edits_of(file: &ConfigFile, ctx: &Context) -> Vec<Edit> {
    let resolve = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => EditValue::Text(render_value(s, ctx)),
        serde_json::Value::Bool(b) => EditValue::Bool(*b),
        serde_json::Value::Null => EditValue::Text(String::new()),
        other => EditValue::Text(other.to_string()),
    };
    let mut out = Vec::new();
    for find in &file.find {
        match &find.value {
            FindValue::Set(v) => out.push(Edit {
                key: find.key.clone(),
                value: resolve(v),
                when: None,
            }),
            FindValue::When(pairs) => {
                for (if_value, v) in pairs {
                    out.push(Edit {
                        key: find.key.clone(),
                        value: resolve(v),
                        when: Some(if_value.clone()),
                    });
                }
            }
        }
    }
    out
}

/// Returns the new contents of `file` given its current bytes (`None`
/// when it does not exist yet).
///
/// # Errors
///
/// As [`edit`].
pub fn apply(file: &ConfigFile, current: Option<&[u8]>, ctx: &Context) -> Result<Vec<u8>> {
    edit(
        &file.path,
        file.parser,
        Dialect::Egg,
        current,
        &edits_of(file, ctx),
    )
}

/// Returns the contents of the config file `path` read with `parser`,
/// `current` (`None` when it does not exist yet) with `edits` applied in
/// order, keys spelled in `dialect`.
///
/// ```
/// use cap_egg::Parser;
/// use cap_egg::config_files::{Dialect, Edit, edit};
///
/// let current = br#"{"servers": {"lobby": {"port": 1}, "hub": {"port": 2}}}"#;
/// let edited = edit("proxy.json", Parser::Json, Dialect::Plan, Some(current),
///     &[Edit::set("servers.*.port", "25565")])?;
/// let value: serde_json::Value = serde_json::from_slice(&edited).unwrap();
/// assert_eq!(value["servers"]["hub"]["port"], 25565);
/// # Ok::<(), cap_egg::Error>(())
/// ```
///
/// # Errors
///
/// - [`Error::ConfigFile`] when the current contents cannot be read with
///   the parser (not UTF-8, not JSON/YAML/XML, over [`MAX_FILE_BYTES`]);
/// - [`Error::ConfigKey`] when a key cannot be set (a `json`/`yaml` path
///   through a value that is not an object, an XML name that is not one, a
///   character XML cannot hold);
/// - [`Error::ConfigLineBreak`] for a `file` key or value, or an `ini`
///   key, with a line break or NUL.
///
/// Nothing is half-applied: an error means no contents.
pub fn edit(
    path: &str,
    parser: Parser,
    dialect: Dialect,
    current: Option<&[u8]>,
    edits: &[Edit],
) -> Result<Vec<u8>> {
    let err = |message: String| Error::ConfigFile {
        file: path.to_owned(),
        parser: parser.as_str(),
        message,
    };
    let current_bytes = current.unwrap_or_default();
    if current_bytes.len() > MAX_FILE_BYTES {
        return Err(err(format!("larger than the {MAX_FILE_BYTES} byte limit")));
    }
    let text = std::str::from_utf8(current_bytes).map_err(|e| err(format!("not UTF-8: {e}")))?;
    let key_error = |key: &str, message: String| Error::ConfigKey {
        file: path.to_owned(),
        parser: parser.as_str(),
        key: key.to_owned(),
        message,
    };
    let line_break = |key: &str| Error::ConfigLineBreak {
        file: path.to_owned(),
        parser: parser.as_str(),
        key: key.to_owned(),
    };
    let breaks = |text: &str| text.contains(['\r', '\n', '\0']);
    for e in edits {
        if let Some(pattern) = e.when.as_deref().and_then(|w| w.strip_prefix("regex:")) {
            regex::Regex::new(pattern).map_err(|error| {
                key_error(
                    &e.key,
                    format!("the condition is not a valid regular expression: {error}"),
                )
            })?;
        }
    }
    let out = match parser {
        Parser::File => {
            if let Some(e) = edits
                .iter()
                .find(|e| breaks(&e.key) || breaks(&e.value.text()))
            {
                return Err(line_break(&e.key));
            }
            apply_file(text, edits, dialect)
        }
        Parser::Properties => apply_properties(text, edits),
        Parser::Ini => {
            if let Some(e) = edits.iter().find(|e| breaks(&e.key)) {
                return Err(line_break(&e.key));
            }
            apply_ini(text, edits, dialect)
        }
        Parser::Json => {
            let mut doc = if text.trim().is_empty() {
                Tree::Object(Vec::new())
            } else {
                serde_json::from_str(text).map_err(|e| err(e.to_string()))?
            };
            apply_paths(&mut doc, edits, dialect, true)
                .map_err(|(key, message)| key_error(&key, message))?;
            to_json(&doc, json_indent(text)) + "\n"
        }
        Parser::Yaml => {
            let mut doc =
                match serde_yaml_ng::from_str::<Tree>(text).map_err(|e| err(e.to_string()))? {
                    Tree::Null => Tree::Object(Vec::new()),
                    doc => doc,
                };
            apply_paths(&mut doc, edits, dialect, false)
                .map_err(|(key, message)| key_error(&key, message))?;
            serde_yaml_ng::to_string(&doc).map_err(|e| err(e.to_string()))?
        }
        Parser::Xml => xml::apply(text, edits, dialect).map_err(|e| match e {
            xml::Failure::Document(message) => err(message),
            xml::Failure::Key(key, message) => key_error(&key, message),
        })?,
    };
    Ok(out.into_bytes())
}

/// Lines as Go's `bufio.Scanner` gives them: split on `\n`, trailing
/// `\r`s dropped, no empty last line after a final newline. (Go drops one
/// `\r`; dropping all keeps an edit idempotent: a line ending `\r\r`
/// would otherwise be written back as `\r\n` and read again as another.)
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    body.split('\n')
        .filter(move |_| !text.is_empty())
        .map(|l| l.trim_end_matches('\r'))
}

/// What an edit does to a key whose current value is `current` (see
/// [`conditioned`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Conditioned {
    /// The condition does not hold: the key stays as it is.
    Skip,
    /// The edit's value is written.
    Value,
    /// A `regex:` condition matched: this is the current value with each
    /// match replaced by the edit's value (`$1`, `${name}` are groups).
    Replaced(String),
}

/// Whether an edit with condition `when` writes over `current` (`None`: the
/// key has no value), and what: with no condition, its value; with a
/// literal one, its value where the current value equals it; with
/// `regex:<pattern>`, the current value with every match replaced by
/// `value`. No condition holds for a key without a value (as in Wings,
/// which writes a conditional replacement only where the path exists).
/// [`edit`] refuses an invalid pattern before anything is applied.
fn conditioned(when: Option<&str>, current: Option<&str>, value: &str) -> Conditioned {
    let Some(when) = when else {
        return Conditioned::Value;
    };
    let Some(current) = current else {
        return Conditioned::Skip;
    };
    match when.strip_prefix("regex:") {
        Some(pattern) => match regex::Regex::new(pattern) {
            Ok(re) if re.is_match(current) => {
                Conditioned::Replaced(re.replace_all(current, value).into_owned())
            }
            _ => Conditioned::Skip,
        },
        None if current == when => Conditioned::Value,
        None => Conditioned::Skip,
    }
}

/// `lines`, joined back with a final newline (none for no lines).
fn join(lines: &[String]) -> String {
    let mut out = lines.join("\n");
    if !lines.is_empty() {
        out.push('\n');
    }
    out
}

fn apply_file(text: &str, edits: &[Edit], dialect: Dialect) -> String {
    let mut used = vec![false; edits.len()];
    let mut out: Vec<String> = lines(text)
        .map(
            |line| match edits.iter().position(|e| line.starts_with(e.key.as_str())) {
                Some(i) => {
                    used[i] = true;
                    let edit = &edits[i];
                    // A condition is about the whole line.
                    match conditioned(edit.when.as_deref(), Some(line), &edit.value.text()) {
                        Conditioned::Skip => line.to_owned(),
                        Conditioned::Value => edit.value.text(),
                        Conditioned::Replaced(text) => text,
                    }
                }
                None => line.to_owned(),
            },
        )
        .collect();
    if dialect == Dialect::Plan {
        for (edit, used) in edits.iter().zip(used) {
            // A key matching a line another key took is not appended, nor
            // is a conditional one (no line, no value to compare).
            let matched = used || out.iter().any(|l| l.starts_with(edit.key.as_str()));
            if !matched && edit.when.is_none() {
                out.push(edit.value.text());
            }
        }
    }
    join(&out)
}

// --- properties --------------------------------------------------------

/// Whitespace as `java.util.Properties` reads it.
fn is_property_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

/// Escapes `text` as `java.util.Properties` reads it back: backslash and
/// the named controls by name, other controls and every non-ASCII
/// character as `\u00e9`-style escapes (UTF-16 units, so readers of ISO-8859-1 files
/// read them too); in a key also the separators and a leading comment
/// mark, in a value a leading blank.
fn escape_property(text: &str, is_key: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            '=' | ':' | ' ' if is_key => {
                out.push('\\');
                out.push(c);
            }
            '#' | '!' if is_key && i == 0 => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == 0 => out.push_str("\\ "),
            c if c.is_ascii_control() || !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Resolves the escapes of a key or value as `java.util.Properties` does
/// (escaped UTF-16 surrogate pairs included).
fn unescape_property(s: &str) -> String {
    let mut units: Vec<u16> = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    let push = |units: &mut Vec<u16>, c: char| {
        let mut buffer = [0u16; 2];
        units.extend_from_slice(c.encode_utf16(&mut buffer));
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            push(&mut units, c);
            continue;
        }
        match chars.next() {
            Some('t') => push(&mut units, '\t'),
            Some('n') => push(&mut units, '\n'),
            Some('r') => push(&mut units, '\r'),
            Some('f') => push(&mut units, '\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u16::from_str_radix(&hex, 16) {
                    Ok(unit) => units.push(unit),
                    Err(_) => hex.chars().for_each(|c| push(&mut units, c)),
                }
            }
            Some(other) => push(&mut units, other),
            None => {}
        }
    }
    String::from_utf16_lossy(&units)
}

/// Whether `line` ends in an odd number of backslashes, i.e. continues on
/// the next line.
fn continues(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// The key and value of a logical properties line, or `None` for comments
/// and blank lines.
fn property_entry(line: &str) -> Option<(String, String)> {
    let line = line.trim_start_matches(is_property_blank);
    if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
        return None;
    }
    let mut key_end = line.len();
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || is_property_blank(c) {
            key_end = i;
            break;
        }
    }
    let mut rest = line[key_end..].trim_start_matches(is_property_blank);
    if let Some(r) = rest.strip_prefix(['=', ':']) {
        rest = r.trim_start_matches(is_property_blank);
    }
    Some((unescape_property(&line[..key_end]), unescape_property(rest)))
}

/// A logical properties line: its range of physical lines, and its key and
/// value unless it is a comment or blank.
type PropertyEntry = (std::ops::Range<usize>, Option<(String, String)>);

/// The logical lines of a properties file as ranges of `lines` (a line
/// ending in an odd number of backslashes continues on the next; comments
/// never do), each with its key and value.
fn property_entries(lines: &[String]) -> Vec<PropertyEntry> {
    let mut entries = Vec::new();
    let mut start = 0;
    while start < lines.len() {
        let first = lines[start].trim_start_matches(is_property_blank);
        let is_comment = first.starts_with('#') || first.starts_with('!');
        let mut end = start;
        let mut logical = String::new();
        loop {
            let line = lines[end].trim_start_matches(is_property_blank);
            if !is_comment && continues(line) && end + 1 < lines.len() {
                logical.push_str(&line[..line.len() - 1]);
                end += 1;
            } else {
                logical.push_str(line);
                break;
            }
        }
        entries.push((start..end + 1, property_entry(&logical)));
        start = end + 1;
    }
    entries
}

fn apply_properties(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = lines(text).map(str::to_owned).collect();
    for edit in edits {
        let entries = property_entries(&lines);
        let matching: Vec<_> = entries
            .iter()
            .filter_map(|(range, entry)| {
                let (key, value) = entry.as_ref()?;
                (*key == edit.key).then_some((range.clone(), value))
            })
            .collect();
        // Readers take the last occurrence.
        let current = matching.last().map(|(_, value)| value.as_str());
        let value = match conditioned(edit.when.as_deref(), current, &edit.value.text()) {
            Conditioned::Skip => continue,
            Conditioned::Value => edit.value.text(),
            Conditioned::Replaced(text) => text,
        };
        let line = format!(
            "{}={}",
            escape_property(&edit.key, true),
            escape_property(&value, false)
        );
        if matching.is_empty() {
            // A last line that continues would swallow the new one: end it.
            if entries
                .last()
                .is_some_and(|(range, entry)| entry.is_some() && continues(&lines[range.end - 1]))
            {
                lines.push(String::new());
            }
            lines.push(line);
        } else {
            // Every occurrence, continuation lines included; back to front
            // so the ranges stay valid.
            let ranges: Vec<_> = matching.into_iter().map(|(range, _)| range).collect();
            for range in ranges.into_iter().rev() {
                lines.splice(range, [line.clone()]);
            }
        }
    }
    join(&lines)
}

// --- ini -----------------------------------------------------------------

/// Splits an `ini` key into section and key: an egg's as Wings does (the
/// first `.` outside brackets; brackets dropped), a plan's at the last
/// `.`.
fn ini_path(key: &str, dialect: Dialect) -> (String, String) {
    if dialect == Dialect::Plan {
        return match key.rsplit_once('.') {
            Some((section, key)) => (section.to_owned(), key.to_owned()),
            None => (String::new(), key.to_owned()),
        };
    }
    let mut parts: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut depth = 0i32;
    for c in key.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '.' if depth <= 0 && parts.is_empty() => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    match parts.len() {
        2 => (parts.remove(0), parts.remove(0)),
        _ => (String::new(), parts.remove(0)),
    }
}

/// A value on one line: line breaks become spaces.
fn ini_value(value: &str) -> String {
    value.replace(['\n', '\r'], " ")
}

/// The section a `[name]` header line opens.
fn ini_section(line: &str) -> Option<&str> {
    let t = line.trim();
    t.strip_prefix('[')?.strip_suffix(']').map(str::trim)
}

fn apply_ini(text: &str, edits: &[Edit], dialect: Dialect) -> String {
    let mut lines: Vec<String> = lines(text).map(str::to_owned).collect();
    for edit in edits {
        let value = ini_value(&edit.value.text());
        let (section, key) = ini_path(&edit.key, dialect);
        // The section's span: from after its header to before the next header.
        let start = if section.is_empty() {
            Some(0)
        } else {
            lines
                .iter()
                .position(|l| ini_section(l) == Some(section.as_str()))
                .map(|i| i + 1)
        };
        let Some(start) = start else {
            if edit.when.is_some() {
                continue;
            }
            if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                lines.push(String::new());
            }
            lines.push(format!("[{section}]"));
            lines.push(format!("{key} = {value}"));
            continue;
        };
        let end = lines[start..]
            .iter()
            .position(|l| l.trim_start().starts_with('['))
            .map_or(lines.len(), |p| start + p);
        let existing = (start..end).find(|&i| {
            let t = lines[i].trim_start();
            !t.starts_with([';', '#']) && t.find(['=', ':']).is_some_and(|p| t[..p].trim() == key)
        });
        match existing {
            Some(i) => {
                let line = &lines[i];
                let sep = line.find(['=', ':']).unwrap_or(line.len());
                let after = &line[sep + 1..];
                let value = match conditioned(edit.when.as_deref(), Some(after.trim()), &value) {
                    Conditioned::Skip => continue,
                    Conditioned::Value => value,
                    Conditioned::Replaced(text) => ini_value(&text),
                };
                // The blanks between the separator and the value are kept
                // (less those the value itself starts with, so that
                // setting the same value again changes nothing).
                let blanks = |text: &str| text.len() - text.trim_start().len();
                let spacing = &after[..blanks(after).saturating_sub(blanks(&value))];
                lines[i] = format!("{}{spacing}{value}", &line[..=sep]);
            }
            None if edit.when.is_some() => {}
            None => {
                let at = (start..end)
                    .rev()
                    .find(|&i| !lines[i].trim().is_empty())
                    .map_or(start, |i| i + 1);
                lines.insert(at, format!("{key} = {value}"));
            }
        }
    }
    join(&lines)
}

// --- json and yaml -------------------------------------------------------

/// A value as written in `json` or `yaml`.
fn typed(value: &EditValue, dialect: Dialect, json: bool) -> Tree {
    match (value, dialect) {
        (EditValue::Bool(b), _) => Tree::Bool(*b),
        // Wings' `getKeyValue`: a whole number becomes a number, anything
        // else a string.
        (EditValue::Text(text), Dialect::Egg) => match text.parse::<i64>() {
            Ok(n) => Tree::Number(n.into()),
            Err(_) => Tree::String(text.clone()),
        },
        // As YAML reads a plain scalar; NaN and infinity stay text in JSON,
        // which would write them as `null`; only `null` itself is null.
        (EditValue::Text(text), Dialect::Plan) => match serde_yaml_ng::from_str::<Tree>(text) {
            Ok(Tree::Float(_)) if json => Tree::String(text.clone()),
            Ok(parsed @ (Tree::Bool(_) | Tree::Number(_) | Tree::Float(_))) => parsed,
            Ok(Tree::Null) if text.trim() == "null" => Tree::Null,
            _ => Tree::String(text.clone()),
        },
    }
}

/// The indent of the first indented line of a JSON document, or four
/// spaces (PHP's `JSON_PRETTY_PRINT`, and what Wings writes).
fn json_indent(text: &str) -> String {
    text.lines()
        .skip(1)
        .map(|line| &line[..line.len() - line.trim_start_matches([' ', '\t']).len()])
        .find(|indent| !indent.is_empty())
        .unwrap_or("    ")
        .to_owned()
}

fn to_json(tree: &Tree, indent: String) -> String {
    use serde::Serialize;
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    // A tree of strings, numbers and maps with string keys written into a
    // Vec cannot fail.
    if tree.serialize(&mut ser).is_err() {
        return String::new();
    }
    String::from_utf8(out).unwrap_or_default()
}

fn apply_paths(
    doc: &mut Tree,
    edits: &[Edit],
    dialect: Dialect,
    json: bool,
) -> Result<(), (String, String)> {
    for edit in edits {
        let segs = segments(&edit.key);
        set_matching(doc, &segs, edit, dialect, json).map_err(|m| (edit.key.clone(), m))?;
    }
    Ok(())
}

/// Applies `edit` at `path` below `node`, each `*` standing for every
/// child of the node it is reached at (a node without children, or a
/// missing one, is left alone).
fn set_matching(
    node: &mut Tree,
    path: &[&str],
    edit: &Edit,
    dialect: Dialect,
    json: bool,
) -> Result<(), String> {
    let Some(star) = path.iter().position(|s| *s == "*") else {
        return set_at(node, path, edit, dialect, json);
    };
    let Some(parent) = get_path_mut(node, &path[..star]) else {
        return Ok(());
    };
    let children: Vec<&mut Tree> = match parent {
        Tree::Object(pairs) => pairs.iter_mut().map(|(_, v)| v).collect(),
        Tree::Array(items) => items.iter_mut().collect(),
        _ => Vec::new(),
    };
    for child in children {
        set_matching(child, &path[star + 1..], edit, dialect, json)?;
    }
    Ok(())
}

/// Applies one edit at `path` below `node`, honouring its condition.
fn set_at(
    node: &mut Tree,
    path: &[&str],
    edit: &Edit,
    dialect: Dialect,
    json: bool,
) -> Result<(), String> {
    let current = get_path_mut(node, path).map(|t| scalar_text(t));
    let value = match conditioned(edit.when.as_deref(), current.as_deref(), &edit.value.text()) {
        Conditioned::Skip => return Ok(()),
        Conditioned::Value => typed(&edit.value, dialect, json),
        Conditioned::Replaced(text) => Tree::String(text),
    };
    if path.is_empty() {
        *node = value;
        return Ok(());
    }
    set_path(node, path, value)
}

fn scalar_text(tree: &Tree) -> String {
    match tree {
        Tree::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn segments(path: &str) -> Vec<&str> {
    path.split('.').filter(|s| !s.is_empty()).collect()
}

/// A segment `name[3]` as (`name`, 3).
fn indexed(segment: &str) -> Option<(&str, usize)> {
    let open = segment.find('[')?;
    let index = segment[open + 1..].strip_suffix(']')?.parse().ok()?;
    Some((&segment[..open], index))
}

fn get_path_mut<'a>(mut node: &'a mut Tree, path: &[&str]) -> Option<&'a mut Tree> {
    for seg in path {
        node = match indexed(seg) {
            Some((name, index)) => match node.get_mut(name)? {
                Tree::Array(items) => items.get_mut(index)?,
                _ => return None,
            },
            None => match node {
                Tree::Array(items) => items.get_mut(seg.parse::<usize>().ok()?)?,
                other => other.get_mut(seg)?,
            },
        };
    }
    Some(node)
}

/// Sets `value` at `segs` below `node`, creating objects (and a first
/// list element for `name[0]`) on the way.
fn set_path(node: &mut Tree, segs: &[&str], value: Tree) -> Result<(), String> {
    let Some((seg, rest)) = segs.split_first() else {
        *node = value;
        return Ok(());
    };
    let (name, index) = match indexed(seg) {
        Some((name, index)) => (name, Some(index)),
        None => (*seg, None),
    };
    if matches!(node, Tree::Null) {
        *node = Tree::Object(Vec::new());
    }
    let child = match (node, index) {
        (Tree::Array(items), None) => {
            let n = name
                .parse::<usize>()
                .map_err(|_| format!("{name:?} is not an index of a list"))?;
            let len = items.len();
            items
                .get_mut(n)
                .ok_or_else(|| format!("the list has no element {n} (it has {len})"))?
        }
        (Tree::Object(pairs), index) => {
            if !pairs.iter().any(|(k, _)| k == name) {
                let fresh = match index {
                    Some(_) => Tree::Array(Vec::new()),
                    None => Tree::Null,
                };
                pairs.push((name.to_owned(), fresh));
            }
            let child = pairs
                .iter_mut()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
                .ok_or_else(|| format!("cannot create {name:?}"))?;
            match index {
                None => child,
                Some(index) => {
                    if !matches!(child, Tree::Array(_)) {
                        if index != 0 {
                            return Err(format!("{name:?} is not a list"));
                        }
                        *child = Tree::Array(Vec::new());
                    }
                    let Tree::Array(items) = child else {
                        return Err(format!("{name:?} is not a list"));
                    };
                    if items.is_empty() && index == 0 {
                        items.push(Tree::Null);
                    }
                    items
                        .get_mut(index)
                        .ok_or_else(|| format!("{name:?} has no element {index}"))?
                }
            }
        }
        (other, _) => {
            return Err(format!(
                "{name:?} is inside {}, not an object",
                other.kind()
            ));
        }
    };
    set_path(child, rest, value)
}

// --- xml -----------------------------------------------------------------

mod xml {
    //! A small XML tree, enough to set elements and attributes and write
    //! the document back indented.

    use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

    use super::{Dialect, Edit};

    /// Why the XML editor failed.
    pub(super) enum Failure {
        /// The current document cannot be read.
        Document(String),
        /// A key cannot be set: (key, why).
        Key(String, String),
    }

    #[derive(Debug)]
    enum Node {
        Element(Element),
        Text(String),
        Comment(String),
        CData(String),
    }

    #[derive(Debug)]
    struct Element {
        name: String,
        attrs: Vec<(String, String)>,
        children: Vec<Node>,
    }

    impl Element {
        fn new(name: &str) -> Element {
            Element {
                name: name.to_owned(),
                attrs: Vec::new(),
                children: Vec::new(),
            }
        }

        fn child_mut(&mut self, name: &str) -> Option<&mut Element> {
            self.children.iter_mut().find_map(|n| match n {
                Node::Element(e) if e.name == name => Some(e),
                _ => None,
            })
        }

        fn set_text(&mut self, text: &str) {
            self.children
                .retain(|n| !matches!(n, Node::Text(_) | Node::CData(_)));
            self.children.insert(0, Node::Text(text.to_owned()));
        }

        /// Every element below (and including) this one matching `parts`
        /// (`*` matches any name).
        fn find_all<'a>(&'a mut self, parts: &[&str], out: &mut Vec<&'a mut Element>) {
            let Some((first, rest)) = parts.split_first() else {
                return;
            };
            if *first != "*" && *first != self.name {
                return;
            }
            if rest.is_empty() {
                out.push(self);
                return;
            }
            for child in &mut self.children {
                if let Node::Element(e) = child {
                    e.find_all(rest, out);
                }
            }
        }
    }

    struct Doc {
        decl: bool,
        prolog: Vec<Node>,
        root: Option<Element>,
    }

    fn parse(text: &str) -> Result<Doc, String> {
        let mut reader = quick_xml::Reader::from_str(text);
        reader.config_mut().trim_text(true);
        let mut doc = Doc {
            decl: false,
            prolog: Vec::new(),
            root: None,
        };
        let mut stack: Vec<Element> = Vec::new();
        let push = |doc: &mut Doc, stack: &mut Vec<Element>, node: Node| -> Result<(), String> {
            match stack.last_mut() {
                Some(parent) => {
                    // Adjacent text (split by entity references) joins up.
                    if let (Node::Text(t), Some(Node::Text(prev))) =
                        (&node, parent.children.last_mut())
                    {
                        prev.push_str(t);
                    } else {
                        parent.children.push(node);
                    }
                }
                None => match node {
                    Node::Element(_) if doc.root.is_some() => {
                        return Err("a second root element".to_owned());
                    }
                    Node::Element(e) => doc.root = Some(e),
                    Node::Text(t) | Node::CData(t) if !t.trim().is_empty() => {
                        return Err(format!("text outside the root element: {t:?}"));
                    }
                    Node::Text(_) | Node::CData(_) => {}
                    other => doc.prolog.push(other),
                },
            }
            Ok(())
        };
        loop {
            let event = reader.read_event().map_err(|e| e.to_string())?;
            match event {
                Event::Decl(_) => doc.decl = true,
                Event::Start(s) => stack.push(element(&s)?),
                Event::Empty(s) => {
                    let e = element(&s)?;
                    push(&mut doc, &mut stack, Node::Element(e))?;
                }
                Event::End(_) => {
                    let e = stack.pop().ok_or("an end tag without its start")?;
                    push(&mut doc, &mut stack, Node::Element(e))?;
                }
                Event::Text(t) => {
                    let text = quick_xml::escape::unescape(&t.into_inner())
                        .map_err(|e| e.to_string())?
                        .into_owned();
                    if !text.is_empty() {
                        push(&mut doc, &mut stack, Node::Text(text))?;
                    }
                }
                Event::GeneralRef(r) => {
                    let text = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                        Some(c) => c.to_string(),
                        None => {
                            let name = r.into_inner();
                            match name.as_ref() {
                                "amp" => "&".into(),
                                "lt" => "<".into(),
                                "gt" => ">".into(),
                                "quot" => "\"".into(),
                                "apos" => "'".into(),
                                other => return Err(format!("unknown entity &{other};")),
                            }
                        }
                    };
                    push(&mut doc, &mut stack, Node::Text(text))?;
                }
                Event::CData(c) => push(
                    &mut doc,
                    &mut stack,
                    Node::CData(c.into_inner().into_owned()),
                )?,
                Event::Comment(c) => push(
                    &mut doc,
                    &mut stack,
                    Node::Comment(c.into_inner().into_owned()),
                )?,
                Event::PI(_) | Event::DocType(_) => {}
                Event::Eof => break,
            }
        }
        if !stack.is_empty() {
            return Err("the document ends inside an element".into());
        }
        Ok(doc)
    }

    fn element(start: &BytesStart<'_>) -> Result<Element, String> {
        let mut e = Element::new(start.name().as_ref());
        for attr in start.attributes() {
            let attr = attr.map_err(|e| e.to_string())?;
            let value = attr
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| e.to_string())?;
            e.attrs
                .push((attr.key.as_ref().to_owned(), value.into_owned()));
        }
        Ok(e)
    }

    /// `[name='value']`: an attribute to set (an egg's spelling).
    fn attribute(value: &str) -> Option<(&str, &str)> {
        let inner = value.strip_prefix('[')?.strip_suffix("']")?;
        let (name, v) = inner.split_once("='")?;
        (!name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_'))
            .then_some((name, v))
    }

    /// An edit's target: the element path from the root (`*` for any
    /// element) and the attribute to set, if any, with the value.
    struct Target<'a> {
        parts: Vec<&'a str>,
        attribute: Option<String>,
        value: String,
    }

    fn target(edit: &Edit, dialect: Dialect) -> Target<'_> {
        let value = edit.value.text();
        match dialect {
            Dialect::Egg => {
                let parts = edit.key.split('.').collect();
                let (attribute, value) = match attribute(&value) {
                    Some((name, v)) => (Some(name.to_owned()), v.to_owned()),
                    None => (None, value),
                };
                Target {
                    parts,
                    attribute,
                    value,
                }
            }
            Dialect::Plan => {
                let (path, attribute) = match edit.key.rsplit_once('@') {
                    Some((path, attribute)) => (path, Some(attribute.to_owned())),
                    None => (edit.key.as_str(), None),
                };
                let mut parts = vec!["*"];
                parts.extend(path.split('/').filter(|p| !p.is_empty()));
                Target {
                    parts,
                    attribute,
                    value,
                }
            }
        }
    }

    /// Whether `name` is an XML name (letters, digits and `_-.:`, not
    /// starting with a digit, `-` or `.`).
    fn is_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    }

    /// The first character XML 1.0 cannot hold, not even escaped.
    fn unwritable(text: &str) -> Option<char> {
        text.chars().find(|&c| {
            (u32::from(c) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
                || matches!(c, '\u{fffe}' | '\u{ffff}')
        })
    }

    pub(super) fn apply(text: &str, edits: &[Edit], dialect: Dialect) -> Result<String, Failure> {
        let mut doc = parse(text).map_err(Failure::Document)?;
        for edit in edits {
            let key_error = |message: String| Failure::Key(edit.key.clone(), message);
            if let Some(c) = unwritable(&edit.key).or_else(|| unwritable(&edit.value.text())) {
                return Err(key_error(format!("XML cannot hold the character {c:?}")));
            }
            let target = target(edit, dialect);
            let wildcard = target.parts[1..].contains(&"*");
            let names = target.parts.iter().copied().filter(|p| *p != "*");
            for name in names.chain(target.attribute.as_deref()) {
                if !is_name(name) {
                    return Err(key_error(format!("{name:?} is not an XML name")));
                }
            }
            let root_name = match target.parts[0] {
                "*" => "config",
                name => name,
            };
            let root = doc.root.get_or_insert_with(|| Element::new(root_name));
            let root_matches = target.parts[0] == "*" || target.parts[0] == root.name;
            // An egg's wildcard anywhere means nothing is created.
            let creates = match dialect {
                Dialect::Egg => !edit.key.contains('*'),
                Dialect::Plan => !wildcard,
            };
            if creates && root_matches {
                let mut el = &mut *root;
                for tag in &target.parts[1..] {
                    if el.child_mut(tag).is_none() {
                        el.children.push(Node::Element(Element::new(tag)));
                    }
                    el = el
                        .child_mut(tag)
                        .ok_or_else(|| key_error("cannot create an element".into()))?;
                }
            }
            let mut found = Vec::new();
            root.find_all(&target.parts, &mut found);
            for el in found {
                // A condition is about the attribute the edit sets, else
                // the element's text.
                let current = match &target.attribute {
                    Some(name) => el
                        .attrs
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone()),
                    None => Some(
                        el.children
                            .iter()
                            .filter_map(|n| match n {
                                Node::Text(t) | Node::CData(t) => Some(t.as_str()),
                                _ => None,
                            })
                            .collect(),
                    ),
                };
                let value = match super::conditioned(
                    edit.when.as_deref(),
                    current.as_deref(),
                    &target.value,
                ) {
                    super::Conditioned::Skip => continue,
                    super::Conditioned::Value => target.value.clone(),
                    super::Conditioned::Replaced(text) => text,
                };
                if let Some(c) = unwritable(&value) {
                    return Err(key_error(format!("XML cannot hold the character {c:?}")));
                }
                match &target.attribute {
                    Some(name) => match el.attrs.iter_mut().find(|(k, _)| k == name) {
                        Some(slot) => slot.1.clone_from(&value),
                        None => el.attrs.push((name.to_owned(), value.clone())),
                    },
                    None => el.set_text(&value),
                }
            }
        }
        write(&doc).map_err(Failure::Document)
    }

    /// Escapes text for XML, carriage returns included (a reader would
    /// turn a raw one into a line feed); in an attribute also quotes, tabs
    /// and line feeds (which a reader would turn into spaces).
    fn escape(text: &str, attribute: bool) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '\r' => out.push_str("&#xD;"),
                '"' if attribute => out.push_str("&quot;"),
                '\n' if attribute => out.push_str("&#xA;"),
                '\t' if attribute => out.push_str("&#x9;"),
                c => out.push(c),
            }
        }
        out
    }

    fn write(doc: &Doc) -> Result<String, String> {
        let mut w = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2);
        let io = |e: std::io::Error| e.to_string();
        // Like Wings (etree), a document is written with a declaration.
        let _ = doc.decl;
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))
            .map_err(io)?;
        for node in &doc.prolog {
            write_node(&mut w, node).map_err(io)?;
        }
        if let Some(root) = &doc.root {
            write_element(&mut w, root).map_err(io)?;
        }
        let mut out = String::from_utf8(w.into_inner()).map_err(|e| e.to_string())?;
        out.push('\n');
        Ok(out)
    }

    fn write_node(w: &mut quick_xml::Writer<Vec<u8>>, node: &Node) -> std::io::Result<()> {
        match node {
            Node::Element(e) => write_element(w, e),
            Node::Text(t) => w.write_event(Event::Text(BytesText::from_escaped(escape(t, false)))),
            Node::Comment(c) => w.write_event(Event::Comment(BytesText::from_escaped(c.as_str()))),
            Node::CData(c) => {
                w.write_event(Event::CData(quick_xml::events::BytesCData::new(c.as_str())))
            }
        }
    }

    fn write_element(w: &mut quick_xml::Writer<Vec<u8>>, e: &Element) -> std::io::Result<()> {
        let mut start = BytesStart::new(e.name.as_str());
        for (k, v) in &e.attrs {
            start.push_attribute(quick_xml::events::attributes::Attribute {
                key: quick_xml::name::QName(k.as_str()),
                value: escape(v, true).into(),
            });
        }
        if e.children.is_empty() {
            return w.write_event(Event::Empty(start));
        }
        w.write_event(Event::Start(start))?;
        for child in &e.children {
            write_node(w, child)?;
        }
        w.write_event(Event::End(BytesEnd::new(e.name.as_str())))
    }
}
