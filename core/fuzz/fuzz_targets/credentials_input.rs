//! Any caller input as a key, address, token or JWT: validated without panic, and a
//! rejection never echoes the input (it may be a secret).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tradeauth::{CascadeConfig, CascadeMachine, ExchangeConfig, ExchangeMachine};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) = ExchangeMachine::new(ExchangeConfig::trader(text)) {
        assert!(text.len() < 8 || !error.to_string().contains(text));
    }
    let _ = ExchangeMachine::new(ExchangeConfig::admin(text));
    if let Err(error) = CascadeMachine::new(CascadeConfig::new(
        "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
        text,
    )) {
        assert!(text.len() < 8 || !error.to_string().contains(text));
    }
    let _ = CascadeMachine::new(CascadeConfig::new(
        text,
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    ));
    let _ = tradeauth::eip191_sign(text, b"payload");
});
