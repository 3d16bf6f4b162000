//! The wallet: its keys, and the transactions it builds from coins the caller supplies.
//!
//! [`Wallet`] does no I/O: the caller fetches coins ([`crate::coins::CoinSnapshot`]),
//! persists the wallet ([`crate::keystore`]) and broadcasts. A method that needs a new
//! change key adds it to the wallet; the caller must save the wallet *before* broadcasting
//! a transaction paying to that key, or a crash could lose the change.

use crate::coin_selection::{
    Candidate, FeePolicy, SelectionError, SelectionRequest, SizeModel, select_coins,
};
use crate::coins::WalletCoin;
pub use crate::keystore::KeyKind;
use crate::keystore::{KeystoreError, SentRecord, StoredKey, WalletData, random_bytes};
use cairn_core::validation::{check_transaction, verify_tx_signatures};
use cairn_core::{
    Amount, ChainParams, Coin, OutPoint, PubkeyHash, SecretKey, Transaction, TxError, TxIn, TxOut,
    Txid, encoding,
};
use std::time::{SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// The version of the transactions the wallet builds.
const TX_VERSION: u32 = 1;

/// How much a replacement's fee must grow per byte of the replacement, over the fee it
/// replaces (BIP125 rule 4 with Bitcoin Core's incremental relay fee of one unit per byte).
pub const INCREMENTAL_RELAY_FEE_RATE: u64 = 1;

/// Why the wallet could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// Coin selection failed (typically: not enough funds, and how much is missing).
    #[error(transparent)]
    Selection(#[from] SelectionError),
    /// `double-spend` spends one coin in both transactions and none is large enough.
    #[error(
        "insufficient funds for a double spend: it needs one coin of at least {needed} (amount, the higher fee and change above dust), the largest spendable coin is {largest}, missing {missing}"
    )]
    NoCoinLargeEnough {
        /// Smallest coin that would do.
        needed: Amount,
        /// Largest spendable coin.
        largest: Amount,
        /// `needed - largest`.
        missing: Amount,
    },
    /// A coin given to spend pays to a key the wallet does not hold.
    #[error("coin {0} pays to a key this wallet does not hold")]
    ForeignCoin(OutPoint),
    /// `import-dev N` beyond the network's dev accounts.
    #[error("dev account {index} does not exist: this network has {count} (0..{count})")]
    NoSuchDevAccount {
        /// Requested index.
        index: u32,
        /// How many exist.
        count: usize,
    },
    /// A stored key does not parse.
    #[error("wallet key {index} is invalid: {reason}")]
    BadStoredKey {
        /// Position in the file.
        index: usize,
        /// Why.
        reason: String,
    },
    /// The two transactions of a double spend would be the same transaction.
    #[error(
        "--to and --to2 are the same address: without --replace both transactions would be identical"
    )]
    SameRecipient,
    /// Nothing to pay.
    #[error("the amount must be positive")]
    ZeroAmount,
    /// The wallet file or the random number generator failed.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// A transaction the wallet built breaks a consensus rule (a bug in the wallet).
    #[error("the wallet built an invalid transaction ({0}); this is a bug")]
    Invalid(TxError),
}

/// One key of the wallet.
#[derive(Debug, Clone)]
pub struct WalletKey {
    secret: SecretKey,
    pubkey_hash: PubkeyHash,
    kind: KeyKind,
    label: String,
    created_at: u64,
}

impl WalletKey {
    /// The hash outputs pay to.
    pub fn pubkey_hash(&self) -> PubkeyHash {
        self.pubkey_hash
    }

    /// The secret key.
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }

    /// What the key is for.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// Its label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// When it was added, Unix seconds.
    pub fn created_at(&self) -> u64 {
        self.created_at
    }
}

/// A payment to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentRequest {
    /// Recipient.
    pub to: PubkeyHash,
    /// Amount the recipient gets.
    pub amount: Amount,
    /// Fee rate or absolute fee.
    pub fee: FeePolicy,
}

/// Two transactions to build that spend the same coin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConflictRequest {
    /// Recipient of the first.
    pub to: PubkeyHash,
    /// Recipient of the second.
    pub to2: PubkeyHash,
    /// Amount each recipient gets.
    pub amount: Amount,
    /// Fee of the first (and of the second unless `replace`).
    pub fee: FeePolicy,
    /// Make the second a valid replace-by-fee of the first: a strictly higher absolute fee
    /// and fee rate, by at least [`INCREMENTAL_RELAY_FEE_RATE`] per byte.
    pub replace: bool,
}

/// A signed transaction and what went into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltTx {
    /// The signed transaction.
    pub tx: Transaction,
    /// Its id.
    pub txid: Txid,
    /// Fee paid.
    pub fee: Amount,
    /// Encoded size in bytes.
    pub size: usize,
    /// Coins spent, in input order.
    pub spent: Vec<WalletCoin>,
    /// The payment (output 0).
    pub recipient: TxOut,
    /// The change (output 1), if any.
    pub change: Option<TxOut>,
}

impl BuiltTx {
    /// The raw transaction hex `sendrawtransaction` takes.
    pub fn hex(&self) -> String {
        hex::encode(encoding::encode(&self.tx))
    }

    /// The spent coins as `cairn-core` validation takes them, for a block at `height`.
    pub fn spent_coins(&self, height: u32) -> Vec<Coin> {
        self.spent.iter().map(|c| c.to_core(height)).collect()
    }

    /// Base units per byte.
    pub fn fee_rate(&self) -> f64 {
        self.fee.to_base() as f64 / self.size.max(1) as f64
    }
}

/// The result of [`Wallet::build_conflicting_pair`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictingPair {
    /// The coin both spend.
    pub coin: WalletCoin,
    /// Pays `to`.
    pub first: BuiltTx,
    /// Pays `to2`.
    pub second: BuiltTx,
}

/// Keys of one network and the record of what was sent with them.
#[derive(Debug, Clone)]
pub struct Wallet {
    params: ChainParams,
    keys: Vec<WalletKey>,
    sent: Vec<SentRecord>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Wallet {
    /// An empty wallet for the network of `params`.
    pub fn new(params: ChainParams) -> Wallet {
        Wallet {
            params,
            keys: Vec::new(),
            sent: Vec::new(),
        }
    }

    /// The wallet a file's payload describes.
    pub fn from_data(params: ChainParams, data: &WalletData) -> Result<Wallet, WalletError> {
        let mut wallet = Wallet::new(params);
        for (index, stored) in data.keys.iter().enumerate() {
            let secret = SecretKey::from_hex(&stored.secret_key_hex).map_err(|e| {
                WalletError::BadStoredKey {
                    index,
                    reason: e.to_string(),
                }
            })?;
            wallet.push_key(secret, stored.kind, &stored.label, stored.created_at);
        }
        wallet.sent = data.sent.clone();
        Ok(wallet)
    }

    /// The payload to store.
    pub fn to_data(&self) -> WalletData {
        WalletData {
            keys: self
                .keys
                .iter()
                .map(|k| {
                    let bytes = Zeroizing::new(k.secret.to_bytes());
                    StoredKey {
                        secret_key_hex: hex::encode(*bytes),
                        kind: k.kind,
                        label: k.label.clone(),
                        created_at: k.created_at,
                    }
                })
                .collect(),
            sent: self.sent.clone(),
        }
    }

    /// The network.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> &[WalletKey] {
        &self.keys
    }

    /// The key behind `hash`.
    pub fn key_for(&self, hash: &PubkeyHash) -> Option<&WalletKey> {
        self.keys.iter().find(|k| k.pubkey_hash == *hash)
    }

    /// The hashes of every key.
    pub fn pubkey_hashes(&self) -> Vec<PubkeyHash> {
        self.keys.iter().map(|k| k.pubkey_hash).collect()
    }

    /// The address of `hash` on this network.
    pub fn address(&self, hash: &PubkeyHash) -> String {
        self.params.address(hash)
    }

    /// Transactions submitted, oldest first.
    pub fn sent(&self) -> &[SentRecord] {
        &self.sent
    }

    /// Records a submitted transaction.
    pub fn record_sent(&mut self, record: SentRecord) {
        self.sent.push(record);
    }

    fn push_key(&mut self, secret: SecretKey, kind: KeyKind, label: &str, created_at: u64) {
        let pubkey_hash = secret.pubkey_hash();
        self.keys.push(WalletKey {
            secret,
            pubkey_hash,
            kind,
            label: label.to_owned(),
            created_at,
        });
    }

    /// Adds `secret`; returns its hash and whether it was new (a known key is kept as is).
    pub fn add_key(&mut self, secret: SecretKey, kind: KeyKind, label: &str) -> (PubkeyHash, bool) {
        let hash = secret.pubkey_hash();
        if self.key_for(&hash).is_some() {
            return (hash, false);
        }
        self.push_key(secret, kind, label, unix_now());
        (hash, true)
    }

    /// Adds a fresh random key from the operating system's generator.
    pub fn generate_key(&mut self, kind: KeyKind, label: &str) -> Result<PubkeyHash, WalletError> {
        let secret = loop {
            let mut bytes = Zeroizing::new([0u8; 32]);
            random_bytes(bytes.as_mut())?;
            // Fails only for zero or a value above the curve order: about 2^-128.
            if let Ok(key) = SecretKey::from_bytes(&bytes) {
                break key;
            }
        };
        Ok(self.add_key(secret, kind, label).0)
    }

    /// Adds the network's genesis dev account `index` (its key is public by design).
    pub fn import_dev(&mut self, index: u32) -> Result<(PubkeyHash, bool), WalletError> {
        let accounts = &self.params.config.dev_accounts;
        let account = accounts
            .get(index as usize)
            .ok_or(WalletError::NoSuchDevAccount {
                index,
                count: accounts.len(),
            })?;
        let secret = SecretKey::from_hex(&account.secret_key_hex).map_err(|e| {
            WalletError::BadStoredKey {
                index: index as usize,
                reason: e.to_string(),
            }
        })?;
        let label = account.name.clone();
        Ok(self.add_key(secret, KeyKind::Dev, &label))
    }

    /// Builds and signs a payment: selects among `coins` (see [`crate::coin_selection`]),
    /// pays `request.amount` to `request.to` as output 0 and any change to a fresh change
    /// key (added to the wallet) as output 1.
    pub fn build_payment(
        &mut self,
        coins: &[WalletCoin],
        request: &PaymentRequest,
    ) -> Result<BuiltTx, WalletError> {
        if request.amount == Amount::ZERO {
            return Err(WalletError::ZeroAmount);
        }
        let owned = self.owned(coins)?;
        let candidates: Vec<Candidate> = owned
            .iter()
            .map(|c| Candidate {
                outpoint: c.outpoint,
                amount: c.output.amount,
                confirmed: c.is_confirmed(),
            })
            .collect();
        let selection = select_coins(
            &candidates,
            &SelectionRequest::single(request.amount, request.fee),
        )?;
        let spent: Vec<WalletCoin> = selection
            .inputs
            .iter()
            .map(|c| {
                *owned
                    .iter()
                    .find(|o| o.outpoint == c.outpoint)
                    .expect("selection returns only candidates made from these coins")
            })
            .collect();
        let change = match selection.change {
            Some(amount) => Some(TxOut {
                amount,
                address: self.generate_key(KeyKind::Change, "change")?,
            }),
            None => None,
        };
        let recipient = TxOut {
            amount: request.amount,
            address: request.to,
        };
        let built = self.sign_new(spent, recipient, change)?;
        debug_assert_eq!(built.fee, selection.fee);
        debug_assert_eq!(built.size, selection.size);
        Ok(built)
    }

    /// Builds two valid transactions spending the same coin: the first pays `to`, the
    /// second `to2`, both `amount`, with change to one fresh change key. With `replace`,
    /// the second pays a strictly higher fee and fee rate (a valid replace-by-fee).
    pub fn build_conflicting_pair(
        &mut self,
        coins: &[WalletCoin],
        request: &ConflictRequest,
    ) -> Result<ConflictingPair, WalletError> {
        if request.amount == Amount::ZERO {
            return Err(WalletError::ZeroAmount);
        }
        if request.to == request.to2 && !request.replace {
            return Err(WalletError::SameRecipient);
        }
        let model = SizeModel::cairn(0);
        // Both have one input and two outputs, so the same size.
        let size = model.tx_size(1, 2);
        let fee1 = request.fee.fee_for(size);
        let fee2 = if request.replace {
            fee1.checked_add(Amount::from_base(INCREMENTAL_RELAY_FEE_RATE * size as u64))
                .ok_or(SelectionError::Overflow)?
        } else {
            fee1
        };
        let needed = request
            .amount
            .checked_add(fee2.max(fee1))
            .and_then(|a| a.checked_add(model.dust_threshold()))
            .ok_or(SelectionError::Overflow)?;
        let owned = self.owned(coins)?;
        // The smallest coin that will do, confirmed ones first.
        let pick = |confirmed: bool| {
            owned
                .iter()
                .filter(|c| c.is_confirmed() == confirmed && c.output.amount >= needed)
                .min_by_key(|c| (c.output.amount, c.outpoint))
                .copied()
        };
        let Some(coin) = pick(true).or_else(|| pick(false)) else {
            let largest = owned
                .iter()
                .map(|c| c.output.amount)
                .max()
                .unwrap_or(Amount::ZERO);
            return Err(WalletError::NoCoinLargeEnough {
                needed,
                largest,
                missing: Amount::from_base(needed.to_base() - largest.to_base()),
            });
        };
        let change_key = self.generate_key(KeyKind::Change, "change")?;
        let change = |fee: Amount| TxOut {
            amount: Amount::from_base(
                coin.output.amount.to_base() - request.amount.to_base() - fee.to_base(),
            ),
            address: change_key,
        };
        let first = self.sign_new(
            vec![coin],
            TxOut {
                amount: request.amount,
                address: request.to,
            },
            Some(change(fee1)),
        )?;
        let second = self.sign_new(
            vec![coin],
            TxOut {
                amount: request.amount,
                address: request.to2,
            },
            Some(change(fee2)),
        )?;
        Ok(ConflictingPair {
            coin,
            first,
            second,
        })
    }

    /// Signs every input of `tx` with the wallet's keys; `spent[i]` is the coin input `i`
    /// spends.
    pub fn sign(&self, tx: &mut Transaction, spent: &[WalletCoin]) -> Result<(), WalletError> {
        let mut signers = Vec::with_capacity(spent.len());
        for coin in spent {
            let key = self
                .key_for(&coin.output.address)
                .ok_or(WalletError::ForeignCoin(coin.outpoint))?;
            signers.push((coin.output.amount, &key.secret));
        }
        assert_eq!(signers.len(), tx.inputs.len(), "one spent coin per input");
        tx.sign(&self.params.network_magic, &signers);
        Ok(())
    }

    /// Builds, signs and checks against `cairn-core`'s rules a transaction spending
    /// `spent` to `recipient` and `change`.
    fn sign_new(
        &self,
        spent: Vec<WalletCoin>,
        recipient: TxOut,
        change: Option<TxOut>,
    ) -> Result<BuiltTx, WalletError> {
        let mut tx = Transaction {
            version: TX_VERSION,
            inputs: spent
                .iter()
                .map(|c| TxIn {
                    prevout: c.outpoint,
                    signature: [0; 64],
                    public_key: [0; 33],
                })
                .collect(),
            outputs: std::iter::once(recipient).chain(change).collect(),
            lock_height: 0,
            data: Vec::new(),
        };
        self.sign(&mut tx, &spent)?;
        let coins: Vec<Coin> = spent.iter().map(|c| c.to_core(0)).collect();
        check_transaction(&tx, &self.params).map_err(WalletError::Invalid)?;
        verify_tx_signatures(&tx, &coins, &self.params).map_err(WalletError::Invalid)?;
        let input_total = Amount::checked_sum(spent.iter().map(|c| c.output.amount))
            .ok_or(SelectionError::Overflow)?;
        let output_total = Amount::checked_sum(tx.outputs.iter().map(|o| o.amount))
            .ok_or(SelectionError::Overflow)?;
        let fee = input_total
            .checked_sub(output_total)
            .ok_or(WalletError::Invalid(TxError::InputsBelowOutputs {
                inputs: input_total,
                outputs: output_total,
            }))?;
        Ok(BuiltTx {
            txid: tx.txid(),
            size: tx.encoded_size(),
            fee,
            spent,
            recipient,
            change,
            tx,
        })
    }

    /// `coins`, checked to belong to the wallet.
    fn owned(&self, coins: &[WalletCoin]) -> Result<Vec<WalletCoin>, WalletError> {
        coins
            .iter()
            .map(|c| {
                self.key_for(&c.output.address)
                    .map(|_| *c)
                    .ok_or(WalletError::ForeignCoin(c.outpoint))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::params::dev_secret_key;
    use cairn_core::validation::check_tx_inputs;

    fn dev_wallet() -> Wallet {
        let mut w = Wallet::new(ChainParams::devnet());
        w.import_dev(0).unwrap();
        w
    }

    fn coin_of(w: &Wallet, n: u8, amount: u64, height: Option<u32>) -> WalletCoin {
        WalletCoin {
            outpoint: OutPoint {
                txid: Txid::from_byte_array([n; 32]),
                vout: u32::from(n),
            },
            output: TxOut {
                amount: Amount::from_base(amount),
                address: w.keys()[0].pubkey_hash(),
            },
            height,
            coinbase: false,
        }
    }

    fn stranger() -> PubkeyHash {
        dev_secret_key(5).pubkey_hash()
    }

    #[test]
    fn import_dev_uses_the_network_account() {
        let mut w = Wallet::new(ChainParams::devnet());
        let (hash, new) = w.import_dev(3).unwrap();
        assert!(new);
        assert_eq!(hash, dev_secret_key(3).pubkey_hash());
        assert_eq!(w.address(&hash), w.params().config.dev_accounts[3].address);
        assert_eq!(w.keys()[0].label(), "dev3");
        assert_eq!(w.import_dev(3).unwrap(), (hash, false));
        assert_eq!(w.keys().len(), 1);
        assert!(matches!(
            w.import_dev(1000),
            Err(WalletError::NoSuchDevAccount { index: 1000, .. })
        ));
    }

    #[test]
    fn generated_keys_are_fresh_and_survive_a_round_trip() {
        let mut w = dev_wallet();
        let a = w.generate_key(KeyKind::Receive, "a").unwrap();
        let b = w.generate_key(KeyKind::Receive, "b").unwrap();
        assert_ne!(a, b);
        let data = w.to_data();
        let back = Wallet::from_data(ChainParams::devnet(), &data).unwrap();
        assert_eq!(back.pubkey_hashes(), w.pubkey_hashes());
        assert_eq!(back.keys()[1].kind(), KeyKind::Receive);
        assert_eq!(back.keys()[0].kind(), KeyKind::Dev);
    }

    #[test]
    fn payment_signatures_verify_under_core_rules() {
        let mut w = dev_wallet();
        let coins = [
            coin_of(&w, 1, 40_000, Some(3)),
            coin_of(&w, 2, 30_000, Some(4)),
        ];
        let built = w
            .build_payment(
                &coins,
                &PaymentRequest {
                    to: stranger(),
                    amount: Amount::from_base(60_000),
                    fee: FeePolicy::Rate(1),
                },
            )
            .unwrap();
        let params = w.params().clone();
        assert_eq!(built.tx.inputs.len(), 2);
        check_transaction(&built.tx, &params).unwrap();
        verify_tx_signatures(&built.tx, &built.spent_coins(10), &params).unwrap();
        let fee = check_tx_inputs(&built.tx, &built.spent_coins(10), 10, &params).unwrap();
        assert_eq!(fee, built.fee);
        assert_eq!(built.size, built.tx.encoded_size());
        assert_eq!(built.fee, Amount::from_base(built.size as u64));
        assert_eq!(built.tx.outputs[0], built.recipient);

        // The change went to a fresh key the wallet now holds.
        let change = built.change.unwrap();
        assert_eq!(built.tx.outputs[1], change);
        let key = w.key_for(&change.address).unwrap();
        assert_eq!(key.kind(), KeyKind::Change);
        assert_ne!(change.address, coins[0].output.address);

        // Tampering with an output breaks the signatures.
        let mut tampered = built.tx.clone();
        tampered.outputs[0].address = w.keys()[0].pubkey_hash();
        assert!(verify_tx_signatures(&tampered, &built.spent_coins(10), &params).is_err());
        // The hex is the raw encoding.
        let decoded: Transaction = encoding::decode(&hex::decode(built.hex()).unwrap()).unwrap();
        assert_eq!(decoded, built.tx);
    }

    #[test]
    fn insufficient_funds_reports_the_missing_amount() {
        let mut w = dev_wallet();
        let coins = [coin_of(&w, 1, 1_000, Some(3))];
        let err = w
            .build_payment(
                &coins,
                &PaymentRequest {
                    to: stranger(),
                    amount: Amount::from_base(5_000),
                    fee: FeePolicy::Rate(1),
                },
            )
            .unwrap_err();
        let size = SizeModel::cairn(0).tx_size(1, 1) as u64;
        assert!(
            err.to_string()
                .contains(&format!("missing {}", 4_000 + size)),
            "{err}"
        );
    }

    #[test]
    fn coins_of_other_keys_are_refused() {
        let mut w = dev_wallet();
        let mut foreign = coin_of(&w, 1, 50_000, Some(1));
        foreign.output.address = stranger();
        let err = w
            .build_payment(
                &[foreign],
                &PaymentRequest {
                    to: stranger(),
                    amount: Amount::from_base(1_000),
                    fee: FeePolicy::Rate(1),
                },
            )
            .unwrap_err();
        assert!(matches!(err, WalletError::ForeignCoin(_)));
    }

    fn conflict(w: &mut Wallet, coins: &[WalletCoin], replace: bool) -> ConflictingPair {
        w.build_conflicting_pair(
            coins,
            &ConflictRequest {
                to: stranger(),
                to2: dev_secret_key(6).pubkey_hash(),
                amount: Amount::from_base(10_000),
                fee: FeePolicy::Rate(1),
                replace,
            },
        )
        .unwrap()
    }

    #[test]
    fn conflicting_pair_spends_one_outpoint_to_two_recipients() {
        let mut w = dev_wallet();
        let coins = [
            coin_of(&w, 1, 1_000_000, Some(2)),
            coin_of(&w, 2, 20_000, Some(2)),
            coin_of(&w, 3, 15_000, None),
        ];
        let pair = conflict(&mut w, &coins, false);
        let params = w.params().clone();
        // The smallest confirmed coin that covers amount, fee and non-dust change.
        assert_eq!(pair.coin, coins[1]);
        for tx in [&pair.first, &pair.second] {
            assert_eq!(tx.tx.inputs.len(), 1);
            assert_eq!(tx.tx.inputs[0].prevout, coins[1].outpoint);
            check_transaction(&tx.tx, &params).unwrap();
            verify_tx_signatures(&tx.tx, &tx.spent_coins(5), &params).unwrap();
            assert_eq!(
                check_tx_inputs(&tx.tx, &tx.spent_coins(5), 5, &params).unwrap(),
                tx.fee
            );
        }
        assert_ne!(pair.first.txid, pair.second.txid);
        assert_eq!(pair.first.recipient.address, stranger());
        assert_eq!(
            pair.second.recipient.address,
            dev_secret_key(6).pubkey_hash()
        );
        assert_eq!(pair.first.fee, pair.second.fee);
        assert_eq!(
            pair.first.change.unwrap().address,
            pair.second.change.unwrap().address
        );
    }

    #[test]
    fn replacement_pays_strictly_higher_fee_and_rate() {
        let mut w = dev_wallet();
        let coins = [coin_of(&w, 1, 1_000_000, Some(2))];
        let pair = conflict(&mut w, &coins, true);
        let (a, b) = (&pair.first, &pair.second);
        assert!(b.fee > a.fee);
        // Exact rate comparison by cross-multiplication.
        assert!(
            u128::from(b.fee.to_base()) * a.size as u128
                > u128::from(a.fee.to_base()) * b.size as u128
        );
        assert!(b.fee.to_base() >= a.fee.to_base() + INCREMENTAL_RELAY_FEE_RATE * b.size as u64);
        verify_tx_signatures(&b.tx, &b.spent_coins(5), w.params()).unwrap();

        // With replace, the same recipient is a plain fee bump.
        let bump = w
            .build_conflicting_pair(
                &coins,
                &ConflictRequest {
                    to: stranger(),
                    to2: stranger(),
                    amount: Amount::from_base(10_000),
                    fee: FeePolicy::Absolute(Amount::from_base(500)),
                    replace: true,
                },
            )
            .unwrap();
        assert_eq!(bump.first.fee, Amount::from_base(500));
        assert!(bump.second.fee > bump.first.fee);
        assert_ne!(bump.first.txid, bump.second.txid);
    }

    #[test]
    fn conflicting_pair_errors_are_clear() {
        let mut w = dev_wallet();
        let coins = [coin_of(&w, 1, 10_100, Some(2))];
        let err = w
            .build_conflicting_pair(
                &coins,
                &ConflictRequest {
                    to: stranger(),
                    to2: stranger(),
                    amount: Amount::from_base(10_000),
                    fee: FeePolicy::Rate(1),
                    replace: false,
                },
            )
            .unwrap_err();
        assert!(matches!(err, WalletError::SameRecipient));
        let err = w
            .build_conflicting_pair(
                &coins,
                &ConflictRequest {
                    to: stranger(),
                    to2: dev_secret_key(6).pubkey_hash(),
                    amount: Amount::from_base(10_000),
                    fee: FeePolicy::Rate(1),
                    replace: false,
                },
            )
            .unwrap_err();
        assert!(matches!(err, WalletError::NoCoinLargeEnough { .. }));
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
