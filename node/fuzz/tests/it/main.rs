//! The CI smoke run of every fuzz target (see `cairn_fuzz::smoke`): the committed corpus,
//! the regression inputs and the seeds replayed, then a few thousand seeded mutations, each
//! target well under five seconds. Coverage-guided runs are `scripts/fuzz.sh`.

mod seeds;
mod smoke;
