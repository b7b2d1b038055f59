//! Rewriting a server's config files from an egg's `config.files`, with
//! the behaviour of Wings' `parser` package.
//!
//! [`apply`] takes a file's current bytes (or `None` when it does not
//! exist), the egg's entry and a [`Context`], and returns the new bytes.
//! Each `find` entry becomes one or more replacements, in egg order: a
//! plain value is written where its key matches; an object
//! `{ if_value: replace_with }` writes only where the current value is
//! `if_value`, or, for `regex:…`, matches it (`$1`-style groups in
//! `replace_with` refer to the match). `{{…}}` placeholders in values are
//! substituted first ([`render_value`](crate::render_value)); `null` writes
//! an empty string.
//!
//! | Parser | Keys | Writes |
//! |---|---|---|
//! | `file` | a line prefix | each line starting with a key is replaced whole by the value; a missing file stays empty (as in Wings) |
//! | `properties` | a property name | the leading comment block, then every property as `key=value` with Go's ASCII escaping (as Wings); a missing key is appended |
//! | `ini` | `section.key` (the first dot outside `[…]` splits), or `key` before any section | the file line by line: a key's value is replaced in place, keeping its spacing and the comments; a missing key is added at the end of its section, a missing section at the end |
//! | `json`, `yaml` | a dotted path; `a.*.b` for every child of `a`; `a[0].b` for a list element (created when it is the first) | the whole document (JSON with four spaces; YAML without its comments, as Wings) |
//! | `xml` | a dotted path from the root element, `*` for any element; a value `[attr='v']` sets an attribute | the document re-indented by two spaces; missing elements are created |
//!
//! For `json` and `yaml`, a value that is a whole integer is written as a
//! number, and a `replace_with` that is a boolean as a boolean, as Wings.
//!
//! Where Wings has a bug this follows its evident intent and says so: a
//! `regex:` condition needs an existing value (Wings' code inverts its own
//! comment); a plain `if_value` compares the value at the path (Wings
//! compares the whole document); a `file` line matching two keys takes the
//! first (Wings writes both on one line); a missing JSON file starts as
//! `{}` (Wings fails). For `ini`, Wings reformats the whole file through a
//! library; this editor keeps the file as it is except the changed lines,
//! and writes a value holding a line break in `"""` quotes, as go-ini does.

use crate::error::{Error, Result};
use crate::model::{ConfigFile, FindValue, Parser};
use crate::render::{Context, render_value};
use crate::tree::Tree;

/// One resolved replacement.
struct Replacement {
    key: String,
    if_value: Option<String>,
    value: String,
    boolean: bool,
}

fn replacements(file: &ConfigFile, ctx: &Context) -> Vec<Replacement> {
    let resolve = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => (render_value(s, ctx), false),
        serde_json::Value::Bool(b) => (b.to_string(), true),
        serde_json::Value::Null => (String::new(), false),
        other => (other.to_string(), false),
    };
    let mut out = Vec::new();
    for find in &file.find {
        match &find.value {
            FindValue::Set(v) => {
                let (value, boolean) = resolve(v);
                out.push(Replacement {
                    key: find.key.clone(),
                    if_value: None,
                    value,
                    boolean,
                });
            }
            FindValue::When(pairs) => {
                for (if_value, v) in pairs {
                    let (value, boolean) = resolve(v);
                    out.push(Replacement {
                        key: find.key.clone(),
                        if_value: Some(if_value.clone()),
                        value,
                        boolean,
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
/// [`Error::ConfigFile`] when the current contents cannot be read with the
/// file's parser (not UTF-8, not JSON/YAML/XML), or a path cannot be set
/// (a `json`/`yaml` path runs through a value that is not an object).
pub fn apply(file: &ConfigFile, current: Option<&[u8]>, ctx: &Context) -> Result<Vec<u8>> {
    let err = |message: String| Error::ConfigFile {
        file: file.path.clone(),
        parser: file.parser.as_str(),
        message,
    };
    let text = std::str::from_utf8(current.unwrap_or_default())
        .map_err(|e| err(format!("not UTF-8: {e}")))?;
    let reps = replacements(file, ctx);
    let out = match file.parser {
        Parser::File => apply_file(text, &reps),
        Parser::Properties => apply_properties(text, &reps),
        Parser::Ini => apply_ini(text, &reps),
        Parser::Json => {
            let mut doc = if text.trim().is_empty() {
                Tree::Object(Vec::new())
            } else {
                serde_json::from_str(text).map_err(|e| err(e.to_string()))?
            };
            apply_paths(&mut doc, &reps).map_err(err)?;
            doc.to_json_pretty() + "\n"
        }
        Parser::Yaml => {
            let mut doc =
                match serde_yaml_ng::from_str::<Tree>(text).map_err(|e| err(e.to_string()))? {
                    Tree::Null => Tree::Object(Vec::new()),
                    doc => doc,
                };
            apply_paths(&mut doc, &reps).map_err(err)?;
            serde_yaml_ng::to_string(&doc).map_err(|e| err(e.to_string()))?
        }
        Parser::Xml => xml::apply(text, &reps).map_err(err)?,
    };
    Ok(out.into_bytes())
}

/// Lines as Go's `bufio.Scanner` gives them: split on `\n`, a trailing
/// `\r` dropped, no empty last line after a final newline.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    body.split('\n')
        .filter(move |_| !text.is_empty())
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
}

fn apply_file(text: &str, reps: &[Replacement]) -> String {
    let mut out = String::with_capacity(text.len());
    for line in lines(text) {
        match reps.iter().find(|r| line.starts_with(r.key.as_str())) {
            Some(r) => out.push_str(&r.value),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

// --- properties --------------------------------------------------------

fn apply_properties(text: &str, reps: &[Replacement]) -> String {
    let mut out = String::new();
    for line in lines(text) {
        if !line.is_empty() && !line.starts_with('#') {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    let mut props = parse_properties(text);
    for r in reps {
        let current = props
            .iter()
            .find(|(k, _)| *k == r.key)
            .map(|(_, v)| v.as_str());
        if let Some(if_value) = &r.if_value
            && current != Some(if_value.as_str())
        {
            continue;
        }
        match props.iter_mut().find(|(k, _)| *k == r.key) {
            Some(slot) => slot.1 = r.value.clone(),
            None => props.push((r.key.clone(), r.value.clone())),
        }
    }
    for (k, v) in props {
        out.push_str(&k);
        out.push('=');
        out.push_str(&go_quote_ascii(&v));
        out.push('\n');
    }
    out
}

/// Java properties: `#`/`!` comments, `\` line continuations, the key
/// ending at an unescaped `=`, `:` or whitespace, escapes resolved.
fn parse_properties(text: &str) -> Vec<(String, String)> {
    let mut logical = Vec::new();
    let mut pending = String::new();
    let mut continuing = false;
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let line = if continuing { raw.trim_start() } else { raw };
        if !continuing {
            let t = line.trim_start();
            if t.is_empty() || t.starts_with('#') || t.starts_with('!') {
                continue;
            }
        }
        let trailing = line.len() - line.trim_end_matches('\\').len();
        if trailing % 2 == 1 {
            pending.push_str(&line[..line.len() - 1]);
            continuing = true;
        } else {
            pending.push_str(line);
            logical.push(std::mem::take(&mut pending));
            continuing = false;
        }
    }
    if !pending.is_empty() {
        logical.push(pending);
    }
    let mut props: Vec<(String, String)> = Vec::new();
    for line in logical {
        let line = line.trim_start();
        let mut key_end = line.len();
        let mut escaped = false;
        for (i, c) in line.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if matches!(c, '=' | ':' | ' ' | '\t' | '\x0c') {
                key_end = i;
                break;
            }
        }
        let key = unescape_properties(&line[..key_end]);
        let mut rest = line[key_end..].trim_start_matches([' ', '\t', '\x0c']);
        if let Some(r) = rest.strip_prefix(['=', ':']) {
            rest = r.trim_start_matches([' ', '\t', '\x0c']);
        }
        let value = unescape_properties(rest);
        match props.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => props.push((key, value)),
        }
    }
    props
}

fn unescape_properties(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push_str(&hex),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Go's `strconv.QuoteToASCII` without the surrounding quotes: what Wings
/// writes for a property's value.
fn go_quote_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            ' '..='~' => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out
}

// --- ini -----------------------------------------------------------------

/// Splits an `ini` key as Wings does: the first `.` outside brackets
/// separates the section from the key; brackets are dropped.
fn ini_path(key: &str) -> (String, String) {
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

fn ini_value(value: &str) -> String {
    if value.contains(['\n', '\r']) {
        format!("\"\"\"{value}\"\"\"")
    } else {
        value.to_owned()
    }
}

fn apply_ini(text: &str, reps: &[Replacement]) -> String {
    let mut lines: Vec<String> = lines(text).map(str::to_owned).collect();
    for r in reps {
        let (section, key) = ini_path(&r.key);
        // The section's span: from after its header to before the next header.
        let mut start = 0;
        let mut found_section = section.is_empty();
        if !section.is_empty() {
            for (i, line) in lines.iter().enumerate() {
                let t = line.trim();
                if t.starts_with('[') && t.ends_with(']') && t[1..t.len() - 1].trim() == section {
                    start = i + 1;
                    found_section = true;
                    break;
                }
            }
        }
        if !found_section {
            if r.if_value.is_some() {
                continue;
            }
            if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                lines.push(String::new());
            }
            lines.push(format!("[{section}]"));
            lines.push(format!("{key} = {}", ini_value(&r.value)));
            continue;
        }
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
                let current = after.trim();
                if let Some(if_value) = &r.if_value
                    && current != if_value
                {
                    continue;
                }
                let spacing = &after[..after.len() - after.trim_start().len()];
                lines[i] = format!("{}{spacing}{}", &line[..=sep], ini_value(&r.value));
            }
            None if r.if_value.is_some() => {}
            None => {
                let at = (start..end)
                    .rev()
                    .find(|&i| !lines[i].trim().is_empty())
                    .map_or(start, |i| i + 1);
                lines.insert(at, format!("{key} = {}", ini_value(&r.value)));
            }
        }
    }
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

// --- json and yaml -------------------------------------------------------

/// Wings' `getKeyValue`: a boolean `replace_with` stays boolean, a whole
/// number becomes a number, anything else a string.
fn typed(value: &str, boolean: bool) -> Tree {
    if boolean {
        return Tree::Bool(value == "true" || value == "1");
    }
    match value.parse::<i64>() {
        Ok(n) => Tree::Number(n.into()),
        Err(_) => Tree::String(value.to_owned()),
    }
}

fn apply_paths(doc: &mut Tree, reps: &[Replacement]) -> Result<(), String> {
    for r in reps {
        if let Some(star) = r.key.find(".*") {
            let parent = r.key[..star].trim_matches('.');
            let rest = r.key[star + 2..].trim_matches('.');
            let Some(node) = get_path_mut(doc, parent) else {
                continue;
            };
            let children: Vec<&mut Tree> = match node {
                Tree::Object(pairs) => pairs.iter_mut().map(|(_, v)| v).collect(),
                Tree::Array(items) => items.iter_mut().collect(),
                _ => Vec::new(),
            };
            for child in children {
                set_at(child, rest, r)?;
            }
            continue;
        }
        set_at(doc, &r.key, r)?;
    }
    Ok(())
}

fn scalar_text(tree: &Tree) -> String {
    match tree {
        Tree::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// Applies one replacement at `path` below `node`, honouring its condition.
fn set_at(node: &mut Tree, path: &str, r: &Replacement) -> Result<(), String> {
    let current = get_path_mut(node, path).map(|t| scalar_text(t));
    let value = match (&r.if_value, current) {
        (None, _) => typed(&r.value, r.boolean),
        (Some(cond), current) if cond.starts_with("regex:") => {
            let Some(current) = current else {
                return Ok(());
            };
            let re = regex::Regex::new(&cond["regex:".len()..]).map_err(|e| e.to_string())?;
            if !re.is_match(&current) {
                return Ok(());
            }
            Tree::String(re.replace_all(&current, r.value.as_str()).into_owned())
        }
        (Some(cond), Some(current)) if *cond != current => return Ok(()),
        (Some(_), _) => typed(&r.value, r.boolean),
    };
    if path.is_empty() {
        *node = value;
        return Ok(());
    }
    set_path(node, path, value)
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

fn get_path_mut<'a>(mut node: &'a mut Tree, path: &str) -> Option<&'a mut Tree> {
    for seg in segments(path) {
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

fn set_path(node: &mut Tree, path: &str, value: Tree) -> Result<(), String> {
    let segs = segments(path);
    let mut node = node;
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        let (name, index) = match indexed(seg) {
            Some((name, index)) => (name, Some(index)),
            None => (*seg, None),
        };
        let array_index = match (&*node, index) {
            (Tree::Array(items), None) => name.parse::<usize>().ok().filter(|n| *n < items.len()),
            _ => None,
        };
        if let Some(n) = array_index {
            let Tree::Array(items) = node else {
                return Err(format!("{path}: {name:?} is not a list"));
            };
            if last {
                items[n] = value;
                return Ok(());
            }
            node = &mut items[n];
            continue;
        }
        let Tree::Object(pairs) = node else {
            return Err(format!(
                "{path}: {name:?} is inside a value that is not an object"
            ));
        };
        if !pairs.iter().any(|(k, _)| k == name) {
            let fresh = match index {
                Some(_) => Tree::Array(Vec::new()),
                None => Tree::Object(Vec::new()),
            };
            pairs.push((name.to_owned(), fresh));
        }
        let child = pairs
            .iter_mut()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .ok_or_else(|| format!("{path}: cannot create {name:?}"))?;
        let child = match index {
            None => child,
            Some(index) => {
                if !matches!(child, Tree::Array(_)) {
                    if index != 0 {
                        return Err(format!("{path}: {name:?} is not a list"));
                    }
                    *child = Tree::Array(Vec::new());
                }
                let Tree::Array(items) = child else {
                    return Err(format!("{path}: {name:?} is not a list"));
                };
                if items.is_empty() && index == 0 {
                    items.push(if last {
                        Tree::Null
                    } else {
                        Tree::Object(Vec::new())
                    });
                }
                items
                    .get_mut(index)
                    .ok_or_else(|| format!("{path}: {name:?} has no element {index}"))?
            }
        };
        if last {
            *child = value;
            return Ok(());
        }
        if matches!(child, Tree::Null) {
            *child = Tree::Object(Vec::new());
        }
        node = child;
    }
    Ok(())
}

// --- xml -----------------------------------------------------------------

mod xml {
    //! A small XML tree, enough to set elements and attributes and write
    //! the document back indented.

    use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

    use super::Replacement;

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
        let push = |doc: &mut Doc, stack: &mut Vec<Element>, node: Node| match stack.last_mut() {
            Some(parent) => {
                // Adjacent text (split by entity references) joins up.
                if let (Node::Text(t), Some(Node::Text(prev))) = (&node, parent.children.last_mut())
                {
                    prev.push_str(t);
                } else {
                    parent.children.push(node);
                }
            }
            None => match node {
                Node::Element(e) => doc.root = Some(e),
                other => doc.prolog.push(other),
            },
        };
        loop {
            let event = reader.read_event().map_err(|e| e.to_string())?;
            match event {
                Event::Decl(_) => doc.decl = true,
                Event::Start(s) => stack.push(element(&s)?),
                Event::Empty(s) => {
                    let e = element(&s)?;
                    push(&mut doc, &mut stack, Node::Element(e));
                }
                Event::End(_) => {
                    let e = stack.pop().ok_or("an end tag without its start")?;
                    push(&mut doc, &mut stack, Node::Element(e));
                }
                Event::Text(t) => {
                    let text = quick_xml::escape::unescape(&t.into_inner())
                        .map_err(|e| e.to_string())?
                        .into_owned();
                    if !text.is_empty() {
                        push(&mut doc, &mut stack, Node::Text(text));
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
                    push(&mut doc, &mut stack, Node::Text(text));
                }
                Event::CData(c) => push(
                    &mut doc,
                    &mut stack,
                    Node::CData(c.into_inner().into_owned()),
                ),
                Event::Comment(c) => push(
                    &mut doc,
                    &mut stack,
                    Node::Comment(c.into_inner().into_owned()),
                ),
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

    /// `[name='value']`: an attribute to set.
    fn attribute(value: &str) -> Option<(&str, &str)> {
        let inner = value.strip_prefix('[')?.strip_suffix("']")?;
        let (name, v) = inner.split_once("='")?;
        (!name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_'))
            .then_some((name, v))
    }

    pub(super) fn apply(text: &str, reps: &[Replacement]) -> Result<String, String> {
        let mut doc = parse(text)?;
        for r in reps {
            let parts: Vec<&str> = r.key.split('.').collect();
            let root = doc.root.get_or_insert_with(|| Element::new(parts[0]));
            if !r.key.contains('*') && parts[0] == root.name {
                let mut el = &mut *root;
                for tag in &parts[1..] {
                    if el.child_mut(tag).is_none() {
                        el.children.push(Node::Element(Element::new(tag)));
                    }
                    el = el.child_mut(tag).ok_or("cannot create an element")?;
                }
            }
            let mut found = Vec::new();
            root.find_all(&parts, &mut found);
            for el in found {
                if let Some(if_value) = &r.if_value {
                    let current: String = el
                        .children
                        .iter()
                        .filter_map(|n| match n {
                            Node::Text(t) | Node::CData(t) => Some(t.as_str()),
                            _ => None,
                        })
                        .collect();
                    if current != *if_value {
                        continue;
                    }
                }
                match attribute(&r.value) {
                    Some((name, value)) => match el.attrs.iter_mut().find(|(k, _)| k == name) {
                        Some(slot) => slot.1 = value.to_owned(),
                        None => el.attrs.push((name.to_owned(), value.to_owned())),
                    },
                    None => el.set_text(&r.value),
                }
            }
        }
        write(&doc)
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
            Node::Text(t) => w.write_event(Event::Text(BytesText::new(t))),
            Node::Comment(c) => w.write_event(Event::Comment(BytesText::from_escaped(c.as_str()))),
            Node::CData(c) => {
                w.write_event(Event::CData(quick_xml::events::BytesCData::new(c.as_str())))
            }
        }
    }

    fn write_element(w: &mut quick_xml::Writer<Vec<u8>>, e: &Element) -> std::io::Result<()> {
        let mut start = BytesStart::new(e.name.as_str());
        for (k, v) in &e.attrs {
            start.push_attribute((k.as_str(), v.as_str()));
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
