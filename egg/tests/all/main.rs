//! The egg crate end to end: one test binary, a module per topic.

mod bad_input;
mod community_eggs;
mod config_files;
mod render;
mod rules;
mod support;
