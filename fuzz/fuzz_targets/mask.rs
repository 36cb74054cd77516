//! The masker: streaming at arbitrary split points gives the same output as masking at once,
//! and no value (nor any of its forms without '*') survives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runseal::agent::mask::{forms, Masker};

fn contains(h: &[u8], n: &[u8]) -> bool {
    !n.is_empty() && h.windows(n.len()).any(|w| w == n)
}

// (values, output, split points)
fuzz_target!(|input: (Vec<Vec<u8>>, Vec<u8>, Vec<u16>)| {
    let (values, output, cuts) = input;
    let values: Vec<Vec<u8>> = values
        .into_iter()
        .take(4)
        .map(|mut v| {
            v.retain(|b| *b != b'*');
            v.truncate(64);
            v
        })
        .collect();
    let masker = Masker::new(values.iter().map(Vec::as_slice));
    let whole = masker.mask(&output);
    let mut cuts: Vec<usize> = cuts
        .iter()
        .map(|c| *c as usize % (output.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut streamed = Vec::new();
    let mut stream = masker.stream();
    let mut at = 0;
    for c in cuts {
        stream.push(&output[at..c], &mut streamed);
        at = c;
    }
    stream.push(&output[at..], &mut streamed);
    stream.finish(&mut streamed);
    assert_eq!(streamed, whole);
    for v in &values {
        for f in forms(v) {
            if !f.contains(&b'*') {
                assert!(!contains(&whole, &f));
            }
        }
    }
});
