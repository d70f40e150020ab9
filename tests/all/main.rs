//! porin's integration tests: one binary, one module per area.

mod filter_cli;
mod policy_cli;
mod proxy;
mod proxy_protocols;
mod seed;
