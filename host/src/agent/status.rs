//! What the agent reports about itself on its API (`/readyz`, `/v1/status`).

use serde::Serialize;

use crate::datapath::WriteSummary;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The datapath's policy revision in force; `null` until the first apply.
    pub revision: Option<u32>,
    /// Local endpoints the datapath enforces policy for.
    pub endpoints: usize,
    pub policy_entries: usize,
    /// Enforcing, and the last update applied.
    pub ready: bool,
    /// Why the last update failed (the policy before it stays in force).
    pub last_error: Option<String>,
    /// Sources whose current content is not in force (their last good
    /// version is, if they ever had one), with why.
    pub rejected: Vec<String>,
    /// Re-reads asked for (SIGHUP) and done, applied or not: a client that
    /// signals waits for this to move, which a change the file watcher
    /// applies meanwhile does not do.
    pub reloads: u64,
}

impl Status {
    pub(super) fn applied(&mut self, maps: &WriteSummary, rejected: Vec<String>) {
        *self = Status {
            revision: Some(maps.revision),
            endpoints: maps.endpoints,
            policy_entries: maps.policy_entries,
            ready: true,
            last_error: None,
            rejected,
            reloads: self.reloads,
        };
    }

    pub(super) fn failed(&mut self, error: String, rejected: Vec<String>) {
        self.ready = false;
        self.last_error = Some(error);
        self.rejected = rejected;
    }

    /// Not applying yet: the source cannot be read (the cluster has not
    /// been listed), for the reason given.
    pub(super) fn waiting(&mut self, why: String) {
        self.ready = false;
        self.last_error = Some(why);
    }

    /// Why the agent is not ready; `None` when it is.
    pub fn not_ready_because(&self) -> Option<String> {
        if self.ready {
            return None;
        }
        let stage = match self.revision {
            None => "the datapath is not enforcing yet",
            Some(_) => "the last update failed",
        };
        Some(match &self.last_error {
            Some(error) => format!("{stage}: {error}"),
            None => stage.to_string(),
        })
    }
}
