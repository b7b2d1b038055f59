//! The node side: what a server's console needs to know about its egg (the
//! startup plan's `console_context`), and classifying console lines with
//! it.
//!
//! The context is JSON, `{"done": ["text", "regex:pattern"]}`: the egg's
//! `config.startup.done` entries as the egg writes them, so that a line
//! means what Wings makes of it (a plain entry is text the line contains,
//! a `regex:` entry a Go-syntax pattern the line matches, which the `regex`
//! crate reads the same). [`Patterns`] keeps each context's compiled
//! patterns: `classify-line` runs for every console line, and parsing JSON
//! and compiling regular expressions per line would cost far more than
//! matching.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cap_egg::{DonePattern, Egg};
use cap_plugin_sdk::game::LineKind;
use serde::{Deserialize, Serialize};

/// Contexts remembered at once; more are rare (one per running server of
/// the node) and clear the cache.
const MAX_CONTEXTS: usize = 1024;

#[derive(Serialize, Deserialize)]
struct Context {
    done: Vec<String>,
}

/// The console context of `egg`'s servers.
pub(crate) fn context(egg: &Egg) -> String {
    let context = Context {
        done: egg
            .config
            .done
            .iter()
            .map(DonePattern::as_egg_text)
            .collect(),
    };
    serde_json::to_string(&context).unwrap_or_default()
}

/// Compiled done patterns by console context.
#[derive(Default)]
pub(crate) struct Patterns {
    by_context: Mutex<HashMap<String, Arc<[DonePattern]>>>,
}

impl Patterns {
    /// What `line` is, for a server whose startup plan said `context`:
    /// [`LineKind::Ready`] when one of the egg's done patterns matches.
    pub(crate) fn classify(&self, context: &str, line: &str) -> LineKind {
        let patterns = self.patterns(context);
        if patterns.iter().any(|p| p.matches(line)) {
            LineKind::Ready
        } else {
            LineKind::Plain
        }
    }

    fn patterns(&self, context: &str) -> Arc<[DonePattern]> {
        let mut cache = self.by_context.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(patterns) = cache.get(context) {
            return Arc::clone(patterns);
        }
        if cache.len() >= MAX_CONTEXTS {
            cache.clear();
        }
        let patterns: Arc<[DonePattern]> = compile(context).into();
        cache.insert(context.to_owned(), Arc::clone(&patterns));
        patterns
    }
}

/// The patterns of a context. A context this plugin did not write (or one
/// whose pattern no longer compiles) has none: its lines stay plain, which
/// is what a game type without a done pattern gives too.
fn compile(context: &str) -> Vec<DonePattern> {
    let Ok(context) = serde_json::from_str::<Context>(context) else {
        cap_plugin_sdk::log::warn!(
            "a console context that is not the egg bridge's: lines stay plain"
        );
        return Vec::new();
    };
    context
        .done
        .into_iter()
        .filter(|text| !text.is_empty())
        .filter_map(|text| match text.strip_prefix("regex:") {
            Some(pattern) => match regex::Regex::new(pattern) {
                Ok(re) => Some(DonePattern::Regex(re)),
                Err(e) => {
                    cap_plugin_sdk::log::warn!("done pattern {pattern:?} does not compile: {e}");
                    None
                }
            },
            None => Some(DonePattern::Contains(text)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{fixture, minimal_egg};

    #[test]
    fn the_minetest_done_line_is_ready_and_others_are_plain() {
        let egg = Egg::parse(&fixture("pelican/egg-pterodactyl-minetest.json")).expect("parses");
        let patterns = Patterns::default();
        let context = context(&egg);
        assert_eq!(
            patterns.classify(
                &context,
                "2024-05-01 12:00:00: ACTION[Main]: Server for gameid=\"minetest\" listening on 0.0.0.0:30000."
            ),
            LineKind::Ready
        );
        assert_eq!(
            patterns.classify(&context, "2024-05-01 12:00:00: ACTION[Main]: loading world"),
            LineKind::Plain
        );
    }

    #[test]
    fn a_list_of_done_patterns_with_a_regex_matches_any_of_them() {
        let egg = Egg::parse(&minimal_egg(|e| {
            e["config"]["startup"] =
                serde_json::json!(r#"{"done": ["Listening", "regex:^Done \\(\\d+s\\)"]}"#);
        }))
        .expect("parses");
        let patterns = Patterns::default();
        let context = context(&egg);
        assert_eq!(
            patterns.classify(&context, "Done (12s)! For help"),
            LineKind::Ready
        );
        assert_eq!(
            patterns.classify(&context, "[x] Listening on 25565"),
            LineKind::Ready
        );
        assert_eq!(
            patterns.classify(&context, "Not Done (12s)"),
            LineKind::Plain
        );
    }

    #[test]
    fn a_context_from_elsewhere_classifies_every_line_as_plain() {
        let patterns = Patterns::default();
        assert_eq!(patterns.classify("not json", "Done"), LineKind::Plain);
        assert_eq!(
            patterns.classify(r#"{"done": ["regex:("]}"#, "("),
            LineKind::Plain
        );
    }

    #[test]
    fn each_context_is_compiled_once() {
        let patterns = Patterns::default();
        let context = r#"{"done": ["regex:ready"]}"#;
        patterns.classify(context, "a");
        let first = patterns.patterns(context);
        patterns.classify(context, "b");
        assert!(Arc::ptr_eq(&first, &patterns.patterns(context)));
    }
}
