//! Property tests: random command sequences from random actors keep the invariants, and a
//! cooldown blocks a rejoin exactly until it passes.

use super::*;

// ---------------------------------------------------------------------------------------------
// Property tests: random command sequences from random actors
// ---------------------------------------------------------------------------------------------

/// The owner (user 0 at first) and four more users.
const USERS: u128 = 5;
/// Long enough, against the waits of `arb_step`, for rejoins to hit and outlive the cooldown.
const SEQ_COOLDOWN: Duration = Duration::from_secs(30);

/// Who acts or is targeted: picking from the current sets makes meaningful commands frequent.
#[derive(Clone, Copy, Debug)]
enum Pick {
    Owner,
    User(u128),
    Pending(usize),
    /// A member other than the owner.
    Member(usize),
    Banned(usize),
    /// A user with a cooldown, over or not.
    Cooled(usize),
    Invited(usize),
    Moderator(usize),
}

impl Pick {
    fn resolve(self, m: &Model) -> UserId {
        let nth = |set: Vec<UserId>, n: usize| {
            if set.is_empty() {
                uid(n as u128 % USERS)
            } else {
                set[n % set.len()]
            }
        };
        match self {
            Pick::Owner => m.owner_id,
            Pick::User(n) => uid(n),
            Pick::Pending(n) => nth(m.pending.iter().copied().collect(), n),
            Pick::Member(n) => nth(
                m.members
                    .keys()
                    .copied()
                    .filter(|u| *u != m.owner_id)
                    .collect(),
                n,
            ),
            Pick::Banned(n) => nth(m.bans.keys().copied().collect(), n),
            Pick::Cooled(n) => nth(m.cooldowns.keys().copied().collect(), n),
            Pick::Invited(n) => nth(m.invitations.keys().copied().collect(), n),
            Pick::Moderator(n) => nth(
                m.members
                    .iter()
                    .filter(|(_, r)| **r == Role::Moderator)
                    .map(|(u, _)| *u)
                    .collect(),
                n,
            ),
        }
    }
}

fn arb_pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        3 => Just(Pick::Owner),
        3 => (0..USERS).prop_map(Pick::User),
        2 => any::<usize>().prop_map(Pick::Pending),
        3 => any::<usize>().prop_map(Pick::Member),
        1 => any::<usize>().prop_map(Pick::Banned),
        2 => any::<usize>().prop_map(Pick::Cooled),
        2 => any::<usize>().prop_map(Pick::Invited),
        2 => any::<usize>().prop_map(Pick::Moderator),
    ]
}

#[derive(Clone, Copy, Debug)]
struct Step {
    actor: Pick,
    /// For the owner-only commands: the owner acts, whatever `actor` says.
    by_owner: bool,
    kind: Kind,
    target: Pick,
    /// Time passing before the command.
    wait_ms: u64,
}

fn arb_step() -> impl Strategy<Value = Step> {
    // Deleting restarts the group, so it is kept rare.
    let kind = prop_oneof![
        12 => Just(Kind::Join),
        3 => Just(Kind::Withdraw),
        8 => Just(Kind::Approve),
        3 => Just(Kind::Reject),
        5 => Just(Kind::Remove),
        6 => Just(Kind::Leave),
        5 => Just(Kind::Ban),
        5 => Just(Kind::Unban),
        3 => Just(Kind::Transfer),
        1 => Just(Kind::Delete),
        3 => Just(Kind::MakeModerator),
        2 => Just(Kind::MakeMember),
        5 => Just(Kind::Invite),
        4 => Just(Kind::Accept),
        2 => Just(Kind::CancelInvitation),
        2 => Just(Kind::Rename),
        2 => Just(Kind::Reconfigure),
    ];
    let wait_ms = prop_oneof![4 => Just(0u64), 2 => 1..2_000u64, 1 => 2_000..12_000u64];
    (
        arb_pick(),
        prop::bool::weighted(0.7),
        kind,
        arb_pick(),
        wait_ms,
    )
        .prop_map(|(actor, by_owner, kind, target, wait_ms)| Step {
            actor,
            by_owner,
            kind,
            target,
            wait_ms,
        })
}

impl Step {
    fn actor(&self, m: &Model) -> UserId {
        let owner_only = !matches!(
            self.kind,
            Kind::Join | Kind::Withdraw | Kind::Leave | Kind::Accept
        );
        if owner_only && self.by_owner {
            m.owner_id
        } else {
            self.actor.resolve(m)
        }
    }
}

/// A fresh group owned by user 0 where users 1.. start as strangers (0), requesters (1, private
/// groups only) or members (2, while seats last).
fn populated(visibility: Visibility, max_members: u32, start: &[u8]) -> Model {
    let mut m = Model::new(visibility, max_members, uid(OWNER));
    for (i, s) in start.iter().enumerate() {
        let u = uid(i as u128 + 1);
        match s {
            1 if visibility == Visibility::Private => {
                m.pending.insert(u);
            }
            2 if (m.members.len() as u32) < max_members => {
                m.members.insert(u, Role::Member);
            }
            _ => {}
        }
    }
    m
}

fn prop_config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(prop_config())]

    #[test]
    fn random_command_sequences_keep_invariants(
        private in any::<bool>(),
        max_members in 2u32..=4,
        start in prop::collection::vec(0..3u8, USERS as usize - 1),
        steps in prop::collection::vec(arb_step(), 1..60),
    ) {
        let visibility = if private { Visibility::Private } else { Visibility::Open };
        let fresh = populated(visibility, max_members, &start);
        prop_assert_eq!(fresh.check_invariants(), Ok(()));
        let mut model = fresh.clone();
        let mut now = T0;
        for (i, s) in steps.iter().enumerate() {
            now += ms(s.wait_ms);
            let actor = s.actor(&model);
            let cmd = s.kind.command(s.target.resolve(&model));
            let r = step(&model, actor, &cmd, now, SEQ_COOLDOWN);
            prop_assert!(
                r.matches(),
                "step {i}: {cmd:?} by {actor} on {model:?}\n decide: {:?}\n contract: {:?}",
                r.got, r.want
            );
            if !private {
                let cooled = matches!(r.got, Err(Refusal::CooldownActive { .. }));
                prop_assert!(!cooled, "cooldown_active in an open group");
            }
            match r.after {
                Err(e) => prop_assert!(false, "step {i}: {cmd:?} by {actor}: {e}"),
                Ok(Some(next)) if next.deleted => {
                    // A new group, in the same shape, keeps the sequence going.
                    model = fresh.clone();
                }
                Ok(Some(next)) => model = next,
                Ok(None) => {}
            }
            prop_assert_eq!(model.check_invariants(), Ok(()));
            prop_assert!(private || model.cooldowns.is_empty(), "cooldown in an open group");
        }
    }

    /// Leaving, removal and unbanning in a private group refuse a rejoin with cooldown_active
    /// exactly until the cooldown has passed; open groups never refuse.
    #[test]
    fn cooldown_blocks_rejoin_exactly_until_it_passes(
        private in any::<bool>(),
        how in 0..3usize,
        (cooldown_ms, elapsed_ms) in (1u64..=48 * 3_600_000).prop_flat_map(|c| {
            (Just(c), prop_oneof![0..=2 * c, Just(c - 1), Just(c), Just(c + 1)])
        }),
    ) {
        let visibility = if private { Visibility::Private } else { Visibility::Open };
        let mut w = World::new(visibility, 10, ms(cooldown_ms));
        w.admit(1);
        let gone = match how {
            0 => w.outcome(1, Command::Leave),
            1 => w.outcome(OWNER, Command::Remove { target: uid(1) }),
            _ => w
                .outcome(OWNER, Command::Ban { target: uid(1) })
                .and_then(|_| w.outcome(OWNER, Command::Unban { target: uid(1) })),
        };
        prop_assert_eq!(gone, Ok(Outcome::Done));
        w.wait(ms(elapsed_ms));
        let admitted = if private { Outcome::Pending } else { Outcome::Member };
        let got = w.outcome(1, Command::Join);
        if private && elapsed_ms < cooldown_ms {
            let secs = (cooldown_ms - elapsed_ms).div_ceil(1000);
            prop_assert_eq!(&got, &cooldown_refusal(secs));
            w.wait(Duration::from_secs(secs));
            prop_assert_eq!(w.outcome(1, Command::Join), Ok(admitted));
        } else {
            prop_assert_eq!(got, Ok(admitted));
        }
    }
}
