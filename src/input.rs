//! Client input, whichever transport brought it: JSON parsed with errors that name the field,
//! and validation that reports every bad field at once. Below both transports, so REST bodies
//! and Socket.IO payloads get the same codes from the same code.

use serde::de::DeserializeOwned;

use crate::domain::FieldError;
use crate::error::AppError;

/// Parses a JSON object: broken JSON is 400 `malformed_request`; valid JSON of the wrong shape
/// is 422 `validation_failed` naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let msg = inner.to_string();
                // "missing field `x`" has no path of its own: name the field.
                let field = msg
                    .strip_prefix("missing field `")
                    .and_then(|r| r.split('`').next())
                    .map(str::to_owned)
                    .unwrap_or_else(|| if path == "." { "body".into() } else { path });
                let message = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
                AppError::Validation(vec![FieldError {
                    field: known_field(field),
                    message,
                }])
            }
            _ => AppError::Malformed(format!("the body is not valid JSON: {inner}")),
        }
    })?;
    // Anything after the value (`{..} garbage`) makes the body invalid JSON.
    de.end()
        .map_err(|e| AppError::Malformed(format!("the body is not valid JSON: {e}")))?;
    // Every body is an object; serde would also fill a struct from an array, by field order.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(AppError::field("body", "must be a JSON object"));
    }
    Ok(value)
}

/// Field names in validation errors are `&'static str`; names coming from a client body are
/// mapped onto the known set, anything else reported as `body`.
pub fn known_field(name: String) -> &'static str {
    const KNOWN: &[&str] = &[
        "username",
        "password",
        "refresh_token",
        "name",
        "description",
        "visibility",
        "max_members",
        "user_id",
        "new_owner_id",
        "content",
        "client_msg_id",
        "limit",
        "cursor",
        "after_seq",
        "before_seq",
        "query",
        "group_id",
    ];
    KNOWN.iter().copied().find(|k| *k == name).unwrap_or("body")
}

/// Collects every field error of a request so a client sees them all at once.
#[derive(Default)]
pub struct Validator(Vec<FieldError>);

impl Validator {
    pub fn check<T>(&mut self, r: Result<T, FieldError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    /// `Ok` only if every check passed; then each `check` above returned `Some`.
    pub fn finish(self) -> Result<(), AppError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AppError::Validation(self.0))
        }
    }
}
