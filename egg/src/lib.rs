//! # cap-egg
//!
//! Pterodactyl and Pelican *eggs* — the JSON or YAML files that describe a
//! game server — read into one typed model ([`Egg`]), checked, rendered
//! and written back. It is the library the egg-bridge game-type plugin,
//! the Panel's egg API and `cap egg check` stand on. It is pure: no I/O
//! beyond a reader it is handed, no network, no async, no `unsafe`, and it
//! builds for the host and for `wasm32-wasip2` alike.
//!
//! ```
//! use std::collections::BTreeMap;
//! use cap_egg::{Context, Egg, render_startup};
//!
//! let egg = Egg::parse(br#"{
//!     "meta": {"version": "PTDL_v2"},
//!     "name": "Echo",
//!     "docker_images": {"Debian": "debian:stable"},
//!     "startup": "./echo --port {{SERVER_PORT}} --motd {{MOTD}}",
//!     "config": {"files": "{}", "startup": "{\"done\": \"ready\"}", "logs": "{}", "stop": "^C"},
//!     "variables": [{"name": "MOTD", "env_variable": "MOTD", "default_value": "hi",
//!                    "user_viewable": true, "user_editable": true, "rules": "required|string|max:64"}]
//! }"#)?;
//! let mut values = BTreeMap::new();
//! values.insert("MOTD".to_owned(), "hello; rm -rf /".to_owned());
//! let ctx = Context { variables: egg.environment(&values)?, port: 27015, ..Context::default() };
//! assert_eq!(
//!     render_startup(&egg.startup_commands[0].command, &ctx),
//!     "./echo --port 27015 --motd 'hello; rm -rf /'"
//! );
//! assert_eq!(Egg::parse(egg.export().as_bytes())?, egg);
//! # Ok::<(), cap_egg::Error>(())
//! ```
//!
//! | Module | Holds |
//! |---|---|
//! | [`Egg`], [`Variable`], [`Config`], … | the model (`model.rs`) |
//! | [`Egg::parse`], [`Egg::read`] | reading and checking (`parse.rs`) |
//! | [`Egg::export`] | writing back (`export.rs`) |
//! | [`Rules`] | Laravel validation rules (`rules.rs`, whose docs list each rule's meaning) |
//! | [`render_startup`], [`render_value`], [`Context`] | placeholders and shell quoting (`render.rs`) |
//! | [`config_files`] | the config-file editor: eggs' `config.files` with Wings' parsers, and the Agent's plan edits ([`config_files::edit`]) |
//!
//! ## Decisions
//!
//! - **One model for five formats.** `PTDL_v1`, `PTDL_v2`, `PLCN_v1`,
//!   `PLCN_v2`, `PLCN_v3`, in JSON or YAML, all read into [`Egg`]; the
//!   format and syntax are kept ([`Egg::version`], [`Egg::syntax`],
//!   [`Layout`]) so [`Egg::export`] writes the egg's own format back, and
//!   import → export → import gives an equal egg (tested on 15 community
//!   eggs). Any other `meta.version` is refused.
//! - **Quirks resolved as the panels' own importers resolve them** (read in
//!   Pelican's `EggImporterService` and Pterodactyl's importer):
//!   `config.files`, `config.startup` and `config.logs` may be JSON *strings*
//!   inside the egg or plain objects (Pelican's YAML), and an empty list
//!   stands for an empty map (PHP); `rules` may be a pipe string or a list,
//!   empty parts skipped; PTDL_v1's `images` list (or single `image`) reads
//!   as images named by themselves; every format before PLCN_v3 has one
//!   startup line, named `Default`, PLCN_v3 a `startup_commands` map and an
//!   `image`/`icon` data URL; `default_value` may be a number or a boolean
//!   (YAML), read as its text; `user_viewable`/`user_editable` may be 0/1;
//!   empty `file_denylist` entries are dropped; placeholders in both
//!   panels' spellings (`server.build.default.port` and
//!   `server.allocations.default.port`, `server.build.env.X` and
//!   `server.environment.X`) mean the same.
//! - **Everything is honoured or reported; nothing is dropped.** Fields
//!   without behaviour here (each `features` entry, a non-empty
//!   `config.logs`, unknown top-level fields, `config.startup` keys other
//!   than `done`, startup placeholders nothing defines) are kept for export
//!   and listed by [`Egg::unsupported`] for the caller to show. Unknown
//!   *variable* fields, config-file fields and rules are refused by name:
//!   ignoring them would change what the egg means.
//! - **Errors name the field and nothing is half-built.** Parsing returns
//!   an egg or one [`Error`] such as `variables[2].rules: unknown rule
//!   "foo"`; the first problem wins.
//! - **Validation.** Exactly the Laravel rules eggs use are supported, with
//!   Laravel's meaning (see [`rules`](Rules)): `required`, `string`, `max`,
//!   `nullable`, `in`, `numeric`, `integer`, `between`, `boolean`,
//!   `digits_between`, `min`, `alpha_dash`, `alpha_num`, `regex`, `present`,
//!   `int` (an alias of `integer`), `url`, and `size` (the Pterodactyl
//!   Source-engine eggs use it). A default that breaks its own rules is an
//!   import error naming the variable. An *empty* default on a `required`
//!   variable is not: community eggs use it to mean "must be set when the
//!   server is created" (the Steam account token, the admin password), so
//!   it is allowed and flagged by [`Variable::needs_value`], and
//!   [`Egg::environment`] refuses to build an environment without it.
//!   A variable named like one the Panel sets (`SERVER_PORT`, `HOME`, …,
//!   [`RESERVED_ENV_NAMES`]) is refused, naming the field; Pelican renames
//!   such variables silently, which would change the startup line.
//! - **Quoting.** Substituted values in a startup line are quoted for the
//!   shell context they land in (single quotes outside quotes, backslashes
//!   inside double quotes), so a user-editable value is always literal text
//!   and never runs; see [`render_startup`].
//! - **Config file paths stay inside the server directory**: a
//!   `config.files` path that is absolute or has a `..` component is an
//!   import error naming the field, as is an unknown `parser`.
//! - **Bounded input.** Eggs above [`MAX_EGG_BYTES`] (4 MiB) are refused;
//!   [`Egg::read`] stops reading one byte past the limit.
//! - **Dependencies.** YAML through `serde_yaml_ng`, a maintained fork of
//!   the archived `serde_yaml` that the Agent already uses (one YAML crate
//!   in the tree); XML through `quick-xml`; `regex:` rules through
//!   `regex-lite` (ASCII classes as in PCRE without `/u`, linear-time
//!   matching whatever a user types, compiled in microseconds; a pattern
//!   needing look-around is refused at import rather than matched
//!   differently); `regex:` done patterns and `if_value`s, written by the
//!   egg's author for Wings' Go `regexp`, through `regex` (same syntax). INI
//!   and properties files are edited by a small line-based editor here: it
//!   keeps the file's comments and layout, which no maintained INI or
//!   properties crate does.
//!   Ordered maps come from the crate's own tree type rather than
//!   `serde_json`'s `preserve_order` feature, which would reorder the
//!   whole workspace's JSON.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod config_files;
mod error;
mod export;
mod model;
mod parse;
mod render;
mod rules;
mod tree;

pub use error::{Error, Result};
pub use model::{
    Config, ConfigFile, DockerImage, DonePattern, Egg, Find, FindValue, Install, Layout, Parser,
    RESERVED_ENV_NAMES, StartupCommand, Stop, StopSignal, Syntax, Unsupported, Variable, Version,
};
pub use parse::MAX_EGG_BYTES;
pub use render::{Context, referenced_names, render_startup, render_value, shell_word};
pub use rules::{KNOWN_RULES, Rule, Rules};
