//! What the agent tells the cluster: an Event on each policy it applies or
//! rejects (so `kubectl describe` shows why), and each FilterModule's
//! status on this node. Reports are sent in the background; one that fails
//! is logged and never holds up enforcement.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter as EventSource};
use serde_json::json;
use tracing::warn;

use super::kinds::KINDS;
use super::modules::NodeStatus;

/// Event notes are limited to 1 kB by the API server.
const MAX_NOTE: usize = 1000;

#[derive(Clone)]
pub(crate) struct Reporter {
    client: Client,
    recorder: Arc<Recorder>,
    node: String,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter").field("node", &self.node).finish()
    }
}

/// How a policy fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Applied {
        revision: u32,
    },
    /// The policy is invalid; its last valid version (if any) stays.
    Rejected(String),
    /// The policy is valid but the node's update failed.
    NotApplied(String),
}

impl Reporter {
    pub(crate) fn new(client: Client, node: String) -> Reporter {
        let source = EventSource { controller: "porin-agent".into(), instance: Some(node.clone()) };
        Reporter { recorder: Arc::new(Recorder::new(client.clone(), source)), client, node }
    }

    pub(crate) fn policy(&self, reference: ObjectReference, outcome: Outcome) {
        let (type_, reason, note) = match outcome {
            Outcome::Applied { revision } => (
                EventType::Normal,
                "PolicyApplied",
                format!("enforced on node {} (policy revision {revision})", self.node),
            ),
            Outcome::Rejected(errors) => (
                EventType::Warning,
                "PolicyRejected",
                format!("rejected on node {}; its last valid version stays in force: {errors}", self.node),
            ),
            Outcome::NotApplied(error) => (
                EventType::Warning,
                "PolicyNotApplied",
                format!("not applied on node {}; the policy before stays in force: {error}", self.node),
            ),
        };
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(truncated(note)),
            action: "Enforce".into(),
            secondary: None,
        };
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            if let Err(err) = recorder.publish(&event, &reference).await {
                warn!("cannot post event {reason} on {}: {err}", reference.name.unwrap_or_default());
            }
        });
    }

    /// Writes this node's entry of a FilterModule's `status.nodes`.
    pub(crate) fn module_status(&self, name: String, status: NodeStatus) {
        let kind = KINDS.iter().find(|kind| kind.kind == "FilterModule").expect("FilterModule is watched");
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &kind.api_resource());
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let patch = json!({"status": {"nodes": {self.node.clone(): {
            "ready": status.ready,
            "sha256": status.sha256,
            "message": truncated(status.message),
            "lastUpdated": now,
        }}}});
        tokio::spawn(async move {
            let params = PatchParams::default();
            if let Err(err) = api.patch_status(&name, &params, &Patch::Merge(&patch)).await {
                warn!("cannot write the status of FilterModule {name}: {err}");
            }
        });
    }
}

fn truncated(mut note: String) -> String {
    if note.len() > MAX_NOTE {
        let mut end = MAX_NOTE - 3;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    note
}
