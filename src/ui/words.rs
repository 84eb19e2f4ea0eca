//! The sentences the controller writes for customers, checked against what can translate
//! them: ui/words.slint matches each one (as the customer screen receives it) to an `@tr`
//! literal, and every bundled catalog has that literal. A sentence changed in the
//! controller but not here would show in English in every language; these tests say so.

/// Every customer sentence the controller may send, as the screens receive it.
pub fn controller_sentences() -> Vec<String> {
    use crate::controller::{
        ALREADY_POURED_TEXT, EXPIRED_TEXT, NOT_POURED_TEXT, RAN_OUT_TEXT, REFUND_FAILED_TEXT,
        REFUND_PREPARING_TEXT, REFUND_SCAN_TEXT, RETURNED_TEXT, SHORT_POUR_TEXT,
    };
    use crate::vend::OutOfService;
    let mut out: Vec<String> = [
        OutOfService::Backend(String::new()),
        OutOfService::Pump(String::new()),
        OutOfService::Ledger(String::new()),
        OutOfService::Clock(String::new()),
    ]
    .iter()
    .map(OutOfService::customer_text)
    .collect();
    out.extend(
        [
            ALREADY_POURED_TEXT,
            NOT_POURED_TEXT,
            RETURNED_TEXT,
            RAN_OUT_TEXT,
            SHORT_POUR_TEXT,
            REFUND_SCAN_TEXT,
            REFUND_PREPARING_TEXT,
            REFUND_FAILED_TEXT,
        ]
        .map(String::from),
    );
    out.push(super::customer::notice_text(EXPIRED_TEXT));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text as a .slint or .po string literal writes it.
    fn literal(s: &str) -> String {
        format!("\"{}\"", s.replace('\n', "\\n"))
    }

    #[test]
    fn every_controller_sentence_is_translated_in_every_language() {
        let words = include_str!("../../ui/words.slint");
        let catalogs = [
            (
                "fr",
                include_str!("../../translations/fr/LC_MESSAGES/lnvend.po"),
            ),
            (
                "pt",
                include_str!("../../translations/pt/LC_MESSAGES/lnvend.po"),
            ),
            (
                "es",
                include_str!("../../translations/es/LC_MESSAGES/lnvend.po"),
            ),
            (
                "de",
                include_str!("../../translations/de/LC_MESSAGES/lnvend.po"),
            ),
        ];
        for s in controller_sentences() {
            let lit = literal(&s);
            assert!(
                words.contains(&format!("@tr({lit})")),
                "ui/words.slint does not translate {lit}"
            );
            for (lang, po) in catalogs {
                let entry = po
                    .split("\n\n")
                    .find(|e| e.contains(&format!("msgid {lit}")))
                    .unwrap_or_else(|| panic!("{lang} has no {lit}"));
                assert!(!entry.contains("msgstr \"\""), "{lang} leaves {lit} empty");
            }
        }
    }
}
