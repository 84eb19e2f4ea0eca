//! The chain that every node of one test shares: a directory with `blocks` (one hex block a
//! line, line n is height n), `mempool` (one hex transaction a line) and a `lock` taken for
//! every change. Each lightningd runs its own plugin process, and the test mines from a
//! third; all read the files on every request, so they always agree (the chains of a test
//! are a few hundred small blocks).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::chain::{self, Block, Hash, Tx, TxOut};

/// The script of the coinbases nobody asked for: OP_TRUE.
pub const ANYONE_CAN_SPEND: &[u8] = &[0x51];

/// Blocks made when the chain is created, on top of genesis: lightningd starts on a chain
/// with some history, as on a real regtest.
pub const INITIAL_BLOCKS: u32 = 101;

pub struct Store {
    dir: PathBuf,
}

/// An exclusive lock on the chain directory, released when dropped.
struct Lock(File);

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: flock on a file descriptor this struct owns.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

impl Store {
    /// The chain in `dir`, created (genesis and [`INITIAL_BLOCKS`] blocks) if new.
    pub fn open(dir: &Path) -> Result<Store, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let s = Store {
            dir: dir.to_path_buf(),
        };
        let _lock = s.lock()?;
        if s.blocks()?.is_empty() {
            let mut blocks = vec![chain::genesis()];
            for h in 1..=INITIAL_BLOCKS {
                let b = chain::next_block(blocks.last().unwrap(), h, ANYONE_CAN_SPEND, vec![]);
                blocks.push(b);
            }
            s.append_blocks(&blocks)?;
        }
        Ok(s)
    }

    fn lock(&self) -> Result<Lock, String> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("lock"))
            .map_err(|e| format!("lock: {e}"))?;
        // SAFETY: flock on an open file descriptor.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(format!("flock: {}", std::io::Error::last_os_error()));
        }
        Ok(Lock(f))
    }

    fn read_lines(&self, name: &str) -> Result<Vec<Vec<u8>>, String> {
        match std::fs::read_to_string(self.dir.join(name)) {
            Ok(text) => text
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| hex::decode(l).map_err(|e| format!("{name}: {e}")))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(format!("{name}: {e}")),
        }
    }

    pub fn blocks(&self) -> Result<Vec<Block>, String> {
        self.read_lines("blocks")?
            .iter()
            .map(|b| Block::parse(b))
            .collect()
    }

    /// The raw block at `height`, if the chain is that long.
    pub fn raw_block(&self, height: usize) -> Result<Option<Vec<u8>>, String> {
        Ok(self.read_lines("blocks")?.into_iter().nth(height))
    }

    /// The height of the tip.
    pub fn tip(&self) -> Result<u32, String> {
        Ok(self.read_lines("blocks")?.len().saturating_sub(1) as u32)
    }

    pub fn mempool(&self) -> Result<Vec<Tx>, String> {
        self.read_lines("mempool")?
            .iter()
            .map(|t| Tx::parse(t))
            .collect()
    }

    fn append_blocks(&self, blocks: &[Block]) -> Result<(), String> {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("blocks"))
            .map_err(|e| format!("blocks: {e}"))?;
        let mut text = String::new();
        for b in blocks {
            text.push_str(&hex::encode(b.serialize()));
            text.push('\n');
        }
        f.write_all(text.as_bytes())
            .map_err(|e| format!("blocks: {e}"))
    }

    fn write_mempool(&self, txs: &[Tx]) -> Result<(), String> {
        let text: String = txs
            .iter()
            .map(|t| format!("{}\n", hex::encode(t.serialize(true))))
            .collect();
        let tmp = self.dir.join("mempool.tmp");
        std::fs::write(&tmp, text).map_err(|e| format!("mempool: {e}"))?;
        std::fs::rename(&tmp, self.dir.join("mempool")).map_err(|e| format!("mempool: {e}"))
    }

    /// Outpoints spent by confirmed transactions.
    fn spent(blocks: &[Block]) -> HashSet<(Hash, u32)> {
        blocks
            .iter()
            .flat_map(|b| b.txs.iter().skip(1))
            .flat_map(|t| t.inputs.iter().map(|i| (i.prev_txid, i.prev_vout)))
            .collect()
    }

    /// An unspent confirmed output (as bitcoind's `gettxout` reports one), or None.
    pub fn utxo(&self, txid: &Hash, vout: u32) -> Result<Option<TxOut>, String> {
        let blocks = self.blocks()?;
        if Self::spent(&blocks).contains(&(*txid, vout)) {
            return Ok(None);
        }
        Ok(blocks
            .iter()
            .flat_map(|b| b.txs.iter())
            .find(|t| t.txid() == *txid)
            .and_then(|t| t.outputs.get(vout as usize).cloned()))
    }

    /// Adds a transaction to the mempool. Refused (as bitcoind would) if it is already
    /// confirmed, or spends an output that a confirmed or pooled transaction spends; a
    /// transaction already in the mempool is accepted again. Signatures and input amounts
    /// are not checked (lightningd does not depend on that).
    pub fn send(&self, raw: &[u8]) -> Result<Hash, String> {
        let tx = Tx::parse(raw).map_err(|e| format!("TX decode failed: {e}"))?;
        if tx.inputs.is_empty() || tx.outputs.is_empty() {
            return Err("bad-txns-vin-empty or vout-empty".into());
        }
        let txid = tx.txid();
        let _lock = self.lock()?;
        let blocks = self.blocks()?;
        if blocks
            .iter()
            .flat_map(|b| b.txs.iter())
            .any(|t| t.txid() == txid)
        {
            return Err("Transaction already in block chain".into());
        }
        let mut pool = self.mempool()?;
        if pool.iter().any(|t| t.txid() == txid) {
            return Ok(txid);
        }
        let mut spent = Self::spent(&blocks);
        spent.extend(
            pool.iter()
                .flat_map(|t| t.inputs.iter().map(|i| (i.prev_txid, i.prev_vout))),
        );
        if tx
            .inputs
            .iter()
            .any(|i| spent.contains(&(i.prev_txid, i.prev_vout)))
        {
            return Err("bad-txns-inputs-missingorspent".into());
        }
        pool.push(tx);
        self.write_mempool(&pool)?;
        Ok(txid)
    }

    /// Mines `n` blocks; the first takes the whole mempool, and its coinbase pays
    /// `coinbase_script` (the others pay OP_TRUE). Returns the new tip's height.
    pub fn mine(&self, n: u32, coinbase_script: Option<&[u8]>) -> Result<u32, String> {
        let _lock = self.lock()?;
        let blocks = self.blocks()?;
        let mut prev = blocks.last().cloned().ok_or("no chain")?;
        let mut height = blocks.len() as u32 - 1;
        let mut pool = self.mempool()?;
        let mut new = Vec::new();
        for i in 0..n {
            height += 1;
            let script = match (i, coinbase_script) {
                (0, Some(s)) => s,
                _ => ANYONE_CAN_SPEND,
            };
            let b = chain::next_block(&prev, height, script, std::mem::take(&mut pool));
            prev = b.clone();
            new.push(b);
        }
        self.append_blocks(&new)?;
        if n > 0 {
            self.write_mempool(&[])?;
        }
        Ok(height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spend(prev: Hash, vout: u32, script: &[u8]) -> Tx {
        Tx {
            version: 2,
            inputs: vec![chain::TxIn {
                prev_txid: prev,
                prev_vout: vout,
                script_sig: vec![],
                sequence: u32::MAX,
                witness: vec![vec![1, 2, 3]],
            }],
            outputs: vec![TxOut {
                value_sat: 1000,
                script_pubkey: script.to_vec(),
            }],
            lock_time: 0,
        }
    }

    #[test]
    fn a_sent_transaction_is_mined_once_and_its_outputs_are_then_unspent() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.tip().unwrap(), INITIAL_BLOCKS);
        let blocks = s.blocks().unwrap();
        let coinbase = blocks[1].txs[0].txid();
        assert!(s.utxo(&coinbase, 0).unwrap().is_some());
        let tx = spend(coinbase, 0, &[0x00, 0x14]);
        let txid = s.send(&tx.serialize(true)).unwrap();
        assert_eq!(
            s.send(&tx.serialize(true)).unwrap(),
            txid,
            "again: accepted"
        );
        let double = spend(coinbase, 0, &[0x52]);
        assert!(s.send(&double.serialize(true)).is_err(), "a double spend");
        assert!(s.utxo(&txid, 0).unwrap().is_none(), "not confirmed yet");
        assert_eq!(s.mine(6, Some(&[0x52])).unwrap(), INITIAL_BLOCKS + 6);
        assert!(s.mempool().unwrap().is_empty());
        assert_eq!(s.utxo(&txid, 0).unwrap().unwrap().value_sat, 1000);
        assert!(s.utxo(&coinbase, 0).unwrap().is_none(), "spent now");
        let blocks = s.blocks().unwrap();
        let first = &blocks[INITIAL_BLOCKS as usize + 1];
        assert_eq!(first.txs[1].txid(), txid);
        assert_eq!(first.txs[0].outputs[0].script_pubkey, [0x52]);
        assert!(s.send(&tx.serialize(true)).is_err(), "already confirmed");
        // Every block links to the one before and meets the target.
        for w in blocks.windows(2) {
            assert_eq!(w[1].header.prev, w[0].hash());
            assert!(w[1].header.pow_valid());
        }
        // A second process sees the same chain.
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.tip().unwrap(), INITIAL_BLOCKS + 6);
    }
}
