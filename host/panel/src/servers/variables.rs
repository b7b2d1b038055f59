//! Checking a server's game variables against what its game-type plugin
//! declares in `describe`: each variable's type (`string`, `integer`,
//! `boolean`, `choice`) and rules (`required`, `min-length`, `max-length`,
//! `min`, `max`, `pattern`, `one-of`), plus who may change it
//! (`user-editable`).
//!
//! The host checks these itself before asking the plugin's `validate`, as
//! the WIT contract promises, so plugins receive only well-typed values.
//! Problems name the field `variables.<KEY>`.

use std::collections::BTreeMap;

use cap_runtime::api::{ValidationRule, Variable, VariableType};

use super::FieldProblem;

/// Longest variable value, characters.
pub const MAX_VALUE_LEN: usize = 8192;
/// Largest compiled `pattern` rule, bytes.
const MAX_REGEX_BYTES: usize = 1 << 20;

fn field(key: &str) -> String {
    format!("variables.{key}")
}

/// Resolves and checks variables.
///
/// `given` are the values the caller sent; `current` the server's values
/// so far (for an update; empty for a creation). Each declared variable
/// takes the given value, else the current one, else its default; a
/// variable with none of these is left out. `privileged` callers (server
/// administrators) may set variables that are not `user-editable`.
///
/// # Errors
///
/// Every problem found, one per field at most.
pub fn resolve(
    declared: &[Variable],
    given: &BTreeMap<String, String>,
    current: &BTreeMap<String, String>,
    privileged: bool,
) -> Result<BTreeMap<String, String>, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    for key in given.keys() {
        if !declared.iter().any(|v| &v.key == key) {
            problems.push(FieldProblem::new(
                field(key),
                "is not a variable of this game",
            ));
        }
    }
    let mut resolved = BTreeMap::new();
    for variable in declared {
        let key = &variable.key;
        let fallback = current
            .get(key)
            .cloned()
            .or_else(|| variable.default_value.clone());
        let value = match given.get(key) {
            Some(value) => {
                if !variable.user_editable && !privileged && Some(value) != fallback.as_ref() {
                    problems.push(FieldProblem::new(
                        field(key),
                        "may be changed by an administrator only",
                    ));
                    continue;
                }
                Some(value.clone())
            }
            None => fallback,
        };
        match check(variable, value.as_deref()) {
            Ok(()) => {
                if let Some(value) = value {
                    resolved.insert(key.clone(), value);
                }
            }
            Err(message) => problems.push(FieldProblem::new(field(key), message)),
        }
    }
    if problems.is_empty() {
        Ok(resolved)
    } else {
        Err(problems)
    }
}

/// The values of the variables users may see (`user-viewable`); the
/// others, and values of variables the game no longer declares, are left
/// out.
pub fn user_viewable(
    declared: &[Variable],
    values: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    values
        .iter()
        .filter(|(key, _)| declared.iter().any(|v| &v.key == *key && v.user_viewable))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Checks one value (`None`: the variable has no value) against its
/// variable's type and rules; the first problem found.
fn check(variable: &Variable, value: Option<&str>) -> Result<(), String> {
    let required = variable
        .rules
        .iter()
        .any(|r| matches!(r, ValidationRule::Required));
    let Some(value) = value else {
        return if required {
            Err("is required".into())
        } else {
            Ok(())
        };
    };
    if value.is_empty() {
        return if required {
            Err("is required".into())
        } else {
            Ok(())
        };
    }
    let len = value.chars().count();
    if len > MAX_VALUE_LEN {
        return Err(format!("must be at most {MAX_VALUE_LEN} characters"));
    }
    let integer = match variable.kind {
        VariableType::Integer => Some(
            value
                .trim()
                .parse::<i64>()
                .map_err(|_| "must be a whole number".to_owned())?,
        ),
        VariableType::Boolean => {
            if value != "true" && value != "false" {
                return Err("must be true or false".into());
            }
            None
        }
        VariableType::String | VariableType::Choice => None,
    };
    for rule in &variable.rules {
        match rule {
            ValidationRule::Required => {}
            ValidationRule::MinLength(min) => {
                if len < *min as usize {
                    return Err(format!("must be at least {min} characters"));
                }
            }
            ValidationRule::MaxLength(max) => {
                if len > *max as usize {
                    return Err(format!("must be at most {max} characters"));
                }
            }
            ValidationRule::Min(min) => {
                if integer.is_some_and(|n| n < *min) {
                    return Err(format!("must be at least {min}"));
                }
            }
            ValidationRule::Max(max) => {
                if integer.is_some_and(|n| n > *max) {
                    return Err(format!("must be at most {max}"));
                }
            }
            ValidationRule::Pattern(pattern) => {
                let regex = regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
                    .size_limit(MAX_REGEX_BYTES)
                    .build()
                    .map_err(|_| {
                        "cannot be checked: the game's pattern for it is invalid".to_owned()
                    })?;
                if !regex.is_match(value) {
                    return Err(format!("must match the pattern {pattern}"));
                }
            }
            ValidationRule::OneOf(options) => {
                if !options.iter().any(|o| o == value) {
                    return Err(format!("must be one of: {}", options.join(", ")));
                }
            }
        }
    }
    if matches!(variable.kind, VariableType::Choice)
        && !variable
            .rules
            .iter()
            .any(|r| matches!(r, ValidationRule::OneOf(_)))
    {
        return Err("cannot be checked: the game lists no choices for it".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variable(key: &str, kind: VariableType, rules: Vec<ValidationRule>) -> Variable {
        Variable {
            key: key.into(),
            name: key.into(),
            description: String::new(),
            kind,
            default_value: None,
            user_viewable: true,
            user_editable: true,
            rules,
        }
    }

    fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn fields(result: Result<BTreeMap<String, String>, Vec<FieldProblem>>) -> Vec<String> {
        result
            .expect_err("invalid")
            .into_iter()
            .map(|p| p.field)
            .collect()
    }

    #[test]
    fn checks_every_rule_and_type_and_names_each_field() {
        let declared = vec![
            variable(
                "PLAYERS",
                VariableType::Integer,
                vec![ValidationRule::Min(1), ValidationRule::Max(100)],
            ),
            variable(
                "JAR",
                VariableType::String,
                vec![
                    ValidationRule::Required,
                    ValidationRule::Pattern(r"[a-z]+\.jar".into()),
                ],
            ),
            variable(
                "MODE",
                VariableType::Choice,
                vec![ValidationRule::OneOf(vec![
                    "survival".into(),
                    "creative".into(),
                ])],
            ),
            variable("PVP", VariableType::Boolean, vec![]),
            variable(
                "MOTD",
                VariableType::String,
                vec![ValidationRule::MaxLength(5)],
            ),
        ];
        let bad = given(&[
            ("PLAYERS", "0"),
            ("JAR", "server.zip"),
            ("MODE", "hardcore"),
            ("PVP", "yes"),
            ("MOTD", "too long"),
            ("EXTRA", "x"),
        ]);
        assert_eq!(
            fields(resolve(&declared, &bad, &BTreeMap::new(), false)),
            [
                "variables.EXTRA",
                "variables.PLAYERS",
                "variables.JAR",
                "variables.MODE",
                "variables.PVP",
                "variables.MOTD"
            ]
        );
        let good = given(&[
            ("PLAYERS", "100"),
            ("JAR", "paper.jar"),
            ("MODE", "creative"),
            ("PVP", "false"),
        ]);
        let resolved = resolve(&declared, &good, &BTreeMap::new(), false).expect("valid");
        assert_eq!(resolved, good);
    }

    #[test]
    fn fills_in_current_values_then_defaults_and_requires_the_rest() {
        let mut with_default = variable("A", VariableType::String, vec![ValidationRule::Required]);
        with_default.default_value = Some("dflt".into());
        let required = variable("B", VariableType::String, vec![ValidationRule::Required]);
        let declared = vec![with_default, required];
        assert_eq!(
            fields(resolve(
                &declared,
                &BTreeMap::new(),
                &BTreeMap::new(),
                false
            )),
            ["variables.B"]
        );
        let resolved =
            resolve(&declared, &BTreeMap::new(), &given(&[("B", "kept")]), false).expect("valid");
        assert_eq!(resolved, given(&[("A", "dflt"), ("B", "kept")]));
    }

    #[test]
    fn only_administrators_change_variables_that_are_not_user_editable() {
        let mut locked = variable("PATH", VariableType::String, vec![]);
        locked.user_editable = false;
        locked.default_value = Some("/srv".into());
        let declared = vec![locked];
        let change = given(&[("PATH", "/etc")]);
        assert_eq!(
            fields(resolve(&declared, &change, &BTreeMap::new(), false)),
            ["variables.PATH"]
        );
        assert!(
            resolve(
                &declared,
                &given(&[("PATH", "/srv")]),
                &BTreeMap::new(),
                false
            )
            .is_ok()
        );
        assert!(resolve(&declared, &change, &BTreeMap::new(), true).is_ok());
    }

    #[test]
    fn users_see_only_the_variables_declared_viewable() {
        let mut hidden = variable("RCON_PASSWORD", VariableType::String, vec![]);
        hidden.user_viewable = false;
        let shown = variable("MOTD", VariableType::String, vec![]);
        let values = given(&[("RCON_PASSWORD", "secret"), ("MOTD", "hi"), ("GONE", "x")]);
        assert_eq!(
            user_viewable(&[hidden, shown], &values),
            given(&[("MOTD", "hi")])
        );
    }
}
