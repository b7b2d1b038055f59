//! Resolution: newest compatible versions, the Panel API as virtual
//! packages, yanks and lockfiles, and explanations people can act on.

use std::collections::BTreeMap;

use cap_marketplace::lockfile::Lockfile;
use cap_marketplace::resolve::{Index, IndexRelease, PanelApiVersions, ResolveError, resolve};
use semver::{Version, VersionReq};

fn v(s: &str) -> Version {
    Version::parse(s).expect("version")
}

fn release(api: &str, deps: &[(&str, &str)]) -> IndexRelease {
    IndexRelease {
        sha256: format!("{:0>64}", deps.len() + api.len()),
        api: v(api),
        dependencies: deps
            .iter()
            .map(|(id, req)| ((*id).to_owned(), VersionReq::parse(req).expect("req")))
            .collect(),
        yanked: false,
    }
}

fn request(items: &[(&str, &str)]) -> BTreeMap<String, VersionReq> {
    items
        .iter()
        .map(|(id, req)| ((*id).to_owned(), VersionReq::parse(req).expect("req")))
        .collect()
}

fn panel_01() -> PanelApiVersions {
    PanelApiVersions::new([v("0.1.0")])
}

fn chosen(resolution: &cap_marketplace::resolve::Resolution, id: &str) -> Version {
    resolution.packages[id].0.clone()
}

#[test]
fn the_newest_compatible_versions_are_chosen() {
    let mut index = Index::new();
    index.insert(
        "discord-webhook",
        v("1.0.0"),
        release("0.1.0", &[("http-kit", "1.2")]),
    );
    index.insert(
        "discord-webhook",
        v("1.4.0"),
        release("0.1.0", &[("http-kit", "1.3")]),
    );
    index.insert(
        "discord-webhook",
        v("2.0.0"),
        release("0.1.0", &[("http-kit", "2")]),
    );
    for version in ["1.2.0", "1.3.0", "1.9.5", "2.0.0"] {
        index.insert("http-kit", v(version), release("0.1.0", &[]));
    }
    let resolution = resolve(
        &index,
        &panel_01(),
        &request(&[("discord-webhook", "1")]),
        None,
    )
    .expect("resolves");
    assert_eq!(chosen(&resolution, "discord-webhook"), v("1.4.0"));
    assert_eq!(chosen(&resolution, "http-kit"), v("1.9.5"));
    let lock = resolution.lockfile();
    assert_eq!(lock.packages.len(), 2);
    assert_eq!(
        lock.get("discord-webhook").map(|p| p.dependencies.clone()),
        Some(vec!["http-kit".to_owned()])
    );
    assert_eq!(
        Lockfile::from_toml(&lock.to_toml()).expect("round trip"),
        lock
    );
}

#[test]
fn a_yanked_version_is_skipped_for_new_installs_but_kept_when_locked() {
    let mut index = Index::new();
    index.insert("quota-guard", v("1.0.0"), release("0.1.0", &[]));
    let mut yanked = release("0.1.0", &[]);
    yanked.yanked = true;
    index.insert("quota-guard", v("1.1.0"), yanked.clone());
    let fresh =
        resolve(&index, &panel_01(), &request(&[("quota-guard", "1")]), None).expect("resolves");
    assert_eq!(chosen(&fresh, "quota-guard"), v("1.0.0"));

    let lock = Lockfile::new(vec![cap_marketplace::lockfile::LockedPackage {
        id: "quota-guard".into(),
        version: v("1.1.0"),
        sha256: yanked.sha256.clone(),
        dependencies: vec![],
    }]);
    let pinned = resolve(
        &index,
        &panel_01(),
        &request(&[("quota-guard", "1")]),
        Some(&lock),
    )
    .expect("resolves");
    assert_eq!(chosen(&pinned, "quota-guard"), v("1.1.0"));

    // Only yanked versions match: say so.
    let err = resolve(
        &index,
        &panel_01(),
        &request(&[("quota-guard", "=1.1.0")]),
        None,
    )
    .expect_err("a yanked-only request fails");
    assert!(
        err.to_string()
            .contains("every version of quota-guard matching 1.1.0 is yanked"),
        "{err}"
    );
}

#[test]
fn a_locked_version_is_kept_even_when_a_newer_one_exists() {
    let mut index = Index::new();
    index.insert("quota-guard", v("1.0.0"), release("0.1.0", &[]));
    index.insert("quota-guard", v("1.2.0"), release("0.1.0", &[]));
    let first =
        resolve(&index, &panel_01(), &request(&[("quota-guard", "1")]), None).expect("resolves");
    let lock = Lockfile::new(vec![cap_marketplace::lockfile::LockedPackage {
        id: "quota-guard".into(),
        version: v("1.0.0"),
        sha256: first.packages["quota-guard"].1.sha256.clone(),
        dependencies: vec![],
    }]);
    let again = resolve(
        &index,
        &panel_01(),
        &request(&[("quota-guard", "1")]),
        Some(&lock),
    )
    .expect("resolves");
    assert_eq!(chosen(&again, "quota-guard"), v("1.0.0"));
    // A request the locked version no longer fits moves on.
    let moved = resolve(
        &index,
        &panel_01(),
        &request(&[("quota-guard", "1.1")]),
        Some(&lock),
    )
    .expect("resolves");
    assert_eq!(chosen(&moved, "quota-guard"), v("1.2.0"));
}

#[test]
fn a_locked_digest_that_changed_in_the_index_is_refused() {
    let mut index = Index::new();
    index.insert("quota-guard", v("1.0.0"), release("0.1.0", &[]));
    let lock = Lockfile::new(vec![cap_marketplace::lockfile::LockedPackage {
        id: "quota-guard".into(),
        version: v("1.0.0"),
        sha256: "f".repeat(64),
        dependencies: vec![],
    }]);
    let err = resolve(
        &index,
        &panel_01(),
        &request(&[("quota-guard", "1")]),
        Some(&lock),
    )
    .expect_err("a changed digest is refused");
    assert!(
        matches!(err, ResolveError::LockedDigestChanged { .. }),
        "{err}"
    );
}

#[test]
fn a_plugin_for_a_newer_panel_api_is_explained_in_words() {
    let mut index = Index::new();
    index.insert("quota-guard", v("2.0.0"), release("0.2.0", &[]));
    let err = resolve(&index, &panel_01(), &request(&[("quota-guard", "2")]), None)
        .expect_err("the Panel is too old");
    let text = err.to_string();
    assert!(
        text.contains("quota-guard 2.0.0 needs panel API >=0.2.0, <0.3.0"),
        "{text}"
    );
    assert!(text.contains("this Panel supports API 0.1.0"), "{text}");
    assert!(text.contains("upgrade the Panel"), "{text}");
    // An older line of the plugin fits, and is chosen when allowed.
    index.insert("quota-guard", v("1.5.0"), release("0.1.0", &[]));
    let ok = resolve(
        &index,
        &panel_01(),
        &request(&[("quota-guard", ">=1")]),
        None,
    )
    .expect("resolves");
    assert_eq!(chosen(&ok, "quota-guard"), v("1.5.0"));
}

#[test]
fn plugins_for_two_api_lines_install_together_on_a_panel_supporting_both() {
    let mut index = Index::new();
    index.insert("old-plugin", v("1.0.0"), release("0.1.0", &[]));
    index.insert("new-plugin", v("1.0.0"), release("0.2.1", &[]));
    let wanted = request(&[("old-plugin", "1"), ("new-plugin", "1")]);
    let both = PanelApiVersions::new([v("0.1.3"), v("0.2.4")]);
    let resolution = resolve(&index, &both, &wanted, None).expect("resolves");
    assert_eq!(resolution.packages.len(), 2);
    let err = resolve(&index, &PanelApiVersions::new([v("0.2.0")]), &wanted, None)
        .expect_err("0.2.0 is older than the 0.2.1 the plugin needs, and 0.1 is missing");
    assert!(
        err.to_string().contains("this Panel supports API 0.2.0"),
        "{err}"
    );
}

#[test]
fn conflicting_requirements_are_explained() {
    let mut index = Index::new();
    index.insert("a", v("1.0.0"), release("0.1.0", &[("shared", "1")]));
    index.insert("b", v("1.0.0"), release("0.1.0", &[("shared", "2")]));
    index.insert("shared", v("1.0.0"), release("0.1.0", &[]));
    index.insert("shared", v("2.0.0"), release("0.1.0", &[]));
    let err = resolve(
        &index,
        &panel_01(),
        &request(&[("a", "1"), ("b", "1")]),
        None,
    )
    .expect_err("a and b need different majors of shared");
    let text = err.to_string();
    assert!(
        text.contains("a 1.0.0 depends on shared >=1.0.0, <2.0.0") || text.contains("a >=1.0.0"),
        "{text}"
    );
    assert!(text.contains("depends on shared >=2.0.0, <3.0.0"), "{text}");
    let ResolveError::Unsatisfiable { derivation, .. } = err else {
        panic!("expected Unsatisfiable");
    };
    assert!(!derivation.is_empty());
}

#[test]
fn a_missing_or_misspelled_plugin_is_explained() {
    let mut index = Index::new();
    index.insert("quota-guard", v("1.0.0"), release("0.1.0", &[]));
    let err = resolve(&index, &panel_01(), &request(&[("quota-gaurd", "1")]), None)
        .expect_err("no such plugin");
    assert!(
        err.to_string()
            .contains("no plugin named quota-gaurd exists"),
        "{err}"
    );
    let err = resolve(&index, &panel_01(), &request(&[("quota-guard", "3")]), None)
        .expect_err("no such version");
    assert!(
        err.to_string()
            .contains("no version of quota-guard matches >=3.0.0, <4.0.0 (available: 1.0.0)"),
        "{err}"
    );
}
