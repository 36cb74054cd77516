//! The dotenv parser (`runseal secrets import`, the dashboard's paste): parsing never panics,
//! every name it returns is a valid secret name, no value holds a NUL, and an error's message
//! never holds a value it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match runseal::dotenv::parse(text) {
        Ok(pairs) => {
            for (name, value) in &pairs {
                assert!(runseal::names::is_valid_secret_name(name));
                assert!(!value.expose().contains(&0));
            }
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(shown.starts_with("line "));
            assert!(shown.len() < 400, "an error stays short: it names a rule, not text");
        }
    }
});
