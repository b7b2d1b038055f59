//! `/api/v1/ui`: plugin-contributed UI, plus the two lists the Web UI needs
//! before it can draw a form: the sign-in providers and the game types.
//!
//! # Plugin-contributed UI
//!
//! A plugin of kind `ui` declares contributions in its manifest
//! (`[[ui.contributions]]`: an id, a slot — `nav-page`, `server-widget` or
//! `dashboard-widget` — and a title). The Panel never sends a plugin's
//! markup to the browser: the plugin returns a typed tree of elements
//! (`ui.render`), the Panel validates it and sends it as JSON, and the Web
//! UI draws it with its own components, all text as text. A click or form
//! submission comes back as an action (`ui.handle-action`).
//!
//! - `GET /ui/contributions`: what the active plugins contribute.
//! - `GET /ui/contributions/{plugin}/{contribution}?server_id=`: one
//!   rendered tree. Server widgets need `server_id`, and the caller must
//!   see that server (else `404`).
//! - `POST /ui/contributions/{plugin}/{contribution}/actions`: an action.
//!   Row buttons send the row's cells keyed by column index (`"0"`,
//!   `"1"`, …); forms send their fields by name.
//!
//! Both calls pass the plugin a `render-context` with the viewer's id and
//! permissions. Plugins decide what to show and allow from it; the Panel
//! does not second-guess which actions a tree offered, so the set must be
//! exactly what the viewer may do where the widget is shown:
//!
//! - a server widget gets the viewer's permissions *on that server*
//!   ([`access::resolve`]: everything for `admin.servers`, the owner's
//!   server permissions, or a subuser's grant), plus those of the
//!   rendering plugin's own declared permissions the viewer holds. Global
//!   role permissions are never merged in: a subuser without
//!   `control.console` on this server must not look like a console user
//!   because a role gives them the console where they are owner. A plugin's
//!   own permissions are the exception because they exist only as global
//!   grants, which an administrator gave for exactly this plugin (the
//!   registry refuses plugin declarations of built-in names, so this never
//!   adds a server permission); other plugins' permissions stay out;
//! - every other slot gets the viewer's global permissions.
//!
//! The 0.1.0 WIT contract (`render-context.permissions`) is unchanged; what
//! changed is which set the Panel puts in it.
//!
//! Calls run under the plugin's sandbox limits. The runtime checks the
//! tree's shape (indices in bounds, acyclic, node count and depth); this
//! module adds caps on text ([`MAX_TEXT_BYTES`] per string,
//! [`MAX_TOTAL_TEXT_BYTES`] per tree) and on list lengths. Failures are
//! problem documents with their own codes, never a `500`:
//!
//! | Status | Code | When |
//! | --- | --- | --- |
//! | 404 | `not-found` | no such active plugin or contribution, or server |
//! | 422 | `plugin-refused` | the plugin returned an error; its message is the `detail` |
//! | 502 | `ui-tree-invalid` | the plugin returned a tree the Panel refuses |
//! | 503 | `plugin-unavailable` | the plugin trapped, timed out, ran out of memory or is quarantined |

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::{Path, State};
use cap_runtime::api::{self, Element};
use cap_runtime::manifest::UiSlot;
use cap_runtime::{CallError, Plugin, PluginKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, ApiResult, Code, FieldError, FieldLocation};
use super::extract::{ApiJson, ApiQuery};
use crate::servers::access;
use crate::servers::server;

/// Longest string in a rendered tree, bytes.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Most text in one rendered tree, bytes.
pub const MAX_TOTAL_TEXT_BYTES: usize = 256 * 1024;
/// Most entries in one list of a tree (columns, rows, cells, buttons,
/// fields, options, series, points).
pub const MAX_LIST_LEN: usize = 1000;
/// Most values in one action.
pub const MAX_ACTION_VALUES: usize = 64;

/// The routes of this module, relative to `/api/v1`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_contributions))
        .routes(routes!(render))
        .routes(routes!(action))
        .routes(routes!(providers))
        .routes(routes!(game_types))
}

/// A failed plugin call as a problem: the plugin's own fault is logged
/// with its detail and answered without it.
fn call_failure(error: CallError) -> ApiError {
    match error {
        CallError::BadOutput { plugin, reason } => {
            tracing::warn!(%plugin, %reason, "a plugin returned an invalid UI tree");
            ApiError::refused(
                Code::UiTreeInvalid,
                format!("the plugin {plugin} returned a UI the Panel refuses: {reason}"),
            )
        }
        CallError::NotImplemented { plugin, .. } => {
            ApiError::NotFound(format!("the plugin {plugin} contributes no UI"))
        }
        other => {
            tracing::warn!(error = %other, "a UI plugin call failed");
            let plugin = match &other {
                CallError::Quarantined { plugin, .. }
                | CallError::Timeout { plugin, .. }
                | CallError::MemoryLimit { plugin, .. }
                | CallError::StackOverflow { plugin }
                | CallError::Trap { plugin, .. }
                | CallError::Instantiate { plugin, .. }
                | CallError::Overloaded { plugin, .. } => plugin.clone(),
                CallError::BadOutput { plugin, .. } | CallError::NotImplemented { plugin, .. } => {
                    plugin.clone()
                }
            };
            ApiError::refused(
                Code::PluginUnavailable,
                format!("the plugin {plugin} could not answer; try again later"),
            )
        }
    }
}

fn plugin_refused(plugin: &str, error: &api::PluginError) -> ApiError {
    ApiError::refused(
        Code::PluginRefused,
        format!("{plugin}: {}", truncate(&error.message, MAX_TEXT_BYTES)),
    )
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Where a contribution is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SlotBody {
    /// A page of its own, linked from the navigation.
    NavPage,
    /// A widget on a server's page.
    ServerWidget,
    /// A widget on the dashboard.
    DashboardWidget,
}

impl From<UiSlot> for SlotBody {
    fn from(slot: UiSlot) -> Self {
        match slot {
            UiSlot::NavPage => SlotBody::NavPage,
            UiSlot::ServerWidget => SlotBody::ServerWidget,
            UiSlot::DashboardWidget => SlotBody::DashboardWidget,
        }
    }
}

/// One UI contribution of an active plugin.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContributionBody {
    /// The plugin's id.
    pub plugin: String,
    /// The plugin's display name.
    pub plugin_name: String,
    /// The contribution's id (unique within the plugin).
    pub id: String,
    /// Where it is shown.
    pub slot: SlotBody,
    /// Its title.
    pub title: String,
}

/// The contributions of the active plugins.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContributionList {
    /// By plugin, in manifest order.
    pub items: Vec<ContributionBody>,
}

/// Lists the UI contributions of the active plugins.
#[utoipa::path(
    get,
    path = "/ui/contributions",
    tag = "ui",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The contributions", body = ContributionList),
    )
)]
pub(super) async fn list_contributions(
    _auth: Authenticated,
    State(state): State<AppState>,
) -> ApiResult<Json<ContributionList>> {
    let mut plugins = ui_plugins(&state);
    plugins.sort_by(|a, b| a.id().cmp(b.id()));
    let items = plugins
        .iter()
        .flat_map(|plugin| {
            let manifest = plugin.manifest();
            manifest
                .ui
                .iter()
                .flat_map(|ui| ui.contributions.iter())
                .map(|c| ContributionBody {
                    plugin: plugin.id().to_owned(),
                    plugin_name: manifest.plugin.name.clone(),
                    id: c.id.clone(),
                    slot: c.slot.into(),
                    title: c.title.clone(),
                })
                .collect::<Vec<_>>()
        })
        .collect();
    Ok(Json(ContributionList { items }))
}

fn ui_plugins(state: &AppState) -> Vec<Plugin> {
    state
        .plugins()
        .map(|p| p.active_plugins())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.manifest().has_kind(PluginKind::Ui))
        .collect()
}

/// Which server a contribution is shown for.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RenderParams {
    /// The server whose page shows the widget (required for server
    /// widgets, refused for others).
    #[serde(default)]
    pub server_id: Option<String>,
}

/// A tone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToneBody {
    /// Neutral.
    Neutral,
    /// Informational.
    Info,
    /// Success.
    Success,
    /// Warning.
    Warning,
    /// Danger.
    Danger,
}

impl From<api::Tone> for ToneBody {
    fn from(tone: api::Tone) -> Self {
        match tone {
            api::Tone::Neutral => ToneBody::Neutral,
            api::Tone::Info => ToneBody::Info,
            api::Tone::Success => ToneBody::Success,
            api::Tone::Warning => ToneBody::Warning,
            api::Tone::Danger => ToneBody::Danger,
        }
    }
}

/// A button; clicking it sends `action`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ButtonBody {
    /// Its label.
    pub label: String,
    /// The action name sent back.
    pub action: String,
    /// Its tone.
    pub tone: ToneBody,
    /// A question to confirm before sending.
    pub confirm: Option<String>,
}

impl From<api::Button> for ButtonBody {
    fn from(b: api::Button) -> Self {
        ButtonBody {
            label: b.label,
            action: b.action,
            tone: b.tone.into(),
            confirm: b.confirm,
        }
    }
}

/// A form field's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldKindBody {
    /// One line of text.
    Text,
    /// A number.
    Number,
    /// On or off (`true`/`false`).
    Toggle,
    /// One of `options`.
    Select,
    /// Text that is not shown.
    Secret,
}

/// A form field.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FormFieldBody {
    /// The name it is sent under.
    pub name: String,
    /// Its label.
    pub label: String,
    /// Its kind.
    pub kind: FieldKindBody,
    /// Its initial value.
    pub value: Option<String>,
    /// The choices of a `select`.
    pub options: Vec<String>,
    /// Whether it must be filled.
    pub required: bool,
}

/// A row of a table.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TableRowBody {
    /// Its cells, one per column.
    pub cells: Vec<String>,
    /// Buttons at the end of the row; their action carries the cells.
    pub actions: Vec<ButtonBody>,
}

/// A chart series.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SeriesBody {
    /// Its name.
    pub name: String,
    /// `[x, y]` points.
    pub points: Vec<Vec<f64>>,
}

/// One element of a rendered tree, tagged by `type`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ElementBody {
    /// A vertical stack of its children.
    Section {
        /// An optional title.
        title: Option<String>,
    },
    /// A horizontal row of its children.
    Row,
    /// A heading.
    Heading {
        /// Its text.
        text: String,
    },
    /// A paragraph.
    Text {
        /// Its text.
        text: String,
    },
    /// A small label.
    Badge {
        /// Its text.
        text: String,
        /// Its tone.
        tone: ToneBody,
    },
    /// A labelled value.
    Stat {
        /// The label.
        label: String,
        /// The value.
        value: String,
    },
    /// A notice.
    Alert {
        /// Its text.
        text: String,
        /// Its tone.
        tone: ToneBody,
    },
    /// A button.
    Button {
        /// The button.
        button: ButtonBody,
    },
    /// A form.
    Form {
        /// Its fields.
        fields: Vec<FormFieldBody>,
        /// Its submit button.
        submit: ButtonBody,
    },
    /// A table.
    Table {
        /// Column titles.
        columns: Vec<String>,
        /// Rows.
        rows: Vec<TableRowBody>,
    },
    /// A chart.
    Chart {
        /// `line` or `bar`.
        kind: String,
        /// Its series.
        series: Vec<SeriesBody>,
    },
    /// A separator.
    Divider,
}

/// One node: an element and, for sections and rows, its children as
/// indices into `nodes`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeBody {
    /// The element.
    pub element: ElementBody,
    /// Child indices.
    pub children: Vec<u32>,
}

/// A rendered contribution: a validated tree.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TreeBody {
    /// Index of the root in `nodes`.
    pub root: u32,
    /// The nodes.
    pub nodes: Vec<NodeBody>,
}

/// Counts text and list lengths of a tree while converting it.
struct Budget {
    total: usize,
    error: Option<String>,
}

impl Budget {
    fn text(&mut self, what: &str, text: String) -> String {
        if self.error.is_none() {
            if text.len() > MAX_TEXT_BYTES {
                self.error = Some(format!(
                    "{what} is {} bytes; the limit is {MAX_TEXT_BYTES}",
                    text.len()
                ));
            }
            self.total = self.total.saturating_add(text.len());
            if self.total > MAX_TOTAL_TEXT_BYTES {
                self.error = Some(format!(
                    "the tree has more than {MAX_TOTAL_TEXT_BYTES} bytes of text"
                ));
            }
        }
        text
    }

    fn list<T>(&mut self, what: &str, list: Vec<T>) -> Vec<T> {
        if self.error.is_none() && list.len() > MAX_LIST_LEN {
            self.error = Some(format!(
                "{what} has {} entries; the limit is {MAX_LIST_LEN}",
                list.len()
            ));
        }
        list
    }

    fn texts(&mut self, what: &str, list: Vec<String>) -> Vec<String> {
        let list = self.list(what, list);
        list.into_iter().map(|t| self.text(what, t)).collect()
    }

    fn button(&mut self, b: api::Button) -> ButtonBody {
        let b = ButtonBody::from(b);
        ButtonBody {
            label: self.text("a button label", b.label),
            action: self.text("a button action", b.action),
            tone: b.tone,
            confirm: b.confirm.map(|c| self.text("a confirmation", c)),
        }
    }

    fn element(&mut self, element: Element) -> ElementBody {
        match element {
            Element::Section(title) => ElementBody::Section {
                title: title.map(|t| self.text("a section title", t)),
            },
            Element::Row => ElementBody::Row,
            Element::Heading(text) => ElementBody::Heading {
                text: self.text("a heading", text),
            },
            Element::Text(text) => ElementBody::Text {
                text: self.text("a text", text),
            },
            Element::Badge((text, tone)) => ElementBody::Badge {
                text: self.text("a badge", text),
                tone: tone.into(),
            },
            Element::Stat(kv) => ElementBody::Stat {
                label: self.text("a stat label", kv.key),
                value: self.text("a stat value", kv.value),
            },
            Element::Alert((text, tone)) => ElementBody::Alert {
                text: self.text("an alert", text),
                tone: tone.into(),
            },
            Element::Button(b) => ElementBody::Button {
                button: self.button(b),
            },
            Element::Form(form) => {
                let fields = self.list("a form", form.fields);
                ElementBody::Form {
                    fields: fields
                        .into_iter()
                        .map(|f| FormFieldBody {
                            name: self.text("a field name", f.name),
                            label: self.text("a field label", f.label),
                            kind: match f.kind {
                                api::FieldKind::Text => FieldKindBody::Text,
                                api::FieldKind::Number => FieldKindBody::Number,
                                api::FieldKind::Toggle => FieldKindBody::Toggle,
                                api::FieldKind::Select => FieldKindBody::Select,
                                api::FieldKind::Secret => FieldKindBody::Secret,
                            },
                            value: f.value.map(|v| self.text("a field value", v)),
                            options: self.texts("a field's options", f.options),
                            required: f.required,
                        })
                        .collect(),
                    submit: self.button(form.submit),
                }
            }
            Element::Table(table) => {
                let columns = self.texts("a table's columns", table.columns);
                let rows = self.list("a table", table.rows);
                ElementBody::Table {
                    columns,
                    rows: rows
                        .into_iter()
                        .map(|row| {
                            let cells = self.texts("a row", row.cells);
                            let actions = self.list("a row's buttons", row.actions);
                            TableRowBody {
                                cells,
                                actions: actions.into_iter().map(|b| self.button(b)).collect(),
                            }
                        })
                        .collect(),
                }
            }
            Element::Chart(chart) => {
                let series = self.list("a chart", chart.series);
                ElementBody::Chart {
                    kind: match chart.kind {
                        api::ChartKind::Line => "line".to_owned(),
                        api::ChartKind::Bar => "bar".to_owned(),
                    },
                    series: series
                        .into_iter()
                        .map(|s| SeriesBody {
                            name: self.text("a series name", s.name),
                            points: self
                                .list("a series", s.points)
                                .into_iter()
                                .map(|(x, y)| vec![finite(x), finite(y)])
                                .collect(),
                        })
                        .collect(),
                }
            }
            Element::Divider => ElementBody::Divider,
        }
    }
}

/// JSON has no NaN or infinity; such points become 0.
fn finite(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}

/// Converts a tree the runtime already checked for shape, enforcing the
/// text and list caps.
pub fn tree_body(tree: api::UiTree) -> Result<TreeBody, String> {
    let mut budget = Budget {
        total: 0,
        error: None,
    };
    let root = tree.root;
    let nodes = tree
        .nodes
        .into_iter()
        .map(|node| NodeBody {
            element: budget.element(node.element),
            children: node.children,
        })
        .collect();
    match budget.error {
        Some(error) => Err(error),
        None => Ok(TreeBody { root, nodes }),
    }
}

/// The active plugin `plugin_id` with contribution `contribution`, and the
/// render context for the caller (checking the server when the slot needs
/// one).
async fn context_for(
    state: &AppState,
    auth: &Authenticated,
    plugin_id: &str,
    contribution: &str,
    server_id: Option<String>,
) -> ApiResult<(Plugin, api::RenderContext)> {
    let not_found = || {
        ApiError::NotFound(format!(
            "no active plugin {plugin_id} contributes {contribution}"
        ))
    };
    let plugin = state
        .plugins()
        .and_then(|p| p.active(plugin_id))
        .filter(|p| p.manifest().has_kind(PluginKind::Ui))
        .ok_or_else(not_found)?;
    let slot = plugin
        .manifest()
        .ui
        .iter()
        .flat_map(|ui| ui.contributions.iter())
        .find(|c| c.id == contribution)
        .map(|c| c.slot)
        .ok_or_else(not_found)?;
    let mut permissions: BTreeSet<String> = crate::identity::permissions::all()
        .into_iter()
        .filter(|p| auth.principal.has_permission(p))
        .collect();
    match (slot, server_id) {
        (UiSlot::ServerWidget, Some(id)) => {
            let missing = || ApiError::NotFound(format!("server {id} does not exist"));
            let server = server::get(state.db(), &id).await?.ok_or_else(missing)?;
            let access = access::resolve(state.db(), &auth.principal, &server)
                .await?
                .ok_or_else(missing)?;
            let on_server = access.names();
            // 0.2.x keeps the two sets apart (`permissions` everywhere,
            // `server-permissions` here). 0.1.x has one list, so a server
            // widget gets this server's permissions plus the plugin's own
            // ones the viewer holds: nothing else of the global set, which
            // a plugin would otherwise read as rights on this server.
            let (permissions, server_permissions) =
                if plugin.component_info().api_version.minor >= 2 {
                    (permissions.into_iter().collect(), on_server)
                } else {
                    let own = crate::identity::permissions::plugin_declared();
                    permissions.retain(|p| own.get(p).is_some_and(|d| d.plugin == plugin.id()));
                    permissions.extend(on_server);
                    (permissions.into_iter().collect(), Vec::new())
                };
            let context = api::RenderContext {
                contribution: contribution.to_owned(),
                server_id: Some(server.id),
                user_id: auth.principal.user_id().to_owned(),
                permissions,
                server_permissions,
            };
            Ok((plugin, context))
        }
        (UiSlot::ServerWidget, None) => Err(ApiError::field(
            FieldLocation::Query,
            "server_id",
            "a server widget is rendered for a server",
        )),
        (_, Some(_)) => Err(ApiError::field(
            FieldLocation::Query,
            "server_id",
            "only server widgets are rendered for a server",
        )),
        (_, None) => Ok((
            plugin,
            api::RenderContext {
                contribution: contribution.to_owned(),
                server_id: None,
                user_id: auth.principal.user_id().to_owned(),
                permissions: permissions.into_iter().collect(),
                server_permissions: Vec::new(),
            },
        )),
    }
}

/// Renders one contribution for the caller.
#[utoipa::path(
    get,
    path = "/ui/contributions/{plugin}/{contribution}",
    tag = "ui",
    security(("bearer" = [])),
    params(
        ("plugin" = String, Path, description = "The plugin's id"),
        ("contribution" = String, Path, description = "The contribution's id"),
        RenderParams,
    ),
    responses(
        (status = 200, description = "The rendered tree", body = TreeBody),
        (status = 404, description = "No such active plugin, contribution or visible server"),
        (status = 422, description = "server_id missing or not allowed, or the plugin refused (plugin-refused)"),
        (status = 502, description = "The plugin returned an invalid tree (ui-tree-invalid)"),
        (status = 503, description = "The plugin failed (plugin-unavailable)"),
    )
)]
pub(super) async fn render(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((plugin_id, contribution)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<RenderParams>,
) -> ApiResult<Json<TreeBody>> {
    let (plugin, context) =
        context_for(&state, &auth, &plugin_id, &contribution, params.server_id).await?;
    let tree = match plugin.render_ui(&context).await.map_err(call_failure)? {
        Ok(tree) => tree,
        Err(error) => return Err(plugin_refused(&plugin_id, &error)),
    };
    tree_body(tree).map(Json).map_err(|reason| {
        call_failure(CallError::BadOutput {
            plugin: plugin_id.clone(),
            reason,
        })
    })
}

/// An action: a clicked button or a submitted form.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// The server whose page shows the widget (server widgets only).
    #[serde(default)]
    pub server_id: Option<String>,
    /// The button's `action`.
    pub name: String,
    /// Form fields by name, or a row's cells by column index.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
}

/// What the plugin answered.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum ActionResultBody {
    /// Render the contribution again.
    Refresh,
    /// Show a short message.
    Notify {
        /// The message.
        message: String,
        /// Its tone.
        tone: ToneBody,
    },
}

/// Sends an action to the plugin.
#[utoipa::path(
    post,
    path = "/ui/contributions/{plugin}/{contribution}/actions",
    tag = "ui",
    security(("bearer" = [])),
    params(
        ("plugin" = String, Path, description = "The plugin's id"),
        ("contribution" = String, Path, description = "The contribution's id"),
    ),
    request_body = ActionRequest,
    responses(
        (status = 200, description = "What the plugin answered", body = ActionResultBody),
        (status = 404, description = "No such active plugin, contribution or visible server"),
        (status = 422, description = "Invalid fields, or the plugin refused (plugin-refused)"),
        (status = 502, description = "The plugin answered with invalid data (ui-tree-invalid)"),
        (status = 503, description = "The plugin failed (plugin-unavailable)"),
    )
)]
pub(super) async fn action(
    auth: Authenticated,
    State(state): State<AppState>,
    Path((plugin_id, contribution)): Path<(String, String)>,
    ApiJson(body): ApiJson<ActionRequest>,
) -> ApiResult<Json<ActionResultBody>> {
    let mut errors = Vec::new();
    if body.name.is_empty() || body.name.len() > 128 {
        errors.push(FieldError::new(
            FieldLocation::Body,
            "name",
            "must be 1 to 128 bytes",
        ));
    }
    if body.values.len() > MAX_ACTION_VALUES {
        errors.push(FieldError::new(
            FieldLocation::Body,
            "values",
            format!("at most {MAX_ACTION_VALUES} values"),
        ));
    }
    for (key, value) in &body.values {
        if key.is_empty() || key.len() > 128 || value.len() > MAX_TEXT_BYTES {
            errors.push(FieldError::new(
                FieldLocation::Body,
                format!("values.{}", truncate(key, 128)),
                format!("names are 1 to 128 bytes, values at most {MAX_TEXT_BYTES}"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (plugin, context) =
        context_for(&state, &auth, &plugin_id, &contribution, body.server_id).await?;
    let action = api::Action {
        name: body.name,
        values: body
            .values
            .into_iter()
            .map(|(key, value)| api::KeyValue { key, value })
            .collect(),
    };
    let result = match plugin
        .handle_ui_action(&context, &action)
        .await
        .map_err(call_failure)?
    {
        Ok(result) => result,
        Err(error) => return Err(plugin_refused(&plugin_id, &error)),
    };
    match result {
        api::ActionResult::Refresh => Ok(Json(ActionResultBody::Refresh)),
        api::ActionResult::Notify((message, tone)) if message.len() <= MAX_TEXT_BYTES => {
            Ok(Json(ActionResultBody::Notify {
                message,
                tone: tone.into(),
            }))
        }
        api::ActionResult::Notify(_) => Err(call_failure(CallError::BadOutput {
            plugin: plugin_id,
            reason: format!("a notification is longer than {MAX_TEXT_BYTES} bytes"),
        })),
    }
}

/// A sign-in provider.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProviderBody {
    /// The plugin id, sent as `provider` to `/auth/login`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `password`, `redirect` or `token`.
    pub kind: String,
    /// What it is.
    pub description: String,
}

/// The sign-in providers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProviderList {
    /// By id.
    pub items: Vec<ProviderBody>,
}

/// Lists the active auth-provider plugins, for the sign-in page. Needs no
/// authentication; a provider that cannot describe itself is left out.
#[utoipa::path(
    get,
    path = "/auth/providers",
    tag = "auth",
    responses(
        (status = 200, description = "The providers", body = ProviderList),
    )
)]
pub(super) async fn providers(State(state): State<AppState>) -> Json<ProviderList> {
    let mut items = Vec::new();
    if let Some(identity) = state.identity() {
        let registry = identity.providers();
        let mut ids = registry.ids();
        ids.sort();
        for id in ids {
            let Some(plugin) = registry.get(&id) else {
                continue;
            };
            match plugin.describe_auth().await {
                Ok(info) => items.push(ProviderBody {
                    id,
                    name: truncate(&info.name, 256).to_owned(),
                    kind: match info.kind {
                        api::ProviderKind::Password => "password",
                        api::ProviderKind::Redirect => "redirect",
                        api::ProviderKind::Token => "token",
                    }
                    .to_owned(),
                    description: truncate(&info.description, 1024).to_owned(),
                }),
                Err(error) => {
                    tracing::warn!(%id, %error, "an auth provider cannot describe itself")
                }
            }
        }
    }
    Json(ProviderList { items })
}

/// A game variable, as the create-server form needs it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VariableBody {
    /// The key (`MINECRAFT_VERSION`).
    pub key: String,
    /// Its name.
    pub name: String,
    /// What it means.
    pub description: String,
    /// `string`, `integer`, `boolean` or `choice`.
    pub kind: String,
    /// The default value.
    pub default_value: Option<String>,
    /// Whether users see it (an editable variable is always seen).
    pub user_viewable: bool,
    /// Whether users may change it.
    pub user_editable: bool,
    /// Whether a value is required.
    pub required: bool,
    /// The choices of a `choice` variable.
    pub choices: Vec<String>,
    /// Every rule its value must follow, as people read them (`at most 64
    /// characters`, `matches the pattern [a-z]+`): what an admin reviews
    /// before importing a game type.
    pub rules: Vec<String>,
}

/// A game type offered by an active game-type plugin.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GameTypeBody {
    /// The plugin id, sent as `game.plugin`.
    pub plugin: String,
    /// The game type's id among the plugin's, sent as `game.type`.
    #[serde(rename = "type")]
    pub game_type: String,
    /// The plugin's version.
    pub version: String,
    /// The game's name.
    pub name: String,
    /// What it is.
    pub description: String,
    /// Smallest memory limit, MiB.
    pub min_memory_mb: u32,
    /// Its variables.
    pub variables: Vec<VariableBody>,
    /// The images it runs in on container nodes, the default first (sent
    /// as `image`); empty when its package names one.
    pub images: Vec<ImageBody>,
    /// The startup commands a server may pick among, the default first
    /// (sent as `startup_command`); empty: one startup.
    pub startup_commands: Vec<String>,
    /// Files users may not reach through file access, in `.gitignore`
    /// syntax (the egg's `file_denylist`).
    pub file_denylist: Vec<String>,
    /// The features it declares (`eula`, `java_version`, ...), none of
    /// which the Panel acts on yet: shown to admins as such.
    pub features: Vec<String>,
}

/// A container image a game type runs in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImageBody {
    /// What people see.
    pub name: String,
    /// The image reference, sent as `image`.
    pub reference: String,
}

/// A variable as the API shows it.
pub(super) fn variable_body(v: api::Variable) -> VariableBody {
    VariableBody {
        rules: v.rules.iter().map(rule_text).collect(),
        required: v
            .rules
            .iter()
            .any(|r| matches!(r, api::ValidationRule::Required)),
        choices: v
            .rules
            .iter()
            .find_map(|r| match r {
                api::ValidationRule::OneOf(values) => Some(values.clone()),
                _ => None,
            })
            .unwrap_or_default(),
        key: v.key,
        name: v.name,
        description: v.description,
        kind: match v.kind {
            api::VariableType::String => "string",
            api::VariableType::Integer => "integer",
            api::VariableType::Boolean => "boolean",
            api::VariableType::Choice => "choice",
        }
        .to_owned(),
        default_value: v.default_value,
        user_viewable: v.user_viewable || v.user_editable,
        user_editable: v.user_editable,
    }
}

/// A validation rule in the words the Panel's own refusals use
/// ([`crate::servers::variables`]: "must be at most 64 characters").
fn rule_text(rule: &api::ValidationRule) -> String {
    match rule {
        api::ValidationRule::Required => "required".to_owned(),
        api::ValidationRule::MinLength(n) => format!("at least {n} characters"),
        api::ValidationRule::MaxLength(n) => format!("at most {n} characters"),
        api::ValidationRule::Min(n) => format!("at least {n}"),
        api::ValidationRule::Max(n) => format!("at most {n}"),
        api::ValidationRule::Pattern(p) => format!("matches the pattern {p}"),
        api::ValidationRule::OneOf(values) => format!("one of: {}", values.join(", ")),
    }
}

/// The game types.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GameTypeList {
    /// By plugin id.
    pub items: Vec<GameTypeBody>,
}

/// Lists the game types of the active game-type plugins (each plugin's
/// own, one or many), for the create-server form. A plugin that cannot
/// list its game types is left out.
#[utoipa::path(
    get,
    path = "/game-types",
    tag = "servers",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The game types", body = GameTypeList),
    )
)]
pub(super) async fn game_types(
    _auth: Authenticated,
    State(state): State<AppState>,
) -> Json<GameTypeList> {
    let mut plugins: Vec<Plugin> = state
        .plugins()
        .map(|p| p.active_plugins())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.manifest().has_kind(PluginKind::GameType))
        .collect();
    plugins.sort_by(|a, b| a.id().cmp(b.id()));
    let mut items = Vec::new();
    for plugin in plugins {
        let games = match plugin.game_types().await {
            Ok(games) => games,
            Err(error) => {
                tracing::warn!(plugin = %plugin.id(), %error, "a game-type plugin cannot list its game types");
                continue;
            }
        };
        for info in games {
            items.push(GameTypeBody {
                plugin: plugin.id().to_owned(),
                game_type: info.id,
                images: info
                    .images
                    .into_iter()
                    .map(|i| ImageBody {
                        name: i.name,
                        reference: i.reference,
                    })
                    .collect(),
                features: info.features,
                startup_commands: info.startup_commands,
                file_denylist: info.file_denylist,
                version: plugin.manifest().plugin.version.to_string(),
                name: info.name,
                description: info.description,
                min_memory_mb: info.min_memory_mb,
                variables: info
                    .variables
                    .into_iter()
                    .filter(|v| v.user_viewable || v.user_editable)
                    .map(variable_body)
                    .collect(),
            });
        }
    }
    Json(GameTypeList { items })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_runtime::api::{Node, UiTree};

    fn tree_of(element: Element) -> UiTree {
        UiTree {
            root: 0,
            nodes: vec![Node {
                element,
                children: vec![],
            }],
        }
    }

    #[test]
    fn a_tree_with_markup_in_its_text_passes_through_as_text() {
        let body = tree_body(tree_of(Element::Text("<script>alert(1)</script>".into())))
            .expect("a valid tree");
        let json = serde_json::to_value(&body).expect("serializes");
        assert_eq!(json["nodes"][0]["element"]["type"], "text");
        assert_eq!(
            json["nodes"][0]["element"]["text"],
            "<script>alert(1)</script>"
        );
    }

    #[test]
    fn a_string_over_the_text_cap_is_refused() {
        let error = tree_body(tree_of(Element::Heading("x".repeat(MAX_TEXT_BYTES + 1))))
            .expect_err("too long");
        assert!(error.contains("a heading"), "{error}");
    }

    #[test]
    fn too_much_text_in_total_is_refused() {
        let cells = vec!["y".repeat(MAX_TEXT_BYTES); 10];
        let rows = vec![
            api::TableRow {
                cells,
                actions: vec![]
            };
            MAX_TOTAL_TEXT_BYTES / (MAX_TEXT_BYTES * 10) + 1
        ];
        let error = tree_body(tree_of(Element::Table(api::Table {
            columns: vec![],
            rows,
        })))
        .expect_err("too much text");
        assert!(error.contains("bytes of text"), "{error}");
    }

    #[test]
    fn a_table_with_too_many_rows_is_refused() {
        let rows = vec![
            api::TableRow {
                cells: vec![],
                actions: vec![]
            };
            MAX_LIST_LEN + 1
        ];
        let error = tree_body(tree_of(Element::Table(api::Table {
            columns: vec![],
            rows,
        })))
        .expect_err("too many rows");
        assert!(error.contains("a table has"), "{error}");
    }

    #[test]
    fn chart_points_that_are_not_finite_become_zero() {
        let body = tree_body(tree_of(Element::Chart(api::Chart {
            kind: api::ChartKind::Line,
            series: vec![api::Series {
                name: "s".into(),
                points: vec![(f64::NAN, f64::INFINITY), (1.0, 2.0)],
            }],
        })))
        .expect("a valid tree");
        let ElementBody::Chart { series, .. } = &body.nodes[0].element else {
            panic!("a chart");
        };
        assert_eq!(series[0].points, [vec![0.0, 0.0], vec![1.0, 2.0]]);
    }
}
