//! The configuration reference (docs/reference/config.md) and the parser cannot drift apart:
//! every key the parser accepts has its row in the reference, and every key the reference
//! documents is one the parser accepts.
//!
//! The keys come from the parser itself, not from a list kept beside it: each table is
//! probed through the real `Config::parse` with one key no table has (`zzz_probe`), and
//! serde's refusal (`deny_unknown_fields`) names every field the table's `Deserialize`
//! knows ("unknown field `zzz_probe`, expected one of `a`, `b`"). A field is a table when
//! probing inside it gives that refusal again (`[[…]]` for an array of tables); a
//! `[backend]`-like table without its tag answers "missing field `kind`", and its variants
//! come from the refusal of `kind = "zzz_probe"` ("unknown variant …, expected one of …").
//! So a key added to any config struct, a new backend, or a renamed field shows up here
//! without this file changing; a table that stopped refusing unknown keys fails too.

use std::collections::BTreeSet;

use lnvend::config::{Config, Mode};

const PROBE: &str = "zzz_probe";

/// One step of a path into the file: a table, an array of tables, or a tagged table with
/// its tag key and variant.
#[derive(Clone, Debug)]
struct Seg {
    name: String,
    array: bool,
    tag: Option<(String, String)>,
}

/// A TOML document that puts the probe key inside the table at `path`.
fn probe_doc(path: &[Seg], extra: &str) -> String {
    let mut doc = String::new();
    for i in 0..path.len() {
        let prefix: Vec<&str> = path[..=i].iter().map(|s| s.name.as_str()).collect();
        let prefix = prefix.join(".");
        let seg = &path[i];
        if seg.array {
            doc += &format!("[[{prefix}]]\n");
        } else if let Some((tag, variant)) = &seg.tag {
            doc += &format!("[{prefix}]\n{tag} = \"{variant}\"\n");
        } else if i == path.len() - 1 {
            doc += &format!("[{prefix}]\n");
        }
    }
    doc + extra
}

/// The parser's refusal of `doc` (empty when it accepts it).
fn refusal(doc: &str) -> String {
    match Config::parse(doc, "probe.toml", Mode::Sim) {
        Ok(_) => String::new(),
        Err(e) => e.message,
    }
}

/// The names serde lists after "expected" in a refusal.
fn expected_names(message: &str) -> Vec<String> {
    if message.contains("there are no fields") {
        return Vec::new();
    }
    let Some((_, list)) = message.split_once("expected") else {
        return Vec::new();
    };
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// What the table at `path` is, as the parser sees it.
enum Table {
    Fields(Vec<String>),
    /// An internally tagged table: its tag key and its variants.
    Tagged(String, Vec<String>),
}

fn table_at(path: &[Seg]) -> Option<Table> {
    let msg = refusal(&probe_doc(path, &format!("{PROBE} = 1\n")));
    if msg.starts_with(&format!("unknown field `{PROBE}`")) {
        return Some(Table::Fields(expected_names(&msg)));
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let tag = rest.split('`').next().unwrap_or_default().to_string();
        let msg = refusal(&probe_doc(path, &format!("{tag} = \"{PROBE}\"\n")));
        if msg.starts_with(&format!("unknown variant `{PROBE}`")) {
            return Some(Table::Tagged(tag, expected_names(&msg)));
        }
        panic!(
            "{}: answers a stray key with \"missing field `{tag}`\" but is not a tagged \
             table; does it still deny unknown fields? ({msg})",
            dotted(path)
        );
    }
    assert!(
        !msg.is_empty(),
        "{}: a stray key `{PROBE}` was accepted: every table must deny unknown fields",
        dotted(path)
    );
    None
}

fn dotted(path: &[Seg]) -> String {
    let names: Vec<&str> = path.iter().map(|s| s.name.as_str()).collect();
    if names.is_empty() {
        "(top level)".into()
    } else {
        names.join(".")
    }
}

/// A key as the reference spells it: `a.b.c`, with ` [variant]` for a key of one variant
/// of a tagged table.
fn key(path: &[Seg], field: &str) -> String {
    let variants: Vec<&str> = path
        .iter()
        .filter_map(|s| s.tag.as_ref().map(|(_, v)| v.as_str()))
        .collect();
    let mut k = dotted(path);
    k = if path.is_empty() {
        field.to_string()
    } else {
        format!("{k}.{field}")
    };
    if !variants.is_empty() {
        k += &format!(" [{}]", variants.join(","));
    }
    k
}

/// Every key under the table at `path` (which must be one).
fn walk(path: &[Seg], fields: Vec<String>, out: &mut BTreeSet<String>) {
    for field in fields {
        let mut child = path.to_vec();
        child.push(Seg {
            name: field.clone(),
            array: false,
            tag: None,
        });
        match table_at(&child) {
            Some(Table::Fields(f)) => walk(&child, f, out),
            Some(Table::Tagged(tag, variants)) => {
                out.insert(key(path, &format!("{field}.{tag}")));
                for v in variants {
                    let mut tagged = child.clone();
                    tagged.last_mut().unwrap().tag = Some((tag.clone(), v));
                    match table_at(&tagged) {
                        Some(Table::Fields(f)) => walk(&tagged, f, out),
                        _ => panic!("{}: variant's table not found", dotted(&tagged)),
                    }
                }
            }
            None => {
                child.last_mut().unwrap().array = true;
                match table_at(&child) {
                    Some(Table::Fields(f)) => walk(&child, f, out),
                    Some(Table::Tagged(..)) => panic!("{field}: tagged arrays are not probed"),
                    None => {
                        out.insert(key(path, &field));
                    }
                }
            }
        }
    }
}

/// Every key the parser accepts.
fn parser_keys() -> BTreeSet<String> {
    let Some(Table::Fields(top)) = table_at(&[]) else {
        panic!("the top level of the config is not a table that denies unknown fields");
    };
    let mut out = BTreeSet::new();
    walk(&[], top, &mut out);
    out
}

/// `a.{b,c}.d` → `a.b.d`, `a.c.d` (one brace group at a time, any number of groups).
fn expand(k: &str) -> Vec<String> {
    let (Some(open), Some(close)) = (k.find('{'), k.find('}')) else {
        return vec![k.to_string()];
    };
    k[open + 1..close]
        .split(',')
        .flat_map(|alt| expand(&format!("{}{}{}", &k[..open], alt.trim(), &k[close + 1..])))
        .collect()
}

/// Every key the reference documents: the first cell of each table row, in backticks; in a
/// table with a `kinds` column, the key once per kind listed there ("—": no kind).
fn documented_keys(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut kinds_column = false;
    for line in text.lines() {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
        if !line.starts_with('|') || cells.len() < 2 {
            continue;
        }
        if cells[0].trim() == "key" {
            kinds_column = cells[1].trim() == "kinds";
            continue;
        }
        let Some(name) = cells[0]
            .trim()
            .strip_prefix('`')
            .and_then(|c| c.strip_suffix('`'))
        else {
            continue;
        };
        for k in expand(name) {
            let kinds = cells[1].trim();
            if kinds_column && kinds != "—" {
                for kind in kinds.split(',') {
                    out.insert(format!("{k} [{}]", kind.trim()));
                }
            } else {
                out.insert(k.clone());
            }
        }
    }
    out
}

#[test]
fn the_reference_documents_exactly_the_keys_the_parser_accepts() {
    let parsed = parser_keys();
    // The probe itself must see the file's shape, or the comparison proves nothing.
    for k in [
        "machine_id",
        "product.price_sat",
        "gpio.channel_b.flow.pulses_per_litre",
        "backend.kind",
        "backend.store_id [btcpay]",
        "backend.rune_file [cln]",
        "nfc.allow_hosts",
    ] {
        assert!(parsed.contains(k), "the probe missed {k}: {parsed:#?}");
    }

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reference/config.md");
    let text = std::fs::read_to_string(path).expect("docs/reference/config.md");
    let documented = documented_keys(&text);

    let undocumented: Vec<&String> = parsed.difference(&documented).collect();
    let unknown: Vec<&String> = documented.difference(&parsed).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/reference/config.md and the config parser disagree.\n\
         Accepted by the parser, missing from the reference (add a row):\n  {}\n\
         In the reference, refused by the parser (remove or rename the row):\n  {}",
        undocumented
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        unknown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

#[test]
fn the_reference_is_read_as_its_readers_read_it() {
    // Brace groups and the kinds column, as the reference uses them.
    let doc = "| key | default | rule |\n|---|---|---|\n| `gpio.channel_{a,b}.flow.{pin,pull}` | — | x |\n\
               | key | kinds | default | rule |\n|---|---|---|---|\n| `backend.url` | btcpay, lnbits | — | x |\n\
               | `backend.kind` | — | `sim` | x |\n";
    let keys: Vec<String> = documented_keys(doc).into_iter().collect();
    assert_eq!(
        keys,
        [
            "backend.kind",
            "backend.url [btcpay]",
            "backend.url [lnbits]",
            "gpio.channel_a.flow.pin",
            "gpio.channel_a.flow.pull",
            "gpio.channel_b.flow.pin",
            "gpio.channel_b.flow.pull",
        ]
    );
}
