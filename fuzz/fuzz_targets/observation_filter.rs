#![no_main]
//! `flowtrail_fuzz_targets::observation_filter` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| flowtrail_fuzz_targets::observation_filter(data));
