//! Property tests of what the runtime reads from plugin authors and plugins:
//!
//! - the manifest parser: arbitrary bytes and text (and valid manifests with
//!   bytes cut out or spliced in) give a [`Manifest`] or a typed
//!   [`ManifestError`], never a panic; a generated valid manifest parses
//!   back to the same values;
//! - the checks on plugin results ([`cap_runtime::output`]), which every
//!   value lifted from a plugin passes before it reaches the Panel or the
//!   Agent: generated out-of-range, oversized and malformed results are
//!   refused with an error, never a panic, and whatever passes has the
//!   shape the check promises (decided here by an independent oracle).
//!
//! Case counts are bounded so the file runs in a few seconds in the normal
//! `cargo test`; the cargo-fuzz target `manifest` (in `fuzz/`) explores the
//! parser without a bound.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use cap_runtime::api::{
    ConfigEdit, ConfigFormat, Download, Element, EventKind, InstallPlan, InstallStep, KeyValue,
    Node, Script, StartupPlan, UiTree, Verdict, WriteFile,
};
use cap_runtime::manifest::{
    CapabilityRequest, ConfigKey, ConfigType, EventsRequest, GameRuntime, GameSection,
    HookSubscriptions, HttpRequest, LimitRequest, MAX_MANIFEST_BYTES, ManifestError, PanelScope,
    PluginSection, UiContribution, UiSection, UiSlot,
};
use cap_runtime::output::{
    self, MAX_UI_DEPTH, MAX_UI_NODES, check_install_plan, check_startup_plan, check_ui_tree,
    check_verdict,
};
use cap_runtime::{Manifest, PluginKind};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // Failing cases are saved beside this file and replayed first.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// Any characters, control characters and astral planes included.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter)
}

/// Text with at least one character that is not whitespace.
fn visible(max: usize) -> impl Strategy<Value = String> {
    (text(max), "[A-Za-z0-9]").prop_map(|(mut t, c)| {
        t.push_str(&c);
        t
    })
}

// ---------------------------------------------------------------------------
// Valid manifests
// ---------------------------------------------------------------------------

fn id() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{1,8}(-[a-z0-9]{1,6}){0,2}"
}

fn key() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{1,16}"
}

fn version() -> impl Strategy<Value = semver::Version> {
    (
        0u64..100,
        0u64..100,
        0u64..100,
        prop::option::of("(alpha|beta|rc)\\.[1-9]"),
    )
        .prop_map(|(major, minor, patch, pre)| {
            let mut v = semver::Version::new(major, minor, patch);
            if let Some(pre) = pre {
                v.pre = semver::Prerelease::new(&pre).unwrap();
            }
            v
        })
}

fn kinds() -> impl Strategy<Value = Vec<PluginKind>> {
    prop::sample::subsequence(PluginKind::ALL.to_vec(), 1..=4).prop_shuffle()
}

fn capabilities() -> impl Strategy<Value = CapabilityRequest> {
    (
        any::<[bool; 4]>(),
        prop::collection::btree_set(key(), 0..3),
        prop::option::of(prop::sample::subsequence(
            vec!["example.com", "discord.com:443", "api.example.org:*"],
            1..=3,
        )),
        prop::option::of(prop::collection::btree_set(
            "[a-z0-9_-]{1,8}(\\.[a-z0-9_-]{1,8}){0,2}",
            0..3,
        )),
        prop::sample::subsequence(
            vec![PanelScope::ServersRead, PanelScope::ConsoleSend],
            0..=2,
        ),
    )
        .prop_map(
            |([kv, config, clock, random], secrets, http, events, panel)| CapabilityRequest {
                kv,
                config,
                secrets,
                clock,
                random,
                http: http.map(|hosts| HttpRequest {
                    allowed_hosts: hosts.into_iter().map(String::from).collect(),
                }),
                events: events.map(|publish| EventsRequest { publish }),
                panel: panel.into_iter().collect(),
                // Timers need API 0.2.0 and a schedule.tick after-hook,
                // which the generated manifests do not have.
                timers: false,
            },
        )
}

fn config_keys() -> impl Strategy<Value = Vec<ConfigKey>> {
    let entry = (
        text(40),
        prop_oneof![
            Just((ConfigType::String, None::<String>)),
            text(20).prop_map(|d| (ConfigType::String, Some(d))),
            any::<i64>().prop_map(|n| (ConfigType::Integer, Some(n.to_string()))),
            any::<bool>().prop_map(|b| (ConfigType::Boolean, Some(b.to_string()))),
        ],
        any::<bool>(),
    );
    prop::collection::btree_map(key(), entry, 0..4).prop_map(|entries| {
        entries
            .into_iter()
            .map(
                |(key, (description, (value_type, default), required))| ConfigKey {
                    key,
                    description,
                    value_type,
                    default,
                    required,
                },
            )
            .collect()
    })
}

fn valid_manifest() -> impl Strategy<Value = Manifest> {
    let section = (
        id(),
        visible(30).prop_filter("at most 100 bytes", |n| n.len() <= 100),
        version(),
        text(60),
        prop::collection::vec(text(20), 0..3),
        prop::option::of(text(20)),
        kinds(),
        version(),
        prop::option::of("[a-z0-9_]{1,24}"),
    )
        .prop_map(
            |(id, name, version, description, authors, license, mut kinds, mut api, price)| {
                // A catalogue is a game type of API 0.2.0 or newer.
                if kinds.contains(&PluginKind::GameCatalogue) {
                    if !kinds.contains(&PluginKind::GameType) {
                        kinds.push(PluginKind::GameType);
                    }
                    api = api.max(semver::Version::new(0, 2, 0));
                }
                PluginSection {
                    id,
                    name,
                    version,
                    description,
                    authors,
                    license,
                    kinds,
                    api,
                    price,
                }
            },
        );
    let events: Vec<&'static str> = EventKind::ALL.iter().map(|k| k.dotted()).collect();
    let hooks = (
        prop::sample::subsequence(events.clone(), 1..=5),
        prop::sample::subsequence(events, 0..=5),
        any::<bool>(),
    )
        .prop_map(|(before, after, fail_closed)| HookSubscriptions {
            before: before.into_iter().map(String::from).collect(),
            after: after.into_iter().map(String::from).collect(),
            fail_closed,
        });
    let slot = prop_oneof![
        Just(UiSlot::NavPage),
        Just(UiSlot::ServerWidget),
        Just(UiSlot::DashboardWidget),
    ];
    let ui = prop::collection::btree_map(key(), (slot, "[A-Za-z][A-Za-z0-9 ]{0,40}"), 1..3)
        .prop_map(|entries| UiSection {
            contributions: entries
                .into_iter()
                .map(|(id, (slot, title))| UiContribution { id, slot, title })
                .collect(),
        });
    let limits = (
        prop::option::of(1u32..=4096),
        prop::option::of(1u32..=600_000),
    )
        .prop_map(|(memory_mb, timeout_ms)| LimitRequest {
            memory_mb,
            timeout_ms,
        });
    let dependencies = prop::collection::btree_map(
        id(),
        prop::sample::select(vec!["^1.2", ">=0.1, <2", "=1.0.0", "*", "~0.3.1"])
            .prop_map(|r| semver::VersionReq::parse(r).unwrap()),
        0..3,
    );
    let permissions = prop::collection::btree_map(
        "[a-z0-9-]{1,10}",
        visible(40).prop_filter("at most 256 bytes", |d| d.len() <= 256),
        0..3,
    );
    let game = (
        prop::sample::subsequence(vec![GameRuntime::Native, GameRuntime::Container], 1..=2),
        "[a-z0-9]{1,12}(/[a-z0-9]{1,12})?(:[a-z0-9.]{1,8})?",
        prop::option::of("[a-z0-9]{1,12}:[a-z0-9.]{1,8}"),
    )
        .prop_map(|(runtimes, image, install_image)| GameSection {
            runtimes,
            image: Some(image),
            install_image,
        });
    (
        section,
        capabilities(),
        hooks,
        limits,
        config_keys(),
        dependencies,
        ui,
        permissions,
        prop::option::of(game),
    )
        .prop_map(
            |(
                plugin,
                capabilities,
                hooks,
                limits,
                config,
                mut dependencies,
                ui,
                permissions,
                game,
            )| {
                dependencies.remove(&plugin.id);
                let permissions = permissions
                    .into_iter()
                    .map(|(action, description)| (format!("{}.{action}", plugin.id), description))
                    .collect();
                let has = |kind| plugin.kinds.contains(&kind);
                let game = game.filter(|_| has(PluginKind::GameType));
                Manifest {
                    hooks: has(PluginKind::Hooks).then_some(hooks),
                    ui: has(PluginKind::Ui).then_some(ui),
                    plugin,
                    capabilities,
                    limits,
                    config,
                    dependencies,
                    permissions,
                    game,
                }
            },
        )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_generated_valid_manifest_parses_back_to_the_same_values(manifest in valid_manifest()) {
        prop_assert_eq!(manifest.validate(), Ok(()));
        let text = manifest.to_toml();
        prop_assert_eq!(Manifest::parse(text.as_bytes()), Ok(manifest), "{}", text);
    }

    #[test]
    fn arbitrary_bytes_give_a_manifest_or_a_typed_error(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_parse(&bytes);
    }

    #[test]
    fn arbitrary_text_gives_a_manifest_or_a_typed_error(text in text(400)) {
        check_parse(text.as_bytes());
    }

    #[test]
    fn a_valid_manifest_with_bytes_cut_out_or_spliced_in_gives_a_manifest_or_a_typed_error(
        manifest in valid_manifest(),
        at in any::<prop::sample::Index>(),
        cut in 0usize..40,
        splice in prop_oneof![
            text(8),
            prop::sample::select(vec![
                "\"", "'", "[", "]]", "=", "\n", "\\u", "\"\"\"", "é", "𝄞", "\u{0}", "#", "{", ",",
            ]).prop_map(String::from),
        ],
    ) {
        let mut bytes = manifest.to_toml().into_bytes();
        let start = at.index(bytes.len() + 1);
        let end = (start + cut).min(bytes.len());
        bytes.splice(start..end, splice.into_bytes());
        check_parse(&bytes);
    }

    #[test]
    fn an_invalid_plugin_id_is_refused_naming_the_field(
        manifest in valid_manifest(),
        bad in text(70).prop_filter("not a valid id", |id| !cap_runtime::manifest::is_valid_id(id)),
    ) {
        let mut manifest = manifest;
        manifest.permissions.clear();
        manifest.dependencies.clear();
        manifest.plugin.id = bad;
        match Manifest::parse(manifest.to_toml().as_bytes()) {
            Err(ManifestError::Invalid(errors)) => {
                prop_assert!(errors.iter().any(|e| e.field == "plugin.id"), "{:?}", errors);
            }
            other => prop_assert!(false, "expected a field error, got {:?}", other),
        }
    }
}

/// `Manifest::parse` answers with a valid manifest or a typed error whose
/// message names the problem, and never panics.
fn check_parse(bytes: &[u8]) {
    match Manifest::parse(bytes) {
        Ok(manifest) => assert_eq!(manifest.validate(), Ok(())),
        Err(ManifestError::TooLarge(n)) => assert!(n > MAX_MANIFEST_BYTES),
        Err(ManifestError::NotUtf8) => assert!(std::str::from_utf8(bytes).is_err()),
        Err(ManifestError::Syntax(message)) => assert!(!message.is_empty()),
        Err(ManifestError::Invalid(errors)) => assert!(!errors.is_empty()),
    }
}

// ---------------------------------------------------------------------------
// Plugin results
// ---------------------------------------------------------------------------

fn element() -> impl Strategy<Value = Element> {
    prop_oneof![
        prop::option::of(text(8)).prop_map(Element::Section),
        Just(Element::Row),
        text(8).prop_map(Element::Heading),
        text(8).prop_map(Element::Text),
        Just(Element::Divider),
    ]
}

/// Trees of up to 40 nodes whose child indices are mostly in range, plus
/// chains long enough to pass the depth limit.
fn ui_tree() -> impl Strategy<Value = UiTree> {
    let small = (1usize..40).prop_flat_map(|n| {
        let index = prop_oneof![8 => 0..n as u32, 1 => any::<u32>()];
        let node = (element(), prop::collection::vec(index.clone(), 0..4))
            .prop_map(|(element, children)| Node { element, children });
        (
            prop_oneof![8 => 0..n as u32, 1 => any::<u32>()],
            prop::collection::vec(node, n),
        )
            .prop_map(|(root, nodes)| UiTree { root, nodes })
    });
    let chain = (1usize..(MAX_UI_DEPTH + 8)).prop_map(|n| UiTree {
        root: 0,
        nodes: (0..n)
            .map(|i| Node {
                element: Element::Row,
                children: if i + 1 < n {
                    vec![i as u32 + 1]
                } else {
                    Vec::new()
                },
            })
            .collect(),
    });
    prop_oneof![4 => small, 1 => chain, 1 => Just(UiTree { root: 0, nodes: Vec::new() })]
}

/// The rule `check_ui_tree` documents, decided by recursion: indices in
/// bounds, every node reachable at most once from the root, containers
/// alone have children, depth and size bounded.
fn is_acceptable_tree(tree: &UiTree) -> bool {
    fn visit(tree: &UiTree, i: usize, depth: usize, seen: &mut BTreeSet<usize>) -> bool {
        let Some(node) = tree.nodes.get(i) else {
            return false;
        };
        if depth > MAX_UI_DEPTH || !seen.insert(i) {
            return false;
        }
        let container = matches!(node.element, Element::Section(_) | Element::Row);
        (container || node.children.is_empty())
            && node
                .children
                .iter()
                .all(|&c| visit(tree, c as usize, depth + 1, seen))
    }
    !tree.nodes.is_empty()
        && tree.nodes.len() <= MAX_UI_NODES
        && visit(tree, tree.root as usize, 1, &mut BTreeSet::new())
}

/// Paths as plugins might send them, escapes included.
fn path() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just(String::new()),
        Just("etc".to_owned()),
        Just("a\\..\\b".to_owned()),
        Just("x\0y".to_owned()),
        "[a-z.]{1,6}",
    ];
    (any::<bool>(), prop::collection::vec(part, 0..5)).prop_map(|(absolute, parts)| {
        let joined = parts.join("/");
        if absolute {
            format!("/{joined}")
        } else {
            joined
        }
    })
}

/// Whether `path`, joined to a server directory, stays inside it: decided
/// component by component, as the kernel would resolve it (no symlinks).
fn stays_inside(path: &str) -> bool {
    if path.is_empty() || path.starts_with('/') || path.contains('\0') || path.contains('\\') {
        return false;
    }
    let mut depth = 0i64;
    for part in path.split('/') {
        match part {
            ".." => depth -= 1,
            "" | "." => {}
            _ => depth += 1,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

fn key_values() -> impl Strategy<Value = Vec<KeyValue>> {
    prop::collection::vec(
        (text(8), text(8)).prop_map(|(key, value)| KeyValue { key, value }),
        0..3,
    )
}

fn config_edit() -> impl Strategy<Value = ConfigEdit> {
    (path(), key_values()).prop_map(|(path, set)| ConfigEdit {
        path,
        format: ConfigFormat::Properties,
        set,
        set_if: Vec::new(),
    })
}

fn install_step() -> impl Strategy<Value = InstallStep> {
    prop_oneof![
        (
            prop::sample::select(vec![
                "https://example.com/server.jar",
                "http://10.0.0.1/x",
                "file:///etc/passwd",
                "ftp://example.com/x",
                "not a url",
                "",
            ]),
            prop_oneof!["[0-9a-f]{64}", "[0-9a-fA-F]{0,70}", text(64)],
            path(),
            any::<bool>(),
        )
            .prop_map(|(url, sha256, destination, executable)| {
                InstallStep::Download(Download {
                    url: url.into(),
                    sha256,
                    destination,
                    executable,
                })
            }),
        (text(6), text(20), key_values(), any::<u32>()).prop_map(
            |(interpreter, contents, env, timeout_secs)| InstallStep::RunScript(Script {
                interpreter,
                contents,
                env,
                timeout_secs,
            })
        ),
        (path(), text(20), any::<u32>()).prop_map(|(path, contents, mode)| {
            InstallStep::WriteFile(WriteFile {
                path,
                contents,
                mode,
            })
        }),
        config_edit().prop_map(InstallStep::EditConfig),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_ui_tree_passes_the_check_if_and_only_if_it_is_a_bounded_tree(tree in ui_tree()) {
        let verdict = check_ui_tree(&tree);
        prop_assert_eq!(verdict.is_ok(), is_acceptable_tree(&tree), "{:?}", verdict);
    }

    #[test]
    fn an_install_plan_passes_only_if_every_path_stays_in_the_server_directory(
        steps in prop::collection::vec(install_step(), 0..5),
    ) {
        let plan = InstallPlan { steps, image: None };
        if check_install_plan(&plan).is_ok() {
            for step in &plan.steps {
                match step {
                    InstallStep::Download(d) => {
                        prop_assert!(stays_inside(&d.destination), "{:?}", d.destination);
                        prop_assert!(d.sha256.len() == 64 && d.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
                        prop_assert!(d.url.starts_with("http://") || d.url.starts_with("https://"));
                    }
                    InstallStep::WriteFile(w) => prop_assert!(stays_inside(&w.path), "{:?}", w.path),
                    InstallStep::EditConfig(e) => prop_assert!(stays_inside(&e.path), "{:?}", e.path),
                    InstallStep::RunScript(s) => {
                        prop_assert!(!s.interpreter.is_empty() && s.timeout_secs > 0);
                    }
                }
            }
        }
    }

    #[test]
    fn a_startup_plan_passes_only_if_its_paths_stay_in_the_server_directory(
        program in text(6),
        args in prop::collection::vec(text(6), 0..3),
        env in key_values(),
        working_dir in path(),
        config_edits in prop::collection::vec(config_edit(), 0..3),
    ) {
        let plan = StartupPlan {
            program, args, env, working_dir, config_edits, console_context: String::new(),
        };
        if check_startup_plan(&plan).is_ok() {
            prop_assert!(!plan.program.is_empty());
            prop_assert!(
                plan.working_dir.is_empty() || stays_inside(&plan.working_dir),
                "{:?}", plan.working_dir
            );
            for edit in &plan.config_edits {
                prop_assert!(stays_inside(&edit.path), "{:?}", edit.path);
            }
        }
    }

    #[test]
    fn a_modify_verdict_passes_only_with_a_json_object_and_a_deny_only_with_a_bounded_reason(
        verdict in prop_oneof![
            Just(Verdict::Allow),
            prop_oneof![text(40), "\\{\"[a-z]{1,4}\": ?[0-9]{1,3}\\}", "\\[[0-9]\\]"].prop_map(Verdict::Modify),
            (0usize..1100, "[a-zé]").prop_map(|(n, c)| Verdict::Deny(c.repeat(n))),
        ],
    ) {
        let passed = check_verdict(&verdict).is_ok();
        match &verdict {
            Verdict::Allow => prop_assert!(passed),
            Verdict::Modify(patch) => prop_assert_eq!(
                passed,
                serde_json::from_str::<serde_json::Value>(patch).is_ok_and(|v| v.is_object())
            ),
            Verdict::Deny(reason) => prop_assert_eq!(passed, reason.len() <= 1024),
        }
    }

    #[test]
    fn a_result_passes_the_size_check_if_and_only_if_its_json_fits_the_limit(
        value in prop::collection::btree_map(text(6), prop::collection::vec(text(12), 0..6), 0..6),
        limit in 0usize..600,
    ) {
        let size = serde_json::to_vec(&value).unwrap().len();
        let checked = output::check_size(&value, limit);
        prop_assert_eq!(checked.is_ok(), size <= limit, "{} bytes, limit {}: {:?}", size, limit, checked);
    }
}

#[test]
fn a_ui_tree_with_more_nodes_than_the_limit_is_refused_before_it_is_walked() {
    let nodes = vec![
        Node {
            element: Element::Divider,
            children: Vec::new(),
        };
        MAX_UI_NODES + 1
    ];
    let error = check_ui_tree(&UiTree { root: 0, nodes }).unwrap_err();
    assert!(error.contains("the limit is 2000"), "{error}");
}

#[test]
fn a_node_listing_one_child_a_million_times_is_refused() {
    let tree = UiTree {
        root: 0,
        nodes: vec![
            Node {
                element: Element::Row,
                children: vec![1; 1_000_000],
            },
            Node {
                element: Element::Divider,
                children: Vec::new(),
            },
        ],
    };
    let error = check_ui_tree(&tree).unwrap_err();
    assert!(error.contains("reachable twice"), "{error}");
}

#[test]
fn a_result_far_over_the_limit_is_refused_naming_the_limit() {
    let huge: BTreeMap<String, String> = (0..10_000)
        .map(|i| (i.to_string(), "x".repeat(100)))
        .collect();
    let error = output::check_size(&huge, 1024).unwrap_err();
    assert!(error.contains("1024-byte limit"), "{error}");
}
