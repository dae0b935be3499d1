//! Keyset paging, the same for both engines: a listing reads one row more than asked for to
//! learn whether another page follows, and the cursor is the sort key of the last row served.

use time::OffsetDateTime;

use super::Page;
use crate::domain::{Cursor, Limit, to_millis};
use crate::error::{AppError, AppResult};

/// How many rows to read for a page of `limit`.
pub(crate) fn rows_for(limit: Limit) -> u32 {
    limit.get() + 1
}

/// A page from up to `limit + 1` raw rows; the extra one only says more follow. `key` is the
/// sort key of a row, `convert` turns a row into an item (dropping it with `None`).
pub(crate) fn page<R, T>(
    mut rows: Vec<R>,
    limit: Limit,
    key: impl Fn(&R) -> String,
    convert: impl FnMut(R) -> Option<T>,
) -> Page<T> {
    let more = rows.len() > limit.get() as usize;
    rows.truncate(limit.get() as usize);
    let next = if more {
        rows.last().map(|r| Cursor::from_key(&key(r)))
    } else {
        None
    };
    Page {
        items: rows.into_iter().filter_map(convert).collect(),
        next,
    }
}

/// The `(time, id)` key of the per-group listings (members, requests, bans, audit events):
/// `<millis>|<id>`.
pub(crate) fn time_key(t: OffsetDateTime, id: impl std::fmt::Display) -> String {
    format!("{}|{}", to_millis(t), id)
}

/// Splits a key written by [`time_key`]: milliseconds and the id as text. A cursor this server
/// did not issue is a client error, the same on both engines.
pub(crate) fn split_time_key(cursor: &Cursor) -> AppResult<(i64, String)> {
    cursor
        .key()
        .split_once('|')
        .and_then(|(t, id)| Some((t.parse().ok()?, id.to_owned())))
        .ok_or_else(|| AppError::field("cursor", "is not a cursor this server issued"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::from_millis;

    #[test]
    fn time_keys_round_trip_and_foreign_cursors_are_refused() {
        let t = from_millis(1_700_000_000_123);
        let c = Cursor::from_key(&time_key(t, "u1"));
        assert_eq!(
            split_time_key(&c).unwrap(),
            (1_700_000_000_123, "u1".to_owned())
        );
        assert!(split_time_key(&Cursor::from_key("nonsense")).is_err());
        assert!(split_time_key(&Cursor::from_key("x|u1")).is_err());
    }

    #[test]
    fn a_page_says_more_follow_only_when_a_row_was_left_over() {
        let limit = Limit::new_clamped(2);
        let p = page(vec![1, 2, 3], limit, |r| r.to_string(), Some);
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!(p.next.map(|c| c.key().to_owned()), Some("2".into()));
        let p = page(vec![1, 2], limit, |r| r.to_string(), Some);
        assert!(p.next.is_none());
    }
}
