//! Substituting placeholders: in startup lines (shell-quoted) and in config
//! file values (as they are).
//!
//! # Placeholders
//!
//! | Written | Means |
//! |---|---|
//! | `{{NAME}}`, `${NAME}` (startup only) | the value of variable `NAME`, or a built-in: `SERVER_PORT`, `SERVER_IP`, `SERVER_MEMORY` |
//! | `{{server.build.default.port}}`, `{{server.allocations.default.port}}` | the server's main port |
//! | `{{server.build.default.ip}}`, `{{server.allocations.default.ip}}` | its IP |
//! | `{{server.build.memory}}`, `{{server.build.memory_limit}}` | its memory limit in MiB |
//! | `{{server.build.env.X}}`, `{{server.build.environment.X}}`, `{{server.environment.X}}`, `{{env.X}}` | variable `X` (or a built-in) |
//! | `{{server.K}}` | [`Context::server`]`[K]` (anything else the Panel knows) |
//! | `{{config.K}}` | [`Context::config`]`[K]` (node settings, e.g. `docker.interface`) |
//!
//! The aliases are Pelican's upgrade table: Pterodactyl's `server.build.*`
//! names and Pelican's `server.allocations.*`/`server.environment.*` mean
//! the same. A placeholder with nothing behind it renders empty, as both
//! panels render it. Text that is not a placeholder (`{{broken}`) stays.
//!
//! # Quoting in startup lines
//!
//! The startup line is a shell command line, and a variable's value may
//! hold anything a user typed. Substituted values are therefore quoted for
//! the place they land in, so that they are always one literal word and
//! never shell syntax:
//!
//! - outside quotes: a value made only of `A-Z a-z 0-9 _ @ % + = : , . / -`
//!   is written as it is; anything else is wrapped in single quotes, with
//!   each `'` written `'\''`; an empty value is `''`;
//! - inside double quotes: `$`, `` ` ``, `"` and `\` get a backslash;
//! - inside single quotes: each `'` is written `'\''`.
//!
//! The scanner follows quotes, backslashes and `$( … )` / backticks (a
//! command substitution starts unquoted again), so the Forge egg's
//! `$( … printf %s "-jar {{SERVER_JARFILE}}" … )` gets double-quote escaping.
//! `${NAME}` inside single quotes is literal to the shell and is left as it is.

use std::collections::BTreeMap;

/// What placeholders resolve to for one server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Variable values by environment name (see [`Egg::environment`](crate::Egg::environment)).
    pub variables: BTreeMap<String, String>,
    /// The main allocation's IP.
    pub ip: String,
    /// The main allocation's port.
    pub port: u16,
    /// The memory limit in MiB.
    pub memory_mb: u64,
    /// Other `server.*` values, keyed without the `server.` prefix (e.g.
    /// `uuid`, `build.disk`).
    pub server: BTreeMap<String, String>,
    /// `config.*` values (the node's settings), keyed without `config.`.
    pub config: BTreeMap<String, String>,
}

/// Built-in environment names every server has.
const BUILTINS: &[&str] = &["SERVER_PORT", "SERVER_IP", "SERVER_MEMORY"];

/// True if and only if `name` is a built-in variable or a dotted placeholder.
pub(crate) fn is_builtin(name: &str) -> bool {
    BUILTINS.contains(&name) || name.contains('.')
}

impl Context {
    fn env(&self, name: &str) -> Option<String> {
        match name {
            "SERVER_PORT" => Some(self.port.to_string()),
            "SERVER_IP" => Some(self.ip.clone()),
            "SERVER_MEMORY" => Some(self.memory_mb.to_string()),
            _ => self.variables.get(name).cloned(),
        }
    }

    /// What `{{key}}` stands for; `None` when nothing is behind it.
    pub fn lookup(&self, key: &str) -> Option<String> {
        for prefix in [
            "server.build.env.",
            "server.build.environment.",
            "server.environment.",
            "env.",
        ] {
            if let Some(name) = key.strip_prefix(prefix) {
                return self.env(name);
            }
        }
        match key {
            "server.build.default.port" | "server.allocations.default.port" => {
                return Some(self.port.to_string());
            }
            "server.build.default.ip" | "server.allocations.default.ip" => {
                return Some(self.ip.clone());
            }
            "server.build.memory" | "server.build.memory_limit" => {
                return Some(self.memory_mb.to_string());
            }
            _ => {}
        }
        if let Some(rest) = key.strip_prefix("server.") {
            return self.server.get(rest).cloned();
        }
        if let Some(rest) = key.strip_prefix("config.") {
            return self.config.get(rest).cloned();
        }
        self.env(key)
    }
}

/// A placeholder name: `[\w.-]+`, as the panels match it.
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'
}

/// A `{{key}}` at the start of `s`: the key and the length consumed.
fn braces_at(s: &str) -> Option<(&str, usize)> {
    let inner = s.strip_prefix("{{")?;
    let end = inner.find("}}")?;
    let key = &inner[..end];
    (!key.is_empty() && key.chars().all(is_key_char)).then_some((key, end + 4))
}

/// A `${NAME}` at the start of `s`.
fn dollar_at(s: &str) -> Option<(&str, usize)> {
    let inner = s.strip_prefix("${")?;
    let end = inner.find('}')?;
    let key = &inner[..end];
    let ok = !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then_some((key, end + 3))
}

/// The names a startup line or a config value refers to, `{{…}}` and
/// `${…}`, in order (`config.docker.interface` for
/// `{{config.docker.interface}}`).
pub fn referenced_names(command: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (i, _) in command.char_indices() {
        let rest = &command[i..];
        if let Some((key, _)) = braces_at(rest).or_else(|| dollar_at(rest)) {
            names.push(key.to_owned());
        }
    }
    names
}

/// Replaces every `{{key}}` in a config file value with what it stands
/// for, unquoted (config files are not shell); unknown keys render empty.
pub fn render_value(template: &str, ctx: &Context) -> String {
    let mut out = String::with_capacity(template.len());
    let mut i = 0;
    while i < template.len() {
        let rest = &template[i..];
        if let Some((key, len)) = braces_at(rest) {
            out.push_str(&ctx.lookup(key).unwrap_or_default());
            i += len;
        } else {
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Quote {
    None,
    Single,
    Double,
}

/// Renders a startup line: every placeholder replaced by its value, quoted
/// for where it lands (see the module docs), so that no value can run as
/// shell syntax.
pub fn render_startup(command: &str, ctx: &Context) -> String {
    let mut out = String::with_capacity(command.len() + 16);
    // Each entry is the quoting of one nesting level; `$(` and backticks
    // open a level that starts unquoted.
    let mut stack = vec![Quote::None];
    let mut i = 0;
    while i < command.len() {
        let rest = &command[i..];
        let quote = *stack.last().unwrap_or(&Quote::None);
        if let Some((key, len)) = braces_at(rest) {
            out.push_str(&quote_for(&ctx.lookup(key).unwrap_or_default(), quote));
            i += len;
            continue;
        }
        if quote != Quote::Single
            && let Some((key, len)) = dollar_at(rest)
        {
            out.push_str(&quote_for(&ctx.env(key).unwrap_or_default(), quote));
            i += len;
            continue;
        }
        let c = rest.chars().next().unwrap_or_default();
        let mut step = c.len_utf8();
        match (quote, c) {
            (Quote::None | Quote::Double, '\\') => {
                // A backslash keeps the next character literal.
                if let Some(next) = rest[1..].chars().next() {
                    step += next.len_utf8();
                }
            }
            (Quote::None, '\'') => *stack.last_mut().unwrap_or(&mut Quote::None) = Quote::Single,
            (Quote::Single, '\'') => *stack.last_mut().unwrap_or(&mut Quote::None) = Quote::None,
            (Quote::None, '"') => *stack.last_mut().unwrap_or(&mut Quote::None) = Quote::Double,
            (Quote::Double, '"') => *stack.last_mut().unwrap_or(&mut Quote::None) = Quote::None,
            (Quote::None | Quote::Double, '$') if rest.starts_with("$(") => {
                stack.push(Quote::None);
                step = 2;
            }
            (Quote::None, ')') if stack.len() > 1 => {
                stack.pop();
            }
            (Quote::None | Quote::Double, '`') => {
                if quote == Quote::None && stack.len() > 1 {
                    stack.pop();
                } else {
                    stack.push(Quote::None);
                }
            }
            _ => {}
        }
        out.push_str(&rest[..step]);
        i += step;
    }
    out
}

/// Quotes `value` so that, where `quote` says it lands, the shell reads it
/// as literal text.
fn quote_for(value: &str, quote: Quote) -> String {
    match quote {
        Quote::Single => value.replace('\'', r"'\''"),
        Quote::Double => {
            let mut out = String::with_capacity(value.len());
            for c in value.chars() {
                if matches!(c, '$' | '`' | '"' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        }
        Quote::None => shell_word(value),
    }
}

/// `value` as one literal shell word.
pub fn shell_word(value: &str) -> String {
    let safe = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(c, '_' | '@' | '%' | '+' | '=' | ':' | ',' | '.' | '/' | '-')
    };
    if !value.is_empty() && value.chars().all(safe) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}
