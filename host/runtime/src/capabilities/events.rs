//! `events`: publishing to the embedder's event bus.

use std::sync::Mutex;

use super::{BoxFuture, ServiceError, until_deadline};
use crate::api::CapabilityError;
use crate::plugin::PluginState;

/// Largest payload, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// A published event.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedEvent {
    /// Publishing plugin.
    pub plugin: String,
    /// Topic.
    pub topic: String,
    /// Parsed JSON payload.
    pub payload: serde_json::Value,
}

/// Receives events plugins publish.
pub trait EventSink: Send + Sync {
    /// Accepts one event.
    fn publish(&self, event: PublishedEvent) -> BoxFuture<'_, Result<(), ServiceError>>;
}

/// Keeps published events in memory (bounded), for tests and tools.
#[derive(Debug, Default)]
pub struct CollectingEvents {
    events: Mutex<Vec<PublishedEvent>>,
}

impl CollectingEvents {
    /// Most events kept; older ones are dropped.
    pub const CAPACITY: usize = 10_000;

    /// What was published so far.
    pub fn events(&self) -> Vec<PublishedEvent> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl EventSink for CollectingEvents {
    fn publish(&self, event: PublishedEvent) -> BoxFuture<'_, Result<(), ServiceError>> {
        Box::pin(async move {
            let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
            if events.len() >= Self::CAPACITY {
                events.remove(0);
            }
            events.push(event);
            Ok(())
        })
    }
}

/// `events.publish`.
pub(crate) async fn publish(
    state: &mut PluginState,
    topic: String,
    payload: String,
) -> Result<(), CapabilityError> {
    if !state.caps.grants.events_publish.contains(&topic) {
        return Err(state.caps.deny(&format!("events.publish {topic}")));
    }
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(CapabilityError::LimitExceeded(format!(
            "payloads are at most {MAX_PAYLOAD_BYTES} bytes"
        )));
    }
    let payload = serde_json::from_str(&payload)
        .map_err(|e| CapabilityError::Invalid(format!("payload is not JSON: {e}")))?;
    let event = PublishedEvent {
        plugin: state.caps.plugin_id.clone(),
        topic,
        payload,
    };
    Ok(until_deadline(state.deadline, state.caps.services.events.publish(event)).await?)
}
