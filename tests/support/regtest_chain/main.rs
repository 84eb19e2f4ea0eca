//! lnvend-regtest-chain: test support, not part of the machine. A deterministic regtest
//! chain served to Core Lightning as its Bitcoin backend, so tests/cln_real.rs runs a real
//! `lightningd` without bitcoind: `lightningd --network=regtest --disable-plugin=bcli
//! --plugin=<this> --regtest-chain-dir=<dir>`.
//!
//! As a plugin (no arguments but lightningd's `--…` flags) it speaks lightningd's plugin protocol (JSON-RPC 2.0 on
//! stdin/stdout) and answers the five Bitcoin backend methods (`getchaininfo`,
//! `estimatefees`, `getrawblockbyheight`, `getutxout`, `sendrawtransaction`) from the chain
//! in `--regtest-chain-dir`, shared by every node of a test; it also offers `regtest-mine`
//! through the node. From the command line, `lnvend-regtest-chain mine <dir> <n>
//! [<coinbase script hex>]` mines for the test (the first block takes the mempool).
//!
//! Why a `[[bin]]` of this package rather than a workspace member or an example: cargo builds
//! a package's binaries before its integration tests and gives them the path
//! (`CARGO_BIN_EXE_…`); its only dependencies (serde_json, sha2, hex, libc) are lnvend's own,
//! already built, so it costs one small file to compile. The Debian package ships only
//! `lnvend` (see `[package.metadata.deb]`).

mod chain;
mod store;

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use serde_json::{json, Value};
use store::Store;

/// Fee estimates in sat per 1000 vbytes, as bitcoind's `estimatesmartfee` would give on a
/// quiet regtest: fixed, so fees (and the tests) are deterministic.
const FEERATE_FLOOR: u64 = 1_000;
const FEERATES: &[(u32, u64)] = &[(2, 5_000), (6, 3_000), (12, 2_000), (100, 1_000)];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        // lightningd passes `--developer` to its plugins when it runs with it.
        _ if args.iter().all(|a| a.starts_with("--")) => serve_plugin(),
        Some("mine") if args.len() == 3 || args.len() == 4 => cli_mine(&args[1..]),
        Some("init") if args.len() == 2 => Store::open(&PathBuf::from(&args[1])).map(|_| ()),
        _ => Err(
            "usage: lnvend-regtest-chain [mine <dir> <n> [<script hex>] | init <dir>] \
             (no arguments: a lightningd plugin)"
                .into(),
        ),
    };
    if let Err(e) = result {
        eprintln!("lnvend-regtest-chain: {e}");
        std::process::exit(1);
    }
}

fn cli_mine(args: &[String]) -> Result<(), String> {
    let store = Store::open(&PathBuf::from(&args[0]))?;
    let n: u32 = args[1].parse().map_err(|e| format!("n: {e}"))?;
    let script = match args.get(2) {
        Some(h) => Some(hex::decode(h).map_err(|e| format!("script: {e}"))?),
        None => None,
    };
    let tip = store.mine(n, script.as_deref())?;
    println!("{tip}");
    Ok(())
}

/// The plugin: one request at a time from stdin, each answered at once on stdout.
fn serve_plugin() -> Result<(), String> {
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut store: Option<Store> = None;
    for msg in serde_json::Deserializer::from_reader(stdin).into_iter::<Value>() {
        // lightningd closing our stdin is its way of stopping us.
        let msg = msg.map_err(|e| format!("stdin: {e}"))?;
        let Some(id) = msg.get("id").cloned() else {
            continue; // a notification: none subscribed, nothing to answer
        };
        let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
        let params = msg.get("params").cloned().unwrap_or(json!({}));
        let reply = match handle(method, &params, &mut store) {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err(e) => json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32600, "message": e}}),
        };
        serde_json::to_writer(&mut out, &reply).map_err(|e| e.to_string())?;
        out.write_all(b"\n\n").map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A named param, or the positional one at `index` (lightning-cli sends either).
fn param<'a>(params: &'a Value, name: &str, index: usize) -> Option<&'a Value> {
    match params {
        Value::Object(m) => m.get(name),
        Value::Array(a) => a.get(index),
        _ => None,
    }
}

fn handle(method: &str, params: &Value, store: &mut Option<Store>) -> Result<Value, String> {
    if method == "getmanifest" {
        let m = |name: &str, usage: &str, description: &str| json!({"name": name, "usage": usage, "description": description});
        return Ok(json!({
            "options": [{"name": "regtest-chain-dir", "type": "string", "default": "",
                "description": "the directory of the shared test chain"}],
            "rpcmethods": [
                m("getchaininfo", "[last_height]", "the test chain's height"),
                m("estimatefees", "", "fixed fee estimates"),
                m("getrawblockbyheight", "height", "a block of the test chain"),
                m("getutxout", "txid vout", "an unspent confirmed output"),
                m("sendrawtransaction", "tx [allowhighfees]", "into the test mempool"),
                m("regtest-mine", "blocks [coinbase_script]", "mines blocks on the test chain"),
            ],
            "subscriptions": [],
            "hooks": [],
            "dynamic": false,
        }));
    }
    if method == "init" {
        let dir = params
            .pointer("/options/regtest-chain-dir")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
            .ok_or("--regtest-chain-dir is required")?;
        *store = Some(Store::open(&PathBuf::from(dir))?);
        return Ok(json!({}));
    }
    let s = store.as_ref().ok_or("not initialised")?;
    match method {
        "getchaininfo" => {
            let tip = s.tip()?;
            Ok(json!({"chain": "regtest", "headercount": tip, "blockcount": tip, "ibd": false}))
        }
        "estimatefees" => Ok(json!({
            "feerate_floor": FEERATE_FLOOR,
            "feerates": FEERATES.iter().map(|(blocks, feerate)|
                json!({"blocks": blocks, "feerate": feerate})).collect::<Vec<_>>(),
        })),
        "getrawblockbyheight" => {
            let height = param(params, "height", 0)
                .and_then(Value::as_u64)
                .ok_or("height")?;
            match s.raw_block(height as usize)? {
                Some(raw) => {
                    let hash = chain::sha256d(&raw[..80]);
                    Ok(json!({"blockhash": chain::display(&hash), "block": hex::encode(raw)}))
                }
                None => Ok(json!({"blockhash": null, "block": null})),
            }
        }
        "getutxout" => {
            let txid = param(params, "txid", 0)
                .and_then(Value::as_str)
                .and_then(chain::from_display)
                .ok_or("txid")?;
            let vout = param(params, "vout", 1)
                .and_then(Value::as_u64)
                .ok_or("vout")?;
            match s.utxo(&txid, vout as u32)? {
                Some(o) => Ok(json!({"amount": format!("{}sat", o.value_sat),
                    "script": hex::encode(o.script_pubkey)})),
                None => Ok(json!({"amount": null, "script": null})),
            }
        }
        "sendrawtransaction" => {
            let raw = param(params, "tx", 0)
                .and_then(Value::as_str)
                .and_then(|t| hex::decode(t).ok())
                .ok_or("tx")?;
            match s.send(&raw) {
                Ok(_) => Ok(json!({"success": true, "errmsg": ""})),
                Err(e) => Ok(json!({"success": false, "errmsg": e})),
            }
        }
        "regtest-mine" => {
            let n = param(params, "blocks", 0)
                .and_then(Value::as_u64)
                .ok_or("blocks")?;
            let script = match param(params, "coinbase_script", 1).and_then(Value::as_str) {
                Some(h) => Some(hex::decode(h).map_err(|e| format!("coinbase_script: {e}"))?),
                None => None,
            };
            let tip = s.mine(n as u32, script.as_deref())?;
            Ok(json!({"blockcount": tip}))
        }
        other => Err(format!("unknown method {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_methods_answer_as_lightningd_expects() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = None;
        let manifest = handle("getmanifest", &json!({}), &mut store).unwrap();
        let names: Vec<&str> = manifest["rpcmethods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        for needed in [
            "getchaininfo",
            "estimatefees",
            "getrawblockbyheight",
            "getutxout",
            "sendrawtransaction",
        ] {
            assert!(names.contains(&needed), "{needed}");
        }
        assert!(handle("getchaininfo", &json!({}), &mut store).is_err());
        let init = json!({"options": {"regtest-chain-dir": dir.path()}});
        handle("init", &init, &mut store).unwrap();
        let info = handle("getchaininfo", &json!({"last_height": 0}), &mut store).unwrap();
        assert_eq!(info["blockcount"], store::INITIAL_BLOCKS);
        assert_eq!(info["ibd"], false);
        let g = handle("getrawblockbyheight", &json!({"height": 0}), &mut store).unwrap();
        assert_eq!(
            g["blockhash"],
            "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
        );
        let past = handle("getrawblockbyheight", &json!({"height": 1000}), &mut store).unwrap();
        assert!(past["block"].is_null() && past["blockhash"].is_null());
        let fees = handle("estimatefees", &json!({}), &mut store).unwrap();
        assert_eq!(fees["feerate_floor"], 1000);
        let bad = handle(
            "sendrawtransaction",
            &json!({"tx": "00", "allowhighfees": false}),
            &mut store,
        )
        .unwrap();
        assert_eq!(bad["success"], false);
        let mined = handle(
            "regtest-mine",
            &json!({"blocks": 2, "coinbase_script": "52"}),
            &mut store,
        )
        .unwrap();
        assert_eq!(mined["blockcount"], store::INITIAL_BLOCKS + 2);
        let b = handle(
            "getrawblockbyheight",
            &json!({"height": store::INITIAL_BLOCKS + 1}),
            &mut store,
        )
        .unwrap();
        let block =
            chain::Block::parse(&hex::decode(b["block"].as_str().unwrap()).unwrap()).unwrap();
        let txid = chain::display(&block.txs[0].txid());
        let out = handle("getutxout", &json!({"txid": txid, "vout": 0}), &mut store).unwrap();
        assert_eq!(out["amount"], "5000000000sat");
        assert_eq!(out["script"], "52");
    }
}
