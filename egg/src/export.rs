//! Writing an egg back in its own format and syntax.

use crate::model::{Config, Egg, FindValue, Syntax, Version};
use crate::tree::Tree;

fn s(text: &str) -> Tree {
    Tree::String(text.to_owned())
}

fn opt(text: &Option<String>) -> Tree {
    text.as_deref().map_or(Tree::Null, s)
}

fn list(items: &[String]) -> Tree {
    Tree::Array(items.iter().map(|i| s(i)).collect())
}

fn from_json(value: &serde_json::Value) -> Tree {
    serde_json::from_value(value.clone()).unwrap_or(Tree::Null)
}

impl Egg {
    /// Writes the egg in its own `meta.version` and syntax (JSON with a
    /// four-space indent, or YAML). [`Egg::parse`] of the result gives an
    /// egg equal to this one.
    pub fn export(&self) -> String {
        let tree = self.to_tree();
        match self.syntax {
            Syntax::Json => tree.to_json_pretty() + "\n",
            // A tree of strings, numbers, lists and string-keyed maps always
            // serialises.
            Syntax::Yaml => serde_yaml_ng::to_string(&tree).unwrap_or_default(),
        }
    }

    fn to_tree(&self) -> Tree {
        let mut root: Vec<(String, Tree)> = Vec::new();
        let mut put = |k: &str, v: Tree| root.push((k.to_owned(), v));
        if let Some(comment) = &self.comment {
            put("_comment", s(comment));
        }
        put(
            "meta",
            Tree::Object(vec![
                ("version".into(), s(self.version.as_str())),
                ("update_url".into(), opt(&self.update_url)),
            ]),
        );
        if let Some(at) = &self.exported_at {
            put("exported_at", s(at));
        }
        put("name", s(&self.name));
        put("author", opt(&self.author));
        if self.uuid.is_some() {
            put("uuid", opt(&self.uuid));
        }
        put("description", opt(&self.description));
        if let Some(key) = &self.layout.icon_key {
            put(key, opt(&self.icon));
        }
        if self.layout.has_tags || !self.tags.is_empty() {
            put("tags", list(&self.tags));
        }
        if self.layout.features_null && self.features.is_empty() {
            put("features", Tree::Null);
        } else {
            put("features", list(&self.features));
        }
        if self.version == Version::PtdlV1 {
            let images: Vec<String> = self.docker_images.iter().map(|i| i.image.clone()).collect();
            put("images", list(&images));
        } else {
            put(
                "docker_images",
                Tree::Object(
                    self.docker_images
                        .iter()
                        .map(|i| (i.display_name.clone(), s(&i.image)))
                        .collect(),
                ),
            );
        }
        put("file_denylist", list(&self.file_denylist));
        if self.version == Version::PlcnV3 {
            put(
                "startup_commands",
                Tree::Object(
                    self.startup_commands
                        .iter()
                        .map(|c| (c.name.clone(), s(&c.command)))
                        .collect(),
                ),
            );
        } else {
            put(
                "startup",
                s(self
                    .startup_commands
                    .first()
                    .map_or("", |c| c.command.as_str())),
            );
        }
        put("config", self.config_tree(&self.config));
        if let Some(install) = &self.install {
            put(
                "scripts",
                Tree::Object(vec![(
                    "installation".into(),
                    Tree::Object(vec![
                        ("script".into(), s(&install.script)),
                        ("container".into(), s(&install.container)),
                        ("entrypoint".into(), s(&install.entrypoint)),
                    ]),
                )]),
            );
        }
        put(
            "variables",
            Tree::Array(
                self.variables
                    .iter()
                    .map(|v| {
                        let rules = if v.rules_as_list {
                            Tree::Array(v.rules.iter().map(|r| s(r.as_str())).collect())
                        } else {
                            s(&v.rules.to_pipe_string())
                        };
                        let mut pairs = vec![
                            ("name".into(), s(&v.name)),
                            ("description".into(), s(&v.description)),
                            ("env_variable".into(), s(&v.env_variable)),
                            ("default_value".into(), s(&v.default_value)),
                            ("user_viewable".into(), Tree::Bool(v.user_viewable)),
                            ("user_editable".into(), Tree::Bool(v.user_editable)),
                            ("rules".into(), rules),
                        ];
                        if let Some(sort) = v.sort {
                            pairs.push(("sort".into(), Tree::Number(sort.into())));
                        }
                        if let Some(field_type) = &v.field_type {
                            pairs.push(("field_type".into(), s(field_type)));
                        }
                        Tree::Object(pairs)
                    })
                    .collect(),
            ),
        );
        for (key, value) in &self.extra {
            put(key, from_json(value));
        }
        Tree::Object(root)
    }

    fn config_tree(&self, config: &Config) -> Tree {
        let files = Tree::Object(
            config
                .files
                .iter()
                .map(|f| {
                    let find = f
                        .find
                        .iter()
                        .map(|find| {
                            let value = match &find.value {
                                FindValue::Set(v) => from_json(v),
                                FindValue::When(pairs) => Tree::Object(
                                    pairs
                                        .iter()
                                        .map(|(k, v)| (k.clone(), from_json(v)))
                                        .collect(),
                                ),
                            };
                            (find.key.clone(), value)
                        })
                        .collect();
                    (
                        f.path.clone(),
                        Tree::Object(vec![
                            ("parser".into(), s(&f.parser_name)),
                            ("find".into(), Tree::Object(find)),
                        ]),
                    )
                })
                .collect(),
        );
        let done: Vec<String> = config.done.iter().map(|d| d.as_egg_text()).collect();
        let mut startup = Vec::new();
        if self.layout.done_as_list {
            startup.push(("done".to_owned(), list(&done)));
        } else if let Some(first) = done.first() {
            startup.push(("done".to_owned(), s(first)));
        }
        for (k, v) in &config.startup_extra {
            startup.push((k.clone(), from_json(v)));
        }
        let startup = Tree::Object(startup);
        let logs = match &config.logs {
            serde_json::Value::Null => Tree::Object(Vec::new()),
            v => from_json(v),
        };
        let encode = |tree: Tree| {
            if self.layout.config_as_strings {
                s(&tree.to_json_pretty())
            } else {
                tree
            }
        };
        Tree::Object(vec![
            ("files".into(), encode(files)),
            ("startup".into(), encode(startup)),
            ("logs".into(), encode(logs)),
            ("stop".into(), s(&config.stop.as_egg_text())),
        ])
    }
}
