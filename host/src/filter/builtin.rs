//! The built-in filters, compiled from `filters/*` to Wasm by the build
//! (`host/build.rs`) and embedded in the binary.

include!(concat!(env!("OUT_DIR"), "/builtin.rs"));
