//! porin: an identity-aware L3-L7 network policy engine for Kubernetes.
//!
//! The library holds every subsystem; the `porin` binary only parses the
//! command line and calls in here.

pub mod agent;
pub mod cli;
mod command;
pub mod datapath;
pub mod diagnostic;
pub mod endpoint;
pub mod filter;
pub mod flow;
pub mod identity;
pub mod k8s;
pub mod lab;
pub mod labels;
pub mod manifest;
pub mod observe;
pub mod policy;
pub mod proxy;
pub mod reading;
pub mod selector;
pub mod service;
