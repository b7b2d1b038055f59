//! Puts a server on hold for an unpaid bill, and releases it: a server
//! widget of API 0.2.0 and the example of the `panel` capability's
//! `suspend-server` and `unsuspend-server` (scope `servers.suspend`).
//!
//! A real billing plugin would decide from its invoices (a schedule, a
//! payment provider's webhook); this one leaves the decision to an
//! administrator, who sees a form on the server's page: a reason (by
//! default [`DEFAULT_REASON`]) and "Put on hold", and "Release". The
//! Panel does the rest: the server is stopped, cannot be started,
//! reinstalled or sent console commands, and its files are read-only,
//! and its owner sees the reason.
//!
//! Only viewers whose own permissions hold `admin.servers` get the form;
//! the actions check again, since an action can be sent without the form.
//! The Panel's refusals (a server suspended already, a `server.suspend`
//! before-hook's veto) come back as the action's error, with the Panel's
//! sentence.

use cap_plugin_sdk::panel;
use cap_plugin_sdk::types::PluginError;
use cap_plugin_sdk::ui::{
    Action, ActionResult, Button, Element, FieldKind, Form, FormField, RenderContext, Tone,
    TreeBuilder, Ui, UiTree,
};

/// The plugin. Stateless: the suspension is the Panel's.
#[derive(Debug, Default)]
pub struct BillingHold;

cap_plugin_sdk::export_plugin!(BillingHold: ui);

const CONTRIBUTION: &str = "billing";
const HOLD: &str = "hold";
const RELEASE: &str = "release";
/// The permission the widget's actions need.
const ADMIN_PERMISSION: &str = "admin.servers";
/// The reason when the administrator gives none.
pub const DEFAULT_REASON: &str = "the bill is unpaid";

impl Ui for BillingHold {
    fn render(&self, context: &RenderContext) -> Result<UiTree, PluginError> {
        server_of(context)?;
        Ok(tree(is_admin(context)))
    }

    fn handle_action(
        &self,
        context: &RenderContext,
        action: &Action,
    ) -> Result<ActionResult, PluginError> {
        let server_id = server_of(context)?;
        if !is_admin(context) {
            return Err(PluginError::new(
                "forbidden",
                format!("holding a server needs {ADMIN_PERMISSION}"),
            ));
        }
        match action.name.as_str() {
            HOLD => {
                let reason = reason(action);
                panel::suspend_server(server_id, &reason)?;
                Ok(ActionResult::Notify((
                    format!("On hold: {reason}"),
                    Tone::Warning,
                )))
            }
            RELEASE => {
                panel::unsuspend_server(server_id)?;
                Ok(ActionResult::Notify(("Released".into(), Tone::Success)))
            }
            other => Err(PluginError::new(
                "unknown-action",
                format!("the billing widget has no action `{other}`"),
            )),
        }
    }
}

/// The reason the form sent, trimmed, or [`DEFAULT_REASON`].
fn reason(action: &Action) -> String {
    action
        .values
        .iter()
        .find(|kv| kv.key == "reason")
        .map(|kv| kv.value.trim())
        .filter(|r| !r.is_empty())
        .unwrap_or(DEFAULT_REASON)
        .to_owned()
}

fn server_of(context: &RenderContext) -> Result<&str, PluginError> {
    if context.contribution != CONTRIBUTION {
        return Err(PluginError::new(
            "unknown-contribution",
            format!(
                "the billing widget has no contribution `{}`",
                context.contribution
            ),
        ));
    }
    context.server_id.as_deref().ok_or_else(|| {
        PluginError::new("no-server", "the billing widget is shown on a server page")
    })
}

/// Whether the viewer administers servers (their own permissions).
fn is_admin(context: &RenderContext) -> bool {
    context.permissions.iter().any(|p| p == ADMIN_PERMISSION)
}

/// The form for administrators, a sentence for everyone else.
fn tree(admin: bool) -> UiTree {
    let mut tree = TreeBuilder::new();
    let mut children = Vec::new();
    if admin {
        children.push(tree.push(Element::Form(Form {
            fields: vec![FormField {
                name: "reason".into(),
                label: "Reason".into(),
                kind: FieldKind::Text,
                value: Some(DEFAULT_REASON.into()),
                options: Vec::new(),
                required: false,
            }],
            submit: Button {
                label: "Put on hold".into(),
                action: HOLD.into(),
                tone: Tone::Danger,
                confirm: Some("Suspend this server?".into()),
            },
        })));
        children.push(tree.push(Element::Button(Button {
            label: "Release".into(),
            action: RELEASE.into(),
            tone: Tone::Success,
            confirm: None,
        })));
    } else {
        children.push(tree.push(Element::Text(
            "Billing is handled by the administrators.".into(),
        )));
    }
    let root = tree.section(None, children);
    tree.finish(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_plugin_sdk::types::KeyValue;

    fn context(permissions: &[&str]) -> RenderContext {
        RenderContext {
            contribution: CONTRIBUTION.into(),
            server_id: Some("srv".into()),
            user_id: "usr".into(),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            server_permissions: Vec::new(),
        }
    }

    #[test]
    fn only_administrators_get_the_form() {
        let forms = |admin| {
            tree(admin)
                .nodes
                .iter()
                .filter(|n| matches!(n.element, Element::Form(_)))
                .count()
        };
        assert_eq!((forms(true), forms(false)), (1, 0));
        assert!(is_admin(&context(&[ADMIN_PERMISSION])));
        assert!(!is_admin(&context(&["settings.rename"])));
    }

    #[test]
    fn a_blank_reason_is_the_default_one() {
        let action = |value: &str| Action {
            name: HOLD.into(),
            values: vec![KeyValue {
                key: "reason".into(),
                value: value.into(),
            }],
        };
        assert_eq!(reason(&action("  ")), DEFAULT_REASON);
        assert_eq!(reason(&action(" invoice 7 ")), "invoice 7");
    }
}
