//! porin's HTTP filter.
//!
//! Today this crate holds the rule matcher: Cilium's HTTP rule semantics,
//! compiled once per rule set and evaluated per request. The Wasm stream
//! filter that parses HTTP/1.1 around it builds on this matcher.

mod rules;

pub use rules::{Decision, HeaderAction, HttpRule, MismatchAction, Request, RuleError, RuleSet};
