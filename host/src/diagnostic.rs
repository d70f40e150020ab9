//! Errors and warnings about user input, each pointing at where it was found.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational: e.g. an object kind porin does not use was skipped.
    Note,
    /// Accepted, but part of it has no effect (always in the fail-closed direction).
    Warning,
    /// Rejected: the object is not used.
    Error,
}

/// Where in the input something was found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Location {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<Arc<PathBuf>>,
    /// 1-based index of the YAML document in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// 1-based line where the document starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// `Kind namespace/name` of the object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Field path inside the object, e.g. `spec.ingress[0].toPorts[0]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Location {
    pub fn at_field(&self, field: impl Into<String>) -> Location {
        Location { field: Some(field.into()), ..self.clone() }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(file) = &self.file {
            parts.push(file.display().to_string());
        }
        match (self.document, self.line) {
            (Some(doc), Some(line)) => parts.push(format!("document {doc} (line {line})")),
            (Some(doc), None) => parts.push(format!("document {doc}")),
            _ => {}
        }
        if let Some(object) = &self.object {
            parts.push(object.clone());
        }
        if let Some(field) = &self.field {
            parts.push(field.clone());
        }
        f.write_str(&parts.join(": "))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub location: Location,
    pub message: String,
}

impl Diagnostic {
    pub fn error(location: Location, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Error, location, message: message.into() }
    }

    pub fn warning(location: Location, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, location, message: message.into() }
    }

    pub fn note(location: Location, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Note, location, message: message.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{severity}: {}: {}", self.location, self.message)
    }
}

/// True when any diagnostic is an error.
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(|d| d.severity == Severity::Error)
}
