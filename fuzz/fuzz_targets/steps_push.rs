#![no_main]
//! `flowtrail_fuzz_targets::steps_push` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| flowtrail_fuzz_targets::steps_push(data));
