//! Any bytes as a DNS message over UDP and TCP, from either side; see
//! `porin_filter_dns::fuzz_one` for the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| porin_filter_dns::fuzz_one(data));
