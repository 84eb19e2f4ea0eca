//! A reply is opened only with the encryption of the request it answers: a client that
//! asked in NIP-44 takes no NIP-04 reply (nor the reverse), so nobody can pull a request
//! down to the deprecated scheme.

use super::*;

fn reply_with(wallet: &Wallet, conn: &Connection, sent: &SentRequest, content: String) -> Event {
    wallet.event(
        KIND_RESPONSE,
        vec![
            vec!["p".into(), conn.client().to_hex()],
            vec!["e".into(), sent.id().to_hex()],
        ],
        content,
    )
}

#[test]
fn a_reply_is_read_only_with_the_encryption_of_its_request() {
    let wallet = Wallet::new();
    let conn = wallet.connection();
    let body = json!({"result_type": "lookup_invoice", "result": settled_tx()}).to_string();
    let nip04 = nip04::encrypt(&SharedKey::new(&wallet.keys, &conn.client()), &body).unwrap();
    let nip44 = nip44::encrypt(&wallet.conversation(&conn), &body).unwrap();
    let ask = |encryption| {
        let request = Request::LookupInvoice {
            payment_hash: preimage().payment_hash(),
        };
        conn.request(&request, encryption, 1_700_000_000, None)
            .unwrap()
    };

    let sent44 = ask(Encryption::Nip44V2);
    let genuine = reply_with(&wallet, &conn, &sent44, nip44.clone());
    assert!(conn.open_response(&sent44, &genuine).is_ok());
    let downgraded = reply_with(&wallet, &conn, &sent44, nip04.clone());
    assert_eq!(
        conn.open_response(&sent44, &downgraded),
        Err(NwcError::WrongEncryption(Encryption::Nip44V2))
    );

    let sent04 = ask(Encryption::Nip04);
    let genuine = reply_with(&wallet, &conn, &sent04, nip04);
    assert!(conn.open_response(&sent04, &genuine).is_ok());
    let other = reply_with(&wallet, &conn, &sent04, nip44);
    assert_eq!(
        conn.open_response(&sent04, &other),
        Err(NwcError::WrongEncryption(Encryption::Nip04))
    );
}
