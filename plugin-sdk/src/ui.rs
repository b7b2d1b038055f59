//! UI contributions (plugin kind `ui`).
//!
//! Plugins never send HTML, CSS or script. They describe a tree of typed
//! elements (sections, text, stats, tables, forms, charts, buttons) and the
//! Panel renders it with its own components, escaping all text. The manifest's
//! `[[ui.contributions]]` says where each contribution appears (a navigation
//! page, a server widget, a dashboard widget); [`Ui::render`] gets the
//! contribution id in [`RenderContext::contribution`].
//!
//! WIT has no recursive types, so the tree is flat: [`UiTree::nodes`] holds
//! every node and containers list their children as indices. Build it with
//! [`TreeBuilder`], which adds children before their parents and so can only
//! produce valid, acyclic trees.
//!
//! ```
//! use cap_plugin_sdk::prelude::*;
//!
//! #[derive(Default)]
//! struct Uptime;
//!
//! impl Ui for Uptime {
//!     fn render(&self, context: &RenderContext) -> Result<UiTree, PluginError> {
//!         let mut tree = TreeBuilder::new();
//!         let heading = tree.push(Element::Heading("Uptime".into()));
//!         let stat = tree.push(Element::Stat(KeyValue::new("Days", "12")));
//!         let restart = tree.push(Element::Button(Button {
//!             label: "Restart".into(),
//!             action: "restart".into(),
//!             tone: Tone::Warning,
//!             confirm: Some("Restart the server now?".into()),
//!         }));
//!         let root = tree.section(None, [heading, stat, restart]);
//!         Ok(tree.finish(root))
//!     }
//!
//!     fn handle_action(&self, _context: &RenderContext, action: &Action) -> Result<ActionResult, PluginError> {
//!         match action.name.as_str() {
//!             "restart" => Ok(ActionResult::Notify(("Restart requested".into(), Tone::Success))),
//!             other => Err(PluginError::new("unknown-action", format!("no action `{other}`"))),
//!         }
//!     }
//! }
//!
//! cap_plugin_sdk::export_plugin!(Uptime: ui);
//! # fn main() {}
//! ```

use std::fmt;

use crate::bindings::exports::ctrl_alt_play::plugin::ui;
use crate::types::PluginError;

pub use ui::{
    Action, ActionResult, Button, Chart, ChartKind, Element, FieldKind, Form, FormField, Node,
    RenderContext, Series, Table, TableRow, Tone, UiTree,
};

/// UI contributions: the `ui` export of the WIT API.
///
/// See the [module documentation](self) for an example.
pub trait Ui: Send + Sync {
    /// Renders the contribution `context.contribution` for the viewing user.
    fn render(&self, context: &RenderContext) -> Result<UiTree, PluginError>;

    /// Handles a clicked button or submitted form. Defaults to an
    /// `unknown-action` error, for contributions without actions.
    fn handle_action(
        &self,
        context: &RenderContext,
        action: &Action,
    ) -> Result<ActionResult, PluginError> {
        let _ = context;
        Err(PluginError::new(
            "unknown-action",
            format!("this plugin has no action `{}`", action.name),
        ))
    }
}

/// Builds a [`UiTree`] bottom-up: add children first, then the container
/// that lists them. Because a container can only name nodes that already
/// exist, the result is always in bounds and acyclic.
///
/// ```
/// use cap_plugin_sdk::ui::{Element, TreeBuilder};
///
/// let mut tree = TreeBuilder::new();
/// let a = tree.push(Element::Text("a".into()));
/// let b = tree.push(Element::Text("b".into()));
/// let row = tree.row([a, b]);
/// let tree = tree.finish(row);
/// assert_eq!(tree.root, 2);
/// assert_eq!(tree.nodes[2].children, [0, 1]);
/// assert!(tree.check().is_ok());
/// ```
#[derive(Debug, Clone, Default)]
pub struct TreeBuilder {
    nodes: Vec<Node>,
}

impl TreeBuilder {
    /// An empty builder.
    ///
    /// ```
    /// let tree = cap_plugin_sdk::ui::TreeBuilder::new();
    /// assert_eq!(tree.len(), 0);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of nodes added so far.
    ///
    /// ```
    /// use cap_plugin_sdk::ui::{Element, TreeBuilder};
    ///
    /// let mut tree = TreeBuilder::new();
    /// tree.push(Element::Divider);
    /// assert_eq!(tree.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node was added yet.
    ///
    /// ```
    /// assert!(cap_plugin_sdk::ui::TreeBuilder::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds a node without children and returns its index.
    ///
    /// ```
    /// use cap_plugin_sdk::ui::{Element, TreeBuilder};
    ///
    /// let mut tree = TreeBuilder::new();
    /// assert_eq!(tree.push(Element::Heading("Players".into())), 0);
    /// ```
    pub fn push(&mut self, element: Element) -> u32 {
        self.push_with_children(element, [])
    }

    /// Adds a node with the given children and returns its index.
    ///
    /// # Panics
    ///
    /// When a child index was not returned by this builder: every child must
    /// be added before its parent.
    ///
    /// ```
    /// use cap_plugin_sdk::ui::{Element, TreeBuilder};
    ///
    /// let mut tree = TreeBuilder::new();
    /// let text = tree.push(Element::Text("hi".into()));
    /// let section = tree.push_with_children(Element::Section(Some("Greeting".into())), [text]);
    /// assert_eq!(section, 1);
    /// ```
    pub fn push_with_children(
        &mut self,
        element: Element,
        children: impl IntoIterator<Item = u32>,
    ) -> u32 {
        let index = u32::try_from(self.nodes.len())
            .expect("a UI tree has fewer than 2^32 nodes (the host caps it far lower)");
        let children: Vec<u32> = children.into_iter().collect();
        if let Some(bad) = children.iter().find(|&&child| child >= index) {
            panic!("child {bad} does not exist yet; add children before their parent");
        }
        self.nodes.push(Node { element, children });
        index
    }

    /// Adds a vertical section with an optional title.
    ///
    /// ```
    /// use cap_plugin_sdk::ui::{Element, TreeBuilder};
    ///
    /// let mut tree = TreeBuilder::new();
    /// let text = tree.push(Element::Text("hi".into()));
    /// let root = tree.section(Some("Hello"), [text]);
    /// assert!(matches!(tree.finish(root).nodes[1].element, Element::Section(Some(_))));
    /// ```
    pub fn section(&mut self, title: Option<&str>, children: impl IntoIterator<Item = u32>) -> u32 {
        self.push_with_children(Element::Section(title.map(str::to_owned)), children)
    }

    /// Adds a horizontal row.
    ///
    /// ```
    /// use cap_plugin_sdk::ui::{Element, TreeBuilder};
    ///
    /// let mut tree = TreeBuilder::new();
    /// let row = tree.row([]);
    /// assert!(matches!(tree.finish(row).nodes[0].element, Element::Row));
    /// ```
    pub fn row(&mut self, children: impl IntoIterator<Item = u32>) -> u32 {
        self.push_with_children(Element::Row, children)
    }

    /// The finished tree with `root` as its root.
    ///
    /// # Panics
    ///
    /// When `root` was not returned by this builder.
    ///
    /// ```
    /// use cap_plugin_sdk::ui::{Element, TreeBuilder};
    ///
    /// let mut tree = TreeBuilder::new();
    /// let root = tree.push(Element::Divider);
    /// assert_eq!(tree.finish(root).nodes.len(), 1);
    /// ```
    pub fn finish(self, root: u32) -> UiTree {
        assert!(
            usize::try_from(root).is_ok_and(|root| root < self.nodes.len()),
            "root {root} does not exist in this tree"
        );
        UiTree {
            root,
            nodes: self.nodes,
        }
    }
}

/// Why a [`UiTree`] is malformed (see [`UiTree::check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeError {
    /// The root or a child index points past the end of the node list.
    OutOfBounds {
        /// The offending index.
        index: u32,
    },
    /// A node is reachable from itself.
    Cycle {
        /// A node on the cycle.
        index: u32,
    },
}

impl fmt::Display for TreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfBounds { index } => write!(f, "node index {index} is out of bounds"),
            Self::Cycle { index } => write!(f, "node {index} is part of a cycle"),
        }
    }
}

impl std::error::Error for TreeError {}

impl UiTree {
    /// Checks what the host checks: the root and every child index are in
    /// bounds and no node is reachable from itself. Useful in plugin tests.
    ///
    /// ```
    /// use cap_plugin_sdk::ui::{Element, Node, TreeError, UiTree};
    ///
    /// let cyclic = UiTree {
    ///     root: 0,
    ///     nodes: vec![Node { element: Element::Row, children: vec![0] }],
    /// };
    /// assert_eq!(cyclic.check(), Err(TreeError::Cycle { index: 0 }));
    /// ```
    pub fn check(&self) -> Result<(), TreeError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }

        let node = |index: u32| {
            usize::try_from(index)
                .ok()
                .and_then(|i| self.nodes.get(i).map(|node| (i, node)))
                .ok_or(TreeError::OutOfBounds { index })
        };
        node(self.root)?;
        for candidate in &self.nodes {
            for &child in &candidate.children {
                node(child)?;
            }
        }

        // Iterative depth-first search from every node, so that a deep tree
        // cannot overflow the stack.
        let mut marks = vec![Mark::New; self.nodes.len()];
        for start in 0..self.nodes.len() {
            if marks[start] != Mark::New {
                continue;
            }
            // (node, index of the next child to visit)
            let mut stack = vec![(start, 0usize)];
            marks[start] = Mark::Active;
            while let Some(top) = stack.last_mut() {
                let (current, next) = *top;
                match self.nodes[current].children.get(next) {
                    Some(&child) => {
                        top.1 += 1;
                        let (child_index, _) = node(child)?;
                        match marks[child_index] {
                            Mark::Active => return Err(TreeError::Cycle { index: child }),
                            Mark::Done => {}
                            Mark::New => {
                                marks[child_index] = Mark::Active;
                                stack.push((child_index, 0));
                            }
                        }
                    }
                    None => {
                        marks[current] = Mark::Done;
                        stack.pop();
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(children: Vec<u32>) -> Node {
        Node {
            element: Element::Row,
            children,
        }
    }

    #[test]
    fn a_tree_built_with_the_builder_passes_the_check() {
        let mut tree = TreeBuilder::new();
        let a = tree.push(Element::Text("a".into()));
        let b = tree.push(Element::Divider);
        let inner = tree.row([a, b]);
        let root = tree.section(Some("title"), [inner, a]);
        assert_eq!(tree.finish(root).check(), Ok(()));
    }

    #[test]
    fn an_out_of_bounds_child_is_reported() {
        let tree = UiTree {
            root: 0,
            nodes: vec![node(vec![1, 7])],
        };
        assert_eq!(tree.check(), Err(TreeError::OutOfBounds { index: 1 }));
    }

    #[test]
    fn an_out_of_bounds_root_is_reported() {
        let tree = UiTree {
            root: 3,
            nodes: vec![node(vec![])],
        };
        assert_eq!(tree.check(), Err(TreeError::OutOfBounds { index: 3 }));
    }

    #[test]
    fn a_cycle_through_several_nodes_is_reported() {
        let tree = UiTree {
            root: 0,
            nodes: vec![node(vec![1]), node(vec![2]), node(vec![0])],
        };
        assert!(matches!(tree.check(), Err(TreeError::Cycle { .. })));
    }

    #[test]
    fn a_shared_child_is_not_a_cycle() {
        let tree = UiTree {
            root: 0,
            nodes: vec![node(vec![1, 2]), node(vec![2]), node(vec![])],
        };
        assert_eq!(tree.check(), Ok(()));
    }

    #[test]
    fn a_very_deep_chain_is_checked_without_recursion() {
        let depth = 200_000u32;
        let nodes = (0..depth)
            .map(|i| node(if i + 1 < depth { vec![i + 1] } else { vec![] }))
            .collect();
        assert_eq!(UiTree { root: 0, nodes }.check(), Ok(()));
    }

    #[test]
    #[should_panic(expected = "add children before their parent")]
    fn the_builder_refuses_a_child_that_does_not_exist_yet() {
        let mut tree = TreeBuilder::new();
        tree.row([0]);
    }
}
