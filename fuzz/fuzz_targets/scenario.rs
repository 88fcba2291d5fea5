//! Arbitrary text through the scenario parser and validation, and, for a
//! scenario that parses, the stored form with passwords hidden. Nothing may
//! panic; every error names at least one problem; no endpoint password
//! survives in the stored form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stampede_common::Scenario;
use stampede_common::endpoint::password;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Scenario::parse(text) {
        Ok(scenario) => {
            let shown = scenario.shown_text(text);
            for secret in scenario.target.endpoints.iter().filter_map(|e| password(e)) {
                assert!(!shown.contains(secret) || shown == stampede_common::scenario::NOT_KEPT, "{secret} kept");
            }
            let _ = Scenario::with_endpoints(text, &["127.0.0.1:1".to_string()]);
        }
        Err(error) => assert!(!error.issues.is_empty(), "an error names its problems"),
    }
});
