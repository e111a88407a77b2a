//! The `room-inout` check: did every bot see every membership change of its room, exactly
//! once, while it was in the room?
//!
//! The server serialises each room's enters and leaves into one history. A bot's *stay*
//! runs from the server's answer to its enter (207) to its answer to its leave (216), and
//! what the bot is told during it is a window on that history: the 209 list is the
//! membership at its entry, and the 208s and 217s that follow are every change after its
//! entry and before its leave, in order. The bots do not see the history itself, and the
//! notifies do not say *which* stay of a member they are about (a 208 carries the
//! member's unique id, which is per login, not per stay). So the check reconstructs it:
//!
//! 1. **Pairs.** Whether bot `b` should have seen a change of bot `u` depends only on the
//!    order of `b`'s and `u`'s own enters and leaves, and while either is in the room the
//!    other's view pins that order down: merge the two bots' stays step by step. While one
//!    is in, the next change of the other must be the next notify about it in that one's
//!    window; while both are in, the one whose window still expects a notify about the
//!    other stays, the other leaves; a stay that neither sees the other nor is seen by it
//!    (its list and window do not name the other) happened while the other was out and
//!    commutes with the other's stays, so it is taken as soon as both are out. Every
//!    other choice is forced, so a pair either merges in one way or not at all. The merge
//!    also says which stay of `u` each notify about `u` is, and which stays overlap.
//! 2. **Rooms.** Stays that overlap, directly or through others, form a *block*: a span of
//!    the history during which the room is never empty. With every notify identified, a
//!    block replays deterministically: the next change is the next notify every open
//!    window expects (all must agree), an entrant's 209 list must be the members so far
//!    in order of entry, a leaver's own window must be exhausted. Blocks are replayed in
//!    any order that keeps each bot's own stays in order (blocks that can go next at the
//!    same time share no bot, so they commute).
//!
//! A room passes if and only if one history explains every view of it. A notify lost,
//! duplicated or made up (a ghost member in a list) makes its pair fail to merge; views that
//! each pair accepts but that disagree on the order of changes fail the replay.

use std::collections::HashMap;

/// A membership change as a bot was told it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// 208: the user with this unique id entered.
    Entered(i64),
    /// 217: the user with this unique id left.
    Left(i64),
}

/// One stay of a bot in its room, as the bot was told it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stay {
    /// The 209 list: unique ids, oldest first.
    pub(crate) list: Vec<i64>,
    /// The 208s and 217s that came after it, before the bot's own 216.
    pub(crate) changes: Vec<Change>,
}

/// What the check found in one room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Stays whose views were checked.
    pub(crate) stays: u64,
    /// Pairs of bots whose views of each other no order of their enters and leaves
    /// explains: a change lost, or a member that was not there.
    pub(crate) lost: u64,
    /// The same member twice in one 209 list, or a notify naming the bot itself.
    pub(crate) duplicated: u64,
    /// 1 if every pair merged but the views disagree on the order of the changes.
    pub(crate) order: u64,
}

/// A stay with members named by bot (their position in the room), each change with the
/// stay of the member it is about (filled in by the pair merges).
struct View {
    list: Vec<usize>,
    changes: Vec<(bool, usize)>,
    /// The stay of the member each change is about.
    stay_of: Vec<Option<usize>>,
}

/// Check one room: `stays[b]` are the stays of the room's bot `b`, in order, every one of
/// them ended by the server's 216; `bot_of` names the bot (by position in `stays`) behind
/// each unique id. A unique id not in `bot_of` was never the room's: a ghost.
pub(crate) fn check_room(stays: &[Vec<Stay>], bot_of: &HashMap<i64, usize>) -> Verdict {
    let mut verdict = Verdict {
        stays: stays.iter().map(|s| s.len() as u64).sum(),
        ..Verdict::default()
    };
    let Some(mut views) = name_members(stays, bot_of, &mut verdict) else {
        return verdict;
    };
    let bots = views.len();
    let mut blocks = Blocks::new(&views);
    for b in 0..bots {
        for u in b + 1..bots {
            if !merge_pair(&mut views, b, u, &mut blocks) {
                verdict.lost += 1;
            }
        }
    }
    if verdict.lost == 0 && !replay(&views, &mut blocks) {
        verdict.order = 1;
    }
    verdict
}

/// Turn unique ids into bots. `None` (with the verdict updated) if a view names an id that
/// is no bot of the room, the bot itself, or one member twice.
fn name_members(
    stays: &[Vec<Stay>],
    bot_of: &HashMap<i64, usize>,
    verdict: &mut Verdict,
) -> Option<Vec<Vec<View>>> {
    let mut ok = true;
    let mut views = Vec::with_capacity(stays.len());
    for (b, bot_stays) in stays.iter().enumerate() {
        let mut bot_views = Vec::with_capacity(bot_stays.len());
        for stay in bot_stays {
            let mut name = |id: i64| match bot_of.get(&id) {
                Some(&u) if u != b && u < stays.len() => Some(u),
                Some(_) => {
                    verdict.duplicated += 1;
                    ok = false;
                    None
                }
                None => {
                    verdict.lost += 1;
                    ok = false;
                    None
                }
            };
            let mut list = Vec::with_capacity(stay.list.len());
            for &id in &stay.list {
                if let Some(u) = name(id) {
                    list.push(u);
                }
            }
            let mut changes = Vec::with_capacity(stay.changes.len());
            for &change in &stay.changes {
                let (entered, id) = match change {
                    Change::Entered(id) => (true, id),
                    Change::Left(id) => (false, id),
                };
                if let Some(u) = name(id) {
                    changes.push((entered, u));
                }
            }
            let mut sorted = list.clone();
            sorted.sort_unstable();
            if sorted.windows(2).any(|w| w[0] == w[1]) {
                verdict.duplicated += 1;
                ok = false;
            }
            bot_views.push(View {
                stay_of: vec![None; changes.len()],
                list,
                changes,
            });
        }
        views.push(bot_views);
    }
    ok.then_some(views)
}

/// Stays joined into blocks (union-find over every bot's stays).
struct Blocks {
    /// The first index of each bot's stays.
    base: Vec<usize>,
    parent: Vec<usize>,
}

impl Blocks {
    fn new(views: &[Vec<View>]) -> Blocks {
        let mut base = Vec::with_capacity(views.len());
        let mut total = 0;
        for v in views {
            base.push(total);
            total += v.len();
        }
        Blocks {
            base,
            parent: (0..total).collect(),
        }
    }

    fn index(&self, bot: usize, stay: usize) -> usize {
        self.base[bot] + stay
    }

    fn root(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn join(&mut self, a: (usize, usize), b: (usize, usize)) {
        let (a, b) = (self.index(a.0, a.1), self.index(b.0, b.1));
        let (a, b) = (self.root(a), self.root(b));
        self.parent[a] = b;
    }

    fn block(&mut self, bot: usize, stay: usize) -> usize {
        let i = self.index(bot, stay);
        self.root(i)
    }
}

/// One side of a pair merge: a bot's stays as far as they concern the other bot.
struct Side {
    /// Per stay: is the other in its 209 list.
    listed: Vec<bool>,
    /// Per stay: the changes about the other, as (entered, index in the stay's changes).
    seen: Vec<Vec<(bool, usize)>>,
    /// The next stay.
    next: usize,
    /// In the room (in stay `next`), and how many of its `seen` have been matched.
    inside: Option<usize>,
}

impl Side {
    fn new(views: &[View], other: usize) -> Side {
        Side {
            listed: views.iter().map(|v| v.list.contains(&other)).collect(),
            seen: views
                .iter()
                .map(|v| {
                    v.changes
                        .iter()
                        .enumerate()
                        .filter(|&(_, &(_, u))| u == other)
                        .map(|(i, &(entered, _))| (entered, i))
                        .collect()
                })
                .collect(),
            next: 0,
            inside: None,
        }
    }

    fn stays(&self) -> usize {
        self.listed.len()
    }

    /// Out of the room, and the next stay does not list the other and sees no change of it.
    fn next_is_unseen(&self) -> bool {
        self.inside.is_none()
            && self.next < self.stays()
            && !self.listed[self.next]
            && self.seen[self.next].is_empty()
    }

    /// The next change about the other this side expects in its current stay.
    fn expects(&self) -> Option<(bool, usize)> {
        let matched = self.inside?;
        self.seen[self.next].get(matched).copied()
    }
}

/// A change of `sides[1 - watcher]` seen by `sides[watcher]`: record which stay of the
/// actor it is about.
fn identify(views: &mut [Vec<View>], bots: [usize; 2], sides: &[Side; 2], watcher: usize) {
    let w = &sides[watcher];
    let (_, at) = w.seen[w.next][w.inside.expect("inside")];
    views[bots[watcher]][w.next].stay_of[at] = Some(sides[1 - watcher].next);
}

/// Merge the stays of bots `b` and `u`; on success every change each saw of the other is
/// identified with the other's stay, and overlapping stays are joined into blocks.
fn merge_pair(views: &mut [Vec<View>], b: usize, u: usize, blocks: &mut Blocks) -> bool {
    let mut sides = [Side::new(&views[b], u), Side::new(&views[u], b)];
    let bots = [b, u];
    loop {
        match (sides[0].inside, sides[1].inside) {
            (None, None) => {
                // A stay that does not list the other and sees no change of it had the
                // other out all along: it commutes with the other's stays, take it first.
                if let Some(side) = sides.iter_mut().find(|s| s.next_is_unseen()) {
                    side.next += 1;
                    continue;
                }
                let more = [
                    sides[0].next < sides[0].stays(),
                    sides[1].next < sides[1].stays(),
                ];
                // Who enters first: the one the other's next stay lists.
                let first = match more {
                    [false, false] => return true,
                    [true, false] => 0,
                    [false, true] => 1,
                    [true, true] => {
                        match (
                            sides[0].listed[sides[0].next],
                            sides[1].listed[sides[1].next],
                        ) {
                            (false, true) => 0,
                            (true, false) => 1,
                            _ => return false,
                        }
                    }
                };
                if sides[first].listed[sides[first].next] {
                    // It lists the other, who is out.
                    return false;
                }
                sides[first].inside = Some(0);
            }
            (Some(_), None) | (None, Some(_)) => {
                let inside = usize::from(sides[0].inside.is_none());
                let outside = 1 - inside;
                match sides[inside].expects() {
                    Some((true, _)) => {
                        // The other enters: its next stay must list this one.
                        let o = &sides[outside];
                        if o.next >= o.stays() || !o.listed[o.next] {
                            return false;
                        }
                        identify(views, bots, &sides, inside);
                        blocks.join(
                            (bots[inside], sides[inside].next),
                            (bots[outside], sides[outside].next),
                        );
                        *sides[inside].inside.as_mut().expect("inside") += 1;
                        sides[outside].inside = Some(0);
                    }
                    // A 217 about someone who is out.
                    Some((false, _)) => return false,
                    None => {
                        // Nothing more about the other: this one leaves.
                        sides[inside].inside = None;
                        sides[inside].next += 1;
                    }
                }
            }
            (Some(_), Some(_)) => {
                // The one that still expects a change of the other stays; the other leaves.
                let stays = match (sides[0].expects(), sides[1].expects()) {
                    (Some((false, _)), None) => 0,
                    (None, Some((false, _))) => 1,
                    _ => return false,
                };
                let leaver = 1 - stays;
                identify(views, bots, &sides, stays);
                *sides[stays].inside.as_mut().expect("inside") += 1;
                sides[leaver].inside = None;
                sides[leaver].next += 1;
            }
        }
    }
}

/// Replay the room's history block by block, every change identified. `false` if no
/// order of the blocks, or no order within one, explains every view.
fn replay(views: &[Vec<View>], blocks: &mut Blocks) -> bool {
    // Each block's first stay (the one that entered an empty room) and each of its bots'
    // first stay in it.
    let mut starts: HashMap<usize, (usize, usize)> = HashMap::new();
    let mut firsts: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
    for (b, bot_views) in views.iter().enumerate() {
        for (s, view) in bot_views.iter().enumerate() {
            let root = blocks.block(b, s);
            let bots = firsts.entry(root).or_default();
            if !bots.iter().any(|&(m, _)| m == b) {
                bots.push((b, s));
            }
            if view.list.is_empty() && starts.insert(root, (b, s)).is_some() {
                return false;
            }
        }
    }
    if starts.len() != firsts.len() {
        return false;
    }
    let mut next = vec![0usize; views.len()];
    while !firsts.is_empty() {
        // A block every bot of which is at its first stay in it. Two such blocks share no
        // bot, so they commute: any will do.
        let Some(root) = firsts
            .iter()
            .find(|(_, bots)| bots.iter().all(|&(b, s)| next[b] == s))
            .map(|(&root, _)| root)
        else {
            return false;
        };
        firsts.remove(&root);
        if !replay_block(views, blocks, root, starts[&root], &mut next) {
            return false;
        }
    }
    next.iter().zip(views).all(|(&n, v)| n == v.len())
}

/// Replay one block from its first stay.
fn replay_block(
    views: &[Vec<View>],
    blocks: &mut Blocks,
    root: usize,
    (first, stay): (usize, usize),
    next: &mut [usize],
) -> bool {
    // Members in order of entry: (bot, stay, changes seen so far).
    let mut members: Vec<(usize, usize, usize)> = vec![(first, stay, 0)];
    while !members.is_empty() {
        let pending = members
            .iter()
            .find_map(|&(b, s, at)| views[b][s].changes.get(at).map(|&c| (b, s, at, c)));
        let Some((b, s, at, (entered, actor))) = pending else {
            // Nobody expects anything: only a member alone may leave now.
            if members.len() != 1 {
                return false;
            }
            let (b, s, _) = members[0];
            next[b] = s + 1;
            members.clear();
            break;
        };
        let Some(actor_stay) = views[b][s].stay_of[at] else {
            return false;
        };
        // Every other member must expect the same change next.
        for &(m, ms, mat) in &members {
            if m == actor {
                continue;
            }
            if views[m][ms].changes.get(mat) != Some(&(entered, actor))
                || views[m][ms].stay_of[mat] != Some(actor_stay)
            {
                return false;
            }
        }
        if entered {
            if members.iter().any(|&(m, _, _)| m == actor)
                || next[actor] != actor_stay
                || blocks.block(actor, actor_stay) != root
            {
                return false;
            }
            let list: Vec<usize> = members.iter().map(|&(m, _, _)| m).collect();
            if views[actor][actor_stay].list != list {
                return false;
            }
            for member in &mut members {
                member.2 += 1;
            }
            members.push((actor, actor_stay, 0));
        } else {
            let Some(at) = members.iter().position(|&(m, _, _)| m == actor) else {
                return false;
            };
            let (_, ms, mat) = members[at];
            if ms != actor_stay || mat != views[actor][ms].changes.len() {
                return false;
            }
            members.remove(at);
            for member in &mut members {
                member.2 += 1;
            }
            next[actor] = actor_stay + 1;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
        }
    }

    /// A random room history of `bots` bots over `steps` enters and leaves (then everyone
    /// leaves), and what each bot is told of it, exactly as the server tells it.
    fn history(rng: &mut Rng, bots: usize, steps: usize) -> (Vec<Vec<Stay>>, HashMap<i64, usize>) {
        let id = |b: usize| 100 + b as i64;
        let mut stays: Vec<Vec<Stay>> = vec![Vec::new(); bots];
        let mut current: Vec<Option<Stay>> = vec![None; bots];
        let mut members: Vec<usize> = Vec::new();
        let mut toggle = |b: usize, current: &mut Vec<Option<Stay>>, members: &mut Vec<usize>| {
            if let Some(at) = members.iter().position(|&m| m == b) {
                members.remove(at);
                stays[b].extend(current[b].take());
                for &m in members.iter() {
                    if let Some(s) = current[m].as_mut() {
                        s.changes.push(Change::Left(id(b)));
                    }
                }
            } else {
                for &m in members.iter() {
                    if let Some(s) = current[m].as_mut() {
                        s.changes.push(Change::Entered(id(b)));
                    }
                }
                current[b] = Some(Stay {
                    list: members.iter().map(|&m| id(m)).collect(),
                    changes: Vec::new(),
                });
                members.push(b);
            }
        };
        for _ in 0..steps {
            let b = rng.below(bots);
            toggle(b, &mut current, &mut members);
        }
        while !members.is_empty() {
            let b = members[rng.below(members.len())];
            toggle(b, &mut current, &mut members);
        }
        (stays, (0..bots).map(|b| (id(b), b)).collect())
    }

    fn clean(v: Verdict) -> bool {
        v.lost == 0 && v.duplicated == 0 && v.order == 0
    }

    #[test]
    fn every_true_history_passes() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let bots = 2 + rng.below(5);
            let steps = rng.below(80);
            let (stays, ids) = history(&mut rng, bots, steps);
            let verdict = check_room(&stays, &ids);
            assert!(clean(verdict), "{verdict:?} for {stays:?}");
        }
    }

    /// Histories with something to corrupt: a window with a change, a list with a member.
    fn busy(rng: &mut Rng) -> (Vec<Vec<Stay>>, HashMap<i64, usize>) {
        loop {
            let bots = 2 + rng.below(5);
            let steps = 4 + rng.below(80);
            let h = history(rng, bots, steps);
            if h.0
                .iter()
                .flatten()
                .any(|s| !s.changes.is_empty() && !s.list.is_empty())
            {
                return h;
            }
        }
    }

    /// A random stay matching `pick`.
    fn some_stay<'a>(
        rng: &mut Rng,
        stays: &'a mut [Vec<Stay>],
        pick: impl Fn(&Stay) -> bool,
    ) -> &'a mut Stay {
        let mut all: Vec<&mut Stay> = stays.iter_mut().flatten().filter(|s| pick(s)).collect();
        let at = rng.below(all.len());
        all.swap_remove(at)
    }

    #[test]
    fn one_lost_change_fails() {
        let mut rng = Rng(7);
        for _ in 0..2000 {
            let (mut stays, ids) = busy(&mut rng);
            let stay = some_stay(&mut rng, &mut stays, |s| !s.changes.is_empty());
            let lost = stay.changes.remove(rng.below(stay.changes.len()));
            let verdict = check_room(&stays, &ids);
            assert!(verdict.lost > 0, "{lost:?} lost, {verdict:?} for {stays:?}");
        }
    }

    #[test]
    fn one_lost_list_member_fails() {
        let mut rng = Rng(11);
        for _ in 0..2000 {
            let (mut stays, ids) = busy(&mut rng);
            let stay = some_stay(&mut rng, &mut stays, |s| !s.list.is_empty());
            let lost = stay.list.remove(rng.below(stay.list.len()));
            let verdict = check_room(&stays, &ids);
            assert!(verdict.lost > 0, "{lost} lost, {verdict:?} for {stays:?}");
        }
    }

    #[test]
    fn a_ghost_member_or_a_repeated_change_fails() {
        let mut rng = Rng(13);
        for round in 0..2000 {
            let (mut stays, mut ids) = busy(&mut rng);
            let bots = stays.len();
            let stay = some_stay(&mut rng, &mut stays, |s| !s.changes.is_empty());
            match round % 3 {
                // Someone of another room, or nobody.
                0 => {
                    ids.insert(999, bots);
                    stay.list.push(999);
                }
                // A member of the room who was not there.
                1 => {
                    let present: Vec<i64> = stay.list.clone();
                    if let Some(b) = (0..bots).map(|b| 100 + b as i64).find(|id| {
                        !present.contains(id)
                            && stay
                                .changes
                                .iter()
                                .all(|c| *c != Change::Entered(*id) && *c != Change::Left(*id))
                    }) {
                        stay.list.push(b);
                    } else {
                        let c = stay.changes[0];
                        stay.changes.insert(0, c);
                    }
                }
                // A change told twice.
                _ => {
                    let at = rng.below(stay.changes.len());
                    let c = stay.changes[at];
                    stay.changes.insert(at, c);
                }
            }
            let verdict = check_room(&stays, &ids);
            assert!(!clean(verdict), "{verdict:?} for {stays:?}");
        }
    }

    #[test]
    fn changes_told_out_of_order_fail() {
        let mut rng = Rng(17);
        let mut swapped = 0;
        for _ in 0..2000 {
            let (mut stays, ids) = busy(&mut rng);
            if !stays.iter().flatten().any(|s| s.changes.len() >= 2) {
                continue;
            }
            let stay = some_stay(&mut rng, &mut stays, |s| s.changes.len() >= 2);
            let at = rng.below(stay.changes.len() - 1);
            let who = |c: Change| match c {
                Change::Entered(id) | Change::Left(id) => id,
            };
            if who(stay.changes[at]) == who(stay.changes[at + 1]) {
                continue;
            }
            stay.changes.swap(at, at + 1);
            swapped += 1;
            let verdict = check_room(&stays, &ids);
            assert!(!clean(verdict), "{verdict:?} for {stays:?}");
        }
        assert!(swapped > 100);
    }
}
