//! Collects every field error of a request so a client sees them all at once.

use crate::domain::FieldError;
use crate::error::AppError;

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
