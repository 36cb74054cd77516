//! The `${NAME}` renderer: parsing never panics; a parsed template renders; every reference
//! it reports is a valid secret name; text without `$` renders as itself; the cache key is
//! stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runseal::template::{cache_key, Template};

fuzz_target!(|text: &str| {
    let Ok(t) = Template::parse("fuzz", text) else {
        return;
    };
    for n in t.referenced_names() {
        assert!(runseal::names::is_valid_secret_name(n));
    }
    let rendered = t
        .render(|_| Some(b"V".as_slice()))
        .expect("every name has a value");
    if !text.contains('$') {
        assert_eq!(rendered.as_slice(), text.as_bytes());
    }
    assert!(t.render(|_| None).is_err() || t.referenced_names().is_empty());
    assert_eq!(cache_key(&[t.clone()]), cache_key(&[t]));
});
