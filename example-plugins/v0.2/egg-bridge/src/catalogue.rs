//! The catalogue's operations over a [`Kv`] store: import, list, export,
//! update check and removal, with the parsed eggs cached by digest.
//!
//! The cache is keyed by the data's digest, so an entry can never be
//! stale: new bytes have a new digest. It lives as long as the component
//! instance; another instance's import is seen on the next listing, which
//! lists the store every time (one `list-keys` call) and parses only eggs
//! it has not seen.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use cap_egg::Egg;
use cap_plugin_sdk::catalogue::{CatalogueError, Entry, Update};
use cap_plugin_sdk::types::PluginError;

use crate::info;
use crate::store::{self, Kv, Record, StoreError};

/// A kept egg, parsed, with its entry.
pub(crate) struct Kept {
    pub(crate) egg: Egg,
    pub(crate) entry: Entry,
}

impl Kept {
    /// Parses and checks a document.
    ///
    /// # Errors
    ///
    /// [`CatalogueError::Invalid`] naming each field that is wrong.
    pub(crate) fn from_document(document: &[u8]) -> Result<Kept, CatalogueError> {
        let egg =
            Egg::parse(document).map_err(|e| CatalogueError::Invalid(vec![info::egg_error(&e)]))?;
        let entry = info::entry(&egg).map_err(CatalogueError::Invalid)?;
        Ok(Kept { egg, entry })
    }
}

/// Parsed eggs by the digest of their bytes.
#[derive(Default)]
pub(crate) struct Cache(Mutex<HashMap<String, Arc<Kept>>>);

/// The catalogue over one store.
pub(crate) struct Catalogue<'a> {
    pub(crate) kv: &'a dyn Kv,
    pub(crate) cache: &'a Cache,
}

fn failed(error: StoreError) -> CatalogueError {
    let code = match &error {
        StoreError::Kv(e) => e.code(),
        StoreError::Corrupt(_) => "corrupt",
        StoreError::Full => "catalogue-full",
        StoreError::Exists => "exists",
    };
    CatalogueError::Failed(PluginError::new(code, error.to_string()))
}

impl Catalogue<'_> {
    fn load(&self, record: &Record) -> Result<Arc<Kept>, StoreError> {
        let cached = self
            .cache
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&record.digest)
            .cloned();
        if let Some(kept) = cached {
            return Ok(kept);
        }
        let bytes = store::read(self.kv, record)?;
        let mut kept = Kept::from_document(&bytes).map_err(|e| {
            StoreError::Corrupt(format!("{} no longer imports: {}", record.id, describe(&e)))
        })?;
        // The id it was kept as is the game type's, whatever a later
        // version of the bridge would derive: servers refer to it.
        kept.entry.game.id.clone_from(&record.id);
        let kept = Arc::new(kept);
        self.cache
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(record.digest.clone(), Arc::clone(&kept));
        Ok(kept)
    }

    /// Every kept egg, by id. An egg that cannot be read is left out and
    /// logged: one damaged egg does not hide the others.
    ///
    /// # Errors
    ///
    /// The store cannot be listed.
    pub(crate) fn all(&self) -> Result<Vec<Arc<Kept>>, StoreError> {
        let records = store::records(self.kv)?;
        let mut kept = Vec::with_capacity(records.len());
        for record in records.values() {
            match self.load(record) {
                Ok(egg) => kept.push(egg),
                Err(e) => cap_plugin_sdk::log::error!("egg {}: {e}", record.id),
            }
        }
        let listed: HashSet<&str> = records.values().map(|r| r.digest.as_str()).collect();
        self.cache
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|digest, _| listed.contains(digest.as_str()));
        Ok(kept)
    }

    /// The kept egg `id`.
    ///
    /// # Errors
    ///
    /// [`CatalogueError::NotFound`], or [`CatalogueError::Failed`] when the
    /// store fails or the egg cannot be read.
    pub(crate) fn get(&self, id: &str) -> Result<Arc<Kept>, CatalogueError> {
        let record = store::record(self.kv, id)
            .map_err(|e| failed(e.into()))?
            .ok_or_else(|| CatalogueError::NotFound(id.to_owned()))?;
        self.load(&record).map_err(failed)
    }

    /// What `document` would create.
    pub(crate) fn preview(&self, document: &[u8]) -> Result<Entry, CatalogueError> {
        Ok(Kept::from_document(document)?.entry)
    }

    /// Checks and keeps `document`.
    pub(crate) fn import(&self, document: &[u8], replace: bool) -> Result<Entry, CatalogueError> {
        let kept = Kept::from_document(document)?;
        let id = kept.entry.game.id.clone();
        let record = store::write(self.kv, &id, document, replace).map_err(|e| match e {
            StoreError::Exists => CatalogueError::Exists(id.clone()),
            other => failed(other),
        })?;
        let entry = kept.entry.clone();
        self.cache
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(record.digest, Arc::new(kept));
        Ok(entry)
    }

    /// The egg `id` in its own format.
    pub(crate) fn export(&self, id: &str) -> Result<Vec<u8>, CatalogueError> {
        Ok(self.get(id)?.egg.export().into_bytes())
    }

    /// Forgets `id`.
    pub(crate) fn remove(&self, id: &str) -> Result<(), CatalogueError> {
        match store::remove(self.kv, id) {
            Ok(true) => Ok(()),
            Ok(false) => Err(CatalogueError::NotFound(id.to_owned())),
            Err(e) => Err(failed(e)),
        }
    }

    /// The newer egg of `id` that `fetch` gets from the egg's update URL,
    /// and what it changes.
    ///
    /// # Errors
    ///
    /// [`CatalogueError::NotFound`]; [`CatalogueError::Failed`] when the
    /// egg names no update URL (`no-update-url`) or `fetch` fails;
    /// [`CatalogueError::Invalid`] when the newer egg is not one the bridge
    /// takes.
    pub(crate) fn check_update(
        &self,
        id: &str,
        fetch: impl FnOnce(&str) -> Result<Vec<u8>, PluginError>,
    ) -> Result<Update, CatalogueError> {
        let kept = self.get(id)?;
        let url = kept.egg.update_url.as_deref().ok_or_else(|| {
            CatalogueError::Failed(PluginError::new(
                "no-update-url",
                format!("the egg of {id} names no update URL"),
            ))
        })?;
        let document = fetch(url)?;
        let newer = Kept::from_document(&document)?;
        Ok(Update {
            changes: crate::update::changes(&kept.egg, &newer.egg),
            document,
        })
    }
}

/// One line for a refused document.
pub(crate) fn describe(error: &CatalogueError) -> String {
    match error {
        CatalogueError::Invalid(fields) => fields
            .iter()
            .map(|f| format!("{}: {}", f.key, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        CatalogueError::Exists(id) => format!("{id} is kept already"),
        CatalogueError::NotFound(id) => format!("no egg {id}"),
        CatalogueError::Failed(e) => format!("{}: {}", e.code, e.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryKv;
    use crate::tests::{community_eggs, minimal_egg};
    use serde_json::json;

    fn with_catalogue(test: impl FnOnce(&Catalogue<'_>, &MemoryKv)) {
        let kv = MemoryKv::default();
        let cache = Cache::default();
        test(
            &Catalogue {
                kv: &kv,
                cache: &cache,
            },
            &kv,
        );
    }

    fn ids(catalogue: &Catalogue<'_>) -> Vec<String> {
        catalogue
            .all()
            .expect("listed")
            .iter()
            .map(|k| k.entry.game.id.clone())
            .collect()
    }

    #[test]
    fn every_community_egg_imports_and_its_export_imports_as_the_same_game_type() {
        with_catalogue(|catalogue, _| {
            let eggs = community_eggs();
            assert_eq!(eggs.len(), 15);
            for (name, bytes) in &eggs {
                let entry = catalogue
                    .import(bytes, false)
                    .unwrap_or_else(|e| panic!("{name}: {}", describe(&e)));
                let exported = catalogue.export(&entry.game.id).expect("exported");
                let again = catalogue
                    .import(&exported, true)
                    .unwrap_or_else(|e| panic!("{name} exported: {}", describe(&e)));
                assert_eq!(again, entry, "{name}");
            }
            assert_eq!(ids(catalogue).len(), 15);
        });
    }

    #[test]
    fn a_second_import_of_an_id_is_refused_unless_it_replaces() {
        with_catalogue(|catalogue, _| {
            catalogue
                .import(&minimal_egg(|_| {}), false)
                .expect("imported");
            let newer = minimal_egg(|e| e["variables"][0]["default_value"] = json!("earth"));
            assert!(matches!(
                catalogue.import(&newer, false),
                Err(CatalogueError::Exists(id)) if id == "test"
            ));
            let kept = catalogue.get("test").expect("kept");
            assert_eq!(
                kept.entry.game.variables[0].default_value.as_deref(),
                Some("world")
            );
            catalogue.import(&newer, true).expect("replaced");
            let kept = catalogue.get("test").expect("kept");
            assert_eq!(
                kept.entry.game.variables[0].default_value.as_deref(),
                Some("earth")
            );
        });
    }

    #[test]
    fn a_refused_egg_keeps_nothing() {
        with_catalogue(|catalogue, kv| {
            let bad = minimal_egg(|e| e["variables"][0]["rules"] = json!("required|frobnicate"));
            let Err(CatalogueError::Invalid(fields)) = catalogue.import(&bad, false) else {
                panic!("refused as invalid");
            };
            assert_eq!(fields[0].key, "variables[0].rules");
            assert!(kv.map.borrow().is_empty());
        });
    }

    #[test]
    fn removing_forgets_the_egg_and_a_second_removal_is_not_found() {
        with_catalogue(|catalogue, kv| {
            catalogue
                .import(&minimal_egg(|_| {}), false)
                .expect("imported");
            catalogue.remove("test").expect("removed");
            assert!(ids(catalogue).is_empty());
            assert!(kv.map.borrow().is_empty());
            assert!(matches!(
                catalogue.remove("test"),
                Err(CatalogueError::NotFound(_))
            ));
            assert!(matches!(
                catalogue.export("test"),
                Err(CatalogueError::NotFound(_))
            ));
        });
    }

    #[test]
    fn an_update_lists_its_changes_and_keeps_nothing() {
        with_catalogue(|catalogue, kv| {
            let url = "https://raw.githubusercontent.com/eggs/test.json";
            catalogue
                .import(
                    &minimal_egg(|e| e["meta"]["update_url"] = json!(url)),
                    false,
                )
                .expect("imported");
            let before = kv.map.borrow().clone();
            let newer = minimal_egg(|e| {
                e["meta"]["update_url"] = json!(url);
                e["variables"][0]["default_value"] = json!("earth");
            });
            let update = catalogue
                .check_update("test", |asked| {
                    assert_eq!(asked, url);
                    Ok(newer.clone())
                })
                .expect("an update");
            assert_eq!(update.changes, ["variable NAME: default world -> earth"]);
            assert_eq!(update.document, newer);
            assert_eq!(*kv.map.borrow(), before);
        });
    }

    #[test]
    fn an_egg_without_an_update_url_has_no_update() {
        with_catalogue(|catalogue, _| {
            catalogue
                .import(&minimal_egg(|_| {}), false)
                .expect("imported");
            let Err(CatalogueError::Failed(error)) =
                catalogue.check_update("test", |_| panic!("nothing to fetch"))
            else {
                panic!("no update");
            };
            assert_eq!(error.code, "no-update-url");
        });
    }
}
