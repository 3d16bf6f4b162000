//! Eyal and Sirer's selfish-mining algorithm ("Majority is not Enough", 2014, Algorithm 1)
//! as a pure state machine: no hashes, no I/O, only branch lengths.
//!
//! The pool keeps a private branch on top of the last block both sides agree on. Its
//! state is the lead of that branch over the public one: 0, 1, 2, more, or 0' (the race:
//! both branches one block long, both public). Events are "the pool found a block" and
//! "the others found a block"; each returns what to publish:
//!
//! | state | pool finds            | others find                                  |
//! |-------|-----------------------|----------------------------------------------|
//! | 0     | withhold → 1          | adopt → 0                                    |
//! | 0'    | publish all → 0 (won) | adopt the branch they extended → 0           |
//! | 1     | withhold → 2          | publish the branch → 0' (race)               |
//! | 2     | withhold → 3          | publish all → 0 (override, one block ahead)  |
//! | n > 2 | withhold → n + 1      | publish the first unpublished block → n − 1  |

/// Where the pool stands (Eyal–Sirer's states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfishState {
    /// No private branch, or a private branch this many blocks ahead of the public one.
    Lead(u32),
    /// State 0': both branches are one block long and public; the next block decides.
    Race,
}

impl std::fmt::Display for SelfishState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SelfishState::Lead(n) => write!(f, "{n}"),
            SelfishState::Race => f.write_str("0'"),
        }
    }
}

/// What the pool does after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfishAction {
    /// Keep the new block (and the rest of the branch) private.
    Withhold,
    /// Announce the branch's blocks with index below `through` (index 0 is the first
    /// block above the fork point) that are not public yet, in order.
    Publish {
        /// One past the last branch index to make public.
        through: u32,
    },
    /// Give the private branch up and mine on the public tip.
    Adopt,
}

/// The pool's branch lengths above the fork point, and the races it has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelfishMachine {
    private_len: u32,
    public_len: u32,
    published: u32,
    races: u64,
    races_on_pool_branch: u64,
}

impl SelfishMachine {
    /// A pool with no private branch (state 0).
    pub fn new() -> SelfishMachine {
        SelfishMachine::default()
    }

    /// The current state.
    pub fn state(&self) -> SelfishState {
        if self.private_len == self.public_len && self.private_len > 0 {
            SelfishState::Race
        } else {
            SelfishState::Lead(self.private_len.saturating_sub(self.public_len))
        }
    }

    /// Blocks of the private branch (public or not).
    pub fn private_len(&self) -> u32 {
        self.private_len
    }

    /// Blocks of the branch already announced.
    pub fn published(&self) -> u32 {
        self.published
    }

    /// Races (state 0') that the others' next block decided.
    pub fn races(&self) -> u64 {
        self.races
    }

    /// Of [`races`](Self::races), those where the others' block extended the pool's branch.
    pub fn races_on_pool_branch(&self) -> u64 {
        self.races_on_pool_branch
    }

    /// γ as measured: the share of decided races whose deciding block the others mined on
    /// the pool's branch; `None` before the first race.
    pub fn gamma(&self) -> Option<f64> {
        (self.races > 0).then(|| self.races_on_pool_branch as f64 / self.races as f64)
    }

    fn reset(&mut self) {
        self.private_len = 0;
        self.public_len = 0;
        self.published = 0;
    }

    fn publish_through(&mut self, through: u32) -> SelfishAction {
        self.published = self.published.max(through);
        SelfishAction::Publish { through }
    }

    /// The pool found a block on its private tip.
    pub fn on_pool_block(&mut self) -> SelfishAction {
        let was = self.state();
        self.private_len += 1;
        match was {
            SelfishState::Race => {
                let action = self.publish_through(self.private_len);
                self.reset();
                action
            }
            SelfishState::Lead(_) => SelfishAction::Withhold,
        }
    }

    /// The others found a block; `on_pool_branch` when it extends the pool's public branch
    /// (which only matters in the race).
    pub fn on_others_block(&mut self, on_pool_branch: bool) -> SelfishAction {
        let was = self.state();
        self.public_len += 1;
        match was {
            SelfishState::Race => {
                self.races += 1;
                if on_pool_branch {
                    self.races_on_pool_branch += 1;
                }
                self.reset();
                SelfishAction::Adopt
            }
            SelfishState::Lead(0) => {
                self.reset();
                SelfishAction::Adopt
            }
            SelfishState::Lead(1) => self.publish_through(self.private_len),
            SelfishState::Lead(2) => {
                let action = self.publish_through(self.private_len);
                self.reset();
                action
            }
            SelfishState::Lead(_) => self.publish_through(self.public_len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SelfishAction::*;
    use SelfishState::*;

    fn at_lead(n: u32) -> SelfishMachine {
        let mut m = SelfishMachine::new();
        for _ in 0..n {
            assert_eq!(m.on_pool_block(), Withhold);
        }
        assert_eq!(m.state(), Lead(n));
        m
    }

    fn in_race() -> SelfishMachine {
        let mut m = at_lead(1);
        assert_eq!(m.on_others_block(false), Publish { through: 1 });
        assert_eq!(m.state(), Race);
        m
    }

    #[test]
    fn state_0_withholds_its_block_and_adopts_theirs() {
        let mut m = SelfishMachine::new();
        assert_eq!(m.state(), Lead(0));
        assert_eq!(m.on_others_block(false), Adopt);
        assert_eq!(m.state(), Lead(0));
        assert_eq!(m.on_pool_block(), Withhold);
        assert_eq!(m.state(), Lead(1));
        assert_eq!(m.published(), 0);
    }

    #[test]
    fn lead_1_publishes_when_they_find_and_races() {
        let m = in_race();
        assert_eq!(m.published(), 1);
        assert_eq!(m.private_len(), 1);
    }

    #[test]
    fn the_race_is_won_by_the_pools_next_block() {
        let mut m = in_race();
        assert_eq!(m.on_pool_block(), Publish { through: 2 });
        assert_eq!(m.state(), Lead(0));
        assert_eq!(m.races(), 0, "a race the pool decides is no γ sample");
    }

    #[test]
    fn the_race_is_lost_or_shared_by_their_next_block_and_gamma_counts_it() {
        let mut m = in_race();
        assert_eq!(m.on_others_block(true), Adopt);
        assert_eq!(m.state(), Lead(0));
        let mut m2 = in_race();
        assert_eq!(m2.on_others_block(false), Adopt);
        assert_eq!((m.races(), m.races_on_pool_branch()), (1, 1));
        assert_eq!((m2.races(), m2.races_on_pool_branch()), (1, 0));
        assert_eq!(m.gamma(), Some(1.0));
        assert_eq!(m2.gamma(), Some(0.0));
        assert_eq!(SelfishMachine::new().gamma(), None);
    }

    #[test]
    fn lead_2_overrides_with_the_whole_branch_when_they_find() {
        let mut m = at_lead(2);
        assert_eq!(m.on_others_block(false), Publish { through: 2 });
        assert_eq!(m.state(), Lead(0));
        assert_eq!(m.private_len(), 0);
    }

    #[test]
    fn a_lead_above_2_publishes_one_block_per_block_they_find() {
        let mut m = at_lead(4);
        assert_eq!(m.on_others_block(false), Publish { through: 1 });
        assert_eq!(m.state(), Lead(3));
        assert_eq!(m.on_pool_block(), Withhold);
        assert_eq!(m.state(), Lead(4));
        assert_eq!(m.on_others_block(false), Publish { through: 2 });
        assert_eq!(m.on_others_block(false), Publish { through: 3 });
        assert_eq!(m.state(), Lead(2));
        assert_eq!(m.on_others_block(false), Publish { through: 5 });
        assert_eq!(m.state(), Lead(0));
    }

    #[test]
    fn states_print_as_in_the_paper() {
        assert_eq!(Race.to_string(), "0'");
        assert_eq!(Lead(3).to_string(), "3");
    }
}
