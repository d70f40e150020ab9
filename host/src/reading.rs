//! A reading of the agent's objects, unit by unit, so that a unit which
//! fails to parse or validate keeps its last accepted version in force
//! while every other unit's changes apply. A unit is a manifest file
//! ([`crate::agent::sources`]) or one object of the cluster ([`crate::k8s`]).
//!
//! A unit is all or nothing: one bad document holds back the whole file,
//! so a half-finished edit (a new deny without the allow that goes with it)
//! never applies half of a change.

use std::path::PathBuf;
use std::sync::Arc;

use crate::diagnostic::{Diagnostic, Severity};
use crate::endpoint::Workloads;
use crate::manifest::Manifests;
use crate::policy;

/// What a unit is: a file, or a cluster object (`Kind namespace/name`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UnitKey {
    File(PathBuf),
    Object(String),
}

/// What one unit contributes.
#[derive(Debug, Clone)]
pub struct Unit {
    pub key: UnitKey,
    /// Hash of the content last read; `None` when it could not be read.
    digest: Option<[u8; 32]>,
    /// The version last accepted (empty when none ever was): its objects
    /// and the notes parsing them gave.
    accepted: Arc<Manifests>,
    /// Why the content last read is not the accepted one.
    pub rejected: Vec<Diagnostic>,
}

impl Unit {
    /// The unit as `parsed` from content with `digest`: accepted when it
    /// validates, else `previous`'s accepted version stays with the errors.
    pub fn parsed(key: UnitKey, digest: [u8; 32], parsed: Manifests, previous: Option<&Unit>) -> Unit {
        let errors = validation_errors(&parsed);
        if errors.is_empty() {
            return Unit { key, digest: Some(digest), accepted: Arc::new(parsed), rejected: Vec::new() };
        }
        let accepted = previous.map(|unit| unit.accepted.clone()).unwrap_or_default();
        Unit { key, digest: Some(digest), accepted, rejected: errors }
    }

    /// The unit whose content cannot be read now: `previous`'s accepted
    /// version stays, with `error`.
    pub fn unreadable(key: UnitKey, error: Diagnostic, previous: Option<&Unit>) -> Unit {
        let accepted = previous.map(|unit| unit.accepted.clone()).unwrap_or_default();
        Unit { key, digest: None, accepted, rejected: vec![error] }
    }

    /// Whether this unit's content is the one `digest` names.
    pub fn has_digest(&self, digest: &[u8; 32]) -> bool {
        self.digest.as_ref() == Some(digest)
    }

    /// Whether `other` is the same content as this unit.
    pub fn same_content(&self, other: &Unit) -> bool {
        self.content() == other.content()
    }

    /// What tells one version of the sources from another.
    fn content(&self) -> (&UnitKey, Option<[u8; 32]>) {
        (&self.key, self.digest)
    }
}

/// One reading of the sources: what is in force once it is applied.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    units: Vec<Unit>,
    /// `-f` paths that could not be read (everything under them stays).
    unreadable: Vec<Diagnostic>,
}

impl Reading {
    pub fn new(units: Vec<Unit>) -> Reading {
        Reading::with_unreadable(units, Vec::new())
    }

    /// A reading in which some sources could not be read at all (what
    /// they held is among `units`, as it was).
    pub fn with_unreadable(units: Vec<Unit>, unreadable: Vec<Diagnostic>) -> Reading {
        Reading { units, unreadable }
    }

    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    /// The unit in this reading with `key`.
    pub fn unit(&self, key: &UnitKey) -> Option<&Unit> {
        self.units.iter().find(|unit| &unit.key == key)
    }

    /// The objects of every unit's accepted version, in reading order.
    pub fn manifests(&self) -> Manifests {
        let mut manifests = Manifests::default();
        for unit in &self.units {
            manifests.objects.extend(unit.accepted.objects.iter().cloned());
            manifests.diagnostics.extend(unit.accepted.diagnostics.iter().cloned());
        }
        manifests
    }

    /// Why some sources are not in force as they are now: each error of a
    /// rejected unit, and each `-f` path that could not be read.
    pub fn rejections(&self) -> impl Iterator<Item = &Diagnostic> {
        self.unreadable.iter().chain(self.units.iter().flat_map(|unit| &unit.rejected))
    }

    /// Whether this reading differs from `other` in content or in problems.
    pub fn differs_from(&self, other: &Reading) -> bool {
        let same_content = self.units.iter().map(Unit::content).eq(other.units.iter().map(Unit::content));
        !same_content || !self.rejections().eq(other.rejections())
    }
}

/// The errors of a unit's objects on their own: parsing, workloads and
/// policy translation. Each of these looks at one object at a time, so a
/// unit that passes here never fails in the node's whole compile.
fn validation_errors(manifests: &Manifests) -> Vec<Diagnostic> {
    let (_, workload_diagnostics) = Workloads::from_manifests(manifests);
    let compiled = policy::compile(manifests, &Workloads::default());
    compiled
        .diagnostics
        .into_iter()
        .chain(workload_diagnostics)
        .filter(|diagnostic| diagnostic.severity == Severity::Error)
        .collect()
}
