//! The frames of a group's Redis channel.

use serde::Serialize;
use serde_json::Value;

use super::GroupEmit;
use crate::domain::UserId;

/// A group channel's frame: a kind byte (`M` message:new, `T` typing or `R` message:read,
/// followed by the typist's or reader's 16-byte id), then the JSON payload, serialized once by the publisher.
pub(super) fn encode_group_frame(
    what: GroupEmit,
    payload: &(impl Serialize + ?Sized),
) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(256);
    match what {
        GroupEmit::MessageNew => buf.push(b'M'),
        GroupEmit::Typing { from } => {
            buf.push(b'T');
            buf.extend_from_slice(from.as_uuid().as_bytes());
        }
        GroupEmit::Read { from } => {
            buf.push(b'R');
            buf.extend_from_slice(from.as_uuid().as_bytes());
        }
    }
    match serde_json::to_writer(&mut buf, payload) {
        Ok(()) => Some(buf),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize a group event");
            None
        }
    }
}

pub(super) fn decode_group_frame(frame: &[u8]) -> Option<(GroupEmit, Value)> {
    let (what, json) = match frame.split_first()? {
        (b'M', rest) => (GroupEmit::MessageNew, rest),
        (b'T', rest) if rest.len() >= 16 => {
            let (id, json) = rest.split_at(16);
            let from = UserId::from_uuid(uuid::Uuid::from_slice(id).ok()?);
            (GroupEmit::Typing { from }, json)
        }
        // Processes that predate `R` frames ignore them (`None` here).
        (b'R', rest) if rest.len() >= 16 => {
            let (id, json) = rest.split_at(16);
            let from = UserId::from_uuid(uuid::Uuid::from_slice(id).ok()?);
            (GroupEmit::Read { from }, json)
        }
        _ => return None,
    };
    Some((what, serde_json::from_slice(json).ok()?))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn group_frames_round_trip() {
        let from = UserId::new();
        let payload = json!({"group_id": "g", "content": "héllo", "seq": 7});
        for what in [
            GroupEmit::MessageNew,
            GroupEmit::Typing { from },
            GroupEmit::Read { from },
        ] {
            let frame = encode_group_frame(what, &payload).unwrap();
            assert_eq!(decode_group_frame(&frame), Some((what, payload.clone())));
        }
        assert_eq!(decode_group_frame(b""), None);
        assert_eq!(decode_group_frame(b"T\x01\x02"), None);
        assert_eq!(decode_group_frame(b"X{}"), None);
    }
}
