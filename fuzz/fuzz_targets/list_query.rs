#![no_main]
//! `flowtrail_fuzz_targets::list_query` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| flowtrail_fuzz_targets::list_query(data));
