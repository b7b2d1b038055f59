//! Laravel validation rules, the subset eggs use, with Laravel's meaning.
//!
//! A variable's value is always a string (it becomes an environment
//! variable). The semantics follow Laravel's validator as Pterodactyl and
//! Pelican run it on a server's variables:
//!
//! - **Empty values.** A value that is empty after trimming fails `required`
//!   and passes every other rule: Laravel runs only "implicit" rules
//!   (`required`, `present`, …) on an empty string. So `nullable` changes
//!   nothing here; it is accepted and kept.
//! - **Sizes.** `max`, `min`, `between` and `size` compare the *number* when
//!   the variable also has `numeric`, `integer` or `int` and the value is
//!   numeric, and the *length in characters* otherwise.
//! - `numeric` is PHP's `is_numeric` (optional sign, decimals, exponent,
//!   surrounding whitespace); `integer` (and its alias `int`) is PHP's
//!   `FILTER_VALIDATE_INT` (optional sign, no leading zeros, 64 bits);
//!   `boolean` accepts `0` and `1` (the strings Laravel accepts);
//!   `digits_between:a,b` wants only ASCII digits, a to b of them;
//!   `alpha_num` letters and digits of any script, `alpha_dash` those plus
//!   `-` and `_`; `in:a,b` one of the listed values (parameters are
//!   comma-separated with double quotes for commas, as `str_getcsv`);
//!   `url` an absolute URL with a host; `string` and `present` always pass.
//! - `regex:/pattern/flags` is a PCRE-style delimited pattern (flags `i`,
//!   `m`, `s`, `x`; `u` is accepted), compiled with `regex-lite`: its `\w`,
//!   `\d` and `\s` are ASCII, as PCRE's without `/u`; matching takes linear
//!   time whatever a user types; it compiles in microseconds where `regex`
//!   takes about a millisecond per Unicode class (most of an import's time
//!   before); a pattern that needs PCRE-only features (look-around,
//!   back-references) is refused at import, by rule.
//!   As in Laravel, a pipe-separated rule string is split on every `|`, so a
//!   pattern holding `|` must be written in the list form.
//! - `size:n` is supported too: the Pterodactyl Source-engine eggs use it.
//!
//! Any other rule name is refused at import, by name.

use std::fmt;

use crate::error::{Error, Result};

/// One parsed rule of a variable, e.g. `between:1,256`.
#[derive(Debug, Clone)]
pub struct Rule {
    text: String,
    kind: RuleKind,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Debug, Clone)]
enum RuleKind {
    Required,
    Nullable,
    Present,
    String,
    Numeric,
    Integer,
    Boolean,
    AlphaNum,
    AlphaDash,
    Url,
    Max(f64),
    Min(f64),
    Size(f64),
    Between(f64, f64),
    DigitsBetween(usize, usize),
    In(Vec<String>),
    Regex(regex_lite::Regex),
}

/// The rule names this crate knows, in the order the docs list them.
pub const KNOWN_RULES: &[&str] = &[
    "required",
    "string",
    "max",
    "nullable",
    "in",
    "numeric",
    "integer",
    "between",
    "boolean",
    "digits_between",
    "min",
    "alpha_dash",
    "alpha_num",
    "regex",
    "present",
    "int",
    "url",
    "size",
];

impl Rule {
    /// Parses one rule, e.g. `max:20`.
    ///
    /// # Errors
    ///
    /// An unknown rule name, or parameters the rule cannot use; the message
    /// names the rule.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let (name, params) = match text.split_once(':') {
            Some((name, params)) => (name.trim(), Some(params)),
            None => (text.trim(), None),
        };
        let no_params = |kind: RuleKind| match params {
            None => Ok(kind),
            Some(_) => Err(format!("rule {name:?} takes no parameters")),
        };
        let numbers = |want: usize| -> Result<Vec<f64>, String> {
            let list: Vec<&str> = params.map(|p| p.split(',').collect()).unwrap_or_default();
            if list.len() != want {
                return Err(format!(
                    "rule {name:?} needs {want} number(s), got {text:?}"
                ));
            }
            list.iter()
                .map(|p| {
                    p.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|n| n.is_finite())
                        .ok_or_else(|| format!("rule {name:?} needs a number, got {p:?}"))
                })
                .collect()
        };
        let kind = match name {
            "required" => no_params(RuleKind::Required)?,
            "nullable" => no_params(RuleKind::Nullable)?,
            "present" => no_params(RuleKind::Present)?,
            "string" => no_params(RuleKind::String)?,
            "numeric" => no_params(RuleKind::Numeric)?,
            "integer" | "int" => no_params(RuleKind::Integer)?,
            "boolean" => no_params(RuleKind::Boolean)?,
            "alpha_num" => no_params(RuleKind::AlphaNum)?,
            "alpha_dash" => no_params(RuleKind::AlphaDash)?,
            "url" => no_params(RuleKind::Url)?,
            "max" => RuleKind::Max(numbers(1)?[0]),
            "min" => RuleKind::Min(numbers(1)?[0]),
            "size" => RuleKind::Size(numbers(1)?[0]),
            "between" => {
                let n = numbers(2)?;
                RuleKind::Between(n[0], n[1])
            }
            "digits_between" => {
                let n = numbers(2)?;
                let whole = |x: f64| {
                    (x >= 0.0 && x.fract() == 0.0)
                        .then_some(x as usize)
                        .ok_or_else(|| format!("rule {name:?} needs whole numbers, got {text:?}"))
                };
                RuleKind::DigitsBetween(whole(n[0])?, whole(n[1])?)
            }
            "in" => RuleKind::In(csv(params.unwrap_or(""))),
            "regex" => RuleKind::Regex(pcre(params.unwrap_or(""))?),
            other => return Err(format!("unknown rule {other:?}")),
        };
        Ok(Rule {
            text: text.to_owned(),
            kind,
        })
    }

    /// The rule as the egg writes it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The rule's name, e.g. `max` for `max:20`.
    pub fn name(&self) -> &str {
        self.text.split(':').next().unwrap_or("").trim()
    }

    /// The values an `in` rule allows, in order; `None` for other rules.
    ///
    /// ```
    /// let rule = cap_egg::Rule::parse("in:a,\"b,c\"").expect("a rule");
    /// assert_eq!(rule.choices(), Some(&["a".to_owned(), "b,c".to_owned()][..]));
    /// ```
    pub fn choices(&self) -> Option<&[String]> {
        match &self.kind {
            RuleKind::In(options) => Some(options),
            _ => None,
        }
    }

    /// The inclusive bounds of a size rule (`max`, `min`, `between`,
    /// `size`); `None` for other rules. Whether they bound a number or a
    /// length in characters depends on the variable's other rules (see
    /// the module docs).
    ///
    /// ```
    /// let rule = cap_egg::Rule::parse("between:1,64").expect("a rule");
    /// assert_eq!(rule.size_bounds(), Some((Some(1.0), Some(64.0))));
    /// ```
    pub fn size_bounds(&self) -> Option<(Option<f64>, Option<f64>)> {
        match self.kind {
            RuleKind::Max(n) => Some((None, Some(n))),
            RuleKind::Min(n) => Some((Some(n), None)),
            RuleKind::Size(n) => Some((Some(n), Some(n))),
            RuleKind::Between(lo, hi) => Some((Some(lo), Some(hi))),
            _ => None,
        }
    }

    /// The inclusive digit counts of a `digits_between` rule; `None` for
    /// other rules.
    ///
    /// ```
    /// let rule = cap_egg::Rule::parse("digits_between:4,6").expect("a rule");
    /// assert_eq!(rule.digits(), Some((4, 6)));
    /// ```
    pub fn digits(&self) -> Option<(usize, usize)> {
        match self.kind {
            RuleKind::DigitsBetween(lo, hi) => Some((lo, hi)),
            _ => None,
        }
    }

    fn is_numeric_rule(&self) -> bool {
        matches!(self.kind, RuleKind::Numeric | RuleKind::Integer)
    }
}

/// A variable's rules, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    /// Parses rules from their parts (a pipe string already split, or the
    /// list form). Empty parts are skipped, as Laravel skips them.
    ///
    /// # Errors
    ///
    /// The first rule that cannot be parsed, with its message.
    pub fn parse<'a>(parts: impl IntoIterator<Item = &'a str>) -> Result<Rules, String> {
        let rules = parts
            .into_iter()
            .filter(|p| !p.trim().is_empty())
            .map(Rule::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Rules { rules })
    }

    /// The rules in order.
    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter()
    }

    /// True if and only if there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True if and only if the rules include `required`.
    pub fn is_required(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.kind, RuleKind::Required))
    }

    /// The rules joined with `|`, Pterodactyl's string form.
    pub fn to_pipe_string(&self) -> String {
        self.rules
            .iter()
            .map(Rule::as_str)
            .collect::<Vec<_>>()
            .join("|")
    }

    /// Checks `value` against every rule.
    ///
    /// # Errors
    ///
    /// The first rule the value breaks, and why, e.g. `breaks "max:20": longer than 20 characters`.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let numeric_context = self.rules.iter().any(Rule::is_numeric_rule);
        let empty = value.trim().is_empty();
        for rule in &self.rules {
            if empty {
                if matches!(rule.kind, RuleKind::Required) {
                    return Err(format!("breaks {:?}: a value is required", rule.text));
                }
                continue;
            }
            if let Err(why) = check_one(&rule.kind, value, numeric_context) {
                return Err(format!("breaks {:?}: {why}", rule.text));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_pipe_string())
    }
}

fn check_one(kind: &RuleKind, value: &str, numeric_context: bool) -> Result<(), String> {
    let size = || -> (f64, &'static str) {
        match php_numeric(value) {
            Some(n) if numeric_context => (n, ""),
            _ => (value.chars().count() as f64, " characters"),
        }
    };
    let fail = |ok: bool, why: String| if ok { Ok(()) } else { Err(why) };
    match kind {
        RuleKind::Required | RuleKind::Nullable | RuleKind::Present | RuleKind::String => Ok(()),
        RuleKind::Numeric => fail(php_numeric(value).is_some(), "not a number".into()),
        RuleKind::Integer => fail(php_integer(value), "not an integer".into()),
        RuleKind::Boolean => fail(matches!(value, "0" | "1"), "not 0 or 1".into()),
        RuleKind::AlphaNum => fail(
            value.chars().all(char::is_alphanumeric),
            "not only letters and digits".into(),
        ),
        RuleKind::AlphaDash => fail(
            value
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_'),
            "not only letters, digits, dashes and underscores".into(),
        ),
        RuleKind::Url => fail(
            url::Url::parse(value).is_ok_and(|u| u.has_host()),
            "not a URL".into(),
        ),
        RuleKind::Max(max) => {
            let (n, unit) = size();
            fail(n <= *max, format!("more than {max}{unit}"))
        }
        RuleKind::Min(min) => {
            let (n, unit) = size();
            fail(n >= *min, format!("less than {min}{unit}"))
        }
        RuleKind::Size(want) => {
            let (n, unit) = size();
            fail(n == *want, format!("not exactly {want}{unit}"))
        }
        RuleKind::Between(lo, hi) => {
            let (n, unit) = size();
            fail(
                *lo <= n && n <= *hi,
                format!("not between {lo} and {hi}{unit}"),
            )
        }
        RuleKind::DigitsBetween(lo, hi) => fail(
            value.bytes().all(|b| b.is_ascii_digit()) && (*lo..=*hi).contains(&value.len()),
            format!("not {lo} to {hi} digits"),
        ),
        RuleKind::In(options) => fail(
            options.iter().any(|o| o == value),
            format!("not one of {}", options.join(", ")),
        ),
        RuleKind::Regex(re) => fail(re.is_match(value), "does not match".into()),
    }
}

/// PHP's `is_numeric`: leading and trailing whitespace, a sign, digits with
/// an optional fraction, an optional exponent. Hexadecimal is not numeric.
pub(crate) fn php_numeric(value: &str) -> Option<f64> {
    let t = value.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'));
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() && frac.is_empty() || !digits(int) || !digits(frac) {
        return None;
    }
    if let Some(e) = exponent {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        if e.is_empty() || !digits(e) {
            return None;
        }
    }
    t.parse::<f64>().ok()
}

/// PHP's `filter_var($v, FILTER_VALIDATE_INT)`: surrounding whitespace, a
/// sign, no leading zeros, within 64 bits.
fn php_integer(value: &str) -> bool {
    let t = value.trim();
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    !body.is_empty()
        && body.bytes().all(|b| b.is_ascii_digit())
        && (body == "0" || !body.starts_with('0'))
        && t.parse::<i64>().is_ok()
}

/// `str_getcsv` on a rule's parameters: commas separate, double quotes
/// group, a doubled quote inside quotes is one quote.
fn csv(params: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = params.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    out.push(field);
    out
}

/// Compiles a PCRE-style delimited pattern, `/…/flags`.
fn pcre(param: &str) -> Result<regex_lite::Regex, String> {
    let mut chars = param.chars();
    let open = chars
        .next()
        .ok_or_else(|| "rule \"regex\" needs a pattern".to_owned())?;
    if open.is_alphanumeric() || open == '\\' || open.is_whitespace() {
        return Err(format!("rule \"regex\": {param:?} has no delimiter"));
    }
    let close = match open {
        '(' => ')',
        '[' => ']',
        '{' => '}',
        '<' => '>',
        c => c,
    };
    let rest = &param[open.len_utf8()..];
    let end = rest
        .rfind(close)
        .ok_or_else(|| format!("rule \"regex\": {param:?} has no closing delimiter"))?;
    let (pattern, flags) = (&rest[..end], &rest[end + close.len_utf8()..]);
    let mut builder = regex_lite::RegexBuilder::new(pattern);
    for flag in flags.chars() {
        match flag {
            'i' => {
                builder.case_insensitive(true);
            }
            'm' => {
                builder.multi_line(true);
            }
            's' => {
                builder.dot_matches_new_line(true);
            }
            'x' => {
                builder.ignore_whitespace(true);
            }
            'u' => {}
            other => return Err(format!("rule \"regex\": unsupported flag {other:?}")),
        }
    }
    builder
        .build()
        .map_err(|e| format!("rule \"regex\": pattern {pattern:?} is not supported: {e}"))
}

/// Turns a field path and rule message into the crate's error.
pub(crate) fn rule_error(path: String, message: String) -> Error {
    Error::field(path, message)
}
