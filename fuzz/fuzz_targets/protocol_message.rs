//! The Panel <-> Agent frames and registration bodies on arbitrary text: a
//! message or a typed `ProtocolError`, never a panic; a decoded message
//! encodes to a frame that decodes to the same message.
#![no_main]

use cap_protocol::{
    AgentMessage, PanelMessage, RegistrationRequest, RegistrationResponse, decode, encode,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = decode::<PanelMessage>(frame) {
        let again = encode(&message).expect("a decoded message encodes");
        assert_eq!(decode::<PanelMessage>(&again).ok(), Some(message));
    }
    if let Ok(message) = decode::<AgentMessage>(frame) {
        // Floats compare by their encoding (JSON keeps the shortest form
        // that reads back as the same number).
        let again = encode(&message).expect("a decoded message encodes");
        let decoded = decode::<AgentMessage>(&again).expect("an encoded message decodes");
        assert_eq!(encode(&decoded).ok(), Some(again));
    }
    let _ = serde_json::from_str::<RegistrationRequest>(frame);
    let _ = serde_json::from_str::<RegistrationResponse>(frame);
});
