//! Validation of gossiped blocks and transactions before gossipsub may forward them.
//!
//! Gossipsub runs with `validate_messages()`: a message is held until the node reports a
//! verdict. [`Validator`] decodes each message, hands it to the chain owner and turns the
//! outcome into a verdict:
//! - **Accept**: fully validated — a block that connected (now or before), a transaction
//!   the mempool took: forward it. A block stored on a side branch without being connected
//!   is *not* forwarded: we could not vouch for it, and a receiver that later fails to
//!   connect it would rightly blame whoever forwarded it.
//! - **Ignore**: not a verdict on the sender (a block whose parent we lack — its headers
//!   are asked for instead, nothing is stored —, one on a branch with less work than our
//!   tip, a duplicate, time too new, conflicts, fee policy): drop it quietly.
//! - **Reject**: could not have come from an honest node (bad proof of work, bad merkle
//!   root, bad signature, broken context-free rule, undecodable bytes): drop it, penalise
//!   the gossipsub score and report the offense so the peer is banned.
//!
//! Messages are validated one at a time, in arrival order, on one task: a parent gossiped
//! just before its child is imported first, and the event loop never waits on the chain.
//! What a peer already proved itself faulty with costs nothing more: its later messages
//! still queued are dropped unvalidated. Whether a block is worth importing is decided
//! on its header first ([`cairn_core::chain::Admission`]): blocks that do not connect or
//! cannot win cost neither a merkle hash nor a store write.

use super::peers::Offense;
use crate::chain_task::{ChainHandle, Origin};
use crate::mempool::MempoolError;
use cairn_core::chain::{Admission, Validity};
use cairn_core::{Block, BlockError, ImportOutcome, Transaction, encoding};
use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use std::collections::HashSet;
use tokio::sync::mpsc;

/// Which topic a message came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The blocks topic.
    Block,
    /// The transactions topic.
    Tx,
}

/// A message waiting for validation.
#[derive(Debug)]
pub struct Job {
    /// Gossipsub's id (SHA-256 of the data).
    pub message_id: MessageId,
    /// The peer that forwarded it to us.
    pub source: PeerId,
    /// The topic.
    pub kind: Kind,
    /// The raw message.
    pub data: Vec<u8>,
}

/// The outcome of validating one message.
#[derive(Debug)]
pub struct Verdict {
    /// Gossipsub's id.
    pub message_id: MessageId,
    /// The peer that forwarded it.
    pub source: PeerId,
    /// What gossipsub should do with it.
    pub acceptance: MessageAcceptance,
    /// What the peer did wrong, if anything.
    pub offense: Option<Offense>,
    /// The block's parent is unknown: ask the source for headers (gossip alone cannot heal
    /// a partition).
    pub unconnecting: bool,
    /// Height of an accepted block (the source's chain goes at least this far).
    pub block_height: Option<u32>,
    /// What it was, for logs.
    pub summary: String,
}

/// The verdict on a block given the chain's import outcome; `connected` says whether the
/// block has been connected (fully validated: inputs, signatures, amounts).
pub fn classify_block(
    outcome: &ImportOutcome,
    connected: bool,
) -> (MessageAcceptance, Option<Offense>) {
    match outcome {
        ImportOutcome::Active => (MessageAcceptance::Accept, None),
        // Stored earlier (typically fetched by sync first) or on a side branch: forwarded
        // only if it was connected, i.e. validated in full.
        ImportOutcome::SideChain | ImportOutcome::AlreadyHave if connected => {
            (MessageAcceptance::Accept, None)
        }
        ImportOutcome::SideChain | ImportOutcome::AlreadyHave | ImportOutcome::Orphan => {
            (MessageAcceptance::Ignore, None)
        }
        ImportOutcome::Invalid(e) => classify_block_error(e),
    }
}

/// The verdict on an invalid block.
pub fn classify_block_error(error: &BlockError) -> (MessageAcceptance, Option<Offense>) {
    match error {
        // Descending from a block *we* hold invalid may be a manual `invalidateblock` here:
        // honest peers can relay such blocks. Penalise a little, do not ban.
        BlockError::KnownInvalid(_) | BlockError::InvalidAncestor(_) => (
            MessageAcceptance::Reject,
            Some(Offense::BadResponse(error.to_string())),
        ),
        e if e.is_misbehavior() => (
            MessageAcceptance::Reject,
            Some(Offense::Consensus(format!("{} ({e})", e.reject_reason()))),
        ),
        _ => (MessageAcceptance::Ignore, None),
    }
}

/// The verdict on a transaction given the mempool's answer.
pub fn classify_tx(result: &Result<(), MempoolError>) -> (MessageAcceptance, Option<Offense>) {
    match result {
        Ok(()) => (MessageAcceptance::Accept, None),
        Err(MempoolError::Tx(e)) if e.is_misbehavior() => (
            MessageAcceptance::Reject,
            Some(Offense::Consensus(format!("{} ({e})", e.reject_reason()))),
        ),
        Err(_) => (MessageAcceptance::Ignore, None),
    }
}

/// Peers remembered as proven faulty (their queued messages are dropped unvalidated);
/// beyond this many, the memory starts afresh (they are banned anyway).
const MAX_CONDEMNED: usize = 10_000;

/// Validates gossip messages one by one; see the module docs.
pub struct Validator {
    chain: ChainHandle,
    jobs: mpsc::Receiver<Job>,
    verdicts: mpsc::Sender<Verdict>,
    condemned: HashSet<PeerId>,
}

impl Validator {
    /// A validator reading `jobs` and answering on `verdicts`.
    pub fn new(
        chain: ChainHandle,
        jobs: mpsc::Receiver<Job>,
        verdicts: mpsc::Sender<Verdict>,
    ) -> Validator {
        Validator {
            chain,
            jobs,
            verdicts,
            condemned: HashSet::new(),
        }
    }

    /// Runs until the job channel closes or the node stops.
    pub async fn run(mut self) {
        while let Some(job) = self.jobs.recv().await {
            let verdict = if self.condemned.contains(&job.source) {
                Verdict {
                    message_id: job.message_id,
                    source: job.source,
                    acceptance: MessageAcceptance::Ignore,
                    offense: None,
                    unconnecting: false,
                    block_height: None,
                    summary: "from a peer already proven faulty".into(),
                }
            } else {
                let Some(verdict) = self.validate(job).await else {
                    return;
                };
                // A consensus offense bans at once: what else the peer queued is moot.
                if matches!(verdict.offense, Some(Offense::Consensus(_))) {
                    if self.condemned.len() >= MAX_CONDEMNED {
                        self.condemned.clear();
                    }
                    self.condemned.insert(verdict.source);
                }
                verdict
            };
            if self.verdicts.send(verdict).await.is_err() {
                return;
            }
        }
    }

    /// The verdict on one message; `None` once the chain owner is gone.
    async fn validate(&self, job: Job) -> Option<Verdict> {
        let Job {
            message_id,
            source,
            kind,
            data,
        } = job;
        let mut verdict = Verdict {
            message_id,
            source,
            acceptance: MessageAcceptance::Ignore,
            offense: None,
            unconnecting: false,
            block_height: None,
            summary: String::new(),
        };
        match kind {
            Kind::Block => {
                let block: Block = match encoding::decode(&data) {
                    Ok(block) => block,
                    Err(e) => {
                        verdict.acceptance = MessageAcceptance::Reject;
                        verdict.offense =
                            Some(Offense::Malformed(format!("undecodable block: {e}")));
                        verdict.summary = "undecodable block".into();
                        return Some(verdict);
                    }
                };
                let hash = block.block_hash();
                verdict.summary = format!("block {hash}");
                let outcome = self
                    .chain
                    .call(move |s| import_unrequested(s, block))
                    .await
                    .ok()?;
                match outcome {
                    Ok(Imported::Unconnecting) => {
                        verdict.unconnecting = true;
                        verdict.summary = format!("block {hash}: parent unknown");
                    }
                    Ok(Imported::LessWork) => {
                        verdict.summary = format!("block {hash}: less work than our tip");
                    }
                    Ok(Imported::HeaderInvalid(e)) => {
                        (verdict.acceptance, verdict.offense) = classify_block_error(&e);
                        verdict.summary = format!("block {hash}: {e}");
                        if verdict.offense.is_none() {
                            log_unblamed(&source, &e);
                        }
                    }
                    Ok(Imported::Block {
                        outcome,
                        height,
                        connected,
                    }) => {
                        let (acceptance, offense) = classify_block(&outcome, connected);
                        verdict.acceptance = acceptance;
                        verdict.offense = offense;
                        if acceptance == MessageAcceptance::Accept {
                            verdict.block_height = height;
                        }
                        if let ImportOutcome::Invalid(e) = &outcome {
                            verdict.summary = format!("block {hash}: {e}");
                            if verdict.offense.is_none() {
                                log_unblamed(&source, e);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!("importing gossiped block {hash}: {e}");
                    }
                }
            }
            Kind::Tx => {
                let tx: Transaction = match encoding::decode(&data) {
                    Ok(tx) => tx,
                    Err(e) => {
                        verdict.acceptance = MessageAcceptance::Reject;
                        verdict.offense =
                            Some(Offense::Malformed(format!("undecodable transaction: {e}")));
                        verdict.summary = "undecodable transaction".into();
                        return Some(verdict);
                    }
                };
                let txid = tx.txid();
                verdict.summary = format!("tx {txid}");
                let result = self
                    .chain
                    .call(move |s| s.submit_tx(tx, s.now_secs(), Origin::Peer).map(|_| ()))
                    .await
                    .ok()?;
                let (acceptance, offense) = classify_tx(&result);
                verdict.acceptance = acceptance;
                verdict.offense = offense;
                if let Err(e) = &result {
                    verdict.summary = format!("tx {txid}: {}", e.reject_reason());
                }
            }
        }
        Some(verdict)
    }
}

/// A block refused without blaming its sender (a time too far ahead): said at `info`, with
/// the reject reason, so the refusal is as visible as a ban.
fn log_unblamed(source: &PeerId, error: &BlockError) {
    tracing::info!(peer = %source, "gossiped block not accepted (no offense): {} ({error})", error.reject_reason());
}

/// What became of a gossiped block.
enum Imported {
    /// Its parent is unknown: nothing stored.
    Unconnecting,
    /// Its branch has less work than our tip: nothing stored.
    LessWork,
    /// Its header broke a rule: nothing stored.
    HeaderInvalid(BlockError),
    /// Handed to the chain.
    Block {
        outcome: ImportOutcome,
        height: Option<u32>,
        connected: bool,
    },
}

/// Imports a block nobody asked for, if its header says it is worth it.
fn import_unrequested(
    state: &mut crate::chain_task::NodeState,
    block: Block,
) -> Result<Imported, cairn_core::chain::ChainError> {
    let now = state.now_secs();
    let hash = block.block_hash();
    match state.chain.admit_unrequested(&block.header, now) {
        Admission::UnknownParent(_) => Ok(Imported::Unconnecting),
        Admission::LessWork { .. } => Ok(Imported::LessWork),
        Admission::Invalid(e) => Ok(Imported::HeaderInvalid(e)),
        Admission::Admit | Admission::Known => {
            let report = state.submit_block(block, now, Origin::Peer)?;
            let entry = state.chain.entry(&hash);
            Ok(Imported::Block {
                outcome: report.outcome,
                height: entry.map(|e| e.height),
                connected: entry.is_some_and(|e| e.has_data && e.validity == Validity::Valid),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::{BlockHash, MerkleRoot, OutPoint, TxError, Txid};

    #[test]
    fn blocks_are_classified_as_the_brief_says() {
        assert_eq!(
            classify_block(&ImportOutcome::Active, true).0,
            MessageAcceptance::Accept
        );
        assert_eq!(
            classify_block(&ImportOutcome::SideChain, true).0,
            MessageAcceptance::Accept
        );
        assert_eq!(
            classify_block(&ImportOutcome::SideChain, false),
            (MessageAcceptance::Ignore, None),
            "a side-branch block that was never connected is not forwarded"
        );
        assert_eq!(
            classify_block(&ImportOutcome::Orphan, false),
            (MessageAcceptance::Ignore, None)
        );
        assert_eq!(
            classify_block(&ImportOutcome::AlreadyHave, true),
            (MessageAcceptance::Accept, None)
        );
        assert_eq!(
            classify_block(&ImportOutcome::AlreadyHave, false),
            (MessageAcceptance::Ignore, None)
        );
        let high_hash = ImportOutcome::Invalid(BlockError::HighHash(BlockHash::default()));
        let (acceptance, offense) = classify_block(&high_hash, false);
        assert_eq!(acceptance, MessageAcceptance::Reject);
        assert!(matches!(offense, Some(Offense::Consensus(r)) if r.contains("high-hash")));
        let merkle = BlockError::BadMerkleRoot {
            header: MerkleRoot::default(),
            computed: MerkleRoot::default(),
        };
        assert!(matches!(
            classify_block_error(&merkle).1,
            Some(Offense::Consensus(_))
        ));
        let too_new = BlockError::TimeTooNew { time: 0, max: 0 };
        assert_eq!(
            classify_block_error(&too_new),
            (MessageAcceptance::Ignore, None)
        );
        let descendant = BlockError::InvalidAncestor(BlockHash::default());
        assert!(matches!(
            classify_block_error(&descendant),
            (MessageAcceptance::Reject, Some(Offense::BadResponse(_)))
        ));
    }

    #[test]
    fn transactions_are_classified_as_the_brief_says() {
        let outpoint = OutPoint {
            txid: Txid::default(),
            vout: 0,
        };
        assert_eq!(classify_tx(&Ok(())).0, MessageAcceptance::Accept);
        assert_eq!(
            classify_tx(&Err(MempoolError::AlreadyKnown(Txid::default()))),
            (MessageAcceptance::Ignore, None)
        );
        assert_eq!(
            classify_tx(&Err(MempoolError::Tx(TxError::MissingOrSpent(outpoint)))),
            (MessageAcceptance::Ignore, None)
        );
        assert_eq!(
            classify_tx(&Err(MempoolError::Full)),
            (MessageAcceptance::Ignore, None)
        );
        let (acceptance, offense) =
            classify_tx(&Err(MempoolError::Tx(TxError::WrongKey { index: 0 })));
        assert_eq!(acceptance, MessageAcceptance::Reject);
        assert!(matches!(offense, Some(Offense::Consensus(_))));
        assert!(TxError::DuplicateInput(outpoint).is_misbehavior());
        assert!(
            !TxError::NonFinal {
                lock_height: 5,
                height: 1
            }
            .is_misbehavior()
        );
    }
}
