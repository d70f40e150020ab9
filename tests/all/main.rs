//! porin's integration tests: one binary, one module per area.

mod agent;
mod datapath;
mod deploy;
mod filter_cli;
mod grpc;
mod k8s;
mod lab;
mod netns_fixture;
mod policy_cli;
mod proxy;
mod proxy_protocols;
mod seed;
mod services;
