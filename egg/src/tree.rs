//! An ordered document tree: what a JSON or YAML egg (or a JSON/YAML config
//! file) reads into before it is checked.
//!
//! `serde_json::Value` would do, but without serde_json's `preserve_order`
//! feature (which would change map order for the whole workspace) its maps
//! are sorted; eggs depend on order (the first docker image is the default,
//! `find` replacements run top to bottom). So the tree keeps objects as a
//! list of pairs, in document order. A repeated key keeps its first place
//! and its last value, as PHP's `json_decode` does.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// One node of an ordered JSON/YAML document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tree {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    /// A number JSON cannot hold: YAML's `.inf`, `-.inf` and `.nan`.
    Float(f64),
    String(String),
    Array(Vec<Tree>),
    Object(Vec<(String, Tree)>),
}

impl Tree {
    /// The value under `key`, mutable.
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Tree> {
        match self {
            Tree::Object(pairs) => pairs.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets `key` in an object, keeping its place if it is already there.
    pub(crate) fn insert(pairs: &mut Vec<(String, Tree)>, key: String, value: Tree) {
        match pairs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => pairs.push((key, value)),
        }
    }

    /// A short name of the node's type, for error messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Tree::Null => "null",
            Tree::Bool(_) => "a boolean",
            Tree::Number(_) | Tree::Float(_) => "a number",
            Tree::String(_) => "a string",
            Tree::Array(_) => "a list",
            Tree::Object(_) => "an object",
        }
    }

    /// The text a scalar stands for: strings as they are, numbers and
    /// booleans as JSON writes them; `None` for null, lists and objects.
    pub(crate) fn scalar_text(&self) -> Option<String> {
        match self {
            Tree::String(s) => Some(s.clone()),
            Tree::Number(n) => Some(n.to_string()),
            Tree::Float(f) => Some(f.to_string()),
            Tree::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// Serialises as pretty JSON with a four-space indent (PHP's
    /// `JSON_PRETTY_PRINT`, and what Wings writes for `json` config files).
    pub(crate) fn to_json_pretty(&self) -> String {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
        // Writing a tree of strings, numbers and maps with string keys into
        // a Vec cannot fail.
        if self.serialize(&mut ser).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Serialize for Tree {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Tree::Null => serializer.serialize_unit(),
            Tree::Bool(b) => serializer.serialize_bool(*b),
            Tree::Number(n) => n.serialize(serializer),
            Tree::Float(f) => serializer.serialize_f64(*f),
            Tree::String(s) => serializer.serialize_str(s),
            Tree::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Tree::Object(pairs) => {
                let mut map = serializer.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON or YAML value")
    }
    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }
    fn visit_none<E>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Tree, D::Error> {
        Tree::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Tree, E> {
        Ok(Tree::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Tree, E> {
        Ok(Tree::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Tree, E> {
        Ok(Tree::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Tree, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Tree::Float(v), Tree::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Tree, E> {
        Ok(Tree::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Tree, E> {
        Ok(Tree::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Tree::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut pairs = Vec::new();
        while let Some(key) = map.next_key::<KeyText>()? {
            let value = map.next_value()?;
            Tree::insert(&mut pairs, key.0, value);
        }
        Ok(Tree::Object(pairs))
    }
}

/// A map key: YAML allows numbers and booleans as keys; they read as their
/// text, as PHP's YAML and JSON readers turn them into array keys.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Tree::deserialize(deserializer)? {
            Tree::Null => Ok(KeyText(String::new())),
            tree => tree
                .scalar_text()
                .map(KeyText)
                .ok_or_else(|| de::Error::custom("a map key that is a list or a map")),
        }
    }
}
