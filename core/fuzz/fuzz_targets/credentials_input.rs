//! Any caller input as a key, address, token or JWT: validated without panic, and a
//! rejection never echoes the input (it may be a secret).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tradeauth::{CascadeConfig, CascadeMachine, ExchangeConfig, ExchangeMachine};

/// Appended to every input: no message text contains it, so finding it in an error
/// means the input was echoed. (Checking for the bare input gave false alarms: the
/// fuzzer learned to feed the error message's own words back in.)
const MARK: &str = "\u{00a7}SECRET\u{00a7}";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let input = format!("{text}{MARK}");
    if let Err(error) = ExchangeMachine::new(ExchangeConfig::trader(input.as_str())) {
        assert!(!format!("{error} {error:?}").contains(MARK));
    }
    if let Err(error) = ExchangeMachine::new(ExchangeConfig::admin(input.as_str())) {
        assert!(!format!("{error} {error:?}").contains(MARK));
    }
    let _ = ExchangeMachine::new(ExchangeConfig::trader(text));
    let key = CascadeMachine::new(CascadeConfig::new(
        "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
        input.as_str(),
    ));
    if let Err(error) = key {
        assert!(!format!("{error} {error:?}").contains(MARK));
    }
    let _ = CascadeMachine::new(CascadeConfig::new(
        text,
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    ));
    if let Err(error) = tradeauth::eip191_sign(&input, b"payload") {
        assert!(!format!("{error} {error:?}").contains(MARK));
    }
});
