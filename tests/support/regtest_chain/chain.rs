//! The Bitcoin block and transaction format, as much of it as a regtest chain for lightningd
//! needs: double SHA-256, compact sizes, transactions with and without segwit witnesses
//! (txid and wtxid), the merkle root, BIP34 heights in coinbases, the witness commitment,
//! block headers and regtest proof of work (target bits 0x207fffff). Written from the format
//! itself (BIP 34, 141, 144 and the block/transaction layout); no node software is used.

use sha2::{Digest, Sha256};

/// A 32-byte hash in internal byte order (the reverse of how explorers print it).
pub type Hash = [u8; 32];

pub fn sha256d(data: &[u8]) -> Hash {
    Sha256::digest(Sha256::digest(data)).into()
}

/// A hash as Bitcoin displays it (txids, block hashes): bytes reversed, hex.
pub fn display(h: &Hash) -> String {
    let mut r = *h;
    r.reverse();
    hex::encode(r)
}

/// The inverse of [`display`].
pub fn from_display(s: &str) -> Option<Hash> {
    let mut h: Hash = hex::decode(s).ok()?.try_into().ok()?;
    h.reverse();
    Some(h)
}

/// Regtest's proof-of-work limit, as compact bits: any hash below 0x7fffff << 232 will do
/// (about one try in two).
pub const REGTEST_BITS: u32 = 0x207f_ffff;

/// The regtest genesis block's timestamp and nonce (chain parameters).
const GENESIS_TIME: u32 = 1_296_688_602;
const GENESIS_NONCE: u32 = 2;

/// The subsidy of every block of this chain: 50 BTC (it never mines past the first halving).
pub const SUBSIDY_SAT: u64 = 5_000_000_000;

pub fn write_compact_size(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xfc => out.push(n as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// A byte cursor for parsing; every read fails cleanly at the end of the input.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn compact_size(&mut self) -> Result<u64, String> {
        Ok(match self.take(1)?[0] {
            0xfd => u16::from_le_bytes(self.take(2)?.try_into().unwrap()) as u64,
            0xfe => self.u32()? as u64,
            0xff => self.u64()?,
            n => n as u64,
        })
    }
    /// A length-prefixed byte string (bounded by what is left, so a hostile length fails).
    fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let n = self.compact_size()?;
        let n = usize::try_from(n).map_err(|_| "length overflow".to_string())?;
        Ok(self.take(n)?.to_vec())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxIn {
    pub prev_txid: Hash,
    pub prev_vout: u32,
    pub script_sig: Vec<u8>,
    pub sequence: u32,
    pub witness: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOut {
    pub value_sat: u64,
    pub script_pubkey: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tx {
    pub version: u32,
    pub inputs: Vec<TxIn>,
    pub outputs: Vec<TxOut>,
    pub lock_time: u32,
}

impl Tx {
    pub fn has_witness(&self) -> bool {
        self.inputs.iter().any(|i| !i.witness.is_empty())
    }

    /// The serialization: with the segwit marker and witnesses (BIP 144) when
    /// `with_witness` and any input has a witness, else the legacy one.
    pub fn serialize(&self, with_witness: bool) -> Vec<u8> {
        let segwit = with_witness && self.has_witness();
        let mut out = Vec::new();
        out.extend_from_slice(&self.version.to_le_bytes());
        if segwit {
            out.extend_from_slice(&[0x00, 0x01]);
        }
        write_compact_size(&mut out, self.inputs.len() as u64);
        for i in &self.inputs {
            out.extend_from_slice(&i.prev_txid);
            out.extend_from_slice(&i.prev_vout.to_le_bytes());
            write_compact_size(&mut out, i.script_sig.len() as u64);
            out.extend_from_slice(&i.script_sig);
            out.extend_from_slice(&i.sequence.to_le_bytes());
        }
        write_compact_size(&mut out, self.outputs.len() as u64);
        for o in &self.outputs {
            out.extend_from_slice(&o.value_sat.to_le_bytes());
            write_compact_size(&mut out, o.script_pubkey.len() as u64);
            out.extend_from_slice(&o.script_pubkey);
        }
        if segwit {
            for i in &self.inputs {
                write_compact_size(&mut out, i.witness.len() as u64);
                for item in &i.witness {
                    write_compact_size(&mut out, item.len() as u64);
                    out.extend_from_slice(item);
                }
            }
        }
        out.extend_from_slice(&self.lock_time.to_le_bytes());
        out
    }

    /// The txid: the hash of the serialization without witnesses.
    pub fn txid(&self) -> Hash {
        sha256d(&self.serialize(false))
    }

    /// The wtxid: the hash of the full serialization.
    pub fn wtxid(&self) -> Hash {
        sha256d(&self.serialize(true))
    }

    pub fn parse(data: &[u8]) -> Result<Tx, String> {
        let mut r = Reader { data, pos: 0 };
        let tx = Tx::read(&mut r)?;
        if r.pos != data.len() {
            return Err(format!(
                "{} bytes after the transaction",
                data.len() - r.pos
            ));
        }
        Ok(tx)
    }

    fn read(r: &mut Reader) -> Result<Tx, String> {
        let version = r.u32()?;
        let mut n_in = r.compact_size()?;
        let mut segwit = false;
        if n_in == 0 {
            // BIP 144: a zero input count is the marker, then flag 1.
            if r.take(1)?[0] != 1 {
                return Err("bad segwit flag".into());
            }
            segwit = true;
            n_in = r.compact_size()?;
        }
        let mut inputs = Vec::new();
        for _ in 0..n_in {
            let prev_txid: Hash = r.take(32)?.try_into().unwrap();
            let prev_vout = r.u32()?;
            let script_sig = r.bytes()?;
            let sequence = r.u32()?;
            inputs.push(TxIn {
                prev_txid,
                prev_vout,
                script_sig,
                sequence,
                witness: Vec::new(),
            });
        }
        let n_out = r.compact_size()?;
        let mut outputs = Vec::new();
        for _ in 0..n_out {
            let value_sat = r.u64()?;
            let script_pubkey = r.bytes()?;
            outputs.push(TxOut {
                value_sat,
                script_pubkey,
            });
        }
        if segwit {
            for i in inputs.iter_mut() {
                let items = r.compact_size()?;
                for _ in 0..items {
                    i.witness.push(r.bytes()?);
                }
            }
        }
        let lock_time = r.u32()?;
        Ok(Tx {
            version,
            inputs,
            outputs,
            lock_time,
        })
    }
}

/// The merkle root of `hashes` (txids, or wtxids): pairs hashed level by level, an odd last
/// one paired with itself.
pub fn merkle_root(hashes: &[Hash]) -> Hash {
    assert!(!hashes.is_empty(), "a block has at least its coinbase");
    let mut level = hashes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| {
                let mut both = [0u8; 64];
                both[..32].copy_from_slice(&pair[0]);
                both[32..].copy_from_slice(pair.get(1).unwrap_or(&pair[0]));
                sha256d(&both)
            })
            .collect();
    }
    level[0]
}

/// The script push of `n` as `CScript() << n` makes it, which is what BIP34 asks the
/// coinbase's scriptSig to start with: OP_0 or OP_1..OP_16 for small heights, else the
/// minimal little-endian number with a sign byte when the top bit is set.
pub fn bip34_height_push(n: u32) -> Vec<u8> {
    match n {
        0 => vec![0x00],
        1..=16 => vec![0x50 + n as u8],
        _ => {
            let mut num = Vec::new();
            let mut v = n;
            while v > 0 {
                num.push((v & 0xff) as u8);
                v >>= 8;
            }
            if num.last().is_some_and(|b| b & 0x80 != 0) {
                num.push(0);
            }
            let mut out = vec![num.len() as u8];
            out.extend(num);
            out
        }
    }
}

/// The 256-bit target of compact `bits`, big-endian.
pub fn target_of(bits: u32) -> [u8; 32] {
    let exponent = (bits >> 24) as usize;
    let mantissa = bits & 0x00ff_ffff;
    let mut t = [0u8; 32];
    // mantissa * 256^(exponent-3), written big-endian.
    for (k, byte) in mantissa.to_be_bytes()[1..].iter().enumerate() {
        let pos = 32 + k;
        if let Some(i) = pos.checked_sub(exponent) {
            if i < 32 {
                t[i] = *byte;
            }
        }
    }
    t
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub prev: Hash,
    pub merkle_root: Hash,
    pub time: u32,
    pub bits: u32,
    pub nonce: u32,
}

impl Header {
    pub fn serialize(&self) -> [u8; 80] {
        let mut out = [0u8; 80];
        out[0..4].copy_from_slice(&self.version.to_le_bytes());
        out[4..36].copy_from_slice(&self.prev);
        out[36..68].copy_from_slice(&self.merkle_root);
        out[68..72].copy_from_slice(&self.time.to_le_bytes());
        out[72..76].copy_from_slice(&self.bits.to_le_bytes());
        out[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    pub fn hash(&self) -> Hash {
        sha256d(&self.serialize())
    }

    /// Whether the hash, read as a little-endian number, is at most the target.
    pub fn pow_valid(&self) -> bool {
        let mut h = self.hash();
        h.reverse();
        h <= target_of(self.bits)
    }

    /// Raises the nonce until the proof of work holds.
    pub fn mine(&mut self) {
        while !self.pow_valid() {
            self.nonce = self.nonce.wrapping_add(1);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub header: Header,
    pub txs: Vec<Tx>,
}

impl Block {
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = self.header.serialize().to_vec();
        write_compact_size(&mut out, self.txs.len() as u64);
        for tx in &self.txs {
            out.extend(tx.serialize(true));
        }
        out
    }

    pub fn parse(data: &[u8]) -> Result<Block, String> {
        let mut r = Reader { data, pos: 0 };
        let h = r.take(80)?;
        let header = Header {
            version: u32::from_le_bytes(h[0..4].try_into().unwrap()),
            prev: h[4..36].try_into().unwrap(),
            merkle_root: h[36..68].try_into().unwrap(),
            time: u32::from_le_bytes(h[68..72].try_into().unwrap()),
            bits: u32::from_le_bytes(h[72..76].try_into().unwrap()),
            nonce: u32::from_le_bytes(h[76..80].try_into().unwrap()),
        };
        let n = r.compact_size()?;
        let mut txs = Vec::new();
        for _ in 0..n {
            txs.push(Tx::read(&mut r)?);
        }
        if r.pos != data.len() {
            return Err("bytes after the block".into());
        }
        Ok(Block { header, txs })
    }

    pub fn hash(&self) -> Hash {
        self.header.hash()
    }
}

/// The regtest genesis block (the chain parameters every regtest node shares).
pub fn genesis() -> Block {
    let mut script_sig = hex::decode("04ffff001d010445").unwrap();
    script_sig.extend_from_slice(
        b"The Times 03/Jan/2009 Chancellor on brink of second bailout for banks",
    );
    let coinbase = Tx {
        version: 1,
        inputs: vec![TxIn {
            prev_txid: [0; 32],
            prev_vout: u32::MAX,
            script_sig,
            sequence: u32::MAX,
            witness: Vec::new(),
        }],
        outputs: vec![TxOut {
            value_sat: SUBSIDY_SAT,
            script_pubkey: hex::decode(concat!(
                "4104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f",
                "4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac"
            ))
            .unwrap(),
        }],
        lock_time: 0,
    };
    let header = Header {
        version: 1,
        prev: [0; 32],
        merkle_root: coinbase.txid(),
        time: GENESIS_TIME,
        bits: REGTEST_BITS,
        nonce: GENESIS_NONCE,
    };
    Block {
        header,
        txs: vec![coinbase],
    }
}

/// A new block at `height` on `prev`: a coinbase paying the subsidy and the fees to
/// `coinbase_script`, then `txs` as given (their fees are whatever their inputs leave; this
/// chain does not look inputs up). Deterministic: the time is the genesis time plus ten
/// minutes a block, and the nonce is the first that meets the target.
pub fn next_block(prev: &Block, height: u32, coinbase_script: &[u8], txs: Vec<Tx>) -> Block {
    let mut script_sig = bip34_height_push(height);
    // A coinbase scriptSig is 2 to 100 bytes: a tag after the height keeps small heights
    // (a one-byte OP_N) valid.
    script_sig.extend_from_slice(&[0x06, b'l', b'n', b'v', b'e', b'n', b'd']);
    let mut coinbase = Tx {
        version: 2,
        inputs: vec![TxIn {
            prev_txid: [0; 32],
            prev_vout: u32::MAX,
            script_sig,
            sequence: u32::MAX,
            // BIP 141: the witness reserved value, 32 zero bytes.
            witness: vec![vec![0; 32]],
        }],
        outputs: vec![TxOut {
            value_sat: SUBSIDY_SAT,
            script_pubkey: coinbase_script.to_vec(),
        }],
        lock_time: 0,
    };
    // BIP 141 witness commitment: the merkle root of the wtxids (the coinbase's counted as
    // zero), hashed with the reserved value, in an OP_RETURN output.
    let mut wtxids = vec![[0u8; 32]];
    wtxids.extend(txs.iter().map(Tx::wtxid));
    let mut committed = merkle_root(&wtxids).to_vec();
    committed.extend_from_slice(&[0u8; 32]);
    let mut commitment = hex::decode("6a24aa21a9ed").unwrap();
    commitment.extend_from_slice(&sha256d(&committed));
    coinbase.outputs.push(TxOut {
        value_sat: 0,
        script_pubkey: commitment,
    });
    let mut all = vec![coinbase];
    all.extend(txs);
    let txids: Vec<Hash> = all.iter().map(Tx::txid).collect();
    let mut header = Header {
        version: 0x2000_0000,
        prev: prev.hash(),
        merkle_root: merkle_root(&txids),
        time: GENESIS_TIME + 600 * height,
        bits: REGTEST_BITS,
        nonce: 0,
    };
    header.mine();
    Block { header, txs: all }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_genesis_block_is_regtest_s() {
        let g = genesis();
        assert_eq!(
            display(&g.hash()),
            "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
        );
        assert_eq!(
            display(&g.header.merkle_root),
            "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
        );
        assert!(g.header.pow_valid());
        assert_eq!(Block::parse(&g.serialize()).unwrap(), g);
        assert_eq!(g.serialize().len(), 285, "the genesis block is 285 bytes");
    }

    #[test]
    fn mined_blocks_meet_the_regtest_target_and_a_wrong_nonce_usually_does_not() {
        let g = genesis();
        let b = next_block(&g, 1, &[0x51], vec![]);
        assert!(b.header.pow_valid());
        assert_eq!(b.header.prev, g.hash());
        // The target is about half of all hashes: among 64 nonces some fail.
        let failing = (0..64)
            .filter(|n| {
                let mut h = b.header.clone();
                h.nonce = *n;
                !h.pow_valid()
            })
            .count();
        assert!(failing > 10 && failing < 54, "{failing}");
        assert_eq!(
            hex::encode(target_of(REGTEST_BITS)),
            format!("7fffff{}", "00".repeat(29))
        );
        // The Bitcoin main net limit (bits 0x1d00ffff) for comparison.
        assert_eq!(
            hex::encode(target_of(0x1d00_ffff)),
            format!("00000000ffff{}", "00".repeat(26))
        );
        assert_eq!(Block::parse(&b.serialize()).unwrap(), b);
        assert_eq!(next_block(&g, 1, &[0x51], vec![]), b, "deterministic");
    }

    #[test]
    fn bip34_heights_are_script_number_pushes() {
        assert_eq!(bip34_height_push(1), [0x51]);
        assert_eq!(bip34_height_push(16), [0x60]);
        assert_eq!(bip34_height_push(17), [0x01, 0x11]);
        assert_eq!(bip34_height_push(127), [0x01, 0x7f]);
        assert_eq!(bip34_height_push(128), [0x02, 0x80, 0x00]);
        assert_eq!(bip34_height_push(256), [0x02, 0x00, 0x01]);
        assert_eq!(bip34_height_push(500_000), [0x03, 0x20, 0xa1, 0x07]);
        let b = next_block(&genesis(), 300, &[0x51], vec![]);
        assert_eq!(&b.txs[0].inputs[0].script_sig[..3], &[0x02, 0x2c, 0x01]);
    }

    #[test]
    fn merkle_roots_of_known_blocks() {
        let h = |s: &str| from_display(s).unwrap();
        // Main net block 100000 (four transactions).
        let txids = [
            h("8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87"),
            h("fff2525b8931402dd09222c50775608f75787bd2b87e56995a7bdd30f79702c4"),
            h("6359f0868171b1d194cbee1af2f16ea598ae8fad666d9b012c8ed2b79a236ec4"),
            h("e9a66845e05d5abc0ad04ec80f774a7e585c6e8db975962d069a522137b80c1d"),
        ];
        assert_eq!(
            display(&merkle_root(&txids)),
            "f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766"
        );
        // One transaction: the root is its txid.
        assert_eq!(merkle_root(&txids[..1]), txids[0]);
        // Three: the last is paired with itself.
        let three = [txids[0], txids[1], txids[2]];
        let four = [txids[0], txids[1], txids[2], txids[2]];
        assert_eq!(merkle_root(&three), merkle_root(&four));
        assert_ne!(merkle_root(&three), merkle_root(&txids));
    }

    #[test]
    fn segwit_transactions_keep_their_witness_and_their_txid_ignores_it() {
        let b = next_block(&genesis(), 1, &[0x51], vec![]);
        let cb = &b.txs[0];
        assert!(cb.has_witness());
        let full = cb.serialize(true);
        assert_eq!(&full[4..6], &[0x00, 0x01], "BIP 144 marker and flag");
        assert_eq!(Tx::parse(&full).unwrap(), *cb);
        assert_ne!(cb.txid(), cb.wtxid());
        assert_eq!(cb.txid(), sha256d(&cb.serialize(false)));
        assert!(Tx::parse(&full[..full.len() - 1]).is_err(), "truncated");
        let mut long = full.clone();
        long.push(0);
        assert!(Tx::parse(&long).is_err(), "trailing bytes");
        // A length far past the end is refused, not allocated.
        assert!(Tx::parse(&hex::decode("0100000001ff").unwrap()).is_err());
    }
}
