//! A vending machine and its Qibixx MDB HAT for the simulator (`./scripts/sim-mdb` runs it):
//! it plays the HAT's side of the serial line, so a developer can sell through `lnvend sim`
//! with `[mdb]` as a commercial machine would. It answers lnvend's enable (`C,1`, `C,0`,
//! `C,SETCONF`) as a logged real HAT does, keeps the line alive (`r,ACK`), prints every line
//! lnvend sends, and takes the machine's side from this terminal:
//!
//! - `select ITEM AMOUNT` (e.g. `select 17 2.50`): the customer's keypad selection;
//! - `ok` / `fail`: the machine vended / did not vend what lnvend approved;
//! - `cancel`: the customer cancels on the keypad; `end`: the machine ends its session;
//! - `quit` (or end of input).
//!
//! `cargo run --example vmc -- PORT` opens PORT, the machine's end of a pseudo-terminal pair
//! (`socat pty,raw,echo=0,link=A pty,raw,echo=0,link=B`); lnvend opens the other end.

use std::time::Duration;

use lnvend::dispense::tty::Tty;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// What the machine says for a command typed here; None: not a command.
fn machine_line(command: &str) -> Option<String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    match words.as_slice() {
        ["select", item, amount] => Some(format!("c,STATUS,VEND,{amount},{item}")),
        ["ok"] => Some("c,VEND,SUCCESS".into()),
        ["fail"] => Some("c,ERR,VEND 3".into()),
        ["cancel"] => Some("c,ERR,VEND 1".into()),
        ["end"] => Some("c,STATUS,ENABLED".into()),
        _ => None,
    }
}

/// The HAT's answers to one of lnvend's commands.
fn answers(command: &str) -> &'static [&'static str] {
    match command {
        "C,1" => &[
            "c,STATUS,INACTIVE",
            "c,1",
            "c,STATUS,DISABLED",
            "c,STATUS,ENABLED",
        ],
        "C,0" => &["c,0"],
        "V" => &["v,sim-vmc,0"],
        c if c.starts_with("C,SETCONF,") => &["c,SET,OK"],
        _ => &[],
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(port) = std::env::args().nth(1) else {
        anyhow::bail!("usage: vmc PORT (the machine's end of a pseudo-terminal pair)");
    };
    let tty = Tty::open(std::path::Path::new(&port))?;
    let (r, mut w) = tokio::io::split(tty);
    let (say, mut to_say) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        let mut beat = tokio::time::interval(Duration::from_millis(500));
        loop {
            let line = tokio::select! {
                l = to_say.recv() => match l { Some(l) => l, None => return },
                _ = beat.tick() => "r,ACK".to_string(),
            };
            if w.write_all(format!("{line}\r\n").as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let reader = {
        let say = say.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line != "V" {
                    println!("lnvend: {line}");
                }
                if let Some(amount) = line.strip_prefix("C,VEND,").filter(|a| *a != "-1") {
                    println!("vmc: vending {amount}... type `ok` (vended) or `fail`");
                }
                for a in answers(&line) {
                    let _ = say.send(a.to_string());
                }
            }
            println!("vmc: lnvend closed the line");
        })
    };
    println!("vmc: on {port}; `select ITEM AMOUNT`, `ok`, `fail`, `cancel`, `end`, `quit`");
    let mut input = BufReader::new(tokio::io::stdin()).lines();
    while let Some(command) = input.next_line().await? {
        let command = command.trim();
        if command == "quit" {
            break;
        }
        match machine_line(command) {
            Some(line) => {
                println!("vmc: {line}");
                let _ = say.send(line);
            }
            None if command.is_empty() => {}
            None => println!("vmc: unknown command {command:?}"),
        }
    }
    reader.abort();
    writer.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_become_the_hat_s_lines() {
        assert_eq!(
            machine_line("select 17 2.50").as_deref(),
            Some("c,STATUS,VEND,2.50,17")
        );
        assert_eq!(machine_line("fail").as_deref(), Some("c,ERR,VEND 3"));
        assert_eq!(machine_line("cancel").as_deref(), Some("c,ERR,VEND 1"));
        assert_eq!(machine_line("select 17"), None);
        assert_eq!(answers("C,1").len(), 4);
    }
}
