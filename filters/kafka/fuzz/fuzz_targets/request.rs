//! Arbitrary bytes as a client stream and as a broker stream, under the
//! rule set the first byte picks (see `porin_filter_kafka::fuzz_one`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| porin_filter_kafka::fuzz_one(data));
