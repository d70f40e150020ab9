//! One watcher per kind: kube-runtime's list/watch loop feeding a
//! reflector store, with backoff on errors.
//!
//! The store is what the agent reads. It only ever changes by a watch event
//! or by a completed relist (after `410 Gone` or a broken watch), which
//! replaces it whole: an API server that goes away or answers with errors
//! leaves the last known objects in place, and so the policy in force.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::store::{Store, Writer};
use kube::runtime::watcher::{self, Event};
use tokio::sync::Notify;
use tracing::{info, warn};

use super::kinds::Kind;

/// A kind's store and how its watcher is doing.
#[derive(Debug)]
pub(crate) struct Watched {
    pub(crate) kind: &'static Kind,
    pub(crate) store: Store<DynamicObject>,
    pub(crate) state: Arc<WatchState>,
}

#[derive(Debug, Default)]
pub(crate) struct WatchState {
    /// A full list has been received at least once.
    synced: AtomicBool,
    /// The API server does not serve this (optional) kind.
    absent: AtomicBool,
    /// The watcher's last error, cleared by the next event.
    pub(crate) last_error: Mutex<Option<String>>,
}

impl Watched {
    /// Whether the store can be read as the kind's objects: it has been
    /// listed, or the kind is optional and not served.
    pub(crate) fn ready(&self) -> bool {
        self.state.synced.load(Ordering::Acquire) || self.state.absent.load(Ordering::Acquire)
    }

    pub(crate) fn objects(&self) -> Vec<Arc<DynamicObject>> {
        if self.state.synced.load(Ordering::Acquire) { self.store.state() } else { Vec::new() }
    }

    /// Why this kind is not ready, for status and logs.
    pub(crate) fn waiting_because(&self) -> String {
        let error = self.state.last_error.lock().expect("watch state lock").clone();
        let what = format!("{} {}", self.kind.api_version(), self.kind.plural);
        match error {
            Some(error) => format!("{what}: {error}"),
            None => format!("{what}: listing"),
        }
    }
}

/// Starts watching `kind` (in `namespace` when it is watched there only);
/// `changes` is notified after every change to the store.
pub(crate) fn spawn(client: Client, kind: &'static Kind, namespace: &str, changes: Arc<Notify>) -> Watched {
    let resource = kind.api_resource();
    let api: Api<DynamicObject> = if kind.own_namespace {
        Api::namespaced_with(client, namespace, &resource)
    } else {
        Api::all_with(client, &resource)
    };
    let writer = Writer::new(resource);
    let store = writer.as_reader();
    let state = Arc::new(WatchState::default());
    tokio::spawn(run(api, kind, writer, state.clone(), changes));
    Watched { kind, store, state }
}

async fn run(
    api: Api<DynamicObject>,
    kind: &'static Kind,
    writer: Writer<DynamicObject>,
    state: Arc<WatchState>,
    changes: Arc<Notify>,
) {
    let config = watcher::Config::default().any_semantic();
    // managedFields is often the larger part of an object, and never read.
    let events = watcher::watcher(api, config)
        .default_backoff()
        .modify(|object: &mut DynamicObject| object.metadata.managed_fields = None)
        .reflect(writer);
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        let what = || format!("{} {}", kind.api_version(), kind.plural);
        match event {
            Ok(event) => {
                let cleared = state.last_error.lock().expect("watch state lock").take();
                if cleared.is_some() {
                    info!("{}: the API server answers again", what());
                }
                match event {
                    Event::InitDone => {
                        state.absent.store(false, Ordering::Release);
                        state.synced.store(true, Ordering::Release);
                        changes.notify_one();
                    }
                    Event::Apply(_) | Event::Delete(_) => changes.notify_one(),
                    Event::Init | Event::InitApply(_) => {}
                }
            }
            Err(err) => {
                let message = err.to_string();
                if kind.optional && not_served(&err) {
                    if !state.absent.swap(true, Ordering::AcqRel) {
                        warn!("{}: not served by this cluster (CRD not installed?); taken as none", what());
                        changes.notify_one();
                    }
                } else {
                    warn!(
                        "{}: {message}; retrying with backoff, the last known state stays in force",
                        what()
                    );
                }
                *state.last_error.lock().expect("watch state lock") = Some(message);
            }
        }
    }
}

/// Whether a watcher error says the API server does not serve the kind.
fn not_served(err: &watcher::Error) -> bool {
    let api_error = match err {
        watcher::Error::InitialListFailed(err) | watcher::Error::WatchStartFailed(err) => err,
        _ => return false,
    };
    matches!(api_error, kube::Error::Api(status) if status.code == 404)
}
