//! Coin selection: which coins pay for a transaction, what fee it pays, whether it has
//! change. Pure: no keys, no node, no randomness.
//!
//! The strategy, in the order tried:
//! 1. Only confirmed coins; then, if they are not enough, confirmed and unconfirmed ones
//!    ("prefer confirmed": an unconfirmed coin can vanish with its parent).
//! 2. Within those, branch-and-bound (Bitcoin Core's BnB, Murch 2016) looks for a set that
//!    pays the target with no change, wasting less than a change output would cost plus
//!    the dust threshold.
//! 3. Otherwise largest-first: the biggest coins until the target and the fee are paid,
//!    with change back to the wallet.
//!
//! Change below the dust threshold is never created: it goes to the fee instead (an
//! output worth less than the fee to spend it is a loss for everybody who stores it).
//! Under a fee rate, coins worth less than the fee of spending them are left alone.

use cairn_core::encoding;
use cairn_core::{Amount, OutPoint, PubkeyHash, Transaction, TxIn, TxOut};

/// Most branch-and-bound steps before giving up on a changeless solution.
const BNB_MAX_TRIES: usize = 100_000;

/// Dust is priced at three times the cost of the output's own size plus the input that
/// will spend it, at [`DUST_FEE_RATE`] (Bitcoin Core's `dustRelayFee` reasoning).
pub const DUST_FEE_RATE: u64 = 3;

/// The default fee rate, base units per encoded byte (the node's minimum relay rate).
pub const DEFAULT_FEE_RATE: u64 = 1;

/// A coin that may be selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The output it is.
    pub outpoint: OutPoint,
    /// Its value.
    pub amount: Amount,
    /// Mined on the active chain (else it is an output of a mempool transaction).
    pub confirmed: bool,
}

/// How the fee is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeePolicy {
    /// Base units per encoded byte of the final transaction.
    Rate(u64),
    /// A fixed fee in base units (raised only by change too small to create).
    Absolute(Amount),
}

impl Default for FeePolicy {
    fn default() -> Self {
        FeePolicy::Rate(DEFAULT_FEE_RATE)
    }
}

impl FeePolicy {
    /// The fee of a transaction of `size` bytes.
    pub fn fee_for(&self, size: usize) -> Amount {
        match *self {
            FeePolicy::Rate(rate) => Amount::from_base(rate.saturating_mul(size as u64)),
            FeePolicy::Absolute(fee) => fee,
        }
    }

    /// What one more input adds to the fee.
    fn marginal(&self, bytes: usize) -> u64 {
        match *self {
            FeePolicy::Rate(rate) => rate.saturating_mul(bytes as u64),
            FeePolicy::Absolute(_) => 0,
        }
    }
}

/// Encoded transaction size as a function of its shape. Exact, because signatures (64
/// bytes) and public keys (33 bytes) have fixed sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeModel {
    /// Size with no inputs and no outputs.
    pub base: usize,
    /// Bytes each input adds.
    pub per_input: usize,
    /// Bytes each output adds.
    pub per_output: usize,
}

impl SizeModel {
    /// The sizes of Cairn's encoding for transactions carrying `data_len` bytes of data,
    /// measured from `cairn-core`'s encoder rather than restated here.
    pub fn cairn(data_len: usize) -> SizeModel {
        let input = TxIn {
            prevout: OutPoint::default(),
            signature: [0; 64],
            public_key: [0; 33],
        };
        let output = TxOut {
            amount: Amount::ZERO,
            address: PubkeyHash::default(),
        };
        let shape = |inputs: usize, outputs: usize| {
            encoding::encoded_size(&Transaction {
                version: 1,
                inputs: vec![input.clone(); inputs],
                outputs: vec![output; outputs],
                lock_height: 0,
                data: vec![0; data_len],
            })
        };
        let base = shape(0, 0);
        SizeModel {
            base,
            per_input: shape(1, 0) - base,
            per_output: shape(0, 1) - base,
        }
    }

    /// Size of a transaction with `inputs` inputs and `outputs` outputs.
    pub fn tx_size(&self, inputs: usize, outputs: usize) -> usize {
        self.base + inputs * self.per_input + outputs * self.per_output
    }

    /// Change smaller than this is added to the fee instead of being created.
    pub fn dust_threshold(&self) -> Amount {
        Amount::from_base(DUST_FEE_RATE * (self.per_input + self.per_output) as u64)
    }
}

/// What to pay for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectionRequest {
    /// Sum of the recipients' outputs.
    pub payment: Amount,
    /// How many recipient outputs there are.
    pub recipient_outputs: usize,
    /// The fee.
    pub fee: FeePolicy,
    /// Transaction sizes.
    pub size: SizeModel,
    /// Smallest change worth creating.
    pub dust_threshold: Amount,
}

impl SelectionRequest {
    /// A payment of `payment` to one recipient with Cairn's sizes and dust threshold.
    pub fn single(payment: Amount, fee: FeePolicy) -> SelectionRequest {
        let size = SizeModel::cairn(0);
        SelectionRequest {
            payment,
            recipient_outputs: 1,
            fee,
            size,
            dust_threshold: size.dust_threshold(),
        }
    }
}

/// The chosen coins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Coins to spend, in the order they should become inputs.
    pub inputs: Vec<Candidate>,
    /// The fee the transaction pays (including any change too small to create).
    pub fee: Amount,
    /// The change output's value, if there is one.
    pub change: Option<Amount>,
    /// Encoded size of the final transaction.
    pub size: usize,
}

impl Selection {
    /// Sum of the selected coins.
    pub fn input_total(&self) -> Amount {
        Amount::from_base(self.inputs.iter().map(|c| c.amount.to_base()).sum())
    }
}

/// Why no selection exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    /// The usable coins do not cover payment and fee.
    #[error(
        "insufficient funds: need {needed} (payment plus fee), have {available} spendable, missing {missing}"
    )]
    InsufficientFunds {
        /// Payment plus the fee of spending every usable coin.
        needed: Amount,
        /// Sum of the usable coins.
        available: Amount,
        /// `needed - available`.
        missing: Amount,
    },
    /// Nothing to pay.
    #[error("the amount to pay must be positive")]
    ZeroPayment,
    /// The numbers overflow 64 bits.
    #[error("amounts overflow")]
    Overflow,
}

/// Chooses coins for `request`. See the module documentation for the strategy.
pub fn select_coins(
    candidates: &[Candidate],
    request: &SelectionRequest,
) -> Result<Selection, SelectionError> {
    if request.payment == Amount::ZERO {
        return Err(SelectionError::ZeroPayment);
    }
    let confirmed: Vec<Candidate> = candidates.iter().filter(|c| c.confirmed).copied().collect();
    match select_within(&confirmed, request) {
        Ok(selection) => Ok(selection),
        Err(SelectionError::InsufficientFunds { .. }) if confirmed.len() < candidates.len() => {
            select_within(candidates, request)
        }
        Err(e) => Err(e),
    }
}

/// One tier of coins: branch-and-bound, then largest-first.
fn select_within(
    candidates: &[Candidate],
    request: &SelectionRequest,
) -> Result<Selection, SelectionError> {
    let per_input_fee = request.fee.marginal(request.size.per_input);
    // Coins that cost more to spend than they are worth only make the fee bigger.
    let mut usable: Vec<Candidate> = candidates
        .iter()
        .filter(|c| c.amount.to_base() > per_input_fee)
        .copied()
        .collect();
    // Largest first; ties broken by outpoint so the result is deterministic.
    usable.sort_by(|a, b| b.amount.cmp(&a.amount).then(a.outpoint.cmp(&b.outpoint)));

    let outputs = request.recipient_outputs;
    let payment = request.payment.to_base();
    let fee_without_change =
        |inputs: usize| request.fee.fee_for(request.size.tx_size(inputs, outputs));
    let fee_with_change = |inputs: usize| {
        request
            .fee
            .fee_for(request.size.tx_size(inputs, outputs + 1))
    };

    if let Some(chosen) = branch_and_bound(&usable, request, per_input_fee) {
        let inputs: Vec<Candidate> = chosen.into_iter().map(|i| usable[i]).collect();
        let total: u64 = inputs.iter().map(|c| c.amount.to_base()).sum();
        let fee = total - payment;
        debug_assert!(fee >= fee_without_change(inputs.len()).to_base());
        return Ok(Selection {
            size: request.size.tx_size(inputs.len(), outputs),
            inputs,
            fee: Amount::from_base(fee),
            change: None,
        });
    }

    let mut total: u64 = 0;
    for (taken, coin) in usable.iter().enumerate() {
        let count = taken + 1;
        total = total
            .checked_add(coin.amount.to_base())
            .ok_or(SelectionError::Overflow)?;
        let with_change = payment
            .checked_add(fee_with_change(count).to_base())
            .ok_or(SelectionError::Overflow)?;
        if total >= with_change && total - with_change >= request.dust_threshold.to_base() {
            return Ok(Selection {
                inputs: usable[..count].to_vec(),
                fee: fee_with_change(count),
                change: Some(Amount::from_base(total - with_change)),
                size: request.size.tx_size(count, outputs + 1),
            });
        }
        let without_change = payment
            .checked_add(fee_without_change(count).to_base())
            .ok_or(SelectionError::Overflow)?;
        if total >= without_change {
            // Change would be dust (or not even pay for its own output): the fee takes it.
            return Ok(Selection {
                inputs: usable[..count].to_vec(),
                fee: Amount::from_base(total - payment),
                change: None,
                size: request.size.tx_size(count, outputs),
            });
        }
    }

    let needed = payment
        .checked_add(fee_without_change(usable.len().max(1)).to_base())
        .ok_or(SelectionError::Overflow)?;
    Err(SelectionError::InsufficientFunds {
        needed: Amount::from_base(needed),
        available: Amount::from_base(total),
        missing: Amount::from_base(needed.saturating_sub(total)),
    })
}

/// Depth-first search over include/exclude decisions for a set whose *effective* value
/// (amount minus the fee of spending it) lands in `[target, target + window)`, where the
/// window is what a change output would cost plus the dust threshold. Among the solutions
/// found, the one wasting least wins. `usable` must be sorted largest first.
fn branch_and_bound(
    usable: &[Candidate],
    request: &SelectionRequest,
    per_input_fee: u64,
) -> Option<Vec<usize>> {
    let outputs = request.recipient_outputs;
    // Fee of the transaction without inputs: base and recipient outputs.
    let fixed_fee = match request.fee {
        FeePolicy::Rate(rate) => rate.checked_mul(request.size.tx_size(0, outputs) as u64)?,
        FeePolicy::Absolute(fee) => fee.to_base(),
    };
    let target = request.payment.to_base().checked_add(fixed_fee)?;
    let change_cost = request.fee.marginal(request.size.per_output);
    let upper = target
        .checked_add(change_cost)?
        .checked_add(request.dust_threshold.to_base())?;
    let values: Vec<u64> = usable
        .iter()
        .map(|c| c.amount.to_base() - per_input_fee)
        .collect();
    let mut remaining: u64 = values.iter().try_fold(0u64, |a, v| a.checked_add(*v))?;
    if remaining < target {
        return None;
    }

    let mut best: Option<(u64, Vec<usize>)> = None;
    let mut chosen: Vec<usize> = Vec::new();
    let mut sum: u64 = 0;
    let mut index = 0;
    let mut tries = 0;
    // Iterative DFS: at each index, first include the coin, then exclude it.
    loop {
        tries += 1;
        if tries > BNB_MAX_TRIES {
            break;
        }
        let backtrack = if sum >= upper || sum + remaining < target {
            true
        } else if sum >= target {
            // More coins would only waste more: record and backtrack.
            let waste = sum - target;
            if best.as_ref().is_none_or(|(w, _)| waste < *w) {
                best = Some((waste, chosen.clone()));
            }
            true
        } else {
            index >= values.len()
        };
        if backtrack {
            if best.as_ref().is_some_and(|(w, _)| *w == 0) {
                break;
            }
            // Undo back to the last included coin and exclude it instead.
            while index > 0 && chosen.last() != Some(&(index - 1)) {
                index -= 1;
                remaining += values[index];
            }
            let Some(last) = chosen.pop() else { break };
            sum -= values[last];
            index = last + 1;
            continue;
        }
        remaining -= values[index];
        sum += values[index];
        chosen.push(index);
        index += 1;
    }
    best.map(|(_, chosen)| chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::Txid;

    fn coin(n: u8, amount: u64, confirmed: bool) -> Candidate {
        Candidate {
            outpoint: OutPoint {
                txid: Txid::from_byte_array([n; 32]),
                vout: n as u32,
            },
            amount: Amount::from_base(amount),
            confirmed,
        }
    }

    fn request(payment: u64, fee: FeePolicy) -> SelectionRequest {
        SelectionRequest::single(Amount::from_base(payment), fee)
    }

    #[test]
    fn size_model_matches_core_encoding() {
        let size = SizeModel::cairn(0);
        assert_eq!(size.per_input, 32 + 4 + 64 + 33);
        assert_eq!(size.per_output, 8 + 20);
        assert_eq!(size.base, 4 + 8 + 8 + 4 + 8);
        assert_eq!(SizeModel::cairn(10).base, size.base + 10);
    }

    #[test]
    fn exact_match_spends_one_coin_without_change() {
        let size = SizeModel::cairn(0);
        let fee = size.tx_size(1, 1) as u64;
        let coins = [
            coin(1, 90_000, true),
            coin(2, 10_000 + fee, true),
            coin(3, 40_000, true),
        ];
        let s = select_coins(&coins, &request(10_000, FeePolicy::Rate(1))).unwrap();
        assert_eq!(s.inputs, vec![coins[1]]);
        assert_eq!(s.change, None);
        assert_eq!(s.fee, Amount::from_base(fee));
        assert_eq!(s.size, size.tx_size(1, 1));
    }

    #[test]
    fn exact_match_may_combine_coins() {
        let size = SizeModel::cairn(0);
        let fee = size.tx_size(2, 1) as u64;
        // 30_000 + 20_000 + fee pays exactly; no single coin does, largest-first would
        // take 45_000 + 30_000 and make change.
        let coins = [
            coin(1, 45_000, true),
            coin(2, 30_000, true),
            coin(3, 20_000 + fee, true),
        ];
        let s = select_coins(&coins, &request(50_000, FeePolicy::Rate(1))).unwrap();
        let mut picked: Vec<u8> = s.inputs.iter().map(|c| c.outpoint.vout as u8).collect();
        picked.sort();
        assert_eq!(picked, vec![2, 3]);
        assert_eq!(s.change, None);
        assert_eq!(s.fee, Amount::from_base(fee));
    }

    #[test]
    fn payment_with_change_pays_the_rate_of_its_final_size() {
        let size = SizeModel::cairn(0);
        let coins = [coin(1, 1_000_000, true), coin(2, 5_000, true)];
        let s = select_coins(&coins, &request(100_000, FeePolicy::Rate(2))).unwrap();
        assert_eq!(s.inputs, vec![coins[0]]);
        let expected_fee = 2 * size.tx_size(1, 2) as u64;
        assert_eq!(s.fee, Amount::from_base(expected_fee));
        assert_eq!(
            s.change,
            Some(Amount::from_base(1_000_000 - 100_000 - expected_fee))
        );
        assert_eq!(s.size, size.tx_size(1, 2));
    }

    #[test]
    fn absolute_fee_is_used_as_given() {
        let coins = [coin(1, 50_000, true)];
        let s = select_coins(
            &coins,
            &request(10_000, FeePolicy::Absolute(Amount::from_base(777))),
        )
        .unwrap();
        assert_eq!(s.fee, Amount::from_base(777));
        assert_eq!(s.change, Some(Amount::from_base(50_000 - 10_000 - 777)));
    }

    #[test]
    fn largest_first_adds_coins_until_paid() {
        let coins = [
            coin(1, 10_000, true),
            coin(2, 30_000, true),
            coin(3, 20_000, true),
        ];
        let s = select_coins(&coins, &request(45_000, FeePolicy::Rate(1))).unwrap();
        let picked: Vec<u32> = s.inputs.iter().map(|c| c.outpoint.vout).collect();
        assert_eq!(picked, vec![2, 3]);
        let total = s.input_total().to_base();
        assert_eq!(
            total,
            45_000 + s.fee.to_base() + s.change.map_or(0, |c| c.to_base())
        );
    }

    #[test]
    fn insufficient_funds_says_how_much_is_missing() {
        let size = SizeModel::cairn(0);
        let coins = [coin(1, 1_000, true), coin(2, 2_000, true)];
        let err = select_coins(&coins, &request(5_000, FeePolicy::Rate(1))).unwrap_err();
        let needed = 5_000 + size.tx_size(2, 1) as u64;
        assert_eq!(
            err,
            SelectionError::InsufficientFunds {
                needed: Amount::from_base(needed),
                available: Amount::from_base(3_000),
                missing: Amount::from_base(needed - 3_000),
            }
        );
        assert!(
            err.to_string()
                .contains(&format!("missing {}", needed - 3_000))
        );

        let none = select_coins(&[], &request(5_000, FeePolicy::Rate(1))).unwrap_err();
        assert!(
            matches!(none, SelectionError::InsufficientFunds { available, .. } if available == Amount::ZERO)
        );
    }

    #[test]
    fn change_below_dust_goes_to_the_fee() {
        let size = SizeModel::cairn(0);
        let dust = size.dust_threshold().to_base();
        let fee_with_change = size.tx_size(1, 2) as u64;
        // Leaves change one unit below the dust threshold after a change output's fee.
        let amount = 10_000 + fee_with_change + dust - 1;
        let coins = [coin(1, amount, true)];
        let s = select_coins(&coins, &request(10_000, FeePolicy::Rate(1))).unwrap();
        assert_eq!(s.change, None);
        assert_eq!(s.fee, Amount::from_base(amount - 10_000));
        assert_eq!(s.size, size.tx_size(1, 1));

        // One more unit and the change is worth creating.
        let coins = [coin(1, amount + 1, true)];
        let s = select_coins(&coins, &request(10_000, FeePolicy::Rate(1))).unwrap();
        assert_eq!(s.change, Some(Amount::from_base(dust)));
        assert_eq!(s.fee, Amount::from_base(fee_with_change));
    }

    #[test]
    fn dust_coins_are_not_spent_under_a_fee_rate() {
        let size = SizeModel::cairn(0);
        let coins = [coin(1, size.per_input as u64, true), coin(2, 100_000, true)];
        let s = select_coins(&coins, &request(1_000, FeePolicy::Rate(1))).unwrap();
        assert_eq!(s.inputs, vec![coins[1]]);
        // A coin worth less than its own input's fee cannot help pay anything.
        let err = select_coins(&coins[..1], &request(1, FeePolicy::Rate(1))).unwrap_err();
        assert!(matches!(err, SelectionError::InsufficientFunds { .. }));
    }

    #[test]
    fn confirmed_coins_are_preferred() {
        let coins = [coin(1, 1_000_000, false), coin(2, 50_000, true)];
        let s = select_coins(&coins, &request(10_000, FeePolicy::Rate(1))).unwrap();
        assert_eq!(s.inputs, vec![coins[1]]);
        // Unconfirmed coins help only when confirmed ones are not enough.
        let s = select_coins(&coins, &request(100_000, FeePolicy::Rate(1))).unwrap();
        assert!(s.inputs.contains(&coins[0]));
    }

    #[test]
    fn zero_payment_is_refused() {
        let coins = [coin(1, 1_000, true)];
        assert_eq!(
            select_coins(&coins, &request(0, FeePolicy::Rate(1))),
            Err(SelectionError::ZeroPayment)
        );
    }

    #[test]
    fn branch_and_bound_finds_the_least_wasteful_changeless_set() {
        // Compare with brute force over every subset of small coin sets.
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut found = 0;
        for round in 0..400 {
            let n = 1 + (next() % 9) as usize;
            let mut coins: Vec<Candidate> = (0..n)
                .map(|i| coin(i as u8, 1_000 + next() % 20_000, true))
                .collect();
            coins.sort_by(|a, b| b.amount.cmp(&a.amount).then(a.outpoint.cmp(&b.outpoint)));
            let fee = FeePolicy::Rate(next() % 3);
            let req = request(1 + next() % 40_000, fee);
            let per_input = fee.marginal(req.size.per_input);
            let fixed = fee.fee_for(req.size.tx_size(0, 1)).to_base();
            let target = req.payment.to_base() + fixed;
            let upper = target + fee.marginal(req.size.per_output) + req.dust_threshold.to_base();
            let mut best: Option<u64> = None;
            for mask in 1u32..(1 << n) {
                let sum: u64 = (0..n)
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| coins[i].amount.to_base() - per_input)
                    .sum();
                if (target..upper).contains(&sum) {
                    best = Some(best.map_or(sum - target, |b: u64| b.min(sum - target)));
                }
            }
            let got = branch_and_bound(&coins, &req, per_input).map(|chosen| {
                chosen
                    .iter()
                    .map(|i| coins[*i].amount.to_base() - per_input)
                    .sum::<u64>()
                    - target
            });
            assert_eq!(got, best, "round {round}");
            found += usize::from(got.is_some());
        }
        assert!(
            found > 20,
            "too few changeless solutions exercised: {found}"
        );
    }

    #[test]
    fn every_selection_balances() {
        // A deterministic sweep over many coin sets: inputs = payment + fee + change, the
        // fee is at least the rate times the size, and change is never dust.
        let size = SizeModel::cairn(0);
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..300 {
            let n = (next() % 12) as usize;
            let coins: Vec<Candidate> = (0..n)
                .map(|i| coin(i as u8, 200 + next() % 200_000, next() % 4 != 0))
                .collect();
            let payment = 1 + next() % 300_000;
            let rate = next() % 4;
            match select_coins(&coins, &request(payment, FeePolicy::Rate(rate))) {
                Ok(s) => {
                    let change = s.change.map_or(0, |c| c.to_base());
                    assert_eq!(
                        s.input_total().to_base(),
                        payment + s.fee.to_base() + change,
                        "round {round}"
                    );
                    let outputs = 1 + usize::from(s.change.is_some());
                    assert_eq!(s.size, size.tx_size(s.inputs.len(), outputs));
                    assert!(s.fee.to_base() >= rate * s.size as u64, "round {round}");
                    if let Some(c) = s.change {
                        assert!(c >= size.dust_threshold(), "round {round}");
                    }
                    let mut seen = std::collections::HashSet::new();
                    assert!(s.inputs.iter().all(|c| seen.insert(c.outpoint)));
                }
                Err(SelectionError::InsufficientFunds {
                    needed,
                    available,
                    missing,
                }) => {
                    assert_eq!(missing.to_base(), needed.to_base() - available.to_base());
                    assert!(missing > Amount::ZERO);
                }
                Err(e) => panic!("round {round}: {e}"),
            }
        }
    }
}
