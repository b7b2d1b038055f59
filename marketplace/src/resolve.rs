//! Dependency resolution with PubGrub.
//!
//! * Requirements are cargo's: `1.2` means `^1.2` (`>=1.2.0, <2.0.0`),
//!   `0.3.1` means `>=0.3.1, <0.4.0`, and `~`, `=`, `<`, `>`, wildcards and
//!   comma-separated lists mean what they mean in `Cargo.toml`.
//! * **The Panel's plugin API is a set of virtual packages**, one per
//!   compatibility line (`panel API 0.1`, `panel API 1`…): a plugin
//!   targeting API `0.1.3` depends on `panel API 0.1` at `>=0.1.3, <0.2.0`,
//!   and that virtual package has exactly the versions the Panel implements.
//!   Plugins for different lines can be installed together when the Panel
//!   implements both; a plugin for an API the Panel lacks explains itself.
//! * **Newest compatible versions** are chosen, except that a version the
//!   [`Lockfile`] pins is kept while it still fits.
//! * **Yanked versions** are skipped for new installs but chosen when the
//!   lockfile pins them. Pre-releases are chosen only when pinned or
//!   required exactly (`=2.0.0-beta.1`).
//! * **Failures are explained** in plain sentences built from PubGrub's
//!   derivation tree ([`ResolveError::Unsatisfiable`]), e.g. "quota-guard
//!   2.0.0 needs panel API >=0.2.0, <0.3.0, and this Panel supports API
//!   0.1.0".

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::fmt;
use std::ops::Bound;

use pubgrub::{
    DefaultStringReporter, Dependencies, DependencyProvider, DerivationTree, External,
    PackageResolutionStatistics, PubGrubError, Ranges, Reporter,
};
use semver::{Op, Version, VersionReq};

use crate::lockfile::{LockedPackage, Lockfile};

/// A set of versions.
pub type VersionSet = Ranges<Version>;

/// One release, as resolution needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRelease {
    /// sha256 of the package file.
    pub sha256: String,
    /// The plugin API version it targets.
    pub api: Version,
    /// Its dependencies.
    pub dependencies: BTreeMap<String, VersionReq>,
    /// Whether it is yanked.
    pub yanked: bool,
}

/// Every package's releases.
#[derive(Debug, Clone, Default)]
pub struct Index {
    packages: HashMap<String, BTreeMap<Version, IndexRelease>>,
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index::default()
    }

    /// Adds (or replaces) a release.
    pub fn insert(&mut self, id: impl Into<String>, version: Version, release: IndexRelease) {
        self.packages
            .entry(id.into())
            .or_default()
            .insert(version, release);
    }

    /// A package's releases.
    pub fn releases(&self, id: &str) -> Option<&BTreeMap<Version, IndexRelease>> {
        self.packages.get(id)
    }

    /// Number of packages.
    pub fn len(&self) -> usize {
        self.packages.len()
    }

    /// Whether there are no packages.
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }
}

/// The plugin API versions a Panel implements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelApiVersions {
    versions: BTreeSet<Version>,
}

impl PanelApiVersions {
    /// A Panel implementing exactly these API versions.
    pub fn new(versions: impl IntoIterator<Item = Version>) -> PanelApiVersions {
        PanelApiVersions {
            versions: versions.into_iter().collect(),
        }
    }

    /// The versions.
    pub fn versions(&self) -> impl Iterator<Item = &Version> {
        self.versions.iter()
    }
}

/// The compatibility line of a version, cargo-style: `1` for 1.x.y,
/// `0.3` for 0.3.z, `0.0.4` for 0.0.4.
pub fn compat_line(v: &Version) -> String {
    match (v.major, v.minor) {
        (0, 0) => format!("0.0.{}", v.patch),
        (0, minor) => format!("0.{minor}"),
        (major, _) => major.to_string(),
    }
}

/// A package in the resolution: the request, a plugin, or a virtual
/// package standing for one line of the Panel's API.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pkg {
    /// What was asked for.
    Root,
    /// A plugin by id.
    Plugin(String),
    /// The Panel's plugin API, one compatibility line.
    PanelApi(String),
}

impl fmt::Display for Pkg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pkg::Root => f.write_str("your request"),
            Pkg::Plugin(id) => f.write_str(id),
            Pkg::PanelApi(_) => f.write_str("panel API"),
        }
    }
}

/// Why resolution failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No set of versions satisfies the request.
    #[error("{explanation}")]
    Unsatisfiable {
        /// The reason in sentences, with what to do.
        explanation: String,
        /// PubGrub's full derivation, for the curious.
        derivation: String,
    },
    /// A locked version's digest is no longer the one in the index.
    #[error(
        "{id} {version} is locked with sha256 {locked}, but the index now lists {index}; the registry changed a published version"
    )]
    LockedDigestChanged {
        /// The package.
        id: String,
        /// The version.
        version: Version,
        /// The lockfile's digest.
        locked: String,
        /// The index's digest.
        index: String,
    },
    /// A package id in the request is not a valid plugin id.
    #[error("{0:?} is not a valid plugin id")]
    InvalidId(String),
    /// The solver failed in an unexpected way.
    #[error("resolution failed: {0}")]
    Internal(String),
}

/// The chosen versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Chosen version and release of each plugin.
    pub packages: BTreeMap<String, (Version, IndexRelease)>,
}

impl Resolution {
    /// The lockfile recording this resolution.
    pub fn lockfile(&self) -> Lockfile {
        Lockfile::new(
            self.packages
                .iter()
                .map(|(id, (version, release))| LockedPackage {
                    id: id.clone(),
                    version: version.clone(),
                    sha256: release.sha256.clone(),
                    dependencies: release.dependencies.keys().cloned().collect(),
                })
                .collect(),
        )
    }
}

/// Resolves `request` (plugin id → requirement) against `index` for a
/// Panel implementing `panel`, keeping `lock`ed versions where they fit.
pub fn resolve(
    index: &Index,
    panel: &PanelApiVersions,
    request: &BTreeMap<String, VersionReq>,
    lock: Option<&Lockfile>,
) -> Result<Resolution, ResolveError> {
    let provider = Provider {
        index,
        panel,
        request,
        locked: lock
            .map(|l| {
                l.packages
                    .iter()
                    .map(|p| (p.id.as_str(), &p.version))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let selected = match pubgrub::resolve(&provider, Pkg::Root, Version::new(0, 0, 0)) {
        Ok(selected) => selected,
        Err(PubGrubError::NoSolution(tree)) => {
            return Err(ResolveError::Unsatisfiable {
                explanation: provider.explain(&tree),
                derivation: DefaultStringReporter::report(&tree),
            });
        }
        Err(other) => return Err(ResolveError::Internal(other.to_string())),
    };
    let mut packages = BTreeMap::new();
    for (pkg, version) in selected {
        let Pkg::Plugin(id) = pkg else { continue };
        let release = index
            .releases(&id)
            .and_then(|r| r.get(&version))
            .ok_or_else(|| ResolveError::Internal(format!("{id} {version} vanished")))?;
        if let Some(locked) = lock.and_then(|l| l.get(&id))
            && locked.version == version
            && locked.sha256 != release.sha256
        {
            return Err(ResolveError::LockedDigestChanged {
                id,
                version,
                locked: locked.sha256.clone(),
                index: release.sha256.clone(),
            });
        }
        packages.insert(id, (version, release.clone()));
    }
    Ok(Resolution { packages })
}

/// Converts a cargo requirement into a version set.
pub fn req_to_set(req: &VersionReq) -> VersionSet {
    req.comparators.iter().fold(Ranges::full(), |acc, c| {
        acc.intersection(&comparator_set(c))
    })
}

fn comparator_set(c: &semver::Comparator) -> VersionSet {
    let major = c.major;
    let (minor, patch) = (c.minor, c.patch);
    let exact = |m: u64, n: u64, p: u64| Version {
        major: m,
        minor: n,
        patch: p,
        pre: c.pre.clone(),
        build: semver::BuildMetadata::EMPTY,
    };
    // The smallest version of a series, pre-releases included, so that
    // `<2.0.0` also excludes 2.0.0-beta.
    let floor = |m: u64, n: u64, p: u64| Version {
        major: m,
        minor: n,
        patch: p,
        pre: semver::Prerelease::new("0").unwrap_or(semver::Prerelease::EMPTY),
        build: semver::BuildMetadata::EMPTY,
    };
    let between = |lo: Version, hi: Version| Ranges::between(lo, hi);
    // The start of the series after the one the comparator names.
    let next_major = || floor(major + 1, 0, 0);
    let lower_of = || exact(major, minor.unwrap_or(0), patch.unwrap_or(0));
    match c.op {
        Op::Exact | Op::Wildcard => match (minor, patch) {
            (None, _) => between(floor(major, 0, 0), next_major()),
            (Some(n), None) => between(floor(major, n, 0), floor(major, n + 1, 0)),
            (Some(n), Some(p)) => Ranges::singleton(exact(major, n, p)),
        },
        Op::Greater => match (minor, patch) {
            (None, _) => Ranges::higher_than(floor(major + 1, 0, 0)),
            (Some(n), None) => Ranges::higher_than(floor(major, n + 1, 0)),
            (Some(n), Some(p)) => Ranges::strictly_higher_than(exact(major, n, p)),
        },
        Op::GreaterEq => Ranges::higher_than(lower_of()),
        Op::Less => Ranges::strictly_lower_than(match (minor, patch) {
            (None, _) => floor(major, 0, 0),
            (Some(n), None) => floor(major, n, 0),
            (Some(n), Some(p)) if c.pre.is_empty() => floor(major, n, p),
            (Some(n), Some(p)) => exact(major, n, p),
        }),
        Op::LessEq => match (minor, patch) {
            (None, _) => Ranges::strictly_lower_than(next_major()),
            (Some(n), None) => Ranges::strictly_lower_than(floor(major, n + 1, 0)),
            (Some(n), Some(p)) => Ranges::lower_than(exact(major, n, p)),
        },
        Op::Tilde => match (minor, patch) {
            (None, _) => between(lower_of(), next_major()),
            (Some(n), _) => between(lower_of(), floor(major, n + 1, 0)),
        },
        Op::Caret => {
            let upper = match (major, minor, patch) {
                (0, None, _) => floor(1, 0, 0),
                (0, Some(0), None) => floor(0, 1, 0),
                (0, Some(0), Some(p)) => floor(0, 0, p + 1),
                (0, Some(n), _) => floor(0, n + 1, 0),
                (m, _, _) => floor(m + 1, 0, 0),
            };
            between(lower_of(), upper)
        }
        // `semver::Op` is non-exhaustive; an unknown operator matches nothing.
        _ => Ranges::empty(),
    }
}

/// The range of API versions a plugin targeting `api` runs on: the same
/// compatibility line, at least `api`.
pub fn api_range(api: &Version) -> VersionSet {
    let req = VersionReq {
        comparators: vec![semver::Comparator {
            op: Op::Caret,
            major: api.major,
            minor: Some(api.minor),
            patch: Some(api.patch),
            pre: api.pre.clone(),
        }],
    };
    req_to_set(&req)
}

/// Describes a version set for people: `2.0.0`, `>=1.2.0, <2.0.0`,
/// `any version`.
pub fn describe_set(set: &VersionSet) -> String {
    if *set == Ranges::full() {
        return "any version".into();
    }
    if *set == Ranges::empty() {
        return "no version".into();
    }
    let show = |v: &Version| {
        if v.pre.as_str() == "0" {
            format!("{}.{}.{}", v.major, v.minor, v.patch)
        } else {
            v.to_string()
        }
    };
    set.iter()
        .map(|(lo, hi)| match (lo, hi) {
            (Bound::Included(a), Bound::Included(b)) if a == b => show(a),
            (lo, hi) => {
                let lo = match lo {
                    Bound::Included(a) => Some(format!(">={}", show(a))),
                    Bound::Excluded(a) => Some(format!(">{}", show(a))),
                    Bound::Unbounded => None,
                };
                let hi = match hi {
                    Bound::Included(b) => Some(format!("<={}", show(b))),
                    Bound::Excluded(b) => Some(format!("<{}", show(b))),
                    Bound::Unbounded => None,
                };
                lo.into_iter().chain(hi).collect::<Vec<_>>().join(", ")
            }
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

struct Provider<'a> {
    index: &'a Index,
    panel: &'a PanelApiVersions,
    request: &'a BTreeMap<String, VersionReq>,
    locked: HashMap<&'a str, &'a Version>,
}

impl Provider<'_> {
    fn api_versions<'s>(&'s self, line: &'s str) -> impl Iterator<Item = &'s Version> + 's {
        self.panel
            .versions
            .iter()
            .filter(move |v| compat_line(v) == line)
    }

    /// The versions of `pkg` in `set` that exist: one is named, several
    /// are described as the set.
    fn describe_versions(&self, pkg: &Pkg, set: &VersionSet) -> String {
        if let Pkg::Plugin(id) = pkg
            && let Some(releases) = self.index.releases(id)
        {
            let mut existing = releases.keys().filter(|v| set.contains(v));
            if let (Some(only), None) = (existing.next(), existing.next()) {
                return only.to_string();
            }
        }
        describe_set(set)
    }

    fn explain(&self, tree: &DerivationTree<Pkg, VersionSet, String>) -> String {
        let mut facts = Vec::new();
        collect_externals(tree, &mut facts);
        let mut sentences: Vec<String> = Vec::new();
        let mut advice: BTreeSet<String> = BTreeSet::new();
        for fact in facts {
            let sentence = match fact {
                External::NotRoot(..) => continue,
                External::FromDependencyOf(Pkg::Root, _, dep, set) => {
                    format!("you asked for {dep} {}", describe_set(set))
                }
                External::FromDependencyOf(who, vs, Pkg::PanelApi(_), set) => {
                    advice.insert(format!(
                        "pick a version of {who} built for this Panel's API, or upgrade the Panel"
                    ));
                    format!(
                        "{who} {} needs panel API {}",
                        self.describe_versions(who, vs),
                        describe_set(set)
                    )
                }
                External::FromDependencyOf(who, vs, dep, set) => format!(
                    "{who} {} depends on {dep} {}",
                    self.describe_versions(who, vs),
                    describe_set(set)
                ),
                External::NoVersions(Pkg::PanelApi(line), _) => {
                    let supported: Vec<String> =
                        self.panel.versions.iter().map(|v| v.to_string()).collect();
                    let mine: Vec<&Version> = self.api_versions(line).collect();
                    if supported.is_empty() {
                        "this Panel supports no plugin API at all".into()
                    } else if mine.is_empty() {
                        format!(
                            "this Panel supports API {} and nothing in the {line} line",
                            supported.join(", ")
                        )
                    } else {
                        format!("this Panel supports API {}", supported.join(", "))
                    }
                }
                External::NoVersions(Pkg::Plugin(id), set) => match self.index.releases(id) {
                    None => {
                        advice.insert(format!("check the spelling of {id}"));
                        format!("no plugin named {id} exists in the Marketplace")
                    }
                    Some(releases) => {
                        let matching: Vec<&Version> =
                            releases.keys().filter(|v| set.contains(v)).collect();
                        let all: Vec<String> = releases
                            .iter()
                            .filter(|(_, r)| !r.yanked)
                            .map(|(v, _)| v.to_string())
                            .collect();
                        if !matching.is_empty() {
                            advice.insert(format!(
                                "ask the publisher of {id} why it was yanked, or require another version"
                            ));
                            format!(
                                "every version of {id} matching {} is yanked",
                                describe_set(set)
                            )
                        } else {
                            advice.insert(format!("relax the requirement on {id}"));
                            format!(
                                "no version of {id} matches {} (available: {})",
                                describe_set(set),
                                if all.is_empty() {
                                    "none".to_owned()
                                } else {
                                    all.join(", ")
                                }
                            )
                        }
                    }
                },
                External::NoVersions(Pkg::Root, _) => continue,
                External::Custom(pkg, set, message) => {
                    format!("{pkg} {}: {message}", describe_set(set))
                }
            };
            if !sentences.contains(&sentence) {
                sentences.push(sentence);
            }
        }
        let mut text = String::from("Cannot install: ");
        text.push_str(&join_and(&sentences));
        text.push('.');
        if !advice.is_empty() {
            text.push_str(" To fix this, ");
            text.push_str(&advice.into_iter().collect::<Vec<_>>().join("; or "));
            text.push('.');
        }
        text
    }
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => "no versions fit together".into(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{}, and {last}", rest.join(", ")),
    }
}

fn collect_externals<'t>(
    tree: &'t DerivationTree<Pkg, VersionSet, String>,
    out: &mut Vec<&'t External<Pkg, VersionSet, String>>,
) {
    match tree {
        DerivationTree::External(external) => out.push(external),
        DerivationTree::Derived(derived) => {
            collect_externals(&derived.cause1, out);
            collect_externals(&derived.cause2, out);
        }
    }
}

impl DependencyProvider for Provider<'_> {
    type P = Pkg;
    type V = Version;
    type VS = VersionSet;
    type M = String;
    type Err = Infallible;
    type Priority = (u32, Reverse<usize>);

    fn prioritize(
        &self,
        package: &Pkg,
        range: &VersionSet,
        stats: &PackageResolutionStatistics,
    ) -> Self::Priority {
        let candidates = match package {
            Pkg::Root => 1,
            Pkg::PanelApi(line) => self
                .api_versions(line)
                .filter(|v| range.contains(v))
                .count(),
            Pkg::Plugin(id) => self
                .index
                .releases(id)
                .map(|r| r.keys().filter(|v| range.contains(v)).count())
                .unwrap_or(0),
        };
        (stats.conflict_count(), Reverse(candidates))
    }

    fn choose_version(
        &self,
        package: &Pkg,
        range: &VersionSet,
    ) -> Result<Option<Version>, Infallible> {
        Ok(match package {
            Pkg::Root => Some(Version::new(0, 0, 0)),
            Pkg::PanelApi(line) => self
                .api_versions(line)
                .filter(|v| range.contains(v))
                .last()
                .cloned(),
            Pkg::Plugin(id) => {
                let Some(releases) = self.index.releases(id) else {
                    return Ok(None);
                };
                if let Some(locked) = self.locked.get(id.as_str())
                    && range.contains(locked)
                    && releases.contains_key(*locked)
                {
                    return Ok(Some((*locked).clone()));
                }
                releases
                    .iter()
                    .rev()
                    .find(|(v, r)| {
                        !r.yanked
                            && range.contains(v)
                            && (v.pre.is_empty() || *range == Ranges::singleton((*v).clone()))
                    })
                    .map(|(v, _)| v.clone())
            }
        })
    }

    fn get_dependencies(
        &self,
        package: &Pkg,
        version: &Version,
    ) -> Result<Dependencies<Pkg, VersionSet, String>, Infallible> {
        Ok(match package {
            Pkg::Root => Dependencies::Available(
                self.request
                    .iter()
                    .map(|(id, req)| (Pkg::Plugin(id.clone()), req_to_set(req)))
                    .collect(),
            ),
            Pkg::PanelApi(_) => Dependencies::Available(Default::default()),
            Pkg::Plugin(id) => {
                let Some(release) = self.index.releases(id).and_then(|r| r.get(version)) else {
                    return Ok(Dependencies::Unavailable(format!(
                        "{id} {version} is not in the index"
                    )));
                };
                let mut deps: pubgrub::DependencyConstraints<Pkg, VersionSet> = release
                    .dependencies
                    .iter()
                    .map(|(dep, req)| (Pkg::Plugin(dep.clone()), req_to_set(req)))
                    .collect();
                deps.insert(
                    Pkg::PanelApi(compat_line(&release.api)),
                    api_range(&release.api),
                );
                Dependencies::Available(deps)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(req: &str) -> VersionSet {
        req_to_set(&VersionReq::parse(req).expect("req"))
    }

    fn v(s: &str) -> Version {
        Version::parse(s).expect("version")
    }

    #[test]
    fn requirements_follow_cargo_semantics() {
        assert!(set("1.2").contains(&v("1.9.0")));
        assert!(!set("1.2").contains(&v("2.0.0")));
        assert!(!set("1.2").contains(&v("1.1.9")));
        assert!(set("0.3.1").contains(&v("0.3.9")));
        assert!(!set("0.3.1").contains(&v("0.4.0")));
        assert!(!set("0.0.3").contains(&v("0.0.4")));
        assert!(set("~1.2.3").contains(&v("1.2.9")));
        assert!(!set("~1.2.3").contains(&v("1.3.0")));
        assert!(set("=1.2.3").contains(&v("1.2.3")));
        assert!(!set("=1.2.3").contains(&v("1.2.4")));
        assert!(set(">=1.0, <1.5").contains(&v("1.4.9")));
        assert!(!set(">=1.0, <1.5").contains(&v("1.5.0")));
        assert!(!set("<2.0.0").contains(&v("2.0.0-beta.1")));
        assert!(set("1.*").contains(&v("1.7.0")));
        assert!(set("*").contains(&v("7.0.0")));
        assert!(!set(">1.2").contains(&v("1.2.9")));
        assert!(set("<=1.2").contains(&v("1.2.9")));
    }

    #[test]
    fn version_sets_are_described_for_people() {
        assert_eq!(describe_set(&set("^1.2")), ">=1.2.0, <2.0.0");
        assert_eq!(describe_set(&set("=1.2.3")), "1.2.3");
        assert_eq!(describe_set(&set("*")), "any version");
    }
}
