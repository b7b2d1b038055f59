//! A note on each server's page: a server widget of API 0.2.0, and the
//! example of its render context, which keeps the viewer's permissions on
//! the server (`server_permissions`) apart from the ones their roles give
//! everywhere (`permissions`).
//!
//! Everyone who sees the server sees its note. Editing it takes
//! `settings.rename` **on that server** (the owner, a subuser granted it,
//! a role reaching every server): the widget offers the form only then,
//! and the save action checks again, since an action can be sent without
//! the form. A global `settings.rename` that reaches only the viewer's own
//! servers does not let them edit the note of a server they are merely a
//! subuser of: the plugin never reads `permissions` for that.
//!
//! Notes live in the plugin's key-value store under `note/<server id>`, at
//! most [`MAX_NOTE_CHARS`] characters.

use cap_plugin_sdk::kv;
use cap_plugin_sdk::types::PluginError;
use cap_plugin_sdk::ui::{
    Action, ActionResult, Button, Element, FieldKind, Form, FormField, RenderContext, Tone,
    TreeBuilder, Ui, UiTree,
};

/// The plugin. Stateless: notes live in the key-value store.
#[derive(Debug, Default)]
pub struct ServerNotes;

cap_plugin_sdk::export_plugin!(ServerNotes: ui);

const CONTRIBUTION: &str = "notes";
const SAVE: &str = "save";
/// The server permission that edits a note.
const EDIT_PERMISSION: &str = "settings.rename";
/// The longest note kept.
pub const MAX_NOTE_CHARS: usize = 4000;

impl Ui for ServerNotes {
    fn render(&self, context: &RenderContext) -> Result<UiTree, PluginError> {
        let server_id = server_of(context)?;
        let note = load(server_id)?;
        Ok(note_tree(&note, may_edit(context)))
    }

    fn handle_action(
        &self,
        context: &RenderContext,
        action: &Action,
    ) -> Result<ActionResult, PluginError> {
        let server_id = server_of(context)?;
        if action.name != SAVE {
            return Err(PluginError::new(
                "unknown-action",
                format!("the notes have no action `{}`", action.name),
            ));
        }
        if !may_edit(context) {
            return Err(PluginError::new(
                "forbidden",
                format!("editing the note needs {EDIT_PERMISSION} on this server"),
            ));
        }
        let note = action
            .values
            .iter()
            .find(|kv| kv.key == "note")
            .map(|kv| kv.value.trim())
            .unwrap_or_default();
        if note.chars().count() > MAX_NOTE_CHARS {
            return Err(PluginError::new(
                "too-long",
                format!("a note has at most {MAX_NOTE_CHARS} characters"),
            ));
        }
        let key = note_key(server_id);
        if note.is_empty() {
            kv::delete(&key)?;
        } else {
            kv::set(&key, note.as_bytes())?;
        }
        Ok(ActionResult::Notify(("Note saved".into(), Tone::Success)))
    }
}

fn note_key(server_id: &str) -> String {
    format!("note/{server_id}")
}

fn load(server_id: &str) -> Result<String, PluginError> {
    Ok(kv::get(&note_key(server_id))?
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default())
}

fn server_of(context: &RenderContext) -> Result<&str, PluginError> {
    if context.contribution != CONTRIBUTION {
        return Err(PluginError::new(
            "unknown-contribution",
            format!("the notes have no contribution `{}`", context.contribution),
        ));
    }
    context
        .server_id
        .as_deref()
        .ok_or_else(|| PluginError::new("no-server", "the notes are shown on a server page"))
}

/// Whether the viewer may edit this server's note: by their permissions
/// on the server, never by those their roles give elsewhere.
fn may_edit(context: &RenderContext) -> bool {
    context
        .server_permissions
        .iter()
        .any(|p| p == EDIT_PERMISSION)
}

/// The note as text, and the form to change it when allowed.
fn note_tree(note: &str, edit: bool) -> UiTree {
    let mut tree = TreeBuilder::new();
    let text = tree.push(Element::Text(if note.is_empty() {
        "No note yet.".into()
    } else {
        note.to_owned()
    }));
    let mut children = vec![text];
    if edit {
        children.push(tree.push(Element::Form(Form {
            fields: vec![FormField {
                name: "note".into(),
                label: "Note".into(),
                kind: FieldKind::Text,
                value: Some(note.to_owned()),
                options: Vec::new(),
                required: false,
            }],
            submit: Button {
                label: "Save note".into(),
                action: SAVE.into(),
                tone: Tone::Neutral,
                confirm: None,
            },
        })));
    }
    let root = tree.section(None, children);
    tree.finish(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(permissions: &[&str], on_server: &[&str]) -> RenderContext {
        let strings = |list: &[&str]| list.iter().map(|p| (*p).to_owned()).collect();
        RenderContext {
            contribution: CONTRIBUTION.into(),
            server_id: Some("srv".into()),
            user_id: "usr".into(),
            permissions: strings(permissions),
            server_permissions: strings(on_server),
        }
    }

    #[test]
    fn only_the_permission_on_the_server_edits_the_note() {
        assert!(may_edit(&context(&[], &[EDIT_PERMISSION])));
        assert!(!may_edit(&context(
            &[EDIT_PERMISSION],
            &["control.console"]
        )));
    }

    #[test]
    fn the_form_is_offered_only_to_editors() {
        let forms = |edit| {
            note_tree("rules", edit)
                .nodes
                .iter()
                .filter(|n| matches!(n.element, Element::Form(_)))
                .count()
        };
        assert_eq!((forms(true), forms(false)), (1, 0));
    }

    #[test]
    fn a_widget_needs_a_server() {
        let mut ctx = context(&[], &[]);
        ctx.server_id = None;
        assert!(server_of(&ctx).is_err());
    }
}
