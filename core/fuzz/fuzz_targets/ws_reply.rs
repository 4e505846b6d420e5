//! Any WebSocket text from Cascade or Exchange: parsed without panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = tradeauth::machine::cascade::parse_ws_reply(text);
    let _ = tradeauth::machine::exchange::parse_ws_reply(text);
});
