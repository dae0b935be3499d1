//! A message (or an edit or deletion) as it travels through the broker: JSON, with optional
//! fields only since v1, so a frame queued by an older process still decodes.

use super::*;

/// How a message travels through the broker.
#[derive(Serialize, Deserialize)]
pub(super) struct Wire {
    id: MessageId,
    group_id: GroupId,
    sender_id: UserId,
    envelope: String,
    sent_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_msg_id: Option<String>,
    /// v1.1, absent for a message, so v1 messages still queued read as messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    edit_of: Option<MessageId>,
    /// The edit's content sealed for its target (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    current: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delete_of: Option<MessageId>,
}

impl Wire {
    pub(super) fn encode(m: &NewMessage) -> Vec<u8> {
        serde_json::to_vec(&Wire {
            id: m.id,
            group_id: m.group_id,
            sender_id: m.sender_id,
            envelope: STANDARD.encode(&m.envelope),
            sent_at_ms: to_millis(m.sent_at),
            client_msg_id: m.client_msg_id.clone(),
            edit_of: match &m.action {
                EntryAction::Edit { target, .. } => Some(*target),
                _ => None,
            },
            current: match &m.action {
                EntryAction::Edit { current, .. } => Some(STANDARD.encode(current)),
                _ => None,
            },
            delete_of: match &m.action {
                EntryAction::Delete { target } => Some(*target),
                _ => None,
            },
        })
        .expect("wire messages serialize")
    }

    pub(super) fn decode(data: &[u8]) -> Option<NewMessage> {
        let w: Wire = serde_json::from_slice(data).ok()?;
        Some(NewMessage {
            id: w.id,
            group_id: w.group_id,
            sender_id: w.sender_id,
            envelope: STANDARD.decode(w.envelope).ok()?,
            sent_at: from_millis(w.sent_at_ms),
            client_msg_id: w.client_msg_id,
            action: match (w.edit_of, w.current, w.delete_of) {
                (None, None, None) => EntryAction::Text,
                (Some(target), Some(current), None) => EntryAction::Edit {
                    target,
                    current: STANDARD.decode(current).ok()?,
                },
                (None, None, Some(target)) => EntryAction::Delete { target },
                _ => return None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip() {
        let m = NewMessage {
            id: MessageId::new(),
            group_id: GroupId::new(),
            sender_id: UserId::new(),
            envelope: vec![1, 2, 3, 255],
            sent_at: crate::domain::now(),
            client_msg_id: Some("c-1".into()),
            action: EntryAction::Text,
        };
        assert_eq!(Wire::decode(&Wire::encode(&m)), Some(m.clone()));
        for action in [
            EntryAction::Edit {
                target: MessageId::new(),
                current: vec![9, 8],
            },
            EntryAction::Delete {
                target: MessageId::new(),
            },
        ] {
            let m = NewMessage {
                action,
                ..m.clone()
            };
            assert_eq!(Wire::decode(&Wire::encode(&m)), Some(m));
        }
        // A message queued by a v1 process has none of the v1.1 fields.
        let v1 = serde_json::json!({
            "id": m.id, "group_id": m.group_id, "sender_id": m.sender_id,
            "envelope": "AQID", "sent_at_ms": 1
        });
        let got = Wire::decode(&serde_json::to_vec(&v1).unwrap()).unwrap();
        assert_eq!(got.action, EntryAction::Text);
        assert_eq!(Wire::decode(b"not json"), None);
    }
}
