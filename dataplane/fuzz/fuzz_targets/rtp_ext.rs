//! RFC 8285 header-extension element parsing in both forms, and re-building what parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tutti_dataplane::wire::rtp_ext::{
    write_extension, ExtensionElement, ExtensionElements, ExtensionForm,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, data)) = data.split_first() else {
        return;
    };
    let form = if selector & 1 == 0 {
        ExtensionForm::OneByte
    } else {
        ExtensionForm::TwoByte
    };
    let mut parsed: Vec<ExtensionElement<'_>> = Vec::new();
    for e in ExtensionElements::new(form, data) {
        match e {
            Ok(e) => parsed.push(e),
            Err(_) => break,
        }
    }
    // Whatever parsed must build and parse back to the same elements.
    let mut buf = vec![0u8; 4 + 2 * data.len() + 8];
    if let Ok(n) = write_extension(form, &parsed, &mut buf) {
        let again: Vec<_> = ExtensionElements::new(form, &buf[4..n])
            .map_while(Result::ok)
            .collect();
        assert_eq!(again, parsed);
    }
});
