//! porin's integration tests: one binary, one module per area.

mod policy_cli;
mod seed;
