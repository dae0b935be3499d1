//! Shapes shared by several routes: timestamps, list pages, status replies.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{Cursor, Limit};
use crate::error::AppError;
use crate::store::Page;

/// A page of a listing. Pass `next_cursor` back as `cursor` for the next page; `null` at the end.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct List<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> List<T> {
    pub fn from_page<R>(page: Page<R>, f: impl Fn(R) -> T) -> Self {
        Self {
            items: page.items.into_iter().map(f).collect(),
            next_cursor: page.next.map(|c| c.encode()),
        }
    }
}

/// `?limit=&cursor=` of every listing.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1..100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn parse(&self) -> Result<(Limit, Option<Cursor>), AppError> {
        let mut v = crate::input::Validator::default();
        let limit = v.check(Limit::parse(self.limit));
        let cursor = self.cursor.as_deref().map(Cursor::decode).transpose();
        let cursor = v.check(cursor);
        v.finish()?;
        Ok((limit.unwrap_or_default(), cursor.flatten()))
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusReply {
    /// `member`, `pending` or `accepted`.
    pub status: String,
}
