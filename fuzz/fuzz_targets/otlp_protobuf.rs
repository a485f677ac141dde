#![no_main]
//! `flowtrail_fuzz_targets::otlp_protobuf` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| flowtrail_fuzz_targets::otlp_protobuf(data));
