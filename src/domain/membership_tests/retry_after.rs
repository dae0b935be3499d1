//! `retry_after` of a cooldown refusal: whole seconds, rounded up, at least one.

use super::*;

// ---------------------------------------------------------------------------------------------
// retry_after
// ---------------------------------------------------------------------------------------------

fn join_with_cooldown_left(left: time::Duration) -> Result<Decision, Refusal> {
    let facts = GroupFacts {
        visibility: Visibility::Private,
        owner_id: uid(0),
        member_count: 1,
        max_members: 10,
    };
    let me = Relation {
        cooldown_until: Some(T0 + left),
        ..Relation::default()
    };
    let s = Snapshot {
        group: &facts,
        actor_id: uid(1),
        actor: &me,
        target: &me,
    };
    decide(&Command::Join, &s, T0, COOLDOWN_48H)
}

#[test]
fn retry_after_rounds_up_to_whole_seconds_and_is_at_least_one() {
    let refused = |secs| {
        Err(Refusal::CooldownActive {
            retry_after: Duration::from_secs(secs),
        })
    };
    let table: [(i64, Result<Outcome, Refusal>); 12] = [
        (1, refused(1)),
        (500, refused(1)),
        (999, refused(1)),
        (1_000, refused(1)),
        (1_001, refused(2)),
        (1_999, refused(2)),
        (2_000, refused(2)),
        (59_001, refused(60)),
        (48 * 3_600_000 - 1, refused(48 * 3600)),
        (48 * 3_600_000, refused(48 * 3600)),
        // The cooldown is over at its instant, and of course after it.
        (0, Ok(Outcome::Pending)),
        (-1, Ok(Outcome::Pending)),
    ];
    for (left_ms, want) in table {
        let got = join_with_cooldown_left(time::Duration::milliseconds(left_ms));
        assert_eq!(got.map(|d| d.outcome), want, "{left_ms} ms left");
    }
}

#[test]
fn retry_after_rounds_up_sub_millisecond_remainders() {
    let left = time::Duration::SECOND + time::Duration::MICROSECOND;
    assert_eq!(
        join_with_cooldown_left(left),
        Err(Refusal::CooldownActive {
            retry_after: Duration::from_secs(2)
        })
    );
}
