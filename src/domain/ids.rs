//! Identifiers. UUIDv7 everywhere: time-ordered, so ids sort by creation and make good keyset
//! cursors and index keys. Clients treat them as opaque strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($name:ident) => {
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            pub fn from_uuid(u: Uuid) -> Self {
                Self(u)
            }
            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(UserId);
id_type!(GroupId);
id_type!(MessageId);
id_type!(AuditId);

impl MessageId {
    /// The id of a message the client named with `client_msg_id`: derived from the group, the
    /// sender and that key, so every retry, on any process, concurrent or after a crash, carries
    /// the same id, and the stores' duplicate check on ids stores it once.
    pub fn for_client_key(group: GroupId, sender: UserId, client_msg_id: &str) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(group.0.as_bytes());
        h.update(sender.0.as_bytes());
        h.update(client_msg_id.as_bytes());
        let digest = h.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(Uuid::new_v8(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keyed_ids_are_stable_and_distinct() {
        let (g, u, v) = (GroupId::new(), UserId::new(), UserId::new());
        assert_eq!(
            MessageId::for_client_key(g, u, "a"),
            MessageId::for_client_key(g, u, "a")
        );
        assert_ne!(
            MessageId::for_client_key(g, u, "a"),
            MessageId::for_client_key(g, u, "b")
        );
        assert_ne!(
            MessageId::for_client_key(g, u, "a"),
            MessageId::for_client_key(g, v, "a")
        );
        assert_ne!(
            MessageId::for_client_key(g, u, "a"),
            MessageId::for_client_key(GroupId::new(), u, "a")
        );
    }
}
